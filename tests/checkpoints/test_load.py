"""ssmctl.checkpoints.load: every supported layout loads from a file on disk, with eigenvalues checked against values
computed directly from the stored tensors (or the producing model's modules), and every error path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import ssmctl
from ssmctl.errors import CheckpointError, MissingHintError, NonFiniteError, ShapeError, UnknownNameError, UnsupportedSystemError
from ssmctl.checkpoints.inspect import inspect_report, layer_spectrum
from ssmctl.checkpoints.load import SpectralOnlyLayer, load, scan

from .. import ckpt_builders as cb


def _bias_eigs_mamba(mixer) -> np.ndarray:
    """exp(softplus(dt_proj.bias)·A), A = −exp(A_log), from a transformers Mamba mixer module."""
    dt = F.softplus(mixer.dt_proj.bias.detach().double())
    return torch.exp(dt[:, None] * -torch.exp(mixer.A_log.detach().double())).numpy()


def _bias_eigs_mamba2(A_log, dt_bias) -> np.ndarray:
    A_log, dt_bias = (torch.as_tensor(t).detach().double() for t in (A_log, dt_bias))
    return torch.exp(F.softplus(dt_bias) * -torch.exp(A_log)).numpy()


def _eigs(layer) -> np.ndarray:
    return layer_spectrum(layer)["eigenvalues"].real


def assert_same_set(a, b, rtol):
    """Two multisets of complex numbers are equal up to rtol (optimal matching, order-free)."""
    from scipy.optimize import linear_sum_assignment

    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    assert a.shape == b.shape
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    np.testing.assert_allclose(a[rows], b[cols], rtol=rtol, atol=rtol * np.abs(b).max())


@pytest.fixture(scope="module")
def hf_mamba(tmp_path_factory):
    model = cb.hf_model("mamba", num_hidden_layers=3)
    folder = cb.save_hf(model, tmp_path_factory.mktemp("hf_mamba"))
    return model, folder


# --- transformers ------------------------------------------------------------------------------------------
def test_hf_mamba_safetensors(hf_mamba):
    model, folder = hf_mamba
    m = load(folder)
    assert isinstance(m, ssmctl.Model) and m.family == "mamba" and m.source == str(folder)
    assert [layer.index for layer in m.layers] == [0, 1, 2] and m.config["n_layers"] == 3
    cfg = model.config
    assert (m.config["d_model"], m.config["d_state"], m.config["d_inner"], m.config["dt_rank"], m.config["d_conv"]) == (
        cfg.hidden_size, cfg.state_size, cfg.intermediate_size, cfg.time_step_rank, cfg.conv_kernel)
    assert m.extras["layouts"] == ["hf-mamba"] and m.extras["other_layers"] == []
    emb = m.extras["embedding"]
    assert isinstance(emb, torch.Tensor) and torch.equal(emb, model.backbone.embeddings.weight.detach())
    for layer, block in zip(m.layers, model.backbone.layers):
        np.testing.assert_allclose(_eigs(layer), _bias_eigs_mamba(block.mixer), rtol=1e-6)
        assert torch.equal(layer.params["mixer.in_proj.weight"], block.mixer.in_proj.weight.detach())
    # the same Model object as ssmctl.init gives: ltv(u) works on the loaded layer
    sys_ = m.layers[0].ltv(np.random.default_rng(0).standard_normal((1, 5, cfg.hidden_size)))
    assert tuple(sys_.lam.shape) == (1, 5, cfg.intermediate_size, cfg.state_size)


def test_hf_sharded_equals_single_file(hf_mamba, tmp_path):
    model, folder = hf_mamba
    sharded = cb.save_hf(model, tmp_path / "sharded", max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    assert len(list(sharded.glob("model-*.safetensors"))) > 1
    a, b = load(folder), load(sharded)
    assert len(b.extras["files"]) > 1
    for la, lb in zip(a.layers, b.layers):
        assert la.params.keys() == lb.params.keys()
        assert all(torch.equal(la.params[k], lb.params[k]) for k in la.params)


def test_hf_bf16_is_upcast(hf_mamba, tmp_path):
    model, _ = hf_mamba
    half = cb.hf_model("mamba", num_hidden_layers=3).to(torch.bfloat16)
    folder = cb.save_hf(half, tmp_path / "bf16")
    stored = load_file(str(folder / "model.safetensors"))
    assert stored["backbone.layers.0.mixer.A_log"].dtype == torch.bfloat16
    m = load(folder)
    assert m.layers[0].params["mixer.A_log"].dtype == torch.float32
    assert m.extras["embedding"].dtype == torch.float32
    for i, layer in enumerate(m.layers):
        dt = F.softplus(stored[f"backbone.layers.{i}.mixer.dt_proj.bias"].double())
        expected = torch.exp(dt[:, None] * -torch.exp(stored[f"backbone.layers.{i}.mixer.A_log"].double())).numpy()
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-12)


def test_hf_pytorch_model_bin(hf_mamba, tmp_path):
    model, _ = hf_mamba
    folder = tmp_path / "bin"
    model.config.save_pretrained(folder)
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    torch.save(sd, folder / "pytorch_model.bin")
    m = load(folder)
    assert m.extras["files"] == [str(folder / "pytorch_model.bin")]
    np.testing.assert_allclose(_eigs(m.layers[2]), _bias_eigs_mamba(model.backbone.layers[2].mixer), rtol=1e-6)


def test_hf_falcon_mamba(tmp_path):
    model = cb.hf_model("falcon_mamba")
    m = load(cb.save_hf(model, tmp_path))
    assert m.family == "mamba" and len(m) == 2
    np.testing.assert_allclose(_eigs(m.layers[1]), _bias_eigs_mamba(model.backbone.layers[1].mixer), rtol=1e-6)


def test_hf_mamba2(tmp_path):
    model = cb.hf_model("mamba2")
    m = load(cb.save_hf(model, tmp_path))
    assert m.family == "mamba2" and m.extras["layouts"] == ["hf-mamba2"]
    assert (m.config["nheads"], m.config["headdim"], m.config["d_state"], m.config["ngroups"]) == (4, 16, 8, 1)
    assert m.extras["init"]["a_init"] == "transformers"
    for layer, block in zip(m.layers, model.backbone.layers):
        np.testing.assert_allclose(_eigs(layer), _bias_eigs_mamba2(block.mixer.A_log, block.mixer.dt_bias), rtol=1e-6)


def test_hf_recurrent_gemma(tmp_path):
    model = cb.hf_model("recurrent_gemma")
    m = load(cb.save_hf(model, tmp_path))
    types = model.config.block_types[: model.config.num_hidden_layers]
    assert [layer.index for layer in m.layers] == [i for i, t in enumerate(types) if t == "recurrent"]
    attn = [o for o in m.extras["other_layers"] if o["kind"] == "attention"]
    assert [o["index"] for o in attn] == [i for i, t in enumerate(types) if t == "attention"]
    assert all(o["name"].endswith("temporal_block") for o in attn)
    for layer in m.layers:
        lru = model.model.layers[layer.index].temporal_block.rg_lru
        r = torch.sigmoid(lru.recurrent_gate_bias.detach().double()).reshape(-1)
        expected = torch.exp(-8.0 * r * F.softplus(lru.recurrent_param.detach().double())).numpy()
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-6)


def test_recurrent_gemma_embedding_scale_is_what_transformers_applies(tmp_path):
    """extras['embedding_scale'] · embedding[ids] equals the hidden state transformers feeds its first layer."""
    model = cb.hf_model("recurrent_gemma")
    m = load(cb.save_hf(model, tmp_path))
    seen = {}
    hook = model.model.layers[0].register_forward_pre_hook(
        lambda mod, a, kw: seen.__setitem__("h", (a[0] if a else kw["hidden_states"]).detach()), with_kwargs=True)
    ids = torch.randint(0, model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model(ids, use_cache=False)
    hook.remove()
    scale = m.extras["embedding_scale"]
    assert isinstance(scale, float) and scale != 32**0.5  # √32 rounded to bfloat16 (5.65625), not 5.65685…
    torch.testing.assert_close(m.extras["embedding"][ids] * scale, seen["h"], rtol=0, atol=0)
    # Producers that do not scale their embeddings record no scale.
    assert "embedding_scale" not in load(cb.save_hf(cb.hf_model("mamba"), tmp_path / "mamba")).extras


@pytest.mark.parametrize("name, family, mixer_path", [
    ("jamba", "mamba", "mamba"),
    ("bamba", "mamba2", "mamba"),
    ("zamba2", "mamba2", None),
    ("nemotron_h", "mamba2", "mixer"),
    ("granite_moe_hybrid", "mamba2", "mamba"),
    ("falcon_h1", "mamba2", "mamba"),
])
def test_hf_hybrids(tmp_path, name, family, mixer_path):
    model = cb.hf_model(name)
    m = load(cb.save_hf(model, tmp_path))
    assert m.family == family and len(m.layers) >= 1
    kinds = {o["kind"] for o in m.extras["other_layers"]}
    assert "attention" in kinds
    inner = model.model if hasattr(model, "model") else model.backbone
    for layer in m.layers:
        block = inner.layers[layer.index]
        if name == "zamba2":
            mixer = getattr(block, "mamba", None) or block.mamba_decoder.mamba
        else:
            mixer = getattr(block, mixer_path)
        if family == "mamba":
            expected = _bias_eigs_mamba(mixer)
        else:
            expected = _bias_eigs_mamba2(mixer.A_log, mixer.dt_bias)
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-6)
    attn_idx = {o["index"] for o in m.extras["other_layers"] if o["kind"] == "attention"}
    if name != "falcon_h1":  # FalconH1 runs attention beside the mixer in every layer
        assert not attn_idx & {layer.index for layer in m.layers} or name == "zamba2"
    if name == "falcon_h1":
        assert isinstance(m.layers[0], SpectralOnlyLayer)
        with pytest.raises(UnsupportedSystemError, match="eigenvalues only"):
            m.layers[0].ltv(np.zeros((1, 3, 32)))


@pytest.mark.parametrize("name", ["mamba", "mamba2", "bamba", "jamba", "recurrent_gemma"])
def test_loaded_layers_reproduce_the_producers_blocks(tmp_path, name):
    """End to end: tensors read from disk and mapped by the layout give the transformers block's output."""
    from ssmctl.models.base import get_family

    model = cb.hf_model(name)
    m = load(cb.save_hf(model, tmp_path))
    u = torch.as_tensor(np.random.default_rng(3).standard_normal((2, 7, 32)), dtype=torch.float32)
    module = __import__(f"ssmctl.models.{get_family(m.family).name}", fromlist=["block_output_ref"])
    inner = model.model if hasattr(model, "model") else model.backbone
    for layer in m.layers:
        blk = inner.layers[layer.index]
        with torch.no_grad():
            if name in ("mamba", "mamba2"):
                ref = blk(u)
            elif name in ("bamba", "jamba"):
                ref = u + blk.mamba(blk.input_layernorm(u))
            else:
                pos = torch.arange(7)[None].expand(2, 7)
                ref = blk.temporal_block(blk.temporal_pre_norm(u), position_ids=pos, attention_mask=None)
                ref = u + (ref[0] if isinstance(ref, tuple) else ref)
        ref = ref[0] if isinstance(ref, tuple) else ref
        np.testing.assert_allclose(module.block_output_ref(layer, u), ref.double().numpy(), rtol=1e-5, atol=2e-6)


