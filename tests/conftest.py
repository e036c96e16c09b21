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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waiting on a shared CPU (restored afterwards)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def read_only_dir(tmp_path):
    """A folder with mode 0o555; skips where this process writes into it anyway (root)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except PermissionError:
        pass
    else:
        ro.chmod(0o755)
        pytest.skip("this process (root) writes into read-only folders")
    yield ro
    ro.chmod(0o755)
