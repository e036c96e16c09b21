"""models/base.py: the rich display of Layer and Model (numbers from analysis/summary.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ssmctl
from ssmctl.analysis.summary import layer_report
from ssmctl.report import format_modulus


@pytest.fixture(scope="module")
def mamba():
    return ssmctl.init("mamba", d_model=8, d_state=4, n_layers=3, seed=0)


def test_layer_repr_states_the_zero_input_point_and_its_step_sizes(mamba):
    layer = mamba.layers[1]
    text = repr(layer)
    assert text.splitlines()[0].startswith("Layer(family='mamba', index=1") and len(text.splitlines()) <= 7
    p = {k: v.double() for k, v in layer.params.items()}
    x = F.silu(p["mixer.conv1d.bias"])
    r = p["mixer.dt_proj.weight"].shape[1]
    delta = F.softplus(p["mixer.dt_proj.weight"] @ (p["mixer.x_proj.weight"] @ x)[:r] + p["mixer.dt_proj.bias"])
    assert f"zero input (bias point): Δ max {ssmctl.report.fmt(float(delta.max()))}" in text
    radius = torch.exp(delta[:, None] * -torch.exp(p["mixer.A_log"])).max().item()
    assert f"max|λ| = {format_modulus(radius, 6)}" in text[:2000]
    assert "<svg" in layer._repr_html_()


def test_model_frame_has_one_row_per_layer_from_layer_report(mamba):
    pytest.importorskip("pandas")
    df = mamba.to_frame()
    assert df.index.tolist() == [0, 1, 2] and df.index.name == "layer"
    for layer in mamba.layers:
        rep = layer_report(layer, columns=("h2", "dc_gain"))
        assert df.loc[layer.index, "h2"] == rep["max"]["h2"]
        assert df.loc[layer.index, "margin"] == rep["min"]["margin"]
        assert df.loc[layer.index, "channels"] == 16


def test_model_repr_and_html_are_short(mamba):
    text = repr(mamba)
    assert text.splitlines()[0] == "Model(family='mamba', layers=3, source='init')" and len(text) < 800
    html = mamba._repr_html_()
    assert html.count("<tr>") >= 3 + 4 and "H2 max" in html and len(html) < 60_000


def test_s4_layer_uses_its_exact_spectrum():
    layer = ssmctl.init("s4", d_model=2, d_state=8, n_layers=1).layers[0]
    exact = np.abs(layer.eigenvalues()).max()
    assert f"max|λ| = {format_modulus(exact, 6)}" in repr(layer)
