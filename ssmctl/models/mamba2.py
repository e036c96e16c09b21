"""Mamba-2 / SSD: one scalar decay per head, input-dependent Δ_t, B_t, C_t shared inside groups.

Block (mamba_ssm ``Mamba2`` in a pre-norm residual block, transformers ``Mamba2Block``), for the
residual-stream input u (batch, L, d_model)::

    û = RMSNorm(u)                                              norm.weight, eps
    [z, xBC, δ] = in_proj(û)                                    (d_inner, d_inner + 2·g·N, nheads)
    [x_t, B_t, C_t] = SiLU(causal depthwise conv1d(xBC))        (d_inner, g·N, g·N)
    Δ_t = clamp(softplus(δ_t + dt_bias), dt_limit)              (nheads)
    A = −exp(A_log)                                             (nheads)
    head h (group g(h) = h // (nheads/g)), channel p < headdim:
    h_t[h,p,:] = exp(Δ_t[h] A[h]) h_{t−1}[h,p,:] + Δ_t[h] B_t[g(h)] x_t[h,p],
    y_t[h,p] = C_t[g(h)] · h_t[h,p,:] + D[h] x_t[h,p]
    out = u + out_proj(GatedRMSNorm(y, z))     GatedRMSNorm(y, z) = RMSNorm_groups(y ⊙ SiLU(z)) · mixer.norm.weight

Channel layout of the :class:`~ssmctl.systems.ltv.LTVSystem`: two channel axes (nheads, headdim), head-major,
the same order as the reference's ``(h p)`` flattening of d_inner (channel c = h·headdim + p):
lam (batch, L, nheads, headdim, N) — the head's scalar exp(Δ_t A) broadcast over headdim and N —,
B (batch, L, nheads, headdim, N, 1) = Δ_t B_t, C (batch, L, nheads, headdim, 1, N), D (nheads, headdim, 1, 1),
dt (batch, L, nheads, headdim), inputs (batch, L, nheads, headdim, 1) = x_t. Real, output="real".
The broadcasts are torch ``expand`` views, not copies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ShapeError, SsmctlError, UnsupportedSystemError, unknown_name
from ..systems.ltv import LTVSystem
from . import _torch_ops as ops
from .base import Family, Layer, Model, register
from .dsf_block import BlockFactors

__all__ = [
    "FAMILY",
    "A_INITS",
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

NAME = "mamba2"

#: How A = −exp(A_log) is initialized: mamba_ssm draws A ~ U[A_init_range] (default [1, 16]);
#: transformers' Mamba2 (and its hybrids) set A = 1..nheads deterministically.
A_INITS: tuple[str, ...] = ("mamba_ssm", "transformers")

DEFAULTS: dict[str, Any] = {
    "d_model": 256,
    "n_layers": 6,
    "d_state": 128,
    "expand": 2,
    "headdim": 64,
    "ngroups": 1,
    "d_conv": 4,
    "a_init": "mamba_ssm",
    "A_init_range": (1.0, 16.0),
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "dt_init_floor": 1e-4,
    "dt_limit": (0.0, math.inf),
    "D_has_hdim": False,
    "conv_bias": True,
    "bias": False,
    "eps": 1e-5,
    "norm_eps": 1e-5,
    "chunk_size": 256,
    "rescale_prenorm_residual": True,
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    "mamba_ssm": {"a_init": "mamba_ssm"},
    "transformers": {"a_init": "transformers"},
    # state-spaces/mamba2-130m sizes.
    "mamba2-130m": {"d_model": 768, "n_layers": 24, "d_state": 128, "headdim": 64, "ngroups": 1},
}

_OPTIONAL = frozenset({"mixer.in_proj.bias", "mixer.out_proj.bias", "mixer.conv1d.bias"})
_CONFIG_KEYS = (
    "d_model", "d_inner", "nheads", "headdim", "ngroups", "d_state", "d_conv", "D_has_hdim",
    "conv_bias", "bias", "eps", "norm_eps", "dt_limit",
)


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """Checkpoint keys of one block (relative to ``backbone.layers.{i}.``) and their shapes.

    Parameters
    ----------
    config : dict
        ``d_model``, ``d_inner``, ``nheads`` (H), ``ngroups`` (g), ``d_state`` (N), ``d_conv`` (k); optional
        flags ``D_has_hdim`` (default False: D (H,), else (d_inner,)), ``conv_bias`` (True), ``bias`` (False).

    Returns
    -------
    dict of str to tuple of int
        E.g. ``mixer.A_log`` (H,), ``mixer.in_proj.weight`` (2·d_inner + 2gN + H, d_model),
        ``mixer.conv1d.weight`` (d_inner + 2gN, 1, k).
    """
    d_model, d_inner, H = config["d_model"], config["d_inner"], config["nheads"]
    gN = config["ngroups"] * config["d_state"]
    conv_dim = d_inner + 2 * gN
    shapes = {
        "norm.weight": (d_model,),
        "mixer.dt_bias": (H,),
        "mixer.A_log": (H,),
        "mixer.D": (d_inner,) if config.get("D_has_hdim", False) else (H,),
        "mixer.in_proj.weight": (2 * d_inner + 2 * gN + H, d_model),
        "mixer.conv1d.weight": (conv_dim, 1, config["d_conv"]),
        "mixer.norm.weight": (d_inner,),
        "mixer.out_proj.weight": (d_model, d_inner),
    }
    if config.get("conv_bias", True):
        shapes["mixer.conv1d.bias"] = (conv_dim,)
    if config.get("bias", False):
        shapes["mixer.in_proj.bias"] = (2 * d_inner + 2 * gN + H,)
        shapes["mixer.out_proj.bias"] = (d_model,)
    return shapes


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes of one Mamba-2 block from its tensor shapes; ``known`` settings override.

    d_model, d_inner, nheads, headdim, d_conv, D_has_hdim and the bias flags follow from the shapes. The
    conv width gives only ngroups·d_state: ngroups cannot be read from tensors, so pass it from the
    checkpoint's config (``n_groups`` in transformers' config.json); it defaults to 1 (mamba_ssm's default).

    Parameters
    ----------
    params : dict
        Block tensors (or anything with ``.shape``) keyed relative to the block, as in :func:`param_shapes`.
    **known
        Settings a ``config.json`` states (``ngroups``, ``eps``, ``norm_eps``, ``dt_limit``, sizes); they
        override what the shapes say.

    Returns
    -------
    dict
        ``d_model``, ``d_inner``, ``nheads``, ``headdim``, ``ngroups``, ``d_state``, ``d_conv``, ``D_has_hdim``,
        ``conv_bias``, ``bias``, ``eps``, ``norm_eps``, ``dt_limit`` (and any other ``known`` entries).

    Raises
    ------
    CheckpointError
        When ``mixer.A_log``, ``mixer.out_proj.weight``, ``mixer.conv1d.weight`` or ``mixer.norm.weight`` is
        missing.
    ShapeError
        A tensor of the wrong rank, or sizes that do not fit together (d_inner not divisible by nheads,
        nheads by ngroups, or a conv width other than d_inner + 2·ngroups·d_state).
    UnsupportedSystemError
        A block whose gated RMSNorm is narrower than d_inner (mamba_ssm's gated-MLP share).
    SsmctlError
        A size that is not a positive integer.
    """
    H = ops.shape_of(params, "mixer.A_log", NAME, 1)[0]
    d_model, d_inner = ops.shape_of(params, "mixer.out_proj.weight", NAME, 2)
    conv_dim, _, k = ops.shape_of(params, "mixer.conv1d.weight", NAME, 3)
    norm_dim = ops.shape_of(params, "mixer.norm.weight", NAME, 1)[0]
    if norm_dim != d_inner:
        # mamba_ssm's d_ssm < d_inner puts a gated MLP beside the SSM inside in_proj/out_proj.
        raise UnsupportedSystemError(
            f"{NAME}: mixer.norm.weight has {norm_dim} channels but out_proj reads d_inner = {d_inner}; "
            "Mamba-2 layers with a gated-MLP share (d_ssm < d_inner) are not supported"
        )
    config: dict[str, Any] = {
        "d_model": d_model,
        "d_inner": d_inner,
        "nheads": H,
        "ngroups": 1,
        "d_conv": k,
        "D_has_hdim": tuple(np.shape(params["mixer.D"])) == (d_inner,) if "mixer.D" in params else False,
        "conv_bias": "mixer.conv1d.bias" in params,
        "bias": "mixer.in_proj.bias" in params,
        "eps": DEFAULTS["eps"],
        "norm_eps": DEFAULTS["norm_eps"],
        "dt_limit": DEFAULTS["dt_limit"],
    }
    config.update(known)
    _derive_sizes(config, conv_dim=conv_dim)
    return config


