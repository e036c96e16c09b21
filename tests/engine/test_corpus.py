"""simulate over a corpus: lists, (n, L) arrays and iterators of sequences, each from a zero state; the corpus run
equals the merge of its parts; progress over the whole corpus; bad corpora."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.engine.corpus import Corpus
from ssmctl.engine.driver import simulate
from ssmctl.errors import ShapeError, SsmctlError
from ssmctl.report import dumps

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB, D = 40, 16


@pytest.fixture(scope="module")
def model():
    m = ssmctl.init("mamba", d_model=D, n_layers=2, d_state=4, seed=0)
    m.extras["embedding"] = torch.randn(VOCAB, D, generator=torch.Generator().manual_seed(1))
    return m


@pytest.fixture(scope="module")
def seqs():
    rng = np.random.default_rng(2)
    return [rng.integers(0, VOCAB, size) for size in [(300,), (2, 90), (700,), (3, 17)]]


@pytest.fixture(scope="module")
def whole(model, seqs):
    return simulate(model, seqs, device="cpu")


def _layers(result):
    return dumps(result.summary()["layers"])  # strict JSON: NaN-safe, every digit compared


def test_corpus_run_equals_the_merge_of_its_parts(model, seqs, whole):
    a = simulate(model, seqs[:1], device="cpu")
    b = simulate(model, seqs[1:], device="cpu")
    assert _layers(a.merge(b)) == _layers(whole) == _layers(b.merge(a))
    assert (whole.n_tokens, whole.batch, whole.total_tokens) == (700, 7, 300 + 180 + 700 + 51)


def test_each_sequence_starts_from_a_zero_state(model, seqs, whole):
    # each row's statistics are those of the row simulated alone: the by-position trace is their mean, the
    # rate extremes their extremes; rows alone come from the layer's own LTV system (zero initial state)
    alone = [simulate(model, s[None] if s.ndim == 1 else s, device="cpu").stats[0] for s in seqs]
    s = whole.stats[0]
    assert s.rate_min == min(x.rate_min for x in alone) and s.rate_max == max(x.rate_max for x in alone)
    rows = np.full((7, 700), np.nan)
    r = 0
    for x in alone:
        rows[r: r + x.memory_token_gmean.shape[0], : x.n_tokens] = x.memory_token_gmean
        r += x.memory_token_gmean.shape[0]
    np.testing.assert_allclose(s.memory_token_gmean[0], np.nanmean(rows, 0), rtol=1e-12)
    emb = model.extras["embedding"]
    u = emb[torch.as_tensor(seqs[2])][None]
    dt = model.layers[0].ltv(u).dt.double().numpy()  # Δ_t of layer 0 from a zero state
    assert alone[2].rate_max == pytest.approx(dt.max(), rel=1e-6)
    assert alone[2].rate_min == pytest.approx(dt.min(), rel=1e-6)


def test_an_array_of_n_rows_is_n_sequences(model, seqs):
    arr = np.stack([seqs[0], seqs[0][::-1], seqs[0][::2].repeat(2)])
    batched = simulate(model, arr, device="cpu").stats[1]
    listed = simulate(model, list(arr), device="cpu").stats[1]
    np.testing.assert_array_equal(batched.rate_hist.sum(), listed.rate_hist.sum())
    np.testing.assert_allclose(batched.decay_mean, listed.decay_mean, rtol=1e-5)
    np.testing.assert_allclose(batched.memory_token_gmean.mean(0), listed.memory_token_gmean[0], rtol=1e-5)


def test_an_iterator_is_read_lazily_and_gives_the_list_answer(model, seqs, whole):
    taken = []

    def gen():
        for s in seqs:
            taken.append(len(taken))
            yield s

    it = gen()
    assert Corpus.of(it).count is None and taken == []
    assert _layers(simulate(model, gen(), device="cpu")) == _layers(whole)


def test_embeddings_corpus_of_different_lengths(model):
    g = torch.Generator().manual_seed(5)
    us = [torch.randn(40, D, generator=g), torch.randn(2, 25, D, generator=g)]
    res = simulate(model, us, device="cpu")
    parts = simulate(model, us[:1], device="cpu").merge(simulate(model, us[1:], device="cpu"))
    assert _layers(res) == _layers(parts) and res.batch == 3 and res.n_tokens == 40


def test_progress_covers_the_whole_corpus(model, seqs, monkeypatch):
    import ssmctl.engine.driver as drv

    seen = []

    class Spy(drv.Progress):
        def close(self):
            seen.append((self.total, self.done, self.enabled))
            super().close()

    monkeypatch.setattr(drv, "Progress", Spy)
    simulate(model, seqs, device="cpu", progress=True, chunk=64)
    assert seen[0] == (1231, 1231, True)  # every token of every row of every sequence
    seen.clear()
    simulate(model, iter(seqs), device="cpu", progress=True, chunk=64)
    assert seen[0][2] is False  # an iterable of unknown size: no bar


def test_bad_corpora(model, seqs):
    with pytest.raises(SsmctlError, match="empty corpus: the list"):
        simulate(model, [], device="cpu")
    with pytest.raises(SsmctlError, match="empty corpus: the iterable"):
        simulate(model, iter([]), device="cpu")
    with pytest.raises(SsmctlError, match=r"not text: tokenize it .*ssmctl.tokenize"):
        simulate(model, ["some text"], device="cpu")
    with pytest.raises(SsmctlError, match="window= and keep_output= need one input array"):
        simulate(model, seqs, device="cpu", window=(0, 4))
    with pytest.raises(SsmctlError, match=r"sequence 1 of the corpus: token id 99 .* outside the vocabulary"):
        simulate(model, [seqs[0], np.array([1, 99])], device="cpu")
    with pytest.raises(ShapeError, match=r"sequence 1 of the corpus: token ids must have shape"):
        simulate(model, [seqs[0], np.zeros((1, 2, 3), dtype=np.int64)], device="cpu")
    with pytest.raises(SsmctlError, match="an array, a list of arrays or an iterable"):
        simulate(model, 3.5, device="cpu")
    with pytest.raises(SsmctlError, match="threads must be a positive integer"):
        simulate(model, seqs[0], device="cpu", threads=0)


def test_merging_runs_of_different_models_is_an_error(model, seqs):
    other = ssmctl.init("mamba", d_model=D, n_layers=3, d_state=4, seed=0)
    u = np.zeros((1, 5, D), dtype=np.float32)
    with pytest.raises(SsmctlError, match="different layers"):
        simulate(model, u, device="cpu").merge(simulate(other, u, device="cpu"))


def test_threads_auto_follows_the_work_and_is_restored(model, seqs):
    from ssmctl.engine.driver import STATES_PER_THREAD, default_threads

    cpu = torch.device("cpu")
    assert default_threads(cpu, 10, 8) == 1 and default_threads(cpu, 3 * STATES_PER_THREAD, 8) == 3
    assert default_threads(cpu, 100 * STATES_PER_THREAD, 2) == 2
    before = torch.get_num_threads()
    simulate(model, seqs[0], device="cpu", threads=2)
    assert torch.get_num_threads() == before
