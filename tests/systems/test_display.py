"""systems/_display.py and the rich display of systems: short reprs, HTML with an SVG picture, DataFrames."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

import control
import numpy as np
import pytest

import ssmctl
from ssmctl.errors import SsmctlError
from ssmctl.systems import _display
from ssmctl.report import format_modulus
from ssmctl.systems._display import eigenvalue_svg, fmt_margin, histogram_svg
from ssmctl.systems.lti import DenseLTI, DiagonalLTI
from ssmctl.systems.ltv import LTVSystem

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def s4d():
    return ssmctl.init("s4d", d_model=12, d_state=8, n_layers=1, seed=2).layers[0].system()


def test_margins_keep_four_digits():
    assert fmt_margin(5.388e-4) == "5.388e-04" and fmt_margin(0.25) == "0.25" and fmt_margin(-0.01) == "-0.01"


def test_diagonal_repr_is_a_few_lines_with_numbers_from_closed_forms(s4d):
    text = repr(s4d)
    lines = text.splitlines()
    assert lines[0] == "DiagonalLTI(batch=(12,), N=4, m=1, p=1, output='conj_pair', 's4d layer 0')"
    assert len(lines) <= 6 and len(text) < 600
    modes = np.abs(s4d.lam)  # conj_pair: the conjugates have the same moduli
    i = int(np.argmax(modes.max(-1)))
    r = modes.max()
    assert f"max|λ| = {format_modulus(r, 6)}, margin 1 − |λ| = {fmt_margin(1 - r)} (channel {i})" in text
    assert f"max {np.log(1e-2) / np.log(r):.4g}" in text
    assert "12 channels, 8 states each, SISO" in text


def test_dense_and_big_systems_stay_short():
    A = np.diag([0.5, -0.25, 0.9])
    sys_ = DenseLTI(A, np.ones((3, 1)), np.ones((1, 3)))
    assert "stable: max|λ| = 0.9, margin 1 − |λ| = 0.1" in repr(sys_) and repr(sys_).startswith("DenseLTI(batch=(), n=3")
    big = DiagonalLTI(np.full((64, 512), 0.9), np.ones((64, 512, 1)), np.ones((64, 1, 512)), output="real")
    assert len(repr(big)) < 600


def _points(root, colour):
    """(x, y) of the dots drawn in ``colour`` (paths of zero-length segments "Mx yh0")."""
    return [(float(x), float(y)) for p in root.findall(f"{SVG}path") if p.get("stroke") == colour
            for x, y in re.findall(r"M([-\d.]+) ([-\d.]+)h0", p.get("d"))]


def test_html_has_the_table_and_an_svg_with_every_mode():
    lam = np.array([0.5, 0.5j, -0.9])
    sys_ = DiagonalLTI(lam, np.ones((3, 1)), np.ones((1, 3)))
    html = sys_._repr_html_()
    assert "<table" in html and "H2 norm" in html and "stability" in html
    h2 = ssmctl.h2_norm(sys_)
    assert ssmctl.report.fmt(float(h2)) in html
    svg = ET.fromstring(html[html.index("<svg"):html.index("</svg>") + 6])
    disk = svg.find(f"{SVG}circle")
    c, R = float(disk.get("cx")), float(disk.get("r"))
    pts = _points(svg, "#1f77b4")
    in_disk = sorted((round((x - c) / R, 3), round((c - y) / R, 3)) for x, y in pts[:3])
    assert in_disk == [(-0.9, 0.0), (0.0, 0.5), (0.5, 0.0)]
    # The near-1 strip: x = log10(1 − |λ|) on decades [-1, 0] (1 − 0.9 = 0.1 at the left edge), y = arg λ.
    strip = svg.find(f"{SVG}rect")
    x0, w = float(strip.get("x")), float(strip.get("width"))
    y0, h = float(strip.get("y")), float(strip.get("height"))
    near = sorted(pts[3:])
    assert len(near) == 3
    assert near[0][0] == pytest.approx(x0, abs=0.06) and near[0][1] == pytest.approx(y0, abs=0.06)  # -0.9: arg π
    assert near[1][0] == pytest.approx(x0 + w * (1 - np.log10(2)), abs=0.06)  # |λ| = 0.5: 1 − |λ| = 10^-0.30
    assert sorted(p[1] for p in near[1:]) == pytest.approx([y0 + h / 4, y0 + h / 2], abs=0.06)  # arg π/2, 0
    assert len(html) < 10_000


def test_unstable_modes_are_red_and_counted():
    svg = eigenvalue_svg(np.array([0.5, 1.2]))
    root = ET.fromstring(svg)
    assert len(_points(root, "#d62728")) == 1 and "1 with |λ| ≥ 1 not shown" in svg


def test_many_modes_stay_a_small_picture(s4d):
    big = ssmctl.init("s4d", d_model=64, d_state=64, n_layers=1).layers[0].system()
    html = big._repr_html_()
    root = ET.fromstring(html[html.index("<svg"):html.index("</svg>") + 6])
    assert len(_points(root, "#1f77b4")) <= 2 * 800 and len(html) < 40_000


def test_histogram_svg_is_valid_and_trims_empty_bins():
    root = ET.fromstring(histogram_svg([0, 2, 4, 0], np.arange(5.0), "x"))
    heights = [float(r.get("height")) for r in root.findall(f"{SVG}rect")]
    assert len(heights) == 2 and heights[1] == pytest.approx(2 * heights[0])


def test_to_frame_per_channel_matches_python_control(s4d):
    pd = pytest.importorskip("pandas")
    df = s4d.to_frame()
    assert isinstance(df, pd.DataFrame) and df.index.name == "channel" and len(df) == 12
    for ch in (0, 7):
        cs = ssmctl.to_control(s4d[ch])
        assert df.loc[ch, "h2"] == pytest.approx(control.norm(cs, 2), rel=1e-10)
        assert df.loc[ch, "dc_gain"] == pytest.approx(float(np.real(control.dcgain(cs))), rel=1e-10)
    np.testing.assert_allclose(df["margin"], 1 - np.abs(s4d.lam).max(-1), rtol=1e-12)


def test_to_frame_without_pandas_says_what_to_install(s4d, monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(SsmctlError, match="to_frame\\(\\) needs pandas, which is not installed: pip install pandas"):
        s4d.to_frame()


def test_without_a_describer_the_plain_repr_remains(s4d, monkeypatch):
    monkeypatch.setattr(_display, "_DESCRIBERS", {})
    assert repr(s4d) == s4d._plain_repr()
    assert s4d._repr_html_() == f"<pre>{s4d._plain_repr().replace(chr(39), '&#x27;')}</pre>"


def test_a_failing_describer_never_breaks_repr(s4d, monkeypatch):
    def broken(obj, full):
        raise ValueError("boom")

    monkeypatch.setitem(_display._DESCRIBERS, "lti", broken)
    assert repr(s4d).endswith("(no summary: ValueError: boom)")
    assert "no summary: ValueError: boom" in s4d._repr_html_()


def test_ltv_repr_and_frame_against_numpy():
    rng = np.random.default_rng(0)
    lam = rng.uniform(0.1, 0.99, (2, 5, 3, 4))
    dt = rng.uniform(0.01, 0.1, (2, 5, 3))
    ltv = LTVSystem(lam, np.ones((2, 5, 3, 4, 1)), np.ones((2, 5, 3, 1, 4)), np.zeros((3, 1, 1)), dt=dt)
    text = repr(ltv)
    assert text.splitlines()[0].startswith("LTVSystem(batch=2, L=5") and len(text.splitlines()) <= 7
    assert f"max {format_modulus(lam.max(), 6)}" in text and f"median {ssmctl.report.fmt(float(np.median(dt)))}" in text
    pytest.importorskip("pandas")
    df = ltv.to_frame()
    slowest = lam.max(-1).reshape(10, 3)
    np.testing.assert_allclose(df["abs_max"], slowest.max(0))
    np.testing.assert_allclose(df["memory_horizon_median"], np.median(np.log(1e-2) / np.log(slowest), 0))
    np.testing.assert_allclose(df["dt_median"], np.median(dt.reshape(10, 3), 0))
    assert "<svg" in ltv._repr_html_()
