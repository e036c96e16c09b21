"""Causal multi-head attention: softmax, linear (φ = elu + 1) and normalized (learned η) variants.

The sequence mixer of the DSF paper's MQAR and LRA code (dsf-mqar ``MHA`` / ``MHNA``, ssm-benchmark ``MHA`` /
``MHNA``), as a bare mixer: its input u (batch, L, d_model) is the mixer's input (after the block's norm)::

    [q, k] = Wqk(u)              (d_qk each, q first; head h owns columns h·m .. (h+1)·m − 1, m = d_qk / H)
    v = Wv(u)                    (d_model; head h owns d_model / H value channels)
    n = Wn(u)                    (normalized only: one logit per head)
    y_i = Σ_{j≤i} α_ij v_j       per head
    out = out_proj(y)

with the attention matrix α of each variant:

- ``softmax``: α_ij = exp(q_i·k_j / √m) / η_i, η_i = Σ_{j≤i} exp(q_i·k_j / √m);
- ``linear``:  α_ij = φ(q_i)·φ(k_j) / η_i, φ = elu + 1, η_i = φ(q_i)·Σ_{j≤i} φ(k_j);
- ``normalized``: α_ij = q_i·k_j / η_i with η_i = exp, softplus or sigmoid of n_i (no feature map, no
  1/√m; α is signed and its rows are not normalized).

DSF form (one state block of m states per value channel; Λ_i scalar per head):
Λ_i = η_{i−1}/η_i, B_i = φ(k_i)/η_i, C_i = ψ(q_i), D = 0, with the values v as the core's input. Only the
products Λ_i⋯Λ_{j+1} = η_j/η_i enter Φ, so Φ_ij = α_ij per value channel of the head. Softmax has no finite
state: :func:`ltv` refuses it and :func:`taylor_ltv` builds the order-p Taylor-feature approximation.
Everything here computes in float64 from the stored (float32) parameters.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, ShapeError, SsmctlError, UnsupportedSystemError, unknown_name
from ..systems.ltv import LTVSystem
from . import _torch_ops as ops
from .base import Family, Layer, Model, register
from .dsf_block import BlockFactors

__all__ = [
    "FAMILY",
    "VARIANTS",
    "ETAS",
    "WEIGHT_INITS",
    "init",
    "layer_from_params",
    "config_from_params",
    "param_shapes",
    "ltv",
    "taylor_ltv",
    "log_normalizer",
    "attention_matrix",
    "mixer_output",
    "dsf_block",
]

NAME = "attention"
VARIANTS: tuple[str, ...] = ("softmax", "linear", "normalized")
#: The normalizer η of normalized attention as a function of the logit n = W_η u + b_η.
ETAS: tuple[str, ...] = ("exp", "softplus", "sigmoid")
#: "mixer": the mixers' own init (torch nn.Linear defaults); "mqar": zoology's ``_init_weights`` re-init.
WEIGHT_INITS: tuple[str, ...] = ("mixer", "mqar")

DEFAULTS: dict[str, Any] = {
    "d_model": 64,
    "d_qk": None,  # None: d_qk = d_model, as the authors' mixers
    "num_heads": 1,
    "variant": "linear",
    "eta": "exp",
    "bias": True,
    "n_layers": 2,
    "weight_init": "mixer",
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # dsf-mqar MQAR runs: 2 layers, 1 head, every Linear re-initialized by zoology's _init_weights.
    "mqar": {"n_layers": 2, "num_heads": 1, "weight_init": "mqar"},
    # ssm-benchmark LRA CIFAR norm-attention: hidden 128, state_dim (d_qk) 64, 8 heads, η = exp, 2 layers.
    "lra-cifar-norm": {"d_model": 128, "d_qk": 64, "num_heads": 8, "variant": "normalized", "eta": "exp",
                       "n_layers": 2},
}

_SOFTMAX_ALTERNATIVES = (
    "softmax attention has no finite-dimensional DSF (its feature map is infinite): use "
    "ssmctl.dsf(layer, u, features=p) for the order-p Taylor-feature approximation, "
    "ssmctl.materialize(layer, u) for its exact Φ (the attention matrix), or ssmctl.dsf_eigenvalues(layer, u) "
    "for its exact Λ_i = η_(i−1)/η_i"
)


def param_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """State-dict keys of one mixer and their shapes.

    Parameters
    ----------
    config : dict
        ``d_model``, ``d_qk``, ``num_heads``, ``variant`` and ``bias``.

    Returns
    -------
    dict of str to tuple of int
        ``Wqk.weight`` (2·d_qk, d_model), ``Wv.weight`` (d_model, d_model), ``out_proj.weight`` and
        ``out_proj.bias``, the projections' biases when ``bias``, and ``Wn.*`` (num_heads rows) for normalized.
    """
    d, dqk, H = config["d_model"], config["d_qk"], config["num_heads"]
    shapes = {"Wqk.weight": (2 * dqk, d), "Wv.weight": (d, d)}
    if config["variant"] == "normalized":
        shapes["Wn.weight"] = (H, d)
    if config["bias"]:
        shapes.update({"Wqk.bias": (2 * dqk,), "Wv.bias": (d,)})
        if config["variant"] == "normalized":
            shapes["Wn.bias"] = (H,)
    shapes.update({"out_proj.weight": (d, d), "out_proj.bias": (d,)})
    return shapes


def _check_sizes(config: dict[str, Any]) -> None:
    ops.check_positive_int(NAME, d_model=config["d_model"], d_qk=config["d_qk"], num_heads=config["num_heads"])
    for what in ("d_qk", "d_model"):
        if config[what] % config["num_heads"]:
            raise ShapeError(
                f"{NAME}: {what} = {config[what]} is not divisible by num_heads = {config['num_heads']}"
            )
    if config["variant"] not in VARIANTS:
        raise unknown_name(f"{NAME} variant", config["variant"], VARIANTS)
    if config["variant"] == "normalized" and config["eta"] not in ETAS:
        raise unknown_name(f"{NAME} eta", config["eta"], ETAS)


def config_from_params(params: dict[str, Any], **known: Any) -> dict[str, Any]:
    """Sizes of one attention mixer read from its tensors; ``known`` settings fill what they cannot tell.

    ``d_model`` and ``d_qk`` follow from ``Wqk.weight``; a ``Wn.weight`` makes the variant ``normalized`` with
    one head per row. Softmax and linear attention store the same tensors and no head count, so ``variant``
    and ``num_heads`` must be in ``known`` there; normalized attention's ``eta`` must be known too.

    Parameters
    ----------
    params : dict
        Mixer tensors keyed as in :func:`param_shapes`.
    **known
        ``variant``, ``num_heads``, ``eta`` (and any size to check).

    Returns
    -------
    dict
        ``d_model``, ``d_qk``, ``num_heads``, ``variant``, ``eta``, ``bias``.

    Raises
    ------
    CheckpointError
        ``Wqk.weight`` missing, or a setting the tensors do not tell and ``known`` does not give.
    ShapeError
        A tensor of the wrong rank, or sizes that do not fit together.
    """
    two_dqk, d = ops.shape_of(params, "Wqk.weight", NAME, 2)
    if two_dqk % 2:
        raise ShapeError(f"{NAME}: Wqk.weight has {two_dqk} rows, expected 2·d_qk (an even number)")
    config: dict[str, Any] = {"d_model": d, "d_qk": two_dqk // 2, "bias": "Wqk.bias" in params}
    if "Wn.weight" in params:
        config["variant"] = "normalized"
        config["num_heads"] = ops.shape_of(params, "Wn.weight", NAME, 2)[0]
        if known.get("variant", "normalized") != "normalized":
            raise CheckpointError(
                f"{NAME}: the state dict has Wn (normalized attention), but variant={known['variant']!r} was given"
            )
    config.update({k: v for k, v in known.items() if v is not None})
    for name in ("variant", "num_heads") + (("eta",) if config.get("variant") == "normalized" else ()):
        if name not in config:
            raise CheckpointError(
                f"{NAME}: the state dict does not say {name}; pass it (variant: one of {', '.join(VARIANTS)}; "
                f"eta: one of {', '.join(ETAS)}; num_heads: a positive integer)"
            )
    config.setdefault("eta", None)
    _check_sizes(config)
    return config


_CONFIG_KEYS = ("d_model", "d_qk", "num_heads", "variant", "eta", "bias")


def layer_from_params(params: dict[str, Any], config: dict[str, Any] | None = None, index: int = 0) -> Layer:
    """An attention :class:`Layer` from one mixer's tensors (the authors' state-dict names).

    Parameters
    ----------
    params : dict[str, tensor or array]
        ``Wqk.weight``, ``Wqk.bias``, ``Wv.weight``, ``Wv.bias``, ``out_proj.weight``, ``out_proj.bias``
        (+ ``Wn.weight``, ``Wn.bias`` for normalized attention). Other keys are ignored.
    config : dict, optional
        ``variant`` and ``num_heads`` (softmax/linear: the tensors cannot tell), ``eta`` (normalized).
    index : int
        The layer's position in the model.

    Returns
    -------
    Layer
        float32 torch tensors; config: ``d_model``, ``d_qk``, ``num_heads``, ``head_dim``, ``variant``,
        ``eta``, ``bias``.

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError
        A missing key or setting; a shape that differs from the expected one; NaN/Inf in a tensor.
    """
    config = config_from_params(params, **{k: v for k, v in (config or {}).items() if k in _CONFIG_KEYS})
    tensors = ops.validate_params(NAME, index, params, param_shapes(config))
    layer_config = {
        **{k: config[k] for k in _CONFIG_KEYS},
        "head_dim": config["d_qk"] // config["num_heads"],
        "input": "the mixer's input (after the block's norm)",
    }
    return Layer(family=NAME, index=index, params=tensors, config=layer_config)


def _linear64(x: torch.Tensor, p: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    bias = p.get(f"{name}.bias")
    return F.linear(x, p[f"{name}.weight"].double(), None if bias is None else bias.double())


def _qkv(layer: Layer, u: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k (batch, L, H, m), v (batch, L, H, d_model/H) in float64, and the checked float64 input."""
    cfg, p = layer.config, layer.params
    x = ops.layer_input(NAME, layer.index, u, cfg["d_model"]).double()
    b, L = x.shape[:2]
    H = cfg["num_heads"]
    q, k = _linear64(x, p, "Wqk").view(b, L, 2, H, cfg["head_dim"]).unbind(2)
    v = _linear64(x, p, "Wv").view(b, L, H, cfg["d_model"] // H)
    return q, k, v, x


def _causal(L: int) -> torch.Tensor:
    return torch.ones(L, L, dtype=torch.bool).tril()


def _log_eta_normalized(layer: Layer, x: torch.Tensor) -> torch.Tensor:
    n = _linear64(x, layer.params, "Wn")  # (b, L, H)
    eta = layer.config["eta"]
    if eta == "exp":
        return n
    if eta == "softplus":
        # log softplus(n), stable for large negative n where softplus underflows: n + log1p(e^{-n}) form.
        return torch.where(n > -30, torch.log(F.softplus(n)), n)
    return -F.softplus(-n)  # log σ(n)


def _scores(layer: Layer, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Pre-normalization scores s_ij (batch, H, L, L) of the variant (softmax: q·k/√m, its log-numerator)."""
    variant = layer.config["variant"]
    if variant == "linear":
        q, k = F.elu(q) + 1, F.elu(k) + 1
    s = torch.einsum("bihm,bjhm->bhij", q, k)
    return s / math.sqrt(q.shape[-1]) if variant == "softmax" else s


def log_normalizer(layer: Layer, u: Any) -> np.ndarray:
    """log η_i of every head, float64, shape (batch, L, num_heads), computed in log space.

    Softmax: log η_i = logsumexp_{j≤i} q_i·k_j/√m; linear: log(φ(q_i)·Σ_{j≤i} φ(k_j)); normalized: log of
    exp / softplus / sigmoid of n_i.

    Parameters
    ----------
    layer : Layer
        An attention layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    ndarray, float64, shape (batch, L, num_heads)

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    with torch.no_grad():
        q, k, _, x = _qkv(layer, u)
        variant = layer.config["variant"]
        if variant == "normalized":
            return _log_eta_normalized(layer, x).numpy()
        if variant == "linear":
            eta = torch.einsum("bihm,bihm->bih", F.elu(q) + 1, torch.cumsum(F.elu(k) + 1, dim=1))
            return torch.log(eta).numpy()
        s = _scores(layer, q, k).masked_fill(~_causal(q.shape[1]), -math.inf)
        return torch.logsumexp(s, dim=-1).transpose(1, 2).numpy()


def attention_matrix(layer: Layer, u: Any) -> np.ndarray:
    """The causal attention matrix α (batch, num_heads, L, L) in float64, computed directly (O(L²)).

    Parameters
    ----------
    layer : Layer
        An attention layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    ndarray, float64, shape (batch, num_heads, L, L)
        Zero above the diagonal; rows sum to 1 for softmax and linear attention.

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    return _alpha(layer, u)[0].numpy()


def _alpha(layer: Layer, u: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        q, k, v, x = _qkv(layer, u)
        causal = _causal(q.shape[1])
        s = _scores(layer, q, k)
        variant = layer.config["variant"]
        if variant == "softmax":
            alpha = torch.softmax(s.masked_fill(~causal, -math.inf), dim=-1)
        elif variant == "linear":
            s = s * causal
            alpha = s / s.sum(-1, keepdim=True)
        else:
            log_eta = _log_eta_normalized(layer, x).transpose(1, 2)  # (b, H, L)
            alpha = s * causal * torch.exp(-log_eta)[..., None]
    return alpha, v, x


def mixer_output(layer: Layer, u: Any) -> np.ndarray:
    """The mixer's output out_proj(α v) in float64, shape (batch, L, d_model).

    Parameters
    ----------
    layer : Layer
        An attention layer.
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
    alpha, v, _ = _alpha(layer, u)
    b, L = v.shape[:2]
    y = torch.einsum("bhij,bjhc->bihc", alpha, v).reshape(b, L, -1)
    return _linear64(y, layer.params, "out_proj").numpy()


def _system(layer: Layer, v: torch.Tensor, psi_q: torch.Tensor, phi_k: torch.Tensor, log_eta: torch.Tensor,
            what: str) -> LTVSystem:
    """The DSF with values as input: lam, B, C per (head, value channel), n = feature states."""
    b, L, H, dv = v.shape
    n = psi_q.shape[-1]
    log_lam = torch.zeros_like(log_eta)
    log_lam[:, 1:] = log_eta[:, :-1] - log_eta[:, 1:]  # Λ_0 = 1: h_{−1} = 0 makes it irrelevant
    lam = torch.exp(log_lam)[..., None, None].expand(b, L, H, dv, n)
    B = (phi_k * torch.exp(-log_eta)[..., None])[:, :, :, None, :, None].expand(b, L, H, dv, n, 1)
    C = psi_q[:, :, :, None, None, :].expand(b, L, H, dv, 1, n)
    D = torch.zeros((), dtype=v.dtype).expand(H, dv, 1, 1)
    return LTVSystem(
        lam=lam, B=B, C=C, D=D, output="real", inputs=v[..., None],
        log_lam=log_lam[..., None, None].expand(b, L, H, dv, n),
        meta={"family": NAME, "layer": layer.index, "variant": layer.config["variant"], "channels": "(heads, d_model/heads)",
              "core": what},
    )


def ltv(layer: Layer, u: Any) -> LTVSystem:
    """The DSF core of a linear or normalized attention layer for the mixer input ``u``.

    Parameters
    ----------
    layer : Layer
        A linear or normalized attention layer.
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    LTVSystem
        Channels (num_heads, d_model/num_heads), N = head_dim states: lam (batch, L, H, dv, m) = η_{i−1}/η_i
        (1 at i = 0), B (…, m, 1) = φ(k_i)/η_i, C (…, 1, m) = ψ(q_i), D = 0, inputs = the values v
        (batch, L, H, dv, 1), ``log_lam`` exact; float64.

    Raises
    ------
    UnsupportedSystemError
        For softmax attention (the message names the alternatives).
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    if layer.config["variant"] == "softmax":
        raise UnsupportedSystemError(_SOFTMAX_ALTERNATIVES)
    with torch.no_grad():
        q, k, v, x = _qkv(layer, u)
        if layer.config["variant"] == "linear":
            q, k = F.elu(q) + 1, F.elu(k) + 1
        log_eta = torch.from_numpy(log_normalizer(layer, x))
        return _system(layer, v, q, k, log_eta, "values → α·values")


def _taylor_features(x: torch.Tensor, order: int) -> torch.Tensor:
    """[1, x, x^{⊗2}/√2!, …, x^{⊗p}/√p!] along the last axis: Σ_{r≤p} m^r features."""
    lead = x.shape[:-1]
    feats = [torch.ones(lead + (1,), dtype=x.dtype)]
    power = torch.ones(lead + (1,), dtype=x.dtype)
    for r in range(1, order + 1):
        power = (power[..., :, None] * x[..., None, :]).reshape(lead + (-1,))
        feats.append(power / math.sqrt(math.factorial(r)))
    return torch.cat(feats, dim=-1)


def taylor_ltv(layer: Layer, u: Any, order: int) -> LTVSystem:
    """Order-p Taylor-feature DSF of softmax attention: exp(q·k/√m) ≈ Σ_{r≤p} (q·k/√m)^r / r!.

    With x = q/m^{1/4} and y = k/m^{1/4}, ψ = φ = [1, x, x^{⊗2}/√2!, …, x^{⊗p}/√p!], so the state has
    Σ_{r=0}^{p} m^r entries per value channel; η_i = ψ(q_i)·Σ_{j≤i} φ(k_j) is the truncated normalizer. The
    output converges to softmax attention as p grows.

    Parameters
    ----------
    layer : Layer
        An attention layer (any variant's q and k are used with the softmax scale).
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.
    order : int
        The Taylor order p ≥ 0.

    Returns
    -------
    LTVSystem
        As :func:`ltv`, with N = Σ_{r≤p} m^r; float64. For odd p the truncated η_i can be negative (Λ_i then
        negative too); ``log_lam`` is not set.

    Raises
    ------
    SsmctlError
        ``order`` not a non-negative integer, or a truncated η_i that is exactly 0 (no DSF exists).
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 0:
        raise SsmctlError(f"features must be a non-negative integer Taylor order, got {order!r}")
    with torch.no_grad():
        q, k, v, _ = _qkv(layer, u)
        scale = q.shape[-1] ** -0.25
        psi, phi = _taylor_features(q * scale, int(order)), _taylor_features(k * scale, int(order))
        eta = torch.einsum("bihn,bihn->bih", psi, torch.cumsum(phi, dim=1))
        if (eta == 0).any():
            raise SsmctlError(f"the order-{order} Taylor normalizer η_i is exactly 0 at some token: no DSF exists")
        b, L, H, dv = v.shape
        n = psi.shape[-1]
        lam_head = torch.ones_like(eta)
        lam_head[:, 1:] = eta[:, :-1] / eta[:, 1:]
        system = _system(layer, v, psi, phi / eta[..., None], torch.zeros_like(eta), f"order-{order} Taylor features")
        system.lam = lam_head[..., None, None].expand(b, L, H, dv, n)
        system.log_lam = None
        system.meta["features"] = int(order)
    return system


def dsf_block(layer: Layer, u: Any) -> BlockFactors:
    """The mixer as factors around its DSF core: Wv (+ b_v) into the core, out_proj out of it.

    Parameters
    ----------
    layer : Layer
        An attention layer (any variant).
    u : array_like or torch.Tensor, shape (batch, L, d_model)
        The mixer's input.

    Returns
    -------
    BlockFactors
        Core channels (head, value channel) flattened head-major; the core is given in closed form
        (``core_rows``: α of the channel's head), which covers softmax too.

    Raises
    ------
    ShapeError, NonFiniteError
        A bad ``u``.
    """
    p = layer.params
    alpha, v, x = _alpha(layer, u)
    b, L, H, dv = v.shape

    def core_rows(r0: int, r1: int) -> torch.Tensor:
        return alpha[:, :, None, r0:r1].expand(b, H, dv, r1 - r0, L).reshape(b, H * dv, r1 - r0, L)

    bias = p.get("Wv.bias")
    return BlockFactors(
        inputs=x, w_in=p["Wv.weight"].double(), b_in=None if bias is None else bias.double(),
        core_rows=core_rows, w_out=p["out_proj.weight"].double(), b_out=p["out_proj.bias"].double(),
    )


def _log_transition(layer: Layer, u: Any) -> np.ndarray:
    """log Λ_i = log η_(i−1) − log η_i per head (0 at i = 0), float64 (batch, L, num_heads)."""
    log_eta = log_normalizer(layer, u)
    out = np.zeros_like(log_eta)
    out[:, 1:] = log_eta[:, :-1] - log_eta[:, 1:]
    return out


def _init_layer(config: dict[str, Any], index: int, gen: torch.Generator) -> Layer:
    d = config["d_model"]
    normalized = config["variant"] == "normalized"
    shapes = param_shapes(config)
    params: dict[str, torch.Tensor] = {}
    for proj in ("Wqk", "Wv") + (("Wn",) if normalized else ()) + ("out_proj",):
        w_shape = shapes[f"{proj}.weight"]
        if config["weight_init"] == "mqar":
            # zoology _init_weights: N(0, 0.02) weights, zero biases, out_proj N(0, 0.02/√(2·n_layers)).
            std = 0.02 / math.sqrt(2 * config["n_layers"]) if proj == "out_proj" else 0.02
            params[f"{proj}.weight"] = torch.randn(w_shape, generator=gen) * std
            if f"{proj}.bias" in shapes:
                params[f"{proj}.bias"] = torch.zeros(w_shape[0])
        else:
            params[f"{proj}.weight"] = ops.torch_default_uniform(w_shape, d, gen)
            if f"{proj}.bias" in shapes:
                params[f"{proj}.bias"] = ops.torch_default_uniform((w_shape[0],), d, gen)
    return layer_from_params(params, {k: config[k] for k in _CONFIG_KEYS}, index)


def init(**hyper: Any) -> Model:
    """A freshly initialized attention model (bare mixers, one per layer).

    Parameters
    ----------
    **hyper
        Overrides of the defaults, by the names below (others are refused).
    d_model : int, default 64
    d_qk : int or None, default None (= d_model)
    num_heads : int, default 1
    variant : {"softmax", "linear", "normalized"}, default "linear"
    eta : {"exp", "softplus", "sigmoid"}, default "exp" (normalized attention's η)
    bias : bool, default True (biases of Wqk, Wv, Wn; out_proj always has one)
    n_layers : int, default 2
    weight_init : {"mixer", "mqar"}, default "mixer"
        "mixer": nn.Linear's default U[±1/√d_model] for weights and biases; "mqar": zoology's re-init.
    seed : int
    preset : {"mqar", "lra-cifar-norm"}, optional

    Returns
    -------
    Model
        float32 torch parameters, ``source == "init"``.

    Raises
    ------
    UnknownNameError
        An unknown hyperparameter, preset, variant, eta or weight_init.
    SsmctlError
        A size that is not a positive integer, or d_qk/d_model not divisible by num_heads.
    """
    config = ops.merge_hyper(NAME, DEFAULTS, PRESETS, hyper)
    if config["d_qk"] is None:
        config["d_qk"] = config["d_model"]
    ops.check_positive_int(NAME, n_layers=config["n_layers"])
    _check_sizes(config)
    if config["weight_init"] not in WEIGHT_INITS:
        raise unknown_name(f"{NAME} weight_init", config["weight_init"], WEIGHT_INITS)
    if config["variant"] != "normalized":
        config["eta"] = None
    return ops.init_model(NAME, config, _init_layer)


FAMILY = register(
    Family(
        name=NAME,
        paper="Sieber et al. 2024 (DSF): softmax, linear (Katharopoulos et al. 2020) and normalized attention",
        kind="LTV",
        parametrization="LTV: Λ_i = η_(i−1)/η_i (scalar per head), B_i = φ(k_i)/η_i, C_i = ψ(q_i), D = 0",
        discretization="none (discrete by construction)",
        structure="one scalar transition per head; head_dim states per value channel",
        implementation="O(L²) attention matrix (reference); DSF recurrence",
        scaffolding="bare mixer: Wqk, Wv (, Wn) → causal attention → out_proj; all projections biased",
        defaults=DEFAULTS,
        init=init,
        notes="Softmax has no finite DSF (n = ∞): dsf() offers order-p Taylor features. The authors' softmax "
        "masks with −1e4 before exp; ssmctl masks exactly (−∞). Linear attention's Λ_i is positive but not "
        "bounded by 1; normalized attention's α is signed and not row-normalized.",
        variants=VARIANTS,
        presets=PRESETS,
        ltv=ltv,
        layer_from_params=layer_from_params,
        config_from_params=config_from_params,
        dsf_block=dsf_block,
        dsf_features=taylor_ltv,
        dsf_log_transition=_log_transition,
        attention_matrix=attention_matrix,
    )
)

