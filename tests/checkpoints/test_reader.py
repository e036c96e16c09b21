"""ssmctl.checkpoints.reader: safe reading of safetensors, weights-only pickles, Lightning checkpoints and HF folders."""

from __future__ import annotations

import json
import pathlib
import pickle

import pytest
import torch
from safetensors.torch import save_file

from ssmctl.errors import CheckpointError
from ssmctl.checkpoints.reader import TensorStore, pickle_globals, plain, read_checkpoint

from ..ckpt_builders import lightning_ckpt


def _tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"a.weight": torch.randn(3, 4, generator=g), "b.bias": torch.randn(5, generator=g)}


class _MakesMarker:
    """Unpickling an instance would create the marker file (pathlib.Path.touch)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


# --- safetensors -------------------------------------------------------------------------------------------
def test_safetensors_file_eager_and_lazy(tmp_path):
    t = _tensors()
    save_file(t, str(tmp_path / "w.safetensors"))
    eager = read_checkpoint(tmp_path / "w.safetensors")
    assert set(eager.tensors) == set(t)
    assert all(torch.equal(eager.tensors[k], t[k]) for k in t)
    lazy = read_checkpoint(tmp_path / "w.safetensors", lazy=True)
    assert isinstance(lazy.tensors, TensorStore)
    assert sorted(lazy.tensors) == sorted(t) and len(lazy.tensors) == 2 and "a.weight" in lazy.tensors
    assert lazy.tensors.shape("a.weight") == (3, 4) and lazy.tensors.dtype("b.bias") == "float32"
    assert torch.equal(lazy.tensors["b.bias"], t["b.bias"])
    assert lazy.tensors.file_of("a.weight").endswith("w.safetensors")


def test_bf16_dtype_reported_from_header(tmp_path):
    save_file({"x": torch.randn(2, 2).to(torch.bfloat16)}, str(tmp_path / "h.safetensors"))
    store = read_checkpoint(tmp_path / "h.safetensors", lazy=True).tensors
    assert store.dtype("x") == "bfloat16"
    assert store["x"].dtype == torch.bfloat16


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_truncated_safetensors_names_the_file(tmp_path, cut):
    save_file(_tensors(), str(tmp_path / "w.safetensors"))
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: int(len(data) * cut)])
    for lazy in (False, True):
        with pytest.raises(CheckpointError, match=r"t\.safetensors.*corrupt or truncated"):
            read_checkpoint(tmp_path / "t.safetensors", lazy=lazy)


def test_garbage_safetensors(tmp_path):
    (tmp_path / "g.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(CheckpointError, match=r"g\.safetensors.*corrupt or truncated"):
        read_checkpoint(tmp_path / "g.safetensors")


# --- pickles -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_plain_state_dict(tmp_path, suffix):
    t = _tensors()
    torch.save(t, tmp_path / f"m{suffix}")
    ck = read_checkpoint(tmp_path / f"m{suffix}")
    assert all(torch.equal(ck.tensors[k], t[k]) for k in t)
    assert ck.files == [str(tmp_path / f"m{suffix}")]


def test_legacy_torch_format(tmp_path):
    t = _tensors()
    torch.save(t, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert torch.equal(read_checkpoint(tmp_path / "old.pt").tensors["a.weight"], t["a.weight"])


def test_wrapped_state_dict_keeps_extras(tmp_path):
    t = _tensors()
    torch.save({"model_state_dict": t, "epoch": 4}, tmp_path / "w.pt")
    ck = read_checkpoint(tmp_path / "w.pt")
    assert set(ck.tensors) == set(t) and ck.extras == {"epoch": 4}


@pytest.mark.parametrize("writer", ["torch_zip", "torch_legacy", "pickle"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, writer):
    marker = tmp_path / "PWNED"
    payload = {"w": torch.zeros(2), "x": _MakesMarker(marker)}
    path = tmp_path / "evil.pt"
    if writer == "torch_zip":
        torch.save(payload, path)
    elif writer == "torch_legacy":
        torch.save(payload, path, _use_new_zipfile_serialization=False)
    else:
        with open(path, "wb") as fh:
            pickle.dump(payload, fh, protocol=4)
    # The file really is malicious: a plain unpickler would create the marker (checked on a copy).
    with pytest.raises(CheckpointError, match=r"refused to load .*evil\.pt.*pathlib\.(Posix)?Path.*never runs code"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path, lazy=True)
    assert not marker.exists()


def test_the_malicious_fixture_would_run_code(tmp_path):
    """Guard for the test above: an ordinary pickle.load of the same payload does create the marker."""
    marker = tmp_path / "PWNED"
    data = pickle.dumps({"x": _MakesMarker(marker)}, protocol=4)
    pickle.loads(data)
    assert marker.exists()


def test_pickle_globals_names_classes_without_unpickling(tmp_path):
    marker = tmp_path / "M"
    with open(tmp_path / "p.pkl", "wb") as fh:
        pickle.dump([_MakesMarker(marker)], fh, protocol=4)
    names, parsed = pickle_globals(str(tmp_path / "p.pkl"))
    assert parsed and "pathlib.Path.touch" in names
    assert not marker.exists()


def test_corrupt_and_truncated_pickles_name_the_file(tmp_path):
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04garbage that is not a pickle")
    with pytest.raises(CheckpointError, match=r"junk\.pt.*corrupt or truncated"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save(_tensors(), tmp_path / "ok.pt")
    data = (tmp_path / "ok.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt.*corrupt or truncated"):
        read_checkpoint(tmp_path / "cut.pt")


def test_pickle_without_tensors(tmp_path):
    torch.save({"epoch": 1, "note": "nothing"}, tmp_path / "n.pt")
    with pytest.raises(CheckpointError, match=r"n\.pt holds no tensor dict.*epoch"):
        read_checkpoint(tmp_path / "n.pt")


def test_lightning_checkpoint_reads_state_dict_and_inert_hparams(tmp_path):
    t = _tensors()
    hp = {"model": {"layer": {"dt_transform": "exp", "d_state": 64}, "n_layers": 2}, "seed": 1}
    path = lightning_ckpt(tmp_path / "last.ckpt", t, hp, tmp_path)
    names, _ = pickle_globals(str(path))
    assert "omegaconf.dictconfig.DictConfig" in names  # the file holds the classes a real one holds
    ck = read_checkpoint(path)
    assert set(ck.tensors) == set(t) and torch.equal(ck.tensors["a.weight"], t["a.weight"])
    assert ck.extras["epoch"] == 9 and ck.extras["pytorch-lightning_version"] == "1.9.5"
    assert plain(ck.extras["hyper_parameters"]) == hp
    import sys

    assert "omegaconf" not in sys.modules  # nothing was imported to read it


# --- paths, folders, shards ----------------------------------------------------------------------------------
def test_missing_path_is_an_error_not_a_download(tmp_path):
    with pytest.raises(CheckpointError, match=r"no such file or folder.*never downloads"):
        read_checkpoint(tmp_path / "state-spaces/mamba-130m")


def test_unknown_file_type(tmp_path):
    (tmp_path / "w.npz").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint file type 'w\.npz'"):
        read_checkpoint(tmp_path / "w.npz")


def test_folder_without_weights(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"no weights in folder.*config\.json"):
        read_checkpoint(tmp_path)


def test_sharded_folder_and_missing_shard(tmp_path):
    a, b = _tensors(0), {"c.weight": torch.ones(2, 2)}
    save_file(a, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file(b, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {}, "weight_map": {**{k: "model-00001-of-00002.safetensors" for k in a},
                                            "c.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba"}))
    for lazy in (False, True):
        ck = read_checkpoint(tmp_path, lazy=lazy)
        assert set(ck.tensors) == {"a.weight", "b.bias", "c.weight"} and ck.config == {"model_type": "mamba"}
        assert len(ck.files) == 2
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"lists shards that are missing.*00002"):
        read_checkpoint(tmp_path)


def test_bad_config_json(tmp_path):
    save_file(_tensors(), str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"cannot parse .*config\.json"):
        read_checkpoint(tmp_path)


def test_lightning_attribute_dict_hparams(tmp_path):
    """hparams saved as Lightning's AttributeDict (a dict subclass) come back as a plain dict."""
    import sys
    import textwrap

    pkg = tmp_path / "fake_pl"
    mod = pkg / "pytorch_lightning" / "utilities"
    mod.mkdir(parents=True)
    (pkg / "pytorch_lightning" / "__init__.py").write_text("")
    (mod / "__init__.py").write_text("")
    (mod / "parsing.py").write_text(textwrap.dedent("""
        class AttributeDict(dict):
            def __getattr__(self, key):
                return self[key]
    """))
    sys.path.insert(0, str(pkg))
    try:
        from pytorch_lightning.utilities.parsing import AttributeDict

        torch.save({"state_dict": _tensors(), "hyper_parameters": AttributeDict(lr=0.01, d_state=64)}, tmp_path / "a.ckpt")
    finally:
        sys.path.remove(str(pkg))
        for name in [m for m in sys.modules if m.startswith("pytorch_lightning")]:
            del sys.modules[name]
    ck = read_checkpoint(tmp_path / "a.ckpt")
    assert plain(ck.extras["hyper_parameters"]) == {"lr": 0.01, "d_state": 64}
    assert "pytorch_lightning" not in sys.modules
