"""ssmctl.checkpoints.layouts: layout detection from key names and header shapes (no tensors read)."""

from __future__ import annotations

import pytest

from ssmctl.errors import CheckpointError
from ssmctl.checkpoints.layouts import LAYOUTS, detect, hf_known, known_layouts


def _detect(shapes, config=None):
    return detect(list(shapes), lambda k: shapes[k], config)


def _mamba_block(root, d_inner=8, N=4, mixer="mixer.", norm="norm.weight"):
    return {
        f"{root}{mixer}A_log": (d_inner, N),
        f"{root}{mixer}D": (d_inner,),
        f"{root}{mixer}dt_proj.bias": (d_inner,),
        f"{root}{mixer}in_proj.weight": (2 * d_inner, 4),
        f"{root}{norm}": (4,),
    }


def test_layout_names_unique_and_listed():
    names = [lay.name for lay in LAYOUTS]
    assert len(names) == len(set(names))
    assert all(any(n in entry for entry in known_layouts()) for n in names)


def test_mamba_ssm_vs_transformers_by_embedding_key():
    shapes = {**_mamba_block("backbone.layers.0."), **_mamba_block("backbone.layers.1.")}
    hf = _detect({**shapes, "backbone.embeddings.weight": (10, 4)})
    assert hf.layouts == ["hf-mamba"] and hf.family == "mamba" and hf.embedding_key == "backbone.embeddings.weight"
    ms = _detect({**shapes, "backbone.embedding.weight": (10, 4), "lm_head.weight": (10, 4)})
    assert ms.layouts == ["mamba_ssm-mamba"] and ms.embedding_key == "backbone.embedding.weight"
    assert [b.index for b in ms.blocks] == [0, 1]
    assert ms.blocks[1].keys["mixer.A_log"] == "backbone.layers.1.mixer.A_log"
    assert ms.blocks[0].keys["norm.weight"] == "backbone.layers.0.norm.weight"


def test_anchor_rank_separates_mamba_from_mamba2():
    m2 = {
        "backbone.layers.0.mixer.A_log": (4,),
        "backbone.layers.0.mixer.dt_bias": (4,),
        "backbone.layers.0.mixer.norm.weight": (8,),
    }
    assert _detect(m2).layouts == ["hf-mamba2"]
    m1 = {"backbone.layers.0.mixer.A_log": (8, 4), "backbone.layers.0.mixer.dt_proj.bias": (8,)}
    assert _detect(m1).layouts == ["hf-mamba"]


def test_hybrid_lists_other_layers_with_kinds():
    shapes = {
        **_mamba_block("model.layers.0.", mixer="mamba.", norm="input_layernorm.weight"),
        "model.layers.0.feed_forward.gate_proj.weight": (16, 4),
        "model.layers.0.feed_forward.down_proj.weight": (4, 16),
        "model.layers.1.self_attn.q_proj.weight": (4, 4),
        "model.layers.1.self_attn.k_proj.weight": (2, 4),
        "model.layers.1.self_attn.v_proj.weight": (2, 4),
        "model.layers.1.feed_forward.router.weight": (2, 4),
        "model.layers.1.feed_forward.experts.down_proj": (2, 4, 16),
        "model.layers.1.input_layernorm.weight": (4,),
        "model.embed_tokens.weight": (10, 4),
    }
    det = _detect(shapes)
    assert det.layouts == ["hf-jamba"] and [b.index for b in det.blocks] == [0]
    assert det.blocks[0].keys["norm.weight"] == "model.layers.0.input_layernorm.weight"
    others = {(o.index, o.name): o for o in det.other_layers}
    assert others[(0, "model.layers.0.feed_forward")].kind == "mlp"
    assert others[(1, "model.layers.1.feed_forward")].kind == "moe"
    att = others[(1, "model.layers.1.self_attn")]
    assert att.kind == "attention" and att.sizes["d_model"] == 4 and att.sizes["kv_width"] == 2


def test_attention_only_research_checkpoint():
    shapes = {
        "layers.0.attention.Wvqkn.weight": (4 + 2 * 6 + 2, 4),
        "layers.0.attention.inner_attn.offset": (2,),
        "layers.0.mixer.encoder.weight": (8, 4),
        "layers.1.attention.Wqkv.weight": (4 + 2 * 3, 4),
        "encoder.word_embeddings.weight": (20, 4),
    }
    det = _detect(shapes)
    assert det.blocks == [] and det.family is None
    by_name = {o.name: o for o in det.other_layers}
    norm = by_name["layers.0.attention"]
    assert norm.sizes == {"d_model": 4, "variant": "normalized", "num_heads": 2, "d_qk": 6}
    assert by_name["layers.1.attention"].sizes["d_qk"] == 3
    assert by_name["layers.0.mixer"].kind == "mlp"


