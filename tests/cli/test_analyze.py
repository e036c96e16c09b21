"""``ssmctl analyze`` on checkpoints ``inspect`` reads and on fresh inits, against python-control."""

from __future__ import annotations

import json

import control
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from ssmctl.cli import main

from .. import ckpt_builders as cb


def _strict(text):
    def refuse(token):
        raise ValueError(f"non-strict JSON literal {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def mamba_folder(tmp_path_factory):
    """A transformers Mamba whose conv biases and skips are no longer at their init (as after training): at zero
    input its SSM then has nonzero B̄_t and C_t."""
    model = cb.hf_model("mamba", num_hidden_layers=2)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for block in model.backbone.layers:
            block.mixer.conv1d.bias.copy_(torch.randn(block.mixer.conv1d.bias.shape, generator=gen))
            block.mixer.D.copy_(0.5 * torch.randn(block.mixer.D.shape, generator=gen))
    return model, cb.save_hf(model, tmp_path_factory.mktemp("analyze_mamba"))


def _zero_input_channel(mixer, c):
    """python-control system of channel c of a transformers Mamba mixer fed zeros, from its own tensors:
    Ā = exp(ΔA), B̄ = ΔB, textbook form (A = Ā, B = ĀB̄, C, D = CB̄ + D)."""
    p = {k: v.detach().double() for k, v in mixer.named_parameters()}
    x = F.silu(p["conv1d.bias"])  # zero input: the conv sees zeros, its output is the bias
    r = p["dt_proj.weight"].shape[1]
    N = p["A_log"].shape[1]
    xdbl = p["x_proj.weight"] @ x
    dt = F.softplus(p["dt_proj.weight"] @ xdbl[:r] + p["dt_proj.bias"])[c]
    lam = torch.exp(dt * -torch.exp(p["A_log"][c])).numpy()
    Bbar = (dt * xdbl[r:r + N]).numpy()[:, None]
    C = xdbl[r + N:].numpy()[None, :]
    D = p["D"][c].item()
    return control.ss(np.diag(lam), lam[:, None] * Bbar, C, C @ Bbar + D, dt=True)


def test_json_is_strict_and_matches_python_control_on_the_checkpoint(mamba_folder, capsys):
    model, folder = mamba_folder
    assert main(["analyze", str(folder), "--json"]) == 0
    out = capsys.readouterr()
    report = _strict(out.out)
    assert out.err == ""  # no progress bar with --json
    assert report["kind"] == "analyze" and report["schema"] == 1 and report["family"] == "mamba"
    assert [lay["index"] for lay in report["layers"]] == [0, 1]
    for lay in report["layers"]:
        assert lay["point"] == "zero input" and lay["channel_shape"] == [64] and lay["n_states"] == 8
        mixer = model.backbone.layers[lay["index"]].mixer
        ch = lay["channels"]
        for c in (0, 17, 63):
            cs = _zero_input_channel(mixer, c)
            assert ch["h2"][c] == pytest.approx(control.norm(cs, 2), rel=1e-5)
            assert ch["hinf"][c] == pytest.approx(control.norm(cs, "inf"), rel=1e-5)
            assert ch["dc_gain"][c] == pytest.approx(float(np.real(control.dcgain(cs))), rel=1e-5)
            assert ch["radius"][c] == pytest.approx(np.abs(np.diag(cs.A)).max(), rel=1e-6)
        assert lay["max"]["h2"] == max(ch["h2"]) and lay["argmax"]["h2"] == int(np.argmax(ch["h2"]))
        assert lay["min"]["margin"] == min(ch["margin"])
        # Every null in a column is counted.
        for name, values in ch.items():
            assert lay["nonfinite_counts"][name] == sum(v is None for v in values)


def test_a_layer_per_channel_in_text(mamba_folder, capsys):
    _, folder = mamba_folder
    assert main(["analyze", str(folder), "--layer", "1"]) == 0
    text = capsys.readouterr().out
    assert "mamba from" in text and "per layer, the maximum over channels" in text
    assert "layer 1, per channel (channels [64]" in text
    assert "LTV@0: an LTV layer analysed at zero input" in text
    table = text.split("flattened in C order):\n")[1].split("\n\n")[0].splitlines()
    assert len(table) == 2 + 64 and table[0].split()[:2] == ["ch", "|λ|"]


def test_s4d_state_dict_and_hankel_states_against_scipy(tmp_path, capsys):
    import scipy.linalg

    sd = cb.s4d_minimal_state_dict(n_layers=2, H=4, N=8)
    path = cb.write_state_dict(sd, tmp_path / "s4d.pt")
    assert main(["analyze", str(path), "--json", "--hankel-tol", "1e-2"]) == 0
    report = _strict(capsys.readouterr().out)
    sys1 = ssmctl.load(path).layers[1].system()
    lay = report["layers"][1]
    assert report["hankel_tol"] == 1e-2 and lay["kind"] == "LTI" and lay["point"] == "lti"
    for c in range(4):
        cs = ssmctl.to_control(sys1[c])
        assert lay["channels"]["h2"][c] == pytest.approx(control.norm(cs, 2), rel=1e-9)
        A, B, C = (np.asarray(x, dtype=np.float64) for x in (cs.A, cs.B, cs.C))
        Wc = scipy.linalg.solve_discrete_lyapunov(A, B @ B.T)
        Wo = scipy.linalg.solve_discrete_lyapunov(A.T, C.T @ C)
        hsv = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert lay["channels"]["hankel_states"][c] == int((hsv > 1e-2 * hsv[0]).sum())


def test_family_init_and_plot(tmp_path, capsys):
    out = tmp_path / "figs" / "hankel.png"
    argv = ["analyze", "s4d", "--d-model", "4", "--d-state", "6", "--n-layers", "2", "--plot", str(out)]
    assert main(argv) == 0
    cap = capsys.readouterr()
    assert out.stat().st_size > 0 and f"wrote {out}" in cap.err
    rows = cap.out.split("-----\n")[1].split("\n\n")[0].splitlines()
    assert [r.split()[:2] for r in rows] == [["0", "LTI"], ["1", "LTI"]] and "LTV@0" not in cap.out
    report = ssmctl.cli.analyze.analyze_report(ssmctl.init("s4d", d_model=4, d_state=6, n_layers=2), progress=False)
    fig = ssmctl.cli.analyze.analyze_figure(ssmctl.init("s4d", d_model=4, d_state=6, n_layers=2), report)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("layer 0 (LTI): channels [") and "σ_i / σ_1" in fig.axes[0].get_ylabel()


@pytest.mark.parametrize("argv, message", [
    (["analyze", "s4d", "--d-model", "2", "--n-layers", "2", "--layer", "5"], "no layer 5; this model's layers: [0, 1]"),
    (["analyze", "nothing-here"], "'nothing-here' is neither a file or folder nor a family name; families: s4,"),
    (["analyze", "s4d", "--d-model", "2", "--hankel-tol", "2"], "hankel_tol must lie in (0, 1), got 2.0"),
    (["analyze", "s4d", "--d-model", "2", "--eps", "0"], "eps must lie in (0, 1), got 0.0"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"ssmctl analyze: error: {err.split('error: ', 1)[1]}" and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_init_sizes_are_refused_for_a_checkpoint(mamba_folder, capsys):
    _, folder = mamba_folder
    assert main(["analyze", str(folder), "--d-model", "8"]) == 2
    assert "--d-model set the sizes of a fresh init" in capsys.readouterr().err


def test_a_fresh_transformers_mamba_is_static_at_zero_input(tmp_path, capsys):
    """transformers zeroes the conv bias: at zero input B̄_t = C_t = 0 and each channel is its skip D."""
    model = cb.hf_model("mamba", num_hidden_layers=1)
    folder = cb.save_hf(model, tmp_path / "fresh")
    assert main(["analyze", str(folder), "--json"]) == 0
    lay = _strict(capsys.readouterr().out)["layers"][0]
    D = model.backbone.layers[0].mixer.D.detach().double().numpy()
    np.testing.assert_allclose(lay["channels"]["h2"], np.abs(D), rtol=1e-12)
    np.testing.assert_allclose(lay["channels"]["dc_gain"], D, rtol=1e-12)
    assert set(lay["channels"]["hankel_states"]) == {0} and set(lay["channels"]["gain_margin"]) == {None}
    assert main(["analyze", str(folder)]) == 0
    assert "layer 0: at zero input B_bar_t or C_t vanish" in capsys.readouterr().out


def test_layers_ssmctl_cannot_run_get_inspects_eigenvalues_and_no_norms(tmp_path, capsys):
    from ssmctl.checkpoints.inspect import inspect_report

    folder = cb.save_hf(cb.hf_model("falcon_h1"), tmp_path / "falcon_h1")
    assert main(["analyze", str(folder), "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    rows = {row["index"]: row for row in inspect_report(folder)["layers"] if row["kind"] == "LTV"}
    assert len(report["layers"]) == 2
    for lay in report["layers"]:
        row = rows[lay["index"]]
        assert lay["point"] == "bias eigenvalues" and "no input-output numbers" in lay["note"]
        assert lay["max"]["radius"] == pytest.approx(row["spectral_radius"], rel=1e-12)
        assert lay["max"]["memory_horizon"] == pytest.approx(row["memory_horizon_max"], rel=1e-12)
        assert lay["max"]["h2"] is None and lay["nonfinite_counts"]["h2"] == len(lay["channels"]["h2"])
    assert main(["analyze", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "LTV@bias" in out and "no input-output numbers" in out
