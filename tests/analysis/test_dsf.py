"""ssmctl.dsf / dsf_eigenvalues / materialize: Φ of every family against its own forward, the authors' mixers,
transformers' mixers, the product-loop twin, and the LTI systems' own recurrences."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest
import torch

import ssmctl
from ssmctl.errors import ShapeError, SsmctlError, UnknownNameError, UnsupportedSystemError
from ssmctl.models import attention, mamba, mamba2, qlstm, rglru
from ssmctl.systems.ltv import LTVSystem

from ..models._authors_mixers import mha_forward, mhna_forward, qlstm_forward
from ..models._ltv_checks import rel_err

BATCH, L = 2, 9

FRESH = {
    "linear": ("attention", dict(variant="linear", num_heads=2, d_model=8, d_qk=6)),
    "normalized-exp": ("attention", dict(variant="normalized", eta="exp", num_heads=2, d_model=8, d_qk=6)),
    "normalized-softplus": ("attention", dict(variant="normalized", eta="softplus", num_heads=2, d_model=8, d_qk=6)),
    "normalized-sigmoid": ("attention", dict(variant="normalized", eta="sigmoid", num_heads=2, d_model=8, d_qk=6)),
    "softmax": ("attention", dict(variant="softmax", num_heads=2, d_model=8, d_qk=6)),
    "qlstm-standard": ("qlstm", dict(variant="standard", d_model=6)),
    "qlstm-reversed": ("qlstm", dict(variant="reversed", d_model=6)),
    "mamba": ("mamba", dict(d_model=8, d_state=4)),
    "mamba2": ("mamba2", dict(d_model=16, d_state=8, headdim=8)),
    "rglru": ("rglru", dict(d_model=8, lru_width=8, num_heads=2)),
}


def _fresh(name):
    family, kw = FRESH[name]
    return ssmctl.init(family, n_layers=1, **kw)[0]


def _u(d, length=L, seed=1, scale=1.0):
    return scale * torch.randn(BATCH, length, d, generator=torch.Generator().manual_seed(seed))


def _mixer_output(layer, u):
    """The mixer's output by its own forward path (not through Φ)."""
    if layer.family == "attention":
        return attention.mixer_output(layer, u)
    if layer.family == "qlstm":
        return qlstm.mixer_output(layer, u)
    module = {"mamba": mamba, "mamba2": mamba2, "rglru": rglru}[layer.family]
    return module.block_output_ref(layer, u) - u.double().numpy()


def _apply_core(phi):
    return np.einsum("bcij,bjc->bic", np.asarray(phi), phi.inputs)


def _apply_full(phi, x):
    return np.einsum("bijpm,bjm->bip", np.asarray(phi), x) + phi.offset


@pytest.mark.parametrize("name", sorted(FRESH))
def test_core_phi_times_inputs_is_the_core_recurrence(name):
    layer = _fresh(name)
    u = _u(layer.config["d_model"])
    phi = ssmctl.materialize(layer, u)
    P = np.asarray(phi)
    assert phi.layout == "per_channel" and P.shape[0] == BATCH and P.shape[2:] == (L, L)
    assert np.all(np.triu(P, 1) == 0)  # causal: exactly zero above the diagonal
    np.testing.assert_allclose(P, ssmctl.materialize_ref(layer, u), rtol=1e-10, atol=1e-13)
    if name == "softmax":
        alpha, v, _ = attention._alpha(layer, u)
        want = torch.einsum("bhij,bjhc->bihc", alpha, v).reshape(BATCH, L, -1).numpy()
    else:
        system = ssmctl.dsf(layer, u)
        want = system.output_ref().reshape(BATCH, L, -1)  # the sequential float64 recurrence
    assert rel_err(_apply_core(phi), want) < 1e-12


@pytest.mark.parametrize("name", sorted(FRESH))
def test_block_phi_plus_offset_is_the_mixer_output(name):
    layer = _fresh(name)
    u = _u(layer.config["d_model"], seed=2)
    phi = ssmctl.materialize(layer, u, scope="block")
    d = layer.config["d_model"]
    assert phi.layout == "full" and phi.shape == (BATCH, L, L, d, d)
    assert np.all(np.asarray(phi)[:, np.triu_indices(L, 1)[0], np.triu_indices(L, 1)[1]] == 0)
    np.testing.assert_allclose(np.asarray(phi), ssmctl.materialize_ref(layer, u, scope="block"),
                               rtol=1e-9, atol=1e-12)
    # The SSM families' conv/scan run in float32 (their model dtype); attention and qLSTM in float64.
    tol = 1e-12 if layer.family in ("attention", "qlstm") else 2e-6
    assert rel_err(_apply_full(phi, phi.inputs), _mixer_output(layer, u)) < tol


