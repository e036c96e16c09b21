"""ssmctl.checkpoints.inspect: per-layer reports and before/after comparisons, checked against direct computations."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import ssmctl
from ssmctl.errors import NonFiniteError, UnsupportedSystemError
from ssmctl.checkpoints.inspect import (
    PHASE_EDGES_DEG,
    RADIUS_EDGES,
    compare_report,
    compare_text,
    inspect_report,
    inspect_text,
    phase_histogram,
    radius_histogram,
)
from ssmctl.checkpoints.load import load, scan
from ssmctl.report import dumps

from .. import ckpt_builders as cb


def strict(report):
    """Round-trip through strict JSON (NaN/Infinity literals are rejected)."""
    def refuse(token):
        raise ValueError(f"non-strict JSON literal {token}")

    return json.loads(dumps(report), parse_constant=refuse)


@pytest.fixture(scope="module")
def mamba_folder(tmp_path_factory):
    model = cb.hf_model("mamba", num_hidden_layers=3)
    return model, cb.save_hf(model, tmp_path_factory.mktemp("insp_mamba"))


def _direct(mixer, eps=1e-2):
    """|Ā| at the Δ bias and k_ε = ln ε / ln|Ā|, from the transformers module's own tensors."""
    dt = F.softplus(mixer.dt_proj.bias.detach().double())
    A = -torch.exp(mixer.A_log.detach().double())
    lam = torch.exp(dt[:, None] * A).numpy()
    return lam, np.log(eps) / np.log(lam), A.numpy(), dt.numpy()


def test_inspect_mamba_rows_match_direct_values(mamba_folder):
    model, folder = mamba_folder
    report = strict(inspect_report(folder))
    assert report["family"] == "mamba" and report["layouts"] == ["hf-mamba"] and report["eps"] == 1e-2
    assert "mamba" in report["at"] and report["warnings"] == []
    rows = report["layers"]
    assert [r["index"] for r in rows] == [0, 1, 2]
    for row, block in zip(rows, model.backbone.layers):
        lam, k, A, dt = _direct(block.mixer)
        assert (row["kind"], row["at"], row["family"]) == ("LTV", "dt_bias", "mamba")
        assert (row["d_state"], row["channels"]) == (model.config.state_size, model.config.intermediate_size)
        np.testing.assert_allclose([row["abs_min"], row["abs_median"], row["abs_max"]],
                                   [lam.min(), np.median(lam), lam.max()], rtol=1e-6)
        np.testing.assert_allclose(row["spectral_radius"], lam.max(), rtol=1e-6)
        np.testing.assert_allclose(row["spectral_margin"], 1 - lam.max(), rtol=1e-6)
        np.testing.assert_allclose([row["memory_horizon_median"], row["memory_horizon_max"]],
                                   [np.median(k), k.max()], rtol=1e-5)
        np.testing.assert_allclose([row["A_min"], row["A_max"]], [A.min(), A.max()], rtol=1e-6)
        np.testing.assert_allclose([row["dt_min"], row["dt_max"]], [dt.min(), dt.max()], rtol=1e-5)
        assert row["warnings"] == [] and row["dead_channels"] == 0


def test_inspect_from_model_equals_from_path(mamba_folder):
    _, folder = mamba_folder
    a = inspect_report(folder)["layers"]
    b = inspect_report(load(folder))["layers"]
    for ra, rb in zip(a, b):
        for key in ("abs_min", "abs_median", "abs_max", "memory_horizon_median", "memory_horizon_max"):
            assert ra[key] == pytest.approx(rb[key], rel=1e-12)


def test_inspect_reads_only_small_tensors(mamba_folder, monkeypatch):
    """The spectral path reads A_log and the Δ bias; large projections are read once, by the NaN scan."""
    _, folder = mamba_folder
    from ssmctl.checkpoints import reader as io

    reads: list[str] = []
    orig = io.TensorStore.__getitem__

    def spy(self, key):
        reads.append(key)
        return orig(self, key)

    monkeypatch.setattr(io.TensorStore, "__getitem__", spy)
    inspect_report(folder)
    assert reads.count("backbone.layers.0.mixer.in_proj.weight") == 1
    assert reads.count("backbone.layers.0.mixer.A_log") == 2


