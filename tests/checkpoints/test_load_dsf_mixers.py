"""Loading the DSF paper's mixers (dsf-mqar / zoology models, bare mixer state dicts, ssm-benchmark attention):
the settings a state dict does not record are hints, and the loaded layers reproduce the authors' forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import MissingHintError, UnknownNameError

from .. import ckpt_builders as cb
from ..models._authors_mixers import mha_forward, mhna_forward, qlstm_forward, s6_forward
from ..models._ltv_checks import rel_err

D, L = 8, 7


def _mixer_params(family, **kw):
    """Fresh mixer tensors (every parameter moved off its init) keyed as the authors' state dicts."""
    layer = ssmctl.init(family, n_layers=1, **kw)[0]
    g = torch.Generator().manual_seed(5)
    return {k: (v if k == "Id" else v + 0.2 * torch.randn(v.shape, generator=g)) for k, v in layer.params.items()}


def _zoology(mixers, prefix="sequence_mixer"):
    """A zoology LanguageModel state dict: embeddings, per layer norm1/norm2 (+ the mixer), final LayerNorm."""
    sd = {"backbone.embeddings.word_embeddings.weight": torch.randn(16, D)}
    for i, params in enumerate(mixers):
        root = f"backbone.layers.{i}."
        for norm in (("norm1", "norm2") if prefix == "sequence_mixer" else ("norm",)):
            sd[root + norm + ".weight"], sd[root + norm + ".bias"] = torch.ones(D), torch.zeros(D)
        sd.update({f"{root}{prefix}.{k}": v for k, v in params.items()})
    sd["backbone.ln_f.weight"], sd["backbone.ln_f.bias"] = torch.ones(D), torch.zeros(D)
    sd["lm_head.weight"] = sd["backbone.embeddings.word_embeddings.weight"]
    return sd


def _u():
    return torch.randn(2, L, D, generator=torch.Generator().manual_seed(9))


def _block_out(layer, u):
    phi = ssmctl.materialize(layer, u, scope="block")
    return np.einsum("bijpm,bjm->bip", np.asarray(phi), u.double().numpy()) + phi.offset


def test_zoology_attention_needs_variant_and_heads(tmp_path):
    mixers = [_mixer_params("attention", d_model=D, d_qk=6, num_heads=2, variant="linear") for _ in range(2)]
    path = cb.write_state_dict(_zoology(mixers), tmp_path / "mqar.pt")
    with pytest.raises(MissingHintError, match=r"lin_att not saved.*variant=.*--variant\), one of softmax, linear$"):
        ssmctl.load(path)
    with pytest.raises(MissingHintError, match=r"does not record num_heads.*num_heads=.*--num-heads.*an integer"):
        ssmctl.load(path, variant="linear")
    with pytest.raises(UnknownNameError, match="variant"):
        ssmctl.load(path, variant="reversed", num_heads=2)
    with pytest.raises(UnknownNameError, match=r"unknown variant \(--variant\) 'standard'; known: linear, softmax"):
        ssmctl.load(path, variant="standard", num_heads=2)  # a qLSTM variant: valid hint, wrong layout
    for variant in ("linear", "softmax"):
        model = ssmctl.load(path, variant=variant, num_heads=2)
        assert model.family == "attention" and len(model) == 2 and model.extras["layouts"] == ["zoology-attention"]
        u = _u()
        p = {k: v.double() for k, v in mixers[1].items()}
        ref = mha_forward(p, u.double(), d_qk=6, num_heads=2, lin_att=variant == "linear").numpy()
        assert rel_err(_block_out(model[1], u), ref) < 1e-6  # tensors stored in float32


def test_zoology_normalized_attention_is_exp(tmp_path):
    mixers = [_mixer_params("attention", d_model=D, d_qk=4, num_heads=2, variant="normalized", eta="exp")]
    path = cb.write_state_dict(_zoology(mixers), tmp_path / "norm.pt")
    model = ssmctl.load(path)
    assert model[0].config["eta"] == "exp" and model[0].config["num_heads"] == 2
    u = _u()
    ref = mhna_forward({k: v.double() for k, v in mixers[0].items()}, u.double(), d_qk=4, num_heads=2).numpy()
    assert rel_err(_block_out(model[0], u), ref) < 1e-6


@pytest.mark.parametrize("eta", ["softplus", "sigmoid"])
def test_bare_normalized_attention_needs_eta(tmp_path, eta):
    params = _mixer_params("attention", d_model=D, d_qk=4, num_heads=2, variant="normalized", eta=eta)
    path = cb.write_state_dict(params, tmp_path / "mhna.safetensors")
    with pytest.raises(MissingHintError, match=r"norm_fn not saved.*one of exp, softplus, sigmoid$"):
        ssmctl.load(path)
    model = ssmctl.load(path, eta=eta)
    assert len(model) == 1 and model[0].index == 0
    u = _u()
    ref = mhna_forward({k: v.double() for k, v in params.items()}, u.double(), d_qk=4, num_heads=2,
                       norm_fn=eta).numpy()
    assert rel_err(_block_out(model[0], u), ref) < 1e-6