def test_block_offset_is_the_bias_path():
    """With every bias zero the offset vanishes; attention's offset is then α·b_v through out_proj only."""
    layer = _fresh("linear")
    for k in list(layer.params):
        if k.endswith("bias"):
            layer.params[k] = torch.zeros_like(layer.params[k])
    phi = ssmctl.materialize(layer, _u(8), scope="block")
    assert np.all(phi.offset == 0)
    layer.params["Wv.bias"] = torch.ones(8)
    phi = ssmctl.materialize(layer, _u(8), scope="block")
    # Rows of linear attention's α sum to 1: the offset is out_proj·b_v at every token.
    want = layer.params["out_proj.weight"].double().numpy().sum(1)
    np.testing.assert_allclose(phi.offset, np.broadcast_to(want, phi.offset.shape), rtol=1e-12)


# --- against the authors' mixers --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["linear", "softmax", "normalized-exp", "normalized-softplus",
                                  "normalized-sigmoid", "qlstm-standard", "qlstm-reversed"])
def test_block_phi_against_authors_mixers(name):
    layer = _fresh(name)
    d = layer.config["d_model"]
    u = _u(d, seed=3)
    p = {k: v.double() for k, v in layer.params.items()}
    if layer.family == "qlstm":
        ref = qlstm_forward(p, u.double(), reversed_sigmoid=layer.config["variant"] == "reversed")
    elif layer.config["variant"] == "normalized":
        ref = mhna_forward(p, u.double(), d_qk=6, num_heads=2, norm_fn=layer.config["eta"])
    else:
        ref = mha_forward(p, u.double(), d_qk=6, num_heads=2, lin_att=layer.config["variant"] == "linear")
    phi = ssmctl.materialize(layer, u, scope="block")
    assert rel_err(_apply_full(phi, u.double().numpy()), ref.numpy()) < 1e-12


# --- against transformers' mixers -------------------------------------------------------------------------

transformers = pytest.importorskip("transformers")


def _perturb(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("A_log"):
                p.add_(0.3 * torch.randn_like(p))
            elif name.endswith("norm.weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif name.endswith("bias") or name.endswith(".D"):
                p.copy_(0.5 * torch.randn_like(p))


def test_transformers_mamba_mixer():
    torch.manual_seed(0)
    cfg = transformers.MambaConfig(vocab_size=16, hidden_size=8, state_size=4, num_hidden_layers=1, expand=2,
                                   conv_kernel=4, time_step_rank=2, use_bias=True, use_mambapy=False)
    block = transformers.MambaForCausalLM(cfg).eval().backbone.layers[0]
    _perturb(block)
    layer = mamba.layer_from_params(block.state_dict(), {"eps": block.norm.variance_epsilon})
    u = _u(8, seed=4)
    phi = ssmctl.materialize(layer, u, scope="block")
    with torch.no_grad():
        hidden = block.norm(u)
        ref = block.mixer(hidden).double().numpy()
    assert rel_err(phi.inputs, hidden.numpy()) < 1e-7
    assert rel_err(_apply_full(phi, phi.inputs), ref) < 1e-5


def test_transformers_mamba2_mixer():
    torch.manual_seed(0)
    cfg = transformers.Mamba2Config(vocab_size=16, hidden_size=16, state_size=8, num_hidden_layers=1, expand=2,
                                    head_dim=8, num_heads=4, n_groups=2, chunk_size=4, conv_kernel=4)
    block = transformers.Mamba2ForCausalLM(cfg).eval().backbone.layers[0]
    _perturb(block)
    layer = mamba2.layer_from_params(block.state_dict(), {"ngroups": 2, "eps": block.norm.variance_epsilon,
                                                          "norm_eps": block.mixer.norm.variance_epsilon})
    u = _u(16, seed=5)
    phi = ssmctl.materialize(layer, u, scope="block")
    with torch.no_grad():
        ref = block.mixer(block.norm(u)).double().numpy()
    assert rel_err(_apply_full(phi, phi.inputs), ref) < 1e-5


def test_transformers_recurrent_gemma_temporal_block():
    torch.manual_seed(0)
    cfg = transformers.RecurrentGemmaConfig(
        vocab_size=16, hidden_size=8, lru_width=8, num_attention_heads=2, num_hidden_layers=1,
        intermediate_size=16, block_types=["recurrent"], attention_window_size=16, conv1d_width=4,
    )
    dec = transformers.RecurrentGemmaForCausalLM(cfg).eval().model.layers[0]
    with torch.no_grad():
        for name, p in dec.named_parameters():
            if name.endswith("bias"):
                p.copy_(0.5 * torch.randn_like(p))
            elif "gate_weight" in name:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[-1]))
    layer = rglru.layer_from_params(dec.state_dict(), {"eps": dec.temporal_pre_norm.eps})
    u = _u(8, seed=6)
    phi = ssmctl.materialize(layer, u, scope="block")
    with torch.no_grad():
        hidden = dec.temporal_pre_norm(u)
        ref = dec.temporal_block(hidden, torch.arange(L)[None].expand(BATCH, L), None, use_cache=False)
        ref = ref[0] if isinstance(ref, tuple) else ref
    assert rel_err(_apply_full(phi, phi.inputs), ref.double().numpy()) < 1e-5