def test_unknown_layout_lists_keys_and_layouts():
    shapes = {f"encoder.blocks.{i}.conv.weight": (4, 4) for i in range(20)}
    with pytest.raises(CheckpointError, match=r"unknown checkpoint layout.*sample: encoder\.blocks\.0\.conv\.weight.*\.\.\..*known layouts: .*hf-mamba.*s4-dplr"):
        _detect(shapes)


def test_mixed_families_refused():
    shapes = {
        **_mamba_block("backbone.layers.0."),
        "backbone.layers.1.mixer.A_log": (4,),
        "backbone.layers.1.mixer.dt_bias": (4,),
        "backbone.layers.1.mixer.norm.weight": (8,),
    }
    with pytest.raises(CheckpointError, match=r"mixes SSM families \['mamba', 'mamba2'\]"):
        _detect(shapes)


def test_s4_prefixes():
    base = {"kernel.A_real": (1, 4), "kernel.A_imag": (1, 4), "kernel.C": (1, 6, 4, 2), "kernel.P": (1, 1, 4, 2),
            "kernel.B": (1, 1, 4, 2), "kernel.inv_dt": (6, 1), "D": (1, 6)}
    for prefix in ("model.layers.{i}.layer.layer.", "layers.{i}.layer.", "s4_layers.{i}."):
        shapes = {prefix.format(i=i) + k: s for i in range(2) for k, s in base.items()}
        det = _detect(shapes)
        assert det.layouts == ["s4-dplr"] and [b.index for b in det.blocks] == [0, 1]
        assert det.blocks[1].keys["kernel.P"] == prefix.format(i=1) + "kernel.P"
        assert det.blocks[1].keys["D"] == prefix.format(i=1) + "D"
    diag = {k: s for k, s in base.items() if k != "kernel.P"}
    assert _detect({"model.layers.0.layer.layer." + k: s for k, s in diag.items()}).layouts == ["s4d-diag"]


def test_hf_known_reads_config_json_names():
    cfg = {"model_type": "mamba2", "hidden_size": 64, "state_size": 8, "n_groups": 2, "num_heads": 4,
           "head_dim": 32, "layer_norm_epsilon": 1e-5, "time_step_limit": [0.0, {"__float__": "Infinity"}]}
    known = hf_known("mamba2", cfg)
    assert known == {"d_model": 64, "eps": 1e-5, "d_state": 8, "ngroups": 2, "nheads": 4, "headdim": 32,
                     "dt_limit": (0.0, float("inf"))}
    bamba = {"model_type": "bamba", "hidden_size": 64, "num_attention_heads": 4, "mamba_n_heads": 8,
             "mamba_d_head": 16, "mamba_n_groups": 1, "rms_norm_eps": 1e-6, "head_dim": 99}
    kb = hf_known("mamba2", bamba)
    assert kb["nheads"] == 8 and kb["headdim"] == 16 and kb["eps"] == 1e-6
    ms = {"d_model": 64, "n_layer": 2, "ssm_cfg": {"layer": "Mamba2", "d_state": 16, "ngroups": 1, "headdim": 32}}
    assert hf_known("mamba2", ms) == {"d_model": 64, "d_state": 16, "ngroups": 1, "headdim": 32}
    assert hf_known("mamba", {}) == {}


def test_ssm_benchmark_attention_layers_are_attention_blocks():
    """ssm-benchmark's MHA/MHNA mixers load as attention-family layers (the DSF view); an attention module
    that lacks the mixer's tensors stays an other sub-layer, listed with its sizes."""
    shapes = {
        "layers.0.attention.Wqk.weight": (2 * 8, 16),
        "layers.0.attention.Wv.weight": (16, 16),
        "layers.0.attention.Wn.weight": (4, 16),
        "layers.0.attention.out_proj.weight": (16, 16),
        "layers.1.attention.Wqk.weight": (2 * 8, 16),
        "layers.1.attention.Wv.weight": (16, 16),
        "layers.1.attention.out_proj.weight": (16, 16),
        "layers.2.attention.Wqk.weight": (2 * 8, 16),
        "layers.2.attention.Wv.weight": (16, 16),
    }
    found = _detect(shapes)
    assert found.family == "attention"
    assert found.layouts == ["ssm-benchmark-attention", "ssm-benchmark-norm-attention"]
    assert [b.index for b in found.blocks] == [0, 1]
    assert found.blocks[0].keys["Wn.weight"] == "layers.0.attention.Wn.weight"
    by_index = {o.index: o for o in found.other_layers}
    assert by_index[2].sizes == {"d_model": 16, "d_qk": 8, "variant": "softmax or linear (same keys)"}
