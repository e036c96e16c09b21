"""The bare selective scans of the DSF paper: ``S6`` and ``S6_2`` (= "SSD" in its figures).

dsf-mqar's ``zoology/mixers/mamba.py`` mixers without Mamba's scaffolding (no in_proj, no conv, no gate;
expand = 1), for the mixer input u (batch, L, d) — inside a MambaBlock, after its LayerNorm::

    [δ_i, b_i, c_i] = x_proj(u_i)                     (r, N, N); no bias
    variant "s6":  Δ_i = softplus(dt_proj.weight δ_i + dt_proj.bias)   (d);  A = −exp(A_log)   (d, N)
    variant "ssd": Δ_i = softplus(δ_i + dt_proj.bias)                   (r = 1, δ_i repeated over the d
                   channels; dt_proj.weight is stored but unused);      A = −exp(A_log · Id), A_log scalar
    h_i = exp(Δ_i A) ⊙ h_{i−1} + Δ_i b_i u_i,  y_i = c_i · h_i + D u_i   per channel
    out = out_proj(y)

DSF form: channels = d, N = d_state: Λ_i = exp(Δ_i A), B_i = Δ_i b_i, C_i = c_i (shared by the channels),
D = diag(D); the core's input is u itself. The authors compute the scan in float32; so does :func:`ltv`.
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
    "VARIANTS",
    "init",
    "layer_from_params",
    "config_from_params",
    "param_shapes",
    "ltv",
    "mixer_output",
    "dsf_block",
    "continuous_A",
    "bias_eigenvalues",
]

NAME = "s6"
VARIANTS: tuple[str, ...] = ("s6", "ssd")
WEIGHT_INITS: tuple[str, ...] = ("mixer", "mqar")

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "d_state": 16,
    "variant": "s6",
    "dt_rank": "auto",
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "dt_init_floor": 1e-4,
    "bias": False,
    "n_layers": 2,
    "weight_init": "mixer",
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # dsf-mqar s6-config.py / ssd-config.py: 2 MambaBlocks, zoology's _init_weights re-init.
    "mqar": {"n_layers": 2, "weight_init": "mqar"},
}


def _dt_rank(config: dict[str, Any]) -> int:
    if config["variant"] == "ssd":
        return 1  # S6_2 fixes dt_rank = 1
    if config["dt_rank"] == "auto":
        return math.ceil(config["d_model"] / 16)
    ops.check_positive_int(NAME, dt_rank=config["dt_rank"])
    return int(config["dt_rank"])


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """State-dict keys of one bare S6 / S6_2 mixer and their shapes.

    Parameters
    ----------
    config : dict
        ``d_model``, ``d_state``, ``dt_rank``, ``variant`` and ``bias``.

    Returns
    -------
    dict of str to tuple of int
        ``A_log`` (d, N) for S6, (1,) for SSD (+ ``Id`` (d, N)); ``D``, ``x_proj.weight`` (r + 2N, d),
        ``dt_proj.weight`` (d, r), ``dt_proj.bias``, ``out_proj.weight`` (+ ``out_proj.bias`` when ``bias``).
    """
    d, N, r = config["d_model"], config["d_state"], config["dt_rank"]
    shapes = {"A_log": (d, N)} if config["variant"] == "s6" else {"A_log": (1,), "Id": (d, N)}
    shapes.update({
        "D": (d,),
        "x_proj.weight": (r + 2 * N, d),
        "dt_proj.weight": (d, r),
        "dt_proj.bias": (d,),
        "out_proj.weight": (d, d),
    })
    if config["bias"]:
        shapes["out_proj.bias"] = (d,)
    return shapes


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes and variant of one bare mixer read from its tensors (``Id`` present: SSD).

    Parameters
    ----------
    params : dict
        Mixer tensors keyed as in :func:`param_shapes`.
    **known
        Sizes to check (they override the shapes).

    Returns
    -------
    dict
        ``d_model``, ``d_state``, ``dt_rank``, ``variant``, ``bias``.

    Raises
    ------
    CheckpointError
        A tensor the sizes are read from is missing.
    ShapeError
        A tensor of the wrong rank.
    """
    if "Id" in params:
        d, N = ops.shape_of(params, "Id", NAME, 2)
        variant = "ssd"
    else:
        d, N = ops.shape_of(params, "A_log", NAME, 2)
        variant = "s6"
    r = ops.shape_of(params, "dt_proj.weight", NAME, 2)[1]
    config = {"d_model": d, "d_state": N, "dt_rank": r, "variant": variant, "bias": "out_proj.bias" in params}
    config.update({k: v for k, v in known.items() if k in config and v is not None})
    return config


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """A bare S6 / SSD :class:`Layer` from one mixer's tensors (dsf-mqar's names).

    Parameters
    ----------
    params : dict[str, tensor or array]
        As :func:`param_shapes`; other keys are ignored.
    config : dict, optional
        Sizes to check.
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        float32 torch tensors; config ``d_model``, ``d_state``, ``dt_rank``, ``variant``, ``bias``.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError
        A missing key; a shape that differs; NaN/Inf in a tensor.
    """
    config = config_from_params(params, **(config or {}))
    tensors = ops.validate_params(NAME, index, params, param_shapes(config))
    layer_config = {
        **config,
        "input": "the mixer's input (after the MambaBlock's LayerNorm); no in_proj, conv or gate",
        "discretization": "A: exp(ΔA) (exact); B: ΔB (Euler)",
    }
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def continuous_A(layer: Layer) -> np.ndarray:
    """A = −exp(A_log) per channel and state (SSD: −exp(A_log·Id)), float64, shape (d_model, d_state).

    Parameters
    ----------
    layer : Layer
        An s6 layer.

    Returns
    -------
    ndarray, float64, shape (d_model, d_state)
    """
    p = layer.params
    if layer.config["variant"] == "ssd":
        return -np.exp(p["A_log"].double().numpy() * p["Id"].double().numpy())
    return -np.exp(p["A_log"].double().numpy())


