"""Helpers the LTI families (S4, S4D, S5, LRU) share: parameter checks, random draws (hyperparameters: _hyper).

Private: the public faces are each family's ``init`` and ``layer_from_params``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np
from scipy import special

from ..errors import CheckpointError, NonFiniteError, ShapeError, unknown_name

__all__ = [
    "check_choice",
    "fetch_param",
    "with_extras",
    "log_uniform",
    "truncated_normal",
    "complex_normal",
    "real_view",
    "complex_of",
    "system_meta",
]


def check_choice(family: str, kind: str, value: Any, known: tuple[str, ...]) -> str:
    if value not in known:
        raise unknown_name(f"{family} {kind}", value, known)
    return str(value)


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, possibly bf16/f16 or on an accelerator
        value = value.detach().cpu()
        if str(value.dtype) in ("torch.bfloat16", "torch.float16"):
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def fetch_param(
    family: str,
    index: int,
    params: Mapping[str, Any],
    key: str,
    expected: tuple[int | None, ...],
    spec: str,
) -> np.ndarray:
    """One parameter as a real float array, checked for presence, shape and finiteness.

    Parameters
    ----------
    expected : tuple
        Expected shape; ``None`` entries accept any size (they are inferred from this array).
    spec : str
        The symbolic shape for messages, e.g. ``"(H, N/2, 2)"``.

    Returns
    -------
    ndarray, float32 or float64 (float16/bfloat16 are upcast to float32)
    """
    where = f"{family} layer {index}"
    if key not in params:
        raise CheckpointError(
            f"{where}: missing parameter {key!r} (expected shape {spec}); found keys: {', '.join(sorted(params))}"
        )
    arr = _to_numpy(params[key])
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise ShapeError(f"{where}: parameter {key!r} must be a real float array, got dtype {arr.dtype}")
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    elif arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32 if arr.dtype.itemsize < 4 else np.float64)
    ok = arr.ndim == len(expected) and all(e is None or e == s for e, s in zip(expected, arr.shape))
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise ShapeError(f"{where}: parameter {key!r} has shape {arr.shape}, expected {spec} = {shown}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = np.argwhere(bad)[0].tolist()
        raise NonFiniteError(
            f"{where}: parameter {key!r} has {int(bad.sum())} non-finite value(s) (first at index {first})"
        )
    return arr


def with_extras(
    family: str, index: int, params: Mapping[str, Any], own: Mapping[str, Any], consumed: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A layer's parameters: its family's own (fetched and checked) and the block's other tensors, kept as given.

    The other tensors (e.g. state-spaces/s4's ``output_linear.*`` beside the kernel) are kept for the user
    once they are known to be finite, so a loaded layer never holds NaN/Inf.

    Parameters
    ----------
    family : str
        Family name, for messages.
    index : int
        Layer index, for messages.
    params : mapping
        Every tensor of the block as given to ``layer_from_params``.
    own : mapping
        The family's parameters, already checked by :func:`fetch_param`; they win over ``params``.
    consumed : tuple of str
        Keys of ``params`` the family read into its config (e.g. a buffer), dropped from the parameters.

    Returns
    -------
    dict
        The other tensors in the order of ``params``, then ``own``.

    Raises
    ------
    NonFiniteError
        NaN or Inf in one of the other tensors (the key is named).
    """
    extras = {k: v for k, v in params.items() if k not in own and k not in consumed}
    for key, value in extras.items():
        arr = _to_numpy(value)
        if np.issubdtype(arr.dtype, np.inexact):
            bad = ~np.isfinite(arr)
            if bad.any():
                raise NonFiniteError(f"{family} layer {index}: tensor {key!r} has {int(bad.sum())} NaN/Inf entries")
    return {**extras, **own}


def log_uniform(rng: np.random.Generator, shape: tuple[int, ...], lo: float, hi: float) -> np.ndarray:
    """log x ~ U[log lo, log hi): the Δ init of S4, S4D and S5 (returns log x)."""
    return rng.random(shape) * (math.log(hi) - math.log(lo)) + math.log(lo)


def truncated_normal(rng: np.random.Generator, shape: tuple[int, ...], variance: float) -> np.ndarray:
    """jax.nn.initializers.variance_scaling(..., "truncated_normal"): N(0,1) cut at ±2, rescaled to ``variance``."""
    lo, hi = special.ndtr(-2.0), special.ndtr(2.0)
    z = special.ndtri(lo + rng.random(shape) * (hi - lo))  # inverse-CDF sampling inside [−2, 2]
    # 0.8796… is the standard deviation of N(0,1) truncated to [−2, 2] (the constant jax uses).
    return z * (math.sqrt(variance) / 0.87962566103423978)


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """torch.randn(..., dtype=cfloat): real and imaginary parts each N(0, ½), so E|z|² = 1."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * math.sqrt(0.5)


def real_view(z: np.ndarray) -> np.ndarray:
    """torch.view_as_real: a trailing axis of 2 holding (Re, Im)."""
    z = np.asarray(z)
    return np.stack([z.real, z.imag], axis=-1).astype(np.float64)


def system_meta(family: str, index: int) -> dict[str, Any]:
    """The ``meta`` of a layer's LTI system: family, layer index and the label plots and reports show."""
    return {"family": family, "layer": index, "label": f"{family} layer {index}"}


def complex_of(x: np.ndarray) -> np.ndarray:
    """torch.view_as_complex: (..., 2) real → (...) complex128."""
    x = np.asarray(x, dtype=np.float64)
    return x[..., 0] + 1j * x[..., 1]
