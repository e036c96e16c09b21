"""Checkpoint layouts: which code wrote a state dict, and how its keys map onto ssmctl's families.

A :class:`Layout` describes one way a layer's tensors are stored: the block-prefix regex that finds its
blocks (group ``root`` is the prefix, group ``index`` the layer number), the anchor keys (relative to the
prefix, with their number of dimensions) that identify it, the key renames onto the family's parameter
names (the names of the family's reference checkpoint, relative to one block), and the few settings that
the tensors cannot tell (from ``config.json`` where there is one). :data:`LAYOUTS` is the table, most
specific first; :func:`detect` assigns every block of a checkpoint to a layout and lists the non-SSM
sub-layers of hybrids (attention, MLP, MoE) by name and kind.

Key patterns, one block each (``{i}`` the layer index):

=========================  =========================================================================
layout                     keys
=========================  =========================================================================
mamba_ssm-mamba            backbone.layers.{i}.mixer.{A_log (d_inner,N), dt_proj.*, x_proj.*, ...},
                           backbone.layers.{i}.norm.weight; backbone.embedding.weight (singular)
hf-mamba                   the same under backbone.layers.{i}; backbone.embeddings.weight (transformers
                           Mamba, FalconMamba)
mixer-mamba, mixer-mamba2  layers.{i}.mixer.* / mamba.layers.{i}.mixer.*, embedding.weight (mamba_ssm
                           MixerModel, mambapy Mamba / MambaLM); Mamba-2 needs the ngroups hint
mamba_ssm-mamba2           backbone.layers.{i}.mixer.{A_log (nheads,), dt_bias, D, in_proj, conv1d,
hf-mamba2                  norm, out_proj}; (mamba_ssm: backbone.embedding.weight); also NemotronH's
                           model.layers.{i}.mixer.*
hf-jamba                   model.layers.{i}.mamba.{A_log (d_inner,N), ...}, input_layernorm.weight
                           (+ mamba.{dt,b,c}_layernorm.weight: RMSNorms on δ, B, C)
hf-mamba2-hybrid           model.layers.{i}.mamba.{A_log (nheads,), dt_bias, ...}: Bamba,
                           GraniteMoeHybrid, Zamba2 (mamba layers)
hf-zamba2-hybrid           model.layers.{i}.mamba_decoder.mamba.* (Zamba2 hybrid layers)
hf-falcon-h1               model.layers.{i}.mamba.* without the gated norm, beside self_attn
hf-recurrent-gemma         model.layers.{i}.temporal_block.{rg_lru.recurrent_param, ...},
                           temporal_pre_norm.weight
ssm-benchmark-mamba        blocks.{i}.mamba.{A_log (d_inner,N), ...}, blocks.{i}.norm.* (jsie7/ssm-benchmark
                           and Task-Level-Insights Mamba-1)
ssm-benchmark-ssd          blocks.{i}.mamba.{A_log (nheads,), dt_bias, D, in_proj, out_proj} (no conv)
tli-ssd                    blocks.{i}.mamba.{A_log, dt_bias, D, in_proj, conv1d.*, out_proj} (no gate,
                           no norm; Task-Level-Insights SSD)
tli-ssd-lti                blocks.{i}.mamba.{A, beta, dt_bias, D, in_proj, conv1d.*, out_proj}
                           (Task-Level-Insights SSD_LTI, pseudoLTI)
ssm-benchmark-hawk         blocks.{i}.hawk.{forget_base, gates.*, input.weight, conv.*, output.weight,
                           alpha_log_scale}, blocks.{i}.hawk_norm.gamma
s4-dplr                    …layers.{i}.[layer.]*kernel.{inv_dt, A_real, A_imag, B, C, P, l_kernel}, …D:
                           state-spaces/s4 SSMKernelDPLR in FFTConv (Lightning ``model.layers.{i}.layer.layer.``,
                           SequenceModel ``layers.{i}.layer.layer.``, standalone S4Block ``layers.{i}.layer.``;
                           one layer's own state dict ``kernel.*``, ``D`` is layer 0); dt_transform: a hint
                           unless the Lightning hyper_parameters record it
s4d-diag, s4d-diag-real    the same prefixes with SSMKernelDiag's kernel.{inv_dt, A_real, A_imag, B, C}
s4d-minimal                …layers.{i}.kernel.{log_dt, log_A_real, A_imag, C}, D (models/s4/s4d.py;
                           example.py's ``s4_layers.{i}.``)
zoology-attention,         backbone.layers.{i}.sequence_mixer.{Wqk, Wv, out_proj} (+ Wn): dsf-mqar MHA /
zoology-norm-attention     MHNA (hints: variant, num_heads; MHNA's η is exp)
zoology-qlstm              backbone.layers.{i}.sequence_mixer.{alpha, input, conv, gates, output} (hint: variant)
zoology-s6                 backbone.layers.{i}.mixer.{A_log, x_proj, dt_proj, D, out_proj} (+ Id: S6_2 = SSD),
                           no in_proj/conv; backbone.layers.{i}.norm (LayerNorm, not part of the layer)
ssm-benchmark-attention,   layers.{i}.attention.{Wqk, Wv, out_proj} (+ Wn) (hints: variant, num_heads; or eta)
ssm-benchmark-norm-attention
bare-attention,            a bare mixer's state dict, no prefix, one layer: {Wqk, Wv, out_proj} (+ Wn);
bare-norm-attention,       {alpha, input, conv, gates, output}; {A_log, x_proj, dt_proj, D, out_proj} (+ Id);
bare-qlstm, bare-s6,       ssm-benchmark RGLRU {forget_base, alpha_log_scale, input, conv, gates, output}
bare-rglru
=========================  =========================================================================

Other sub-layers are recognised by their leaf names: ``q_proj``/``k_proj``/``Wqk``/``Wqkv``/``Wvqkn`` (or a
``mixer.in_proj`` with no ``A_log``) → attention; ``gate_proj``/``up_proj``/``fc1``/``grow``/``gate_up_proj``
/``glu.linear`` → mlp; ``router``/``experts`` → moe. A parameter only SSM layers hold (:data:`SSM_LEAVES`:
``A_log``, ``dt_bias``, ``inv_dt`` ...) that no layout claims is an error, never an attention layer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from ..errors import CheckpointError, MissingHintError, require_hint

__all__ = [
    "Layout",
    "LAYOUTS",
    "Block",
    "OtherLayer",
    "Detection",
    "detect",
    "known_layouts",
    "hf_known",
    "EMBEDDING_KEYS",
    "SSM_LEAVES",
]

ShapeOf = Callable[[str], tuple[int, ...]]

# Embedding matrices (vocab, d_model) of the language-model layouts, in the order they are tried.
EMBEDDING_KEYS: tuple[str, ...] = (
    "backbone.embeddings.weight",  # transformers Mamba / Mamba2 / FalconMamba
    "backbone.embedding.weight",  # mamba_ssm MambaLMHeadModel
    "model.embed_tokens.weight",  # RecurrentGemma, Jamba, Bamba, Zamba2, GraniteMoeHybrid, FalconH1
    "model.embeddings.weight",  # NemotronH
    "backbone.embeddings.word_embeddings.weight",
    "encoder.word_embeddings.weight",  # ssm-benchmark / Task-Level-Insights TokenEmbeddings
    "embedding.weight",  # mamba_ssm MixerModel, mambapy MambaLM
)


@dataclass(frozen=True)
class Layout:
    """How one kind of SSM block is stored.

    Attributes
    ----------
    name : str
        Short id shown in reports ("hf-mamba").
    family : str
        The ssmctl family the block becomes (``ssmctl.families()``).
    source : str
        The code that writes this layout.
    block : str
        Regex matched against full keys; group ``root`` is the block prefix, group ``index`` the layer number.
    anchor : dict[str, int or None]
        Keys relative to ``root`` that identify the layout, with their number of dimensions (None: any).
    renames : tuple of (str, str)
        (source prefix relative to ``root``, family prefix). A key is part of the block when it starts with
        a source prefix; its family name replaces that prefix. Keys of the same block under no prefix belong
        to other sub-layers (MLP, attention) or to scaffolding.
    absent : tuple of str
        Keys relative to ``root`` whose presence rules the layout out.
    model_types : tuple of str
        ``config.json`` ``model_type`` values this layout is restricted to (empty: any, or no config).
    top : tuple of str
        Top-level keys the checkpoint must hold (e.g. mamba_ssm's ``backbone.embedding.weight``).
    init : dict
        Hyperparameters of ``ssmctl.init(family, ...)`` that reproduce this producer's initialization
        (used by ``ssmctl compare A init``).
    complete : bool
        False when the stored block lacks parts of the family's reference block (e.g. SSD without the gate):
        such layers give their eigenvalues but no ``ltv(u)``.
    transform : callable, optional
        ``transform(params, config) -> params`` mapping source tensors (renamed) onto the family's parameter
        names and conventions; must accept any subset of the keys.
    infer : callable, optional
        ``infer(shapes, known) -> config`` for layouts the family's ``config_from_params`` cannot read.
    shapes : callable, optional
        ``shapes(config) -> {family key: shape}`` for those layouts (the family's ``param_shapes`` otherwise).
    notes : str
        What the family's model of this block leaves out (reported, never silent).
    embedding_scale : callable, optional
        ``embedding_scale(d_model) -> float``: the factor this producer multiplies its token embeddings by
        before the first layer (None: no scaling). The loader records it as ``extras['embedding_scale']``.
    hints : tuple of str
        Settings (keys of :data:`ssmctl.checkpoints.hints.HINTS`) this producer's tensors do not tell and
        that change the numbers: the loader takes each from the checkpoint's records or a hint, never a
        default, and hands it to ``infer`` in ``known``.
    hint_choices : dict of str to tuple of str
        For a hint whose values depend on the layout (``variant``), the ones this layout takes.
    """

    name: str
    family: str
    source: str
    block: str
    anchor: Mapping[str, int | None]
    renames: tuple[tuple[str, str], ...]
    absent: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    top: tuple[str, ...] = ()
    init: Mapping[str, Any] = field(default_factory=dict)
    complete: bool = True
    transform: Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]] | None = None
    infer: Callable[[Mapping[str, tuple[int, ...]], Mapping[str, Any]], dict[str, Any]] | None = None
    shapes: Callable[[Mapping[str, Any]], dict[str, tuple[int, ...]]] | None = None
    notes: str = ""
    embedding_scale: Callable[[int], float] | None = None
    hints: tuple[str, ...] = ()
    hint_choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def family_key(self, rel: str) -> str | None:
        """The family's name for a key relative to the block prefix (None: not part of this layer).

        Parameters
        ----------
        rel : str
            A checkpoint key with the block prefix removed.

        Returns
        -------
        str or None
            The name under the first matching rename (a prefix rename ending in "." keeps the rest of the key);
            None when no rename matches.
        """
        for src, dst in self.renames:
            if rel == src or (src.endswith(".") and rel.startswith(src)):
                return dst + rel[len(src):]
        return None


@dataclass
class Block:
    """One SSM layer found in a checkpoint: its index, prefix, layout and keys (family name → full key)."""

    index: int
    root: str
    layout: Layout
    keys: dict[str, str]


@dataclass
class OtherLayer:
    """A non-SSM sub-layer of a hybrid (attention, MLP, MoE), listed by name and kind."""

    index: int
    name: str
    kind: str
    keys: list[str]
    sizes: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """``index``, ``name``, ``kind`` and the ``sizes`` entries as one flat dict (what reports list).

        Returns
        -------
        dict
        """
        return {"index": self.index, "name": self.name, "kind": self.kind, **self.sizes}


@dataclass
class Detection:
    """Result of :func:`detect`."""

    blocks: list[Block]
    other_layers: list[OtherLayer]
    embedding_key: str | None
    family: str | None
    layouts: list[str]


def _recurrent_gemma_embedding_scale(d_model: int) -> float:
    """√d_model rounded to bfloat16: transformers' RecurrentGemmaModel keeps its ``normalizer`` buffer in
    bfloat16 (as recurrentgemma does) and multiplies the embeddings by it cast to their dtype, which every
    float dtype it runs in (float32, bfloat16, float16) holds exactly."""
    import torch

    return float(torch.tensor(d_model**0.5, dtype=torch.bfloat16))


# --- research layouts that need help from ssmctl -----------------------------------------------------------
def _hawk_transform(params: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """jsie7/ssm-benchmark Hawk (dense gates, fused input projection) → transformers RG-LRU names.

    forget_base is recurrentgemma's recurrent_param (same sign: log a_t = −c·r_t·softplus(·)); the gates
    ``gates`` (2w, w) hold [forget (= recurrence gate), input] rows as nn.Linear (out, in), while the RG-LRU
    family's block-diagonal gates compute x @ W[h]: one head with W = rowsᵀ. ``input`` (2w, d) holds
    [gate branch (y), x] rows. Hawk's RMSNorm x/‖x‖·γ·√d equals RMSNorm(x)·(1 + (γ − 1)) (no eps).
    """
    import torch

    out: dict[str, Any] = {}
    lru = "temporal_block.rg_lru."
    tb = "temporal_block."
    for key, value in params.items():
        if key == "hawk.forget_base":
            out[lru + "recurrent_param"] = value
        elif key == "hawk.gates.weight":
            w = value.shape[1]
            out[lru + "recurrent_gate_weight"] = value[:w].T.contiguous()[None]
            out[lru + "input_gate_weight"] = value[w:].T.contiguous()[None]
        elif key == "hawk.gates.bias":
            w = value.shape[0] // 2
            out[lru + "recurrent_gate_bias"] = value[:w][None].contiguous()
            out[lru + "input_gate_bias"] = value[w:][None].contiguous()
        elif key == "hawk.input.weight":
            w = value.shape[0] // 2
            out[tb + "linear_y.weight"] = value[:w].contiguous()
            out[tb + "linear_x.weight"] = value[w:].contiguous()
            out[tb + "linear_y.bias"] = torch.zeros(w, dtype=value.dtype)
            out[tb + "linear_x.bias"] = torch.zeros(w, dtype=value.dtype)
        elif key == "hawk.conv.weight":
            out[tb + "conv_1d.weight"] = value
        elif key == "hawk.conv.bias":
            out[tb + "conv_1d.bias"] = value
        elif key == "hawk.output.weight":
            out[tb + "linear_out.weight"] = value
            out[tb + "linear_out.bias"] = torch.zeros(value.shape[0], dtype=value.dtype)
        elif key == "hawk_norm.gamma":
            out["temporal_pre_norm.weight"] = value - 1.0
        elif key == "hawk.alpha_log_scale":
            out["hawk.alpha_log_scale"] = value  # read by the loader: c = −alpha_log_scale
    return out


def _hawk_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    w2, d = shapes["hawk.input.weight"]
    return {"d_model": d, "lru_width": w2 // 2, "num_heads": 1, "d_conv": shapes["hawk.conv.weight"][-1], **known}


def _hawk_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    d, w, k = config["d_model"], config["lru_width"], config["d_conv"]
    return {
        "hawk.forget_base": (w,),
        "hawk.gates.weight": (2 * w, w),
        "hawk.gates.bias": (2 * w,),
        "hawk.input.weight": (2 * w, d),
        "hawk.conv.weight": (w, 1, k),
        "hawk.conv.bias": (w,),
        "hawk.output.weight": (d, w),
        "hawk.alpha_log_scale": (1,),
        "hawk_norm.gamma": (d,),
    }


def _ssd_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """Sizes of a gate-less SSD block (in_proj rows [x, B, C, dt]; no z, no gated norm)."""
    H = shapes["mixer.A_log"][0]
    d_model, d_inner = shapes["mixer.out_proj.weight"]
    rows = shapes["mixer.in_proj.weight"][0]
    g = int(known.get("ngroups", 1))
    gN2 = rows - d_inner - H
    if gN2 <= 0 or gN2 % (2 * g) or d_inner % H:
        raise CheckpointError(
            f"SSD block: in_proj.weight has {rows} rows; expected d_inner + 2·ngroups·d_state + nheads with "
            f"d_inner = {d_inner}, nheads = {H}, ngroups = {g}"
        )
    cfg: dict[str, Any] = {
        "d_model": d_model, "d_inner": d_inner, "nheads": H, "headdim": d_inner // H, "ngroups": g,
        "d_state": gN2 // (2 * g), "dt_limit": (0.0, float("inf")),
        "d_conv": shapes["mixer.conv1d.weight"][-1] if "mixer.conv1d.weight" in shapes else 0,
        "D_has_hdim": shapes.get("mixer.D", (H,)) == (d_inner,),
    }
    cfg.update({k: v for k, v in known.items() if k in ("dt_limit",)})
    return cfg


def _ssd_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    d_model, d_inner, H = config["d_model"], config["d_inner"], config["nheads"]
    gN = config["ngroups"] * config["d_state"]
    shapes = {
        "mixer.dt_bias": (H,),
        "mixer.A_log": (H,),
        "mixer.D": (d_inner,) if config.get("D_has_hdim") else (H,),
        "mixer.in_proj.weight": (d_inner + 2 * gN + H, d_model),
        "mixer.out_proj.weight": (d_model, d_inner),
    }
    if config.get("d_conv"):
        shapes["mixer.conv1d.weight"] = (d_inner + 2 * gN, 1, config["d_conv"])
        shapes["mixer.conv1d.bias"] = (d_inner + 2 * gN,)
    return shapes


def _ssd_lti_transform(params: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Task-Level-Insights SSD_LTI ('pseudoLTI'): Ā = exp(β·A) with A = −softplus(A_param), β a buffer of ones.

    Written in the Mamba-2 family's per-head form Ā = exp(softplus(dt_bias)·(−exp(A_log))) with
    A_log = log softplus(A_param) and dt_bias = softplus⁻¹(β), which is the same number. The layer's own dt_bias
    only scales B (B_t ← Δ_t B_t), so it is kept as ``mixer.dt_bias_B``.
    """
    import torch
    import torch.nn.functional as F

    out = {k: v for k, v in params.items() if k not in ("mixer.A", "mixer.beta", "mixer.dt_bias")}
    if "mixer.A" in params:
        out["mixer.A_log"] = torch.log(F.softplus(params["mixer.A"].double())).to(params["mixer.A"].dtype)
    if "mixer.beta" in params:
        beta = params["mixer.beta"].double()
        out["mixer.dt_bias"] = (beta + torch.log(-torch.expm1(-beta))).to(params["mixer.beta"].dtype)
    if "mixer.dt_bias" in params:
        out["mixer.dt_bias_B"] = params["mixer.dt_bias"]
    return out


def _ssd_lti_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    H = shapes["mixer.A"][0]
    d_model, d_inner = shapes["mixer.out_proj.weight"]
    g = int(known.get("ngroups", 1))
    gN2 = shapes["mixer.in_proj.weight"][0] - d_inner - g  # rows [x, B, C, dt (one per group)]
    if gN2 <= 0 or gN2 % (2 * g) or d_inner % H:
        raise CheckpointError(
            f"SSD_LTI block: in_proj.weight has {shapes['mixer.in_proj.weight'][0]} rows; expected "
            f"d_inner + 2·ngroups·d_state + ngroups with d_inner = {d_inner}, ngroups = {g}"
        )
    return {
        "d_model": d_model, "d_inner": d_inner, "nheads": H, "headdim": d_inner // H, "ngroups": g,
        "d_state": gN2 // (2 * g), "dt_limit": (0.0, float("inf")),
        "d_conv": shapes["mixer.conv1d.weight"][-1] if "mixer.conv1d.weight" in shapes else 0,
    }


def _ssd_lti_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    d_model, d_inner, H, g = config["d_model"], config["d_inner"], config["nheads"], config["ngroups"]
    gN = g * config["d_state"]
    shapes = {
        "mixer.A": (H,), "mixer.beta": (H,), "mixer.dt_bias": (H,), "mixer.D": (H,),
        "mixer.in_proj.weight": (d_inner + 2 * gN + g, d_model), "mixer.out_proj.weight": (d_model, d_inner),
    }
    if config.get("d_conv"):
        shapes["mixer.conv1d.weight"] = (d_inner + 2 * gN, 1, config["d_conv"])
        shapes["mixer.conv1d.bias"] = (d_inner + 2 * gN,)
    return shapes


def _falcon_h1_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    H = shapes["mixer.A_log"][0]
    d_model, d_inner = shapes["mixer.out_proj.weight"]
    conv_dim, _, k = shapes["mixer.conv1d.weight"]
    g = int(known.get("ngroups", 1))
    cfg = {
        "d_model": d_model, "d_inner": d_inner, "nheads": H, "headdim": d_inner // H, "ngroups": g,
        "d_state": (conv_dim - d_inner) // (2 * g), "d_conv": k, "dt_limit": (0.0, float("inf")),
        "D_has_hdim": shapes.get("mixer.D", (H,)) == (d_inner,),
    }
    cfg.update({k2: v for k2, v in known.items() if k2 in ("dt_limit", "d_state")})
    return cfg


def _falcon_h1_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    d_model, d_inner, H = config["d_model"], config["d_inner"], config["nheads"]
    gN = config["ngroups"] * config["d_state"]
    return {
        "mixer.dt_bias": (H,),
        "mixer.A_log": (H,),
        "mixer.D": (d_inner,) if config.get("D_has_hdim") else (H,),
        "mixer.in_proj.weight": (2 * d_inner + 2 * gN + H, d_model),
        "mixer.conv1d.weight": (d_inner + 2 * gN, 1, config["d_conv"]),
        "mixer.out_proj.weight": (d_model, d_inner),
    }


# --- state-spaces/s4 -------------------------------------------------------------------------------------
_S4_TRANSFORMS = ("dt_transform", "real_transform", "imag_transform")


def _s4_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """SSMKernelDPLR sizes from shapes; transforms from the checkpoint's hyperparameters (s4.yaml defaults)."""
    S, K = shapes["kernel.A_real"]
    c, H = shapes["kernel.C"][:2]
    cfg: dict[str, Any] = {
        "d_model": H, "d_state": 2 * K, "n_ssm": S, "rank": shapes["kernel.P"][0], "channels": c,
        "dt_tie": shapes["kernel.inv_dt"][-1] == 1, "real_transform": "exp",
        "imag_transform": "none", "has_l_kernel": "kernel.l_kernel" in shapes,
    }
    cfg.update({k: v for k, v in known.items() if k in _S4_TRANSFORMS})
    return cfg


def _s4_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    H, K, S = config["d_model"], config["d_state"] // 2, config["n_ssm"]
    shapes = {
        "kernel.inv_dt": (H, 1 if config["dt_tie"] else K),
        "kernel.A_real": (S, K),
        "kernel.A_imag": (S, K),
        "kernel.B": (1, S, K, 2),
        "kernel.C": (config["channels"], H, K, 2),
        "kernel.P": (config["rank"], S, K, 2),
        "D": (config["channels"], H),
    }
    if config.get("has_l_kernel"):
        shapes["kernel.l_kernel"] = ()
    return shapes


def _s4d_diag_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """SSMKernelDiag (S4D inside state-spaces/s4's FFTConv) sizes; only what the minimal S4D form can hold."""
    S, K = shapes["kernel.A_real"]
    c, H = shapes["kernel.C"][:2]
    is_real = "kernel.A_imag" not in shapes
    if c != 1:
        raise CheckpointError(f"S4D kernel with {c} output channels (kernel.C {shapes['kernel.C']}): the s4d family holds 1")
    if shapes["kernel.inv_dt"][-1] != 1:
        raise CheckpointError(
            f"S4D kernel with an untied step size (kernel.inv_dt {shapes['kernel.inv_dt']}): the s4d family holds one Δ per channel"
        )
    cfg: dict[str, Any] = {
        "d_model": H, "d_state": K if is_real else 2 * K, "n_ssm": S, "is_real": is_real,
        "discretization": "zoh", "real_transform": "exp", "imag_transform": "none",
    }
    cfg.update({k: v for k, v in known.items() if k in _S4_TRANSFORMS + ("discretization",)})
    return cfg


def _s4d_diag_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    H, S = config["d_model"], config["n_ssm"]
    if config["is_real"]:
        K = config["d_state"]
        return {"kernel.inv_dt": (H, 1), "kernel.A_real": (S, K), "kernel.B": (1, S, K), "kernel.C": (1, H, K), "D": (1, H)}
    K = config["d_state"] // 2
    return {
        "kernel.inv_dt": (H, 1), "kernel.A_real": (S, K), "kernel.A_imag": (S, K), "kernel.B": (1, S, K, 2),
        "kernel.C": (1, H, K, 2), "D": (1, H),
    }


def _s4d_diag_transform(params: dict[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """SSMKernelDiag tensors → the minimal S4D names (the s4d family's layout), same system.

    Δ = dt_transform(inv_dt); A = −real_transform(A_real) − i·imag_transform(A_imag) per copy, copy h mod
    n_ssm for channel h (einops '(v t)'); the minimal form stores log(−Re A) and Im A (any sign) and folds
    B into C (C·B per mode); D (1, H) → (H,).
    """
    import numpy as np
    import torch

    from ..models.s4 import param_transform

    def arr(name: str) -> np.ndarray:
        return params[name].detach().double().numpy() if isinstance(params[name], torch.Tensor) else np.asarray(params[name], dtype=np.float64)

    H, S = config["d_model"], config["n_ssm"]
    which = np.arange(H) % S
    out = {k: v for k, v in params.items() if not (k.startswith("kernel.") or k == "D")}
    dt = param_transform(arr("kernel.inv_dt")[:, 0], config["dt_transform"])
    neg_re = param_transform(arr("kernel.A_real"), config["real_transform"])  # −Re A
    if (neg_re <= 0).any() or (dt <= 0).any():
        from ..errors import UnsupportedSystemError

        raise UnsupportedSystemError(
            f"S4D kernel with Re A >= 0 or Δ <= 0 (real_transform {config['real_transform']!r}, dt_transform "
            f"{config['dt_transform']!r}): the s4d family's form A = −exp(log_A_real) + i·A_imag cannot hold it"
        )
    out["kernel.log_dt"] = np.log(dt)
    out["kernel.log_A_real"] = np.log(neg_re)[which]
    if config["is_real"]:
        out["kernel.C"] = arr("kernel.B")[0][which] * arr("kernel.C")[0]
    else:
        out["kernel.A_imag"] = -param_transform(arr("kernel.A_imag"), config["imag_transform"])[which]
        Bc = arr("kernel.B")[0][which]
        Cc = arr("kernel.C")[0]
        prod = (Bc[..., 0] + 1j * Bc[..., 1]) * (Cc[..., 0] + 1j * Cc[..., 1])
        out["kernel.C"] = np.stack([prod.real, prod.imag], axis=-1)
    out["D"] = arr("D")[0]
    return out


def _s4d_min_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    H = shapes["kernel.log_dt"][0]
    K = shapes["kernel.log_A_real"][1]
    is_real = "kernel.A_imag" not in shapes
    cfg = {"d_model": H, "d_state": K if is_real else 2 * K, "is_real": is_real, "discretization": "zoh"}
    cfg.update({k: v for k, v in known.items() if k == "discretization"})
    return cfg


def _s4d_min_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    H = config["d_model"]
    if config["is_real"]:
        K = config["d_state"]
        return {"kernel.log_dt": (H,), "kernel.log_A_real": (H, K), "kernel.C": (H, K), "D": (H,)}
    K = config["d_state"] // 2
    return {
        "kernel.log_dt": (H,), "kernel.log_A_real": (H, K), "kernel.A_imag": (H, K), "kernel.C": (H, K, 2), "D": (H,),
    }


# FFTConv / S4D module prefix: the residual block's S4Block (model.layers.{i}.layer.layer.), a standalone
# S4Block (….layer.), or the module itself (example.py's s4_layers.{i}.); without a layers.{i}. part, one
# layer's own state_dict() (kernel.*, D; an S4Block's layer.kernel.*), loaded as layer 0.
_S4_ROOT = r"^(?P<root>(?:(?:\w+\.)*?(?:layers|s4_layers)\.(?P<index>\d+)\.)?(?:layer\.)*)kernel\."
_S4_RENAMES = (("kernel.", "kernel."), ("D", "D"), ("output_linear.", "output_linear."))
_S4_NOTE = (
    "state-spaces/s4 settings (dt_transform, real_transform, imag_transform, disc) come from the checkpoint's "
    "hyper_parameters when it has them; without them dt_transform is a hint (its Python classes default to exp, "
    "its Hydra configs to softplus) and the others are the defaults both agree on (exp, none, zoh)."
)


# --- the DSF paper's mixers (dsf-mqar / zoology, ssm-benchmark) --------------------------------------------
_ATTENTION_RENAMES = (("Wqk.", "Wqk."), ("Wv.", "Wv."), ("Wn.", "Wn."), ("out_proj.", "out_proj."))
_QLSTM_RENAMES = (("alpha", "alpha"), ("input.", "input."), ("conv.", "conv."), ("gates.", "gates."),
                  ("output.", "output."))
_S6_KEYS = ("A_log", "Id", "D", "x_proj.", "dt_proj.", "out_proj.")
_ATTENTION_VARIANTS = {"variant": ("softmax", "linear")}
_QLSTM_VARIANTS = {"variant": ("standard", "reversed")}
_DSF_NOTE = "the layer's input is the mixer's input (after the block's norm); the norm and residual are not part of it"


def _count_hint(known: Mapping[str, Any], name: str, why: str) -> int:
    """A positive-integer setting from ``known`` (records or hints), else an error asking for it."""
    value = known.get(name)
    flag = "--" + name.replace("_", "-")
    if value is None:
        raise MissingHintError(f"{why}: pass {name}= to ssmctl.load (CLI: {flag}), a positive integer")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CheckpointError(f"hint {name} ({flag}) must be a positive integer, got {value!r}")
    return value


def _attention_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """Sizes of a dsf-mqar / ssm-benchmark MHA or MHNA mixer; the settings its tensors do not tell, asked for.

    Softmax and linear attention store the same tensors (``lin_att`` is not saved) and no head count; a
    normalized attention's ``Wn`` has one row per head, and ssm-benchmark's ``norm_fn`` (η) is not saved.
    """
    two_dqk, d = shapes["Wqk.weight"]
    cfg: dict[str, Any] = {"d_model": d, "d_qk": two_dqk // 2, "bias": "Wqk.bias" in shapes}
    if "Wn.weight" in shapes:
        cfg.update(variant="normalized", num_heads=shapes["Wn.weight"][0])
        cfg["eta"] = require_hint(known, "eta", ("exp", "softplus", "sigmoid"),
                                  "a normalized-attention state dict does not record its normalizer η (norm_fn)")
    else:
        cfg["variant"] = require_hint(known, "variant", ("softmax", "linear"),
                                      "softmax and linear attention store the same tensors (lin_att is not saved)")
        cfg["num_heads"] = _count_hint(known, "num_heads", "an attention state dict does not record its number "
                                       "of heads (Wqk and Wv have the same shapes for any head count)")
    return cfg


def _zoology_norm_attention_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """dsf-mqar's MHNA has η = exp only: not a hint."""
    return _attention_infer(shapes, {**known, "eta": "exp"})


def _bare_hawk_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    """ssm-benchmark's bare RGLRU: its input is already normed; its conventions differ from RecurrentGemma's."""
    return {**_hawk_infer(shapes, known), "convention": "ssm-benchmark", "pre_norm": False}


def _bare_hawk_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    shapes = _hawk_shapes(config)
    del shapes["hawk_norm.gamma"]
    return shapes


def _attention_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    from ..models import attention

    return attention.param_shapes(dict(config))


def _qlstm_infer(shapes: Mapping[str, tuple[int, ...]], known: Mapping[str, Any]) -> dict[str, Any]:
    two_h, d = shapes["input.weight"]
    variant = require_hint(known, "variant", ("standard", "reversed"),
                           "a qLSTM state dict does not record its forget gate (reversed is not saved; alpha is "
                           "stored either way)")
    return {"d_model": d, "hidden": two_h // 2, "expansion_factor": (two_h // 2) / d,
            "kernel_size": shapes["conv.weight"][-1], "variant": variant}


_BACKBONE = r"^(?P<root>backbone\.layers\.(?P<index>\d+)\.)"
_ZOOLOGY_MIXER = r"^(?P<root>backbone\.layers\.(?P<index>\d+)\.sequence_mixer\.)"
_SSM_BENCHMARK_ATTENTION = r"^(?P<root>layers\.(?P<index>\d+)\.attention\.)"
_BARE = r"^(?P<root>)(?P<index>)"  # a bare mixer's state dict: no prefix, one layer (index 0)
_MODEL = r"^(?P<root>model\.layers\.(?P<index>\d+)\.)"
_ANY_LAYERS = r"^(?P<root>(?:backbone|model)\.layers\.(?P<index>\d+)\.)"
_BLOCKS = r"^(?P<root>blocks\.(?P<index>\d+)\.)"
# mamba_ssm's MixerModel and mambapy's Mamba saved on their own (layers.{i}.), mambapy's MambaLM (mamba.layers.{i}.).
_MIXER_MODEL = r"^(?P<root>(?:mamba\.)?layers\.(?P<index>\d+)\.)"

_MAMBA_MIXER = (("mixer.", "mixer."), ("norm.weight", "norm.weight"))
_HF_HYBRID_MIXER = (("mamba.", "mixer."), ("input_layernorm.weight", "norm.weight"))
_SSM_BENCHMARK_NOTE = (
    "ssm-benchmark / Task-Level-Insights blocks use LayerNorm (weight and bias; pre- or post-norm by config) "
    "where the family's ltv(u) applies RMSNorm with norm.weight: per-token systems from ltv(u) are approximate "
    "(feed the mixer's own input for exact ones); the input-free eigenvalues are exact."
)

#: The layout table, most specific first.
LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "zoology-attention", "attention", "dsf-mqar (zoology) MHA sequence mixer: softmax or linear attention, lin_att not saved",
        _ZOOLOGY_MIXER, {"Wqk.weight": 2, "Wv.weight": 2, "out_proj.weight": 2}, _ATTENTION_RENAMES,
        absent=("Wn.weight",), infer=_attention_infer, shapes=_attention_shapes, notes=_DSF_NOTE,
        hints=("variant", "num_heads"), hint_choices=_ATTENTION_VARIANTS, init={"preset": "mqar"},
    ),
    Layout(
        "zoology-norm-attention", "attention", "dsf-mqar (zoology) MHNA sequence mixer: normalized attention, η = exp",
        _ZOOLOGY_MIXER, {"Wqk.weight": 2, "Wn.weight": 2}, _ATTENTION_RENAMES,
        infer=_zoology_norm_attention_infer, shapes=_attention_shapes, notes=_DSF_NOTE,
        init={"preset": "mqar"},
    ),
    Layout(
        "zoology-qlstm", "qlstm", "dsf-mqar (zoology) qLSTM sequence mixer, reversed not saved",
        _ZOOLOGY_MIXER, {"alpha": 0, "gates.weight": 2, "input.weight": 2}, _QLSTM_RENAMES,
        infer=_qlstm_infer, notes=_DSF_NOTE, hints=("variant",), hint_choices=_QLSTM_VARIANTS, init={"preset": "mqar"},
    ),
    Layout(
        "zoology-s6", "s6", "dsf-mqar (zoology) MambaBlock with the bare S6 or S6_2 (SSD) mixer",
        _BACKBONE, {"mixer.A_log": None, "mixer.x_proj.weight": 2, "mixer.dt_proj.bias": 1}, (("mixer.", ""),),
        absent=("mixer.in_proj.weight", "mixer.conv1d.weight"), notes=_DSF_NOTE + " (a LayerNorm here)",
        init={"preset": "mqar"},
    ),
    Layout(
        "ssm-benchmark-attention", "attention", "jsie7/ssm-benchmark Transformer, MHA in layers.{i}.attention: softmax or linear, lin_att not saved",
        _SSM_BENCHMARK_ATTENTION, {"Wqk.weight": 2, "Wv.weight": 2, "out_proj.weight": 2}, _ATTENTION_RENAMES,
        absent=("Wn.weight",), infer=_attention_infer, shapes=_attention_shapes, notes=_DSF_NOTE,
        hints=("variant", "num_heads"), hint_choices=_ATTENTION_VARIANTS,
    ),
    Layout(
        "ssm-benchmark-norm-attention", "attention", "jsie7/ssm-benchmark Transformer, MHNA in layers.{i}.attention: norm_fn not saved",
        _SSM_BENCHMARK_ATTENTION, {"Wqk.weight": 2, "Wn.weight": 2, "out_proj.weight": 2}, _ATTENTION_RENAMES,
        infer=_attention_infer, shapes=_attention_shapes, notes=_DSF_NOTE, hints=("eta",),
    ),
    Layout(
        "bare-attention", "attention", "a bare MHA mixer state dict (dsf-mqar, ssm-benchmark): softmax or linear, lin_att not saved",
        _BARE, {"Wqk.weight": 2, "Wv.weight": 2, "out_proj.weight": 2}, _ATTENTION_RENAMES, absent=("Wn.weight",),
        infer=_attention_infer, shapes=_attention_shapes, hints=("variant", "num_heads"),
        hint_choices=_ATTENTION_VARIANTS,
    ),
    Layout(
        "bare-norm-attention", "attention", "a bare MHNA mixer state dict (dsf-mqar: η = exp; ssm-benchmark: norm_fn not saved)",
        _BARE, {"Wqk.weight": 2, "Wn.weight": 2, "out_proj.weight": 2}, _ATTENTION_RENAMES,
        infer=_attention_infer, shapes=_attention_shapes, hints=("eta",),
    ),
    Layout(
        "bare-qlstm", "qlstm", "a bare dsf-mqar qLSTM mixer state dict, reversed not saved",
        _BARE, {"alpha": 0, "gates.weight": 2, "input.weight": 2, "conv.weight": 3}, _QLSTM_RENAMES,
        infer=_qlstm_infer, hints=("variant",), hint_choices=_QLSTM_VARIANTS,
    ),
    Layout(
        "bare-rglru", "rglru", "a bare jsie7/ssm-benchmark RGLRU mixer state dict (Hawk's recurrent mixer)",
        _BARE, {"forget_base": 1, "alpha_log_scale": 1, "gates.weight": 2, "input.weight": 2},
        tuple((k, "hawk." + k) for k in ("forget_base", "alpha_log_scale", "input.", "conv.", "gates.", "output.")),
        transform=_hawk_transform, infer=_bare_hawk_infer, shapes=_bare_hawk_shapes,
        init={"preset": "ssm-benchmark"},
        notes="ssm-benchmark conventions: erf-GELU on the gate branch, √(1 − a² + 1e-6), no state reset at token 0",
    ),
    Layout(
        "bare-s6", "s6", "a bare dsf-mqar S6 or S6_2 (SSD) mixer state dict",
        _BARE, {"A_log": None, "x_proj.weight": 2, "dt_proj.bias": 1}, tuple((k, k) for k in _S6_KEYS),
        absent=("in_proj.weight",),
    ),
    Layout(
        "mamba_ssm-mamba", "mamba", "state-spaces/mamba MambaLMHeadModel (pytorch_model.bin + config.json)",
        _BACKBONE, {"mixer.A_log": 2}, _MAMBA_MIXER, top=("backbone.embedding.weight",),
    ),
    Layout(
        "mamba_ssm-mamba2", "mamba2", "state-spaces/mamba MambaLMHeadModel with Mamba2 mixers",
        _BACKBONE, {"mixer.A_log": 1, "mixer.dt_bias": 1}, _MAMBA_MIXER, top=("backbone.embedding.weight",),
        init={"a_init": "mamba_ssm"},
    ),
    Layout(
        "hf-mamba", "mamba", "transformers MambaForCausalLM / FalconMambaForCausalLM (save_pretrained)",
        _BACKBONE, {"mixer.A_log": 2}, _MAMBA_MIXER,
        notes="",
    ),
    Layout(
        "hf-mamba2", "mamba2", "transformers Mamba2ForCausalLM; NemotronH (model.layers.{i}.mixer)",
        _ANY_LAYERS, {"mixer.A_log": 1, "mixer.dt_bias": 1, "mixer.norm.weight": 1}, _MAMBA_MIXER,
        init={"a_init": "transformers"},
    ),
    Layout(
        "mixer-mamba", "mamba", "mamba_ssm MixerModel / mambapy Mamba state dict (layers.{i}.mixer; mambapy "
        "MambaLM: mamba.layers.{i}.mixer)",
        _MIXER_MODEL, {"mixer.A_log": 2}, _MAMBA_MIXER,
    ),
    Layout(
        "mixer-mamba2", "mamba2", "mamba_ssm MixerModel with Mamba2 mixers / mambapy Mamba2 state dict "
        "(layers.{i}.mixer, mamba.layers.{i}.mixer)",
        _MIXER_MODEL, {"mixer.A_log": 1, "mixer.dt_bias": 1, "mixer.norm.weight": 1}, _MAMBA_MIXER,
        init={"a_init": "mamba_ssm"}, hints=("ngroups",),
    ),
    Layout(
        "hf-jamba", "mamba", "transformers JambaForCausalLM (mamba layers)",
        _MODEL, {"mamba.A_log": 2}, _HF_HYBRID_MIXER,
    ),
    Layout(
        "hf-falcon-h1", "mamba2", "transformers FalconH1ForCausalLM (parallel mamba + attention)",
        _MODEL, {"mamba.A_log": 1, "mamba.dt_bias": 1}, _HF_HYBRID_MIXER, model_types=("falcon_h1",),
        complete=False, infer=_falcon_h1_infer, shapes=_falcon_h1_shapes, init={"a_init": "transformers"},
        notes="FalconH1's mamba mixer has μP multipliers and no gated norm by default: eigenvalues only.",
    ),
    Layout(
        "hf-mamba2-hybrid", "mamba2", "transformers Bamba / GraniteMoeHybrid / Zamba2 (mamba layers)",
        _MODEL, {"mamba.A_log": 1, "mamba.dt_bias": 1, "mamba.norm.weight": 1}, _HF_HYBRID_MIXER,
        init={"a_init": "transformers"},
    ),
    Layout(
        "hf-zamba2-hybrid", "mamba2", "transformers Zamba2 hybrid layers (mamba_decoder)",
        _MODEL, {"mamba_decoder.mamba.A_log": 1, "mamba_decoder.mamba.dt_bias": 1},
        (("mamba_decoder.mamba.", "mixer."), ("mamba_decoder.input_layernorm.weight", "norm.weight")),
        init={"a_init": "transformers"},
    ),
    Layout(
        "hf-recurrent-gemma", "rglru", "transformers RecurrentGemmaForCausalLM (recurrent layers)",
        _MODEL, {"temporal_block.rg_lru.recurrent_param": 1},
        (("temporal_block.", "temporal_block."), ("temporal_pre_norm.weight", "temporal_pre_norm.weight")),
        init={"preset": "transformers"}, embedding_scale=_recurrent_gemma_embedding_scale,
    ),
    Layout(
        "ssm-benchmark-mamba", "mamba", "jsie7/ssm-benchmark and Task-Level-Insights Mamba (mamba_ssm Mamba in blocks)",
        _BLOCKS, {"mamba.A_log": 2}, (("mamba.", "mixer."), ("norm.weight", "norm.weight")),
        notes=_SSM_BENCHMARK_NOTE,
    ),
    Layout(
        "ssm-benchmark-ssd", "mamba2", "jsie7/ssm-benchmark SSD (Mamba-2 without conv, gate or norm)",
        _BLOCKS, {"mamba.A_log": 1, "mamba.dt_bias": 1}, (("mamba.", "mixer."),), absent=("mamba.conv1d.weight",),
        complete=False, infer=_ssd_infer, shapes=_ssd_shapes,
        notes="SSD without gate and gated norm (in_proj rows [x, B, C, dt]): eigenvalues only.",
    ),
    Layout(
        "tli-ssd", "mamba2", "Task-Level-Insights SSD (Mamba-2 with conv, without gate or norm)",
        _BLOCKS, {"mamba.A_log": 1, "mamba.dt_bias": 1, "mamba.conv1d.weight": 3}, (("mamba.", "mixer."),),
        complete=False, infer=_ssd_infer, shapes=_ssd_shapes,
        notes="SSD without gate and gated norm (in_proj rows [x, B, C, dt]): eigenvalues only.",
    ),
    Layout(
        "tli-ssd-lti", "mamba2", "Task-Level-Insights SSD_LTI (pseudoLTI: Ā = exp(−softplus(A)·β), input-free)",
        _BLOCKS, {"mamba.A": 1, "mamba.beta": 1}, (("mamba.", "mixer."),),
        complete=False, infer=_ssd_lti_infer, shapes=_ssd_lti_shapes, transform=_ssd_lti_transform,
        notes="Task-Level-Insights pseudo-LTI SSD: its Ā = exp(−softplus(A)·β) does not depend on the input, so "
        "the 'dt_bias' eigenvalues are the layer's only ones (shown in the Mamba-2 per-head form).",
    ),
    Layout(
        "ssm-benchmark-hawk", "rglru", "jsie7/ssm-benchmark Hawk / Griffin (RG-LRU with dense gates)",
        _BLOCKS, {"hawk.forget_base": 1, "hawk.gates.weight": 2},
        (("hawk.", "hawk."), ("hawk_norm.gamma", "hawk_norm.gamma")),
        transform=_hawk_transform, infer=_hawk_infer, shapes=_hawk_shapes, init={"preset": "ssm-benchmark"},
        notes="Hawk: GELU (erf) on the gate branch where RG-LRU uses tanh-GELU, √(1 − a² + 1e-6), no state "
        "reset at token 0, one dense gate head: ltv(u) is exact up to these; eigenvalues are exact.",
    ),
    Layout(
        "s4-dplr", "s4", "state-spaces/s4 S4 (SSMKernelDPLR in FFTConv; Lightning .ckpt, SequenceModel, standalone S4Block)",
        _S4_ROOT, {"kernel.P": 4, "kernel.A_real": 2, "kernel.C": 4}, _S4_RENAMES,
        infer=_s4_infer, shapes=_s4_shapes, notes=_S4_NOTE, hints=("dt_transform",),
    ),
    Layout(
        "s4d-diag", "s4d", "state-spaces/s4 S4D (SSMKernelDiag in FFTConv, mode diag)",
        _S4_ROOT, {"kernel.A_real": 2, "kernel.inv_dt": 2, "kernel.C": 4}, _S4_RENAMES, absent=("kernel.P",),
        infer=_s4d_diag_infer, shapes=_s4d_diag_shapes, transform=_s4d_diag_transform, notes=_S4_NOTE, hints=("dt_transform",),
    ),
    Layout(
        "s4d-diag-real", "s4d", "state-spaces/s4 S4D-Real (SSMKernelDiag is_real)",
        _S4_ROOT, {"kernel.A_real": 2, "kernel.inv_dt": 2, "kernel.C": 3}, _S4_RENAMES,
        absent=("kernel.P", "kernel.A_imag"),
        infer=_s4d_diag_infer, shapes=_s4d_diag_shapes, transform=_s4d_diag_transform, notes=_S4_NOTE, hints=("dt_transform",),
        init={"variant": "real", "is_real": True},
    ),
    Layout(
        "s4d-minimal", "s4d", "state-spaces/s4 minimal S4D (models/s4/s4d.py, example.py)",
        _S4_ROOT, {"kernel.log_dt": 1, "kernel.log_A_real": 2}, _S4_RENAMES,
        infer=_s4d_min_infer, shapes=_s4d_min_shapes,
    ),
)


#: Family parameter names that only an SSM block of that family holds: a block prefix with some of them but
#: without the layout's anchors is a damaged SSM layer (an error), not a layer of another kind.
SIGNATURES: dict[str, tuple[str, ...]] = {
    "mamba": ("mixer.A_log", "mixer.D", "mixer.dt_proj.", "mixer.x_proj.", "mixer.conv1d."),
    "mamba2": ("mixer.A_log", "mixer.D", "mixer.dt_bias", "mixer.conv1d.", "mixer.beta"),
    "rglru": ("temporal_block.rg_lru.", "temporal_block.conv_1d.", "hawk."),
    "s4": ("kernel.",),
    "s4d": ("kernel.",),
}


def _signature_hits(layout: Layout, root: str, keys: Iterable[str]) -> list[str]:
    sig = SIGNATURES.get(layout.family, ())
    hits = []
    for k in keys:
        if k.startswith(root):
            fam = layout.family_key(k[len(root):])
            if fam is not None and any(fam == s or (s.endswith(".") and fam.startswith(s)) for s in sig):
                hits.append(k)
    return hits


def known_layouts() -> list[str]:
    """Names and sources of every layout, for error messages and docs."""
    return [f"{lay.name} ({lay.source})" for lay in LAYOUTS]


# --- config.json → the settings tensors cannot tell ----------------------------------------------------
def _first(cfg: Mapping[str, Any], *names: str) -> Any:
    for n in names:
        if cfg.get(n) is not None:
            return cfg[n]
    return None


def hf_known(family: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Family settings stated by a ``config.json`` (transformers or mamba_ssm); only what is there.

    Sizes are included so that every tensor is checked against the config; ``ngroups`` (Mamba-2) and the
    norm eps cannot be read from tensors at all.

    Parameters
    ----------
    family : str
        The detected family; ``"mamba"``, ``"mamba2"`` and ``"rglru"`` read their own settings, every family
        reads ``d_model`` and ``eps``.
    config : mapping
        The parsed ``config.json`` (mamba_ssm's nested ``ssm_cfg`` included); empty gives ``{}``.

    Returns
    -------
    dict
        Family config names → values, for the names whose config entry exists and is not None or
        ``"auto"`` (the first of each name's aliases wins); ``dt_limit`` as a tuple of floats.
    """
    if not config:
        return {}
    merged = {**config, **(config.get("ssm_cfg") or {})}  # mamba_ssm nests the mixer settings in ssm_cfg
    hybrid = config.get("model_type") not in (None, "mamba", "mamba2", "falcon_mamba", "recurrent_gemma")
    names: dict[str, tuple[str, ...]] = {
        "d_model": ("hidden_size", "d_model"),
        "eps": ("layer_norm_epsilon", "rms_norm_eps", "norm_epsilon"),
    }
    if family == "mamba":
        names.update(
            d_state=("state_size", "mamba_d_state", "d_state"),
            d_conv=("conv_kernel", "mamba_d_conv", "d_conv"),
            dt_rank=("time_step_rank", "mamba_dt_rank", "dt_rank"),
            conv_bias=("use_conv_bias", "mamba_conv_bias", "conv_bias"),
            bias=("use_bias", "mamba_proj_bias", "bias"),
        )
    elif family == "mamba2":
        names.update(
            d_state=("state_size", "mamba_d_state", "ssm_state_size", "d_state"),
            ngroups=("n_groups", "mamba_n_groups", "mamba_ngroups", "ngroups"),
            # hybrids' num_heads counts attention heads
            nheads=("mamba_n_heads", "n_mamba_heads", "mamba_num_heads") + (() if hybrid else ("num_heads",)),
            headdim=("mamba_d_head", "mamba_headdim", "mamba_head_dim", "headdim") + (() if hybrid else ("head_dim",)),
            d_conv=("conv_kernel", "mamba_d_conv", "d_conv"),
            dt_limit=("time_step_limit", "dt_limit"),
        )
    elif family == "rglru":
        names.update(lru_width=("lru_width",), num_heads=("num_attention_heads",), d_conv=("conv1d_width",))
    out: dict[str, Any] = {}
    for key, candidates in names.items():
        value = _first(merged, *candidates)
        if value is None or value == "auto":
            continue
        out[key] = tuple(_as_float(v) for v in value) if key == "dt_limit" else value
    return out


def _as_float(value: Any) -> float:
    """A config number; transformers ≥ 5 writes non-finite floats as {"__float__": "Infinity"}."""
    if isinstance(value, Mapping) and "__float__" in value:
        return float(value["__float__"])
    return float(value)


# --- detection -------------------------------------------------------------------------------------------
_ATTENTION_LEAVES = re.compile(
    r"^(?P<name>(?:[\w.]*?\.)?)(?P<leaf>q_proj|k_proj|v_proj|o_proj|qkv_proj|query_key_value|Wqk|Wqkv|Wvqkn|Wv|Wn|"
    r"in_proj|in_proj_weight)(?:\.|$)"
)
_MLP_LEAVES = re.compile(
    r"^(?P<name>(?:[\w.]*?\.)?)(?P<leaf>gate_proj|up_proj|down_proj|fc1|fc2|grow|shrink|gate_up_proj|input_linear|"
    r"(?<=glu\.)linear|encoder|decoder)(?:\.|$)"
)
_MOE_LEAVES = re.compile(r"^(?P<name>(?:[\w.]*?\.)?)(?P<leaf>router|experts|gate\.weight)(?:\.|$)")
_LAYER_INDEX = re.compile(r"^(?P<root>(?:[\w]+\.)*?(?:layers|blocks|s4_layers|h)\.(?P<index>\d+)\.)")


def _other_kind(rel: str) -> tuple[str, str] | None:
    """(kind, module name) of a non-SSM key relative to its layer prefix, or None for scaffolding."""
    for kind, pattern in (("moe", _MOE_LEAVES), ("attention", _ATTENTION_LEAVES), ("mlp", _MLP_LEAVES)):
        m = pattern.match(rel)
        if m:
            name = m.group("name").rstrip(".")
            if kind == "attention" and not name:
                name = m.group("leaf").split(".")[0] if "." in m.group("leaf") else ""
            return kind, name
    return None


def _attention_sizes(keys: list[str], shape_of: ShapeOf) -> dict[str, Any]:
    """Sizes of a DSF-style attention module from its projections (what the shapes determine)."""
    leaf = {k.rsplit(".", 2)[-2] + "." + k.rsplit(".", 1)[-1]: k for k in keys}
    sizes: dict[str, Any] = {}
    if "Wqkv.weight" in leaf:  # Task-Level-Insights MHA: rows [q, k (d_qk each), v (d_model)]
        rows, d_model = shape_of(leaf["Wqkv.weight"])
        sizes.update(d_model=d_model, d_qk=(rows - d_model) // 2, variant="softmax or linear (same keys)")
    elif "Wvqkn.weight" in leaf:  # Task-Level-Insights normalized attention: [v, q, k, n (heads)]
        rows, d_model = shape_of(leaf["Wvqkn.weight"])
        offset = next((k for k in keys if k.endswith("inner_attn.offset")), None)
        sizes.update(d_model=d_model, variant="normalized")
        if offset is not None:
            heads = shape_of(offset)[0]
            sizes.update(num_heads=heads, d_qk=(rows - d_model - heads) // 2)
        else:
            sizes["qk_plus_heads"] = rows - d_model  # 2·d_qk + num_heads: not separable from shapes alone
    elif "Wqk.weight" in leaf:  # ssm-benchmark MHA / MHNA
        rows, d_model = shape_of(leaf["Wqk.weight"])
        sizes.update(d_model=d_model, d_qk=rows // 2)
        if "Wn.weight" in leaf:
            sizes.update(num_heads=shape_of(leaf["Wn.weight"])[0], variant="normalized")
        else:
            sizes["variant"] = "softmax or linear (same keys)"
    elif "q_proj.weight" in leaf:
        q_rows, d_model = shape_of(leaf["q_proj.weight"])
        sizes.update(d_model=d_model, q_width=q_rows)
        if "k_proj.weight" in leaf:
            sizes["kv_width"] = shape_of(leaf["k_proj.weight"])[0]
        sizes["variant"] = "softmax"
    return sizes


def detect(keys: Iterable[str], shape_of: ShapeOf, config: Mapping[str, Any] | None = None) -> Detection:
    """Assign every SSM block of a checkpoint to a layout; list the other sub-layers.

    Parameters
    ----------
    keys : iterable of str
        All tensor names.
    shape_of : callable
        ``shape_of(key) -> shape`` (from file headers; nothing is read).
    config : dict, optional
        ``config.json`` of a Hugging Face folder.

    Returns
    -------
    Detection
        ``blocks`` (SSM blocks sorted by layer index), ``other_layers`` (attention, MLP and MoE sub-layers),
        ``embedding_key`` (or None), ``family`` (None when only attention layers were found) and ``layouts``
        (sorted names of the layouts used).

    Raises
    ------
    CheckpointError
        No known layout: the message lists a sample of the keys found and the layouts known. Also a block that
        holds a layout's SSM tensors without its anchors, and a checkpoint mixing SSM families.
    """
    keys = list(keys)
    config = dict(config or {})
    model_type = config.get("model_type")
    key_set = set(keys)
    claimed: dict[str, Block] = {}  # root -> block
    owned: set[str] = set()
    for layout in LAYOUTS:
        if layout.model_types and model_type not in layout.model_types:
            continue
        if layout.top and not all(t in key_set for t in layout.top):
            continue
        pattern = re.compile(layout.block)
        roots: dict[str, int] = {}
        for k in keys:
            m = pattern.match(k)
            if m and m.group("root") not in claimed:
                roots.setdefault(m.group("root"), int(m.group("index") or 0))  # one bare layer: index 0
        for root, index in roots.items():
            if not all(root + rel in key_set and nd in (None, len(shape_of(root + rel)))
                       for rel, nd in layout.anchor.items()):
                continue
            if any(root + rel in key_set for rel in layout.absent):
                continue
            block_keys: dict[str, str] = {}
            for k in keys:
                if k.startswith(root):
                    fam = layout.family_key(k[len(root):])
                    if fam is not None:
                        block_keys[fam] = k
            claimed[root] = Block(index=index, root=root, layout=layout, keys=block_keys)
            owned.update(block_keys.values())
    blocks = sorted(claimed.values(), key=lambda b: b.index)
    _refuse_damaged_blocks(blocks, keys, key_set, claimed)
    families = sorted({b.layout.family for b in blocks})
    if len(families) > 1:
        raise CheckpointError(
            f"checkpoint mixes SSM families {families} (layouts {sorted({b.layout.name for b in blocks})}); "
            "ssmctl loads one SSM family per model"
        )
    _refuse_unclaimed_ssm_tensors([k for k in keys if k not in owned], keys)
    others = _other_layers([k for k in keys if k not in owned], shape_of)
    if not blocks and not any(o.kind == "attention" for o in others):
        sample = keys[:12]
        raise CheckpointError(
            f"unknown checkpoint layout: no SSM layer matched among {len(keys)} tensors "
            f"(sample: {', '.join(sample)}{', ...' if len(keys) > len(sample) else ''}); known layouts: "
            + "; ".join(known_layouts())
            + (f"; config.json model_type {model_type!r}" if model_type else "")
        )
    embedding = next((k for k in EMBEDDING_KEYS if k in key_set and len(shape_of(k)) == 2), None)
    return Detection(
        blocks=blocks,
        other_layers=others,
        embedding_key=embedding,
        family=families[0] if families else None,
        layouts=sorted({b.layout.name for b in blocks}),
    )


#: Parameter names that only SSM layers hold (last key component): a checkpoint holding one that no layout
#: claimed is an SSM layer ssmctl cannot read, never an attention layer or "no SSM layers".
SSM_LEAVES: frozenset[str] = frozenset({
    "A_log", "dt_bias", "inv_dt", "log_dt", "log_A_real", "A_real", "recurrent_param", "Lambda_re", "nu_log",
    "forget_base",
})


def _refuse_unclaimed_ssm_tensors(unowned: list[str], keys: list[str]) -> None:
    hits = [k for k in unowned if k.rsplit(".", 1)[-1] in SSM_LEAVES]
    if hits:
        raise CheckpointError(
            f"{len(hits)} SSM parameter(s) that no known layout claims ({', '.join(hits[:4])}"
            f"{', ...' if len(hits) > 4 else ''}) among {len(keys)} tensors: an SSM layout ssmctl does not know "
            "or a damaged one; known layouts: " + "; ".join(known_layouts())
        )


def _refuse_damaged_blocks(blocks: list[Block], keys: list[str], key_set: set[str], claimed: Mapping[str, Block]) -> None:
    """A block prefix of a used layout that holds its SSM tensors but not its anchors: an error naming them.

    Without this a layer missing, say, its A_log would silently drop out of the model.
    """
    for layout in {b.layout.name: b.layout for b in blocks}.values():
        pattern = re.compile(layout.block)
        roots = {m.group("root") for k in keys if (m := pattern.match(k)) and m.group("root") not in claimed}
        for root in sorted(roots):
            hits = _signature_hits(layout, root, keys)
            if not hits:
                continue
            missing = [root + rel for rel in layout.anchor if root + rel not in key_set]
            problem = f"lacks {', '.join(missing)}" if missing else "its identifying tensors have other ranks"
            raise CheckpointError(
                f"layer at {root!r} holds {layout.family} tensors ({', '.join(sorted(hits)[:4])}) but {problem} "
                f"(layout {layout.name} expects {', '.join(f'{root}{r} ({n}-d)' for r, n in layout.anchor.items())})"
            )


def _other_layers(keys: list[str], shape_of: ShapeOf) -> list[OtherLayer]:
    found: dict[tuple[int, str], OtherLayer] = {}
    for k in keys:
        m = _LAYER_INDEX.match(k)
        if not m:
            continue
        root, index = m.group("root"), int(m.group("index"))
        rel = k[len(root):]
        hit = _other_kind(rel)
        if hit is None:
            continue
        kind, name = hit
        full = (root + name).rstrip(".")
        entry = found.setdefault((index, full), OtherLayer(index=index, name=full, kind=kind, keys=[]))
        entry.keys.append(k)
        if kind == "moe":
            entry.kind = "moe"
    for entry in found.values():
        # Every tensor under the module belongs to it (e.g. a normalized attention's inner_attn.offset).
        prefix = entry.name + "."
        entry.keys = sorted(set(entry.keys) | {k for k in keys if k.startswith(prefix)})
        if entry.kind == "attention":
            entry.sizes = _attention_sizes(entry.keys, shape_of)
        else:
            entry.sizes = {"parameters": int(sum(_numel(shape_of(k)) for k in entry.keys))}
    # An MLP nested in a MoE module (experts.*) is part of the MoE.
    moe_names = [o.name for o in found.values() if o.kind == "moe"]
    result = [o for o in found.values() if not (o.kind == "mlp" and any(o.name.startswith(n) for n in moe_names))]
    return sorted(result, key=lambda o: (o.index, o.name))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
