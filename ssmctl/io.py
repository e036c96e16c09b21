"""Reading checkpoints from disk, safely: safetensors, or ``torch.load(..., weights_only=True)``.

Nothing in a checkpoint is ever executed. Pickle-based files go through torch's weights-only unpickler; the
few harmless container classes that PyTorch Lightning / Hydra checkpoints hold (their hyperparameter
dictionaries) are mapped to inert stand-ins that only store their state. A file that needs any other class
is refused with a message naming it. A path that does not exist is an error, never a download.
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Iterable

from .errors import CheckpointError

__all__ = ["Checkpoint", "read_checkpoint", "read_tensor_file", "INERT_GLOBALS"]

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


class _Inert:
    """Stand-in for a harmless class in a checkpoint's pickle: keeps its state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict-like subclasses are filled by SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # list-like subclasses are filled by APPENDS
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.__dict__.setdefault("values", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {type(self).__name__}>"


def _inert(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_Inert,), {"__qualname__": name})


# Classes found in training checkpoints of the research code (PyTorch Lightning + Hydra/OmegaConf configs,
# argparse namespaces). They only carry hyperparameters; mapping them to inert stand-ins lets the weights
# load without importing (let alone running) those libraries.
INERT_GLOBALS: tuple[str, ...] = (
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.listconfig.ListConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "argparse.Namespace",
)


@dataclass
class Checkpoint:
    """Tensors read from disk, with the config that came with them.

    Attributes
    ----------
    tensors : dict[str, torch.Tensor]
        Flat state dict (Lightning's ``state_dict`` entry unwrapped).
    config : dict
        ``config.json`` of a Hugging Face folder, else {}.
    path : str
    files : list[str]
        The weight files read.
    extras : dict
        Non-tensor entries (e.g. a Lightning checkpoint's ``hyper_parameters``, as inert objects).
    """

    tensors: dict[str, Any]
    config: dict[str, Any]
    path: str
    files: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


def _safe_globals() -> list[Any]:
    return [(_inert(name), name) for name in INERT_GLOBALS]


def _load_pickle(path: str) -> Any:
    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zipfile(path))
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load {path}: unpickling it needs {_unsafe_globals(path, exc)}. ssmctl never runs code "
            "from a checkpoint; re-save its state_dict with safetensors (safetensors.torch.save_file) or as a "
            "plain tensor dict (torch.save(model.state_dict(), ...))"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: the file is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _unsafe_globals(path: str, exc: Exception) -> str:
    """Name what the weights-only unpickler refused: the classes/functions the pickle references."""
    import torch

    try:
        names = [n for n in torch.serialization.get_unsafe_globals_in_checkpoint(path) if n not in INERT_GLOBALS]
    except Exception:  # not a zip checkpoint: fall back on torch's own message
        names = []
    if names:
        return "code outside the allow-list: " + ", ".join(names)
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line for line in lines if "GLOBAL" in line or "Unsupported" in line or "Can only" in line), "")
    return f"objects torch's weights-only unpickler refuses ({detail or lines[0] if lines else exc})"


def _is_zipfile(path: str) -> bool:
    import zipfile

    return zipfile.is_zipfile(path)


def _load_safetensors(path: str) -> dict[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except Exception as exc:  # safetensors raises its own SafetensorError and OSError
        raise CheckpointError(f"cannot read {path}: the file is corrupt or truncated ({type(exc).__name__}: {exc})") from None


def _unwrap_state_dict(obj: Any, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Find the flat tensor dict inside what torch.load returned (Lightning: obj['state_dict'])."""
    import torch

    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "module"):
            inner = obj.get(key)
            if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner), {k: v for k, v in obj.items() if k != key}
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors, {k: v for k, v in obj.items() if not isinstance(v, torch.Tensor)}
    raise CheckpointError(
        f"{path} holds no tensor dict (found {type(obj).__name__}"
        + (f" with keys {sorted(map(str, obj))[:10]}" if isinstance(obj, dict) else "")
        + "); expected a state_dict or a Lightning checkpoint with a 'state_dict' entry"
    )


def read_tensor_file(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read one weight file: (tensors, non-tensor extras)."""
    if path.endswith(SAFETENSORS_SUFFIX):
        return _load_safetensors(path), {}
    if path.endswith(PICKLE_SUFFIXES):
        return _unwrap_state_dict(_load_pickle(path), path)
    raise CheckpointError(
        f"unknown checkpoint file type {os.path.basename(path)!r}; known: .safetensors, "
        + ", ".join(PICKLE_SUFFIXES)
        + ", or a Hugging Face folder with config.json"
    )


def _read_index(folder: str, index_name: str) -> list[str]:
    with open(os.path.join(folder, index_name), encoding="utf-8") as fh:
        try:
            weight_map = json.load(fh)["weight_map"]
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f"cannot read {index_name} in {folder}: {exc}") from None
    files = sorted(set(weight_map.values()))
    missing = [f for f in files if not os.path.exists(os.path.join(folder, f))]
    if missing:
        raise CheckpointError(f"{index_name} in {folder} lists shards that are missing: {missing}")
    return [os.path.join(folder, f) for f in files]


def _folder_files(folder: str) -> list[str]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if os.path.exists(os.path.join(folder, index_name)):
            return _read_index(folder, index_name)
    for name in ("model.safetensors", "pytorch_model.bin"):
        if os.path.exists(os.path.join(folder, name)):
            return [os.path.join(folder, name)]
    found = sorted(os.listdir(folder))
    raise CheckpointError(
        f"no weights in folder {folder}: expected model.safetensors, a sharded model.safetensors.index.json, or "
        f"pytorch_model.bin; found {found[:20]}"
    )


def read_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read a checkpoint file or Hugging Face folder from disk.

    Parameters
    ----------
    path : str or path-like
        A folder (``config.json`` + ``model.safetensors`` / shards / ``pytorch_model.bin``), or one file
        (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, Lightning ``.ckpt``).

    Returns
    -------
    Checkpoint
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CheckpointError(f"no such file or folder: {path!r} (ssmctl reads local files only; it never downloads)")
    if os.path.isdir(path):
        files = _folder_files(path)
        config: dict[str, Any] = {}
        cfg_path = os.path.join(path, "config.json")
        if os.path.exists(cfg_path):
            with open(cfg_path, encoding="utf-8") as fh:
                try:
                    config = json.load(fh)
                except json.JSONDecodeError as exc:
                    raise CheckpointError(f"cannot parse {cfg_path}: {exc}") from None
    else:
        files, config = [path], {}
    tensors: dict[str, Any] = {}
    extras: dict[str, Any] = {}
    for f in files:
        t, e = read_tensor_file(f)
        tensors.update(t)
        extras.update(e)
    return Checkpoint(tensors=tensors, config=config, path=path, files=files, extras=extras)