def test_ssm_benchmark_transformer_attention(tmp_path):
    sd = {}
    mixers = [_mixer_params("attention", d_model=D, d_qk=8, num_heads=4, variant="softmax") for _ in range(2)]
    for i, m in enumerate(mixers):
        sd.update({f"layers.{i}.attention.{k}": v for k, v in m.items()})
        sd[f"layers.{i}.norm.weight"], sd[f"layers.{i}.norm.bias"] = torch.ones(D), torch.zeros(D)
        sd[f"layers.{i}.lambd"] = torch.ones(1)
    model = ssmctl.load(cb.write_state_dict(sd, tmp_path / "lra.pt"), variant="softmax", num_heads=4)
    u = _u()
    ref = mha_forward({k: v.double() for k, v in mixers[0].items()}, u.double(), d_qk=8, num_heads=4,
                      lin_att=False).numpy()
    assert rel_err(_block_out(model[0], u), ref) < 1e-6


@pytest.mark.parametrize("zoology", [True, False])
def test_qlstm_needs_variant(tmp_path, zoology):
    params = _mixer_params("qlstm", d_model=D, variant="reversed")
    sd = _zoology([params, params]) if zoology else params
    path = cb.write_state_dict(sd, tmp_path / "qlstm.pt")
    with pytest.raises(MissingHintError, match=r"reversed not saved.*one of standard, reversed$"):
        ssmctl.load(path)
    for variant in ("standard", "reversed"):
        model = ssmctl.load(path, variant=variant)
        assert len(model) == (2 if zoology else 1)
        u = _u()
        ref = qlstm_forward({k: v.double() for k, v in params.items()}, u.double(),
                            reversed_sigmoid=variant == "reversed").numpy()
        assert rel_err(_block_out(model[0], u), ref) < 1e-6


@pytest.mark.parametrize("variant", ["s6", "ssd"])
@pytest.mark.parametrize("zoology", [True, False])
def test_s6_and_ssd(tmp_path, variant, zoology):
    params = _mixer_params("s6", d_model=D, d_state=4, variant=variant)
    sd = _zoology([params], prefix="mixer") if zoology else params
    path = cb.write_state_dict(sd, tmp_path / "s6.pt")
    model = ssmctl.load(path)
    assert model.family == "s6" and model[0].config["variant"] == variant
    u = _u()
    ref = s6_forward({k: v.double() for k, v in params.items()}, u.double(), ssd=variant == "ssd").numpy()
    assert rel_err(_block_out(model[0], u), ref) < 1e-5  # the scan runs in float32, as the authors'


def test_bare_ssm_benchmark_rglru(tmp_path):
    from ..models._authors_mixers import rglru_forward

    g = torch.Generator().manual_seed(2)
    h = 2 * D
    params = {
        "input.weight": torch.randn(2 * h, D, generator=g) * D**-0.5,
        "conv.weight": torch.randn(h, 1, 4, generator=g) * 0.5,
        "conv.bias": torch.randn(h, generator=g) * 0.5,
        "gates.weight": torch.randn(2 * h, h, generator=g) * h**-0.5,
        "gates.bias": torch.randn(2 * h, generator=g) * 0.5,
        "forget_base": cb.init_forget_gate(h),
        "output.weight": torch.randn(D, h, generator=g) * h**-0.5,
        "alpha_log_scale": -8 * torch.ones(1),
    }
    model = ssmctl.load(cb.write_state_dict(params, tmp_path / "rglru.pt"))
    layer = model[0]
    assert model.family == "rglru" and model.extras["layouts"] == ["bare-rglru"]
    assert layer.config["convention"] == "ssm-benchmark" and not layer.config["pre_norm"] and layer.config["c"] == 8
    u = _u()
    ref = rglru_forward({k: v.double() for k, v in params.items()}, u.double()).numpy()
    assert rel_err(_block_out(layer, u), ref) < 1e-5
    lam = ssmctl.dsf_eigenvalues(layer, u)
    assert lam.shape == (2, L, h, 1) and ((lam > 0) & (lam < 1)).all()


def test_inspect_reports_the_dsf_mixers(tmp_path):
    """inspect: bare S6 at its bias-only Δ (closed form); attention layers are listed, not analysed, with why."""
    from ssmctl.checkpoints.inspect import inspect_report

    params = _mixer_params("s6", d_model=D, d_state=4, variant="s6")
    report = inspect_report(cb.write_state_dict(params, tmp_path / "s6.pt"))
    row = report["layers"][0]
    A = -np.exp(params["A_log"].double().numpy())
    lam = np.exp(np.logaddexp(0.0, params["dt_proj.bias"].double().numpy())[:, None] * A)
    assert row["at"] == "dt_bias" and row["abs_max"] == pytest.approx(lam.max(), rel=1e-12)
    assert row["abs_min"] == pytest.approx(lam.min(), rel=1e-12)
    mixers = [_mixer_params("attention", d_model=D, d_qk=6, num_heads=2, variant="linear")]
    report = inspect_report(cb.write_state_dict(_zoology(mixers), tmp_path / "a.pt"),
                            hints={"variant": "linear", "num_heads": 2})
    assert report["family"] == "attention" and report["at"] == {}
    assert "dsf_eigenvalues(layer, u)" in report["layers"][0]["warnings"][-1]
