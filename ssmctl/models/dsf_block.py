"""A sequence mixer written as factors around its DSF core, at one input (for the block-scope Φ).

Every mixer ssmctl knows maps its input x (batch, L, d_in) to its output through

    v = conv(W_in x + b_in) + b_conv          per core channel c; conv causal depthwise, absent for attention
    x̃ = a ⊙ v                                 a: the activation as a diagonal factor, SiLU(v) = σ(v)·v
    ỹ = Φ_core x̃                              the DSF core, per channel
    out = W_out (g ⊙ ỹ) + b_out               g: the output gate (and norm scale) as a diagonal factor

so that at that input out = Φ_block x + offset, with Φ_block = W_out·diag(g)·Φ_core·diag(a)·T_conv·W_in.
Each family's ``dsf_block(layer, u)`` fills one :class:`BlockFactors`; analysis/dsf.py assembles Φ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["BlockFactors"]


@dataclass
class BlockFactors:
    """The factors of a mixer at one input (float64 torch tensors; C core channels, core-channel order).

    Attributes
    ----------
    inputs : Tensor, shape (batch, L, d_in)
        The mixer's input x (after the block's pre-norm).
    w_in : Tensor, shape (C, d_in)
    b_in : Tensor, shape (C,), or None
    w_out : Tensor, shape (p, C)
    b_out : Tensor, shape (p,), or None
    core : LTVSystem or None
        The DSF core (channels flattened in this order); ``None`` when ``core_rows`` is given.
    core_rows : callable or None
        ``core_rows(r0, r1)`` → Φ_core rows r0..r1−1, shape (batch, C, r1 − r0, L): a core known in closed
        form (attention's α, softmax included).
    conv_w : Tensor, shape (C, 1, width), or None
        torch Conv1d layout: ``conv_w[c, 0, width−1]`` multiplies the current token.
    conv_b : Tensor, shape (C,), or None
    act : Tensor, shape (batch, L, C), or None (identity)
    gate : Tensor, shape (batch, L, C), or None (identity)
    """

    inputs: Any
    w_in: Any
    b_in: Any
    w_out: Any
    b_out: Any
    core: Any = None
    core_rows: Callable[[int, int], Any] | None = None
    conv_w: Any = None
    conv_b: Any = None
    act: Any = None
    gate: Any = None
