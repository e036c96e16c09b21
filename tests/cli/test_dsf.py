"""``ssmctl dsf``: its numbers against direct computations on the reference twins (materialize_ref, numpy SVDs and
norms, the layers' own transitions), on fresh models and a transformers save_pretrained Mamba; errors exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _json(argv, capsys):
    assert main(["dsf", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _signal(L, d_model, seed=0):
    """What --random-tokens L draws for a model without an embedding."""
    return np.random.default_rng(seed).standard_normal((1, L, d_model)).astype(np.float32)


def _ranks(phi, rtol=1e-8):
    """Numerical rank of Φ[t:, :t] per cut t = 1..L−1, max over channels (phi: (channels, L, L))."""
    L = phi.shape[-1]
    out = []
    for t in range(1, L):
        s = np.linalg.svd(phi[:, t:, :t], compute_uv=False)
        out.append(int(np.max(np.sum(s > rtol * s[:, :1], axis=-1))))
    return np.array(out)


def test_fresh_s6_numbers_match_direct_computations(capsys):
    L = 40
    report = _json(["s6", "--random-tokens", str(L), "--layer", "0"], capsys)
    assert report["schema"] == 1 and report["family"] == "s6" and report["input"]["tokens"] == L
    (row,) = report["layers"]
    layer = ssmctl.init("s6").layers[0]
    u = torch.from_numpy(_signal(L, layer.config["d_model"]))
    lam = np.abs(layer.ltv(u).lam.double().numpy())
    assert row["lambda"]["min"] == lam.min() and row["lambda"]["max"] == lam.max()
    assert row["lambda"]["frac_above_1"] == 0.0 and row["lambda"]["frac_inside_0_1"] == np.mean((lam > 0) & (lam < 1))
    phi = ssmctl.materialize_ref(layer, u)[0]  # (channels, L, L), product loop
    ranks = _ranks(phi)
    assert row["hankel"]["cuts"] == list(range(1, L))
    assert row["hankel"]["rank_max_over_channels"] == ranks.tolist()
    assert row["n_states"] == layer.config["d_state"] and row["hankel"]["within_n_states"]
    assert row["hankel"]["rank_max"] == layer.config["d_state"]  # an S6 channel uses all its N = 16 states
    gains = np.linalg.norm(phi, ord=2, axis=(-2, -1))
    assert row["window_gain"]["max"] == pytest.approx(gains.max(), rel=1e-10)
    assert row["window_gain"]["median"] == pytest.approx(np.median(gains), rel=1e-10)


def test_softmax_has_no_state_bound_and_full_hankel_rank(capsys):
    L = 40
    report = _json(["attention", "--variant", "softmax", "--num-heads", "2", "--random-tokens", str(L),
                    "--layer", "-1"], capsys)
    (row,) = report["layers"]
    assert row["variant"] == "softmax" and row["n_states"] is None and row["hankel"]["within_n_states"] is None
    layer = ssmctl.init("attention", variant="softmax", num_heads=2).layers[-1]
    u = torch.from_numpy(_signal(L, layer.config["d_model"]))
    ranks = _ranks(ssmctl.materialize_ref(layer, u)[0])
    cuts = np.arange(1, L)
    assert row["hankel"]["rank_max_over_channels"] == ranks.tolist()
    np.testing.assert_array_equal(ranks, np.minimum(cuts, L - cuts))  # generic full rank: above any N
    assert row["hankel"]["cuts_at_full_rank"] == L - 1
    assert 0 < row["lambda"]["frac_above_1"] < 1  # η_i falls at some tokens


def test_loaded_mamba_block_scope_gain_and_text(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=50, hidden_size=16, state_size=4, num_hidden_layers=2)
    transformers.MambaForCausalLM(cfg).save_pretrained(tmp_path / "m")
    L = 12
    report = _json([str(tmp_path / "m"), "--random-tokens", str(L), "--layer", "1", "--scope", "block"], capsys)
    (row,) = report["layers"]
    assert row["index"] == 1 and row["family"] == "mamba" and row["layout"] == "full"
    model = ssmctl.load(tmp_path / "m")
    ids = np.random.default_rng(0).integers(0, 50, size=(1, L))  # what --random-tokens draws
    u = torch.as_tensor(np.asarray(model.extras["embedding"]))[torch.from_numpy(ids)].float()
    full = ssmctl.materialize_ref(model.layers[1], u, scope="block")[0]  # (L, L, p, m), dense products
    big = full.transpose(0, 2, 1, 3).reshape(L * full.shape[2], L * full.shape[3])
    assert row["window_gain"]["max"] == pytest.approx(np.linalg.norm(big, 2), rel=1e-9)
    assert row["n_states"] == 4 * 32  # N per channel × d_inner channels: the block's state
    assert main(["dsf", str(tmp_path / "m"), "--random-tokens", str(L)]) == 0
    out = capsys.readouterr().out
    assert "mamba from" in out and "Hankel rank max" in out and "ℓ2 gain" in out
    assert len([line for line in out.splitlines() if line.strip().startswith(("0 ", "1 "))]) == 2


def test_plot_is_written(tmp_path, capsys):
    plot = tmp_path / "figs" / "dsf.png"
    assert main(["dsf", "qlstm", "--random-tokens", "16", "--plot", str(plot)]) == 0
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000


@pytest.mark.parametrize("argv, message", [
    (["nope"], "'nope' is neither a file or folder nor a family name"),
    (["s4d", "--scope", "block", "--random-tokens", "8"], "scope='block' is available for the input-dependent"),
    (["s6", "--layer", "7", "--random-tokens", "8"], "--layer 7: the model has 2 layer(s)"),
    (["s6", "--random-tokens", "0"], "--random-tokens must be a positive length"),
])
def test_errors_exit_2_with_one_line(argv, message, capsys):
    assert main(["dsf", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("ssmctl dsf: error:")
