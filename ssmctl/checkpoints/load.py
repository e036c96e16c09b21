"""``ssmctl.load(path)``: a checkpoint on disk → the same :class:`~ssmctl.models.base.Model` as ``ssmctl.init``.

Loading runs in two stages. :func:`scan` reads the file headers only (names, shapes, dtypes), detects the
layout (:mod:`ssmctl.checkpoints.layouts`), infers the family's config from the tensor shapes and ``config.json``, and
checks every block's tensors against the shapes that config implies — a missing or mis-shaped tensor fails
here, naming the key, before anything large is read. :meth:`Plan.layer` then reads one block, upcasts half
precision to float32, and builds the layer with the family's ``layer_from_params``; :func:`load` does that for
every block. :meth:`Plan.spectral_layer` reads only the few tensors the input-free eigenvalues need (what
``ssmctl inspect`` uses, so the large projections of a language model are never read).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import (
    CheckpointError,
    MissingHintError,
    NonFiniteError,
    ShapeError,
    UnsupportedSystemError,
)
from .reader import Checkpoint, plain, read_checkpoint
from .hints import check_hints, recorded_or_hint
from .layouts import Block, Detection, Layout, detect, hf_known
from ..models.base import Layer, Model, get_family

__all__ = ["load", "scan", "Plan", "SpectralOnlyLayer", "nonfinite_tensors", "lightning_known", "SPECTRAL_KEYS"]

#: Family parameters the input-free (bias-only) eigenvalues of an LTV layer need.
SPECTRAL_KEYS: dict[str, tuple[str, ...]] = {
    "mamba": ("mixer.A_log", "mixer.dt_proj.bias"),
    "mamba2": ("mixer.A_log", "mixer.dt_bias"),
    "rglru": ("temporal_block.rg_lru.recurrent_param", "temporal_block.rg_lru.recurrent_gate_bias"),
}
# The same for layouts whose tensors are transformed onto the family's names (source names, renamed).
_SPECTRAL_SOURCE: dict[str, tuple[str, ...]] = {
    "ssm-benchmark-hawk": ("hawk.forget_base", "hawk.gates.bias", "hawk.alpha_log_scale"),
    "tli-ssd-lti": ("mixer.A", "mixer.beta"),
}
_HALF = ("float16", "bfloat16")


class _Shape:
    """Stands in for a tensor where only its shape is needed (``np.shape`` reads ``.shape``)."""

    __slots__ = ("shape",)

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape = tuple(int(s) for s in shape)


class SpectralOnlyLayer(Layer):
    """A layer whose stored block lacks parts of its family's reference block (e.g. SSD without the gate).

    Its parameters and input-free eigenvalues are available; ``ltv(u)`` and ``frozen(u, t)`` are not, since
    the family's per-token system would model a block that was never trained.
    """

    def ltv(self, u: Any) -> Any:
        """Refused: this layer holds only part of its block.

        Parameters
        ----------
        u : array_like, shape (batch, L, d_model)
            Ignored.

        Returns
        -------
        None
            Never returns.

        Raises
        ------
        UnsupportedSystemError
            Always; the message names the layout and what its block lacks.
        """
        raise UnsupportedSystemError(
            f"{self.family} layer {self.index} from layout {self.config.get('layout')!r}: "
            f"{self.config.get('layout_notes') or 'the stored block is incomplete'}; ltv(u) is not available"
        )

    def frozen(self, u: Any, t: int) -> Any:
        """Refused, as :meth:`ltv`.

        Parameters
        ----------
        u : array_like, shape (batch, L, d_model)
            Ignored.
        t : int
            Ignored.

        Returns
        -------
        None
            Never returns.

        Raises
        ------
        UnsupportedSystemError
            Always.
        """
        return self.ltv(u)


def _refuse_nonfinite(block: Block, params: Mapping[str, Any]) -> None:
    import torch

    for name, t in params.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int(t.numel() - int(torch.isfinite(t).sum()))
            raise NonFiniteError(
                f"{block.layout.family} layer {block.index}: tensor {block.keys.get(name, name)!r} has {bad} NaN/Inf entries"
            )


def _family_module(name: str) -> Any:
    get_family(name)  # a clear error when the family is not registered
    return importlib.import_module(f"ssmctl.models.{name}")


def _upcast(t: Any) -> Any:
    return t.float() if str(t.dtype).removeprefix("torch.") in _HALF else t


@dataclass
class Plan:
    """A checkpoint whose layout, config and shapes are known, before its tensors are read.

    Attributes
    ----------
    checkpoint : Checkpoint
        Lazily read tensors (:class:`~ssmctl.checkpoints.reader.TensorStore`) and ``config.json``.
    detection : Detection
        SSM blocks (index, prefix, layout, keys) and the other sub-layers of hybrids.
    family : str or None
        The SSM family (None for a checkpoint of attention layers only).
    config : dict
        The family's config, as its ``config_from_params`` infers it (+ ``config.json`` settings), and
        ``n_layers`` (number of SSM layers).
    notes : list of str
        What the family's model of these blocks leaves out.
    """

    checkpoint: Checkpoint
    detection: Detection
    family: str | None
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> list[Block]:
        """The SSM blocks found, sorted by layer index (``detection.blocks``)."""
        return self.detection.blocks

    @property
    def source(self) -> str:
        """The checkpoint's path as given to :func:`scan`."""
        return self.checkpoint.path

    def _read(self, block: Block, names: tuple[str, ...] | None = None) -> dict[str, Any]:
        store = self.checkpoint.tensors
        wanted = block.keys if names is None else {n: block.keys[n] for n in names if n in block.keys}
        params = {name: _upcast(store[key]) for name, key in wanted.items()}
        if block.layout.transform is not None:
            params = block.layout.transform(params, self.config)
        return params

    def _layer_config(self, block: Block, params: Mapping[str, Any]) -> dict[str, Any]:
        config = dict(self.config)
        scale = params.get("hawk.alpha_log_scale")
        if scale is not None:
            config["c"] = float(-scale.reshape(-1)[0])
        return config

    def layer(self, block: Block) -> Layer:
        """Read one block and build its layer (float32; half precision upcast).

        Parameters
        ----------
        block : Block
            One of :attr:`blocks`.

        Returns
        -------
        Layer
            Built by the family's ``layer_from_params``; a :class:`SpectralOnlyLayer` for blocks whose layout
            is incomplete.

        Raises
        ------
        NonFiniteError
            NaN/Inf in a tensor (the key prefix and file are named).
        CheckpointError, ShapeError
            What the family's ``layer_from_params`` raises; a tensor that cannot be read.
        UnsupportedSystemError
            A family that cannot be built from tensors.
        """
        params = self._read(block)
        config = self._layer_config(block, params)
        params.pop("hawk.alpha_log_scale", None)
        if not block.layout.complete:
            _refuse_nonfinite(block, params)  # what the families' layer_from_params does for complete blocks
            return self._spectral_only(block, params, config)
        build = get_family(block.layout.family).layer_from_params
        if build is None:
            raise UnsupportedSystemError(f"family {block.layout.family!r} cannot be built from checkpoint tensors")
        try:
            return build(params, config, block.index)
        except NonFiniteError as exc:
            raise NonFiniteError(f"{exc} (checkpoint key prefix {block.root!r} in {self.source})") from None

    def spectral_layer(self, block: Block) -> Layer:
        """A layer holding only what the input-free eigenvalues need (LTV families; others: :meth:`layer`).

        Parameters
        ----------
        block : Block
            One of :attr:`blocks`.

        Returns
        -------
        Layer
            A :class:`SpectralOnlyLayer` with the tensors of :data:`SPECTRAL_KEYS` for LTV families; what
            :meth:`layer` returns for the others.

        Raises
        ------
        CheckpointError
            A tensor that cannot be read; for LTI families also what :meth:`layer` raises.
        """
        names = _SPECTRAL_SOURCE.get(block.layout.name) or SPECTRAL_KEYS.get(block.layout.family)
        if names is None:
            return self.layer(block)
        params = self._read(block, names)
        config = self._layer_config(block, params)
        params.pop("hawk.alpha_log_scale", None)
        return self._spectral_only(block, params, config)

    def _spectral_only(self, block: Block, params: dict[str, Any], config: dict[str, Any]) -> Layer:
        cfg = dict(config, layout=block.layout.name, layout_notes=block.layout.notes)
        return SpectralOnlyLayer(family=block.layout.family, index=block.index, params=params, config=cfg)

    def init_hyper(self) -> dict[str, Any]:
        """``ssmctl.init`` keywords for a fresh model of this family and sizes, with this producer's init."""
        if self.family is None:
            raise UnsupportedSystemError("a checkpoint without SSM layers has no family to initialize")
        defaults = get_family(self.family).defaults
        hyper = {k: v for k, v in self.config.items() if k in defaults and k != "n_layers"}
        if "expand" in defaults and "d_inner" in self.config and "d_model" in self.config:
            expand = self.config["d_inner"] / self.config["d_model"]
            hyper["expand"] = int(expand) if float(expand).is_integer() else expand
        if "lru_width" in defaults and "lru_width" in self.config:
            hyper["lru_width"] = self.config["lru_width"]
        hyper.update(self.blocks[0].layout.init if self.blocks else {})
        if self.family == "s4d" and "variant" not in hyper:
            hyper["variant"] = _guess_s4d_variant(self.layer(self.blocks[0]))
        hyper["n_layers"] = len(self.blocks)
        return hyper


