"""``ssmctl inspect`` / ``ssmctl compare`` on checkpoints written by the real producers."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ssmctl.cli import main
from ssmctl.cli.checkpoints import register

from .. import ckpt_builders as cb


def _strict(text):
    def refuse(token):
        raise ValueError(f"non-strict JSON literal {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    model = cb.hf_model("mamba", num_hidden_layers=2)
    return model, cb.save_hf(model, tmp_path_factory.mktemp("cli_mamba"))


def test_register_adds_both_commands():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inspect", "x", "--json", "--plot", "p.png"])
    assert args.command == "inspect" and args.json and args.plot == "p.png" and args.eps == 1e-2
    args = parser.parse_args(["compare", "a", "init", "--seed", "3"])
    assert (args.a, args.b, args.seed) == ("a", "init", 3)


def test_inspect_prints_the_table_on_a_fresh_save_pretrained_folder(folder, capsys):
    model, path = folder
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    header = next(line for line in lines if line.strip().startswith("layer"))
    for col in ("family", "kind", "at", "N", "channels", "|λ| min", "|λ| med", "|λ| max", "radius", "margin",
                "mem med", "mem max", "A min", "A max", "warnings"):
        assert col in header
    rows = [line.split() for line in lines if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["0", "1"] and all(r[1:4] == ["mamba", "LTV", "dt_bias"] for r in rows)
    for row, block in zip(rows, model.backbone.layers):
        # every number of the row from the transformers module's own tensors, to the table's 4 digits
        dt = F.softplus(block.mixer.dt_proj.bias.detach().double())
        A = -torch.exp(block.mixer.A_log.detach().double())
        lam = torch.exp(dt[:, None] * A).numpy()
        k = np.log(1e-2) / np.log(lam)
        assert [int(row[4]), int(row[5])] == [model.config.state_size, model.config.intermediate_size]
        expected = [lam.min(), np.median(lam), lam.max(), lam.max(), 1 - lam.max(), np.median(k), k.max(),
                    A.min().item(), A.max().item()]
        np.testing.assert_allclose([float(x) for x in row[6:15]], expected, rtol=5e-4)
    assert "softplus(dt_proj.bias)" in out


def test_inspect_json_is_strict_and_complete(folder, capsys):
    model, path = folder
    assert main(["inspect", str(path), "--json", "--eps", "1e-3"]) == 0
    report = _strict(capsys.readouterr().out)
    assert report["schema"] == 1 and report["eps"] == 1e-3
    for row, block in zip(report["layers"], model.backbone.layers):
        assert row["at"] == "dt_bias" and row["d_state"] == model.config.state_size
        dt = F.softplus(block.mixer.dt_proj.bias.detach().double())
        lam = torch.exp(dt[:, None] * -torch.exp(block.mixer.A_log.detach().double())).numpy()
        k = np.log(1e-3) / np.log(lam)  # the --eps given on the command line
        got = [row[key] for key in ("abs_min", "abs_median", "abs_max", "memory_horizon_median", "memory_horizon_max")]
        np.testing.assert_allclose(got, [lam.min(), np.median(lam), lam.max(), np.median(k), k.max()], rtol=1e-6)


def test_inspect_plot_draws_every_layer(tmp_path, capsys):
    model = cb.hf_model("recurrent_gemma")
    path = cb.save_hf(model, tmp_path / "rg")
    svg = tmp_path / "plots" / "layers.svg"  # the folder is created; the format follows the suffix
    assert main(["inspect", str(path), "--plot", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:2000] and svg.stat().st_size > 10_000
    from ssmctl.checkpoints.inspect import inspect_report
    from ssmctl.plot.compare import plot_inspect

    report = inspect_report(path, eigenvalues=True)
    fig = plot_inspect(report, report.pop("eigenvalues"))
    titled = [ax.get_title() for ax in fig.axes if ax.get_title()]
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("layer 0" in t for t in titled) and any("layer 1" in t for t in titled)
    assert any("model.layers.2.temporal_block" in t for t in texts)  # the attention layer gets its panel


def test_compare_init_table_json_and_plot(folder, tmp_path, capsys):
    _, path = folder
    pdf = tmp_path / "a" / "b" / "cmp.pdf"
    assert main(["compare", str(path), "init", "--plot", str(pdf)]) == 0
    out = capsys.readouterr().out
    assert "B = init" in out and "% (0.9, 1] A/B" in out
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.stat().st_size > 10_000
    assert main(["compare", str(path), "init", "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    assert report["radius_edges"] == [0.1, 0.5, 0.9, 1.0, 10.0, 100.0]
    assert report["phase_edges_deg"] == [1.0, 10.0, 45.0, 90.0, 180.0]
    assert len(report["layers"]) == 2 and all(len(e["radius_histogram"]["a"]["counts"]) == 7 for e in report["layers"])


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "ssmctl inspect: error: no such file or folder" in err and "never downloads" in err
    torch.save({"conv.weight": torch.zeros(2, 2)}, tmp_path / "cnn.pt")
    assert main(["inspect", str(tmp_path / "cnn.pt")]) == 2
    assert "unknown checkpoint layout" in capsys.readouterr().err


def test_hint_flags_reach_the_loader(tmp_path, capsys):
    """--dt-transform on inspect / compare / simulate; without it a bare S4D state dict is one line, exit 2."""
    from ssmctl.checkpoints.inspect import inspect_report
    from ssmctl.cli.common import hints_from_args

    sd = cb.s4_state_dict(cb.s4d_diag_kernel(2, 8, dt_transform="exp"), 1, l_kernel=None)
    path = str(cb.write_state_dict(sd, tmp_path / "s4d.pt"))
    assert main(["inspect", path]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "does not record dt_transform" in err and "--dt-transform" in err
    assert main(["inspect", path, "--dt-transform", "exp", "--json"]) == 0
    report = _strict(capsys.readouterr().out)
    expected = inspect_report(path, hints={"dt_transform": "exp"})
    assert report["layers"][0]["memory_horizon_median"] == pytest.approx(expected["layers"][0]["memory_horizon_median"])
    assert report["config"]["dt_transform"] == "exp"
    assert main(["compare", path, path, "--dt-transform", "exp", "--json"]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["inspect", path, "--dt-transform", "log"])
    assert "invalid choice: 'log' (choose from" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    assert hints_from_args(parser.parse_args(["inspect", "x"])) == {}
    assert hints_from_args(parser.parse_args(["inspect", "x", "--dt-transform", "softplus"])) == {"dt_transform": "softplus"}


def test_simulate_takes_the_same_hint_flags():
    from ssmctl.checkpoints.hints import HINTS
    from ssmctl.cli.common import hints_from_args
    from ssmctl.cli.simulate import register as register_simulate

    parser = argparse.ArgumentParser()
    register_simulate(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "x", "--random-tokens", "4", "--dt-transform", "exp"])
    assert hints_from_args(args) == {"dt_transform": "exp"}
    args = parser.parse_args(["simulate", "x", "--random-tokens", "4", "--ngroups", "2"])
    assert hints_from_args(args) == {"ngroups": 2}
    help_text = parser._subparsers._group_actions[0].choices["simulate"].format_help()
    for hint in HINTS.values():  # one table: every hint is a flag of every loading command
        assert hint.flag in help_text
