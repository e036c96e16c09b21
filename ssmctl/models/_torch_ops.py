"""Small torch building blocks shared by the input-dependent families (Mamba, Mamba-2, RG-LRU).

One copy each of what the three reference blocks have in common: RMSNorm, the causal depthwise
convolution, torch's default layer init, the softplus-inverse step-size bias init, the float64 residual
output of the reference twins, parameter checking against the expected checkpoint shapes, and the seeded
layer-by-layer init (hyperparameters are merged and checked by _hyper, as for every family).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CheckpointError, NonFiniteError, ShapeError, SsmctlError
from .base import Layer, Model

__all__ = [
    "as_float_tensor",
    "causal_depthwise_conv",
    "expanded_width",
    "generator",
    "init_dt_bias",
    "init_model",
    "layer_input",
    "linear_weight",
    "drawn_layer",
    "residual_output_ref",
    "rms_norm",
    "shape_of",
    "softplus_inverse",
    "torch_default_uniform",
    "uniform",
    "validate_params",
]


def as_float_tensor(name: str, value: Any, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A detached CPU tensor of ``dtype`` from a tensor or array, refusing non-numeric input."""
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
    else:
        arr = np.asarray(value)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
            raise ShapeError(f"{name} must be numeric, got dtype {arr.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.is_complex():
        raise ShapeError(f"{name} must be real, got a complex tensor")
    return t.to(dtype)


def expanded_width(family: str, expand: Any, d_model: int) -> int:
    """d_inner = expand · d_model, refusing an expansion that does not give a positive whole width."""
    if not isinstance(expand, (int, float)) or expand <= 0 or float(expand * d_model) % 1:
        raise SsmctlError(f"{family}: expand · d_model must be a positive integer, got expand = {expand!r}")
    return int(expand * d_model)


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded once per model, so an init is reproducible from its config alone."""
    g = torch.Generator()
    g.manual_seed(int(seed))
    return g


def uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """U[low, high) float32 samples from ``gen``."""
    return torch.rand(shape, generator=gen, dtype=torch.float32) * (high - low) + low


def torch_default_uniform(shape: tuple[int, ...], fan_in: int, gen: torch.Generator) -> torch.Tensor:
    """U[±1/√fan_in]: the default init of ``nn.Linear`` and ``nn.Conv1d`` weights (kaiming_uniform with
    a = √5) and biases, which mamba_ssm keeps for its projections and convolution."""
    return uniform(shape, -fan_in**-0.5, fan_in**-0.5, gen)


def linear_weight(out_features: int, in_features: int, gen: torch.Generator) -> torch.Tensor:
    """An ``nn.Linear(in_features, out_features)`` weight at torch's default init, shape (out, in)."""
    return torch_default_uniform((out_features, in_features), in_features, gen)


def drawn_layer(
    build: Callable[[dict[str, Any], dict[str, Any], int], Layer],
    params: dict[str, torch.Tensor],
    config: Mapping[str, Any],
    keys: tuple[str, ...],
    index: int,
    a_init: str,
) -> Layer:
    """A freshly drawn layer, built and checked by the family's ``layer_from_params`` as a checkpoint's block
    would be (with the ``keys`` of ``config`` it reads), and labelled with the A init it was drawn with."""
    layer = build(params, {key: config[key] for key in keys if key in config}, index)
    layer.config["a_init"] = a_init
    return layer


def init_model(
    family: str, config: dict[str, Any], init_layer: Callable[[dict[str, Any], int, torch.Generator], Layer]
) -> Model:
    """``config["n_layers"]`` layers from ``init_layer(config, index, gen)``, drawn in order from one generator
    seeded with ``config["seed"]``, so that an init is reproducible from its config alone."""
    gen = generator(config["seed"])
    layers: list[Layer] = [init_layer(config, i, gen) for i in range(config["n_layers"])]
    return Model(family=family, config=config, layers=layers, source="init")


def softplus_inverse(x: torch.Tensor) -> torch.Tensor:
    """y with softplus(y) = x (x > 0), in the stable form the reference code uses: x + log(−expm1(−x))."""
    return x + torch.log(-torch.expm1(-x))


def init_dt_bias(
    n: int, dt_min: float, dt_max: float, dt_init_floor: float, gen: torch.Generator
) -> torch.Tensor:
    """softplus⁻¹(Δ0) with Δ0 log-uniform in [dt_min, dt_max], floored at ``dt_init_floor`` (Mamba-1/2).

    Returns
    -------
    Tensor, float32, shape (n,)
    """
    u = torch.rand((n,), generator=gen, dtype=torch.float32)
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=dt_init_floor)
    return softplus_inverse(dt)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, *, unit_offset: bool = False) -> torch.Tensor:
    """RMSNorm over the last axis: x / sqrt(mean(x²) + eps) · w (Mamba) or · (1 + w) (RecurrentGemma).

    Computed in float32 as all three references do.
    """
    x = x.float()
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    scale = 1.0 + weight.float() if unit_offset else weight.float()
    return normed * scale


