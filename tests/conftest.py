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
def read_only_dir(tmp_path, monkeypatch):
    """A folder with mode 0o555 that this process cannot write into.

    Root writes into such folders anyway (CI containers often run as root), so there ``os.access`` is made to
    answer for ``ro`` as the mode bits do for everyone else: without write permission. Only the answer to the
    permission question changes; a command that skipped asking would still write and fail its test.
    """
    import os

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        (ro / "probe").touch()
    except PermissionError:
        pass
    else:
        (ro / "probe").unlink()
        real_access = os.access
        ro_real = os.path.realpath(ro)

        def access(path, mode, *args, **kwargs):
            inside = os.path.commonpath([os.path.realpath(path), ro_real]) == ro_real
            if inside and mode & os.W_OK:
                return False
            return real_access(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)
    yield ro
    ro.chmod(0o755)