# --- mamba_ssm ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", ["Mamba", "Mamba2"])
def test_mamba_ssm_folder(tmp_path, mixer):
    folder, sd = cb.mamba_ssm_folder(tmp_path, mixer)
    m = load(folder)
    assert m.family == ("mamba" if mixer == "Mamba" else "mamba2")
    assert m.extras["layouts"] == ["mamba_ssm-" + m.family]
    assert torch.equal(m.extras["embedding"], sd["backbone.embedding.weight"])
    for layer in m.layers:
        p = f"backbone.layers.{layer.index}.mixer."
        if mixer == "Mamba":
            dt = F.softplus(sd[p + "dt_proj.bias"].double())
            expected = torch.exp(dt[:, None] * -torch.exp(sd[p + "A_log"].double())).numpy()
        else:
            expected = _bias_eigs_mamba2(sd[p + "A_log"], sd[p + "dt_bias"])
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-12)
    if mixer == "Mamba2":
        assert m.extras["init"]["a_init"] == "mamba_ssm"


# --- jsie7/ssm-benchmark and Task-Level-Insights ------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_ssm_benchmark_mamba(tmp_path, suffix):
    sd = cb.ssm_benchmark_mamba()
    m = load(cb.write_state_dict(sd, tmp_path / f"model{suffix}"))
    assert m.family == "mamba" and m.extras["layouts"] == ["ssm-benchmark-mamba"] and len(m) == 2
    assert {o["kind"] for o in m.extras["other_layers"]} == {"mlp"}  # the GLUs
    assert any("LayerNorm" in n for n in m.extras["notes"])
    for layer in m.layers:
        p = f"blocks.{layer.index}.mamba."
        dt = F.softplus(sd[p + "dt_proj.bias"].double())
        expected = torch.exp(dt[:, None] * -torch.exp(sd[p + "A_log"].double())).numpy()
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-12)


