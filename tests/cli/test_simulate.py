"""``ssmctl simulate`` on a fresh transformers save_pretrained Mamba folder: table, strict JSON, plot, errors."""

from __future__ import annotations

import argparse
import json
import os
import re
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ssmctl.cli import main
from ssmctl.cli.simulate import parse_layers, register
from ssmctl.errors import SsmctlError
from ssmctl.report import dumps

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=50, hidden_size=32, state_size=4, num_hidden_layers=3)
    path = tmp_path_factory.mktemp("mamba")
    transformers.MambaForCausalLM(cfg).save_pretrained(path)
    return str(path), cfg


def _run(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_table_and_plot(folder, tmp_path, capsys):
    path, _ = folder
    ids = np.random.default_rng(1).integers(0, 50, 300)
    np.save(tmp_path / "ids.npy", ids)
    plot = tmp_path / "figs" / "sim.png"  # the folder is created
    assert _run(["simulate", path, "--tokens", str(tmp_path / "ids.npy"), "--plot", str(plot), "--chunk", "64"]) == 0
    out = capsys.readouterr().out
    assert "300 tokens" in out and "|Ā| median" in out and "memory median" in out
    from ssmctl.engine.native import native_available

    import torch

    device, scan = ("cuda", "tensor") if torch.cuda.is_available() else ("cpu", "native" if native_available() else "tensor")
    assert re.search(rf"on {device}\S* \({scan} scan\), [\d,]+ tokens/s", out)
    assert len([line for line in out.splitlines() if line.strip().startswith(("0 ", "1 ", "2 "))]) == 3
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000


def test_json_is_strict_and_matches_the_engine(folder, capsys):
    import ssmctl
    from ssmctl.engine.driver import simulate

    path, _ = folder
    assert _run(["simulate", path, "--random-tokens", "200", "--seed", "3", "--json", "--layers", "0,2"]) == 0
    text = capsys.readouterr().out
    report = json.loads(text)  # strict: no NaN / Infinity
    assert "NaN" not in text and "Infinity" not in text
    assert report["schema"] == 1 and report["n_tokens"] == 200 and [r["index"] for r in report["layers"]] == [0, 2]
    for row in report["layers"]:
        for key in ("abs_min", "abs_median", "abs_max", "dt_median", "memory_horizon_median"):
            assert isinstance(row[key], float) and math.isfinite(row[key])
        assert 0 < row["abs_min"] <= row["abs_median"] <= row["abs_max"] <= 1
        decay = row["transition_decay"]
        assert decay["lags"] == [1, 2, 4, 8, 16, 32, 64, 128]
        assert all(b <= a + 1e-12 for a, b in zip(decay["norm_mean"], decay["norm_mean"][1:]))  # products shrink
    ids = np.random.default_rng(3).integers(0, 50, size=(1, 200))
    # the CLI's default device is "auto" (CUDA where there is one): the engine runs on the device it reported
    direct = simulate(ssmctl.load(path), ids, layers=[0, 2], device=report["device"]).summary()
    assert report["layers"][1]["abs_min"] == pytest.approx(direct["layers"][1]["abs_min"], rel=1e-6)
    assert report["scan_backend"] == direct["scan_backend"]
    # the tensor scan gives the same statistics as whichever scan "auto" picked
    assert _run(["simulate", path, "--random-tokens", "200", "--seed", "3", "--json", "--layers", "0,2",
                 "--scan", "tensor"]) == 0
    tensor = json.loads(capsys.readouterr().out)
    assert tensor["scan_backend"] == "tensor"
    for ours, theirs in zip(tensor["layers"], report["layers"]):
        assert ours["abs_min"] == pytest.approx(theirs["abs_min"], rel=1e-5)
        assert ours["transition_decay"]["norm_mean"] == pytest.approx(theirs["transition_decay"]["norm_mean"],
                                                                      rel=1e-5)


def test_json_numbers_are_what_transformers_computes(folder, capsys, monkeypatch):
    """Each layer's Δ_t and Ā_t = exp(Δ_t·A) as transformers' Mamba forward computes them on the same tokens:
    min/max exact, quantiles to the stated histogram bin width, transition decay at short lags exactly."""
    from transformers.models.mamba import modeling_mamba

    path, _ = folder
    assert _run(["simulate", path, "--random-tokens", "200", "--seed", "3", "--json", "--layers", "0,2"]) == 0
    report = json.loads(capsys.readouterr().out)
    width = report["bin_width_ln"]
    seen = []
    original = modeling_mamba.mamba_selective_scan

    def spy(hidden_states, dt, A, B, C, *args, **kwargs):
        delta = torch.nn.functional.softplus(dt + kwargs["delta_bias"][:, None]).double()  # (b, d_inner, L)
        seen.append((delta, torch.exp(A.double()[None, :, None, :] * delta[..., None])))  # Ā: (b, d_inner, L, N)
        return original(hidden_states, dt, A, B, C, *args, **kwargs)

    monkeypatch.setattr(modeling_mamba, "mamba_selective_scan", spy)
    ids = torch.from_numpy(np.random.default_rng(3).integers(0, 50, size=(1, 200)))  # the stated random tokens
    with torch.no_grad():
        transformers.MambaForCausalLM.from_pretrained(path).eval()(ids)
    assert len(seen) == 3
    for row in report["layers"]:
        delta, abar = (t.numpy() for t in seen[row["index"]])
        np.testing.assert_allclose([row["abs_min"], row["abs_max"]], [abar.min(), abar.max()], rtol=1e-5)
        np.testing.assert_allclose([row["dt_min"], row["dt_max"]], [delta.min(), delta.max()], rtol=1e-5)
        # quantiles come from histograms of ln Δ and ln(−ln|Ā|) with bins `width` wide
        assert abs(math.log(row["dt_median"] / np.median(delta))) <= width
        assert abs(math.log(math.log(row["abs_median"]) / math.log(np.median(abar)))) <= width
        k = np.log(1e-2) / np.log(abar)
        assert abs(math.log(row["memory_horizon_median"] / np.median(k))) <= width
        assert row["memory_horizon_inf_count"] == 0
        # ‖Ā_t ⋯ Ā_{t−ℓ+1}‖ (largest entry: the slowest mode) averaged over t ≥ ℓ and the channels
        decay = row["transition_decay"]
        logs = np.cumsum(np.log(abar[0]), axis=1)  # (d_inner, L, N)
        for lag, stride, pairs, value in zip(decay["lags"], decay["sample_stride"], decay["pairs"], decay["norm_mean"]):
            if stride != 1:
                continue
            prod = np.exp(logs[:, lag:] - logs[:, :-lag]).max(axis=-1)  # (d_inner, L − ℓ)
            assert pairs == prod.shape[1]
            assert value == pytest.approx(prod.mean(), rel=1e-5)
    # the text table prints the same numbers (4 significant digits), ‖ΠĀ‖ at lags 16 and 128
    assert _run(["simulate", path, "--random-tokens", "200", "--seed", "3", "--layers", "0,2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.strip().startswith("layer"))
    assert "‖ΠĀ‖ lag 16" in header and "‖ΠĀ‖ lag 128" in header
    cells = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [c[0] for c in cells] == ["0", "2"]
    for c, row in zip(cells, report["layers"]):
        decay = dict(zip(row["transition_decay"]["lags"], row["transition_decay"]["norm_mean"]))
        expected = [row["channels"], row["abs_min"], row["abs_median"], row["abs_max"], row["dt_median"],
                    row["memory_horizon_median"], decay[16], decay[128]]
        np.testing.assert_allclose([float(x) for x in c[1:]], expected, rtol=5e-4)


def test_errors(folder, tmp_path, capsys):
    path, _ = folder
    np.save(tmp_path / "bad.npy", np.array([1, 2, 50]))
    assert main(["simulate", path, "--tokens", str(tmp_path / "bad.npy")]) == 2
    assert "token id 50 at (batch 0, position 2) is outside the vocabulary [0, 50)" in capsys.readouterr().err
    assert main(["simulate", path]) == 2
    assert "--tokens FILE, --text FILE or --random-tokens L" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "nope"), "--random-tokens", "5"]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    np.save(tmp_path / "empty.npy", np.zeros(0, dtype=np.int64))
    assert main(["simulate", path, "--tokens", str(tmp_path / "empty.npy")]) == 2
    assert "empty input" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["simulate", path, "--random-tokens", "5", "--device", "cuda"]) == 2
        assert "no CUDA device" in (err := capsys.readouterr().err) and "use --device cpu or --device auto" in err
    assert main(["simulate", path, "--random-tokens", "5", "--layers", "7"]) == 2
    assert "error: --layers [7] outside the model's 3 layers (0..2)" in capsys.readouterr().err
    with pytest.raises(SsmctlError, match="cannot read 'x'"):
        parse_layers("0,x")
    assert parse_layers("0,2,5-7,-1") == [0, 2, 5, 6, 7, -1] and parse_layers(None) is None