# --- LTI families -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("family,kw", [("s4", {}), ("s4d", {}), ("s5", {"d_state": 8, "blocks": 2}),
                                       ("lru", {})])
def test_lti_phi_is_the_systems_recurrence(family, kw):
    layer = ssmctl.init(family, n_layers=1, d_model=4, **({"d_state": 4} | kw))[0]
    system = ssmctl.dsf(layer)
    assert type(system) is type(layer.system())
    per_channel = system.n_inputs == 1
    x = np.random.default_rng(0).standard_normal((BATCH, L, 4))
    phi = ssmctl.materialize(layer, x)
    assert phi.layout == ("per_channel" if per_channel else "full")
    np.testing.assert_allclose(np.asarray(phi), ssmctl.materialize_ref(layer, x), rtol=1e-9, atol=1e-13)
    # The system's own recurrence (its dense form, stepped token by token) on the same input.
    A, B, C, D = (np.asarray(m) for m in system.to_dense().broadcast_arrays())
    if per_channel:
        h = np.zeros((BATCH, 4, A.shape[-1]))
        ys = []
        for t in range(L):
            h = np.einsum("cnk,bck->bcn", A, h) + B[..., 0][None] * x[:, t, :, None]
            ys.append(np.einsum("cn,bcn->bc", C[:, 0], h) + D[:, 0, 0] * x[:, t])
        assert rel_err(_apply_core(phi), np.stack(ys, 1)) < 1e-10
    else:
        h = np.zeros((BATCH, A.shape[-1]))
        ys = []
        for t in range(L):
            h = h @ A.T + x[:, t] @ B.T
            ys.append(h @ C.T + x[:, t] @ D.T)
        assert rel_err(_apply_full(phi, x), np.stack(ys, 1).real) < 1e-10
    np.testing.assert_allclose(ssmctl.dsf_eigenvalues(layer), layer.eigenvalues())


def test_block_scope_refused_for_lti():
    layer = ssmctl.init("s4d", n_layers=1, d_model=4, d_state=4)[0]
    with pytest.raises(UnsupportedSystemError, match="scope='core' only"):
        ssmctl.materialize(layer, np.zeros((1, 3, 4)), scope="block")


# --- eigenvalues ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["qlstm-standard", "qlstm-reversed", "mamba", "mamba2", "rglru"])
def test_transitions_of_gated_and_selective_layers_in_unit_interval(name):
    layer = _fresh(name)
    lam = ssmctl.dsf_eigenvalues(layer, _u(layer.config["d_model"], scale=3.0))
    assert lam.shape[:2] == (BATCH, L) and ((lam > 0) & (lam < 1)).all()


def test_softmax_eigenvalues_exact_and_telescoping():
    layer = _fresh("softmax")
    u = _u(8, scale=4.0)
    lam = ssmctl.dsf_eigenvalues(layer, u)
    assert lam.shape == (BATCH, L, 2)
    q, k, _, _ = attention._qkv(layer, u)
    s = torch.einsum("bihm,bjhm->bhij", q, k).numpy() / math.sqrt(3)
    eta = np.stack([np.exp(s[:, :, i, : i + 1]).sum(-1) for i in range(L)], axis=1)  # (b, L, H), no overflow here
    np.testing.assert_allclose(lam[:, 1:], eta[:, :-1] / eta[:, 1:], rtol=1e-12)
    assert (lam > 1).any()  # attention's Λ_i is not contractive
    # Λ_i⋯Λ_{j+1} = η_j/η_i
    np.testing.assert_allclose(np.prod(lam[:, 3:8], axis=1), eta[:, 2] / eta[:, 7], rtol=1e-12)


