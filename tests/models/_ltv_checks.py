"""Checks shared by the input-dependent families' tests (Mamba, Mamba-2, RG-LRU) against transformers."""

from __future__ import annotations

import numpy as np
import torch


def rel_err(a, b) -> float:
    """max |a − b| / max |b| (tensors or arrays, compared in float64)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def block_input(batch: int, length: int, d_model: int) -> torch.Tensor:
    """A fixed random residual-stream input (batch, L, d_model), float32."""
    return torch.randn(batch, length, d_model, generator=torch.Generator().manual_seed(1))


def assert_block_output(ours: np.ndarray, ref: np.ndarray, u: torch.Tensor, rtol: float = 1e-4) -> None:
    """The block output, and the mixer's share of it alone, which the residual u could otherwise hide."""
    base = u.double().numpy()
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < rtol
    assert rel_err(ours - base, ref - base) < rtol