def bias_eigenvalues(layer: Layer) -> np.ndarray:
    """Input-free Λ = exp(softplus(dt_proj.bias)·A) (the input-dependent part of Δ set to 0).

    Parameters
    ----------
    layer : Layer
        An s6 layer.

    Returns
    -------
    ndarray, float64, shape (d_model, d_state)
    """
    dt = F.softplus(layer.params["dt_proj.bias"].double()).numpy()
    return np.exp(dt[:, None] * continuous_A(layer))


def ltv(layer: Layer, u: Any) -> LTVSystem:
    """The DSF core (the selective scan) of a bare S6 / SSD mixer for the mixer input ``u``.

    Parameters
    ----------
    layer : Layer
        An s6 layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    LTVSystem
        lam (batch, L, d, N) = exp(Δ A), B (…, N, 1) = Δ b, C (…, 1, N) = c, D (d, 1, 1), dt (batch, L, d),
        inputs = u (batch, L, d, 1); float32 torch tensors, as the authors' scan.

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    cfg, p = layer.config, layer.params
    x = ops.layer_input(NAME, layer.index, u, cfg["d_model"])
    d, N, r = cfg["d_model"], cfg["d_state"], cfg["dt_rank"]
    b, L = x.shape[:2]
    with torch.no_grad():
        delta, B_t, C_t = torch.split(F.linear(x, p["x_proj.weight"]), [r, N, N], dim=-1)
        if cfg["variant"] == "ssd":
            pre = delta.expand(b, L, d)  # one dt per token, repeated over the channels
            A = -torch.exp(p["A_log"] * p["Id"])
        else:
            pre = F.linear(delta, p["dt_proj.weight"])
            A = -torch.exp(p["A_log"])
        dt = F.softplus(pre + p["dt_proj.bias"])
        lam = torch.exp(dt[..., None] * A)
        Bbar = (dt[..., None] * B_t[:, :, None, :])[..., None]
        C = C_t[:, :, None, None, :].expand(b, L, d, 1, N)
    return LTVSystem(
        lam=lam, B=Bbar, C=C, D=p["D"][:, None, None], dt=dt, output="real", inputs=x[..., None],
        meta={"family": NAME, "layer": layer.index, "variant": cfg["variant"], "channels": "d_model"},
    )


def mixer_output(layer: Layer, u: Any) -> np.ndarray:
    """out_proj(y), y from the core's sequential float64 recurrence, shape (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        An s6 layer.
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
    y = torch.from_numpy(ltv(layer, u).output_ref()[..., 0])
    bias = layer.params.get("out_proj.bias")
    return F.linear(y, layer.params["out_proj.weight"].double(), None if bias is None else bias.double()).numpy()


