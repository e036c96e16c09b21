import json

import numpy as np
import pytest

from ssmctl.cli import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_eig_s4d_lin_matches_closed_form(capsys):
    data = run_json(capsys, "eig", "s4d", "--variant", "lin", "--d-model", "16", "--d-state", "8", "--seed", "3", "--json")
    import ssmctl

    layer = ssmctl.init("s4d", variant="lin", d_model=16, d_state=8, seed=3, n_layers=1).layers[0]
    dt = np.exp(np.asarray(layer.params["kernel.log_dt"], dtype=float))
    # S4D-Lin: A_n = −½ + iπn, ZOH ⇒ |λ̄| = exp(−Δ/2) for every mode; conj pairs double the count.
    moduli = np.repeat(np.exp(-dt / 2), 8)
    assert data["n_eigenvalues"] == 16 * 8
    assert data["abs_min"] == pytest.approx(moduli.min(), rel=1e-12)
    assert data["abs_max"] == pytest.approx(moduli.max(), rel=1e-12)
    assert data["abs_median"] == pytest.approx(np.median(moduli), rel=1e-12)
    assert data["memory_horizon_median"] == pytest.approx(np.median(np.log(1e-2) / (-dt / 2)), rel=1e-10)
    assert data["schema"] == 1 and data["eps"] == 1e-2


def test_eig_ltv_reports_the_input_and_strict_json(capsys):
    data = run_json(capsys, "eig", "rglru", "--d-model", "32", "--json")
    assert data["kind"] == "LTV" and data["input"]["rms"] == 1.0
    # RG-LRU (recurrentgemma init): a ∈ [0.9, 0.999] and a_t = a^{c·r_t} with r_t ∈ (0, 1) ⇒ a^8 < a_t < 1.
    assert 0.9**8 < data["abs_min"] and data["abs_max"] < 1.0


def test_eig_plot_writes_a_file(tmp_path, capsys):
    path = tmp_path / "new" / "eig.png"  # the folder is created
    assert main(["eig", "lru", "--d-model", "8", "--d-state", "8", "--plot", str(path)]) == 0
    assert path.read_bytes().startswith(b"\x89PNG") and path.stat().st_size > 1000
    captured = capsys.readouterr()
    assert "lru" in captured.out and f"wrote {path}" in captured.err


def test_unknown_family_is_a_clear_error(capsys):
    assert main(["eig", "s7"]) == 2
    err = capsys.readouterr().err
    assert "unknown family 's7'" in err and "s4d" in err and "mamba" in err


def test_demo_numbers_match_python_control(capsys):
    import control

    from ssmctl.cli import demo_system

    data = run_json(capsys, "demo", "--channels", "3", "--d-state", "8", "--json")
    sys_, dt = demo_system(3, 8, 0)
    for row in data["channels"]:
        cs = ssmctl_to_control(sys_[row["channel"]])
        assert row["dt"] == pytest.approx(dt[row["channel"]])
        assert row["h2_norm"] == pytest.approx(control.norm(cs, 2), rel=1e-9)
        assert row["hinf_norm"] == pytest.approx(control.norm(cs, "inf", tol=1e-10), rel=2e-6)
        assert row["dc_gain"] == pytest.approx(float(control.dcgain(cs)), rel=1e-9)
        assert row["spectral_radius"] == pytest.approx(max(abs(cs.poles())), rel=1e-12)
        Wc, Wo = control.gram(cs, "c"), control.gram(cs, "o")
        hsv = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert row["states_used"] == int(np.count_nonzero(hsv > 1e-3 * hsv[0]))


def ssmctl_to_control(sys_):
    import ssmctl

    return ssmctl.to_control(sys_)
