"""RG-LRU (Griffin / Hawk / RecurrentGemma): real gated diagonal recurrence, one state per channel.

Temporal block of a residual block (recurrentgemma ``RecurrentBlock``, transformers
``RecurrentGemmaRecurrentBlock``), for the residual-stream input u (batch, L, d_model)::

    û = RMSNorm(u) · (1 + temporal_pre_norm.weight)
    y_branch = GELU_tanh(linear_y(û))                         (lru_width)
    x_t = causal depthwise conv1d(linear_x(û))                the SSM's input (lru_width channels)
    i_t = σ(BlockDiag_in(x_t)),  r_t = σ(BlockDiag_a(x_t))    (num_heads diagonal blocks)
    log a_t = −c · r_t · softplus(recurrent_param),  c = 8    (a = σ(−recurrent_param) = exp(−softplus(·)))
    h_t = a_t h_{t−1} + √(1 − a_t²) · i_t · x_t
    out = u + linear_out(h_t ⊙ y_branch)

As an :class:`~ssmctl.systems.ltv.LTVSystem`: channels = lru_width, N = 1, lam (batch, L, w, 1) = a_t,
B (batch, L, w, 1, 1) = √(1 − a_t²)·i_t, C = 1 (batch, L, w, 1, 1), D = 0 (w, 1, 1),
dt (batch, L, w) = c·r_t, inputs (batch, L, w, 1) = x_t; real, output="real". With A = log a = −softplus(p)
(:func:`continuous_A`) this is Ā_t = exp(Δ_t A) with Δ_t = c·r_t ∈ (0, c).

The reference resets the state at segment position 0: there the input multiplier is 1 instead of
√(1 − a_0²) (and a_0 is zeroed, which does not matter since h_{−1} = 0). ``ltv(layer, u, reset=True)`` (the
default) reproduces that: B̄_0 = i_0 while λ_0 keeps the gate's a_0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError, SsmctlError, unknown_name
from ..systems.ltv import LTVSystem
from . import _torch_ops as ops
from .base import Family, Layer, Model, register
from .dsf_block import BlockFactors

__all__ = [
    "FAMILY",
    "A_INITS",
    "init",
    "init_recurrent_param",
    "layer_from_params",
    "config_from_params",
    "param_shapes",
    "ltv",
    "block_output_ref",
    "dsf_block",
    "bias_eigenvalues",
    "recurrence_base",
    "continuous_A",
]

NAME = "rglru"
C_CONSTANT = 8.0

#: Conventions for initializing a = σ(−recurrent_param):
#: "recurrentgemma" (= transformers): a² ~ U[0.9², 0.999²] (a ∈ [0.9, 0.999]);
#: "uniform" (ssm-benchmark): deterministic grid with a^c spanning [0.900, 0.999];
#: "exp" (ssm-benchmark): recurrent_param = linspace(−4.323, −9).
A_INITS: tuple[str, ...] = ("recurrentgemma", "uniform", "exp")
_A_INIT_ALIASES = {"transformers": "recurrentgemma"}

DEFAULTS: dict[str, Any] = {
    "d_model": 256,
    "n_layers": 6,
    "lru_width": None,
    "num_heads": 4,
    "d_conv": 4,
    "a_init": "recurrentgemma",
    "min_rad": 0.9,
    "max_rad": 0.999,
    "c": C_CONSTANT,
    "gate_variance_scale": 1.0,
    "conv_variance_scale": 0.01,
    "eps": 1e-6,
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "recurrentgemma": {"a_init": "recurrentgemma", "gate_variance_scale": 1.0},
    # transformers' RecurrentGemma init: same a, gates with config.w_init_variance_scale = 0.01.
    "transformers": {"a_init": "recurrentgemma", "gate_variance_scale": 0.01},
    # jsie7/ssm-benchmark Hawk LRA configs (hidden 256, expansion 1, 6 blocks, dense gates).
    "ssm-benchmark": {"a_init": "uniform", "d_model": 256, "n_layers": 6, "num_heads": 1},
    "ssm-benchmark-exp": {"a_init": "exp", "d_model": 256, "n_layers": 6, "num_heads": 1},
}

_PREFIX = "temporal_block."
_LRU = "temporal_block.rg_lru."
_CONFIG_KEYS = ("d_model", "lru_width", "num_heads", "d_conv", "c", "eps", "convention", "pre_norm")
#: "recurrentgemma" (= transformers): tanh-GELU on the y branch, input multiplier √(1 − a²), state reset at
#: token 0; "ssm-benchmark" (jsie7/ssm-benchmark RGLRU): erf-GELU, √(1 − a² + 1e-6), no reset.
CONVENTIONS: tuple[str, ...] = ("recurrentgemma", "ssm-benchmark")


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Keys of one recurrent residual block (relative to ``model.layers.{i}.``) and their shapes.

    The channel-mixing half (``channel_pre_norm``, ``mlp_block``) is not part of the temporal system.

    Parameters
    ----------
    config : dict
        ``d_model`` (d), ``lru_width`` (w), ``num_heads`` (H, dividing w), ``d_conv`` (k).

    Returns
    -------
    dict of str to tuple of int
        E.g. ``temporal_block.linear_x.weight`` (w, d), ``temporal_block.conv_1d.weight`` (w, 1, k),
        ``temporal_block.rg_lru.input_gate_weight`` (H, w/H, w/H), ``temporal_block.rg_lru.recurrent_param`` (w,).
    """
    d, w, H, k = config["d_model"], config["lru_width"], config["num_heads"], config["d_conv"]
    bw = w // H
    shapes = {
        "temporal_pre_norm.weight": (d,),
        _PREFIX + "linear_x.weight": (w, d),
        _PREFIX + "linear_x.bias": (w,),
        _PREFIX + "linear_y.weight": (w, d),
        _PREFIX + "linear_y.bias": (w,),
        _PREFIX + "linear_out.weight": (d, w),
        _PREFIX + "linear_out.bias": (d,),
        _PREFIX + "conv_1d.weight": (w, 1, k),
        _PREFIX + "conv_1d.bias": (w,),
        _LRU + "recurrent_param": (w,),
        _LRU + "input_gate_weight": (H, bw, bw),
        _LRU + "input_gate_bias": (H, bw),
        _LRU + "recurrent_gate_weight": (H, bw, bw),
        _LRU + "recurrent_gate_bias": (H, bw),
    }
    if not config.get("pre_norm", True):  # a bare mixer: its input is already normed
        del shapes["temporal_pre_norm.weight"]
    return shapes


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes of one RG-LRU block from its tensor shapes; ``known`` settings override.

    d_model and lru_width from ``linear_x.weight``, num_heads from ``input_gate_weight``, the conv width
    from ``conv_1d.weight``. c = 8 and eps = 1e-6 are the reference constants.

    Parameters
    ----------
    params : dict
        Block tensors (or anything with ``.shape``) keyed as in :func:`param_shapes`.
    **known
        Settings a ``config.json`` states (sizes, ``c``, ``eps``); they override what the shapes say.

    Returns
    -------
    dict
        ``d_model``, ``lru_width``, ``num_heads``, ``d_conv``, ``c``, ``eps`` (and any other ``known`` entries).

    Raises
    ------
    CheckpointError
        When ``linear_x.weight``, ``input_gate_weight`` or ``conv_1d.weight`` is missing.
    ShapeError
        A tensor of the wrong rank, or lru_width not divisible by num_heads.
    SsmctlError
        lru_width or num_heads not a positive integer.
    """
    w, d = ops.shape_of(params, _PREFIX + "linear_x.weight", NAME, 2)
    H = ops.shape_of(params, _LRU + "input_gate_weight", NAME, 3)[0]
    k = ops.shape_of(params, _PREFIX + "conv_1d.weight", NAME, 3)[-1]
    config = {"d_model": d, "lru_width": w, "num_heads": H, "d_conv": k, "c": C_CONSTANT, "eps": DEFAULTS["eps"]}
    config.update(known)
    _check_heads(config["lru_width"], config["num_heads"])
    return config


def _check_heads(lru_width: int, num_heads: int) -> None:
    ops.check_positive_int(NAME, lru_width=lru_width, num_heads=num_heads)
    if lru_width % num_heads:
        raise ShapeError(f"{NAME}: lru_width = {lru_width} is not divisible by num_heads = {num_heads}")


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """An RG-LRU :class:`Layer` from one recurrent block's tensors (transformers RecurrentGemma names).

    Parameters
    ----------
    params : dict[str, tensor or array]
        Keys relative to the decoder layer: ``temporal_pre_norm.weight``,
        ``temporal_block.{linear_x,linear_y,linear_out}.{weight,bias}``, ``temporal_block.conv_1d.{weight,bias}``
        (torch layout (lru_width, 1, width)), ``temporal_block.rg_lru.{recurrent_param, input_gate_weight,
        input_gate_bias, recurrent_gate_weight, recurrent_gate_bias}``. Other keys (the MLP half) are ignored.
    config : dict, optional
        ``c`` (default 8), ``eps`` (default 1e-6), and optionally the sizes (``d_model``, ``lru_width``,
        ``num_heads``, ``d_conv``) every tensor is checked against.
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        The expected tensors as float32 torch tensors (other keys dropped); config: the sizes, ``c``, ``eps``
        and notes on the conventions.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError
        A missing key; a shape that differs from the expected one; NaN/Inf in a tensor.
    SsmctlError
        A gate constant ``c`` that is not a positive number.
    """
    config = config_from_params(params, **{k: v for k, v in (config or {}).items() if k in _CONFIG_KEYS})
    tensors = ops.validate_params(NAME, index, params, param_shapes(config))
    c = config["c"]
    if not (isinstance(c, (int, float)) and c > 0):
        raise SsmctlError(f"{NAME}: the gate constant c must be positive, got {c!r}")
    layer_config = {
        "d_model": config["d_model"],
        "lru_width": config["lru_width"],
        "num_heads": config["num_heads"],
        "d_conv": config["d_conv"],
        "c": float(c),
        "eps": float(config["eps"]),
        "convention": config.get("convention", "recurrentgemma"),
        "pre_norm": bool(config.get("pre_norm", True)),
        "a_init": None,  # set by init(); a checkpoint does not say how its a was initialized
        "norm": "RMSNorm with (1 + weight)",
        "activation": "gelu_tanh on the y branch",
        "gate_layout": "block-diagonal, weight[h] is (in, out): gate = x_h @ W[h] + b[h]",
        "conv_layout": "torch Conv1d (lru_width, 1, width); recurrentgemma stores the transpose (width, lru_width)",
        "discretization": "none: Ā_t = a^(c·r_t) parametrized directly",
    }
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def _mixer_input(layer: Layer, u: torch.Tensor) -> torch.Tensor:
    """û: the block's RMSNorm of u, or u itself for a bare mixer (``pre_norm`` False)."""
    if not layer.config.get("pre_norm", True):
        return u
    return ops.rms_norm(u, layer.params["temporal_pre_norm.weight"], layer.config["eps"], unit_offset=True)


