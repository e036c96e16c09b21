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


# --- output cut by a closed pipe (`ssmctl ... | head`) -------------------------------------------------------
@pytest.fixture(scope="module")
def mamba_folder(tmp_path_factory):
    from .. import ckpt_builders as cb

    return str(cb.save_hf(cb.hf_model("mamba", num_hidden_layers=1), tmp_path_factory.mktemp("mamba")))


def _closed_pipe_stdout():
    """A text stdout whose reader has gone: every write that reaches the pipe raises BrokenPipeError."""
    import io
    import os

    r, w = os.pipe()
    os.close(r)
    return io.TextIOWrapper(os.fdopen(w, "wb"), encoding="utf-8")


def test_every_command_exits_quietly_when_its_reader_goes_away(mamba_folder, tmp_path, monkeypatch, capsys):
    import sys

    import ssmctl.plot.figures as figures

    monkeypatch.setattr(figures, "write_all", lambda outdir: [f"{outdir}/a.png", f"{outdir}/b.png"])
    argvs = {
        "figures": ["figures", "--outdir", str(tmp_path / "figs")],
        "eig": ["eig", "s4d", "--d-model", "2", "--d-state", "4", "--json"],
        "demo": ["demo", "--channels", "2", "--d-state", "4"],
        "inspect": ["inspect", mamba_folder, "--json"],
        "compare": ["compare", mamba_folder, "init"],
        "simulate": ["simulate", mamba_folder, "--random-tokens", "8", "--json"],
        "analyze": ["analyze", "s4d", "--d-model", "2", "--d-state", "4", "--n-layers", "1"],
        "dsf": ["dsf", "s6", "--random-tokens", "8", "--json"],
    }
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(argvs) == set(sub.choices)
    for command, argv in argvs.items():
        out = _closed_pipe_stdout()
        monkeypatch.setattr(sys, "stdout", out)
        assert main(argv) == 141, command
        monkeypatch.undo()
        monkeypatch.setattr(figures, "write_all", lambda outdir: [f"{outdir}/a.png", f"{outdir}/b.png"])
        assert capsys.readouterr().err == "", command


def test_inspect_json_into_head_prints_no_traceback(tmp_path):
    """The shell case: `ssmctl inspect BIG --json | head -c 10`; nothing on stderr, not even at exit."""
    import shutil
    import subprocess
    import sys

    from .. import ckpt_builders as cb

    if shutil.which("head") is None or shutil.which("bash") is None:
        pytest.skip("needs bash and head")
    big = cb.write_state_dict(cb.s4d_minimal_state_dict(120, 2, 4), tmp_path / "big.safetensors")
    script = "import sys; from ssmctl.cli import main; sys.exit(main())"
    cmd = f"{sys.executable} -c '{script}' inspect {big} --json | head -c 10"
    done = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert done.stdout == '{\n  "schem' and done.stderr == ""
    # The report (~70 kB) is larger than a pipe's buffer, so the write meets the closed pipe: 128 + SIGPIPE.
    assert done.returncode == 141