@pytest.mark.parametrize("tli", [False, True])
def test_ssd_without_gate(tmp_path, tli):
    sd = cb.ssm_benchmark_ssd(tli=tli)
    m = load(cb.write_state_dict(sd, tmp_path / "ssd.pt"))
    assert m.family == "mamba2" and m.extras["layouts"] == ["tli-ssd" if tli else "ssm-benchmark-ssd"]
    assert m.config["nheads"] == (4 if tli else 2) and m.config["d_state"] == 16
    for layer in m.layers:
        assert isinstance(layer, SpectralOnlyLayer)
        p = f"blocks.{layer.index}.mamba."
        np.testing.assert_allclose(_eigs(layer), _bias_eigs_mamba2(sd[p + "A_log"], sd[p + "dt_bias"]), rtol=1e-12)
    with pytest.raises(UnsupportedSystemError, match="without gate"):
        m.layers[0].ltv(np.zeros((1, 4, 32)))
    sd["blocks.1.mamba.out_proj.weight"][0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"layer 1: tensor 'blocks\.1\.mamba\.out_proj\.weight' has 1 NaN/Inf"):
        load(cb.write_state_dict(sd, tmp_path / "ssd_inf.pt"))


def test_tli_pseudo_lti_ssd(tmp_path):
    sd = cb.tli_ssd_lti()
    m = load(cb.write_state_dict(sd, tmp_path / "ssd_lti.pt"))
    assert m.family == "mamba2" and m.extras["layouts"] == ["tli-ssd-lti"]
    assert (m.config["nheads"], m.config["d_state"], m.config["headdim"]) == (2, 16, 32)
    for layer in m.layers:
        p = f"blocks.{layer.index}.mamba."
        expected = torch.exp(sd[p + "beta"].double() * -F.softplus(sd[p + "A"].double())).numpy()
        np.testing.assert_allclose(_eigs(layer), expected, rtol=1e-6)
        assert torch.equal(layer.params["mixer.dt_bias_B"], sd[p + "dt_bias"])


