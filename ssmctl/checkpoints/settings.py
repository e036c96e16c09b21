"""The settings a checkpoint's config states, checked by type and range before anything uses them.

``config.json`` (transformers, mamba_ssm) and a Lightning checkpoint's ``hyper_parameters`` are written by
other code and may be edited by hand: a size that is a string, an eps that is a list, a step-size limit that
is not a pair. Every value the loaders read from them goes through :func:`checked`, which names the entry and
what it should be, and so does a hint of the same setting (``ssmctl.load(path, ngroups=...)``,
:func:`ssmctl.checkpoints.hints.check_hints`); nothing downstream sees an unchecked value.

Kinds (:data:`KINDS`): sizes are positive integers (``16.0`` is read as 16; booleans are refused), ``eps`` a
finite number ≥ 0, flags JSON booleans, names strings (their choices are checked by the family), ``dt_limit``
a pair (low, high) with 0 ≤ low ≤ high (high may be infinite).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

from ..errors import CheckpointError

__all__ = ["KINDS", "checked", "checked_mapping", "as_float"]


class _Invalid(Exception):
    """Raised by a kind's check; :func:`checked` turns it into a CheckpointError naming the entry."""


def as_float(value: Any) -> float:
    """A config number as a float; transformers ≥ 5 writes non-finite floats as ``{"__float__": "Infinity"}``.

    Parameters
    ----------
    value : int, float, str or mapping
        A JSON number, or transformers' ``{"__float__": text}`` form.

    Returns
    -------
    float

    Raises
    ------
    CheckpointError
        Anything else (booleans included).
    """
    if isinstance(value, Mapping) and set(value) == {"__float__"} and isinstance(value["__float__"], str):
        value = value["__float__"]
        try:
            return float(value)
        except ValueError:
            raise CheckpointError(f"{value!r} is not a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CheckpointError(f"{value!r} is not a number")
    return float(value)


def _size(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Invalid("a positive integer")
    return value


def _eps(value: Any) -> float:
    try:
        x = as_float(value)
    except CheckpointError:
        raise _Invalid("a finite number >= 0") from None
    if not (math.isfinite(x) and x >= 0):
        raise _Invalid("a finite number >= 0")
    return x


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid("a name (a string)")
    return value


def _interval(value: Any) -> tuple[float, float]:
    what = "a pair [low, high] of numbers with 0 <= low <= high"
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != 2:
        raise _Invalid(what)
    try:
        lo, hi = (as_float(v) for v in value)
    except CheckpointError:
        raise _Invalid(what) from None
    if not (0 <= lo <= hi):  # also refuses NaN
        raise _Invalid(what)
    return lo, hi


#: Family setting name → its check (returns the value in the form the families use).
KINDS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys(
        ("d_model", "d_state", "d_conv", "dt_rank", "ngroups", "nheads", "headdim", "lru_width", "num_heads"), _size
    ),
    "eps": _eps,
    "conv_bias": _flag,
    "bias": _flag,
    "is_real": _flag,
    "dt_limit": _interval,
    "dt_transform": _name,
    "real_transform": _name,
    "imag_transform": _name,
    "discretization": _name,
}


def checked(name: str, value: Any, entry: str) -> Any:
    """``value`` of setting ``name`` once it is known to have the right type and range.

    Parameters
    ----------
    name : str
        The family's setting name, a key of :data:`KINDS` (e.g. ``"d_state"``).
    value : object
        The value as the config holds it.
    entry : str
        Where the value comes from, for the message (e.g. ``"config.json entry 'state_size'"``).

    Returns
    -------
    object
        The value (sizes as int, numbers as float, ``dt_limit`` as a tuple of two floats).

    Raises
    ------
    CheckpointError
        A value of the wrong type or out of range; the message names the entry, what it should be and the
        value found.
    KeyError
        ``name`` is not a known setting (a programming error, not bad input).
    """
    check = KINDS[name]
    try:
        return check(value)
    except _Invalid as exc:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise CheckpointError(f"{entry} must be {exc.args[0]}, got {shown}") from None


def checked_mapping(value: Any, entry: str) -> Mapping[str, Any]:
    """``value`` when it is a JSON object (a mapping), else an error naming ``entry``.

    Parameters
    ----------
    value : object
        What a config holds where an object is expected (``config.json`` itself, mamba_ssm's ``ssm_cfg``).
    entry : str
        Where it comes from, for the message.

    Returns
    -------
    mapping

    Raises
    ------
    CheckpointError
        ``value`` is not a mapping.
    """
    if not isinstance(value, Mapping):
        raise CheckpointError(f"{entry} must be a JSON object, got {type(value).__name__}")
    return value
