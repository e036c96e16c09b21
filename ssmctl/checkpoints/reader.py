"""Reading checkpoints from disk, safely: safetensors, or ``torch.load(..., weights_only=True)``.

Nothing in a checkpoint is ever executed. Pickle-based files go through torch's weights-only unpickler with
an explicit allow-list for the few harmless classes PyTorch Lightning / Hydra checkpoints hold (their
hyperparameter containers): OmegaConf classes map to inert stand-ins that only store their state
(:data:`INERT_GLOBALS`, read back with :func:`plain`), Lightning's AttributeDict to ``dict``
(:data:`DICT_GLOBALS`), and the plain types OmegaConf metadata names to themselves (:data:`HARMLESS_GLOBALS`).
A file that needs any other class is refused with a message naming it (:func:`pickle_globals` reads the
names from the opcodes without unpickling). A path that does not exist is an error, never a download.
Safetensors files can be read lazily, tensor by tensor (:class:`TensorStore`).
"""

from __future__ import annotations

import json
import os
import pickle
import pickletools
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from ..errors import CheckpointError
from .settings import checked_mapping

__all__ = ["Checkpoint", "TensorStore", "read_checkpoint", "read_tensor_file", "read_pickle", "pickle_globals", "plain", "INERT_GLOBALS", "DICT_GLOBALS", "HARMLESS_GLOBALS"]

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"