def test_ssm_benchmark_hawk(tmp_path):
    sd = cb.ssm_benchmark_hawk()
    m = load(cb.write_state_dict(sd, tmp_path / "hawk.bin"))
    assert m.family == "rglru" and m.extras["layouts"] == ["ssm-benchmark-hawk"]
    assert m.extras["init"]["preset"] == "ssm-benchmark"
    assert {o["name"] for o in m.extras["other_layers"]} == {"blocks.0.hawk_gmlp", "blocks.1.hawk_gmlp"}
    rng = np.random.default_rng(1)
    u = torch.as_tensor(rng.standard_normal((2, 6, 32)), dtype=torch.float32)
    for layer in m.layers:
        p = f"blocks.{layer.index}.hawk."
        w = sd[p + "forget_base"].shape[0]
        # input-free eigenvalues: Hawk's alpha with the forget gate at its bias
        alpha0 = torch.exp(-8.0 * F.softplus(sd[p + "forget_base"].double()) * torch.sigmoid(sd[p + "gates.bias"][:w].double()))
        np.testing.assert_allclose(_eigs(layer), alpha0.numpy(), rtol=1e-6)
        # per-token decay of the family's LTV system = Hawk's forward (models/hawk.py) on the same input
        gamma = sd[f"blocks.{layer.index}.hawk_norm.gamma"]
        x = u / u.norm(dim=-1, keepdim=True) * gamma * 32**0.5
        _, xin = (x @ sd[p + "input.weight"].T).chunk(2, dim=-1)
        xin = F.conv1d(xin.mT, sd[p + "conv.weight"], sd[p + "conv.bias"], padding=3, groups=w)[..., :6].mT
        forget, _ = (xin @ sd[p + "gates.weight"].T + sd[p + "gates.bias"]).chunk(2, dim=-1)
        alpha = torch.exp(sd[p + "alpha_log_scale"] * F.softplus(sd[p + "forget_base"]) * torch.sigmoid(forget))
        sys_ = layer.ltv(u)
        np.testing.assert_allclose(np.asarray(sys_.lam)[..., 0], alpha.numpy(), rtol=2e-4, atol=1e-6)


def test_tli_attention_only(tmp_path):
    sd = cb.tli_transformer(normalized=True)
    m = load(cb.write_state_dict(sd, tmp_path / "tf.pt"))
    assert m.family == "attention" and m.layers == []
    att = [o for o in m.extras["other_layers"] if o["kind"] == "attention"]
    assert [o["index"] for o in att] == [0, 1]
    assert att[0]["d_model"] == 32 and att[0]["d_qk"] == 16 and att[0]["num_heads"] == 2
    assert m.extras["embedding"].shape == (20, 32)


