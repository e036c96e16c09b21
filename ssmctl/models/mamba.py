"""S6 / Mamba-1: per-channel diagonal selective SSM with input-dependent Δ_t, B_t, C_t.

Block (mamba_ssm ``Mamba`` inside a pre-norm residual block, transformers ``MambaBlock``), for the
residual-stream input u (batch, L, d_model)::

    û = RMSNorm(u)                                   norm.weight, eps
    [x, z] = in_proj(û)                              (d_inner each, x first)
    x_t = SiLU(causal depthwise conv1d(x))           the SSM's input (d_inner channels)
    [δ_t, B_t, C_t] = x_proj(x_t)                    (dt_rank, N, N)
    [δ_t, B_t, C_t] ← RMSNorm each                   Jamba only: mixer.{dt,b,c}_layernorm.weight, inner_norm_eps
    Δ_t = softplus(dt_proj.weight δ_t + dt_proj.bias)        (d_inner)
    A = −exp(A_log)                                  (d_inner, N)
    h_t = exp(Δ_t A) ⊙ h_{t−1} + Δ_t B_t x_t,  y_t = C_t h_t + D x_t
    out = u + out_proj(y_t ⊙ SiLU(z_t))

As an :class:`~ssmctl.systems.ltv.LTVSystem`: channels = d_inner, N = d_state, SISO per channel,
lam (batch, L, d_inner, N) = exp(Δ_t A), B (batch, L, d_inner, N, 1) = Δ_t B_t (Euler, as the reference code),
C (batch, L, d_inner, 1, N) = C_t (shared by all channels), D (d_inner, 1, 1), dt (batch, L, d_inner),
inputs (batch, L, d_inner, 1) = x_t; real λ, B, C with output="real" (N real states per channel).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import unknown_name
from ..systems.ltv import LTVSystem
from . import _torch_ops as ops
from .base import Family, Layer, Model, register
from .dsf_block import BlockFactors

__all__ = [
    "FAMILY",
    "init",
    "layer_from_params",
    "config_from_params",
    "param_shapes",
    "ltv",
    "block_output_ref",
    "dsf_block",
    "bias_eigenvalues",
    "continuous_A",
]

NAME = "mamba"

DEFAULTS: dict[str, Any] = {
    "d_model": 256,
    "n_layers": 6,
    "d_state": 16,
    "expand": 2,
    "d_conv": 4,
    "dt_rank": "auto",
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "dt_init_floor": 1e-4,
    "dt_init": "random",
    "dt_scale": 1.0,
    "conv_bias": True,
    "bias": False,
    "eps": 1e-5,
    "rescale_prenorm_residual": True,
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # state-spaces/mamba-130m: the smallest released Mamba language model.
    "mamba-130m": {"d_model": 768, "n_layers": 24},
    # jsie7/ssm-benchmark LRA configs (e.g. cifar-10-mamba.yaml): hidden 128, state 64, 6 blocks.
    "ssm-benchmark": {"d_model": 128, "n_layers": 6, "d_state": 64},
}

DT_INITS = ("random", "constant")

_OPTIONAL = frozenset({"mixer.in_proj.bias", "mixer.out_proj.bias", "mixer.conv1d.bias"})

# Jamba's mixer RMS-normalizes δ_t, B_t and C_t right after x_proj (transformers JambaMambaMixer).
_INNER_NORMS = ("dt", "b", "c")


def _dt_rank(dt_rank: Any, d_model: int) -> int:
    if dt_rank == "auto":
        return math.ceil(d_model / 16)
    ops.check_positive_int(NAME, dt_rank=dt_rank)
    return int(dt_rank)


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Checkpoint keys of one block (relative to ``backbone.layers.{i}.``) and their shapes.

    Parameters
    ----------
    config : dict
        ``d_model``, ``d_inner``, ``d_state`` (N), ``dt_rank`` (r, an int), ``d_conv`` (k); optional flags
        ``conv_bias`` (default True), ``bias`` (False) and ``inner_norms`` (False, Jamba) add their tensors.

    Returns
    -------
    dict of str to tuple of int
        E.g. ``mixer.A_log`` (d_inner, N), ``mixer.x_proj.weight`` (r + 2N, d_inner),
        ``mixer.conv1d.weight`` (d_inner, 1, k).
    """
    d_model, d_inner, N = config["d_model"], config["d_inner"], config["d_state"]
    r, k = config["dt_rank"], config["d_conv"]
    shapes = {
        "norm.weight": (d_model,),
        "mixer.A_log": (d_inner, N),
        "mixer.D": (d_inner,),
        "mixer.in_proj.weight": (2 * d_inner, d_model),
        "mixer.conv1d.weight": (d_inner, 1, k),
        "mixer.x_proj.weight": (r + 2 * N, d_inner),
        "mixer.dt_proj.weight": (d_inner, r),
        "mixer.dt_proj.bias": (d_inner,),
        "mixer.out_proj.weight": (d_model, d_inner),
    }
    if config.get("conv_bias", True):
        shapes["mixer.conv1d.bias"] = (d_inner,)
    if config.get("bias", False):
        shapes["mixer.in_proj.bias"] = (2 * d_inner,)
        shapes["mixer.out_proj.bias"] = (d_model,)
    if config.get("inner_norms", False):
        shapes.update({f"mixer.{k}_layernorm.weight": (n,) for k, n in zip(_INNER_NORMS, (r, N, N))})
    return shapes


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes of one Mamba block read from its tensor shapes; ``known`` settings override.

    d_model, d_inner (expand), d_state, dt_rank, d_conv and the bias flags follow from the shapes of
    ``mixer.in_proj.weight``, ``mixer.A_log``, ``mixer.dt_proj.weight`` and ``mixer.conv1d.weight``;
    ``inner_norms`` (Jamba's RMSNorms on δ, B, C) from the presence of ``mixer.dt_layernorm.weight``. The norm
    eps cannot be read from tensors (default 1e-5, mamba_ssm's and transformers' value); ``inner_norm_eps``
    defaults to ``eps`` (Jamba uses its ``rms_norm_eps`` for all its norms). Consistency of the other tensors
    is checked by :func:`layer_from_params`.

    Parameters
    ----------
    params : dict
        Block tensors (or anything with ``.shape``) keyed relative to the block, as in :func:`param_shapes`.
    **known
        Settings a ``config.json`` states; they override what the shapes say. ``expand`` without ``d_inner``
        sets d_inner = expand·d_model; ``dt_rank="auto"`` becomes ceil(d_model / 16).

    Returns
    -------
    dict
        ``d_model``, ``d_inner``, ``expand``, ``d_state``, ``dt_rank``, ``d_conv``, ``conv_bias``, ``bias``,
        ``inner_norms``, ``eps``, ``inner_norm_eps`` (and any other ``known`` entries).

    Raises
    ------
    CheckpointError
        When one of the four tensors the sizes are read from is missing.
    ShapeError
        When one of them has the wrong number of dimensions.
    """
    d_inner, N = ops.shape_of(params, "mixer.A_log", NAME, 2)
    d_model = ops.shape_of(params, "mixer.in_proj.weight", NAME, 2)[1]
    r = ops.shape_of(params, "mixer.dt_proj.weight", NAME, 2)[1]
    k = ops.shape_of(params, "mixer.conv1d.weight", NAME, 3)[-1]
    config = {
        "d_model": d_model,
        "d_inner": d_inner,
        "expand": d_inner / d_model,
        "d_state": N,
        "dt_rank": r,
        "d_conv": k,
        "conv_bias": "mixer.conv1d.bias" in params,
        "bias": "mixer.in_proj.bias" in params,
        "inner_norms": "mixer.dt_layernorm.weight" in params,
        "eps": DEFAULTS["eps"],
    }
    config.update(known)
    config.setdefault("inner_norm_eps", config["eps"])
    if "expand" in known and "d_inner" not in known:
        config["d_inner"] = int(known["expand"] * config["d_model"])
    if config["dt_rank"] == "auto":
        config["dt_rank"] = _dt_rank("auto", config["d_model"])
    return config


_CONFIG_KEYS = (
    "d_model", "d_inner", "expand", "d_state", "dt_rank", "d_conv", "conv_bias", "bias", "eps", "inner_norms",
    "inner_norm_eps",
)


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """A Mamba :class:`Layer` from one block's tensors (keys relative to the block, as in a state_dict).

    Parameters
    ----------
    params : dict[str, tensor or array]
        ``norm.weight``, ``mixer.A_log``, ``mixer.D``, ``mixer.in_proj.weight``, ``mixer.conv1d.weight``,
        ``mixer.conv1d.bias``, ``mixer.x_proj.weight``, ``mixer.dt_proj.weight``, ``mixer.dt_proj.bias``,
        ``mixer.out_proj.weight`` (+ ``in_proj.bias``/``out_proj.bias`` when the model has ``bias=True``;
        + Jamba's ``mixer.dt_layernorm.weight``, ``mixer.b_layernorm.weight``, ``mixer.c_layernorm.weight``,
        all three or none). Other keys are ignored.
    config : dict, optional
        Settings that shapes cannot tell (``eps``, ``inner_norm_eps``) and, optionally, the sizes the
        checkpoint's config states
        (``d_model``, ``d_inner`` or ``expand``, ``d_state``, ``dt_rank``, ``d_conv``): every tensor is then
        checked against them. Sizes not given are inferred from the shapes.
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        The expected tensors as float32 torch tensors (other keys dropped); config: the sizes, ``eps`` (and
        ``inner_norm_eps``) and notes on the conventions.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError
        A missing key; a shape that differs from the expected one (key, expected and found shape named);
        NaN/Inf in a tensor.
    """
    config = config_from_params(params, **{k: v for k, v in (config or {}).items() if k in _CONFIG_KEYS})
    tensors = ops.validate_params(NAME, index, params, param_shapes(config), _OPTIONAL)
    layer_config = {
        "d_model": config["d_model"],
        "d_inner": config["d_inner"],
        "d_state": config["d_state"],
        "dt_rank": config["dt_rank"],
        "d_conv": config["d_conv"],
        "eps": float(config["eps"]),
        "a_init": None,  # set by init(); a checkpoint does not say how its A was initialized
        "activation": "silu",
        "conv_layout": "torch Conv1d (channels, 1, width); weight[..., -1] multiplies the current token",
        "discretization": "A: exp(ΔA) (exact); B: ΔB (Euler)",
    }
    if config["inner_norms"]:
        layer_config["inner_norm_eps"] = float(config["inner_norm_eps"])
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def _linear(x: torch.Tensor, params: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    return F.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))


def _inner_norm(x: torch.Tensor, layer: Layer, key: str) -> torch.Tensor:
    w = layer.params.get(f"mixer.{key}_layernorm.weight")
    return x if w is None else ops.rms_norm(x, w, layer.config["inner_norm_eps"])


def _pieces(layer: Layer, u: Any) -> tuple[LTVSystem, torch.Tensor, torch.Tensor]:
    """The LTVSystem, the gate z (batch, L, d_inner) and the checked input u."""
    cfg, p = layer.config, layer.params
    u = ops.layer_input(NAME, layer.index, u, cfg["d_model"])
    d_inner, N, r = cfg["d_inner"], cfg["d_state"], cfg["dt_rank"]
    with torch.no_grad():
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        x, z = _linear(hidden, p, "mixer.in_proj").chunk(2, dim=-1)
        x = F.silu(ops.causal_depthwise_conv(x, p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias")))
        parts = torch.split(F.linear(x, p["mixer.x_proj.weight"]), [r, N, N], dim=-1)
        delta, B_t, C_t = (_inner_norm(v, layer, k) for v, k in zip(parts, _INNER_NORMS))
        dt = F.softplus(F.linear(delta, p["mixer.dt_proj.weight"], p["mixer.dt_proj.bias"]))
        A = -torch.exp(p["mixer.A_log"])
        lam = torch.exp(dt[..., None] * A)
        Bbar = (dt[..., None] * B_t[:, :, None, :])[..., None]
        b, L = u.shape[:2]
        C = C_t[:, :, None, None, :].expand(b, L, d_inner, 1, N)
        D = p["mixer.D"][:, None, None]
    system = LTVSystem(
        lam=lam, B=Bbar, C=C, D=D, dt=dt, output="real", inputs=x[..., None],
        meta={"family": NAME, "layer": layer.index, "channels": "d_inner"},
    )
    return system, z, u


def ltv(layer: Layer, u: Any) -> LTVSystem:
    """Per-token system of a Mamba layer for the block input ``u`` (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        A Mamba layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm); converted to float32.

    Returns
    -------
    LTVSystem
        lam (batch, L, d_inner, N), B (batch, L, d_inner, N, 1), C (batch, L, d_inner, 1, N),
        D (d_inner, 1, 1), dt (batch, L, d_inner), inputs (batch, L, d_inner, 1); float32 torch tensors.

    Raises
    ------
    ShapeError
        When ``u`` is not numeric and real, not 3-d, has a width other than d_model, or no tokens.
    NonFiniteError
        When ``u`` holds NaN or Inf.
    """
    return _pieces(layer, u)[0]


def block_output_ref(layer: Layer, u: Any) -> np.ndarray:
    """The whole block's output u + out_proj(y ⊙ SiLU(z)), with y from the LTVSystem's sequential reference.

    Parameters
    ----------
    layer : Layer
        A Mamba layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The block input, as for :func:`ltv`.

    Returns
    -------
    ndarray, float64, shape (batch, L, d_model)

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`ltv`, for a bad ``u``.
    """
    system, z, u = _pieces(layer, u)
    y = torch.from_numpy(system.output_ref()[..., 0])
    p = layer.params
    return ops.residual_output_ref(u, y * F.silu(z.double()), p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))


def continuous_A(layer: Layer) -> np.ndarray:
    """A = −exp(A_log), float64, shape (d_inner, N).

    Parameters
    ----------
    layer : Layer
        A Mamba layer (``params["mixer.A_log"]`` a torch tensor).

    Returns
    -------
    ndarray, float64, shape (d_inner, N)
    """
    return -np.exp(layer.params["mixer.A_log"].double().numpy())


def bias_eigenvalues(layer: Layer) -> np.ndarray:
    """Input-free Ā = exp(softplus(dt_proj.bias)·A) (the input-dependent part of Δ set to 0).

    Parameters
    ----------
    layer : Layer
        A Mamba layer (``mixer.A_log`` and ``mixer.dt_proj.bias`` torch tensors are enough).

    Returns
    -------
    ndarray, float64, shape (d_inner, N)
    """
    dt = F.softplus(layer.params["mixer.dt_proj.bias"].double()).numpy()
    return np.exp(dt[:, None] * continuous_A(layer))


def dsf_block(layer: Layer, u: Any) -> BlockFactors:
    """The mixer (after the block's RMSNorm) as factors around its selective scan, at input ``u``.

    in_proj's x half → causal conv (+ bias) → SiLU as diag(σ(v)) → scan (the DSF core, with D) →
    diag(SiLU(z)) → out_proj.

    Parameters
    ----------
    layer : Layer
        A Mamba layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm), as for :func:`ltv`.

    Returns
    -------
    BlockFactors
        ``inputs`` = RMSNorm(u), the mixer's input; core channels = d_inner.

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`ltv`, for a bad ``u``.
    """
    system, z, u = _pieces(layer, u)
    cfg, p = layer.config, layer.params
    d_inner = cfg["d_inner"]
    with torch.no_grad():
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        w_in = p["mixer.in_proj.weight"][:d_inner]
        b_in = p.get("mixer.in_proj.bias")
        b_in = None if b_in is None else b_in[:d_inner]
        pre = ops.causal_depthwise_conv(F.linear(hidden, w_in, b_in), p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias"))
    b_out = p.get("mixer.out_proj.bias")
    return BlockFactors(
        inputs=hidden, w_in=w_in, b_in=b_in, core=system, conv_w=p["mixer.conv1d.weight"],
        conv_b=p.get("mixer.conv1d.bias"), act=torch.sigmoid(pre), gate=F.silu(z),
        w_out=p["mixer.out_proj.weight"], b_out=b_out,
    )


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d_model, d_inner, N = config["d_model"], config["d_inner"], config["d_state"]
    r, k = config["dt_rank"], config["d_conv"]

    def lin(out_f: int, in_f: int) -> torch.Tensor:
        return ops.torch_default_uniform((out_f, in_f), in_f, gen)

    dt_std = r**-0.5 * config["dt_scale"]
    if config["dt_init"] == "constant":
        dt_w = torch.full((d_inner, r), dt_std)
    else:
        dt_w = ops.uniform((d_inner, r), -dt_std, dt_std, gen)
    n_res = 1  # mamba_ssm: one residual branch per block without an MLP
    out_scale = (n_res * config["n_layers"]) ** -0.5 if config["rescale_prenorm_residual"] else 1.0
    params: dict[str, torch.Tensor] = {
        "norm.weight": torch.ones(d_model),
        "mixer.A_log": torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(d_inner, 1),
        "mixer.D": torch.ones(d_inner),
        "mixer.in_proj.weight": lin(2 * d_inner, d_model),
        "mixer.conv1d.weight": ops.torch_default_uniform((d_inner, 1, k), k, gen),
        "mixer.x_proj.weight": lin(r + 2 * N, d_inner),
        "mixer.dt_proj.weight": dt_w,
        "mixer.dt_proj.bias": ops.init_dt_bias(
            d_inner, config["dt_min"], config["dt_max"], config["dt_init_floor"], gen
        ),
        "mixer.out_proj.weight": lin(d_model, d_inner) * out_scale,
    }
    if config["conv_bias"]:
        # nn.Conv1d's default bias init (mamba_ssm keeps it; transformers zeroes it).
        params["mixer.conv1d.bias"] = ops.torch_default_uniform((d_inner,), k, gen)
    if config["bias"]:
        params["mixer.in_proj.bias"] = torch.zeros(2 * d_inner)
        params["mixer.out_proj.bias"] = torch.zeros(d_model)
    layer = layer_from_params(params, {k: config[k] for k in _CONFIG_KEYS if k in config and k != "expand"}, index)
    layer.config["a_init"] = "s4d-real"  # A = −(1..N) per channel, mamba_ssm's only convention
    return layer


def init(**hyper: Any) -> Model:
    """A freshly initialized Mamba model following mamba_ssm's ``Mamba`` / ``MambaLMHeadModel`` init.

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 256
    n_layers : int, default 6
    d_state : int, default 16
    expand : int, default 2 (d_inner = expand · d_model)
    d_conv : int, default 4
    dt_rank : int or "auto", default "auto" (ceil(d_model / 16))
    dt_min, dt_max, dt_init_floor : float, default 1e-3, 1e-1, 1e-4
        Δ0 log-uniform in [dt_min, dt_max], floored; dt_proj.bias = softplus⁻¹(Δ0).
    dt_init : {"random", "constant"}, dt_scale : float
        dt_proj.weight ~ U[±dt_scale/√dt_rank] or constant dt_scale/√dt_rank.
    conv_bias, bias : bool
    eps : float, default 1e-5 (block RMSNorm)
    rescale_prenorm_residual : bool, default True (out_proj.weight / √n_layers)
    seed : int
    preset : {"mamba-130m", "ssm-benchmark"}, optional

    Returns
    -------
    Model
        ``n_layers`` layers of float32 torch parameters, ``source == "init"``.

    Raises
    ------
    UnknownNameError
        An unknown hyperparameter, preset or ``dt_init``.
    SsmctlError
        A size that is not a positive integer, or an invalid Δ range.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    ops.check_positive_int(
        NAME, d_model=config["d_model"], n_layers=config["n_layers"], d_state=config["d_state"],
        d_conv=config["d_conv"],
    )
    config["d_inner"] = ops.expanded_width(NAME, config["expand"], config["d_model"])
    config["dt_rank"] = _dt_rank(config["dt_rank"], config["d_model"])
    ops.check_dt_range(NAME, config["dt_min"], config["dt_max"], config["dt_init_floor"])
    if config["dt_init"] not in DT_INITS:
        raise unknown_name(f"{NAME} dt_init", config["dt_init"], DT_INITS)
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="Gu & Dao 2023, Mamba: Linear-Time Sequence Modeling with Selective State Spaces (S6)",
        kind="LTV",
        parametrization="LTV: A = −exp(A_log) fixed diagonal (S4D-Real init −(1..N) per channel); "
        "Δ_t = softplus(W_Δ x_t + b_Δ), B_t = W_B x_t, C_t = W_C x_t input-dependent",
        discretization="Exact (Table I); Ā_t = exp(Δ_t A)",
        structure="MIMO (Table I); in code d_inner SISO channels of N states sharing B_t, C_t",
        implementation="Custom Parallel Scan (hardware-aware selective scan)",
        scaffolding="Mamba: in_proj → causal depthwise conv → SiLU → SSM, gated by SiLU(z), out_proj; "
        "pre-RMSNorm residual block",
        defaults=DEFAULTS,
        init=init,
        notes="Reference code (mamba_ssm selective_scan_ref, transformers) discretizes B with Euler: "
        "B̄_t = Δ_t B_t, not the exact (exp(Δ_t A) − 1)/A · B_t that Table I's 'Exact' suggests; only Ā_t "
        "is exact. Table I's 'MIMO': the scan runs one SISO system per inner channel (d_inner of them, each "
        "with its own Δ_t and A row) that share the input-dependent B_t and C_t. D is a per-channel skip. "
        "d_model/n_layers defaults are ssmctl's small choice (mamba_ssm's Mamba module has no default width); "
        "mixer settings are mamba_ssm's. The conv bias keeps nn.Conv1d's default init as in mamba_ssm "
        "(transformers zeroes it).",
        variants=(),
        presets=PRESETS,
        ltv=ltv,
        dsf_block=dsf_block,
        layer_from_params=layer_from_params,
        config_from_params=config_from_params,
        bias_eigenvalues=bias_eigenvalues,
        continuous_A=continuous_A,
    )
)
