import matplotlib.pyplot as plt
import numpy as np
import pytest

import ssmctl
from ssmctl.plot import figures


def test_table1_lists_every_family_with_papers_columns():
    text = figures.table1_markdown()
    for name in ssmctl.families():
        assert f"| {name} |" in text
    # the overview paper's Table I classification, column by column (parametrization, discretization,
    # structure, implementation) for the LTI families
    expected = {
        "s4": ["LTI", "Bilinear", "SISO", "Convolution and Recurrence"],
        "s4d": ["LTI", "Exact", "SISO", "Convolution and Recurrence"],
        "s5": ["LTI", "Exact / Bilinear", "MIMO", "Parallel Scan"],
        "lru": ["LTI", "None", "MIMO", "Parallel Scan"],
    }
    header = [c.strip() for c in text.splitlines()[2].strip("|").split("|")]
    assert header[:7] == ["model", "paper", "parametrization", "discretization", "structure", "implementation",
                          "scaffolding"]
    for name, cells in expected.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
        assert [c.strip() for c in row.strip("|").split("|")][2:6] == cells
    mamba = next(line for line in text.splitlines() if line.startswith("| mamba |"))
    assert mamba.split("|")[3].strip().startswith("LTV")


def test_memory_rows_follow_closed_form_for_s4d():
    layer = ssmctl.init("s4d", n_layers=1).layers[0]
    lam = ssmctl.eigenvalue_cloud(layer)
    (row,) = figures.memory_horizon_rows({"s4d": (layer, lam)})
    dt = np.exp(np.asarray(layer.params["kernel.log_dt"], dtype=float))
    assert row["memory_median"] == pytest.approx(np.median(np.repeat(2 * np.log(100) / dt, lam.size // dt.size)), rel=1e-9)
    assert row["abs_max"] == pytest.approx(np.exp(-dt.min() / 2), rel=1e-12)


def test_memory_horizons_markdown_numbers_follow_closed_form_for_s4d():
    layer = ssmctl.init("s4d", n_layers=1).layers[0]
    lam = ssmctl.eigenvalue_cloud(layer)
    text = figures.memory_horizons_markdown(figures.memory_horizon_rows({"s4d": (layer, lam)}))
    assert "ε = 0.01" in text and "4 sequences × 256 tokens, seed 0" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| s4d |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    # S4D-Lin, ZOH: |λ̄| = exp(−Δ/2) for every mode of a channel, k = ln ε / ln|λ̄| = 2 ln(100)/Δ
    dt = np.exp(np.asarray(layer.params["kernel.log_dt"], dtype=float))
    r, k = np.exp(-dt / 2), 2 * np.log(100) / dt
    assert cells[:3] == ["s4d", "LTI", str(2 * dt.size * layer.params["kernel.A_imag"].shape[-1])]
    np.testing.assert_allclose([float(c) for c in cells[3:5]], [r.min(), r.max()], atol=5e-5)  # 4 decimals
    np.testing.assert_allclose([float(c) for c in cells[5:]], [k.min(), np.median(k), k.max()], rtol=5e-3)  # 3 digits


def _gfm_cells(line):
    """Cells of a GitHub-flavoured-markdown table row: split on pipes not escaped by a backslash."""
    import re

    return re.split(r"(?<!\\)\|", line.strip().strip("|"))


def test_markdown_tables_have_as_many_cells_in_every_row_as_in_the_header():
    layer = ssmctl.init("s4d", n_layers=1).layers[0]
    rows = figures.memory_horizon_rows({"s4d": (layer, ssmctl.eigenvalue_cloud(layer))})
    texts = [figures.table1_markdown(), figures.memory_horizons_markdown(rows)]
    for text in texts:
        rows = [line for line in text.splitlines() if line.startswith("|")]
        header, delimiter = rows[0], rows[1]
        assert len(_gfm_cells(delimiter)) == len(_gfm_cells(header))
        for line in rows[2:]:
            assert len(_gfm_cells(line)) == len(_gfm_cells(header)), line[:60]


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


def test_plot_clouds_draws_each_family_on_the_disk_with_labels_and_a_colourbar():
    from types import SimpleNamespace

    import matplotlib.pyplot as plt

    from ssmctl.plot.figures import plot_clouds

    lam = np.exp(-np.linspace(1e-4, 1e-3, 40) + 1j * np.linspace(-0.1, 0.1, 40))  # would pick the near-1 view
    fig = plot_clouds({"a": (SimpleNamespace(kind="LTI"), lam), "b": (SimpleNamespace(kind="LTV"), lam * 0.5)})
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels[:2]] == ["a (LTI)", "b (LTV: Ā_t)"]
    assert all((ax.get_xlabel(), ax.get_ylabel()) == ("Re λ", "Im λ") for ax in panels[:2])  # the paper's disk
    assert sum("memory horizon" in ax.get_ylabel() for ax in fig.axes) == 2
    plt.close(fig)