# --- state-spaces/s4 ---------------------------------------------------------------------------------------
def _impulse_complex(kernel, h, L):
    """K_0 = C B̄ + D, K_k = C Ā^k B̄ from the augmented complex DPLR system with the raw C (numpy)."""
    A, B, C, dt = cb.s4_dense_complex(kernel, h)
    dA, dB = cb.bilinear(A, B, dt)
    out, x = [], dB
    for _ in range(L):
        out.append((C @ x).real)
        x = dA @ x
    out[0] += kernel["D"][0, h]
    return np.array(out)


@pytest.mark.parametrize("l_kernel", [0, 64])
def test_s4_lightning_ckpt_recovers_c_from_c_tilde(tmp_path, l_kernel):
    H, N = 3, 8
    kernel = cb.s4_kernel(H, N, seed=1, perturb=0.2)
    stored = dict(kernel)
    if l_kernel:
        stored["C"] = cb.s4_c_tilde(kernel, l_kernel)  # what a trained checkpoint holds
        assert not np.allclose(stored["C"], kernel["C"])
    sd = cb.s4_state_dict(stored, n_layers=2, l_kernel=l_kernel)
    hp = {"model": {"layer": {"_name_": "s4", "d_state": N, "dt_transform": "softplus", "mode": "nplr"}}}
    m = load(cb.lightning_ckpt(tmp_path / "s4.ckpt", sd, hp, tmp_path))
    assert m.family == "s4" and m.extras["layouts"] == ["s4-dplr"] and [l.index for l in m.layers] == [0, 1]
    assert m.layers[0].config["l_kernel"] == l_kernel
    K = ssmctl.impulse_response(m.layers[0].system(), 20)[..., 0, 0]  # (H, L)
    for h in range(H):
        np.testing.assert_allclose(K[h], _impulse_complex(kernel, h, 20), rtol=1e-7, atol=1e-9)
    # trained (off-HiPPO) layer: eigenvalues of the bilinear DPLR matrix, both bases agree
    lam = layer_spectrum(m.layers[0])["eigenvalues"]
    for h in range(H):
        A, B, _, dt = cb.s4_dense_complex(kernel, h)
        assert_same_set(lam[h], np.linalg.eigvals(cb.bilinear(A, B, dt)[0]), rtol=1e-8)


def test_s4_at_hippo_init_gives_exact_eigenvalues(tmp_path):
    H, N = 2, 16
    kernel = cb.s4_kernel(H, N, seed=2)
    path = cb.write_state_dict(cb.s4_state_dict(kernel, 1, prefix="layers.{i}.layer."), tmp_path / "s4.pt")
    m = load(path, dt_transform="softplus")
    lam = layer_spectrum(m.layers[0])["eigenvalues"].real  # (H, N)
    dt = np.logaddexp(0.0, kernel["inv_dt"])  # softplus, as hinted
    x = -dt * np.arange(1, N + 1)
    np.testing.assert_allclose(np.sort(lam, axis=-1), np.sort((1 + x / 2) / (1 - x / 2), axis=-1), rtol=1e-10)


def test_s4d_diag_hyperparameters_are_honoured(tmp_path):
    H, N = 4, 8
    kernel = cb.s4d_diag_kernel(H, N, dt_transform="exp")
    sd = cb.s4_state_dict(kernel, n_layers=1, l_kernel=None)
    hp = {"model": {"layer": {"_name_": "s4", "mode": "diag", "dt_transform": "exp", "disc": "zoh"}}}
    m = load(cb.lightning_ckpt(tmp_path / "s4d.ckpt", sd, hp, tmp_path))
    assert m.family == "s4d" and m.extras["layouts"] == ["s4d-diag"]

    def expected(dt):
        A = -np.exp(kernel["A_real"][0]) - 1j * kernel["A_imag"][0]
        lam = np.exp(dt[:, None] * A)
        return np.concatenate([lam, lam.conj()], axis=-1)

    got = layer_spectrum(m.layers[0])["eigenvalues"]
    for h in range(H):
        assert_same_set(got[h], expected(np.exp(kernel["inv_dt"][:, 0]))[h], rtol=1e-10)
    # the same tensors without hyperparameters: the setting is asked for, never guessed
    bare = cb.write_state_dict(sd, tmp_path / "s4d.pt")
    with pytest.raises(MissingHintError, match=r"does not record dt_transform: pass dt_transform= to ssmctl.load "
                       r"\(CLI: --dt-transform\), one of exp, softplus"):
        load(bare)
    got_exp = layer_spectrum(load(bare, dt_transform="exp").layers[0])["eigenvalues"]
    np.testing.assert_array_equal(got_exp, got)
    with pytest.raises(CheckpointError, match=r"records dt_transform='exp' but the hint says 'softplus'"):
        load(cb.lightning_ckpt(tmp_path / "s4d2.ckpt", sd, hp, tmp_path), dt_transform="softplus")
    m2 = load(bare, dt_transform="softplus")
    got2 = layer_spectrum(m2.layers[0])["eigenvalues"]
    for h in range(H):
        assert_same_set(got2[h], expected(np.logaddexp(0.0, kernel["inv_dt"][:, 0]))[h], rtol=1e-10)
    assert np.abs(got - got2).max() > 1e-5  # the two transforms give different systems
    # B folded into C: the minimal form has the same impulse response as C·B̄ of the diag kernel
    Bc = kernel["B"][0, 0, :, 0] + 1j * kernel["B"][0, 0, :, 1]
    Cc = kernel["C"][0, :, :, 0] + 1j * kernel["C"][0, :, :, 1]
    dt = np.exp(kernel["inv_dt"][:, :1])
    A = -np.exp(kernel["A_real"][0]) - 1j * kernel["A_imag"][0]
    dB = (np.exp(dt * A) - 1) / A * Bc
    K = ssmctl.impulse_response(m.layers[0].system(), 6)[..., 0, 0]
    k1 = 2 * (Cc * np.exp(dt * A) ** 1 * dB).sum(-1).real
    np.testing.assert_allclose(K[:, 1], k1, rtol=1e-9)


