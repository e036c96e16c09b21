"""What :func:`ssmctl.simulate` accepts as input: one array, or a corpus of sequences each run from a zero state.

* one array: token ids (L,) or (batch, L), or embeddings (L, d_model) or (batch, L, d_model) — one *unit*, its
  rows simulated together as one batch (an (n, L) array is n sequences of L tokens);
* a list or tuple of such arrays, of any lengths — one unit per element;
* any other iterable (a generator, a dataset) yielding such arrays — read lazily, one unit per item.

Each unit is simulated on its own (its rows start from a zero state) and the units' statistics merge
(:mod:`ssmctl.engine.mergeable`). Under torch.distributed each rank takes every world-th unit; a single array
is split into contiguous row blocks instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np
import torch

from ..errors import SsmctlError

__all__ = ["Corpus"]


def _is_array(x: Any) -> bool:
    return isinstance(x, (np.ndarray, torch.Tensor))


def _length(x: Any) -> int | None:
    """Tokens per row of one unit, or None for something that is not an array (reported when it is read)."""
    shape = tuple(x.shape) if _is_array(x) else np.shape(x) if isinstance(x, (list, tuple)) else None
    if not shape:
        return None
    floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.asarray(x).dtype.kind == "f"
    if floating:  # (L, d) or (batch, L, d)
        return shape[-2] if len(shape) >= 2 else None
    return shape[-1]


def _rows(x: Any) -> int:
    shape = tuple(x.shape) if _is_array(x) else np.shape(x)
    floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.asarray(x).dtype.kind == "f"
    return shape[0] if len(shape) == (3 if floating else 2) else 1


@dataclass
class Corpus:
    """The units of an input, and what is known of its size before reading it.

    Attributes
    ----------
    units : iterable
        The units, in order (arrays, not yet checked: :func:`simulate` checks each as it reads it).
    count : int or None
        Number of units; None for a lazy iterable.
    total_tokens : int or None
        Tokens over all rows of all units (progress); None when unknown.
    single : bool
        True for one array (windows and kept outputs are only defined then).
    """

    units: Iterable[Any]
    count: int | None
    total_tokens: int | None
    single: bool

    @classmethod
    def of(cls, inputs: Any) -> "Corpus":
        """Classify ``inputs`` (one array, a list of arrays, or an iterable of arrays).

        Parameters
        ----------
        inputs : array, Tensor, list, tuple or iterable
            See the module docstring.

        Returns
        -------
        Corpus

        Raises
        ------
        SsmctlError
            Text (str) given directly, an empty list, or an object that is neither an array nor iterable.
        """
        if isinstance(inputs, (str, bytes)) or (isinstance(inputs, (list, tuple)) and inputs
                                                  and isinstance(inputs[0], (str, bytes))):
            raise SsmctlError("simulate takes token ids or embeddings, not text: tokenize it with the checkpoint's "
                              "tokenizer first (ssmctl.tokenize(PATH, texts), or `ssmctl simulate PATH --text FILE`)")
        if _is_array(inputs) or (isinstance(inputs, (list, tuple)) and inputs
                                 and all(np.isscalar(v) for v in inputs)):
            n = _length(inputs) if _is_array(inputs) else len(inputs)
            rows = _rows(inputs) if _is_array(inputs) else 1
            return cls([inputs], 1, None if n is None else n * rows, True)
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise SsmctlError("empty corpus: the list of sequences has no element")
            lengths = [_length(x) for x in inputs]
            total = None if None in lengths else sum(n * _rows(x) for n, x in zip(lengths, inputs))
            return cls(list(inputs), len(inputs), total, len(inputs) == 1)
        try:
            iterator = iter(inputs)
        except TypeError:
            raise SsmctlError(f"inputs must be an array, a list of arrays or an iterable of arrays; got "
                              f"{type(inputs).__name__}") from None
        return cls(iterator, None, None, False)

    def shard(self, rank: int, world: int) -> Iterator[Any]:
        """This rank's units: every ``world``-th unit from ``rank``; one array's rows split into blocks.

        Parameters
        ----------
        rank, world : int
            This process's rank and the number of processes.

        Returns
        -------
        iterator
            Units for this rank (none when there are fewer units or rows than ranks).
        """
        if world == 1:
            yield from self.units
            return
        if self.single:
            x = next(iter(self.units))
            x = x if _is_array(x) else np.asarray(x)
            floating = x.is_floating_point() if isinstance(x, torch.Tensor) else x.dtype.kind == "f"
            batched = x.ndim == (3 if floating else 2)
            if not batched:
                if rank == 0:
                    yield x
                return
            n = x.shape[0]
            lo, hi = rank * n // world, (rank + 1) * n // world
            if hi > lo:
                yield x[lo:hi]
            return
        for i, unit in enumerate(self.units):
            if i % world == rank:
                yield unit
