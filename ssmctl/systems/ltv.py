"""Linear time-varying (input-dependent) systems: the per-token view of S6/Mamba, Mamba-2, RG-LRU.

``LTVSystem`` holds, for one input batch, the diagonal Ā_t, B̄_t, C_t (and Δ_t where the family has one) of
h_t = Ā_t h_{t-1} + B̄_t u_t, y_t = C_t h_t + D u_t. Shapes put batch and token first:
lam (batch, L, *channels, N), B (batch, L, *channels, N, m), C (batch, L, *channels, p, N),
D (*channels, p, m), dt (batch, L, *channels). The fast chunked engine for long inputs is a separate piece;
this container and its sequential reference (:meth:`LTVSystem.simulate_ref`) define the semantics.

A layer's ``ltv(u)`` also stores the SSM's own input sequence (the signal that multiplies B̄_t, e.g. Mamba's
convolution output) as ``inputs`` (batch, L, *channels, m), so :meth:`LTVSystem.output_ref` reproduces the
layer's SSM output. Fields may be numpy arrays or torch tensors (the model's dtype); every method returns
float64/complex128 numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ShapeError
from . import _display
from .lti import DiagonalLTI, OutputMode

__all__ = ["LTVSystem"]


def _np(x: Any) -> np.ndarray:
    """numpy view of an array or torch tensor (real tensors upcast to float64)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        return (x if x.is_complex() else x.double()).numpy()
    return np.asarray(x)