def _derive_sizes(config: dict[str, Any], conv_dim: int | None = None) -> None:
    """Fill headdim and d_state from the other sizes, refusing impossible combinations."""
    d_inner, H, g = config["d_inner"], config["nheads"], config["ngroups"]
    ops.check_positive_int(NAME, d_inner=d_inner, nheads=H, ngroups=g)
    if d_inner % H:
        raise ShapeError(f"{NAME}: d_inner = {d_inner} is not divisible by nheads = {H}")
    config.setdefault("headdim", d_inner // H)
    if "headdim" in config and config["headdim"] * H != d_inner:
        raise ShapeError(
            f"{NAME}: nheads · headdim = {H}·{config['headdim']} must equal d_inner = {d_inner}"
        )
    if H % g:
        raise ShapeError(f"{NAME}: nheads = {H} is not divisible by ngroups = {g}")
    if conv_dim is not None and "d_state" not in config:
        gN2 = conv_dim - d_inner
        if gN2 <= 0 or gN2 % (2 * g):
            raise ShapeError(
                f"{NAME}: mixer.conv1d.weight has {conv_dim} channels; expected d_inner + 2·ngroups·d_state "
                f"with d_inner = {d_inner}, ngroups = {g}"
            )
        config["d_state"] = gN2 // (2 * g)


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """A Mamba-2 :class:`Layer` from one block's tensors (keys relative to the block, as in a state_dict).

    Parameters
    ----------
    params : dict[str, tensor or array]
        ``norm.weight``, ``mixer.dt_bias``, ``mixer.A_log``, ``mixer.D``, ``mixer.in_proj.weight``,
        ``mixer.conv1d.weight``, ``mixer.conv1d.bias``, ``mixer.norm.weight``, ``mixer.out_proj.weight``
        (+ in_proj/out_proj biases when ``bias=True``). Other keys are ignored.
    config : dict, optional
        ``ngroups`` (not readable from shapes; default 1), ``eps``, ``norm_eps``, ``dt_limit``, and optionally
        the sizes the checkpoint's config states (``d_model``, ``d_inner``, ``nheads``, ``headdim``,
        ``d_state``, ``d_conv``) against which every tensor is checked.
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        The expected tensors as float32 torch tensors (other keys dropped); config: the sizes, ``eps``,
        ``norm_eps``, ``dt_limit`` and notes on the conventions.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError, UnsupportedSystemError
        A missing key; a shape that differs from the expected one; NaN/Inf in a tensor; see
        :func:`config_from_params`.
    """
    config = config_from_params(params, **{k: v for k, v in (config or {}).items() if k in _CONFIG_KEYS})
    tensors = ops.validate_params(NAME, index, params, param_shapes(config), _OPTIONAL)
    lo, hi = (float(v) for v in config["dt_limit"])
    layer_config = {
        "d_model": config["d_model"],
        "d_inner": config["d_inner"],
        "nheads": config["nheads"],
        "headdim": config["headdim"],
        "ngroups": config["ngroups"],
        "d_state": config["d_state"],
        "d_conv": config["d_conv"],
        "D_has_hdim": bool(config["D_has_hdim"]),
        "a_init": None,  # set by init(); a checkpoint does not say how its A was initialized
        "eps": float(config["eps"]),
        "norm_eps": float(config["norm_eps"]),
        "dt_limit": (lo, hi),
        "activation": "silu",
        "norm_before_gate": False,
        "conv_layout": "torch Conv1d (channels, 1, width) over xBC; weight[..., -1] multiplies the current token",
        "channel_layout": "(nheads, headdim), head-major: d_inner channel c = h·headdim + p",
        "discretization": "A: exp(ΔA) (exact); B: ΔB (Euler)",
    }
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def _pieces(layer: Layer, u: Any) -> tuple[LTVSystem, torch.Tensor, torch.Tensor]:
    """The LTVSystem, the gate z (batch, L, d_inner) and the checked input u."""
    cfg, p = layer.config, layer.params
    u = ops.layer_input(NAME, layer.index, u, cfg["d_model"])
    d_inner, H, P, g, N = cfg["d_inner"], cfg["nheads"], cfg["headdim"], cfg["ngroups"], cfg["d_state"]
    b, L = u.shape[:2]
    with torch.no_grad():
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        zxbcdt = F.linear(hidden, p["mixer.in_proj.weight"], p.get("mixer.in_proj.bias"))
        z, xBC, delta = torch.split(zxbcdt, [d_inner, d_inner + 2 * g * N, H], dim=-1)
        xBC = F.silu(ops.causal_depthwise_conv(xBC, p["mixer.conv1d.weight"], p.get("mixer.conv1d.bias")))
        x, B_t, C_t = torch.split(xBC, [d_inner, g * N, g * N], dim=-1)
        lo, hi = cfg["dt_limit"]
        dt = F.softplus(delta + p["mixer.dt_bias"]).clamp(min=lo, max=hi)  # (b, L, H)
        A = -torch.exp(p["mixer.A_log"])
        # Head h reads group h // (H/g), as the reference's repeat over heads within each group.
        B_h = B_t.view(b, L, g, N).repeat_interleave(H // g, dim=2)  # (b, L, H, N)
        C_h = C_t.view(b, L, g, N).repeat_interleave(H // g, dim=2)
        lam = torch.exp(dt * A)[..., None, None].expand(b, L, H, P, N)
        Bbar = (dt[..., None] * B_h)[:, :, :, None, :, None].expand(b, L, H, P, N, 1)
        C = C_h[:, :, :, None, None, :].expand(b, L, H, P, 1, N)
        D = p["mixer.D"].view(H, P) if cfg["D_has_hdim"] else p["mixer.D"][:, None].expand(H, P)
        system = LTVSystem(
            lam=lam, B=Bbar, C=C, D=D[..., None, None], dt=dt[..., None].expand(b, L, H, P), output="real",
            inputs=x.view(b, L, H, P, 1),
            meta={"family": NAME, "layer": layer.index, "channels": "(nheads, headdim)"},
        )
    return system, z, u


def ltv(layer: Layer, u: Any) -> LTVSystem:
    """Per-token system of a Mamba-2 layer for the block input ``u`` (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        A Mamba-2 layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm); converted to float32.

    Returns
    -------
    LTVSystem
        lam (batch, L, nheads, headdim, N), B (batch, L, nheads, headdim, N, 1),
        C (batch, L, nheads, headdim, 1, N), D (nheads, headdim, 1, 1), dt (batch, L, nheads, headdim),
        inputs (batch, L, nheads, headdim, 1); float32 torch tensors (broadcasts are views).

    Raises
    ------
    ShapeError
        When ``u`` is not numeric and real, not 3-d, has a width other than d_model, or no tokens.
    NonFiniteError
        When ``u`` holds NaN or Inf.
    """
    return _pieces(layer, u)[0]


def block_output_ref(layer: Layer, u: Any) -> np.ndarray:
    """u + out_proj(GatedRMSNorm(y, z)) with y from the LTVSystem's sequential reference.

    Parameters
    ----------
    layer : Layer
        A Mamba-2 layer.
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
    cfg, p = layer.config, layer.params
    b, L = u.shape[:2]
    y = torch.from_numpy(system.output_ref()).reshape(b, L, cfg["d_inner"])
    gated = y * F.silu(z.double())
    groups = gated.view(b, L, cfg["ngroups"], -1)
    normed = groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"])
    normed = normed.reshape(b, L, cfg["d_inner"]) * p["mixer.norm.weight"].double()
    return ops.residual_output_ref(u, normed, p["mixer.out_proj.weight"], p.get("mixer.out_proj.bias"))


def continuous_A(layer: Layer) -> np.ndarray:
    """A = −exp(A_log), one scalar per head, float64, shape (nheads,).

    Parameters
    ----------
    layer : Layer
        A Mamba-2 layer (``params["mixer.A_log"]`` a torch tensor).

    Returns
    -------
    ndarray, float64, shape (nheads,)
    """
    return -np.exp(layer.params["mixer.A_log"].double().numpy())


def bias_eigenvalues(layer: Layer) -> np.ndarray:
    """Input-free per-head Ā = exp(softplus(dt_bias)·A) (δ_t = 0; dt_limit applied).

    Parameters
    ----------
    layer : Layer
        A Mamba-2 layer (``mixer.A_log``, ``mixer.dt_bias`` and ``config["dt_limit"]`` are enough).

    Returns
    -------
    ndarray, float64, shape (nheads,)
    """
    lo, hi = layer.config["dt_limit"]
    dt = np.clip(F.softplus(layer.params["mixer.dt_bias"].double()).numpy(), lo, hi)
    return np.exp(dt * continuous_A(layer))


def dsf_block(layer: Layer, u: Any) -> BlockFactors:
    """The mixer (after the block's RMSNorm) as factors around its SSD scan, at input ``u``.

    in_proj's x rows → causal conv of the x channels (+ bias) → SiLU as diag(σ(v)) → scan (the DSF core,
    with D) → the gated RMSNorm as the diagonal factor SiLU(z)·w/rms(y ⊙ SiLU(z)) at this input → out_proj.

    Parameters
    ----------
    layer : Layer
        A Mamba-2 layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The residual-stream input of the block (before its RMSNorm), as for :func:`ltv`.

    Returns
    -------
    BlockFactors
        ``inputs`` = RMSNorm(u), the mixer's input; core channels = d_inner (head-major).

    Raises
    ------
    ShapeError, NonFiniteError
        As :func:`ltv`, for a bad ``u``.
    """
    system, z, u = _pieces(layer, u)
    cfg, p = layer.config, layer.params
    d_inner = cfg["d_inner"]
    b, L = u.shape[:2]
    with torch.no_grad():
        hidden = ops.rms_norm(u, p["norm.weight"], cfg["eps"])
        w_in = p["mixer.in_proj.weight"][d_inner : 2 * d_inner]
        b_in = p.get("mixer.in_proj.bias")
        b_in = None if b_in is None else b_in[d_inner : 2 * d_inner]
        conv_w = p["mixer.conv1d.weight"][:d_inner]
        conv_b = p.get("mixer.conv1d.bias")
        conv_b = None if conv_b is None else conv_b[:d_inner]
        pre = ops.causal_depthwise_conv(F.linear(hidden, w_in, b_in), conv_w, conv_b)
        y = torch.from_numpy(system.output_ref()).reshape(b, L, d_inner)
        gate = F.silu(z.double())
        groups = (y * gate).view(b, L, cfg["ngroups"], -1)
        scale = torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + cfg["norm_eps"]).expand_as(groups)
        gate = gate * scale.reshape(b, L, d_inner) * p["mixer.norm.weight"].double()
    return BlockFactors(
        inputs=hidden, w_in=w_in, b_in=b_in, core=system, conv_w=conv_w, conv_b=conv_b,
        act=torch.sigmoid(pre), gate=gate, w_out=p["mixer.out_proj.weight"], b_out=p.get("mixer.out_proj.bias"),
    )


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d_model, d_inner, H = config["d_model"], config["d_inner"], config["nheads"]
    gN, k = config["ngroups"] * config["d_state"], config["d_conv"]
    conv_dim = d_inner + 2 * gN

    def lin(out_f: int, in_f: int) -> torch.Tensor:
        return ops.torch_default_uniform((out_f, in_f), in_f, gen)

    dt_bias = ops.init_dt_bias(H, config["dt_min"], config["dt_max"], config["dt_init_floor"], gen)
    if config["a_init"] == "mamba_ssm":
        lo, hi = config["A_init_range"]
        A = ops.uniform((H,), float(lo), float(hi), gen)
    else:
        A = torch.arange(1, H + 1, dtype=torch.float32)
    out_scale = config["n_layers"] ** -0.5 if config["rescale_prenorm_residual"] else 1.0
    params: dict[str, torch.Tensor] = {
        "norm.weight": torch.ones(d_model),
        "mixer.dt_bias": dt_bias,
        "mixer.A_log": torch.log(A),
        "mixer.D": torch.ones(d_inner if config["D_has_hdim"] else H),
        "mixer.in_proj.weight": lin(2 * d_inner + 2 * gN + H, d_model),
        "mixer.conv1d.weight": ops.torch_default_uniform((conv_dim, 1, k), k, gen),
        "mixer.norm.weight": torch.ones(d_inner),
        "mixer.out_proj.weight": lin(d_model, d_inner) * out_scale,
    }
    if config["conv_bias"]:
        params["mixer.conv1d.bias"] = ops.torch_default_uniform((conv_dim,), k, gen)
    if config["bias"]:
        params["mixer.in_proj.bias"] = torch.zeros(2 * d_inner + 2 * gN + H)
        params["mixer.out_proj.bias"] = torch.zeros(d_model)
    layer = layer_from_params(params, {key: config[key] for key in _CONFIG_KEYS}, index)
    layer.config["a_init"] = config["a_init"]
    return layer


def init(**hyper: Any) -> Model:
    """A freshly initialized Mamba-2 model following mamba_ssm's ``Mamba2`` init.

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 256
    n_layers : int, default 6
    d_state : int, default 128
    expand : int, default 2 (d_inner = expand · d_model)
    headdim : int, default 64 (nheads = d_inner / headdim)
    ngroups : int, default 1 (B_t, C_t shared by nheads/ngroups heads)
    d_conv : int, default 4
    a_init : {"mamba_ssm", "transformers"}, default "mamba_ssm"
        A ~ U[A_init_range] (mamba_ssm, default [1, 16]) or A = 1..nheads (transformers).
    dt_min, dt_max, dt_init_floor : float, default 1e-3, 1e-1, 1e-4
    dt_limit : (float, float), default (0, inf)
    D_has_hdim, conv_bias, bias : bool
    eps, norm_eps : float, default 1e-5 (block RMSNorm, gated RMSNorm)
    rescale_prenorm_residual : bool, default True
    seed : int
    preset : {"mamba_ssm", "transformers", "mamba2-130m"}, optional

    Returns
    -------
    Model
        ``n_layers`` layers of float32 torch parameters, ``source == "init"``.

    Raises
    ------
    UnknownNameError
        An unknown hyperparameter, preset or ``a_init``.
    ShapeError
        d_inner not divisible by headdim, or nheads not divisible by ngroups.
    SsmctlError
        A size that is not a positive integer, an invalid ``A_init_range`` or Δ range.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    ops.check_positive_int(
        NAME, d_model=config["d_model"], n_layers=config["n_layers"], d_state=config["d_state"],
        d_conv=config["d_conv"], headdim=config["headdim"], ngroups=config["ngroups"],
    )
    if config["a_init"] not in A_INITS:
        raise unknown_name(f"{NAME} a_init convention", config["a_init"], A_INITS)
    d_inner = ops.expanded_width(NAME, config["expand"], config["d_model"])
    if d_inner % config["headdim"]:
        raise ShapeError(
            f"{NAME}: d_inner = expand·d_model = {d_inner} is not divisible by headdim = {config['headdim']}"
        )
    config["d_inner"], config["nheads"] = d_inner, d_inner // config["headdim"]
    _derive_sizes(config)
    lo, hi = (float(v) for v in config["A_init_range"])
    if not 0 < lo <= hi:
        raise SsmctlError(f"{NAME}: A_init_range must satisfy 0 < low <= high, got {config['A_init_range']!r}")
    ops.check_dt_range(NAME, config["dt_min"], config["dt_max"], config["dt_init_floor"])
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="Dao & Gu 2024, Transformers are SSMs: Generalized Models and Efficient Algorithms Through "
        "Structured State Space Duality (Mamba-2 / SSD)",
        kind="LTV",
        parametrization="LTV: Ā_t = exp(Δ_t A_h)·I, one scalar A_h = −exp(A_log) per head; "
        "Δ_t = softplus(δ_t + dt_bias), B_t, C_t input-dependent (from in_proj + conv), shared per group",
        discretization="Exact on A (Ā_t = exp(Δ_t A)); not in Table I",
        structure="MIMO per head: headdim channels × N states share one scalar decay; "
        "B_t, C_t shared by the heads of a group",
        implementation="Chunked SSD (matrix multiplications inside chunks, scan across chunk states)",
        scaffolding="Mamba-2: parallel in_proj of z, x, B, C, Δ; conv on xBC; gated RMSNorm "
        "(norm(y ⊙ SiLU(z))) before out_proj; pre-RMSNorm residual block",
        defaults=DEFAULTS,
        init=init,
        notes="Mamba-2 is not in the overview's Table I; the columns follow its Section III vocabulary. "
        "Reference code discretizes B with Euler (B̄_t = Δ_t B_t). The A init differs by source: mamba_ssm "
        "draws A ~ U[1, 16] per head (a_init='mamba_ssm', the default), transformers' Mamba2 sets "
        "A = 1..nheads (a_init='transformers'; the smallest per-head Ā then shrinks with nheads). "
        "ngroups cannot be read from checkpoint shapes (only ngroups·d_state): loaders must pass it. "
        "mamba_ssm's optional gated-MLP share (d_ssm < d_inner) is not supported.",
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