def causal_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Causal depthwise 1-D convolution along time with zero history.

    Parameters
    ----------
    x : Tensor, shape (batch, L, channels)
    weight : Tensor, shape (channels, 1, width)
        torch ``nn.Conv1d`` layout: ``weight[c, 0, width-1]`` multiplies the current token,
        ``weight[c, 0, width-1-k]`` the token k steps back.
    bias : Tensor, shape (channels,), or None

    Returns
    -------
    Tensor, shape (batch, L, channels)
    """
    L, width = x.shape[1], weight.shape[-1]
    y = F.conv1d(x.transpose(1, 2), weight, bias, padding=width - 1, groups=weight.shape[0])
    return y[..., :L].transpose(1, 2)


def residual_output_ref(
    u: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
) -> np.ndarray:
    """u + linear(x) in float64: the block output of the families' sequential reference twins.

    Parameters
    ----------
    u : Tensor, shape (batch, L, d_model)
        The block input (the residual stream).
    x : Tensor, shape (batch, L, width)
        The gated SSM output fed to the output projection.
    weight : Tensor, shape (d_model, width)
    bias : Tensor, shape (d_model,), or None

    Returns
    -------
    ndarray, float64, shape (batch, L, d_model)
    """
    out = F.linear(x.double(), weight.double(), None if bias is None else bias.double())
    return (u.double() + out).numpy()


def layer_input(family: str, index: int, u: Any, d_model: int) -> torch.Tensor:
    """Check and convert a layer input to float32 (batch, L, d_model)."""
    t = as_float_tensor("u", u)
    if t.ndim != 3:
        raise ShapeError(
            f"{family} layer {index}: ltv(u) needs u of shape (batch, L, d_model={d_model}), got {tuple(t.shape)}"
        )
    if t.shape[-1] != d_model:
        raise ShapeError(
            f"{family} layer {index}: ltv(u) expects input width d_model = {d_model}, got {t.shape[-1]} "
            f"(u has shape {tuple(t.shape)})"
        )
    if t.shape[1] == 0:
        raise ShapeError(f"{family} layer {index}: ltv(u) needs at least one token, got L = 0")
    if not torch.isfinite(t).all():
        raise NonFiniteError(f"{family} layer {index}: the input u contains NaN or Inf")
    return t


def validate_params(
    family: str,
    index: int,
    params: Mapping[str, Any],
    expected: Mapping[str, tuple[int, ...]],
    optional: frozenset[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """Check every expected key is present with its shape and finite; return float32 tensors.

    Keys outside ``expected`` (e.g. an MLP sub-block's weights in the same state_dict) are dropped.

    Raises
    ------
    CheckpointError
        A required key is missing.
    ShapeError
        A tensor's shape differs from the expected one (the message names key, expected and found shape).
    NonFiniteError
        A tensor holds NaN or Inf.
    """
    missing = [k for k in expected if k not in params and k not in optional]
    if missing:
        raise CheckpointError(
            f"{family} layer {index}: missing parameter(s) {', '.join(missing)}; "
            f"expected the keys of one block relative to the block: {', '.join(expected)}"
        )
    out: dict[str, torch.Tensor] = {}
    for key, shape in expected.items():
        if key not in params:
            continue
        t = as_float_tensor(key, params[key])
        if tuple(t.shape) != tuple(shape):
            raise ShapeError(
                f"{family} layer {index}: parameter {key} has shape {tuple(t.shape)}, expected {tuple(shape)}"
            )
        if not torch.isfinite(t).all():
            n_bad = int((~torch.isfinite(t)).sum())
            raise NonFiniteError(f"{family} layer {index}: parameter {key} has {n_bad} NaN/Inf entries")
        out[key] = t
    return out


def shape_of(params: Mapping[str, Any], key: str, family: str, ndim: int) -> tuple[int, ...]:
    """Shape of ``params[key]`` (tensor or array) with a clear error when missing or of the wrong rank."""
    if key not in params:
        raise CheckpointError(f"{family}: cannot infer sizes, parameter {key} is missing")
    shape = tuple(int(s) for s in np.shape(params[key]))
    if len(shape) != ndim:
        raise ShapeError(f"{family}: parameter {key} should have {ndim} dimension(s), found shape {shape}")
    return shape
