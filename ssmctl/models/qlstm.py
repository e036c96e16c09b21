"""qLSTM (quasi-LSTM) and its reversed-sigmoid variant, the DSF paper's recurrent mixer (eq. (23)).

The bare mixer of dsf-mqar (``zoology/mixers/lstm.py``, adapted from Hippogriff), for its input u
(batch, L, d_model); hidden = expansion_factor · d_model::

    [g, x] = input(u)                          (hidden each, the gate first; no bias)
    x = causal depthwise conv(x) + conv.bias   (kernel_size taps)
    [f, i, o] = gates(x) (+ bias)              (hidden each)
    Λ_i = σ(f_i)                               variant "standard"
    Λ_i = σ(−f_i)^relu(α)                      variant "reversed" (α one learnable scalar, init 1)
    h_i = Λ_i ⊙ h_{i−1} + σ(i_i) ⊙ x_i,  y_i = σ(o_i) ⊙ h_i
    out = output(gelu(g) ⊙ y)                  (no bias)

DSF form: channels = hidden, n = 1: Λ_i = diag Λ_i, B_i = diag σ(i_i), C_i = diag σ(o_i), D = 0, with the
convolution's output x as the core's input (the gates read x, not u). log Λ_i is computed directly
(−softplus(−f) or −relu(α)·softplus(f)), so Λ_i's that round to 0 or 1 in floating point stay exact.
The variant is not in the state dict (α is stored either way).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, unknown_name
from ..systems.ltv import LTVSystem
from . import _torch_ops as ops
from .base import Family, Layer, Model, register
from .dsf_block import BlockFactors

__all__ = [
    "FAMILY",
    "VARIANTS",
    "WEIGHT_INITS",
    "init",
    "layer_from_params",
    "config_from_params",
    "param_shapes",
    "ltv",
    "mixer_output",
    "dsf_block",
]

NAME = "qlstm"
VARIANTS: tuple[str, ...] = ("standard", "reversed")
#: "mixer": qLSTM's own init; "mqar": zoology's ``_init_weights`` re-init of every Linear.
WEIGHT_INITS: tuple[str, ...] = ("mixer", "mqar")

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "expansion_factor": 2,
    "kernel_size": 4,
    "variant": "reversed",  # dsf-mqar's default (reversed=True)
    "n_layers": 2,
    "weight_init": "mixer",
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # dsf-mqar qlstm(-rev)-config.py: 2 layers, every Linear re-initialized by zoology's _init_weights.
    "mqar": {"n_layers": 2, "weight_init": "mqar"},
}


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """State-dict keys of one qLSTM mixer and their shapes.

    Parameters
    ----------
    config : dict
        ``d_model``, ``hidden`` and ``kernel_size``.

    Returns
    -------
    dict of str to tuple of int
        ``alpha`` (), ``input.weight`` (2·hidden, d_model), ``conv.weight`` (hidden, 1, kernel_size),
        ``conv.bias`` (hidden,), ``gates.weight`` (3·hidden, hidden), ``gates.bias`` (3·hidden,),
        ``output.weight`` (d_model, hidden).
    """
    d, h, k = config["d_model"], config["hidden"], config["kernel_size"]
    return {
        "alpha": (),
        "input.weight": (2 * h, d),
        "conv.weight": (h, 1, k),
        "conv.bias": (h,),
        "gates.weight": (3 * h, h),
        "gates.bias": (3 * h,),
        "output.weight": (d, h),
    }


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes of one qLSTM read from ``input.weight`` and ``conv.weight``; ``known`` gives the variant.

    Parameters
    ----------
    params : dict
        Mixer tensors keyed as in :func:`param_shapes`.
    **known
        ``variant`` ("standard" or "reversed": the state dict cannot tell).

    Returns
    -------
    dict
        ``d_model``, ``hidden``, ``expansion_factor``, ``kernel_size``, ``variant``.

    Raises
    ------
    CheckpointError
        A tensor the sizes are read from is missing, or no ``variant``.
    ShapeError
        A tensor of the wrong rank.
    UnknownNameError
        An unknown variant.
    """
    two_h, d = ops.shape_of(params, "input.weight", NAME, 2)
    k = ops.shape_of(params, "conv.weight", NAME, 3)[-1]
    config = {"d_model": d, "hidden": two_h // 2, "expansion_factor": (two_h // 2) / d, "kernel_size": k}
    config.update({key: v for key, v in known.items() if v is not None})
    variant = config.get("variant")
    if variant is None:
        raise CheckpointError(
            f"{NAME}: the state dict does not say the variant (alpha is stored either way): "
            f"pass variant, one of {', '.join(VARIANTS)}"
        )
    if variant not in VARIANTS:
        raise unknown_name(f"{NAME} variant", variant, VARIANTS)
    return config


_CONFIG_KEYS = ("d_model", "hidden", "kernel_size", "variant")


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """A qLSTM :class:`Layer` from one mixer's tensors (dsf-mqar's state-dict names).

    Parameters
    ----------
    params : dict[str, tensor or array]
        ``alpha``, ``input.weight``, ``conv.weight``, ``conv.bias``, ``gates.weight``, ``gates.bias``,
        ``output.weight``. Other keys are ignored.
    config : dict, optional
        ``variant`` (required: the state dict cannot tell) and optionally sizes to check.
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        float32 torch tensors; config ``d_model``, ``hidden``, ``kernel_size``, ``variant``.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError, UnknownNameError
        A missing key or variant; a shape that differs; NaN/Inf in a tensor; an unknown variant.
    """
    config = config_from_params(params, **{k: v for k, v in (config or {}).items() if k in _CONFIG_KEYS})
    tensors = ops.validate_params(NAME, index, params, param_shapes(config))
    layer_config = {
        **{k: config[k] for k in _CONFIG_KEYS},
        "input": "the mixer's input (after the block's norm)",
        "conv_layout": "torch Conv1d (hidden, 1, width); weight[..., -1] multiplies the current token",
    }
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def _pieces(layer: Layer, u: Any) -> tuple[LTVSystem, torch.Tensor, torch.Tensor]:
    """The DSF core (float64), the output gate g (batch, L, hidden) and the checked float64 input."""
    cfg = layer.config
    p = {k: v.double() for k, v in layer.params.items()}
    x_in = ops.layer_input(NAME, layer.index, u, cfg["d_model"]).double()
    with torch.no_grad():
        g, x = F.linear(x_in, p["input.weight"]).chunk(2, dim=-1)
        x = ops.causal_depthwise_conv(x, p["conv.weight"], p["conv.bias"])
        f, i, o = F.linear(x, p["gates.weight"], p["gates.bias"]).chunk(3, dim=-1)
        if cfg["variant"] == "reversed":
            log_lam = -F.relu(p["alpha"]) * F.softplus(f)  # log σ(−f)^relu(α)
        else:
            log_lam = -F.softplus(-f)  # log σ(f)
        lam = torch.exp(log_lam)
        system = LTVSystem(
            lam=lam[..., None], B=torch.sigmoid(i)[..., None, None], C=torch.sigmoid(o)[..., None, None],
            D=torch.zeros((), dtype=x.dtype).expand(cfg["hidden"], 1, 1), output="real", inputs=x[..., None],
            log_lam=log_lam[..., None],
            meta={"family": NAME, "layer": layer.index, "variant": cfg["variant"], "channels": "hidden"},
        )
    return system, g, x_in


def ltv(layer: Layer, u: Any) -> LTVSystem:
    """The DSF core of a qLSTM layer for the mixer input ``u``.

    Parameters
    ----------
    layer : Layer
        A qLSTM layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    LTVSystem
        Channels (hidden,), N = 1: lam (batch, L, hidden, 1), B = σ(i) and C = σ(o) (batch, L, hidden, 1, 1),
        D = 0, inputs = the convolution's output x (batch, L, hidden, 1), ``log_lam`` exact; float64.

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    return _pieces(layer, u)[0]


def mixer_output(layer: Layer, u: Any) -> np.ndarray:
    """output(gelu(g) ⊙ y), y from the DSF core's sequential float64 recurrence, shape (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        A qLSTM layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    ndarray, float64, shape (batch, L, d_model)

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    system, g, _ = _pieces(layer, u)
    y = torch.from_numpy(system.output_ref()[..., 0])
    return F.linear(F.gelu(g) * y, layer.params["output.weight"].double()).numpy()


def dsf_block(layer: Layer, u: Any) -> BlockFactors:
    """The qLSTM as factors around its DSF core: input (x half) → conv → core → gelu(g) → output.

    Parameters
    ----------
    layer : Layer
        A qLSTM layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    BlockFactors
        Core channels = hidden; no activation after the conv; gate gelu(g).

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    system, g, x_in = _pieces(layer, u)
    p, h = layer.params, layer.config["hidden"]
    return BlockFactors(
        inputs=x_in, w_in=p["input.weight"][h:].double(), b_in=None, core=system,
        conv_w=p["conv.weight"].double(), conv_b=p["conv.bias"].double(), gate=F.gelu(g),
        w_out=p["output.weight"].double(), b_out=None,
    )


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d, h, k = config["d_model"], config["hidden"], config["kernel_size"]
    mqar = config["weight_init"] == "mqar"

    def normal(shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen) * std

    params = {
        # qLSTM: N(0, 1/√fan_in) projections; zoology's re-init: N(0, 0.02) for every Linear, zero biases
        # (none of qLSTM's Linears is named out_proj, so none gets the smaller residual std).
        "input.weight": normal((2 * h, d), 0.02 if mqar else d**-0.5),
        # nn.Conv1d defaults (fan_in = kernel_size for a depthwise conv); zoology leaves convs alone.
        "conv.weight": ops.torch_default_uniform((h, 1, k), k, gen),
        "conv.bias": ops.torch_default_uniform((h,), k, gen),
        "gates.weight": normal((3 * h, h), 0.02 if mqar else h**-0.5),
        "gates.bias": torch.zeros(3 * h) if mqar else ops.torch_default_uniform((3 * h,), h, gen),
        "output.weight": normal((d, h), 0.02 if mqar else h**-0.5),
        "alpha": torch.tensor(1.0),
    }
    return layer_from_params(params, {key: config[key] for key in _CONFIG_KEYS}, index)


def init(**hyper: Any) -> Model:
    """A freshly initialized qLSTM model (bare mixers, one per layer).

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 64
    expansion_factor : int or float, default 2 (hidden = expansion_factor · d_model)
    kernel_size : int, default 4
    variant : {"standard", "reversed"}, default "reversed"
    n_layers : int, default 2
    weight_init : {"mixer", "mqar"}, default "mixer"
    seed : int
    preset : {"mqar"}, optional

    Returns
    -------
    Model
        float32 torch parameters, ``source == "init"``.

    Raises
    ------
    UnknownNameError
        An unknown hyperparameter, preset, variant or weight_init.
    SsmctlError
        A size that is not a positive integer.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    ops.check_positive_int(
        NAME, d_model=config["d_model"], kernel_size=config["kernel_size"], n_layers=config["n_layers"]
    )
    config["hidden"] = ops.expanded_width(NAME, config["expansion_factor"], config["d_model"])
    if config["variant"] not in VARIANTS:
        raise unknown_name(f"{NAME} variant", config["variant"], VARIANTS)
    if config["weight_init"] not in WEIGHT_INITS:
        raise unknown_name(f"{NAME} weight_init", config["weight_init"], WEIGHT_INITS)
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="Sieber et al. 2024 (DSF): qLSTM and its reversed-sigmoid transition (eq. (23))",
        kind="LTV",
        parametrization="LTV: Λ_i = σ(W_f x_i + b_f) or σ(−(W_f x_i + b_f))^relu(α); B_i = σ(W_i x_i + b_i), "
        "C_i = σ(W_o x_i + b_o), D = 0",
        discretization="none (gated recurrence)",
        structure="diagonal, one state per hidden channel (n = 1)",
        implementation="linear scan (accelerated_scan in the reference)",
        scaffolding="input projection (×2: gate and x) → causal depthwise conv → gated scan → gelu(gate) → "
        "output projection",
        defaults=DEFAULTS,
        init=init,
        notes="The paper's qLSTM reads its gates from u; the code (followed here) reads them from the conv "
        "output x, with biases, and has no W_u in the recurrence. The variant is not in the state dict.",
        variants=VARIANTS,
        presets=PRESETS,
        ltv=ltv,
        layer_from_params=layer_from_params,
        config_from_params=config_from_params,
        dsf_block=dsf_block,
    )
)