def test_softmax_dsf_refused_or_taylor():
    layer = _fresh("softmax")
    u = _u(8, scale=0.5)
    with pytest.raises(UnsupportedSystemError, match="features=p"):
        ssmctl.dsf(layer, u)
    exact = np.asarray(ssmctl.materialize(layer, u))
    errs = [rel_err(np.asarray(ssmctl.materialize(layer, u, features=p)), exact) for p in (1, 2, 4)]
    assert errs[0] > errs[1] > errs[2] and errs[2] < 1e-3
    system = ssmctl.dsf(layer, u, features=2)
    assert isinstance(system, LTVSystem) and system.n_states == 1 + 3 + 9
    with pytest.raises(UnsupportedSystemError, match="softmax attention only"):
        ssmctl.dsf(_fresh("linear"), u, features=2)


# --- lazy Φ -----------------------------------------------------------------------------------------------

def test_lazy_phi_blocks_windows_and_refusal():
    layer = _fresh("mamba")
    u = _u(8, length=64, seed=7)
    eager = np.asarray(ssmctl.materialize(layer, u))
    budget = 100_000
    phi = ssmctl.materialize(layer, u, max_bytes=budget)
    assert phi.lazy and phi.nbytes == eager.nbytes > budget
    with pytest.raises(SsmctlError, match=r"Φ \(2, 16, 64, 64\) would take 1\.0 MiB, more than max_bytes = 97\.7 KiB.*row_blocks"):
        np.asarray(phi)
    tracemalloc.start()
    got = []
    for r0, r1, block in phi.row_blocks():
        got.append((r0, r1, float(np.abs(block - eager[:, :, r0:r1]).max())))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < budget, f"peak {peak} B over the budget"
    assert got[0][0] == 0 and got[-1][1] == 64 and max(e for *_, e in got) < 1e-15
    close = dict(rtol=1e-13, atol=1e-16)  # column tiles change einsum's summation order only
    np.testing.assert_allclose(phi[10:30, 5:12], eager[:, :, 10:30, 5:12], **close)
    np.testing.assert_allclose(phi[20, 3:9], eager[:, :, 20, 3:9], **close)
    np.testing.assert_allclose(phi[-1, -1], eager[:, :, -1, -1], **close)
    with pytest.raises(SsmctlError, match="too small for one row"):
        next(ssmctl.materialize(layer, u, max_bytes=1000).row_blocks())
    with pytest.raises(ShapeError, match="outside"):
        phi[64, 0]


def test_lazy_block_phi_windows():
    layer = _fresh("qlstm-reversed")
    u = _u(6, length=20)
    eager = ssmctl.materialize(layer, u, scope="block")
    lazy = ssmctl.materialize(layer, u, scope="block", max_bytes=40_000)
    assert lazy.lazy
    np.testing.assert_allclose(lazy[4:17, 2:11], np.asarray(eager)[:, 4:17, 2:11], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(lazy.offset, eager.offset, rtol=1e-13, atol=1e-15)


def test_bad_arguments():
    layer = _fresh("mamba")
    u = _u(8)
    with pytest.raises(UnknownNameError, match="scope"):
        ssmctl.materialize(layer, u, scope="mixer")
    with pytest.raises(SsmctlError, match="max_bytes"):
        ssmctl.materialize(layer, u, max_bytes=0)
    with pytest.raises(ShapeError, match="pass its input u"):
        ssmctl.dsf(layer)
    with pytest.raises(ShapeError, match="d_model = 8"):
        ssmctl.materialize(layer, torch.zeros(1, 4, 5))


@pytest.mark.parametrize("name", ["linear", "normalized-exp", "qlstm-reversed", "mamba", "mamba2"])
def test_long_phi_matches_product_loop_across_row_blocks(name):
    """L larger than a row sub-block: the columns before it go through the factored product."""
    layer = _fresh(name)
    u = _u(layer.config["d_model"], length=40, seed=11)
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(layer, u)), ssmctl.materialize_ref(layer, u),
                               rtol=1e-10, atol=1e-14)