@dataclass
class LTVSystem:
    """Per-token diagonal system of an input-dependent layer (see module docstring for shapes)."""

    lam: Any
    B: Any
    C: Any
    D: Any
    dt: Any = None
    output: OutputMode = "real"
    meta: dict[str, Any] = field(default_factory=dict)
    inputs: Any = None
    # log Ā_t, same shape as lam, where the family computes it directly: exact where Ā_t under- or overflows
    # (the DSF's Φ is built from its cumulative sums).
    log_lam: Any = None

    def __post_init__(self) -> None:
        lam, B, C = (tuple(np.shape(x)) for x in (self.lam, self.B, self.C))
        if len(lam) < 3 or B[:-1] != lam or C[:-2] + C[-1:] != lam:
            raise ShapeError(
                f"LTVSystem needs lam (batch, L, ..., N), B (batch, L, ..., N, m), C (batch, L, ..., p, N); "
                f"got lam {lam}, B {B}, C {C}"
            )
        if self.inputs is not None:
            want = lam[:-1] + B[-1:]
            got = tuple(np.shape(self.inputs))
            if got != want:
                raise ShapeError(
                    f"LTVSystem inputs must have shape (batch, L, *channels, m) = {want}, got {got}"
                )

    def __repr__(self) -> str:
        return _display.text(self, "ltv", self._plain_repr())

    def _repr_html_(self) -> str:
        return _display.html(self, "ltv", self._plain_repr())

    def to_frame(self) -> Any:
        """Per-channel table over tokens and batch: max and median |Ā_t| of the slowest mode, median memory
        horizon, median Δ_t.

        Returns
        -------
        pandas.DataFrame
            One row per channel (index levels: the channel axes).

        Raises
        ------
        SsmctlError
            When pandas is not installed.
        """
        return _display.frame(self, "ltv")

    def _plain_repr(self) -> str:
        window = self.meta.get("window")
        where = f", tokens {window[0]}..{window[1] - 1}" if window else ""
        return (f"LTVSystem(batch={self.batch_size}, L={self.length}, channels={self.channel_shape}, "
                f"N={self.n_states}, m={self.n_inputs}, p={self.n_outputs}, output={self.output!r}{where})")

    @property
    def batch_size(self) -> int:
        """Number of input sequences (the first axis of ``lam``)."""
        return int(np.shape(self.lam)[0])

    @property
    def length(self) -> int:
        """Tokens L (the second axis of ``lam``)."""
        return int(np.shape(self.lam)[1])

    @property
    def channel_shape(self) -> tuple[int, ...]:
        """The channel axes between L and N, e.g. (d_inner,) for Mamba, (nheads, headdim) for Mamba-2."""
        return tuple(np.shape(self.lam)[2:-1])

    @property
    def n_states(self) -> int:
        """States per channel N (a real state in the real output mode with real λ, B̄)."""
        return int(np.shape(self.lam)[-1])

    @property
    def n_inputs(self) -> int:
        """Inputs per channel m (the last axis of ``B``)."""
        return int(np.shape(self.B)[-1])

    @property
    def n_outputs(self) -> int:
        """Outputs per channel p (the second-to-last axis of ``C``)."""
        return int(np.shape(self.C)[-2])

    def frozen(self, t: int) -> DiagonalLTI:
        """The frozen-time LTI system at position ``t`` of this system's own tokens (0 = its first; a window
        of a simulation starts at ``meta["window"][0]`` — ``SimulationResult.frozen`` takes absolute tokens):
        batch dims (batch, *channels).

        Parameters
        ----------
        t : int
            Token position, −L ≤ t < L (negative counts from the end).

        Returns
        -------
        DiagonalLTI
            λ (batch, *channels, N), B (batch, *channels, N, m), C (batch, *channels, p, N),
            D (*channels, p, m), in float64/complex128, with this system's output mode; ``meta["frozen_at"]``
            = t.

        Raises
        ------
        ShapeError
            When ``t`` is outside the sequence.
        """
        if not -self.length <= t < self.length:
            raise ShapeError(f"token index {t} outside the sequence of length {self.length}")
        # Slice before converting: only token t is copied to float64, not the whole sequence.
        return DiagonalLTI(
            _np(self.lam[:, t]), _np(self.B[:, t]), _np(self.C[:, t]), _np(self.D), output=self.output,
            meta={**self.meta, "frozen_at": int(t)},
        )

    def simulate_ref(self, u: Any) -> np.ndarray:
        """Plain sequential float64 recurrence (the reference twin of any fast scan).

        Parameters
        ----------
        u : array, shape (batch, L, *channels, m)

        Returns
        -------
        y : ndarray, shape (batch, L, *channels, p)
            float64 for the real output modes, complex128 for ``output="complex"``.
        """
        lam, B, C, D = (np.asarray(_np(x), dtype=np.complex128) for x in (self.lam, self.B, self.C, self.D))
        u = np.asarray(_np(u), dtype=np.float64)
        h = np.zeros(lam.shape[:1] + lam.shape[2:], dtype=np.complex128)
        ys = []
        for t in range(self.length):
            h = lam[:, t] * h + (B[:, t] @ u[:, t][..., None])[..., 0]
            y = (C[:, t] @ h[..., None])[..., 0]
            y = y if self.output == "complex" else (2.0 if self.output == "conj_pair" else 1.0) * y.real
            ys.append(y + (D @ u[:, t][..., None])[..., 0])
        y = np.stack(ys, axis=1)
        # Real output modes give a real signal (D is real there): float64, not complex128 with zero imag.
        return y if self.output == "complex" else y.real.copy()

    def output_ref(self) -> np.ndarray:
        """:meth:`simulate_ref` on the stored ``inputs``: the layer's SSM output y_t = C_t h_t + D u_t.

        Returns
        -------
        y : ndarray, float64 (complex128 for ``output="complex"``), shape (batch, L, *channels, p)
        """
        if self.inputs is None:
            raise ShapeError(
                "this LTVSystem has no stored inputs; pass the input sequence to simulate_ref(u) instead"
            )
        return self.simulate_ref(self.inputs)

    def abs_eigenvalues(self) -> np.ndarray:
        """|Ā_t| for every token, channel and state, float64, shape (batch, L, *channels, N)."""
        return np.abs(_np(self.lam))
