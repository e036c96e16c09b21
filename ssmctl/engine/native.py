"""The CPU fast path of the selective scan: a small C kernel, compiled on first use and called through ctypes.

On the CPU the eager-tensor form of :func:`~ssmctl.engine.scan.selective_scan` is bound by memory passes
(about nine over the tokens × channels × states of each slab), not arithmetic. The kernel in
``_native/selective_scan.c`` is the same recurrence run token after token with each channel's state in L1
cache and the decays exp(Δ_t A) computed in SIMD: one pass. It is plain C with no Python or torch headers,
so building it takes the system C compiler about half a second; the shared library is cached per user,
keyed by the source, the compiler and the CPU (it is built with ``-march=native``).

Nothing here is required: without a C compiler, or with ``SSMCTL_NATIVE=0`` in the environment, the scan
uses its tensor form, which gives the same results. :func:`native_status` says which path is in use and why.
Threads: the channels are split over ``torch.get_num_threads()`` Python threads (ctypes releases the GIL).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

__all__ = ["native_available", "native_status", "native_scan", "NativeScanError"]

_SOURCE = Path(__file__).with_name("_native") / "selective_scan.c"
# No -ffast-math (NaN must propagate, sums stay in order); -fno-trapping-math only lets the compiler turn the
# exp's range checks into vector blends (it will not if-convert a float compare that might raise a flag).
_FLAGS = ["-O3", "-fno-trapping-math", "-march=native", "-shared", "-fPIC"]
_FALLBACK_FLAGS = ["-O3", "-fno-trapping-math", "-shared", "-fPIC"]  # compilers without -march=native
# Below this many state updates per call, thread start-up costs more than it saves.
_THREAD_MIN_WORK = 1 << 20


class NativeScanError(RuntimeError):
    """The compiled kernel rejected its arguments (a bug in the caller, never bad user input)."""


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_status: str | None = None
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def _cache_dir() -> Path:
    if os.environ.get("SSMCTL_CACHE_DIR"):
        return Path(os.environ["SSMCTL_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ssmctl"


def _cpu_signature() -> str:
    """The CPU model and feature flags (``-march=native`` output is only valid on a CPU with the same ones)."""
    try:
        with open("/proc/cpuinfo") as fh:
            lines = [ln for ln in fh if ln.startswith(("model name", "flags", "Features"))]
        return "".join(sorted(set(lines)))
    except OSError:
        return platform.processor() + platform.machine()


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name.split()[0]):
            return name
    return None


def _private_folder(folder: Path) -> None:
    """Create ``folder`` (mode 0700) or check an existing one: a library is only loaded from a folder that this
    user owns and nobody else can write to (another user could otherwise plant one in a shared temp folder)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
        raise OSError(f"{folder} is not private to this user (owner uid {st.st_uid}, mode {st.st_mode & 0o777:o})")


def _compile(cc: str, target: Path) -> str | None:
    """Build the library at ``target`` (atomically); returns None on success, else the compiler's complaint."""
    errors = []
    for flags in (_FLAGS, _FALLBACK_FLAGS):
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=target.parent)
        os.close(fd)
        cmd = [*cc.split(), *flags, "-o", tmp, str(_SOURCE)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as exc:
            proc = None
            errors.append(f"{' '.join(cmd)}: {exc}")
        if proc is not None and proc.returncode == 0:
            os.replace(tmp, target)  # readers never see a half-written library
            return None
        if proc is not None:
            errors.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-400:]}")
        Path(tmp).unlink(missing_ok=True)
    return "; ".join(errors)


