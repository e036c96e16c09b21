"""Data parallelism: two CPU processes (gloo) split a corpus and every rank returns one process's statistics."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.engine.corpus import Corpus
from ssmctl.engine.driver import simulate
from ssmctl.report import dumps

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _case():
    model = ssmctl.init("mamba", d_model=16, n_layers=2, d_state=4, seed=0)
    rng = np.random.default_rng(0)
    corpus = [rng.standard_normal(size).astype(np.float32) for size in [(50, 16), (2, 30, 16), (70, 16), (9, 16),
                                                                          (3, 20, 16)]]
    return model, corpus


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model, corpus = _case()
        res = simulate(model, corpus, device="cpu")  # parallel by default inside a process group
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            f.write(dumps({"layers": res.summary()["layers"], "batch": res.batch, "total": res.total_tokens}))
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_equal_one(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    if not torch.distributed.is_available():
        pytest.skip("torch without torch.distributed")
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    model, corpus = _case()
    one = simulate(model, corpus, device="cpu", parallel=False)
    expect = dumps({"layers": one.summary()["layers"], "batch": one.batch, "total": one.total_tokens})
    assert (tmp_path / "rank0.json").read_text() == expect
    assert (tmp_path / "rank1.json").read_text() == expect  # every rank holds the merged result


def test_shards_cover_the_corpus_once():
    units = [np.zeros(n, dtype=np.int64) for n in range(1, 8)]
    shards = [list(Corpus.of(units).shard(r, 3)) for r in range(3)]
    assert sorted(len(u) for s in shards for u in s) == list(range(1, 8))
    assert [len(u) for u in shards[1]] == [2, 5]  # every world-th unit from the rank
    arr = np.zeros((5, 4), dtype=np.int64)
    blocks = [list(Corpus.of(arr).shard(r, 2)) for r in range(2)]
    assert [b[0].shape for b in blocks] == [(2, 4), (3, 4)]  # one array: contiguous row blocks
    assert [len(list(Corpus.of(np.zeros(4, dtype=np.int64)).shard(r, 2))) for r in range(2)] == [1, 0]