def test_hybrid_rows_include_attention(tmp_path):
    model = cb.hf_model("recurrent_gemma")
    report = strict(inspect_report(cb.save_hf(model, tmp_path)))
    kinds = [(r["index"], r["kind"]) for r in report["layers"]]
    assert kinds == [(0, "LTV"), (1, "LTV"), (2, "attention")]
    att = report["layers"][2]
    assert att["abs_median"] is None and att["name"] == "model.layers.2.temporal_block"
    assert att["sizes"]["d_model"] == 32
    assert report["layers"][0]["at"] == "gate_bias"
    for row in report["layers"][:2]:
        # Input-free RG-LRU values from the transformers module: a = exp(−c·σ(gate bias)·softplus(Λ)), c = 8,
        # A = −softplus(Λ) (log a), Δ = c·σ(gate bias).
        lru = model.model.layers[row["index"]].temporal_block.rg_lru
        dt = 8.0 * torch.sigmoid(lru.recurrent_gate_bias.detach().double()).reshape(-1).numpy()
        A = -F.softplus(lru.recurrent_param.detach().double()).numpy()
        lam = np.exp(dt * A)
        k = np.log(1e-2) / np.log(lam)
        assert (row["d_state"], row["channels"], row["n_eigenvalues"]) == (1, lam.size, lam.size)
        got = [row[key] for key in ("abs_min", "abs_median", "abs_max", "memory_horizon_median", "memory_horizon_max",
                                    "A_min", "A_max", "dt_min", "dt_max")]
        expected = [lam.min(), np.median(lam), lam.max(), np.median(k), k.max(), A.min(), A.max(), dt.min(), dt.max()]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    text = inspect_text(report)
    assert "attention" in text and "gate_bias" in text


def test_lti_rows_s4d(tmp_path):
    sd = cb.s4d_minimal_state_dict(n_layers=2, H=4, N=8)
    report = strict(inspect_report(cb.write_state_dict(sd, tmp_path / "s4d.pt")))
    row = report["layers"][1]
    assert (row["kind"], row["at"], row["d_state"], row["channels"]) == ("LTI", None, 8, 4)
    dt = np.exp(sd["s4_layers.1.kernel.log_dt"].double().numpy())
    r = np.exp(-0.5 * dt)  # |exp(Δ(−½ + iπn))|
    assert row["abs_min"] == pytest.approx(r.min(), rel=1e-6) and row["abs_max"] == pytest.approx(r.max(), rel=1e-6)
    assert row["memory_horizon_max"] == pytest.approx(np.log(1e-2) / np.log(r.max()), rel=1e-5)
    assert "A_min" not in row


def test_dead_channel_warning(tmp_path):
    sd = cb.s4d_minimal_state_dict(n_layers=1, H=4, N=8)
    sd["s4_layers.0.kernel.C"][3] = 0.0  # channel 3 never outputs its state
    row = inspect_report(cb.write_state_dict(sd, tmp_path / "s4d.pt"))["layers"][0]
    assert row["dead_channels"] == 1 and any("1 dead channel" in w for w in row["warnings"])
    sd["s4_layers.0.kernel.C"][3] = 0.5
    row = inspect_report(cb.write_state_dict(sd, tmp_path / "s4d_ok.pt"))["layers"][0]
    assert row["dead_channels"] == 0 and row["warnings"] == []


