"""Every command that writes files refuses a bad --plot / --outdir the same way, before doing any work."""

from __future__ import annotations

import pytest

from ssmctl.cli import build_parser, main



def _argv(command, tmp_path, out):
    """A command line of ``command`` writing to ``out``; checkpoints that do not exist, so that only an early
    check of the output path can produce the error (any work would first fail on the missing checkpoint)."""
    missing = str(tmp_path / "no-checkpoint")
    return {
        "eig": ["eig", "lru", "--d-model", "4", "--d-state", "4", "--plot", out],
        "inspect": ["inspect", missing, "--plot", out],
        "compare": ["compare", missing, "init", "--plot", out],
        "simulate": ["simulate", missing, "--random-tokens", "5", "--plot", out],
        "analyze": ["analyze", missing, "--plot", out],
        "dsf": ["dsf", missing, "--plot", out],
    }[command]


PLOTTING = ["eig", "inspect", "compare", "simulate", "analyze", "dsf"]


def test_every_file_writing_command_is_covered():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    writers = {name for name, p in sub.choices.items()
               if any(opt in p._option_string_actions for opt in ("--plot", "--outdir"))}
    assert writers == set(PLOTTING) | {"figures"}


@pytest.mark.parametrize("command", PLOTTING)
def test_unknown_suffix(command, tmp_path, capsys):
    out = tmp_path / "new" / "fig.jpg"
    assert main(_argv(command, tmp_path, str(out))) == 2
    err = capsys.readouterr().err
    assert f"ssmctl {command}: error: {out}: unknown figure format '.jpg'; known: .png, .svg, .pdf" in err
    assert "Traceback" not in err and not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", PLOTTING)
def test_a_file_where_the_folder_should_be(command, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "fig.png"
    assert main(_argv(command, tmp_path, str(out))) == 2
    err = capsys.readouterr().err
    assert f"ssmctl {command}: error: cannot create folder {tmp_path / 'notes.txt'}: " in err
    assert "is not a folder" in err


@pytest.mark.parametrize("command", PLOTTING + ["figures"])
def test_read_only_folder(command, read_only_dir, tmp_path, capsys):  # noqa: F811
    ro = read_only_dir
    if command == "figures":
        argv = ["figures", "--outdir", str(ro / "figs")]
    else:
        argv = _argv(command, tmp_path, str(ro / "figs" / "fig.png"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"ssmctl {command}: error: cannot create folder {ro / 'figs'}: {ro} is not writable" in err
    assert "Traceback" not in err


def test_figures_outdir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "figs").write_text("x")
    assert main(["figures", "--outdir", str(tmp_path / "figs")]) == 2
    assert f"cannot create folder {tmp_path / 'figs'}: {tmp_path / 'figs'} is not a folder" in capsys.readouterr().err