def test_s4d_minimal_example_py(tmp_path):
    sd = cb.s4d_minimal_state_dict(n_layers=3, H=4, N=8)
    m = load(cb.write_state_dict(sd, tmp_path / "s4d.pt"))
    assert m.family == "s4d" and m.extras["layouts"] == ["s4d-minimal"] and len(m) == 3
    assert m.extras["init"]["variant"] == "lin"
    for layer in m.layers:
        p = f"s4_layers.{layer.index}.kernel."
        A = -np.exp(sd[p + "log_A_real"].double().numpy()) + 1j * sd[p + "A_imag"].double().numpy()
        lam = np.exp(np.exp(sd[p + "log_dt"].double().numpy())[:, None] * A)
        expected = np.concatenate([lam, lam.conj()], axis=-1)
        got = layer_spectrum(layer)["eigenvalues"]
        for h in range(4):
            assert_same_set(got[h], expected[h], rtol=1e-7)
    assert m.extras["other_layers"] == []  # output_linear is the layer's own scaffolding
    assert "output_linear.0.weight" in m.layers[0].params


# --- errors ----------------------------------------------------------------------------------------------
def _rewrite(folder, edit):
    sd = load_file(str(folder / "model.safetensors"))
    edit(sd)
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _copy(folder, tmp_path):
    import shutil

    return shutil.copytree(folder, tmp_path / "copy")


def test_mis_shaped_tensor_names_key_and_shapes(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)
    _rewrite(folder, lambda sd: sd.__setitem__("backbone.layers.1.mixer.dt_proj.bias", torch.zeros(7)))
    with pytest.raises(ShapeError, match=r"'backbone\.layers\.1\.mixer\.dt_proj\.bias' has shape \(7,\), expected \(64,\)"):
        load(folder)


def test_config_json_disagreeing_with_tensors(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["state_size"] = 4
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ShapeError, match=r"'backbone\.layers\.0\.mixer\.A_log' has shape \(64, 8\), expected \(64, 4\)"):
        scan(folder)


