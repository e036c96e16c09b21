"""Builders shared by the tests."""

from __future__ import annotations

import numpy as np

import ssmctl


def random_diagonal(rng, N=5, m=2, p=3, output="conj_pair", batch=(), radius=(0.2, 0.95), complex_lam=True):
    """A random stable DiagonalLTI; eigenvalue moduli drawn inside ``radius``."""
    r = rng.uniform(*radius, size=batch + (N,))
    phase = rng.uniform(-np.pi, np.pi, size=batch + (N,)) if complex_lam else np.zeros(batch + (N,))
    lam = r * np.exp(1j * phase)
    B = rng.normal(size=batch + (N, m)) + 1j * rng.normal(size=batch + (N, m))
    C = rng.normal(size=batch + (p, N)) + 1j * rng.normal(size=batch + (p, N))
    D = rng.normal(size=batch + (p, m))
    if output == "complex":
        D = D + 1j * rng.normal(size=batch + (p, m))
    return ssmctl.DiagonalLTI(lam, B, C, D, output=output)
