"""``ssmctl simulate``: eigenvalues, step sizes and memory of an input-dependent model over a long input.

    ssmctl simulate PATH (--tokens FILE | --text FILE [FILE ...] | --random-tokens L)
                         [--layers 0,3-5] [--device auto|cpu|cuda] [--chunk C] [--threads T] [--json] [--plot FILE]
    torchrun --nproc_per_node N $(which ssmctl) simulate PATH ...     # data-parallel; rank 0 writes the report

PATH is a checkpoint ``ssmctl.load`` reads (e.g. a transformers ``save_pretrained`` folder of Mamba, Mamba-2 or
RecurrentGemma). FILE (``.npy``, or a ``.pt`` / ``.pth`` tensor) holds token ids (integers, (L,) or (batch, L))
or embeddings / a signal (floats, (L, d_model) or (batch, L, d_model)); an ``.npz`` FILE a corpus, one sequence
per array; ``--text`` files go through the checkpoint's own tokenizer, one sequence per file (per non-empty line
with ``--per-line``).

:func:`register` adds it to the main parser's subcommands (``ssmctl/cli/app.py``).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from typing import Any

import numpy as np

from .common import (
    add_eps_option, add_hint_options, add_output_options, add_seed_option, emit, hints_from_args, positive_int,
    write_plot,
)
from ..checkpoints.reader import PICKLE_SUFFIXES, read_pickle
from ..errors import CheckpointError, SsmctlError
from ..analysis.spectrum import format_modulus
from ..report import format_table
from ..engine.driver import partial_note
from ..engine.scan import SCAN_BACKENDS

__all__ = ["register", "cmd_simulate", "load_model", "parse_layers", "read_inputs"]


def parse_layers(text: str | None) -> list[int] | None:
    """'0,2,5-7' → [0, 2, 5, 6, 7] ('-1' is the last layer); None → None (all layers).

    Parameters
    ----------
    text : str or None
        Comma-separated layer indices and ascending ranges ``a-b`` (both ends included); empty parts are
        skipped. Negative single indices are kept as they are (counted from the end by the caller).

    Returns
    -------
    list of int or None
        Indices in the order given (duplicates kept); None when ``text`` is None.

    Raises
    ------
    SsmctlError
        When a part is neither an integer nor an ascending range, or when no index is given at all.
    """
    if text is None:
        return None
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        rng = re.fullmatch(r"(\d+)-(\d+)", part)
        if rng and int(rng[1]) <= int(rng[2]):
            out.extend(range(int(rng[1]), int(rng[2]) + 1))
        elif re.fullmatch(r"-?\d+", part):
            out.append(int(part))
        else:
            raise SsmctlError(f"--layers: cannot read {part!r}; use e.g. '0,2,5-7'")
    if not out:
        raise SsmctlError("--layers is empty")
    return out


def load_model(path: str, hints: dict[str, Any] | None = None) -> Any:
    """The model at ``path`` (``ssmctl.load``), with a clear error for a path that does not exist.

    Parameters
    ----------
    path : str
        Checkpoint file or folder.
    hints : dict or None, default None
        Settings the checkpoint does not record (``ssmctl.load(path, **hints)``).

    Returns
    -------
    Model
        What :func:`ssmctl.load` returns.

    Raises
    ------
    CheckpointError
        When ``path`` does not exist.
    CheckpointError, ShapeError, NonFiniteError
        What :func:`ssmctl.load` raises for a checkpoint it cannot read.
    """
    from ..checkpoints.load import load

    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file or folder")
    return load(path, **(hints or {}))


_EXPECTED_INPUT = ("one array of token ids (integers, (L,) or (batch, L)) or embeddings / a signal (floats, "
                   "(L, d_model) or (batch, L, d_model))")


def read_inputs(path: str) -> np.ndarray | list[np.ndarray]:
    """The input in a ``--tokens`` file: ``.npy``, ``.npz`` (a corpus), or a ``torch.save`` file (``.pt``, ``.pth``).

    ``.pt`` files are read with the weights-only unpickler (nothing in them runs); a list of numbers is taken
    as an array.

    Parameters
    ----------
    path : str
        The file.

    Returns
    -------
    ndarray or list of ndarray
        Integer token ids or float embeddings (bool, integer or float dtype; the shape is checked by
        :func:`ssmctl.simulate`); an ``.npz`` archive gives a corpus, one sequence per array.

    Raises
    ------
    SsmctlError
        A missing file, one that is neither a ``.npy``/``.npz`` file nor a readable ``torch.save`` file, an empty
        ``.npz`` archive, a file holding something other than numeric arrays (a dict, a string, ...).
    """
    where = f"--tokens {path}"
    if not os.path.isfile(path):
        raise SsmctlError(f"{where}: no such file")
    if path.endswith(PICKLE_SUFFIXES):
        import torch

        obj = read_pickle(path)
        if isinstance(obj, torch.Tensor):
            t = obj.detach().cpu()
            arr = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
        elif isinstance(obj, (list, tuple)):
            try:
                arr = np.asarray(obj)
            except ValueError:  # ragged nesting
                arr = np.asarray(None)
            if arr.dtype.kind not in "biuf":
                raise SsmctlError(f"{where}: holds a {type(obj).__name__} that is not a rectangular array of "
                                  f"numbers; expected {_EXPECTED_INPUT}")
        else:
            keys = f" with keys {sorted(map(str, obj))[:8]}" if isinstance(obj, dict) else ""
            raise SsmctlError(f"{where}: holds a {type(obj).__name__}{keys}; expected {_EXPECTED_INPUT}")
    else:
        try:
            arr = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SsmctlError(f"{where}: not a numpy .npy array nor a .pt tensor ({type(exc).__name__}: {exc})") from None
        if isinstance(arr, np.lib.npyio.NpzFile):  # a corpus: one sequence per array, in the file's order
            with arr:
                names = list(arr.files)
                seqs = [arr[k] for k in names]
            if not seqs:
                raise SsmctlError(f"{where}: the .npz file holds no array")
            for name, seq in zip(names, seqs):
                if seq.dtype.kind not in "biuf":
                    raise SsmctlError(f"{where}: array {name!r} holds {seq.dtype} data; expected {_EXPECTED_INPUT}")
            return seqs
    if arr.dtype.kind not in "biuf":
        raise SsmctlError(f"{where}: holds {arr.dtype} data of shape {arr.shape}; expected {_EXPECTED_INPUT}")
    return arr


def _texts(args: argparse.Namespace) -> list[str]:
    texts = []
    for name in args.text:
        if not os.path.isfile(name):
            raise SsmctlError(f"--text {name}: no such file")
        try:
            with open(name, encoding="utf-8") as f:
                body = f.read()
        except UnicodeDecodeError as exc:
            raise SsmctlError(f"--text {name}: not UTF-8 text ({exc})") from None
        parts = [line for line in body.splitlines() if line.strip()] if args.per_line else [body]
        if not any(p.strip() for p in parts):
            raise SsmctlError(f"--text {name}: the file has no text")
        texts.extend(parts)
    return texts


def _inputs(args: argparse.Namespace, model: Any, width: int | None = None) -> Any:
    text = getattr(args, "text", None)  # subcommands sharing this reader without --text (dsf)
    if sum(x is not None for x in (args.tokens, args.random_tokens, text)) != 1:
        raise SsmctlError("give exactly one input: --tokens FILE, --text FILE or --random-tokens L")
    if text is not None:
        from ..checkpoints.tokenizer import tokenize

        return tokenize(args.path, _texts(args))
    if args.tokens is not None:
        return read_inputs(args.tokens)
    L = args.random_tokens
    emb = model.extras.get("embedding")
    rng = np.random.default_rng(args.seed)
    if emb is None:  # no embedding (a fresh init): a unit-RMS Gaussian signal at the first layer's input
        d_model = int(model.layers[0].config["d_model"]) if width is None else width
        return rng.standard_normal((1, L, d_model)).astype(np.float32)
    return rng.integers(0, int(np.shape(emb)[0]), size=(1, L), dtype=np.int64)


_COLUMNS = ["index", "channels", "abs_min", "abs_median", "abs_max", "dt_median", "memory_horizon_median",
            "decay_short", "decay_long"]


def _table(summary: dict[str, Any]) -> str:
    rows = []
    for row in summary["layers"]:
        dec = row["transition_decay"]
        lags, norms = dec["lags"], dec["norm_mean"]
        pick = [k for k, n in enumerate(dec["pairs"]) if n > 0]
        short = min(pick, key=lambda k: abs(lags[k] - 16)) if pick else None
        long = pick[-1] if pick else None
        rows.append({**row,
                     "decay_short": None if short is None else norms[short],
                     "decay_long": None if long is None else norms[long]})
        for key in ("abs_min", "abs_median", "abs_max"):
            if isinstance(row.get(key), float) and math.isfinite(row[key]):
                rows[-1][key] = format_modulus(row[key])  # 0.999999993 reads "1 − 7e-09", not "1"
        rows[-1]["_short_lag"] = None if short is None else lags[short]
        rows[-1]["_long_lag"] = None if long is None else lags[long]
    s_lag = rows[0]["_short_lag"] if rows else None
    l_lag = rows[0]["_long_lag"] if rows else None
    heads = ["layer", "channels", "|Ā| min", "|Ā| median", "|Ā| max", "Δ median", "memory median",
             f"‖ΠĀ‖ lag {s_lag}", f"‖ΠĀ‖ lag {l_lag}"]
    return format_table(rows, _COLUMNS, heads)


def _text(summary: dict[str, Any], partial: str | None) -> str:
    n, batch, total = summary["n_tokens"], summary["batch"], summary["total_tokens"]
    size = f"{n} tokens × batch {batch}" if total == n * batch else \
        f"{batch} sequences, {total:,} tokens (longest {n})"
    lines = [
        f"{summary['family']} from {summary['source']}: {size} "
        f"on {summary['device']} ({summary['scan_backend']} scan), {summary['tokens_per_s']:,.0f} tokens/s",
        _table(summary),
        f"\n|Ā|: over tokens, channels and states; Δ: {summary['dt_meaning']}",
        f"memory: tokens until |Ā|^k = {summary['eps']:g} (frozen time); ‖ΠĀ‖: mean over t and channels of "
        "‖Ā_t ⋯ Ā_{t−lag+1}‖ (slowest mode)",
    ]
    for row in summary["layers"]:
        lines.extend(f"warning: layer {row['index']}: {w}" for w in row.get("warnings", []))
    if partial:
        lines.append(f"note: {partial}")
    return "\n".join(lines)


def cmd_simulate(args: argparse.Namespace) -> int:
    """``ssmctl simulate PATH``: run an input-dependent model over an input and print per-layer statistics.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of the ``simulate`` subcommand (``path``, ``tokens`` or ``random_tokens``, ``layers``,
        ``device``, ``chunk``, ``scan``, ``threads``, ``eps``, ``json``, ``plot``, ``partial``, …).

    Returns
    -------
    int
        Exit status 0.

    Raises
    ------
    SsmctlError
        Bad options (both or neither input given, non-positive ``--threads`` or ``--random-tokens``, an
        unreadable ``--tokens`` file), or a hybrid checkpoint without ``--partial``.
    """
    from ..engine.driver import simulate

    model = load_model(args.path, hints_from_args(args))
    partial = partial_note(model)
    if partial and not args.partial:
        raise SsmctlError(
            f"{args.path}: {partial}; pass --partial to simulate the SSM layers back to back anyway"
        )
    inputs = _inputs(args, model)
    progress = (not args.json) and (not args.no_progress)
    result = simulate(
        model, inputs, layers=parse_layers(args.layers), chunk=args.chunk or "auto", device=args.device,
        eps=args.eps, progress=progress and sys.stderr.isatty(), scan=args.scan,
        threads=args.threads if args.threads is not None else "auto",
    )
    if _rank() != 0:  # torchrun: every rank holds the merged result; rank 0 alone reports it
        return 0
    summary = result.summary()
    if args.plot:
        from ..plot.ltv import simulation_figure

        write_plot(simulation_figure(result), args.plot)
    return emit(args, summary, lambda s: _text(s, partial))


def _rank() -> int:
    import torch

    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``simulate`` subcommand to an ``argparse`` subparsers object.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The ``simulate`` subparser.
    """
    p = subparsers.add_parser(
        "simulate", help="token-by-token eigenvalues, step sizes and memory of an LTV model",
        description="Eigenvalues, step sizes and memory of an input-dependent model (Mamba, Mamba-2, RG-LRU) "
        "over a long input, token by token. Give the input as --tokens FILE, --text FILE or --random-tokens L.",
    )
    p.add_argument("path", help="checkpoint folder or file (anything ssmctl.load reads)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tokens", metavar="FILE",
                     help="input file (.npy array, or .pt/.pth tensor): token ids (int, (L,) or (batch, L)) or "
                     "embeddings / a signal (float, (L, d_model) or (batch, L, d_model)); .npz: a corpus, one "
                     "sequence per array")
    src.add_argument("--text", metavar="FILE", nargs="+",
                     help="UTF-8 text files through the checkpoint's tokenizer, one sequence per file")
    src.add_argument("--random-tokens", metavar="L", type=positive_int,
                     help="L uniformly random token ids (a unit-RMS Gaussian signal for models without embedding)")
    p.add_argument("--per-line", action="store_true", help="with --text: one sequence per non-empty line")
    add_seed_option(p, "--random-tokens")
    p.add_argument("--layers", help="layers to report, e.g. '0,3-5' or '-1' for the last (default: all)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when torch sees it, else cpu), cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--chunk", type=positive_int, metavar="C",
                   help="tokens per chunk, >= 1; results do not depend on it (default: 512 on CPU, sized to "
                   "GPU memory on CUDA)")
    p.add_argument("--scan", choices=SCAN_BACKENDS, default="auto",
                   help="selective scan: native (the compiled CPU kernel), triton (the fused GPU kernel), tensor "
                   "(any device), ssd (Mamba-2's matrix form, any device), or auto (default: SSD for Mamba-2 and "
                   "triton for the others on a GPU, native on the CPU, where they can run; else tensor)")
    p.add_argument("--threads", type=positive_int, metavar="T",
                   help="torch CPU threads (default: chosen from the work's size)")
    add_eps_option(p)
    add_output_options(p, plot="the per-layer figure", json_help="strict JSON on stdout")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    p.add_argument("--partial", action="store_true",
                   help="allow hybrids whose attention / MLP / MoE sub-layers ssmctl does not simulate")
    add_hint_options(p)
    p.set_defaults(func=cmd_simulate)
    return p
