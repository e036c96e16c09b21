"""Shared fixtures: random stable systems in every output mode."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

import ssmctl  # noqa: E402


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=["complex", "real", "conj_pair"])
def output_mode(request):
    return request.param
