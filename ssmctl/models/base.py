"""The model-side object model (docs/design.md): ``Family`` records, ``Layer`` and ``Model``.

A family module (``models/<family>.py``) builds a :class:`Family` and calls :func:`register`. Layers hold
their parameters as numpy arrays or torch tensors and ask their family to turn them into systems.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from ..errors import SsmctlError, UnsupportedSystemError, unknown_name
from ..systems import _display

__all__ = ["Family", "Layer", "Model", "register", "families", "get_family", "init"]

_REGISTRY: dict[str, "Family"] = {}


@dataclass(frozen=True)
class Family:
    """What ssmctl knows about one model family.

    The five Table I columns of the overview paper are ``parametrization``, ``discretization``,
    ``structure``, ``implementation`` and ``scaffolding``; ``notes`` says where the reference code differs
    from the paper's classification.
    """

    name: str
    paper: str
    kind: Literal["LTI", "LTV"]
    parametrization: str
    discretization: str
    structure: str
    implementation: str
    scaffolding: str
    defaults: dict[str, Any]
    init: Callable[..., "Model"]
    notes: str = ""
    variants: tuple[str, ...] = ()
    presets: dict[str, dict[str, Any]] = field(default_factory=dict)
    system: Callable[["Layer"], Any] | None = None
    ltv: Callable[["Layer", Any], Any] | None = None
    frozen: Callable[["Layer", Any, int], Any] | None = None
    # Checkpoint loading: build a layer from tensors keyed as the reference code names them inside one block.
    layer_from_params: Callable[[dict[str, Any], dict[str, Any], int], "Layer"] | None = None
    config_from_params: Callable[..., dict[str, Any]] | None = None
    # LTV families: input-free eigenvalues at the bias-only step size, and the continuous-time A.
    bias_eigenvalues: Callable[["Layer"], Any] | None = None
    continuous_A: Callable[["Layer"], Any] | None = None
    # DSF view (analysis/dsf.py): the mixer as factors around its DSF core at an input (``BlockFactors``), a
    # finite-feature approximation of a core that has no finite state (softmax), the exact log Λ_i of such a
    # core, and the attention matrix of attention families.
    dsf_block: Callable[["Layer", Any], Any] | None = None
    dsf_features: Callable[["Layer", Any, int], Any] | None = None
    dsf_log_transition: Callable[["Layer", Any], Any] | None = None
    attention_matrix: Callable[["Layer", Any], Any] | None = None


@dataclass
class Layer:
    """One layer: its parameters (including projections and scaffolding weights) and its family.

    Attributes
    ----------
    family : str
    index : int
    params : dict[str, array or tensor]
    config : dict
        The hyperparameters the layer was built or loaded with.
    """

    family: str
    index: int
    params: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def record(self) -> Family:
        """The registered :class:`Family` of this layer (raises :class:`UnknownNameError` if none)."""
        return get_family(self.family)

    @property
    def kind(self) -> str:
        """``"LTI"`` or ``"LTV"``, the family's kind."""
        return self.record.kind

    def system(self) -> Any:
        """The layer's LTI system (``DiagonalLTI`` or ``DenseLTI``); LTI families only."""
        fam = self.record
        if fam.system is None:
            raise UnsupportedSystemError(
                f"{fam.name} is input-dependent (LTV): use layer.ltv(u) or layer.frozen(u, t) instead of system()"
            )
        return fam.system(self)

    def eigenvalues(self) -> Any:
        """Discrete eigenvalues of an LTI layer's equivalent real system, shape (..., n).

        ``layer.system().eigenvalues()``: the one eigenvalue path. Families that know their spectrum in closed
        form hand it to the system (S4 at its HiPPO-LegS init: ``DenseLTI.exact_eigenvalues``).
        """
        return self.system().eigenvalues()

    def ltv(self, u: Any) -> Any:
        """Per-token system (``LTVSystem``) for input ``u`` of shape (batch, L, d_model); LTV families only.

        Parameters
        ----------
        u : array_like or torch.Tensor, shape (batch, L, d_model)
            The layer's input (for Mamba, Mamba-2 and RG-LRU: the residual stream before the block's norm).

        Returns
        -------
        LTVSystem
            Shapes per family (e.g. Mamba: lam (batch, L, d_inner, N)); see the family's ``ltv``.

        Raises
        ------
        UnsupportedSystemError
            For time-invariant families (use :meth:`system`).
        ShapeError, NonFiniteError
            A ``u`` of the wrong shape, or holding NaN/Inf.
        """
        fam = self.record
        if fam.ltv is None:
            raise UnsupportedSystemError(f"{fam.name} is time-invariant: use layer.system()")
        return fam.ltv(self, u)

    def frozen(self, u: Any, t: int) -> Any:
        """Frozen-time ``DiagonalLTI`` of an LTV layer at token ``t`` of input ``u``.

        Parameters
        ----------
        u : array_like or torch.Tensor, shape (batch, L, d_model)
            The layer's input, as for :meth:`ltv`.
        t : int
            Token index (negative counts from the end).

        Returns
        -------
        DiagonalLTI
            Batch (batch, *channels): Ā_t, B̄_t, C_t, D at token t.

        Raises
        ------
        UnsupportedSystemError
            For time-invariant families (use :meth:`system`).
        ShapeError, NonFiniteError
            A bad ``u``, or ``t`` outside the sequence.
        """
        fam = self.record
        if fam.frozen is not None:
            return fam.frozen(self, u, t)
        if fam.ltv is None:
            raise UnsupportedSystemError(f"{fam.name} is time-invariant: use layer.system()")
        return fam.ltv(self, u).frozen(t)

    def _plain_repr(self) -> str:
        return f"Layer(family={self.family!r}, index={self.index}, params={sorted(self.params)})"

    def __repr__(self) -> str:
        return _display.text(self, "layer", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "layer", self._plain_repr())

    def to_frame(self) -> Any:
        """Per-channel table of the layer's system (LTV layers: at zero input), as ``system.to_frame()``.

        Returns
        -------
        pandas.DataFrame

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "layer")


@dataclass
class Model:
    """A whole model: ``family``, ``config`` (hyperparameters), ``layers`` and ``source`` ("init" or a path)."""

    family: str
    config: dict[str, Any]
    layers: list[Layer]
    source: str = "init"
    extras: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> Layer:
        return self.layers[i]

    def _plain_repr(self) -> str:
        return f"Model(family={self.family!r}, layers={len(self.layers)}, source={self.source!r})"

    def __repr__(self) -> str:
        return _display.text(self, "model", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "model", self._plain_repr())

    def to_frame(self) -> Any:
        """One row per layer: kind, channels, states, max|λ|, min margin, longest memory, max H2 and |DC gain|.

        Returns
        -------
        pandas.DataFrame
            Index: the layer index.

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "model")


