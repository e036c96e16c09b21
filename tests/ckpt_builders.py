"""Checkpoints on disk for the loader tests, written by the real producers where they install here.

transformers models are built from tiny configs (random init) and written with ``save_pretrained``; the
research layouts (mamba_ssm, jsie7/ssm-benchmark, Task-Level-Insights, state-spaces/s4) are state dicts with
the reference code's key names and shapes (see ssmctl/layouts.py for the sources), written with torch.save
or safetensors as those codes do.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import torch

SMALL = dict(hidden_size=32, num_hidden_layers=2, vocab_size=64)

#: transformers (config class, model class, config kwargs) for the SSM models and hybrids.
HF_SPECS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mamba": ("MambaConfig", "MambaForCausalLM", dict(SMALL, state_size=8)),
    "falcon_mamba": ("FalconMambaConfig", "FalconMambaForCausalLM", dict(SMALL, state_size=8)),
    "mamba2": ("Mamba2Config", "Mamba2ForCausalLM", dict(SMALL, state_size=8, num_heads=4, head_dim=16, n_groups=1)),
    "recurrent_gemma": (
        "RecurrentGemmaConfig", "RecurrentGemmaForCausalLM",
        dict(SMALL, num_hidden_layers=3, lru_width=32, num_attention_heads=2, num_key_value_heads=1,
             intermediate_size=64, attention_window_size=16),
    ),
    "jamba": (
        "JambaConfig", "JambaForCausalLM",
        dict(SMALL, num_hidden_layers=4, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             mamba_d_state=8, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2,
             expert_layer_offset=1, num_experts=2),
    ),
    "bamba": (
        "BambaConfig", "BambaForCausalLM",
        dict(SMALL, num_hidden_layers=3, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
             mamba_d_state=8, mamba_n_heads=4, mamba_d_head=16, mamba_n_groups=1, attn_layer_indices=[1]),
    ),
    "zamba2": (
        "Zamba2Config", "Zamba2ForCausalLM",
        dict(SMALL, num_hidden_layers=3, num_attention_heads=4, mamba_d_state=8, n_mamba_heads=4,
             mamba_headdim=16, mamba_ngroups=1, layers_block_type=["mamba", "hybrid", "mamba"],
             intermediate_size=64),
    ),
    "nemotron_h": (
        "NemotronHConfig", "NemotronHForCausalLM",
        dict(SMALL, num_hidden_layers=3, hybrid_override_pattern="M*-", intermediate_size=64,
             num_attention_heads=4, num_key_value_heads=2, ssm_state_size=8, mamba_num_heads=4,
             mamba_head_dim=16, n_groups=1),
    ),
    "granite_moe_hybrid": (
        "GraniteMoeHybridConfig", "GraniteMoeHybridForCausalLM",
        dict(SMALL, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2, mamba_d_state=8,
             mamba_n_heads=4, mamba_d_head=16, mamba_n_groups=1, layer_types=["mamba", "attention"],
             num_local_experts=2),
    ),
    "falcon_h1": (
        "FalconH1Config", "FalconH1ForCausalLM",
        dict(SMALL, mamba_expand=2, mamba_d_ssm=64, intermediate_size=64, num_attention_heads=4,
             num_key_value_heads=2, mamba_d_state=8, mamba_n_heads=4, mamba_d_head=16, mamba_n_groups=1),
    ),
}


def hf_model(name: str, seed: int = 0, **overrides: Any) -> Any:
    """A randomly initialized transformers model of ``HF_SPECS[name]``."""
    import transformers

    cfg_cls, model_cls, kwargs = HF_SPECS[name]
    torch.manual_seed(seed)
    config = getattr(transformers, cfg_cls)(**{**kwargs, **overrides})
    return getattr(transformers, model_cls)(config).eval()


def save_hf(model: Any, folder: Path, **kwargs: Any) -> Path:
    model.save_pretrained(folder, **kwargs)
    return folder


# --- mamba_ssm ---------------------------------------------------------------------------------------------
def mamba_ssm_folder(folder: Path, mixer: str = "Mamba", seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """mamba_ssm's save_pretrained layout: pytorch_model.bin (full state dict, tied lm_head kept) + its
    config.json (d_model, n_layer, ssm_cfg, ...). The mixer tensors come from transformers' identical mixers;
    the embedding key is mamba_ssm's singular ``backbone.embedding.weight``."""
    model = hf_model("mamba" if mixer == "Mamba" else "mamba2", seed=seed)
    sd = {k.replace("backbone.embeddings.", "backbone.embedding."): v.clone() for k, v in model.state_dict().items()}
    sd["lm_head.weight"] = sd["backbone.embedding.weight"]  # tied, and saved by mamba_ssm
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(sd, folder / "pytorch_model.bin")
    cfg = model.config
    ssm_cfg: dict[str, Any] = {"d_state": cfg.state_size}
    if mixer == "Mamba2":
        ssm_cfg.update(layer="Mamba2", headdim=cfg.head_dim, ngroups=cfg.n_groups)
    config = {
        "d_model": cfg.hidden_size, "d_intermediate": 0, "n_layer": cfg.num_hidden_layers,
        "vocab_size": cfg.vocab_size, "ssm_cfg": ssm_cfg, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True,
        "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 8, "tie_embeddings": True,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder, sd


# --- jsie7/ssm-benchmark and Task-Level-Insights -----------------------------------------------------------
def _linear(gen: torch.Generator, out_f: int, in_f: int, bias: bool = True) -> dict[str, torch.Tensor]:
    w = (torch.rand(out_f, in_f, generator=gen) * 2 - 1) / math.sqrt(in_f)
    d = {"weight": w}
    if bias:
        d["bias"] = (torch.rand(out_f, generator=gen) * 2 - 1) / math.sqrt(in_f)
    return d


def _put(sd: dict[str, torch.Tensor], prefix: str, tensors: dict[str, torch.Tensor]) -> None:
    sd.update({f"{prefix}.{k}": v for k, v in tensors.items()})


def _dt_bias(gen: torch.Generator, n: int) -> torch.Tensor:
    dt = torch.exp(torch.rand(n, generator=gen) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3)).clamp(min=1e-4)
    return dt + torch.log(-torch.expm1(-dt))