def test_missing_tensor_names_key(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)
    _rewrite(folder, lambda sd: sd.pop("backbone.layers.2.mixer.x_proj.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensor 'backbone\.layers\.2\.mixer\.x_proj\.weight'.*expected shape \(18, 64\)"):
        load(folder)


def test_missing_anchor_is_not_silently_dropped(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)
    _rewrite(folder, lambda sd: sd.pop("backbone.layers.1.mixer.A_log"))
    with pytest.raises(CheckpointError, match=r"'backbone\.layers\.1\.' holds mamba tensors.*lacks backbone\.layers\.1\.mixer\.A_log"):
        load(folder)


def test_nan_weight_refused_by_load_with_key(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)

    def poison(sd):
        sd["backbone.layers.1.mixer.out_proj.weight"][0, 0] = float("nan")

    _rewrite(folder, poison)
    with pytest.raises(NonFiniteError, match=r"layer 1.*mixer\.out_proj\.weight.*backbone\.layers\.1\."):
        load(folder)


def test_corrupt_weights_file_in_folder(hf_mamba, tmp_path):
    folder = _copy(hf_mamba[1], tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*corrupt or truncated"):
        load(folder)


def test_unknown_layout_and_missing_path(tmp_path):
    torch.save({"conv.weight": torch.zeros(3, 3), "fc.bias": torch.zeros(3)}, tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout.*conv\.weight.*known layouts"):
        load(tmp_path / "cnn.pt")
    with pytest.raises(CheckpointError, match="never downloads"):
        load(tmp_path / "state-spaces" / "mamba-130m")


# --- hints: settings a checkpoint does not record ----------------------------------------------------------
def _s4d_zoh_kernel(kernel, L):
    """K_k of an SSMKernelDiag (ZOH, Δ = exp(inv_dt)), computed here from its definition:
    K_k = 2 Re Σ_n C_n B_n (e^{ΔA_n} − 1)/A_n · e^{kΔA_n}, plus D at k = 0. Shape (H, L)."""
    c = lambda x: x[..., 0] + 1j * x[..., 1]  # noqa: E731
    A = -np.exp(kernel["A_real"][0]) - 1j * kernel["A_imag"][0]  # (K,)
    dt = np.exp(kernel["inv_dt"])  # (H, 1)
    CB = c(kernel["C"])[0] * c(kernel["B"])[0, 0]  # (H, K)
    dA = np.exp(dt * A)
    k = np.arange(L)
    K = 2 * np.einsum("hn,hnl->hl", CB * (dA - 1) / A, dA[:, :, None] ** k).real
    K[:, 0] += kernel["D"][0]
    return K


def test_state_spaces_s4_python_defaults_load_right_with_the_hint(tmp_path):
    """S4 and S4D layers as state-spaces/s4's Python classes build them (dt_transform='exp', Δ = exp(inv_dt)),
    saved as a bare state dict: with dt_transform="exp" the impulse responses are the reference kernels; without
    it the load stops and names the setting; softplus (the old silent guess) gives a different kernel."""
    H, N, L = 3, 8, 64
    s4k = cb.s4_kernel(H, N, seed=4)
    dt = np.exp(np.random.default_rng(4).uniform(np.log(1e-3), np.log(1e-1), (H, 1)))
    s4k["inv_dt"] = np.log(dt)  # the SSMKernel class default: Δ = exp(inv_dt)
    same_dt = dict(s4k, inv_dt=cb.softplus_inv(dt))  # the builders' reference reads Δ = softplus(inv_dt)
    s4_path = cb.write_state_dict(cb.s4_state_dict(s4k, 1, prefix="layers.{i}.layer."), tmp_path / "s4.pt")
    s4dk = cb.s4d_diag_kernel(H, N, seed=5, dt_transform="exp")
    s4d_path = cb.write_state_dict(cb.s4_state_dict(s4dk, 1, l_kernel=None), tmp_path / "s4d.pt")

    K = ssmctl.impulse_response(load(s4_path, dt_transform="exp").layers[0].system(), L)[..., 0, 0]
    for h in range(H):
        np.testing.assert_allclose(K[h], _impulse_complex(same_dt, h, L), rtol=1e-9, atol=1e-12)
    K = ssmctl.impulse_response(load(s4d_path, dt_transform="exp").layers[0].system(), L)[..., 0, 0]
    np.testing.assert_allclose(K, _s4d_zoh_kernel(s4dk, L), rtol=1e-9, atol=1e-12)

    for path, layout in ((s4_path, "s4-dplr"), (s4d_path, "s4d-diag")):
        with pytest.raises(MissingHintError, match=rf"layout {layout} .* does not record dt_transform: pass "
                           r"dt_transform= to ssmctl.load \(CLI: --dt-transform\), one of exp, softplus"):
            load(path)
        wrong = ssmctl.impulse_response(load(path, dt_transform="softplus").layers[0].system(), L)
        right = ssmctl.impulse_response(load(path, dt_transform="exp").layers[0].system(), L)
        assert np.abs(wrong - right).max() > 1e-3 * np.abs(right).max()


def test_unknown_or_bad_hints_are_errors_listing_the_known(tmp_path):
    path = cb.write_state_dict(cb.s4d_minimal_state_dict(1, 2, 4), tmp_path / "m.pt")
    with pytest.raises(UnknownNameError, match=r"unknown hint 'dt_transfrom'; known: dt_transform"):
        load(path, dt_transfrom="exp")
    with pytest.raises(UnknownNameError, match=r"unknown dt_transform \(--dt-transform\) 'log'; known: exp, softplus"):
        load(path, dt_transform="log")
    assert load(path, dt_transform="exp").family == "s4d"  # a hint the layout does not need is harmless


# --- Mamba state dicts without the backbone. prefix -----------------------------------------------------------
def _renamed(model, prefix):
    """The model's tensors as mamba_ssm's MixerModel / mambapy name them: backbone. → prefix, embeddings →
    embedding (MixerModel: embedding.weight; mambapy MambaLM: mamba.layers.{i}, embedding.weight)."""
    out = {}
    for k, v in model.state_dict().items():
        if k == "backbone.embeddings.weight":
            out["embedding.weight"] = v
        elif k.startswith("backbone.layers."):
            out[prefix + k[len("backbone."):]] = v
        elif k == "backbone.norm_f.weight":
            out["norm_f.weight"] = v
    return out


@pytest.mark.parametrize("name", ["mamba", "mamba2"])
@pytest.mark.parametrize("prefix", ["", "mamba."])
def test_mixer_model_state_dicts_load_as_their_family(tmp_path, name, prefix):
    model = cb.hf_model(name, num_hidden_layers=2)
    ref = load(cb.save_hf(model, tmp_path / "hf"))
    path = cb.write_state_dict(_renamed(model, prefix), tmp_path / "mixer.pt")
    hints = {"ngroups": 1} if name == "mamba2" else {}
    if name == "mamba2":  # n_groups lives in config.json only: asked for, not assumed
        with pytest.raises(MissingHintError, match=r"layout mixer-mamba2 .* does not record ngroups.*--ngroups"):
            load(path)
    m = load(path, **hints)
    assert m.family == name and m.extras["layouts"] == [f"mixer-{name}"] and len(m) == 2
    assert [l.index for l in m.layers] == [0, 1]
    torch.testing.assert_close(m.extras["embedding"], ref.extras["embedding"])
    u = np.random.default_rng(0).standard_normal((1, 5, model.config.hidden_size)).astype(np.float32)
    for a, b in zip(m.layers, ref.layers):
        np.testing.assert_array_equal(_eigs(a), _eigs(b))
        got, want = a.ltv(u), b.ltv(u)
        torch.testing.assert_close(torch.as_tensor(got.lam), torch.as_tensor(want.lam), rtol=0, atol=0)
    row = inspect_report(path, hints=hints)["layers"][0]
    assert row["family"] == name and row["memory_horizon_median"] == inspect_report(ref)["layers"][0]["memory_horizon_median"]


def test_ssm_parameters_are_never_no_ssm_layers(tmp_path):
    """An A_log beside a mixer.in_proj that no layout claims (here a 3-d A_log) is an error, not attention."""
    model = cb.hf_model("mamba", num_hidden_layers=1)
    sd = _renamed(model, "")
    sd["layers.0.mixer.A_log"] = sd["layers.0.mixer.A_log"][None]
    with pytest.raises(CheckpointError, match=r"SSM parameter\(s\) that no known layout claims \(layers.0.mixer.A_log\)"):
        load(cb.write_state_dict(sd, tmp_path / "odd.pt"))


@pytest.mark.parametrize("module", ["FFTConv", "S4Block"])
def test_one_layer_state_dict_loads_as_a_one_layer_model(tmp_path, module):
    """One S4 / S4D layer's own state_dict() (kernel.*, D; an S4Block's layer.kernel.*, layer.D): layer 0."""
    H, N, L = 2, 8, 32
    root = "" if module == "FFTConv" else "layer."
    s4k = cb.s4_kernel(H, N, seed=6, perturb=0.1)
    sd = {root + ("D" if k == "D" else f"kernel.{k}"): torch.as_tensor(v) for k, v in s4k.items()}
    if module == "S4Block":
        sd["output_linear.0.weight"] = torch.zeros(2 * H, H)
    m = load(cb.write_state_dict(sd, tmp_path / "s4_layer.pt"), dt_transform="softplus")
    assert (m.family, len(m), m.layers[0].index, m.extras["layouts"]) == ("s4", 1, 0, ["s4-dplr"])
    K = ssmctl.impulse_response(m.layers[0].system(), L)[..., 0, 0]
    for h in range(H):
        np.testing.assert_allclose(K[h], _impulse_complex(s4k, h, L), rtol=1e-9, atol=1e-12)
    s4dk = cb.s4d_diag_kernel(H, N, seed=7, dt_transform="exp")
    sd = {root + ("D" if k == "D" else f"kernel.{k}"): torch.as_tensor(v) for k, v in s4dk.items()}
    m = load(cb.write_state_dict(sd, tmp_path / "s4d_layer.safetensors"), dt_transform="exp")
    assert (m.family, len(m), m.extras["layouts"]) == ("s4d", 1, ["s4d-diag"])
    K = ssmctl.impulse_response(m.layers[0].system(), L)[..., 0, 0]
    np.testing.assert_allclose(K, _s4d_zoh_kernel(s4dk, L), rtol=1e-9, atol=1e-12)
