"""Text into token ids with the checkpoint's own tokenizer (transformers' AutoTokenizer, local files only).

    ids = ssmctl.tokenize("path/to/mamba-130m-hf", ["first document", "second document"])
    ssmctl.simulate(model, ids)                 # a corpus: one sequence per text

Nothing is downloaded (``local_files_only=True``) and no code from the checkpoint runs
(``trust_remote_code=False``).
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import numpy as np

from ..errors import CheckpointError, SsmctlError

__all__ = ["load_tokenizer", "tokenize", "TOKENIZER_FILES"]

# the files a transformers tokenizer is saved as (fast: tokenizer.json; slow: a vocabulary or a SentencePiece model)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "spiece.model")


def _folder(source: Any) -> str:
    path = str(getattr(source, "source", source))
    if path == "init" or not os.path.exists(path):
        raise SsmctlError(f"no checkpoint folder to read a tokenizer from ({path!r}): pass the checkpoint's path")
    return path if os.path.isdir(path) else os.path.dirname(path) or "."


def load_tokenizer(source: Any) -> Any:
    """The tokenizer saved in a checkpoint folder (``AutoTokenizer.from_pretrained``, offline).

    Parameters
    ----------
    source : str, path or Model
        The checkpoint folder (or a file in it), or a model ``ssmctl.load`` read from one.

    Returns
    -------
    transformers.PreTrainedTokenizerBase

    Raises
    ------
    SsmctlError
        A model without a folder (a fresh init), transformers missing.
    CheckpointError
        The folder holds no tokenizer file, or transformers cannot read it.
    """
    folder = _folder(source)
    if not any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        raise CheckpointError(f"{folder}: no tokenizer saved there (none of {', '.join(TOKENIZER_FILES)}); "
                              "tokenize the text yourself and pass token ids (--tokens FILE.npy)")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise SsmctlError("reading a tokenizer needs transformers: pip install 'ssmctl[hf]'") from None
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{folder}: transformers cannot read the tokenizer saved there ({exc})") from None


def tokenize(source: Any, texts: Sequence[str]) -> list[np.ndarray]:
    """Each text as token ids of the checkpoint's tokenizer: a corpus for :func:`ssmctl.simulate`.

    Parameters
    ----------
    source : str, path or Model
        As for :func:`load_tokenizer`.
    texts : sequence of str
        One sequence per text (no special tokens added).

    Returns
    -------
    list of ndarray
        int64 arrays of shape (L_i,).

    Raises
    ------
    SsmctlError
        A text that is not a string or gives no token; and what :func:`load_tokenizer` raises.
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = load_tokenizer(source)
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise SsmctlError(f"text {i} is a {type(text).__name__}, not a string")
        ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        if not ids.size:
            raise SsmctlError(f"text {i} gives no token (empty or only whitespace)")
        out.append(ids)
    return out
