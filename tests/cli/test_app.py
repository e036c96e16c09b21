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
    k = np.log(1e-2) / (-dt / 2)
    assert data["memory_horizon_median"] == pytest.approx(np.median(np.repeat(k, 8)), rel=1e-10)
    assert data["memory_horizon_max"] == pytest.approx(k.max(), rel=1e-10)
    assert data["memory_horizon_inf_count"] == 0
    assert data["schema"] == 1 and data["eps"] == 1e-2
    # the text table: the same numbers to its 4 significant digits
    assert main(["eig", "s4d", "--variant", "lin", "--d-model", "16", "--d-state", "8", "--seed", "3"]) == 0
    row = next(line.split() for line in capsys.readouterr().out.splitlines() if line.split()[:1] == ["s4d"])
    assert row[:3] == ["s4d", "LTI", "128"]
    expected = [moduli.min(), np.median(moduli), moduli.max(), np.median(k), k.max()]
    np.testing.assert_allclose([float(x) for x in row[3:]], expected, rtol=5e-4)


def test_eig_ltv_numbers_are_transformers_recurrence_gates(capsys):
    """The LTV eigenvalue statistics are those of a_t as transformers' RG-LRU computes it on the stated input."""
    import torch
    import transformers

    import ssmctl

    data = run_json(capsys, "eig", "rglru", "--d-model", "32", "--json")
    assert data["kind"] == "LTV" and data["input"]["rms"] == 1.0
    inp = data["input"]
    assert (inp["distribution"], inp["batch"], inp["length"], inp["seed"]) == ("gaussian", 4, 256, 0)
    # The same fresh layer (default seed) loaded into transformers' RecurrentGemma decoder layer.
    layer = ssmctl.init("rglru", d_model=32, n_layers=1).layers[0]
    cfg = transformers.RecurrentGemmaConfig(
        vocab_size=8, hidden_size=32, lru_width=32, num_attention_heads=4, num_hidden_layers=1,
        intermediate_size=16, block_types=["recurrent"], conv1d_width=4, rms_norm_eps=layer.config["eps"],
    )
    hf = transformers.RecurrentGemmaForCausalLM(cfg).eval().model.layers[0]
    missing, unexpected = hf.load_state_dict({k: torch.as_tensor(v) for k, v in layer.params.items()}, strict=False)
    assert not unexpected and all(k.startswith(("channel_pre_norm", "mlp_block")) for k in missing)
    rg, gates = hf.temporal_block.rg_lru, []
    original = rg._rnn_scan

    def spy(hidden_states, recurrent_gate, *args, **kwargs):
        gates.append(recurrent_gate.detach().double())
        return original(hidden_states, recurrent_gate, *args, **kwargs)

    rg._rnn_scan = spy
    # the stated input: unit-RMS Gaussian (batch, length, d_model) from numpy's generator at the stated seed
    u = torch.from_numpy(np.random.default_rng(inp["seed"]).standard_normal((4, 256, 32)).astype(np.float32))
    with torch.no_grad():
        hf(u, position_ids=torch.arange(256)[None].expand(4, 256), attention_mask=None, use_cache=False)
    a = gates[0].numpy().reshape(-1)
    assert data["n_eigenvalues"] == a.size == 4 * 256 * 32
    np.testing.assert_allclose([data["abs_min"], data["abs_median"], data["abs_max"]],
                               [a.min(), np.median(a), a.max()], rtol=1e-5)
    k = np.log(1e-2) / np.log(a)
    np.testing.assert_allclose([data["memory_horizon_median"], data["memory_horizon_max"]],
                               [np.median(k), k.max()], rtol=1e-4)
    assert data["memory_horizon_inf_count"] == 0


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


def _textbook_ss(lam, Bbar, C, D):
    """python-control system of y = 2·Re(C h), h_k = Λh_{k−1} + B̄u_k, written out here (not ssmctl.to_control):
    x = [Re h; Im h], then the textbook form A, B' = AB̄, C, D' = CB̄ + D."""
    import control

    A = np.block([[np.diag(lam.real), -np.diag(lam.imag)], [np.diag(lam.imag), np.diag(lam.real)]])
    B = np.concatenate([Bbar.real, Bbar.imag])
    Cr = 2 * np.concatenate([C.real, -C.imag], axis=-1)
    return control.ss(A, A @ B, Cr, Cr @ B + D, dt=True)