def test_eigenvalues_outside_unit_disk_warned(tmp_path):
    """S4 trained with real_transform 'none' (A = −A_real) can leave the left half-plane."""
    H, N = 3, 8
    kernel = cb.s4_kernel(H, N)
    lam = -0.5 - 1j * np.arange(N // 2)  # a diagonal DPLR (P = 0), so the eigenvalues are known exactly
    lam[1] = 0.25 - 1j
    kernel.update(A_real=-lam.real[None], A_imag=-lam.imag[None], P=np.zeros_like(kernel["P"]))
    sd = cb.s4_state_dict(kernel, 1)
    hp = {"model": {"layer": {"mode": "nplr", "real_transform": "none", "dt_transform": "softplus"}}}
    report = strict(inspect_report(cb.lightning_ckpt(tmp_path / "u.ckpt", sd, hp, tmp_path)))
    row = report["layers"][0]
    dt = np.logaddexp(0.0, kernel["inv_dt"])  # (H, 1)
    x = dt * lam[None, :]
    r = np.abs((1 + x / 2) / (1 - x / 2))  # bilinear |λ̄|
    assert any(f"{2 * H} eigenvalue(s) outside the unit disk" in w for w in row["warnings"])
    assert row["spectral_radius"] == pytest.approx(r.max(), rel=1e-10)
    assert row["spectral_margin"] == pytest.approx(1 - r.max(), rel=1e-8) and row["spectral_margin"] < 0
    assert row["memory_horizon_inf_count"] == 2 * H and row["memory_horizon_max"] is None  # inf → null
    assert row["memory_horizon_finite_max"] == pytest.approx(np.log(1e-2) / np.log(r[r < 1].max()), rel=1e-10)
    assert row["n_eigenvalues"] == r.size * 2  # each stored mode and its conjugate
    assert row["abs_min"] == pytest.approx(r.min(), rel=1e-10)


def test_s4d_with_positive_real_part_is_refused_clearly(tmp_path):
    kernel = cb.s4d_diag_kernel(3, 8)
    kernel["A_real"][0, 1] = -0.25
    sd = cb.s4_state_dict(kernel, 1, l_kernel=None)
    hp = {"model": {"layer": {"mode": "diag", "real_transform": "none", "dt_transform": "softplus"}}}
    path = cb.lightning_ckpt(tmp_path / "u.ckpt", sd, hp, tmp_path)
    with pytest.raises(UnsupportedSystemError, match=r"Re A >= 0.*real_transform 'none'"):
        load(path)
    row = inspect_report(path)["layers"][0]
    assert row["abs_median"] is None and "Re A >= 0" in row["warnings"][0]


def _poison(folder, tmp_path, keys):
    out = shutil.copytree(folder, tmp_path / "nan")
    sd = load_file(str(out / "model.safetensors"))
    for k in keys:
        sd[k].view(-1)[0] = float("nan")
    save_file(sd, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def test_nan_in_projection_is_a_warning_naming_the_tensor(mamba_folder, tmp_path):
    folder = _poison(mamba_folder[1], tmp_path, ["backbone.layers.1.mixer.out_proj.weight"])
    report = strict(inspect_report(folder))
    assert report["warnings"] == ["tensor backbone.layers.1.mixer.out_proj.weight has 1 NaN/Inf value(s)"]
    row = report["layers"][1]
    assert row["warnings"][0].startswith("tensor backbone.layers.1.mixer.out_proj.weight")
    assert row["abs_median"] is not None  # A_log and dt_proj.bias are fine: the eigenvalues stand
    assert report["nonfinite_tensors"] == [{"tensor": "backbone.layers.1.mixer.out_proj.weight", "count": 1, "layer": 1}]


def test_nan_in_eigenvalue_tensor_blanks_that_layer(mamba_folder, tmp_path):
    folder = _poison(mamba_folder[1], tmp_path, ["backbone.layers.2.mixer.A_log"])
    report = strict(inspect_report(folder))
    assert report["layers"][2]["abs_median"] is None
    assert any("A_log" in w for w in report["layers"][2]["warnings"])
    assert report["layers"][0]["abs_median"] is not None


def test_nan_everywhere_is_an_error(mamba_folder, tmp_path):
    keys = [f"backbone.layers.{i}.mixer.dt_proj.bias" for i in range(3)]
    folder = _poison(mamba_folder[1], tmp_path, keys)
    with pytest.raises(NonFiniteError, match=r"no layer can be analysed; NaN/Inf in backbone\.layers\.0\.mixer\.dt_proj\.bias"):
        inspect_report(folder)


# --- histograms and compare ------------------------------------------------------------------------------
def _tli_threshold_counts(values, thresholds):
    """Task-Level-Insights' threshold_analysis_ssm (closed bins) as counts, for values not on an edge."""
    t = np.asarray(thresholds)
    out = [((values >= 0) & (values <= t[0])).sum()]
    out += [((values >= t[i]) & (values <= t[i + 1])).sum() for i in range(len(t) - 1)]
    out.append((values > t[-1]).sum())
    return out


def test_histograms_match_task_level_insights_bins():
    rng = np.random.default_rng(0)
    r = np.concatenate([rng.uniform(0, 1.2, 300), rng.uniform(1, 300, 50)])
    th = rng.uniform(-np.pi, np.pi, r.size)
    lam = r * np.exp(1j * th)
    hr = radius_histogram(lam)
    assert hr["edges"] == list(RADIUS_EDGES) and len(hr["counts"]) == 7 and hr["total"] == r.size
    assert hr["counts"] == _tli_threshold_counts(np.abs(lam), RADIUS_EDGES)
    assert sum(hr["percent"]) == pytest.approx(100.0)
    hp = phase_histogram(lam)
    deg = np.degrees(np.abs(th))
    assert hp["counts"] == _tli_threshold_counts(deg, PHASE_EDGES_DEG)[:5]
    assert hp["labels"][0] == "[0, 1]" and hr["labels"][-1] == "(100, inf]"
    # a value on an edge is counted once, in the bin it closes
    assert radius_histogram(np.array([0.9, 1.0]))["counts"] == [0, 0, 1, 1, 0, 0, 0]


def test_compare_with_init(mamba_folder):
    model, folder = mamba_folder
    report = strict(compare_report(folder, "init"))
    assert report["b"] == "init" and report["paired_by"] == "index"
    assert report["init"]["d_model"] == 32 and report["init"]["n_layers"] == 3
    fresh = ssmctl.init("mamba", **{k: v for k, v in report["init"].items() if k != "seed"}, seed=0)
    text_rows = [line.split() for line in compare_text(report).splitlines() if line.strip()[:1].isdigit()]
    assert "mem med A" in compare_text(report) and len(text_rows) == 3
    for entry, block, layer_b, cells in zip(report["layers"], model.backbone.layers, fresh.layers, text_rows):
        lam_a, k_a, _, _ = _direct(block.mixer)
        dt_b = F.softplus(layer_b.params["mixer.dt_proj.bias"].double())
        lam_b = torch.exp(dt_b[:, None] * -torch.exp(layer_b.params["mixer.A_log"].double())).numpy()
        counts_a = _tli_threshold_counts(lam_a.reshape(-1), RADIUS_EDGES)
        counts_b = _tli_threshold_counts(lam_b.reshape(-1), RADIUS_EDGES)
        assert entry["radius_histogram"]["a"]["counts"] == counts_a
        assert entry["radius_histogram"]["b"]["counts"] == counts_b
        np.testing.assert_allclose(entry["radius_histogram"]["a"]["percent"], 100 * np.array(counts_a) / lam_a.size)
        k_b = np.log(1e-2) / np.log(lam_b)
        expected = {
            "memory_horizon_median_a": np.median(k_a), "memory_horizon_median_b": np.median(k_b),
            "memory_horizon_median_change": np.median(k_a) - np.median(k_b),
            "spectral_radius_a": lam_a.max(), "spectral_radius_b": lam_b.max(),
        }
        for key, value in expected.items():
            assert entry[key] == pytest.approx(value, rel=1e-5), key
        # an independent random draw: no one-to-one pairing of eigenvalues is claimed
        assert entry["elementwise"] is False and "move_abs_max" not in entry and "fresh random" in entry["elementwise_note"]
        # the text row: layer, kind, then the same numbers to 4 digits and the bins' percentages A/B
        assert cells[:2] == [str(entry["index"]), "LTV"]
        np.testing.assert_allclose([float(x) for x in cells[2:7]], [expected[k] for k in list(expected)[:5]], rtol=5e-4)
        assert cells[7] == "-"  # no |Δλ| against a fresh init
        pct = [tuple(float(x) for x in c.split("/")) for c in cells[8:]]
        np.testing.assert_allclose(pct, np.round(100 * np.array([counts_a, counts_b]).T / lam_a.size), atol=0)


def test_compare_two_checkpoints_before_after(tmp_path):
    before = cb.hf_model("mamba2", seed=0)
    after = cb.hf_model("mamba2", seed=0)
    with torch.no_grad():
        for block in after.backbone.layers:
            block.mixer.dt_bias.add_(1.0)  # larger Δ: faster decay, shorter memory
    a = cb.save_hf(after, tmp_path / "after")
    b = cb.save_hf(before, tmp_path / "before")
    report = strict(compare_report(a, b))
    rows = strict(inspect_report(b))["layers"]
    for row, blk in zip(rows, before.backbone.layers):
        # Mamba-2: one Ā = exp(softplus(dt_bias)·A) per head, A = −exp(A_log)
        dt = F.softplus(blk.mixer.dt_bias.detach().double()).numpy()
        A = -torch.exp(blk.mixer.A_log.detach().double()).numpy()
        lam = np.exp(dt * A)
        k = np.log(1e-2) / np.log(lam)
        assert (row["at"], row["channels"], row["d_state"]) == ("dt_bias", before.config.num_heads,
                                                                 before.config.state_size)
        got = [row[key] for key in ("abs_min", "abs_median", "abs_max", "spectral_margin", "memory_horizon_median",
                                    "memory_horizon_max", "A_min", "A_max", "dt_min", "dt_max")]
        expected = [lam.min(), np.median(lam), lam.max(), 1 - lam.max(), np.median(k), k.max(), A.min(), A.max(),
                    dt.min(), dt.max()]
        np.testing.assert_allclose(got, expected, rtol=1e-6)
    for entry, blk_a, blk_b in zip(report["layers"], after.backbone.layers, before.backbone.layers):
        la = torch.exp(F.softplus(blk_a.mixer.dt_bias.double()) * -torch.exp(blk_a.mixer.A_log.double())).detach().numpy()
        lb = torch.exp(F.softplus(blk_b.mixer.dt_bias.double()) * -torch.exp(blk_b.mixer.A_log.double())).detach().numpy()
        assert entry["memory_horizon_median_change"] < 0
        assert entry["move_abs_median"] == pytest.approx(np.median(np.abs(la - lb)), rel=1e-5)
        assert entry["phase_histogram"]["a"]["counts"][0] == la.size  # real, positive eigenvalues: phase 0


def test_compare_family_mismatch(mamba_folder, tmp_path):
    sd = cb.ssm_benchmark_hawk()
    other = cb.write_state_dict(sd, tmp_path / "hawk.pt")
    with pytest.raises(UnsupportedSystemError, match="cannot compare a mamba model with a rglru model"):
        compare_report(mamba_folder[1], other)


def test_compare_hybrid_pairs_by_position_with_init(tmp_path):
    model = cb.hf_model("bamba")
    report = strict(compare_report(cb.save_hf(model, tmp_path), "init"))
    assert report["paired_by"] == "position" and [e["index"] for e in report["layers"]] == [0, 2]
    assert [e["index_b"] for e in report["layers"]] == [0, 1]


def test_scan_reads_no_tensor_data(mamba_folder, monkeypatch):
    from ssmctl.checkpoints import reader as io

    def refuse(self, key):
        raise AssertionError(f"scan read {key}")

    monkeypatch.setattr(io.TensorStore, "__getitem__", refuse)
    plan = scan(mamba_folder[1])
    assert plan.family == "mamba" and len(plan.blocks) == 3


def test_attention_only_checkpoint_lists_layers_with_sizes(tmp_path):
    path = cb.write_state_dict(cb.tli_transformer(num_heads=2), tmp_path / "tf.pt")
    report = strict(inspect_report(path))
    assert report["family"] is None and report["at"] == {}
    assert [(r["index"], r["kind"]) for r in report["layers"]] == [(0, "attention"), (1, "attention")]
    assert report["layers"][0]["sizes"] == {"d_model": 32, "d_qk": 16, "variant": "softmax or linear (same keys)"}
    with pytest.raises(UnsupportedSystemError, match="no family to initialize"):
        compare_report(path, "init")


def test_near_marginal_layer_is_shown_and_warned(tmp_path):
    """Mamba-2 with A_log = −30 on every head: |λ| = exp(−softplus(dt_bias)·e^−30) ≈ 1 − 1e-15 (closed form).
    The table shows 1 − d, not 1, and the warnings column says the layer is marginal."""
    model = cb.hf_model("mamba2", num_hidden_layers=1)
    mixer = model.backbone.layers[0].mixer
    with torch.no_grad():
        mixer.A_log.fill_(-30.0)
    report = inspect_report(cb.save_hf(model, tmp_path / "m"))
    row = report["layers"][0]
    gap = -np.expm1(-F.softplus(mixer.dt_bias.detach().double()).numpy() * np.exp(-30.0))  # 1 − |λ| per head
    assert 1 - row["spectral_radius"] == pytest.approx(gap.min(), rel=0.3)  # float64 |λ| rounds at 1e-16
    assert row["memory_horizon_max"] > 1e14
    assert any("within 1e-06 of the unit circle: marginally stable" in w for w in row["warnings"])
    text = inspect_text(report)
    line = next(l for l in text.splitlines() if l.strip().startswith("0 "))
    assert "1 − " in line and "marginally stable" in line
    healthy = inspect_report(cb.save_hf(cb.hf_model("mamba2", num_hidden_layers=1), tmp_path / "h"))["layers"][0]
    assert not any("unit circle" in w for w in healthy["warnings"])