class _Inert:
    """Stand-in for a harmless class in a checkpoint's pickle: keeps its state, runs nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # for SETITEM(S), should a stand-in ever get one
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # list-like subclasses are filled by APPENDS
        self.__dict__.setdefault("values", []).append(value)

    def extend(self, values: Iterable[Any]) -> None:
        self.__dict__.setdefault("values", []).extend(values)

    def __repr__(self) -> str:
        return f"<inert {type(self).__name__}>"


def plain(obj: Any) -> Any:
    """Inert stand-ins (OmegaConf containers and nodes, Namespace) → plain dicts, lists, values.

    OmegaConf pickles a DictConfig/ListConfig as its ``__dict__`` with the children in ``_content`` and a
    node's value in ``_val``; a Namespace carries its attributes as state. (Lightning's AttributeDict
    already loads as a plain dict, see :data:`DICT_GLOBALS`.)

    Parameters
    ----------
    obj : object
        What a checkpoint's pickle held (e.g. Lightning's ``hyper_parameters``), possibly nested.

    Returns
    -------
    object
        The same data with every inert stand-in replaced, recursively; dicts stay dicts, lists and tuples
        become lists, other values are returned as they are.
    """
    if isinstance(obj, _Inert):
        state = obj.state
        if isinstance(state, dict) and "_content" in state:
            return plain(state["_content"])
        if isinstance(state, dict) and "_val" in state:
            return plain(state["_val"])
        if "items" in obj.__dict__:
            return {k: plain(v) for k, v in obj.__dict__["items"].items()}
        if "values" in obj.__dict__:
            return [plain(v) for v in obj.__dict__["values"]]
        if isinstance(state, dict):
            return {k: plain(v) for k, v in state.items() if not str(k).startswith("_")}
        return plain(state) if state is not None else dict(obj.kwargs) or None
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj


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
    "argparse.Namespace",
)

# Lightning's hyperparameter dict subclasses. torch's weights-only unpickler fills only exact dicts, so these
# names load as plain ``dict``: same content, no Lightning, nothing run.
DICT_GLOBALS: tuple[str, ...] = (
    "pytorch_lightning.utilities.parsing.AttributeDict",
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
)


class TensorStore(Mapping[str, Any]):
    """A checkpoint's tensors by name, read from disk only when asked for.

    Safetensors files are opened once (their headers give every name, shape and dtype) and a tensor is read
    when it is indexed, so analyses that need a few small tensors per layer never load the large
    projections. Tensors from pickle-based files are held as torch returned them (memory-mapped where the
    file is a zip archive). Indexing returns a new read each time; nothing is cached here.
    """

    def __init__(self) -> None:
        self._eager: dict[str, Any] = {}
        self._lazy: dict[str, tuple[Any, str]] = {}  # name -> (safe_open handle, file)

    def add_tensors(self, tensors: Mapping[str, Any]) -> None:
        """Hold tensors already in memory (from a pickle-based file); they win over lazy ones of the same name.

        Parameters
        ----------
        tensors : mapping of str to torch.Tensor
            Name → tensor.
        """
        self._eager.update(tensors)

    def add_safetensors(self, path: str) -> None:
        """Open a safetensors file and register its tensor names; no tensor data is read.

        Parameters
        ----------
        path : str
            A ``.safetensors`` file.

        Raises
        ------
        CheckpointError
            When the file cannot be opened (corrupt or truncated header).
        """
        from safetensors import safe_open

        try:
            handle = safe_open(path, framework="pt", device="cpu")
            names = list(handle.keys())
        except Exception as exc:  # safetensors raises its own SafetensorError and OSError
            raise CheckpointError(f"cannot read {path}: the file is corrupt or truncated ({type(exc).__name__}: {exc})") from None
        for name in names:
            self._lazy[name] = (handle, path)

    def __getitem__(self, key: str) -> Any:
        if key in self._eager:
            return self._eager[key]
        try:
            handle, path = self._lazy[key]
        except KeyError:
            raise KeyError(key) from None
        try:
            return handle.get_tensor(key)
        except Exception as exc:
            raise CheckpointError(f"cannot read tensor {key!r} from {path}: {type(exc).__name__}: {exc}") from None

    def __iter__(self) -> Iterator[str]:
        yield from self._eager
        yield from (k for k in self._lazy if k not in self._eager)

    def __len__(self) -> int:
        return len(self._eager) + sum(1 for k in self._lazy if k not in self._eager)

    def __contains__(self, key: object) -> bool:
        return key in self._eager or key in self._lazy

    def shape(self, key: str) -> tuple[int, ...]:
        """Shape of tensor ``key`` without reading it.

        Parameters
        ----------
        key : str
            A tensor name of the store.

        Returns
        -------
        tuple of int

        Raises
        ------
        KeyError
            When ``key`` is not in the store.
        """
        if key in self._eager:
            return tuple(self._eager[key].shape)
        handle, _ = self._lazy[key]
        return tuple(handle.get_slice(key).get_shape())

    def dtype(self, key: str) -> str:
        """Storage dtype of ``key`` as a short name ("float32", "bfloat16", ...), without reading it.

        Parameters
        ----------
        key : str
            A tensor name of the store.

        Returns
        -------
        str
            torch's dtype name without the ``torch.`` prefix (safetensors codes translated; unknown codes as
            they are).

        Raises
        ------
        KeyError
            When ``key`` is not in the store.
        """
        if key in self._eager:
            return str(self._eager[key].dtype).removeprefix("torch.")
        handle, _ = self._lazy[key]
        return _SAFETENSORS_DTYPES.get(handle.get_slice(key).get_dtype(), handle.get_slice(key).get_dtype())

    def file_of(self, key: str) -> str | None:
        """The file a lazily read tensor comes from (None for tensors held in memory).

        Parameters
        ----------
        key : str
            A tensor name.

        Returns
        -------
        str or None
            The safetensors path; None for in-memory tensors and unknown names.
        """
        entry = self._lazy.get(key)
        return entry[1] if entry else None


_SAFETENSORS_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
    "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


@dataclass
class Checkpoint:
    """Tensors read from disk, with the config that came with them.

    Attributes
    ----------
    tensors : dict[str, torch.Tensor] or TensorStore
        Flat state dict (Lightning's ``state_dict`` entry unwrapped); a :class:`TensorStore` when read with
        ``lazy=True``.
    config : dict
        ``config.json`` of a Hugging Face folder, else {}.
    path : str
    files : list[str]
        The weight files read.
    extras : dict
        Non-tensor entries (e.g. a Lightning checkpoint's ``hyper_parameters``, as inert objects).
    """

    tensors: Mapping[str, Any]
    config: dict[str, Any]
    path: str
    files: list[str] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)


# Plain Python objects OmegaConf metadata refers to by name (ContainerMetadata.object_type = dict, key_type =
# typing.Any, resolver caches as defaultdict(dict)). Loading them creates a type object or an empty
# container; none of them runs code from the file.
HARMLESS_GLOBALS: tuple[str, ...] = (
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.str",
    "builtins.bool",
    "typing.Any",
    "collections.defaultdict",
)


def _harmless() -> list[Any]:
    import builtins
    import collections
    import typing

    objects = {
        "builtins.dict": builtins.dict,
        "builtins.list": builtins.list,
        "builtins.tuple": builtins.tuple,
        "builtins.int": builtins.int,
        "builtins.float": builtins.float,
        "builtins.str": builtins.str,
        "builtins.bool": builtins.bool,
        "typing.Any": typing.Any,
        "collections.defaultdict": collections.defaultdict,
    }
    return [(objects[name], name) for name in HARMLESS_GLOBALS]


def _safe_globals() -> list[Any]:
    return [(_inert(name), name) for name in INERT_GLOBALS] + [(dict, name) for name in DICT_GLOBALS] + _harmless()


def _load_pickle(path: str) -> Any:
    import torch

    try:
        with torch.serialization.safe_globals(_safe_globals()), warnings.catch_warnings():
            # torch warns about pickle protocols newer than its default; the weights-only unpickler still
            # checks every opcode, so the warning says nothing about safety.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True, mmap=_is_zipfile(path))
    except pickle.UnpicklingError as exc:
        names, parsed = _refused_globals(path)
        if not names and not parsed:
            raise CheckpointError(
                f"cannot read {path}: the file is corrupt or truncated (not a readable pickle: {_short_detail(exc)})"
            ) from None
        raise CheckpointError(
            f"refused to load {path}: unpickling it needs {_describe_refusal(names, exc)}. ssmctl never runs code "
            "from a checkpoint; re-save its state_dict with safetensors (safetensors.torch.save_file) or as a "
            "plain tensor dict (torch.save(model.state_dict(), ...))"
        ) from None
    except Exception as exc:  # noqa: BLE001 — a damaged pickle fails anywhere inside the unpickler
        # (KeyError on a memo id, IndexError, struct.error, RuntimeError from the zip reader, ...): the
        # weights-only unpickler has checked every opcode, so whatever it raised says the bytes are damaged.
        detail = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise CheckpointError(
            f"cannot read {path}: the file is corrupt or truncated ({type(exc).__name__}{': ' + detail if detail else ''})"
        ) from None


def read_pickle(path: str) -> Any:
    """What a ``torch.save`` file holds, read with the weights-only unpickler (nothing in it is executed).

    Parameters
    ----------
    path : str
        A ``.pt`` / ``.pth`` / ``.bin`` / ``.ckpt`` file.

    Returns
    -------
    object
        Tensors, plain containers and numbers (inert stand-ins for the allow-listed hyperparameter classes).

    Raises
    ------
    CheckpointError
        A corrupt or truncated file, or one that needs code outside the allow-list.
    """
    return _load_pickle(path)


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"})
_GET_OPS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_PUT_OPS = frozenset({"PUT", "BINPUT", "LONG_BINPUT"})


def pickle_globals(path: str) -> tuple[list[str], bool]:
    """Every class or function a pickle file references, read from its opcodes without unpickling.

    Zip checkpoints (``torch.save``'s default) are read with torch's own scanner; plain and legacy pickle
    files are walked with :mod:`pickletools` (legacy ``torch.save`` files are several pickles followed by raw
    storage bytes, so the walk stops at the first thing that does not parse).

    Parameters
    ----------
    path : str
        A pickle file (zip or legacy ``torch.save`` format, or a plain pickle). Nothing in it is executed.

    Returns
    -------
    names : list of str
        Dotted names ("module.qualname"), in order of appearance, without repeats.
    parsed : bool
        Whether at least one complete pickle was read (False for a corrupt file).
    """
    if _is_zipfile(path):
        import torch

        try:
            return list(dict.fromkeys(torch.serialization.get_unsafe_globals_in_checkpoint(path))), True
        except Exception:
            return [], False
    names: list[str] = []
    parsed = False
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(0)
        while fh.tell() < size:
            pushed: list[Any] = []  # what each opcode put on the stack, strings kept (enough for STACK_GLOBAL)
            memo: dict[int, Any] = {}
            try:
                for op, arg, _ in pickletools.genops(fh):
                    name = op.name
                    if name in _STRING_OPS:
                        pushed.append(arg)
                    elif name == "GLOBAL":
                        names.append(str(arg).replace(" ", "."))
                        pushed.append(None)
                    elif name == "STACK_GLOBAL":
                        if len(pushed) >= 2 and isinstance(pushed[-2], str) and isinstance(pushed[-1], str):
                            names.append(f"{pushed[-2]}.{pushed[-1]}")
                        else:
                            names.append("<unresolved STACK_GLOBAL>")
                        pushed.append(None)
                    elif name == "MEMOIZE":
                        memo[len(memo)] = pushed[-1] if pushed else None
                    elif name in _PUT_OPS:
                        memo[int(arg)] = pushed[-1] if pushed else None
                    elif name in _GET_OPS:
                        pushed.append(memo.get(int(arg)))
                    elif name not in ("PROTO", "FRAME", "MARK", "STOP"):
                        pushed.append(None)
                parsed = True
            except Exception:  # end of the pickles of a legacy torch file, or a corrupt file
                break
    return list(dict.fromkeys(n.replace("__builtin__.", "builtins.") for n in names)), parsed


def _torch_allowed_globals() -> set[str]:
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        return set(_get_allowed_globals())
    except Exception:  # private API: without it every global is reported, which only lengthens the message
        return set()


def _refused_globals(path: str) -> tuple[list[str], bool]:
    names, parsed = pickle_globals(path)
    allowed = _torch_allowed_globals() | set(INERT_GLOBALS) | set(DICT_GLOBALS) | set(HARMLESS_GLOBALS)
    # Storage classes of legacy files are allowed by torch under their own rules.
    return [n for n in names if n not in allowed and not n.endswith("Storage")], parsed


def _short_detail(exc: Exception) -> str:
    """The informative line of torch's weights-only error (its long text suggests weights_only=False)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keys = ("GLOBAL", "Unsupported", "Can only", "Unsupported operand")
    return next((line for line in lines if any(k in line for k in keys)), lines[0] if lines else type(exc).__name__)


def _describe_refusal(names: list[str], exc: Exception) -> str:
    if names:
        return "code outside the allow-list: " + ", ".join(names)
    return f"objects torch's weights-only unpickler refuses ({_short_detail(exc)})"


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
        if any(not isinstance(k, str) for k in obj):
            obj = {k: v for k, v in obj.items() if isinstance(k, str) or not isinstance(v, torch.Tensor)}
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
    """Read one weight file: (tensors, non-tensor extras).

    Parameters
    ----------
    path : str
        A ``.safetensors`` file, or a pickle (``.pt``, ``.pth``, ``.bin``, ``.ckpt``) read with torch's
        weights-only unpickler (plus the inert stand-ins of :data:`INERT_GLOBALS`).

    Returns
    -------
    tensors : dict of str to torch.Tensor
        The flat state dict (for Lightning checkpoints the ``state_dict`` entry), on the CPU.
    extras : dict
        The other entries of a pickled dict (e.g. ``hyper_parameters``); empty for safetensors.

    Raises
    ------
    CheckpointError
        Unknown suffix, a corrupt or truncated file, a pickle that needs code outside the allow-list, or a
        pickle holding no tensor dict.
    """
    if path.endswith(SAFETENSORS_SUFFIX):
        return _load_safetensors(path), {}
    if path.endswith(PICKLE_SUFFIXES):
        return _unwrap_state_dict(_load_pickle(path), path)
    raise CheckpointError(
        f"unknown checkpoint file type {os.path.basename(path)!r}; known: .safetensors, "
        + ", ".join(PICKLE_SUFFIXES)
        + ", or a Hugging Face folder with config.json"
    )


def _read_json(path: str) -> Any:
    """A JSON file's content; a CheckpointError naming the file when it is not valid UTF-8 JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CheckpointError(f"cannot parse {path}: {type(exc).__name__}: {exc}") from None


def _read_index(folder: str, index_name: str) -> list[str]:
    index = checked_mapping(_read_json(os.path.join(folder, index_name)), f"{index_name} in {folder}")
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(f, str) for f in weight_map.values()):
        raise CheckpointError(f"cannot read {index_name} in {folder}: 'weight_map' must map tensor names to file names")
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


def read_checkpoint(path: str | os.PathLike[str], *, lazy: bool = False) -> Checkpoint:
    """Read a checkpoint file or Hugging Face folder from disk.

    Parameters
    ----------
    path : str or path-like
        A folder (``config.json`` + ``model.safetensors`` / shards / ``pytorch_model.bin``), or one file
        (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, Lightning ``.ckpt``).
    lazy : bool
        Return the tensors as a :class:`TensorStore` that reads safetensors data only when a tensor is
        indexed (headers, names, shapes and dtypes are read now, so a corrupt file still fails here).

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
            config = dict(checked_mapping(_read_json(cfg_path), cfg_path))
    else:
        files, config = [path], {}
    extras: dict[str, Any] = {}
    if lazy:
        store = TensorStore()
        for f in files:
            if f.endswith(SAFETENSORS_SUFFIX):
                store.add_safetensors(f)
            else:
                t, e = read_tensor_file(f)
                store.add_tensors(t)
                extras.update(e)
        return Checkpoint(tensors=store, config=config, path=path, files=files, extras=extras)
    tensors: dict[str, Any] = {}
    for f in files:
        t, e = read_tensor_file(f)
        tensors.update(t)
        extras.update(e)
    return Checkpoint(tensors=tensors, config=config, path=path, files=files, extras=extras)