def register(family: Family) -> Family:
    """Add a family to the registry (called once by each ``models/<family>.py``).

    Parameters
    ----------
    family : Family
        The record to register under ``family.name``; registering the same object again is a no-op.

    Returns
    -------
    Family
        ``family`` itself.

    Raises
    ------
    SsmctlError
        When another record is already registered under that name.
    """
    if family.name in _REGISTRY and _REGISTRY[family.name] is not family:
        raise SsmctlError(f"family {family.name!r} registered twice")
    _REGISTRY[family.name] = family
    return family


def families() -> dict[str, Family]:
    """The registry: family name → :class:`Family`, in registration order."""
    return dict(_REGISTRY)


def get_family(name: str) -> Family:
    """The registered :class:`Family` of that name.

    Parameters
    ----------
    name : str
        A family name, e.g. ``"s4d"`` or ``"mamba"``.

    Returns
    -------
    Family

    Raises
    ------
    UnknownNameError
        When no family of that name is registered; the message lists the known ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise unknown_name("family", name, list(_REGISTRY)) from None


def init(family: str, **hyper: Any) -> Model:
    """A freshly initialized model of ``family``; ``hyper`` overrides the family's defaults.

    Parameters
    ----------
    family : str
        A name from :func:`families`.
    **hyper
        Hyperparameters (``d_model``, ``d_state``, ``n_layers``, ``seed``, ``variant``, ``preset`` ...).

    Returns
    -------
    Model
        ``source == "init"``; one layer per ``n_layers``.

    Raises
    ------
    UnknownNameError
        When the family (or a variant or preset the family checks) is unknown.
    """
    return get_family(family).init(**hyper)