def test_phi_with_transitions_that_are_exactly_zero_or_negative():
    layer = _fresh("mamba")
    layer.params["mixer.A_log"] = layer.params["mixer.A_log"] + 9.0  # exp(Δ·A) underflows to 0 in float32
    u = _u(8, length=40, seed=12)
    lam = np.asarray(layer.ltv(u).lam)
    assert (lam == 0).any() and (lam > 0).any()
    phi = np.asarray(ssmctl.materialize(layer, u))
    assert np.isfinite(phi).all()
    np.testing.assert_allclose(phi, ssmctl.materialize_ref(layer, u), rtol=1e-10, atol=1e-14)
    softmax = _fresh("softmax")  # odd Taylor orders: truncated η_i and Λ_i can be negative
    us = _u(8, length=30, scale=3.0, seed=13)
    system = ssmctl.dsf(softmax, us, features=1)
    assert (np.asarray(system.lam) < 0).any()
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(softmax, us, features=1)),
                               ssmctl.materialize_ref(softmax, us, features=1), rtol=1e-9, atol=1e-12)


# --- DSF-level identities (constructed systems) -------------------------------------------------------------

def test_phi_is_invariant_under_a_time_varying_state_rescaling():
    """h → S_i h: Λ_i → S_i Λ_i S_{i−1}⁻¹, B_i → S_i B_i, C_i → C_i S_i⁻¹ realizes the same Φ (Λ' may exceed 1)."""
    system = _fresh("mamba").ltv(_u(8, length=40, seed=14))
    lam, B, C = (np.asarray(x, dtype=np.float64) for x in (system.lam, system.B, system.C))
    scale = np.exp(np.random.default_rng(0).normal(scale=1.0, size=lam.shape))
    prev = np.concatenate([np.ones_like(scale[:, :1]), scale[:, :-1]], axis=1)
    other = LTVSystem(lam=scale * lam / prev, B=scale[..., None] * B, C=C / scale[..., None, :], D=system.D,
                      output="real", inputs=system.inputs)
    assert (np.asarray(other.lam) > 1).any()
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(other)), np.asarray(ssmctl.materialize(system)),
                               rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(other)), ssmctl.materialize_ref(other),
                               rtol=1e-9, atol=1e-13)


def test_unnormalized_linear_attention_is_an_ssd_with_unit_transition():
    """η ≡ 1, W_V = I: Λ_i = I (a = 0, Δ ≡ 1), b_i = φ(k_i), c_i = φ(q_i) give Φ_ij = φ(q_i)·φ(k_j) (j ≤ i)."""
    rng = np.random.default_rng(1)
    b, L, d, n = 2, 30, 3, 4
    phi_q, phi_k = (np.where(x > 0, x + 1, np.exp(x)) for x in rng.standard_normal((2, b, L, n)))  # elu + 1
    ssd = LTVSystem(
        lam=np.ones((b, L, d, n)), B=np.broadcast_to(phi_k[:, :, None, :, None], (b, L, d, n, 1)),
        C=np.broadcast_to(phi_q[:, :, None, None, :], (b, L, d, 1, n)), D=np.zeros((d, 1, 1)), output="real",
    )
    want = np.tril(np.einsum("bin,bjn->bij", phi_q, phi_k))
    np.testing.assert_allclose(np.asarray(ssmctl.materialize(ssd)), np.broadcast_to(want[:, None], (b, d, L, L)),
                               rtol=1e-12)
    v = rng.standard_normal((b, L, d))
    direct = np.stack([sum((phi_q[:, i] * phi_k[:, j]).sum(-1)[:, None] * v[:, j] for j in range(i + 1))
                       for i in range(L)], axis=1)
    np.testing.assert_allclose(np.einsum("bcij,bjc->bic", np.asarray(ssmctl.materialize(ssd)), v), direct,
                               rtol=1e-12)


@pytest.mark.parametrize("name", ["mamba", "mamba2", "recurrent_gemma"])
def test_block_phi_of_loaded_checkpoints_against_transformers_mixers(tmp_path, name):
    """save_pretrained → ssmctl.load → materialize(scope="block"): Φ·x + offset is transformers' own mixer."""
    from .. import ckpt_builders as cb

    hf = cb.hf_model(name, seed=3)
    model = ssmctl.load(cb.save_hf(hf, tmp_path / name))
    d = model.layers[0].config["d_model"]
    u = _u(d, length=11, seed=15)
    for i, layer in enumerate(model.layers):
        phi = ssmctl.materialize(layer, u, scope="block")
        with torch.no_grad():
            if name == "recurrent_gemma":
                dec = hf.model.layers[layer.index]
                out = dec.temporal_block(dec.temporal_pre_norm(u), torch.arange(11)[None].expand(BATCH, 11), None,
                                         use_cache=False)
                out = out[0] if isinstance(out, tuple) else out
            else:
                block = hf.backbone.layers[layer.index]
                out = block.mixer(block.norm(u))
        assert rel_err(_apply_full(phi, phi.inputs), out.double().numpy()) < 1e-5
