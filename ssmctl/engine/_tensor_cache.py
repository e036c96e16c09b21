"""Small caches of tensors reused across calls: constant triangular matrices and bounded LRU tables.

Shared by the tensor scan (:mod:`ssmctl.engine.scan`) and the streaming statistics
(:mod:`ssmctl.engine._stats_work`): on the CPU, allocating a multi-megabyte temporary per chunk costs page
faults that take longer than the arithmetic on it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import torch

_TRIL: dict[tuple, torch.Tensor] = {}


def tril_ones(n: int, dtype: torch.dtype, device: torch.device, strict: bool = False) -> torch.Tensor:
    """The (n, n) lower-triangular matrix of ones (zero diagonal when ``strict``), built once per key.

    Parameters
    ----------
    n : int
    dtype : torch.dtype
    device : torch.device
    strict : bool, default False

    Returns
    -------
    Tensor, shape (n, n)
        Shared: callers must not write into it.
    """
    key = (n, dtype, str(device), strict)
    m = _TRIL.get(key)
    if m is None:
        m = _TRIL[key] = torch.ones(n, n, dtype=dtype, device=device).tril_(-1 if strict else 0)
    return m


def lru_get(table: OrderedDict, key: Any, make: Callable[[], Any], size: int) -> Any:
    """``table[key]``, made by ``make()`` when missing; the table keeps its ``size`` most recently used entries.

    Parameters
    ----------
    table : OrderedDict
        The cache, least recently used first.
    key : hashable
    make : callable
        Builds the value for a missing key.
    size : int
        Entries kept.

    Returns
    -------
    object
        The cached or newly made value.
    """
    value = table.get(key)
    if value is None:
        value = table[key] = make()
        while len(table) > size:
            table.popitem(last=False)
    else:
        table.move_to_end(key)
    return value
