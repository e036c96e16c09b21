import matplotlib.pyplot as plt
import numpy as np
import pytest

import ssmctl
from ssmctl import figures


def test_table1_lists_every_family_with_papers_columns():
    text = figures.table1_markdown()
    for name in ssmctl.families():
        assert f"| {name} |" in text
    # the paper's classification: S4 bilinear SISO, S5 MIMO, Mamba LTV
    assert "| s4 |" in text and "Bilinear" in text
    row = next(line for line in text.splitlines() if line.startswith("| s5 |"))
    assert "MIMO" in row


def test_memory_rows_follow_closed_form_for_s4d():
    layer = ssmctl.init("s4d", n_layers=1).layers[0]
    lam = ssmctl.eigenvalue_cloud(layer)
    (row,) = figures.memory_horizon_rows({"s4d": (layer, lam)})
    dt = np.exp(np.asarray(layer.params["kernel.log_dt"], dtype=float))
    assert row["memory_median"] == pytest.approx(np.median(np.repeat(2 * np.log(100) / dt, lam.size // dt.size)), rel=1e-9)
    assert row["abs_max"] == pytest.approx(np.exp(-dt.min() / 2), rel=1e-12)


def test_write_all(tmp_path):
    out = tmp_path / "new" / "figs"  # created
    open_before = set(plt.get_fignums())
    paths = figures.write_all(str(out))
    names = sorted(p.rsplit("/", 1)[-1] for p in paths)
    assert names == ["eigenvalues_init.png", "eigenvalues_init.svg", "memory_horizons_init.md", "table1_features.md"]
    for p in paths:
        assert (out / p.rsplit("/", 1)[-1]).stat().st_size > 500
    assert (out / "eigenvalues_init.png").read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64" in (out / "eigenvalues_init.svg").read_text()  # the clouds stay rasterized
    assert set(plt.get_fignums()) == open_before  # the figure was closed