def _guess_s4d_variant(layer: Layer) -> str:
    """The S4D init variant whose A is nearest to channel 0's A (S4D inits differ only in A)."""
    import numpy as np

    from ..models import s4d

    if layer.config.get("is_real"):
        return "real"
    A = s4d.continuous(layer)[0][0]
    A = A.real + 1j * np.abs(A.imag)  # the two sign conventions of Im A give the same layer
    N = int(layer.config["d_state"])
    best, best_d = "lin", np.inf
    for variant in ("lin", "inv", "legs", "real"):
        re, im = s4d.init_A(variant, N)
        d = float(np.median(np.abs(A - (re + 1j * im)) / np.maximum(np.abs(re + 1j * im), 1e-12)))
        if d < best_d:
            best, best_d = variant, d
    return best


#: Training-config names of the state-spaces/s4 settings the tensors cannot tell (→ family config names).
_LIGHTNING_SETTINGS = {
    "dt_transform": "dt_transform",
    "real_transform": "real_transform",
    "imag_transform": "imag_transform",
    "disc": "discretization",
    "is_real": "is_real",
}


def lightning_known(extras: Mapping[str, Any]) -> dict[str, Any]:
    """Settings from a Lightning checkpoint's ``hyper_parameters`` (read as inert data, never run).

    The layer settings of state-spaces/s4 live under ``model.layer`` of the Hydra config; the first
    occurrence of each name found in that subtree (else anywhere) is used.

    Parameters
    ----------
    extras : mapping
        The checkpoint's non-tensor entries (``Checkpoint.extras``); only ``hyper_parameters`` is read.

    Returns
    -------
    dict
        Family config names (``dt_transform``, ``real_transform``, ``imag_transform``, ``discretization``,
        ``is_real``) → the values found; empty without ``hyper_parameters``. None values are skipped.
    """
    hp = extras.get("hyper_parameters")
    if hp is None:
        return {}
    tree = plain(hp)
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in _LIGHTNING_SETTINGS and not isinstance(v, (dict, list)) and v is not None:
                    found.setdefault(_LIGHTNING_SETTINGS[k], v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    model = tree.get("model") if isinstance(tree, dict) else None
    if isinstance(model, dict) and isinstance(model.get("layer"), dict):
        walk(model["layer"])  # first, so the layer's own settings win
    walk(tree)
    return found


def _family_config(layout: Layout, shapes: dict[str, tuple[int, ...]], known: dict[str, Any]) -> dict[str, Any]:
    if layout.infer is not None:
        return layout.infer(shapes, known)
    infer = get_family(layout.family).config_from_params or _family_module(layout.family).config_from_params
    return infer({k: _Shape(s) for k, s in shapes.items()}, **known)


def _expected_shapes(layout: Layout, config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    if layout.shapes is not None:
        return layout.shapes(config)
    return dict(_family_module(layout.family).param_shapes(config))


def _check_block(block: Block, expected: Mapping[str, tuple[int, ...]], shape_of: Any) -> None:
    """Every expected tensor present with its shape; errors name the full checkpoint key."""
    for name, shape in expected.items():
        key = block.keys.get(name)
        if key is None:
            src = _source_key(block, name)
            raise CheckpointError(
                f"missing tensor {src!r} ({block.layout.family} layer {block.index}, layout {block.layout.name}); "
                f"expected shape {tuple(shape)}"
            )
        found = tuple(shape_of(key))
        if found != tuple(shape):
            raise ShapeError(
                f"tensor {key!r} has shape {found}, expected {tuple(shape)} "
                f"({block.layout.family} layer {block.index}, layout {block.layout.name})"
            )


def _source_key(block: Block, family_name: str) -> str:
    for src, dst in block.layout.renames:
        if family_name == dst or (dst.endswith(".") and family_name.startswith(dst)):
            return block.root + src + family_name[len(dst):]
    return block.root + family_name


def scan(path: str | os.PathLike[str], **hints: Any) -> Plan:
    """Read headers, detect the layout, infer and check the config; read no tensor data.

    Parameters
    ----------
    path : str or path-like
        Checkpoint file or folder, as for :func:`load`.
    **hints
        Settings the checkpoint does not record, as for :func:`load`.

    Returns
    -------
    Plan
        Layout, family, config and the lazily read tensors; ``family`` None and ``config == {"n_layers": 0}``
        when no SSM block is found.

    Raises
    ------
    CheckpointError
        Missing path, unreadable/corrupt/unsafe file, unknown layout (the message lists a sample of the
        keys and the known layouts), a missing tensor, a hint contradicting what the checkpoint records.
    MissingHintError
        A setting the layout needs (``Layout.hints``) that the checkpoint does not record and no hint gives.
    UnknownNameError
        An unknown hint, or a hint value outside its choices.
    ShapeError
        A tensor whose shape differs from what the config implies (key, expected and found shape named).
    """
    hints = check_hints(hints)
    ckpt = read_checkpoint(path, lazy=True)
    store = ckpt.tensors
    shape_of = getattr(store, "shape", lambda k: tuple(store[k].shape))
    detection = detect(list(store), shape_of, ckpt.config)
    if not detection.blocks:
        return Plan(checkpoint=ckpt, detection=detection, family=None, config={"n_layers": 0})
    first = detection.blocks[0]
    layout = first.layout
    shapes = {name: tuple(shape_of(key)) for name, key in first.keys.items()}
    known = {**lightning_known(ckpt.extras), **hf_known(layout.family, ckpt.config)}
    needing: dict[str, Layout] = {}
    for block in detection.blocks:
        for name in block.layout.hints:
            needing.setdefault(name, block.layout)
    for name, lay in needing.items():  # settings the numbers depend on: recorded, or hinted, never a default
        why = f"{ckpt.path}: layout {lay.name} ({lay.source}) does not record {name}"
        known[name] = recorded_or_hint(known, hints, name, why, lay.hint_choices.get(name))
    try:
        config = _family_config(layout, shapes, known)
    except MissingHintError as exc:
        raise MissingHintError(f"{ckpt.path}: layout {layout.name} ({layout.source}): {exc}") from None
    except (KeyError, CheckpointError, ShapeError) as exc:
        detail = exc.args[0] if exc.args else exc
        raise CheckpointError(
            f"{ckpt.path}: cannot infer the {layout.family} config of layer {first.index} "
            f"(layout {layout.name}, keys under {first.root!r}): {detail}"
        ) from None
    # The config comes from the first block (and config.json), so it fixes every tensor of every block,
    # optional biases included: a block that differs is an error, not a variant.
    expected: dict[str, dict[str, tuple[int, ...]]] = {}
    for block in detection.blocks:
        if block.layout.name not in expected:
            expected[block.layout.name] = _expected_shapes(block.layout, config)
        _check_block(block, expected[block.layout.name], shape_of)
    config = dict(config, n_layers=len(detection.blocks))
    notes = sorted({b.layout.notes for b in detection.blocks if b.layout.notes})
    return Plan(checkpoint=ckpt, detection=detection, family=detection.family, config=config, notes=notes)


def nonfinite_tensors(plan: Plan) -> list[dict[str, Any]]:
    """Every tensor of the checkpoint holding NaN or Inf, read one at a time (nothing is kept).

    Parameters
    ----------
    plan : Plan
        What :func:`scan` returned; every floating or complex tensor of its checkpoint is checked.

    Returns
    -------
    list of dict
        ``{"tensor": key, "count": n, "layer": index or None}`` in the store's key order; ``layer`` is the
        layer number of the SSM block or other sub-layer holding the key, None for tensors outside the layers.
    """
    import torch

    store = plan.checkpoint.tensors
    layer_of = {key: b.index for b in plan.blocks for key in b.keys.values()}
    for other in plan.detection.other_layers:
        layer_of.update({k: other.index for k in other.keys})
    found = []
    for key in store:
        t = store[key]
        if not (t.is_floating_point() or t.is_complex()):
            continue
        # One pass without a tensor-sized temporary: a sum is finite iff every entry is (unless it
        # overflows, which the exact count below then settles).
        total = t.sum(dtype=torch.float32) if t.dtype in (torch.float16, torch.bfloat16) else t.sum()
        if not bool(torch.isfinite(total)):
            bad = int(t.numel() - int(torch.isfinite(t).sum()))
            if bad:
                found.append({"tensor": key, "count": bad, "layer": layer_of.get(key)})
        del t
    return found


def load(path: str | os.PathLike[str], **hints: Any) -> Model:
    """Load a checkpoint from disk as a :class:`~ssmctl.models.base.Model` (no network access, ever).

    Parameters
    ----------
    path : str or path-like
        A Hugging Face folder (config.json + model.safetensors / sharded safetensors with an index /
        pytorch_model.bin), a mamba_ssm folder, or a state-dict file (.safetensors, .pt, .pth, .bin, Lightning
        .ckpt). See :mod:`ssmctl.checkpoints.layouts` for the layouts recognised.
    **hints
        Settings a checkpoint may not record but its numbers depend on (:data:`ssmctl.checkpoints.hints.HINTS`),
        e.g. ``dt_transform="exp"`` for a state-spaces/s4 S4/S4D state dict saved without its training config.
        Used only where the checkpoint does not record the setting; a hint contradicting it is an error.
        The DSF paper's mixers take ``variant`` (attention: "softmax" or "linear"; qLSTM: "standard" or
        "reversed"), ``num_heads`` (softmax/linear attention) and ``eta`` (ssm-benchmark's normalized attention:
        "exp", "softplus" or "sigmoid").

    Returns
    -------
    Model
        ``family``, ``config`` (inferred; ``n_layers`` counts SSM layers), ``layers`` (one per SSM layer,
        ``index`` = the checkpoint's layer number), ``source`` = the path, and ``extras``: ``embedding``
        (vocab × d_model tensor of language models), ``other_layers`` (non-SSM sub-layers of hybrids:
        index, name, kind, sizes), ``layouts``, ``notes``, ``init`` (keywords of ``ssmctl.init`` for a fresh
        model of the same family and sizes), ``files``, and ``embedding_scale`` where the producer scales
        its embeddings before the first layer (RecurrentGemma: √d_model rounded to bfloat16, as transformers).

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError
        See :func:`scan`; NaN/Inf in a layer's tensors (the key is named).
    MissingHintError
        The checkpoint does not record a setting its layers need and no hint gives it (the message names the
        setting, its choices, the keyword and the CLI flag).
    UnknownNameError
        An unknown hint (the known ones are listed) or a value outside its choices.
    """
    plan = scan(path, **hints)
    layers = [plan.layer(block) for block in plan.blocks]
    extras: dict[str, Any] = {
        "other_layers": [o.as_dict() for o in plan.detection.other_layers],
        "layouts": plan.detection.layouts,
        "notes": plan.notes,
        "files": plan.checkpoint.files,
    }
    if plan.family is not None:
        extras["init"] = plan.init_hyper()
    if plan.detection.embedding_key is not None:
        extras["embedding"] = _upcast(plan.checkpoint.tensors[plan.detection.embedding_key])
        scales = [b.layout.embedding_scale for b in plan.blocks if b.layout.embedding_scale is not None]
        if scales:
            extras["embedding_scale"] = scales[0](int(extras["embedding"].shape[1]))
    return Model(
        family=plan.family or "attention",
        config=plan.config,
        layers=layers,
        source=plan.source,
        extras=extras,
    )