def test_demo_numbers_match_python_control(capsys):
    import control

    from ssmctl.cli import demo_system

    data = run_json(capsys, "demo", "--channels", "3", "--d-state", "8", "--json")
    assert [row["channel"] for row in data["channels"]] == [0, 1, 2]
    sys_, _ = demo_system(3, 8, 0)  # only its random draws C and D are used below
    a = -0.5 + 1j * np.pi * np.arange(8)  # S4D-Lin, as the report states
    for row in data["channels"]:
        c, dt = row["channel"], row["dt"]
        assert 1e-3 <= dt <= 1e-1 and row["n_states"] == 16
        lam = np.exp(dt * a)  # ZOH, B = 1: B̄ = (e^{Δa} − 1)/a
        np.testing.assert_allclose(sys_.lam[c], lam, rtol=1e-12)
        np.testing.assert_allclose(sys_.B[c, :, 0], (lam - 1) / a, rtol=1e-12)
        cs = _textbook_ss(lam, ((lam - 1) / a)[:, None], sys_.C[c], sys_.D[c])
        assert row["h2_norm"] == pytest.approx(control.norm(cs, 2), rel=1e-9)
        assert row["hinf_norm"] == pytest.approx(control.norm(cs, "inf", tol=1e-10), rel=2e-6)
        assert row["dc_gain"] == pytest.approx(float(control.dcgain(cs)), rel=1e-9)
        assert row["spectral_radius"] == pytest.approx(max(abs(cs.poles())), rel=1e-12)
        # every mode has |λ̄| = e^{−Δ/2}: k = ln ε / ln|λ̄| = 2 ln(100)/Δ
        assert row["memory_horizon_median"] == pytest.approx(2 * np.log(100) / dt, rel=1e-12)
        Wc, Wo = control.gram(cs, "c"), control.gram(cs, "o")
        hsv = np.sort(np.sqrt(np.abs(np.linalg.eigvals(Wc @ Wo))))[::-1]
        assert row["states_used"] == int(np.count_nonzero(hsv > 1e-3 * hsv[0]))
    # the text table prints the same numbers (4 significant digits)
    assert main(["demo", "--channels", "3", "--d-state", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    keys = ["channel", "dt", "n_states", "spectral_radius", "memory_horizon_median", "h2_norm", "hinf_norm", "dc_gain",
            "states_used"]
    assert len(rows) == 3
    for cells, row in zip(rows, data["channels"]):
        np.testing.assert_allclose([float(x) for x in cells], [row[k] for k in keys], rtol=5e-4)


# --- help and option checking --------------------------------------------------------------------------------
def _subparsers():
    from ssmctl.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices


def test_every_option_of_every_command_is_described_without_markup():
    import re

    for name, p in _subparsers().items():
        text = p.format_help()
        assert not re.search(r"``|:(func|class|mod|meth|data):`", text), f"{name}: docstring markup in --help"
        assert p.description, f"{name} has no description"
        assert "HINT_" not in text and "D_MODEL" not in text, f"{name}: a metavar made from a dest name"
        for action in p._actions:
            if action.dest == "help":
                continue
            label = "/".join(action.option_strings) or action.dest
            assert action.help and action.help.strip(), f"ssmctl {name} {label} has no help text"
            for choice in action.choices or ():
                assert str(choice) in text, f"ssmctl {name} {label}: choice {choice!r} not listed"


def test_eig_help_lists_families_variants_and_presets():
    from ssmctl.models import families, get_family

    text = _subparsers()["eig"].format_help()
    for family in families():
        record = get_family(family)
        line = next(line for line in text.splitlines() if line.strip().startswith(family + " "))
        for name in (*record.variants, *record.presets):
            assert name in line, f"{family}: {name} missing from eig --help"


def test_simulate_help_opens_with_words_not_markup(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    description = out.split("\n\n")[1]
    assert description.startswith("Eigenvalues, step sizes and memory of an input-dependent model")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "x", "--random-tokens", "5", "--chunk", "0"], "argument --chunk: must be a positive integer, got 0"),
        (["simulate", "x", "--random-tokens", "0"], "argument --random-tokens: must be a positive integer, got 0"),
        (["simulate", "x", "--random-tokens", "5", "--threads", "0"], "argument --threads: must be a positive integer, got 0"),
        (["demo", "--d-state", "0"], "argument --d-state: must be a positive integer, got 0"),
        (["demo", "--seed", "-1"], "argument --seed: must be an integer in [0, 2**63), got -1"),
        (["eig", "s4d", "--seed", "x"], "argument --seed: must be an integer in [0, 2**63), got 'x'"),
        (["compare", "a", "init", "--seed", "-5"], "argument --seed: must be an integer in [0, 2**63), got -5"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == f"ssmctl {argv[0]}: error: {message} (see ssmctl {argv[0]} --help)\n"


@pytest.mark.parametrize("argv", [["eig", "s4d", "--eps", "0"], ["demo", "--eps", "1"], ["eig", "lru", "--eps", "nan"]])
def test_eps_outside_0_1_is_refused(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"ssmctl {argv[0]}: error: --eps must lie in (0, 1), got ") and err.count("\n") == 1


def test_eig_takes_eps(capsys):
    """k_ε = ln ε / ln|λ|: the memory horizon at ε = 0.1 is half the one at ε = 0.01, mode by mode."""
    assert main(["eig", "s4d", "--d-model", "4", "--d-state", "8", "--json"]) == 0
    at_1e2 = json.loads(capsys.readouterr().out)
    assert main(["eig", "s4d", "--d-model", "4", "--d-state", "8", "--json", "--eps", "0.1"]) == 0
    at_1e1 = json.loads(capsys.readouterr().out)
    assert at_1e2["eps"] == 0.01 and at_1e1["eps"] == 0.1
    for key in ("memory_horizon_median", "memory_horizon_max"):
        assert at_1e1[key] == pytest.approx(0.5 * at_1e2[key], rel=1e-12)
    assert main(["demo", "--eps", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eps"] == 0.1


def test_eig_variant_is_the_families_init_keyword(capsys):
    """--variant picks S4D's variant and Mamba-2's / RG-LRU's a_init; families with one init say so."""
    assert main(["eig", "mamba2", "--variant", "transformers", "--d-model", "64", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["config"]["a_init"] == "transformers"
    from ssmctl.cli.app import eig_report
    from ssmctl.report import dumps

    assert report == json.loads(dumps(eig_report("mamba2", d_model=64, a_init="transformers")[0]))
    assert main(["eig", "mamba2", "--d-model", "64", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["abs_min"] != report["abs_min"]  # the variant changed the init
    assert main(["eig", "mamba", "--variant", "x"]) == 2
    assert "mamba has one initialization; --variant does not apply" in capsys.readouterr().err
    assert main(["eig", "s4d", "--variant", "nope"]) == 2
    assert "unknown s4d variant (--variant) 'nope'; known: inv, legs, lin, real" in capsys.readouterr().err


def test_messages_name_cli_flags_under_the_cli_and_keywords_in_python():
    from ssmctl.errors import cli_spelling, option

    assert option("device", "cpu") == "device='cpu'" and option("chunk") == "chunk"
    with cli_spelling():
        assert option("device", "cpu") == "--device cpu" and option("random_tokens") == "--random-tokens"
    assert option("device", "cpu") == "device='cpu'"


def test_the_command_sets_passive_openmp_waiting_before_torch_loads():
    # libgomp reads OMP_WAIT_POLICY once, when torch loads it: record the policy at the moment `import torch`
    # first runs while the `ssmctl` entry point (ssmctl.cli.app:main) is imported
    import os
    import subprocess
    import sys

    code = """
import builtins, os
seen = {}
real = builtins.__import__
def hook(name, *args, **kw):
    if name.split('.')[0] == 'torch' and 'torch' not in seen:
        seen['torch'] = os.environ.get('OMP_WAIT_POLICY')
    return real(name, *args, **kw)
builtins.__import__ = hook
from ssmctl.cli.app import main
print(seen.get('torch'))
"""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.stdout.strip() == "PASSIVE", out.stderr[-1000:]
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # an explicit choice is kept
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert out.stdout.strip() == "ACTIVE", out.stderr[-1000:]