def _pieces(layer: Layer, u: Any, reset: bool | None) -> tuple[LTVSystem, torch.Tensor, torch.Tensor]:
    """The LTVSystem, the y branch (batch, L, lru_width) and the checked input u."""
    cfg, p = layer.config, layer.params
    u = ops.layer_input(NAME, layer.index, u, cfg["d_model"])
    w, H = cfg["lru_width"], cfg["num_heads"]
    b, L = u.shape[:2]
    with torch.no_grad():
        hawk = cfg.get("convention") == "ssm-benchmark"
        reset = not hawk if reset is None else reset
        hidden = _mixer_input(layer, u)
        y_branch = F.gelu(
            F.linear(hidden, p[_PREFIX + "linear_y.weight"], p[_PREFIX + "linear_y.bias"]),
            approximate="none" if hawk else "tanh",
        )
        x = F.linear(hidden, p[_PREFIX + "linear_x.weight"], p[_PREFIX + "linear_x.bias"])
        x = ops.causal_depthwise_conv(x, p[_PREFIX + "conv_1d.weight"], p[_PREFIX + "conv_1d.bias"])
        xh = x.view(b, L, H, w // H)
        gate_i = torch.sigmoid(
            torch.einsum("blhi,hij->blhj", xh, p[_LRU + "input_gate_weight"]) + p[_LRU + "input_gate_bias"]
        ).reshape(b, L, w)
        gate_r = torch.sigmoid(
            torch.einsum("blhi,hij->blhj", xh, p[_LRU + "recurrent_gate_weight"])
            + p[_LRU + "recurrent_gate_bias"]
        ).reshape(b, L, w)
        dt = cfg["c"] * gate_r
        log_a = -dt * F.softplus(p[_LRU + "recurrent_param"])
        a = torch.exp(log_a)
        multiplier = torch.sqrt(1.0 - torch.exp(2.0 * log_a) + (1e-6 if hawk else 0.0))
        if reset:
            multiplier[:, 0] = 1.0
        Bbar = (multiplier * gate_i)[..., None, None]
        ones = torch.ones((), dtype=a.dtype).expand(b, L, w, 1, 1)
        D = torch.zeros((), dtype=a.dtype).expand(w, 1, 1)
        system = LTVSystem(
            lam=a[..., None], B=Bbar, C=ones, D=D, dt=dt, output="real", inputs=x[..., None],
            meta={"family": NAME, "layer": layer.index, "channels": "lru_width", "reset_at_start": bool(reset)},
        )
    return system, y_branch, u


def ltv(layer: Layer, u: Any, *, reset: bool | None = None) -> LTVSystem:
    """Per-token system of an RG-LRU layer for the block input ``u`` (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer.
    u : tensor or array, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm); converted to float32.
    reset : bool, optional
        Treat token 0 as a segment start, as the reference does (B̄_0 = i_0 instead of √(1 − a_0²)·i_0).
        False gives the steady-state form at every token (a continuation of an earlier segment). Default: the
        layer's convention (recurrentgemma resets, ssm-benchmark does not).

    Returns
    -------
    LTVSystem
        lam (batch, L, lru_width, 1), B (batch, L, lru_width, 1, 1), C = 1 (batch, L, lru_width, 1, 1),
        D = 0 (lru_width, 1, 1), dt = c·r_t (batch, L, lru_width), inputs (batch, L, lru_width, 1);
        float32 torch tensors (C and D are broadcast views).

    Raises
    ------
    ShapeError
        When ``u`` is not numeric and real, not 3-d, has a width other than d_model, or no tokens.
    NonFiniteError
        When ``u`` holds NaN or Inf.
    """
    return _pieces(layer, u, reset)[0]


def block_output_ref(layer: Layer, u: Any, *, reset: bool | None = None) -> np.ndarray:
    """The temporal residual u + linear_out(h ⊙ y_branch), h from the LTVSystem's sequential reference.

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer.
    u : tensor or array, shape (batch, L, d_model)
        The block input, as for :func:`ltv`.
    reset : bool, optional
        Segment start at token 0, as for :func:`ltv`.

    Returns
    -------
    ndarray, float64, shape (batch, L, d_model)

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`ltv`, for a bad ``u``.
    """
    system, y_branch, u = _pieces(layer, u, reset)
    h = torch.from_numpy(system.output_ref()[..., 0])
    p = layer.params
    gated = h * y_branch.double()
    return ops.residual_output_ref(u, gated, p[_PREFIX + "linear_out.weight"], p[_PREFIX + "linear_out.bias"])


def recurrence_base(layer: Layer) -> np.ndarray:
    """a = exp(−softplus(recurrent_param)) = σ(−recurrent_param), float64, shape (lru_width,).

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer (``params["temporal_block.rg_lru.recurrent_param"]`` a torch tensor).

    Returns
    -------
    ndarray, float64, shape (lru_width,)
        Values in (0, 1).
    """
    return np.exp(continuous_A(layer))


def continuous_A(layer: Layer) -> np.ndarray:
    """log a = −softplus(recurrent_param) (the rate with Ā_t = exp(Δ_t·A), Δ_t = c·r_t), shape (lru_width,).

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer (``params["temporal_block.rg_lru.recurrent_param"]`` a torch tensor).

    Returns
    -------
    ndarray, float64, shape (lru_width,)
        Negative values.
    """
    p = layer.params[_LRU + "recurrent_param"].double()
    return -F.softplus(p).numpy()


def bias_eigenvalues(layer: Layer, r: float | str = 1.0) -> np.ndarray:
    """Input-free eigenvalues a^(c·r) per channel, float64, shape (lru_width,).

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer.
    r : float in [0, 1] or "bias", default 1.0
        The recurrence gate value. r = 1 gives a^c, the fastest decay the gate allows (the input-free
        counterpart of Mamba's bias-only Δ); r = 1/c gives a itself; ``"bias"`` uses σ(recurrent_gate_bias),
        the gate at x_t = 0 (r = ½ at init, so a^(c/2)).

    Returns
    -------
    ndarray, float64, shape (lru_width,)

    Raises
    ------
    UnknownNameError
        A string other than ``"bias"``.
    SsmctlError
        A number outside [0, 1].
    """
    c = layer.config["c"]
    if isinstance(r, str):
        if r != "bias":
            raise unknown_name(f"{NAME} gate value", r, ["bias"])
        r_arr = torch.sigmoid(layer.params[_LRU + "recurrent_gate_bias"].double()).reshape(-1).numpy()
    else:
        if not 0.0 <= float(r) <= 1.0:
            raise SsmctlError(f"{NAME}: the gate value r must lie in [0, 1], got {r!r}")
        r_arr = float(r)
    return np.exp(c * r_arr * continuous_A(layer))


def init_recurrent_param(
    a_init: str, width: int, gen: torch.Generator, min_rad: float = 0.9, max_rad: float = 0.999
) -> torch.Tensor:
    """recurrent_param (= −Λ, a = σ(−recurrent_param)) under one of :data:`A_INITS`.

    "recurrentgemma": a² ~ U[min_rad² + 1e-8, max_rad² + 1e-8] (ring-uniform), recurrent_param =
    log(1/a − 1) = softplus⁻¹(−log a). "uniform": ssm-benchmark's grid: softplus⁻¹ of linspace(1e-3, 0.1),
    affinely rescaled onto [−9, −4.323]. "exp": linspace(−4.323, −9).

    Parameters
    ----------
    a_init : {"recurrentgemma", "transformers", "uniform", "exp"}
        The convention (``"transformers"`` is an alias of ``"recurrentgemma"``).
    width : int
        Number of channels (lru_width).
    gen : torch.Generator
        Source of the random draw ("recurrentgemma" only; the grids are deterministic).
    min_rad, max_rad : float, default 0.9, 0.999
        Ring of a for "recurrentgemma", 0 < min_rad ≤ max_rad < 1; ignored otherwise.

    Returns
    -------
    torch.Tensor, float32, shape (width,)

    Raises
    ------
    UnknownNameError
        An unknown convention.
    SsmctlError
        A ring outside 0 < min_rad ≤ max_rad < 1 ("recurrentgemma").
    """
    a_init = _A_INIT_ALIASES.get(a_init, a_init)
    if a_init not in A_INITS:
        raise unknown_name(f"{NAME} a_init convention", a_init, A_INITS + tuple(_A_INIT_ALIASES))
    if a_init == "recurrentgemma":
        if not 0.0 < min_rad <= max_rad < 1.0:
            raise SsmctlError(f"{NAME}: need 0 < min_rad <= max_rad < 1, got {min_rad!r}, {max_rad!r}")
        a2 = ops.uniform((width,), min_rad**2 + 1e-8, max_rad**2 + 1e-8, gen)
        return ops.softplus_inverse(-0.5 * torch.log(a2))
    lo, hi = -9.0, -4.323
    if a_init == "exp":
        return torch.linspace(hi, lo, width)
    x = ops.softplus_inverse(torch.linspace(1e-3, 0.1, width, dtype=torch.float64))
    span = x.max() - x.min()
    x = (x - x.min()) / span if span > 0 else torch.zeros_like(x)
    return (x * abs(hi - lo) + lo).float()


def dsf_block(layer: Layer, u: Any, *, reset: bool | None = None) -> BlockFactors:
    """The temporal block's mixer (after its RMSNorm) as factors around the RG-LRU, at input ``u``.

    linear_x (+ bias) → causal conv (+ bias) → RG-LRU (the DSF core) → diag(GELU_tanh(linear_y(û))) →
    linear_out (+ bias).

    Parameters
    ----------
    layer : Layer
        An RG-LRU layer.
    u : tensor or array, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm), as for :func:`ltv`.
    reset : bool, optional
        Segment start at token 0, as for :func:`ltv`.

    Returns
    -------
    BlockFactors
        ``inputs`` = the normed û, the mixer's input; core channels = lru_width.

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`ltv`, for a bad ``u``.
    """
    system, y_branch, u = _pieces(layer, u, reset)
    p = layer.params
    with torch.no_grad():
        hidden = _mixer_input(layer, u)
    return BlockFactors(
        inputs=hidden, w_in=p[_PREFIX + "linear_x.weight"], b_in=p[_PREFIX + "linear_x.bias"], core=system,
        conv_w=p[_PREFIX + "conv_1d.weight"], conv_b=p[_PREFIX + "conv_1d.bias"], gate=y_branch,
        w_out=p[_PREFIX + "linear_out.weight"], b_out=p[_PREFIX + "linear_out.bias"],
    )


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d, w, H, k = config["d_model"], config["lru_width"], config["num_heads"], config["d_conv"]
    bw = w // H
    final_scale = 2.0 / config["n_layers"]

    def normal(shape: tuple[int, ...], std: float) -> torch.Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std

    gate_std = math.sqrt(config["gate_variance_scale"] / bw)
    params = {
        "temporal_pre_norm.weight": torch.zeros(d),
        _PREFIX + "linear_x.weight": normal((w, d), math.sqrt(1.0 / d)),
        _PREFIX + "linear_x.bias": torch.zeros(w),
        _PREFIX + "linear_y.weight": normal((w, d), math.sqrt(1.0 / d)),
        _PREFIX + "linear_y.bias": torch.zeros(w),
        _PREFIX + "linear_out.weight": normal((d, w), math.sqrt(final_scale / w)),
        _PREFIX + "linear_out.bias": torch.zeros(d),
        _PREFIX + "conv_1d.weight": normal((w, 1, k), math.sqrt(config["conv_variance_scale"] / k)),
        _PREFIX + "conv_1d.bias": torch.zeros(w),
        _LRU + "recurrent_param": init_recurrent_param(
            config["a_init"], w, gen, config["min_rad"], config["max_rad"]
        ),
        _LRU + "input_gate_weight": normal((H, bw, bw), gate_std),
        _LRU + "input_gate_bias": torch.zeros(H, bw),
        _LRU + "recurrent_gate_weight": normal((H, bw, bw), gate_std),
        _LRU + "recurrent_gate_bias": torch.zeros(H, bw),
    }
    layer = layer_from_params(params, {key: config[key] for key in _CONFIG_KEYS if key in config}, index)
    layer.config["a_init"] = config["a_init"]
    return layer


def init(**hyper: Any) -> Model:
    """A freshly initialized stack of RG-LRU recurrent blocks following recurrentgemma's torch init.

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 256
    n_layers : int, default 6 (recurrent blocks; Griffin's attention blocks are not part of this family)
    lru_width : int, default d_model
    num_heads : int, default 4 (block-diagonal gates)
    d_conv : int, default 4
    a_init : {"recurrentgemma", "transformers", "uniform", "exp"}, default "recurrentgemma"
    min_rad, max_rad : float, default 0.9, 0.999 (ring of a for "recurrentgemma")
    c : float, default 8
    gate_variance_scale : float, default 1.0 (recurrentgemma; transformers uses 0.01)
    conv_variance_scale : float, default 0.01
    eps : float, default 1e-6
    seed : int
    preset : {"recurrentgemma", "transformers", "ssm-benchmark", "ssm-benchmark-exp"}, optional

    Returns
    -------
    Model
        ``n_layers`` layers of float32 torch parameters, ``source == "init"``.

    Raises
    ------
    UnknownNameError
        An unknown hyperparameter, preset or ``a_init``.
    ShapeError
        lru_width not divisible by num_heads.
    SsmctlError
        A size that is not a positive integer, a non-positive ``c``, variance scale or ``eps``, or an invalid
        ring of a.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    if config["lru_width"] is None:
        config["lru_width"] = config["d_model"]
    ops.check_positive_int(
        NAME, d_model=config["d_model"], n_layers=config["n_layers"], d_conv=config["d_conv"],
    )
    _check_heads(config["lru_width"], config["num_heads"])
    a_init = _A_INIT_ALIASES.get(config["a_init"], config["a_init"])
    if a_init not in A_INITS:
        raise unknown_name(f"{NAME} a_init convention", config["a_init"], A_INITS + tuple(_A_INIT_ALIASES))
    config["a_init"] = a_init
    for name in ("c", "gate_variance_scale", "conv_variance_scale", "eps"):
        if not (isinstance(config[name], (int, float)) and config[name] > 0):
            raise SsmctlError(f"{NAME}: {name} must be a positive number, got {config[name]!r}")
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="De et al. 2024, Griffin: Mixing Gated Linear Recurrences with Local Attention (RG-LRU; Hawk)",
        kind="LTV",
        parametrization="LTV: Ā_t = a^(c·r_t), a = σ(Λ), r_t = σ(W_a x_t + b_a), c = 8; "
        "B̄_t = √(1 − Ā_t²)·σ(W_x x_t + b_x); C = I, D = 0 (state feedback, no C/D)",
        discretization="None (Ā_t parametrized directly)",
        structure="MIMO (Table I): state = lru_width channels, each a scalar recurrence",
        implementation="Custom Parallel Scan (linear scan in the torch reference)",
        scaffolding="Mamba / Hawk / Griffin: linear_x → causal conv → RG-LRU, gated by GELU(linear_y), "
        "linear_out; pre-RMSNorm residual block followed by a gated MLP block",
        defaults=DEFAULTS,
        init=init,
        notes="Code stores recurrent_param = −Λ (a = σ(−recurrent_param) = exp(−softplus(recurrent_param))); "
        "the gates are block-diagonal with num_heads blocks (ssm-benchmark's Hawk: dense, i.e. 1 block). "
        "Table I's 'MIMO' is, in code, lru_width decoupled scalar channels (N = 1 each). recurrentgemma and "
        "transformers reset the state at position 0 (input multiplier 1 there), ssm-benchmark does not and uses "
        "√(1 − a² + 1e−6). Init conventions: recurrentgemma/transformers a ∈ [0.9, 0.999] (a^8 ∈ [0.43, 0.99]); "
        "ssm-benchmark 'uniform'/'exp' put a^8 in [0.900, 0.999]. Gate weight variance: recurrentgemma 1/width_h, "
        "transformers 0.01/width_h (preset 'transformers'). Only the temporal half of each residual block (and "
        "no attention blocks of Griffin) is modelled.",
        variants=A_INITS,
        presets=PRESETS,
        ltv=ltv,
        dsf_block=dsf_block,
        layer_from_params=layer_from_params,
        config_from_params=config_from_params,
        bias_eigenvalues=bias_eigenvalues,
        continuous_A=continuous_A,
    )
)
