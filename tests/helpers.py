"""Builders shared by the tests."""

from __future__ import annotations

import numpy as np
import pytest

import ssmctl


def _transformers_older_than(version: str) -> bool:
    """Whether the installed transformers is older than ``version`` (False when it is not installed)."""
    try:
        import transformers
        from packaging.version import Version
    except ImportError:
        return False
    return Version(transformers.__version__) < Version(version)


# Mamba-2's gated RMSNorm normalizes each of the n_groups groups of d_inner separately (mamba_ssm, and ssmctl);
# transformers before 5.25 normalized over all of d_inner, so a block with n_groups > 1 differs there.
needs_grouped_gated_norm = pytest.mark.skipif(
    _transformers_older_than("5.25"),
    reason="transformers < 5.25: Mamba-2's gated RMSNorm ignores n_groups (fixed in 5.25; the dev extra needs it)",
)


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