def test_tokens_from_torch_files(folder, tmp_path, capsys):
    """--tokens takes a .pt tensor (or list of ids) as it takes a .npy array; other contents are named."""
    path, _ = folder
    ids = np.random.default_rng(1).integers(0, 50, 40)
    np.save(tmp_path / "ids.npy", ids)
    assert main(["simulate", path, "--tokens", str(tmp_path / "ids.npy"), "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)["layers"]
    for name, obj in [("t.pt", torch.from_numpy(ids)), ("l.pt", ids.tolist()), ("b.pth", torch.from_numpy(ids)[None])]:
        torch.save(obj, tmp_path / name)
        assert main(["simulate", path, "--tokens", str(tmp_path / name), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["layers"] == ref
    cases = {
        "d.pt": ({"ids": torch.from_numpy(ids)}, "holds a dict with keys ['ids']; expected one array of token ids"),
        "s.pt": ("hello", "holds a str; expected one array of token ids"),
        "r.pt": ([[1, 2], [3]], "holds a list that is not a rectangular array of numbers; expected one array"),
    }
    for name, (obj, message) in cases.items():
        torch.save(obj, tmp_path / name)
        assert main(["simulate", path, "--tokens", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert f"ssmctl simulate: error: --tokens {tmp_path / name}: {message}" in err and "Traceback" not in err
    np.savez(tmp_path / "empty.npz")  # an .npz is a corpus: one without arrays holds no sequence
    assert main(["simulate", path, "--tokens", str(tmp_path / "empty.npz")]) == 2
    assert "the .npz file holds no array" in capsys.readouterr().err
    np.savez(tmp_path / "words.npz", ids=ids, words=np.array(["a", "b"]))
    assert main(["simulate", path, "--tokens", str(tmp_path / "words.npz")]) == 2
    assert "array 'words' holds <U1 data" in capsys.readouterr().err
    np.save(tmp_path / "u.npy", np.array(["a", "b"]))
    assert main(["simulate", path, "--tokens", str(tmp_path / "u.npy")]) == 2
    assert "holds <U1 data of shape (2,)" in capsys.readouterr().err
    (tmp_path / "bad.pt").write_bytes(b"PK\x03\x04 not a zip")
    assert main(["simulate", path, "--tokens", str(tmp_path / "bad.pt")]) == 2
    assert "corrupt or truncated" in capsys.readouterr().err


def test_partial_models_need_consent(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = transformers.RecurrentGemmaConfig(vocab_size=40, hidden_size=32, lru_width=32, num_attention_heads=4,
                                            num_hidden_layers=3, intermediate_size=40, attention_window_size=16,
                                            block_types=["recurrent", "recurrent", "attention"])
    transformers.RecurrentGemmaForCausalLM(cfg).save_pretrained(tmp_path)
    assert main(["simulate", str(tmp_path), "--random-tokens", "40"]) == 2
    assert "--partial" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path), "--random-tokens", "40", "--partial", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "rglru" and len(report["layers"]) == 2 and "attention" in report["partial"]
    assert main(["simulate", str(tmp_path), "--random-tokens", "40", "--partial"]) == 0
    assert "note: the model also has" in capsys.readouterr().out


def test_threads_option(folder, capsys, monkeypatch):
    path, _ = folder
    before = torch.get_num_threads()
    calls = []
    set_threads = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), set_threads(n)))
    try:
        torch.set_num_threads(2)
        calls.clear()
        assert main(["simulate", path, "--random-tokens", "16", "--threads", "1", "--json"]) == 0
        assert calls == [1, 2] and torch.get_num_threads() == 2  # set for the run, then restored
        calls.clear()
        assert main(["simulate", path, "--random-tokens", "16", "--json"]) == 0
        assert calls == []  # the default: both threads for 64 channels × 4 states, nothing to change
        capsys.readouterr()
        with pytest.raises(SystemExit):
            main(["simulate", path, "--random-tokens", "16", "--threads", "0"])
        assert "argument --threads: must be a positive integer, got 0" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


# --- corpora: text through the checkpoint's tokenizer, .npz files, torchrun ------------------------------------
WORDS = ["the", "state", "space", "model", "reads", "a", "long", "text", "and", "forgets", "slowly", "[UNK]"]


@pytest.fixture(scope="module")
def text_folder(tmp_path_factory):
    """A Mamba checkpoint with its own tokenizer (tests/ckpt_builders.mamba_with_tokenizer)."""
    pytest.importorskip("tokenizers")
    from tests.ckpt_builders import mamba_with_tokenizer

    path = tmp_path_factory.mktemp("mamba_tok")
    tok = mamba_with_tokenizer(path, WORDS, hidden_size=32, n_layers=2, seed=1)
    return str(path), tok


def test_text_goes_through_the_checkpoints_tokenizer(text_folder, tmp_path, capsys):
    import ssmctl

    path, tok = text_folder
    docs = ["the state space model reads a long text " * 20, "and forgets slowly\nthe model reads " * 9]
    files = []
    for i, doc in enumerate(docs):
        files.append(tmp_path / f"doc{i}.txt")
        files[-1].write_text(doc, encoding="utf-8")
    assert main(["simulate", path, "--text", *map(str, files), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    ids = [np.asarray(tok.encode(d).ids) for d in docs]  # the tokenizers library itself, not transformers
    expect = ssmctl.simulate(ssmctl.load(path), ids, device="cpu").summary()
    assert report["layers"] == json.loads(dumps(expect))["layers"]
    assert (report["batch"], report["total_tokens"]) == (2, sum(len(i) for i in ids))
    assert main(["simulate", path, "--text", str(files[1]), "--per-line", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch"] == 10  # one sequence per non-empty line
    assert main(["simulate", path, "--text", *map(str, files)]) == 0
    assert f"2 sequences, {sum(len(i) for i in ids):,} tokens (longest {max(len(i) for i in ids)})" in \
        capsys.readouterr().out


def test_text_errors(folder, text_folder, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("the model", encoding="utf-8")
    assert main(["simulate", folder[0], "--text", str(doc)]) == 2
    err = capsys.readouterr().err
    assert "no tokenizer saved there (none of tokenizer.json" in err and "--tokens FILE.npy" in err
    (tmp_path / "blank.txt").write_text("  \n", encoding="utf-8")
    assert main(["simulate", text_folder[0], "--text", str(tmp_path / "blank.txt")]) == 2
    assert "the file has no text" in capsys.readouterr().err
    assert main(["simulate", text_folder[0], "--text", str(tmp_path / "none.txt")]) == 2
    assert "--text " in capsys.readouterr().err


def test_npz_is_a_corpus(folder, tmp_path, capsys):
    import ssmctl

    path, _ = folder
    rng = np.random.default_rng(4)
    seqs = {"a": rng.integers(0, 50, 120), "b": rng.integers(0, 50, (2, 40)), "c": rng.integers(0, 50, 33)}
    np.savez(tmp_path / "corpus.npz", **seqs)
    assert main(["simulate", path, "--tokens", str(tmp_path / "corpus.npz"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    expect = ssmctl.simulate(ssmctl.load(path), list(seqs.values()), device="cpu").summary()
    assert report["layers"] == json.loads(dumps(expect))["layers"] and report["batch"] == 4


def test_torchrun_two_processes_write_one_report(folder, tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    if not torch.distributed.is_available():
        pytest.skip("torch without torch.distributed")
    path, _ = folder
    rng = np.random.default_rng(5)
    np.savez(tmp_path / "corpus.npz", *[rng.integers(0, 50, n) for n in (90, 40, 130, 25, 60)])
    argv = ["simulate", path, "--tokens", str(tmp_path / "corpus.npz"), "--json", "--device", "cpu"]
    assert main(argv) == 0
    one = json.loads(capsys.readouterr().out)
    exe = shutil.which("ssmctl")
    target = [exe] if exe else ["-m", "ssmctl.cli"]
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *target, *argv], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)  # exactly one JSON document: rank 1 stays quiet
    assert report["layers"] == one["layers"]
    assert (report["batch"], report["total_tokens"]) == (5, 345)


def test_near_marginal_abs_max_is_not_rounded_to_one(tmp_path, capsys):
    """Channel 0 with a fixed Δ (dt_proj row 0 = 0) and A_log = log(7e-9/Δ): |Ā| max = exp(−7e-9) =
    0.999999993 (closed form), printed as 1 − 7e-09 and warned about, not as 1."""
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=50, hidden_size=16, state_size=4, num_hidden_layers=1)
    model = transformers.MambaForCausalLM(cfg)
    mixer = model.backbone.layers[0].mixer
    with torch.no_grad():
        mixer.dt_proj.weight[0] = 0.0
        mixer.dt_proj.bias[0] = 0.5
        delta = math.log1p(math.exp(0.5))  # softplus(0.5)
        mixer.A_log[0] = math.log(7e-9 / delta)
    model.save_pretrained(tmp_path / "m")
    assert _run(["simulate", str(tmp_path / "m"), "--random-tokens", "16", "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("0 "))
    assert "1 − 7e-09" in row
    assert "warning: layer 0: |Ā_t| max 1 − 7e-09 is within 1e-06 of the unit circle: marginally stable" in out
    assert _run(["simulate", str(tmp_path / "m"), "--random-tokens", "16", "--json"]) == 0
    layer = json.loads(capsys.readouterr().out)["layers"][0]
    assert 1 - layer["abs_max"] == pytest.approx(-math.expm1(-7e-9), rel=1e-5)  # float32 Δ·a: ~1e-7 relative
    assert layer["warnings"] and "within 1e-06" in layer["warnings"][0]
