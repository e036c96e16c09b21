"""Data parallelism over sequences with torch.distributed (launched by torchrun; gloo on CPU, NCCL on GPUs).

Each rank simulates its share of the corpus (:meth:`ssmctl.engine.corpus.Corpus.shard`); the ranks' results are
gathered to every rank and merged in rank order, which gives the statistics of one run over the whole corpus
(:mod:`ssmctl.engine.mergeable`). torchrun announces itself through the ``WORLD_SIZE``, ``RANK`` and
``LOCAL_RANK`` environment variables; :func:`context` starts the process group from them when nobody has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import SsmctlError

__all__ = ["Context", "context", "launched", "gather"]


@dataclass(frozen=True)
class Context:
    """Where this process stands: its ``rank`` among ``world`` processes, and the ``device`` it runs on."""

    rank: int
    world: int
    device: torch.device


def launched() -> bool:
    """Whether this process is one of several started by torchrun (or runs inside a process group).

    Returns
    -------
    bool
        True when a process group is initialized or ``WORLD_SIZE`` > 1 in the environment.
    """
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size() > 1
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def context(device: torch.device) -> Context:
    """This process's rank, world size and device, starting the process group when torchrun launched it.

    Parameters
    ----------
    device : torch.device
        The device asked for; ``cuda`` becomes ``cuda:LOCAL_RANK`` (one GPU per process).

    Returns
    -------
    Context

    Raises
    ------
    SsmctlError
        When torch has no distributed support, or the process group cannot start.
    """
    dist = torch.distributed
    if not dist.is_available():
        raise SsmctlError("this torch build has no torch.distributed: run one process, or install a torch with it")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        try:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group(backend)
        except (RuntimeError, ValueError) as exc:
            raise SsmctlError(f"cannot start the torch.distributed process group ({backend}): {exc}") from None
    elif device.type == "cuda":
        torch.cuda.set_device(device)
    return Context(dist.get_rank(), dist.get_world_size(), device)


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``all_gather_object``).

    Parameters
    ----------
    obj : picklable
        This rank's contribution (a result without tensors on a device, or None).

    Returns
    -------
    list
        One entry per rank.
    """
    dist = torch.distributed
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
