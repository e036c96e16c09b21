"""Stop-gap loader: a transformers ``save_pretrained`` folder (Mamba, Mamba-2, RecurrentGemma) → :class:`Model`.

SUPERSEDED by ``ssmctl.load`` once the checkpoint loader lands: ``ssmctl simulate`` uses this small adapter
only until then. It reads tensors with :func:`ssmctl.io.read_checkpoint` and builds each layer with its
family's ``layer_from_params``; the embedding matrix goes to ``Model.extras['embedding']`` (and
RecurrentGemma's √d_model input scaling to ``Model.extras['embedding_scale']``).
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch

from .errors import CheckpointError
from .models import mamba, mamba2, rglru
from .models.base import Model

__all__ = ["load_hf_folder", "model_from_state_dict"]

_LAYER = re.compile(r"^(?P<prefix>.*?layers)\.(?P<i>\d+)\.(?P<rest>.+)$")


def _layers(tensors: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        m = _LAYER.match(key)
        if m:
            out.setdefault(int(m["i"]), {})[m["rest"]] = value
    return dict(sorted(out.items()))


def _first(tensors: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in tensors:
            return tensors[name]
    return None


def model_from_state_dict(tensors: dict[str, Any], config: dict[str, Any], source: str = "state_dict") -> Model:
    """Build a Mamba / Mamba-2 / RecurrentGemma :class:`Model` from a transformers state dict and config.json.

    Parameters
    ----------
    tensors : dict[str, Tensor]
        ``MambaForCausalLM`` / ``Mamba2ForCausalLM`` / ``RecurrentGemmaForCausalLM`` (or their base models') keys.
    config : dict
        The folder's config.json (``model_type`` picks the family).
    source : str

    Returns
    -------
    Model
        RecurrentGemma: only the recurrent blocks (``extras['partial']`` names what is left out).
    """
    kind = config.get("model_type")
    per_layer = _layers(tensors)
    if not per_layer:
        raise CheckpointError(f"{source}: no '…layers.<i>.…' tensors found")
    extras: dict[str, Any] = {}
    if kind == "mamba":
        eps = float(config.get("layer_norm_epsilon", 1e-5))
        layers = [mamba.layer_from_params(p, {"eps": eps}, index=i) for i, p in per_layer.items()]
        emb = _first(tensors, "backbone.embeddings.weight", "backbone.embedding.weight", "embeddings.weight")
    elif kind == "mamba2":
        eps = float(config.get("layer_norm_epsilon", 1e-5))
        cfg = {"ngroups": int(config.get("n_groups", 1)), "eps": eps, "norm_eps": eps}
        if config.get("time_step_limit") is not None:
            cfg["dt_limit"] = tuple(float(v) for v in config["time_step_limit"])
        layers = [mamba2.layer_from_params(p, cfg, index=i) for i, p in per_layer.items()]
        emb = _first(tensors, "backbone.embeddings.weight", "backbone.embedding.weight", "embeddings.weight")
    elif kind == "recurrent_gemma":
        eps = float(config.get("rms_norm_eps", 1e-6))
        recurrent = {i: p for i, p in per_layer.items() if "temporal_block.rg_lru.recurrent_param" in p}
        if not recurrent:
            raise CheckpointError(f"{source}: no recurrent (RG-LRU) blocks found")
        layers = [rglru.layer_from_params(p, {"eps": eps}, index=i) for i, p in recurrent.items()]
        emb = _first(tensors, "model.embed_tokens.weight", "embed_tokens.weight")
        hidden = int(config.get("hidden_size", layers[0].config["d_model"]))
        # transformers multiplies the embeddings by √hidden_size rounded to bfloat16.
        extras["embedding_scale"] = float(torch.tensor(math.sqrt(hidden), dtype=torch.bfloat16))
        left = sorted(set(per_layer) - set(recurrent))
        extras["partial"] = (
            f"attention blocks (layers {left}) and every block's MLP half are not simulated; "
            "the recurrent blocks run back to back"
        )
        kind = "rglru"
    else:
        raise CheckpointError(
            f"{source}: model_type {kind!r} is not supported by this stop-gap loader "
            "(mamba, mamba2, recurrent_gemma); ssmctl.load will cover more"
        )
    if emb is not None:
        extras["embedding"] = emb
    return Model(family=kind, config=dict(config), layers=layers, source=source, extras=extras)


def load_hf_folder(path: str) -> Model:
    """Read a transformers ``save_pretrained`` folder (see :func:`model_from_state_dict`)."""
    from .io import read_checkpoint

    ckpt = read_checkpoint(path)
    if not ckpt.config:
        raise CheckpointError(f"{path}: no config.json: simulate needs a Hugging Face folder (save_pretrained)")
    return model_from_state_dict(ckpt.tensors, ckpt.config, source=str(path))
