"""save_figure: format from the suffix, one dpi, folders created, clear errors, the figure closed."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from PIL import Image

import ssmctl.plot
from ssmctl.errors import SsmctlError
from ssmctl.plot.io import DPI, check_figure_path, check_folder, figure_format, save_figure

MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def _cloud(n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.exp(-rng.uniform(0.0, 1.0, n) + 1j * rng.uniform(-3.0, 3.0, n))


def _line_figure():
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("name", ["f.png", "f.svg", "f.pdf", "F.PNG", "f.Svg"])
def test_format_follows_the_suffix_and_missing_folders_are_created(tmp_path, name):
    fig = _line_figure()
    path = tmp_path / "new" / "deeper" / name
    assert save_figure(fig, path) == str(path)
    data = path.read_bytes()
    fmt = name.rsplit(".", 1)[1].lower()
    if fmt == "svg":
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]
    else:
        assert data.startswith(MAGIC[fmt])
    assert not plt.fignum_exists(fig.number)


def test_png_is_written_at_the_one_dpi(tmp_path):
    save_figure(_line_figure(), tmp_path / "f.png")
    with Image.open(tmp_path / "f.png") as im:
        dpi = im.info["dpi"]
    # PNG stores pixels per metre as an integer: the round trip is exact to 0.02 dpi.
    assert dpi == pytest.approx((DPI, DPI), abs=0.05)


def test_vector_files_keep_the_scatter_cloud_rasterized(tmp_path):
    lam = _cloud()
    ax = ssmctl.plot.eigenvalues(lam, inset=False, colorbar=False)
    save_figure(ax.figure, tmp_path / "cloud.svg")
    svg = (tmp_path / "cloud.svg").read_text()
    # One embedded image instead of one <use> marker per eigenvalue.
    assert "data:image/png;base64" in svg and svg.count("<use") < lam.size // 10
    # Control: the same plot with vector markers does write one marker per point.
    ax = ssmctl.plot.eigenvalues(lam, inset=False, colorbar=False)
    ax.collections[0].set_rasterized(False)
    save_figure(ax.figure, tmp_path / "vector.svg")
    assert (tmp_path / "vector.svg").read_text().count("<use") >= lam.size


@pytest.mark.parametrize("suffix", ["png", "svg", "pdf"])
def test_same_figure_same_bytes(tmp_path, suffix):
    ax = ssmctl.plot.eigenvalues(_cloud(500))
    save_figure(ax.figure, tmp_path / f"a.{suffix}", close=False)
    assert plt.fignum_exists(ax.figure.number)
    save_figure(ax.figure, tmp_path / f"b.{suffix}")
    assert (tmp_path / f"a.{suffix}").read_bytes() == (tmp_path / f"b.{suffix}").read_bytes()


def test_unknown_or_missing_suffix_is_a_clear_error(tmp_path):
    fig = _line_figure()
    with pytest.raises(SsmctlError, match=r"x\.jpg: unknown figure format '\.jpg'; known: \.png, \.svg, \.pdf"):
        save_figure(fig, tmp_path / "sub" / "x.jpg")
    assert not plt.fignum_exists(fig.number)  # closed even though nothing was written
    assert not (tmp_path / "sub").exists()  # and no folder made for it
    with pytest.raises(SsmctlError, match=r"no file suffix to tell the figure format; known: \.png"):
        figure_format(tmp_path / "plot")


def test_a_file_in_the_way_of_the_folder(tmp_path):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(SsmctlError, match=r"cannot create folder .*data\.txt/sub: .*data\.txt is not a folder"):
        save_figure(_line_figure(), tmp_path / "data.txt" / "sub" / "f.png")
    (tmp_path / "f.png").mkdir()
    with pytest.raises(SsmctlError, match=r"f\.png: it is a folder"):
        check_figure_path(tmp_path / "f.png")


def test_read_only_folder(read_only_dir):
    ro = read_only_dir
    with pytest.raises(SsmctlError, match=r"cannot write into folder .*ro: not writable"):
        save_figure(_line_figure(), ro / "f.png")
    with pytest.raises(SsmctlError, match=r"cannot create folder .*ro/a/b: .*ro is not writable"):
        save_figure(_line_figure(), ro / "a" / "b" / "f.png")


def test_checks_create_nothing(tmp_path):
    check_folder(tmp_path / "a" / "b")
    assert check_figure_path(tmp_path / "c" / "f.PDF") == "pdf"
    assert list(tmp_path.iterdir()) == []
