"""The GPU fast path of the selective scan: one fused Triton kernel for the three families' recurrences.

The recurrence is :mod:`ssmctl.engine.scan`'s (per-channel decays (H, N) for Mamba, one per head (H, 1) for
Mamba-2, one state per channel for RG-LRU). On a GPU the tensor form makes about ten passes over
(tokens × channels × states) memory; this kernel reads Δ, v, B, C once and writes y and the final state once.

Each program owns a block of lanes (a lane is one (channel, input) pair; the lanes of a program share one group
of B/C) and a block of states, and walks the tokens in chunks of ``T`` tokens. A chunk is loaded as (lanes × T)
and (states × T) tiles, its decays exp2(Δ·A·log2 e) and inputs v·B formed as a (lanes × states × T) tile and
combined by an associative scan along the tokens with (a₁, b₁)∘(a₂, b₂) = (a₁a₂, a₂b₁ + b₂) — products and sums
of the inputs only, exact for every decay (no overflow-prone factor e^{+AG} as in the tensor form), and a NaN
reaches only the tokens at and after it. The state entering the chunk is added with the chunk's running decay
product, y_t = Σ_n C_t[n] h_t[n] is reduced in registers, and the chunk's last state carries to the next.
With more than one block of states, each block writes its partial sums of y and a small torch sum adds them.

Nothing here is required: without triton (``pip install ssmctl[gpu]``) or a GPU, the scan uses its other forms.
Tests run the kernel on CPU tensors in Triton's interpreter (``TRITON_INTERPRET=1`` set before the kernel's first
use, which defines it). :func:`triton_status` says whether the kernel can run and why not.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from ..errors import SsmctlError

__all__ = ["triton_available", "triton_status", "triton_scan", "triton_interpreting"]

_LOG2E = 1.4426950408889634


def triton_interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1`` in the environment)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


@lru_cache(maxsize=1)
def _kernels():
    """Import triton and define the kernel (once); None and the reason when triton cannot be imported."""
    try:
        from . import _triton_kernel
    except Exception as exc:  # ImportError, or a broken install raising anything on import
        return None, f"triton is not installed or failed to import ({type(exc).__name__}: {exc})"

    return {"dnt": _triton_kernel._scan_kernel, "tnd": _triton_kernel._scan_kernel_tokens_first}, ""


def triton_status() -> str:
    """A line saying whether the Triton scan can run (on CUDA, or on the CPU in the interpreter), else why not."""
    kernels, why = _kernels()
    if kernels is None:
        return why
    if triton_interpreting():
        return "triton kernel (interpreter: TRITON_INTERPRET=1)"
    if not torch.cuda.is_available():
        return "triton is installed but torch sees no CUDA device"
    return "triton kernel on CUDA"


def triton_available(device: torch.device | str = "cuda") -> bool:
    """Whether the kernel can run on tensors of ``device`` (CUDA, or any device when interpreting).

    Parameters
    ----------
    device : torch.device or str, default "cuda"
        Where the tensors live.

    Returns
    -------
    bool
    """
    if _kernels()[0] is None:
        return False
    dev = torch.device(device)
    if triton_interpreting():
        return dev.type == "cpu"
    return dev.type == "cuda" and torch.cuda.is_available()


def _tiles(lanes: int, N: int, dtype: torch.dtype) -> tuple[int, int, int, int, str]:
    """(BLOCK_D, BLOCK_N, T, num_warps, layout): ~4k states × tokens per tile (2k in float64), powers of two.

    layout "dnt": tiles (lanes, states, tokens), scanned along the last axis; "tnd": (tokens, states, lanes).
    ``SSMCTL_TRITON_TILES="D,N,T,W[,layout]"`` in the environment overrides the choice for the layers whose
    states fit one block of N (2 ≤ N ≤ pow2(states) ≤ 32: Mamba-1's sizes), e.g. with the benchmark's best.
    The interpreter scans a tile element by element in Python: there, the smallest tiles that fit the sizes.
    """
    if triton_interpreting():
        return min(8, _pow2(lanes)), max(2, min(8, _pow2(N))), 8, 1, "dnt"
    override = _env_tiles()
    if override is not None and 2 <= override[1] <= _pow2(N) <= 32:
        return override
    block_n = max(2, min(32, _pow2(N)))
    budget = 4096 if dtype == torch.float32 else 2048
    T = 16
    block_d = max(8, min(128, budget // (block_n * T), _pow2(lanes)))
    return block_d, block_n, T, 4, "dnt"


def _env_tiles() -> tuple[int, int, int, int, str] | None:
    text = os.environ.get("SSMCTL_TRITON_TILES", "").strip()
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        nums = [int(p) for p in parts[:4]]
    except ValueError:
        nums = []
    layout = parts[4] if len(parts) > 4 else "dnt"
    if len(nums) != 4 or any(x < 1 or x & (x - 1) for x in nums) or layout not in ("dnt", "tnd") or len(parts) > 5:
        raise SsmctlError(f"SSMCTL_TRITON_TILES={text!r}: expected 'D,N,T,W' or 'D,N,T,W,layout' with powers of "
                          "two and layout 'dnt' or 'tnd'")
    return nums[0], nums[1], nums[2], nums[3], layout


def _pow2(n: int) -> int:
    """The smallest power of two ≥ n (n ≥ 1)."""
    return 1 << (max(1, n) - 1).bit_length()


def triton_scan(
    dt: torch.Tensor,
    A: torch.Tensor,
    v: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    h0: torch.Tensor | None,
    return_states: bool,
    tiles: tuple[int, int, int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Run the kernel on tensors already checked by :func:`~ssmctl.engine.scan.selective_scan`.

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
    tiles : (BLOCK_D, BLOCK_N, T, num_warps[, layout]), optional
        Tile sizes (powers of two) and layout ("dnt", the default, or "tnd"); default chosen from the sizes
        (benchmarks sweep them).

    Returns
    -------
    (y, h_last, states) : y (batch, L, H, P), h_last (batch, H, P, N), states (batch, L, H, P, N) or None, in
        v's dtype (float32 or float64); or None when the kernel cannot run on these tensors (the caller falls
        back to another form).
    """
    if v.dtype not in (torch.float32, torch.float64) or not triton_available(v.device):
        return None
    kernels, _ = _kernels()
    batch, L, H, P = v.shape
    G, N = B.shape[2], B.shape[3]
    dtype, dev = v.dtype, v.device
    dt, v, B, C = (t.to(dtype).contiguous() for t in (dt, v, B, C))
    A2 = (A.to(dtype) * _LOG2E).contiguous()
    lanes = H // G * P
    block_d, block_n, T, warps, *layout = tiles or _tiles(lanes, N, dtype)
    kernel = kernels[layout[0] if layout else "dnt"]
    n_blocks = -(-N // block_n)
    h_out = torch.empty(batch, H, P, N, dtype=dtype, device=dev)
    h_in = h_out if h0 is None else h0.to(dtype).contiguous()
    y = torch.empty((n_blocks,) * (n_blocks > 1) + (batch, L, H, P), dtype=dtype, device=dev)
    states = torch.empty(batch, L, H, P, N, dtype=dtype, device=dev) if return_states else None
    grid = (-(-lanes // block_d), batch * G, n_blocks)
    kernel[grid](
        dt, A2, v, B, C, h_in, h_out, y, states if states is not None else y,
        batch, L, H, P, G, N, lanes,
        BLOCK_D=block_d, BLOCK_N=block_n, T=T, SCALAR_A=A.shape[1] == 1, HAS_H0=h0 is not None,
        STORE_STATES=states is not None, PARTIAL_Y=n_blocks > 1, num_warps=warps,
    )
    if n_blocks > 1:
        y = y.sum(0)
    return y, h_out, states