def dsf_block(layer: Layer, u: Any) -> BlockFactors:
    """The bare mixer as factors: the scan (core, input u itself) → out_proj.

    Parameters
    ----------
    layer : Layer
        An s6 layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    BlockFactors
        Identity in-projection, no conv, no activation, no gate.

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    system = ltv(layer, u)
    d = layer.config["d_model"]
    return BlockFactors(
        inputs=system.inputs[..., 0], w_in=torch.eye(d, dtype=torch.float64), b_in=None, core=system,
        w_out=layer.params["out_proj.weight"], b_out=layer.params.get("out_proj.bias"),
    )


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d, N, r = config["d_model"], config["d_state"], config["dt_rank"]
    mqar = config["weight_init"] == "mqar"

    def linear(out_f: int, in_f: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn((out_f, in_f), generator=gen) * std if mqar else ops.torch_default_uniform((out_f, in_f), in_f, gen)

    dt_std = r**-0.5
    params = {
        "D": torch.ones(d),
        "x_proj.weight": linear(r + 2 * N, d),
        # The mixer draws dt_proj.weight ~ U[±1/√r]; zoology's re-init overwrites it (and zeroes every bias).
        "dt_proj.weight": linear(d, r) if mqar else ops.uniform((d, r), -dt_std, dt_std, gen),
        "dt_proj.bias": torch.zeros(d) if mqar else ops.init_dt_bias(
            d, config["dt_min"], config["dt_max"], config["dt_init_floor"], gen
        ),
        "out_proj.weight": linear(d, d, 0.02 / math.sqrt(2 * config["n_layers"])),
    }
    if config["variant"] == "ssd":
        params.update({"A_log": torch.zeros(1), "Id": torch.ones(d, N)})
    else:
        params["A_log"] = torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(d, 1)
    if config["bias"]:
        params["out_proj.bias"] = torch.zeros(d)
    return layer_from_params(params, {k: config[k] for k in ("d_model", "d_state", "dt_rank", "variant", "bias")}, index)


def init(**hyper: Any) -> Model:
    """A freshly initialized model of bare S6 / SSD mixers (dsf-mqar's ``S6`` / ``S6_2`` init).

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 64
    d_state : int, default 16
    variant : {"s6", "ssd"}, default "s6"
    dt_rank : int or "auto", default "auto" (ceil(d_model/16); SSD: always 1)
    dt_min, dt_max, dt_init_floor : float
        Δ0 log-uniform in [dt_min, dt_max] (the mixer's own init).
    bias : bool, default False (out_proj's bias)
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
        A size that is not a positive integer, or an invalid Δ range.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    ops.check_positive_int(NAME, d_model=config["d_model"], d_state=config["d_state"], n_layers=config["n_layers"])
    if config["variant"] not in VARIANTS:
        raise unknown_name(f"{NAME} variant", config["variant"], VARIANTS)
    if config["weight_init"] not in WEIGHT_INITS:
        raise unknown_name(f"{NAME} weight_init", config["weight_init"], WEIGHT_INITS)
    ops.check_dt_range(NAME, config["dt_min"], config["dt_max"], config["dt_init_floor"])
    config["dt_rank"] = _dt_rank(config)
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="Sieber et al. 2024 (DSF): the bare S6 and SSD (S6_2) mixers of its MQAR experiments",
        kind="LTV",
        parametrization="LTV: A = −exp(A_log) (S6: per channel and state; SSD: one scalar); Δ_i = softplus(·), "
        "b_i = W_B u_i, c_i = W_C u_i",
        discretization="A: exp(ΔA); B: ΔB (Euler), as the reference scan",
        structure="d SISO channels of N states sharing b_i, c_i (SSD: one transition per channel, all states)",
        implementation="selective scan (float32)",
        scaffolding="bare: x_proj → scan → out_proj; no in_proj, conv or gate (MambaBlock: LayerNorm, residual)",
        defaults=DEFAULTS,
        init=init,
        notes="S6_2's dt_proj.weight is stored but unused (Δ_i,c = softplus(δ_i + b_c)); its Λ_i has the "
        "scalar×identity structure of attention only while all dt biases are equal.",
        variants=VARIANTS,
        presets=PRESETS,
        ltv=ltv,
        layer_from_params=layer_from_params,
        config_from_params=config_from_params,
        continuous_A=continuous_A,
        bias_eigenvalues=bias_eigenvalues,
        dsf_block=dsf_block,
    )
)

