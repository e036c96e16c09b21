"""The compiled CPU scan kernel: its exp against torch's, NaN propagation, awkward tile shapes, threads, the
C-level argument guard, and building / falling back in fresh processes (cache folder, no compiler, disabled).
Its agreement with the float64 reference twin on the families' shapes is in test_scan.py."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from ssmctl.engine import native
from ssmctl.engine.native import native_available, native_status
from ssmctl.engine.scan import selective_scan, selective_scan_ref

needs_native = pytest.mark.skipif(not native_available(), reason=native_status())
REPO = Path(__file__).resolve().parents[2]


def _rel(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def _decays(dt: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """One token, one state, h0 = 1, no input, C = 1: the kernel returns y = exp(dt·A) per channel."""
    H, dtype = dt.numel(), dt.dtype
    one = torch.ones(1, 1, 1, 1, dtype=dtype)
    res = selective_scan(dt.view(1, 1, H), A.view(H, 1), torch.zeros(1, 1, H, 1, dtype=dtype), one, one,
                         torch.ones(1, H, 1, 1, dtype=dtype), backend="native")
    return res.y.view(H)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_matches_torch_over_the_whole_range(dtype):
    # exponents from -85 (near float32's smallest normal) to 0, densely. exp's condition number is |x|: the
    # rounding of x·log2(e) alone costs |x|·eps, so the bound is a small multiple of (|x| + 1)·eps.
    x = torch.cat([torch.logspace(-8, np.log10(85.0), 4001, dtype=torch.float64),
                   torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64)]).to(dtype)
    got = _decays(x, -torch.ones_like(x))
    exact = torch.exp(-x.double())
    eps = torch.finfo(dtype).eps / 2
    assert float(((got.double() - exact).abs() / exact / ((x.double() + 1) * eps)).max()) < 2.0
    assert float(_decays(torch.zeros(1, dtype=dtype), -torch.ones(1, dtype=dtype))) == 1.0


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_underflows_to_zero_and_overflows_to_inf(dtype):
    dt = torch.tensor([1e4, 1e4], dtype=dtype)
    got = _decays(dt, torch.tensor([-1.0, 1.0], dtype=dtype))
    assert float(got[0]) == 0.0 and float(got[1]) == float("inf")


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nan_propagates_from_its_token_on_and_only_in_its_channel(dtype):
    g = torch.Generator().manual_seed(1)
    dt = torch.rand(1, 12, 20, generator=g, dtype=dtype)
    A = -torch.rand(20, 4, generator=g, dtype=dtype)
    v = torch.randn(1, 12, 20, 1, generator=g, dtype=dtype)
    B, C = torch.randn(1, 12, 1, 4, generator=g, dtype=dtype), torch.randn(1, 12, 1, 4, generator=g, dtype=dtype)
    dt[0, 5, 3] = float("nan")
    v[0, 7, 11, 0] = float("nan")
    y = selective_scan(dt, A, v, B, C, backend="native").y[0, :, :, 0]
    bad = torch.isnan(y)
    assert bad[:, 3].tolist() == [False] * 5 + [True] * 7
    assert bad[:, 11].tolist() == [False] * 7 + [True] * 5
    assert int(bad.sum()) == 12


@needs_native
@pytest.mark.parametrize(
    "shape",
    [
        (2, 23, 10, 3, 5, 4, 4),  # groups of 2 channels: tiles end at every group boundary
        (1, 19, 3, 70, 1, 6, 1),  # more inputs than a tile's lanes: one channel per tile, lanes padded
        (2, 17, 1100, 1, 1, 1, 1),  # RG-LRU-like: tiles of 1024 lanes, a partial last one padded to whole vectors
        (1, 9, 5, 1, 1, 33, 33),  # odd state count
    ],
)
def test_awkward_tiles_match_the_reference(shape):
    batch, L, H, P, G, N, Na = shape
    g = torch.Generator().manual_seed(2)
    f64 = torch.float64
    dt = torch.rand(batch, L, H, generator=g, dtype=f64)
    A = -3 * torch.rand(H, Na, generator=g, dtype=f64)
    v = torch.randn(batch, L, H, P, generator=g, dtype=f64)
    B, C = torch.randn(batch, L, G, N, generator=g, dtype=f64), torch.randn(batch, L, G, N, generator=g, dtype=f64)
    h0 = torch.randn(batch, H, P, N, generator=g, dtype=f64)
    got = selective_scan(dt, A, v, B, C, h0, return_states=True, backend="native")
    ref = selective_scan_ref(dt, A, v, B, C, h0)
    for name in ("y", "h_last", "states"):
        assert _rel(getattr(got, name), getattr(ref, name)) < 1e-12, name


@needs_native
def test_threads_split_channels_without_changing_a_bit(monkeypatch):
    g = torch.Generator().manual_seed(3)
    dt = torch.rand(2, 40, 100, generator=g)
    A = -torch.rand(100, 8, generator=g)
    v = torch.randn(2, 40, 100, 1, generator=g)
    B, C = torch.randn(2, 40, 1, 8, generator=g), torch.randn(2, 40, 1, 8, generator=g)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = selective_scan(dt, A, v, B, C, backend="native")
        torch.set_num_threads(3)
        monkeypatch.setattr(native, "_THREAD_MIN_WORK", 0)
        three = selective_scan(dt, A, v, B, C, backend="native")
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one.y, three.y) and torch.equal(one.h_last, three.h_last)


@needs_native
def test_the_kernel_refuses_inconsistent_sizes():
    lib = native._load()
    buf = torch.zeros(64)
    p = buf.data_ptr()
    # Na must be N or 1; H must be a multiple of G; the channel range must lie inside [0, H)
    assert lib.ssmctl_scan_f32(1, 1, 2, 1, 1, 4, 3, p, p, p, p, p, p, p, None, 0, 2) == -1
    assert lib.ssmctl_scan_f32(1, 1, 3, 1, 2, 4, 4, p, p, p, p, p, p, p, None, 0, 3) == -1
    assert lib.ssmctl_scan_f32(1, 1, 2, 1, 1, 4, 4, p, p, p, p, p, p, p, None, 0, 5) == -1
    assert lib.ssmctl_scan_f32(1, 1, 2, 1, 1, 4, 4, p, p, p, p, p, p, p, None, 0, 2) == 0
    # past selective_scan's shape checks the refusal surfaces as NativeScanError, naming the shapes
    one = torch.ones(1, 1, 2, 1)
    with pytest.raises(native.NativeScanError, match=r"rejected its arguments \(code \[-1\]\); shapes dt \(1, 1, 2\)"):
        native.native_scan(torch.ones(1, 1, 2), -torch.ones(2, 3), one, torch.ones(1, 1, 1, 4), torch.ones(1, 1, 1, 4),
                           None, False)


_PROBE = textwrap.dedent(
    """
    import torch
    from ssmctl.engine.native import native_available, native_status
    from ssmctl.engine.scan import selective_scan
    x = torch.rand(1, 5, 3)
    res = selective_scan(x, -torch.ones(3, 2), torch.randn(1, 5, 3, 1), torch.randn(1, 5, 1, 2), torch.randn(1, 5, 1, 2))
    print(native_available(), res.backend, "|", native_status())
    """
)


def _probe(tmp_path: Path, **env: str) -> str:
    full = {**os.environ, "SSMCTL_CACHE_DIR": str(tmp_path / "cache"), **env}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=full, cwd=REPO,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@needs_native
def test_a_fresh_process_builds_into_the_cache_folder_then_reuses_it(tmp_path):
    first = _probe(tmp_path)
    assert first.startswith("True native |") and "native C kernel" in first
    built = list((tmp_path / "cache").glob("selective_scan-*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    assert _probe(tmp_path).startswith("True native |")
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


@needs_native
def test_a_folder_others_can_write_to_is_not_used(tmp_path):
    shared = tmp_path / "cache"
    shared.mkdir()
    shared.chmod(0o777)  # e.g. a cache folder in a shared place: a planted library there must not be loaded
    (tmp_path / "tmp").mkdir()
    out = _probe(tmp_path, TMPDIR=str(tmp_path / "tmp"))
    assert out.startswith("True native |")
    assert not list(shared.glob("*.so")) and list((tmp_path / "tmp").glob("ssmctl-*/selective_scan-*.so"))
    (private,) = (tmp_path / "tmp").glob("ssmctl-*")
    assert private.stat().st_mode & 0o777 == 0o700


def test_disabled_or_uncompilable_falls_back_to_the_tensor_scan(tmp_path):
    off = _probe(tmp_path, SSMCTL_NATIVE="0")
    assert off.startswith("False tensor |") and "disabled by SSMCTL_NATIVE=0" in off
    broken = _probe(tmp_path, CC="false")  # a "compiler" that always fails
    assert broken.startswith("False tensor |") and "native kernel unavailable" in broken and "false" in broken