def ssm_benchmark_mamba(n_blocks: int = 2, d_model: int = 32, d_state: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    """ssm-benchmark models/mamba.py Mamba (version mamba1): mamba_ssm Mamba mixers in ``blocks.{i}.mamba``."""
    import transformers

    torch.manual_seed(seed)
    mixer_model = transformers.MambaModel(
        transformers.MambaConfig(hidden_size=d_model, num_hidden_layers=n_blocks, state_size=d_state, vocab_size=8)
    )
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _put(sd, "linear_encoder", _linear(gen, d_model, 3))
    for i in range(n_blocks):
        for k, v in mixer_model.layers[i].mixer.state_dict().items():
            sd[f"blocks.{i}.mamba.{k}"] = v.clone()
        _put(sd, f"blocks.{i}.glu.linear", _linear(gen, 2 * d_model, d_model))
        sd[f"blocks.{i}.norm.weight"] = torch.ones(d_model)
        sd[f"blocks.{i}.norm.bias"] = torch.zeros(d_model)
        sd[f"blocks.{i}.lambd"] = torch.ones(1)
    _put(sd, "linear_decoder", _linear(gen, 10, d_model))
    return sd


def ssd_block(gen: torch.Generator, d_model: int, d_state: int, expand: int, headdim: int, d_conv: int) -> dict[str, torch.Tensor]:
    """The SSD mixer of ssm-benchmark (d_conv = 0) / Task-Level-Insights (d_conv > 0): in_proj rows
    [x, B, C, dt] (no z), dt_bias, A_log = log U[1, 16], D = 1, optional depthwise conv, out_proj."""
    d_inner = expand * d_model
    H = d_inner // headdim
    out: dict[str, torch.Tensor] = {}
    out["in_proj.weight"] = _linear(gen, d_inner + 2 * d_state + H, d_model, bias=False)["weight"]
    out["dt_bias"] = _dt_bias(gen, H)
    out["A_log"] = torch.log(torch.rand(H, generator=gen) * 15 + 1)
    out["D"] = torch.ones(H)
    if d_conv:
        conv = d_inner + 2 * d_state
        out["conv1d.weight"] = (torch.rand(conv, 1, d_conv, generator=gen) * 2 - 1) / math.sqrt(d_conv)
        out["conv1d.bias"] = (torch.rand(conv, generator=gen) * 2 - 1) / math.sqrt(d_conv)
    out["out_proj.weight"] = _linear(gen, d_model, d_inner, bias=False)["weight"]
    return out


def ssm_benchmark_ssd(n_blocks: int = 2, d_model: int = 32, d_state: int = 16, seed: int = 0, tli: bool = False) -> dict[str, torch.Tensor]:
    """ssm-benchmark Mamba version mamba2 (SSD with headdim = hidden_dim, expand 2, no conv) or, with
    ``tli``, Task-Level-Insights' SSD (headdim = hidden/num_heads, conv 4)."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {}
    _put(sd, "encoder" if tli else "linear_encoder", _linear(gen, d_model, 3))
    for i in range(n_blocks):
        block = ssd_block(gen, d_model, d_state, expand=2, headdim=d_model // 2 if tli else d_model, d_conv=4 if tli else 0)
        _put(sd, f"blocks.{i}.mamba", block)
        sd[f"blocks.{i}.norm.weight"] = torch.ones(d_model)
        sd[f"blocks.{i}.norm.bias"] = torch.zeros(d_model)
    _put(sd, "decoder" if tli else "linear_decoder", _linear(gen, 10, d_model))
    return sd


def tli_ssd_lti(n_blocks: int = 2, d_model: int = 32, d_state: int = 16, num_heads: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    """Task-Level-Insights SSD_LTI (pseudoLTI): A ~ U[−8, −2] per head, buffer beta = 1, dt_bias (scales B),
    in_proj rows [x, B, C, dt per group] (d_inner + 2·N + 1 for one group), conv 4, out_proj."""
    gen = torch.Generator().manual_seed(seed)
    d_inner = 2 * d_model
    sd: dict[str, torch.Tensor] = {}
    _put(sd, "encoder", _linear(gen, d_model, 3))
    for i in range(n_blocks):
        p = f"blocks.{i}.mamba"
        sd[f"{p}.in_proj.weight"] = _linear(gen, d_inner + 2 * d_state + 1, d_model, bias=False)["weight"]
        sd[f"{p}.dt_bias"] = _dt_bias(gen, num_heads)
        sd[f"{p}.D"] = torch.ones(num_heads)
        sd[f"{p}.A"] = torch.rand(num_heads, generator=gen) * 6 - 8
        sd[f"{p}.beta"] = torch.ones(num_heads)
        conv = d_inner + 2 * d_state
        sd[f"{p}.conv1d.weight"] = (torch.rand(conv, 1, 4, generator=gen) * 2 - 1) / 2
        sd[f"{p}.conv1d.bias"] = (torch.rand(conv, generator=gen) * 2 - 1) / 2
        sd[f"{p}.out_proj.weight"] = _linear(gen, d_model, d_inner, bias=False)["weight"]
        sd[f"blocks.{i}.norm.weight"] = torch.ones(d_model)
        sd[f"blocks.{i}.norm.bias"] = torch.zeros(d_model)
    _put(sd, "decoder", _linear(gen, 10, d_model))
    return sd


def init_forget_gate(size: int, a: float = 0.001, b: float = 0.1, lo: float = -9.0, hi: float = -4.323) -> torch.Tensor:
    """ssm-benchmark hawk.py's forget_base init (the 'uniform' option)."""
    x = torch.log(torch.expm1(torch.linspace(a, b, size)))
    x = (x - x.min()) / (x.max() - x.min())
    return x * abs(hi - lo) + lo


def ssm_benchmark_hawk(n_blocks: int = 2, dim: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    """ssm-benchmark models/hawk.py Hawk: ``blocks.{i}.hawk`` (RGLRU, expansion 1), RMSNorm gammas, GatedMLP."""
    gen = torch.Generator().manual_seed(seed)
    hidden = dim
    sd: dict[str, torch.Tensor] = {}
    _put(sd, "linear_encoder", _linear(gen, dim, 3))
    for i in range(n_blocks):
        p = f"blocks.{i}"
        sd[f"{p}.hawk_norm.gamma"] = 1.0 + 0.1 * torch.randn(dim, generator=gen)
        sd[f"{p}.hawk.input.weight"] = torch.randn(2 * hidden, dim, generator=gen) * dim**-0.5
        sd[f"{p}.hawk.conv.weight"] = (torch.rand(hidden, 1, 4, generator=gen) * 2 - 1) / 2
        sd[f"{p}.hawk.conv.bias"] = (torch.rand(hidden, generator=gen) * 2 - 1) / 2
        sd[f"{p}.hawk.gates.weight"] = torch.randn(2 * hidden, hidden, generator=gen) * hidden**-0.5
        sd[f"{p}.hawk.gates.bias"] = torch.randn(2 * hidden, generator=gen) * 0.5
        sd[f"{p}.hawk.forget_base"] = init_forget_gate(hidden) + 0.1 * torch.randn(hidden, generator=gen)
        sd[f"{p}.hawk.output.weight"] = torch.randn(dim, hidden, generator=gen) * hidden**-0.5
        sd[f"{p}.hawk.alpha_log_scale"] = -8 * torch.ones(1)
        sd[f"{p}.hawk_gmlp_norm.gamma"] = torch.ones(dim)
        sd[f"{p}.hawk_gmlp.grow.weight"] = torch.randn(4 * dim, dim, generator=gen) * dim**-0.5
        sd[f"{p}.hawk_gmlp.shrink.weight"] = torch.randn(dim, 2 * dim, generator=gen) * (2 * dim) ** -0.5
    _put(sd, "linear_decoder", _linear(gen, 10, dim))
    return sd


def tli_transformer(n_layers: int = 2, d_model: int = 32, d_qk: int = 16, num_heads: int = 2, normalized: bool = False,
                    seed: int = 0) -> dict[str, torch.Tensor]:
    """Task-Level-Insights models/transformer.py with MHA (``attention.Wqkv``) or normalized attention
    (``attention.Wvqkn`` + ``inner_attn.offset``), MLP mixer, LayerNorm, TokenEmbeddings encoder."""
    gen = torch.Generator().manual_seed(seed)
    sd: dict[str, torch.Tensor] = {"encoder.word_embeddings.weight": torch.randn(20, d_model, generator=gen)}
    for i in range(n_layers):
        p = f"layers.{i}"
        if normalized:
            _put(sd, f"{p}.attention.Wvqkn", _linear(gen, d_model + 2 * d_qk + num_heads, d_model))
            sd[f"{p}.attention.inner_attn.offset"] = torch.linspace(4, 9, num_heads)
        else:
            _put(sd, f"{p}.attention.Wqkv", _linear(gen, 2 * d_qk + d_model, d_model))
        _put(sd, f"{p}.attention.out_proj", _linear(gen, d_model, d_model))
        _put(sd, f"{p}.mixer.encoder", _linear(gen, 2 * d_model, d_model))
        _put(sd, f"{p}.mixer.decoder", _linear(gen, d_model, 2 * d_model))
        sd[f"{p}.norm.weight"] = torch.ones(d_model)
        sd[f"{p}.norm.bias"] = torch.zeros(d_model)
    sd["norm.weight"] = torch.ones(d_model)
    sd["norm.bias"] = torch.zeros(d_model)
    _put(sd, "decoder", _linear(gen, 10, d_model, bias=False))
    return sd


# --- state-spaces/s4 ---------------------------------------------------------------------------------------
def softplus_inv(x: np.ndarray) -> np.ndarray:
    return x + np.log(-np.expm1(-x))


def legs_dplr_half(N: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """HiPPO-LegS in normal-plus-low-rank form, the half with Im Λ < 0 (as state-spaces/s4 keeps it):
    Λ, P̃ = V*P, B̃ = V*B, computed here with numpy from the definitions in models.md."""
    n = np.arange(N)
    A = -np.sqrt(2 * n[:, None] + 1) * np.sqrt(2 * n[None, :] + 1)
    A = np.tril(A, -1) - np.diag(n + 1.0)
    P = np.sqrt(n + 0.5)
    B = np.sqrt(2 * n + 1.0)
    S = A + np.outer(P, P)
    lam_im, V = np.linalg.eigh(-1j * S)
    lam = np.mean(np.diag(S)) + 1j * lam_im
    order = np.argsort(lam.imag)[: N // 2]
    V = V[:, order]
    return lam[order], V.conj().T @ P, V.conj().T @ B


def s4_kernel(H: int, N: int, seed: int = 0, perturb: float = 0.0) -> dict[str, np.ndarray]:
    """SSMKernelDPLR parameters with n_ssm = 1, rank 1, dt_transform softplus (configs/model/layer/s4.yaml):
    inv_dt (H, 1), A_real/A_imag (1, N/2), B (1, 1, N/2, 2), C (1, H, N/2, 2) raw, P (1, 1, N/2, 2).
    ``perturb`` moves A and P off the HiPPO init (a 'trained' layer)."""
    rng = np.random.default_rng(seed)
    lam, P, B = legs_dplr_half(N)
    if perturb:
        lam = lam * (1 + perturb * rng.uniform(-1, 1, lam.shape))
        P = P * (1 + perturb * rng.uniform(-1, 1, P.shape))
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (H, 1)))
    C = (rng.standard_normal((1, H, N // 2)) + 1j * rng.standard_normal((1, H, N // 2))) / np.sqrt(2)
    rv = lambda z: np.stack([z.real, z.imag], axis=-1)  # noqa: E731
    return {
        "inv_dt": softplus_inv(dt),
        "A_real": np.log(-lam.real)[None],
        "A_imag": (-lam.imag)[None],
        "B": rv(B[None, None]),
        "C": rv(C),
        "P": rv(P[None, None]),
        "D": rng.standard_normal((1, H)),
    }


def s4_dense_complex(kernel: dict[str, np.ndarray], h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Channel h of an SSMKernelDPLR in the conjugate-augmented complex basis, as the reference code builds
    it: A = diag([Λ, Λ̄]) − p pᴴ with p = [P; P̄], B = [B; B̄], C = [C, C̄]; Δ = softplus(inv_dt)."""
    c = lambda x: x[..., 0] + 1j * x[..., 1]  # noqa: E731
    lam = -np.exp(kernel["A_real"][0]) - 1j * kernel["A_imag"][0]
    P = c(kernel["P"])[0, 0]
    B = c(kernel["B"])[0, 0]
    C = c(kernel["C"])[0, h]
    lam_full = np.concatenate([lam, lam.conj()])
    p = np.concatenate([P, P.conj()])
    A = np.diag(lam_full) - np.outer(p, p.conj())
    dt = float(np.logaddexp(0.0, kernel["inv_dt"][h, 0]))
    return A, np.concatenate([B, B.conj()]), np.concatenate([C, C.conj()]), dt


def bilinear(A: np.ndarray, B: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    I = np.eye(A.shape[0])
    left = I - dt / 2 * A
    return np.linalg.solve(left, I + dt / 2 * A), np.linalg.solve(left, dt * B)


def s4_c_tilde(kernel: dict[str, np.ndarray], L: int) -> np.ndarray:
    """What the reference's first forward pass stores in kernel.C: C̃ = C(I − Ā^L) per channel, computed in
    the augmented basis and truncated to the first half (the conjugate half is implied)."""
    H = kernel["C"].shape[1]
    out = np.empty_like(kernel["C"])
    for h in range(H):
        A, _, C, dt = s4_dense_complex(kernel, h)
        dA, _ = bilinear(A, np.zeros(A.shape[0]), dt)
        Ct = C @ (np.eye(A.shape[0]) - np.linalg.matrix_power(dA, L))
        half = Ct[: A.shape[0] // 2]
        out[0, h] = np.stack([half.real, half.imag], axis=-1)
    return out


def s4_state_dict(kernel: dict[str, np.ndarray], n_layers: int, prefix: str = "model.layers.{i}.layer.layer.",
                  l_kernel: int | None = 0, d_model: int | None = None, dtype: torch.dtype = torch.float64) -> dict[str, torch.Tensor]:
    """A SequenceLightningModule / SequenceModel state dict: residual blocks holding S4Block → FFTConv.

    float64 by default so that tests can compare with the float64 kernel exactly."""
    H = kernel["C"].shape[1] if d_model is None else d_model
    sd: dict[str, torch.Tensor] = {"encoder.weight": torch.randn(H, 3), "encoder.bias": torch.zeros(H)}
    for i in range(n_layers):
        p = prefix.format(i=i)
        for k, v in kernel.items():
            sd[p + ("D" if k == "D" else f"kernel.{k}")] = torch.as_tensor(np.asarray(v), dtype=dtype)
        if l_kernel is not None:
            sd[p + "kernel.l_kernel"] = torch.tensor(l_kernel)
        block = prefix.format(i=i).rsplit("layer.", 1)[0]
        sd[block + "output_linear.0.weight"] = torch.randn(2 * H, H)
        sd[block + "output_linear.0.bias"] = torch.zeros(2 * H)
        sd[f"model.layers.{i}.norm.weight"] = torch.ones(H)
        sd[f"model.layers.{i}.norm.bias"] = torch.zeros(H)
    sd["decoder.0.output_transform.weight"] = torch.randn(10, H)
    return sd


def s4d_diag_kernel(H: int, N: int, seed: int = 0, dt_transform: str = "softplus") -> dict[str, np.ndarray]:
    """SSMKernelDiag parameters (S4D-Inv, n_ssm 1, B = 1, A = −exp(A_real) − i·A_imag)."""
    rng = np.random.default_rng(seed)
    n = np.arange(N // 2)
    im = (N / np.pi) * (N / (2 * n + 1.0) - 1.0)
    dt = np.exp(rng.uniform(np.log(1e-3), np.log(1e-1), (H, 1)))
    C = (rng.standard_normal((1, H, N // 2)) + 1j * rng.standard_normal((1, H, N // 2))) / np.sqrt(2)
    Bc = np.ones(N // 2) * (1 + 0.3j)
    rv = lambda z: np.stack([z.real, z.imag], axis=-1)  # noqa: E731
    return {
        "inv_dt": softplus_inv(dt) if dt_transform == "softplus" else np.log(dt),
        "A_real": np.full((1, N // 2), np.log(0.5)),
        "A_imag": im[None],
        "B": rv(Bc[None, None]),
        "C": rv(C),
        "D": rng.standard_normal((1, H)),
    }


def s4d_minimal_state_dict(n_layers: int, H: int, N: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """state-spaces/s4 example.py S4Model: ``s4_layers.{i}`` minimal S4D (S4D-Lin), LayerNorms, encoder/decoder."""
    rng = np.random.default_rng(seed)
    sd: dict[str, torch.Tensor] = {"encoder.weight": torch.randn(H, 1), "encoder.bias": torch.zeros(H)}
    for i in range(n_layers):
        p = f"s4_layers.{i}."
        C = rng.standard_normal((H, N // 2, 2)) * np.sqrt(0.5)
        tensors = {
            "kernel.log_dt": rng.uniform(np.log(1e-3), np.log(1e-1), H),
            "kernel.log_A_real": np.log(0.5 * np.ones((H, N // 2))),
            "kernel.A_imag": np.pi * np.tile(np.arange(N // 2), (H, 1)),
            "kernel.C": C,
            "D": rng.standard_normal(H),
            "output_linear.0.weight": rng.standard_normal((2 * H, H, 1)),
            "output_linear.0.bias": np.zeros(2 * H),
        }
        sd.update({p + k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()})
        sd[f"norms.{i}.weight"] = torch.ones(H)
        sd[f"norms.{i}.bias"] = torch.zeros(H)
    sd["decoder.weight"] = torch.randn(10, H)
    sd["decoder.bias"] = torch.zeros(10)
    return sd


# --- Lightning checkpoints ---------------------------------------------------------------------------------
_FAKE_OMEGACONF = {
    "omegaconf/__init__.py": "",
    "omegaconf/base.py": """
        class Metadata:
            def __init__(self, **kw):
                self.__dict__.update(kw)


        class ContainerMetadata(Metadata):
            pass
    """,
    "omegaconf/nodes.py": """
        import typing

        from .base import Metadata


        class AnyNode:
            def __init__(self, value, parent=None):
                self.__dict__.update(
                    {"_val": value, "_metadata": Metadata(ref_type=typing.Any, key=None, optional=True), "_parent": parent}
                )
    """,
    "omegaconf/dictconfig.py": """
        import typing
        from collections import defaultdict

        from .base import ContainerMetadata
        from .nodes import AnyNode


        class DictConfig:
            def __init__(self, content, parent=None):
                self.__dict__["_metadata"] = ContainerMetadata(
                    ref_type=typing.Any, object_type=dict, key_type=typing.Any, element_type=typing.Any,
                    optional=True, flags={}, resolver_cache=defaultdict(dict),
                )
                self.__dict__["_parent"] = parent
                self.__dict__["_content"] = {
                    k: DictConfig(v, self) if isinstance(v, dict) else AnyNode(v, self) for k, v in content.items()
                }

            def __getstate__(self):
                return dict(self.__dict__)

            def __setstate__(self, state):
                self.__dict__.update(state)
    """,
}


def lightning_ckpt(path: Path, state_dict: dict[str, torch.Tensor], hparams: dict[str, Any], workdir: Path) -> Path:
    """A PyTorch Lightning checkpoint as state-spaces/s4's train.py writes it: state_dict plus Lightning's
    bookkeeping and the Hydra config as an OmegaConf DictConfig in ``hyper_parameters``.

    Neither Lightning nor OmegaConf installs here, so stand-in ``omegaconf`` classes with the same module
    paths and pickled state layout (``_content`` / ``_val`` / ``_metadata``) write the same pickle globals.
    """
    pkg = workdir / "fake_omegaconf"
    for rel, text in _FAKE_OMEGACONF.items():
        f = pkg / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text))
    sys.path.insert(0, str(pkg))
    try:
        from omegaconf.dictconfig import DictConfig

        ckpt = {
            "epoch": 9,
            "global_step": 1000,
            "pytorch-lightning_version": "1.9.5",
            "state_dict": collections.OrderedDict(state_dict),
            "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 9}}}},
            "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(0.5)}},
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 1e-3, "weight_decay": 0.0}]}],
            "lr_schedulers": [{"last_epoch": 9}],
            "hparams_name": "config",
            "hyper_parameters": DictConfig(hparams),
        }
        torch.save(ckpt, path)
    finally:
        sys.path.remove(str(pkg))
        for name in [m for m in sys.modules if m == "omegaconf" or m.startswith("omegaconf.")]:
            del sys.modules[name]
    return path


def write_state_dict(sd: dict[str, torch.Tensor], path: Path) -> Path:
    """torch.save for .pt/.pth/.bin, safetensors for .safetensors (contiguous copies)."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    else:
        torch.save(sd, path)
    return path


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if os.path.isdir(path) else os.path.getsize(path)


def mamba_with_tokenizer(folder: Path, words: list[str], hidden_size: int = 16, n_layers: int = 1,
                         seed: int = 0) -> Any:
    """A transformers Mamba saved in ``folder`` with its own tokenizer: a word-level `tokenizers` model over
    ``words`` (one of them "[UNK]"), wrapped in PreTrainedTokenizerFast and saved beside the weights. Returns the
    `tokenizers.Tokenizer`, the independent reference for the ids."""
    import tokenizers
    import torch
    import transformers

    torch.manual_seed(seed)
    cfg = transformers.MambaConfig(vocab_size=len(words), hidden_size=hidden_size, state_size=4,
                                   num_hidden_layers=n_layers)
    transformers.MambaForCausalLM(cfg).save_pretrained(folder)
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return tok