def _load() -> ctypes.CDLL | None:
    """Compile (once per source, compiler and CPU) and load the kernel; None when it cannot be had."""
    global _lib, _status
    if _status is not None:
        return _lib
    with _lock:
        if _status is not None:
            return _lib
        if os.environ.get("SSMCTL_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
            _status = "disabled by SSMCTL_NATIVE=0"
            return None
        cc = _compiler()
        if cc is None:
            _status = "no C compiler found (set CC, or install cc/gcc/clang); using the tensor scan"
            return None
        if not _SOURCE.exists():
            _status = f"kernel source missing: {_SOURCE}"
            return None
        try:
            version = subprocess.run([*cc.split(), "--version"], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            version = ""
        key = hashlib.sha256(
            b"\0".join(s.encode() for s in (_SOURCE.read_text(), cc, version, " ".join(_FLAGS), _cpu_signature(),
                                            sys.platform))
        ).hexdigest()[:16]
        user = os.getuid() if hasattr(os, "getuid") else 0
        candidates = [_cache_dir(), Path(tempfile.gettempdir()) / f"ssmctl-{user}"]
        problems = []
        for folder in candidates:
            target = folder / f"selective_scan-{key}.so"
            try:
                _private_folder(folder)
                if not target.exists():
                    err = _compile(cc, target)
                    if err:
                        problems.append(err)
                        break  # the compiler failed: another folder will not help
                lib = ctypes.CDLL(str(target))
            except OSError as exc:
                problems.append(f"{target}: {exc}")
                continue
            _declare(lib)
            _lib, _status = lib, f"native C kernel {target.name} ({cc})"
            return _lib
        _status = "native kernel unavailable (" + " | ".join(problems)[:600] + "); using the tensor scan"
        return None


def _declare(lib: ctypes.CDLL) -> None:
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    for name in ("ssmctl_scan_f32", "ssmctl_scan_f64"):
        fn = getattr(lib, name)
        fn.argtypes = [i64] * 7 + [ptr] * 8 + [i64, i64]
        fn.restype = i64


def native_available() -> bool:
    """Whether the compiled CPU kernel can be used (compiles it on the first call)."""
    return _load() is not None


def native_status() -> str:
    """A line saying which scan the CPU uses and, when it is not the native kernel, why."""
    _load()
    return _status or ""


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != n:
        if _pool is not None:
            _pool.shutdown(wait=False)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=n, thread_name_prefix="ssmctl-scan"), n
    return _pool


def native_scan(
    dt: torch.Tensor,
    A: torch.Tensor,
    v: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor | None,
    return_states: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Run the kernel on CPU tensors already checked by :func:`~ssmctl.engine.scan.selective_scan`.

    Shapes as there; every tensor is cast to v's dtype (float32 or float64).

    Parameters
    ----------
    dt : torch.Tensor, shape (batch, L, H)
        Non-negative rates Δ_t.
    A : torch.Tensor, shape (H, N) or (H, 1)
        Non-positive continuous-time decay rates.
    v : torch.Tensor, shape (batch, L, H, P)
        The scan's inputs.
    B, C : torch.Tensor, shape (batch, L, G, N)
        Input and output vectors, shared by the H/G heads of each group.
    h0 : torch.Tensor, shape (batch, H, P, N), or None
        State before the first token; None means zeros.
    return_states : bool
        Also return every state h_t.

    Returns
    -------
    (y, h_last, states) : y (batch, L, H, P), h_last (batch, H, P, N), states (batch, L, H, P, N) or None;
        or None when the kernel is unavailable or does not handle these inputs (the caller falls back).

    Raises
    ------
    NativeScanError
        When the kernel rejects its arguments (a caller's bug, not bad user input).
    """
    if v.device.type != "cpu" or v.dtype not in (torch.float32, torch.float64):
        return None
    lib = _load()
    if lib is None:
        return None
    batch, L, H, P = v.shape
    G, N = B.shape[2], B.shape[3]
    Na = A.shape[1]
    dtype = v.dtype
    dt, A, v, B, C = (t.to(dtype).contiguous() for t in (dt, A, v, B, C))
    h = torch.zeros(batch, H, P, N, dtype=dtype) if h0 is None else h0.to(dtype).contiguous().clone()
    y = torch.empty(batch, L, H, P, dtype=dtype)
    states = torch.empty(batch, L, H, P, N, dtype=dtype) if return_states else None
    fn = lib.ssmctl_scan_f32 if dtype == torch.float32 else lib.ssmctl_scan_f64
    ptrs = [t.data_ptr() for t in (dt, A, v, B, C, h, y)] + [states.data_ptr() if states is not None else None]
    head = [batch, L, H, P, G, N, Na]

    def run(lo: int, hi: int) -> int:
        return fn(*head, *ptrs, lo, hi)

    threads = max(1, min(torch.get_num_threads(), H))
    if threads == 1 or batch * L * H * P * N < _THREAD_MIN_WORK:
        codes = [run(0, H)]
    else:
        # contiguous channel ranges, multiples of 16 so that no two threads write the same cache line of y
        step = -(-H // threads)
        step = -(-step // 16) * 16
        bounds = [(lo, min(H, lo + step)) for lo in range(0, H, step)]
        codes = list(_executor(threads).map(lambda b: run(*b), bounds))
    if any(codes):
        raise NativeScanError(f"native selective scan rejected its arguments (code {codes}); shapes dt "
                              f"{tuple(dt.shape)}, A {tuple(A.shape)}, v {tuple(v.shape)}, B {tuple(B.shape)}")
    return y, h, states
