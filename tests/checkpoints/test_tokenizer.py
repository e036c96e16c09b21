"""ssmctl.tokenize: text through the tokenizer saved in a checkpoint folder, offline, with clear errors."""

from __future__ import annotations

import numpy as np
import pytest

import ssmctl
from ssmctl.checkpoints.tokenizer import load_tokenizer, tokenize
from ssmctl.errors import CheckpointError, SsmctlError

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

WORDS = ["[UNK]", "a", "state", "space", "model", "remembers", "forgets"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tests.ckpt_builders import mamba_with_tokenizer

    path = tmp_path_factory.mktemp("tok")
    return path, mamba_with_tokenizer(path, WORDS)


def test_ids_are_the_tokenizers_own(folder):
    path, tok = folder
    texts = ["a state space model remembers", "a model forgets a lot"]  # "lot" is unknown: [UNK] = 0
    ids = tokenize(str(path), texts)
    assert [x.tolist() for x in ids] == [tok.encode(t).ids for t in texts] and ids[1].tolist()[-1] == 0
    assert all(x.dtype == np.int64 for x in ids)
    model = ssmctl.load(str(path))
    assert [x.tolist() for x in ssmctl.tokenize(model, texts)] == [x.tolist() for x in ids]  # from model.source
    assert tokenize(str(path / "model.safetensors"), "a model")[0].tolist() == [1, 4]  # a file in the folder


def test_errors(folder, tmp_path):
    path, _ = folder
    with pytest.raises(CheckpointError, match=r"no tokenizer saved there \(none of tokenizer.json"):
        load_tokenizer(tmp_path)
    with pytest.raises(SsmctlError, match="no checkpoint folder to read a tokenizer from"):
        tokenize(ssmctl.init("mamba", d_model=8, n_layers=1), ["a"])
    with pytest.raises(SsmctlError, match="text 1 gives no token"):
        tokenize(str(path), ["a", "   "])
    with pytest.raises(SsmctlError, match="text 0 is a int, not a string"):
        tokenize(str(path), [3])
