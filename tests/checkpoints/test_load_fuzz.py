"""Property-based fuzzing of the loaders: whatever a damaged checkpoint holds, ``ssmctl.load``, the header-only
``scan`` and the inspect report either raise an ``SsmctlError`` or succeed (a loaded model's parameters all
finite, the report strict JSON) — never a TypeError/KeyError/... from deep inside json, torch or numpy.

The checkpoints are built here (tests/ckpt_builders.py) in each on-disk form the loaders read: a transformers
``save_pretrained`` folder (safetensors + config.json), a mamba_ssm folder (zip pickle + config.json with a
nested ``ssm_cfg``), a state-spaces/s4 Lightning ``.ckpt`` (pickle with OmegaConf hyperparameters), a legacy
(non-zip) ``torch.save`` state dict and a bare ``.safetensors`` state dict. Each example damages one copy.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssmctl.checkpoints.inspect import inspect_report
from ssmctl.checkpoints.load import load, scan
from ssmctl.errors import CheckpointError, SsmctlError
from ssmctl.report import dumps

from .. import ckpt_builders as cb

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Examples per run: a few seconds here; SSMCTL_FUZZ_EXAMPLES=2000 for a deeper search.
_EXAMPLES = int(os.environ.get("SSMCTL_FUZZ_EXAMPLES", "120"))

#: Where the weights are inside each checkpoint (folder checkpoints) or the file itself.
_WEIGHTS = {"hf_mamba": "model.safetensors", "mamba_ssm": "pytorch_model.bin"}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz_sources")
    out = {
        "hf_mamba": cb.save_hf(cb.hf_model("mamba", num_hidden_layers=1), root / "hf_mamba"),
        "mamba_ssm": cb.mamba_ssm_folder(root / "mamba_ssm")[0],
        "s4_lightning": cb.lightning_ckpt(
            root / "s4.ckpt", cb.s4_state_dict(cb.s4_kernel(4, 8), 1, dtype=torch.float32),
            {"model": {"layer": {"dt_transform": "softplus", "disc": "bilinear"}}}, root,
        ),
        "s4d_safetensors": cb.write_state_dict(cb.s4d_minimal_state_dict(1, 4, 8), root / "s4d.safetensors"),
    }
    legacy = root / "hawk.pt"
    torch.save(cb.ssm_benchmark_hawk(n_blocks=1, dim=8), legacy, _use_new_zipfile_serialization=False)
    out["hawk_legacy_pt"] = legacy
    for path in out.values():  # every source loads before it is damaged
        assert load(path).layers
    return out


def _copy(src: Path, workdir: Path) -> tuple[Path, Path]:
    """A copy of checkpoint ``src`` in ``workdir``: (what to load, its weight file)."""
    dst = workdir / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
        return dst, dst / _WEIGHTS[src.name]
    shutil.copy(src, dst)
    return dst, dst


def _truncate(data: bytearray, draw) -> bytearray:
    return data[: draw(st.integers(0, len(data) - 1))]


def _flip(data: bytearray, draw) -> bytearray:
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    return data


def _garbage(data: bytearray, draw) -> bytearray:
    i = draw(st.integers(0, len(data) - 1))
    junk = draw(st.binary(min_size=1, max_size=48))
    data[i : i + len(junk)] = junk
    return data


def _edit_header(data: bytearray, draw) -> bytearray:
    """A safetensors header with one entry's shape, dtype or offsets changed, or the entry dropped/renamed."""
    n = struct.unpack("<Q", data[:8])[0]
    header, body = json.loads(data[8 : 8 + n]), data[8 + n :]
    key = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
    what = draw(st.sampled_from(["shape", "dtype", "offsets", "drop", "rename"]))
    if what == "shape":
        header[key]["shape"] = draw(st.lists(st.integers(-2, 70), max_size=4))
    elif what == "dtype":
        header[key]["dtype"] = draw(st.sampled_from(["F16", "BF16", "F64", "I64", "BOOL", "U8", "C64", "XX"]))
    elif what == "offsets":
        header[key]["data_offsets"] = [draw(st.integers(0, len(body))), draw(st.integers(0, len(body)))]
    elif what == "drop":
        del header[key]
    else:
        header[key + draw(st.sampled_from(["x", ".0", "_"]))] = header.pop(key)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return bytearray(struct.pack("<Q", len(text)) + text + body)


_JSON_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 2**40), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4), st.just("auto"), st.lists(st.integers(-1, 4), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.just({"__float__": "Infinity"}),
)


def _edit_config(path: Path, draw) -> None:
    """One config.json entry (top level or mamba_ssm's ssm_cfg) set to a value of any JSON type."""
    cfg_path = path / "config.json"
    config = json.loads(cfg_path.read_text())
    target = config
    if isinstance(config.get("ssm_cfg"), dict) and draw(st.booleans()):
        target = config["ssm_cfg"]
    target[draw(st.sampled_from(sorted(target)))] = draw(_JSON_VALUES)
    cfg_path.write_text(json.dumps(config))


def _nonfinite_entry(weights: Path, draw) -> None:
    """One entry of one float tensor set to NaN, +Inf or -Inf (safetensors files)."""
    from safetensors.torch import load_file, save_file

    sd = load_file(weights)
    key = draw(st.sampled_from(sorted(k for k, v in sd.items() if v.is_floating_point() and v.numel())))
    flat = sd[key].reshape(-1).clone()
    flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
    sd[key] = flat.reshape(sd[key].shape)
    save_file(sd, weights)


_BYTE_DAMAGE = {"truncate": _truncate, "flip": _flip, "garbage": _garbage}


