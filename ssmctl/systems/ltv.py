"""Linear time-varying (input-dependent) systems: the per-token view of S6/Mamba, Mamba-2, RG-LRU.

``LTVSystem`` holds, for one input batch, the diagonal Ā_t, B̄_t, C_t (and Δ_t where the family has one) of
h_t = Ā_t h_{t-1} + B̄_t u_t, y_t = C_t h_t + D u_t. Shapes put batch and token first:
lam (batch, L, *channels, N), B (batch, L, *channels, N, m), C (batch, L, *channels, p, N),
D (*channels, p, m), dt (batch, L, *channels). The fast chunked engine for long inputs is a separate piece;
this container and its sequential reference (:meth:`LTVSystem.simulate_ref`) define the semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ShapeError
from .lti import DiagonalLTI, OutputMode

__all__ = ["LTVSystem"]


def _np(x: Any) -> np.ndarray:
    """numpy view of an array or torch tensor (real tensors upcast to float64)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        return (x if x.is_complex() else x.double()).numpy()
    return np.asarray(x)


@dataclass
class LTVSystem:
    """Per-token diagonal system of an input-dependent layer (see module docstring for shapes)."""

    lam: Any
    B: Any
    C: Any
    D: Any
    dt: Any = None
    output: OutputMode = "real"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        lam, B, C = (np.shape(x) for x in (self.lam, self.B, self.C))
        if len(lam) < 3 or B[:-1] != lam or C[:-2] + C[-1:] != lam:
            raise ShapeError(
                f"LTVSystem needs lam (batch, L, ..., N), B (batch, L, ..., N, m), C (batch, L, ..., p, N); "
                f"got lam {lam}, B {B}, C {C}"
            )

    @property
    def batch_size(self) -> int:
        return int(np.shape(self.lam)[0])

    @property
    def length(self) -> int:
        return int(np.shape(self.lam)[1])

    @property
    def channel_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.lam)[2:-1])

    def frozen(self, t: int) -> DiagonalLTI:
        """The frozen-time LTI system at token ``t``: batch dims (batch, *channels)."""
        if not -self.length <= t < self.length:
            raise ShapeError(f"token index {t} outside the sequence of length {self.length}")
        D = _np(self.D)
        return DiagonalLTI(
            _np(self.lam)[:, t], _np(self.B)[:, t], _np(self.C)[:, t], D, output=self.output,
            meta={**self.meta, "frozen_at": int(t)},
        )

    def simulate_ref(self, u: Any) -> np.ndarray:
        """Plain sequential float64 recurrence (the reference twin of any fast scan).

        Parameters
        ----------
        u : array, shape (batch, L, *channels, m)

        Returns
        -------
        y : ndarray, shape (batch, L, *channels, p)
        """
        lam, B, C, D = (np.asarray(_np(x), dtype=np.complex128) for x in (self.lam, self.B, self.C, self.D))
        u = np.asarray(_np(u), dtype=np.float64)
        h = np.zeros(lam.shape[:1] + lam.shape[2:], dtype=np.complex128)
        ys = []
        for t in range(self.length):
            h = lam[:, t] * h + (B[:, t] @ u[:, t][..., None])[..., 0]
            y = (C[:, t] @ h[..., None])[..., 0]
            y = y if self.output == "complex" else (2.0 if self.output == "conj_pair" else 1.0) * y.real
            ys.append(y + (D @ u[:, t][..., None])[..., 0])
        return np.stack(ys, axis=1)
