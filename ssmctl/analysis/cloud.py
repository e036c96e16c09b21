"""Eigenvalue clouds: the discrete eigenvalues of anything ssmctl can hold, flattened for plots and tables.

LTI objects give their eigenvalues; input-dependent layers give Ā_t over a batch of random inputs
(unit-RMS Gaussian at the layer input), the convention of ``ssmctl figures`` and ``ssmctl eig``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ShapeError
from ..systems.lti import DenseLTI, DiagonalLTI
from ..systems.ltv import LTVSystem, _np
from .spectrum import eigenvalues

__all__ = ["eigenvalue_cloud", "random_layer_input", "CLOUD_INPUT"]

# Stated in figure captions and JSON so a reader knows what the LTV clouds were computed on.
CLOUD_INPUT = {"distribution": "gaussian", "rms": 1.0, "batch": 4, "length": 256, "seed": 0}


def random_layer_input(
    d_model: int, batch: int = CLOUD_INPUT["batch"], length: int = CLOUD_INPUT["length"], seed: int = 0
) -> np.ndarray:
    """Unit-RMS Gaussian input at a layer's input, shape (batch, length, d_model), float32.

    Parameters
    ----------
    d_model : int
        Channels of the layer input.
    batch : int, default 4
        Number of sequences (``CLOUD_INPUT["batch"]``).
    length : int, default 256
        Tokens per sequence (``CLOUD_INPUT["length"]``).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same input.

    Returns
    -------
    ndarray, float32, shape (batch, length, d_model)
        Independent standard normal entries.
    """
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, length, d_model)).astype(np.float32)


def _distinct(lam: Any) -> Any:
    """Collapse dims along which a tensor is a broadcast view (stride 0), e.g. Mamba-2's one Ā_t per head
    spread over headdim × N: each distinct value is kept once, so quantiles are unchanged (every value has
    the same multiplicity) while memory is not multiplied by headdim·N."""
    if hasattr(lam, "stride"):
        index = tuple(0 if (st == 0 and n > 1) else slice(None) for st, n in zip(lam.stride(), lam.shape))
        return lam[index]
    return lam


def eigenvalue_cloud(obj: Any, *, batch: int | None = None, length: int | None = None, seed: int = 0) -> np.ndarray:
    """All discrete eigenvalues of a system, layer, model, LTV system or array, flattened.

    Parameters
    ----------
    obj : DiagonalLTI, DenseLTI, LTVSystem, Layer, Model or array_like
        LTV layers are driven by :func:`random_layer_input` (``batch`` × ``length`` tokens). A model gives
        the concatenation over its layers; an LTVSystem gives its Ā_t (values repeated only by broadcasting
        are kept once); an array is flattened as it is.
    batch : int or None, default None
        Sequences of the random input for LTV layers; None means ``CLOUD_INPUT["batch"]`` (4).
    length : int or None, default None
        Tokens of the random input for LTV layers; None means ``CLOUD_INPUT["length"]`` (256).
    seed : int, default 0
        Seed of the random input; layer ``i`` of a model uses ``seed + i``.

    Returns
    -------
    ndarray, complex128, shape (n,)
        Every eigenvalue (for LTV layers every Ā_t entry over batch, tokens, channels and states).

    Raises
    ------
    ShapeError
        If ``obj`` is none of the above and cannot be converted to a complex array.
    """
    if isinstance(obj, (DiagonalLTI, DenseLTI)):
        return eigenvalues(obj).reshape(-1)
    if isinstance(obj, LTVSystem):
        return np.asarray(_np(_distinct(obj.lam)), dtype=np.complex128).reshape(-1)
    if hasattr(obj, "layers"):
        return np.concatenate([eigenvalue_cloud(layer, batch=batch, length=length, seed=seed) for layer in obj.layers])
    if hasattr(obj, "system") and hasattr(obj, "kind"):
        if obj.kind == "LTI":
            return np.asarray(obj.eigenvalues(), dtype=np.complex128).reshape(-1)
        d_model = int(obj.config.get("d_model"))
        u = random_layer_input(
            d_model, batch or CLOUD_INPUT["batch"], length or CLOUD_INPUT["length"], seed=seed + obj.index
        )
        return eigenvalue_cloud(obj.ltv(u))
    try:
        return np.asarray(obj, dtype=np.complex128).reshape(-1)
    except (TypeError, ValueError):
        raise ShapeError(f"cannot take eigenvalues of a {type(obj).__name__}") from None