def _assert_contract(path: Path) -> None:
    try:  # what `ssmctl inspect` runs: headers and the few tensors of the input-free eigenvalues
        dumps(inspect_report(path))  # strict JSON, NaN/Inf tensors reported as warnings
    except SsmctlError as exc:
        assert str(exc)  # a message naming the problem, never an empty one
    try:
        plan = scan(path)
        model = load(path)
    except SsmctlError as exc:
        assert str(exc)
        return
    assert plan.config == model.config
    for layer in model.layers:
        for key, value in layer.params.items():
            arr = value.detach().cpu().double().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            if np.issubdtype(arr.dtype, np.inexact):
                assert np.isfinite(arr).all(), f"layer {layer.index} parameter {key} holds NaN/Inf after a load"


@settings(max_examples=_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_damaged_checkpoints_give_ssmctl_errors_or_finite_models(checkpoints, data):
    name = data.draw(st.sampled_from(sorted(checkpoints)), label="checkpoint")
    src = Path(checkpoints[name])
    damage = ["truncate", "flip", "garbage"]
    if str(_WEIGHTS.get(name, src.name)).endswith(".safetensors"):
        damage += ["header", "nonfinite"]
    if src.is_dir():
        damage += ["config"]
    how = data.draw(st.sampled_from(damage), label="damage")
    with tempfile.TemporaryDirectory() as tmp:
        path, weights = _copy(src, Path(tmp))
        if how in _BYTE_DAMAGE:
            weights.write_bytes(_BYTE_DAMAGE[how](bytearray(weights.read_bytes()), data.draw))
        elif how == "header":
            weights.write_bytes(_edit_header(bytearray(weights.read_bytes()), data.draw))
        elif how == "nonfinite":
            _nonfinite_entry(weights, data.draw)
        else:
            _edit_config(path, data.draw)
        _assert_contract(path)


# --- the cases the fuzzing found, pinned with their messages ----------------------------------------------
@pytest.mark.parametrize(
    "key, value, message",
    [
        ("state_size", "x", "config.json entry 'state_size' (d_state) must be a positive integer, got 'x'"),
        ("time_step_rank", {}, "config.json entry 'time_step_rank' (dt_rank) must be a positive integer, got {}"),
        ("layer_norm_epsilon", "x", "config.json entry 'layer_norm_epsilon' (eps) must be a finite number >= 0"),
        ("use_conv_bias", 1, "config.json entry 'use_conv_bias' (conv_bias) must be true or false, got 1"),
    ],
)
def test_wrong_typed_config_values_are_named(checkpoints, tmp_path, key, value, message):
    path, _ = _copy(Path(checkpoints["hf_mamba"]), tmp_path)
    config = json.loads((path / "config.json").read_text())
    config[key] = value
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError) as err:
        load(path)
    assert message in str(err.value) and str(path) in str(err.value)


def test_ssm_cfg_values_are_checked(checkpoints, tmp_path):
    path, _ = _copy(Path(checkpoints["mamba_ssm"]), tmp_path)
    config = json.loads((path / "config.json").read_text())
    config["ssm_cfg"]["d_state"] = -3
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"ssm_cfg entry 'd_state' \(d_state\) must be a positive integer, got -3"):
        load(path)
    config["ssm_cfg"] = True
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="'ssm_cfg' must be a JSON object, got bool"):
        load(path)


@pytest.mark.parametrize("text", ["[1, 2]", "\"mamba\"", "{\"model_type\": \"ma\xffmba\"}"])
def test_config_json_that_is_not_an_object_or_not_utf8(checkpoints, tmp_path, text):
    path, _ = _copy(Path(checkpoints["hf_mamba"]), tmp_path)
    (path / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(CheckpointError, match="config.json"):
        load(path)


def test_one_flipped_byte_in_a_pickle(tmp_path):
    """A flipped memo index made the weights-only unpickler raise KeyError; now a CheckpointError."""
    import zipfile

    # Two layers: enough memo entries that the pickle uses 4-byte memo indices (LONG_BINGET).
    sd = cb.s4_state_dict(cb.s4_kernel(8, 8), 2, dtype=torch.float32)
    path = cb.lightning_ckpt(tmp_path / "s4.ckpt", sd, {"model": {"layer": {"dt_transform": "softplus"}}}, tmp_path)
    assert load(path).layers

    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith("data.pkl"))
        pkl = bytearray(zf.read(name))
        members = {n: zf.read(n) for n in zf.namelist()}
    memo, gets = set(), []
    for op, arg, pos in pickletools.genops(bytes(pkl)):
        if op.name == "MEMOIZE":
            memo.add(len(memo))
        elif op.name in ("BINPUT", "LONG_BINPUT"):
            memo.add(arg)
        elif op.name == "LONG_BINGET":
            gets.append(pos)
    pkl[gets[len(gets) // 2] + 3] ^= 0x10  # one flipped bit: memo index + 2**20, never stored
    assert len(memo) < 2**20
    members[name] = bytes(pkl)
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load(path)


def test_nan_in_scaffolding_is_refused(tmp_path):
    """A tensor the family keeps beside its own (state-spaces/s4's output_linear) must be finite too."""
    sd = cb.s4d_minimal_state_dict(1, 4, 8)
    sd["s4_layers.0.output_linear.0.weight"][1, 2, 0] = float("nan")
    path = cb.write_state_dict(sd, tmp_path / "s4d.safetensors")
    with pytest.raises(SsmctlError, match=r"'output_linear.0.weight' has 1 NaN/Inf"):
        load(path)
