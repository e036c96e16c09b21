"""Hyperparameter handling every family's ``init`` shares: defaults ← preset ← caller, and the checks of sizes and
of the step-size range, with one wording of each error.

Private: the public face is each family's ``init`` (and ``ssmctl.init``).
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Mapping

import numpy as np

from ..errors import SsmctlError, UnknownNameError, unknown_name

__all__ = ["resolve_config", "check_positive_int", "check_dt_range"]


def resolve_config(
    family: str, defaults: Mapping[str, Any], presets: Mapping[str, Mapping[str, Any]], hyper: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults, then the named preset, then explicit overrides; unknown names are refused with a listing.

    Parameters
    ----------
    family : str
        Family name, for messages.
    defaults : mapping
        Every hyperparameter the family knows, with its default.
    presets : mapping
        Preset name → the settings it changes.
    hyper : mapping
        The caller's keywords, ``preset`` included.

    Returns
    -------
    dict
        The merged settings, with ``preset`` (None when none was named).

    Raises
    ------
    UnknownNameError
        A keyword the family does not know, or an unknown preset.
    SsmctlError
        A ``seed`` that is not an integer in [0, 2**63).
    """
    hyper = dict(hyper)
    preset = hyper.pop("preset", None)
    unknown = sorted(set(hyper) - set(defaults))
    if unknown:
        raise UnknownNameError(
            f"{family}: unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(sorted(defaults))}, preset"
        )
    cfg = dict(defaults)
    if preset is not None:
        if preset not in presets:
            raise unknown_name(f"{family} preset", preset, list(presets))
        cfg.update(presets[preset])
    cfg.update(hyper)
    cfg["preset"] = preset
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        # numpy's and torch's generators take these (a negative seed was a ValueError from inside numpy)
        raise SsmctlError(f"{family}: seed must be an integer in [0, 2**63), got {seed!r}")
    return cfg


def check_positive_int(family: str, **values: Any) -> tuple[int, ...]:
    """Every keyword's value as an int, once each is known to be a positive integer (bool refused).

    Parameters
    ----------
    family : str
        Family name, for messages.
    **values
        Name → value.

    Returns
    -------
    tuple of int
        The values in the order given.

    Raises
    ------
    SsmctlError
        The first value that is not a positive integer (its name is given).
    """
    for name, v in values.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise SsmctlError(f"{family}: {name} must be a positive integer, got {v!r}")
    return tuple(int(v) for v in values.values())


def _number(family: str, name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise SsmctlError(f"{family}: {name} must be a finite number, got {value!r}")
    return float(value)


def check_dt_range(family: str, dt_min: Any, dt_max: Any, dt_init_floor: Any = 0.0) -> tuple[float, float]:
    """The log-uniform Δ init's range: 0 < dt_min <= dt_max, finite; the floor (Mamba's) >= 0.

    Parameters
    ----------
    family : str
        Family name, for messages.
    dt_min, dt_max : float
        The range Δ is drawn from, log-uniformly.
    dt_init_floor : float, default 0
        The smallest Δ kept after the draw (mamba_ssm's ``dt_init_floor``).

    Returns
    -------
    (float, float)
        ``dt_min``, ``dt_max``.

    Raises
    ------
    SsmctlError
        A value that is not a finite number, dt_min <= 0, dt_min > dt_max, or a negative floor.
    """
    lo, hi = _number(family, "dt_min", dt_min), _number(family, "dt_max", dt_max)
    if lo <= 0:
        raise SsmctlError(f"{family}: dt_min must be > 0 (Δ is sampled log-uniformly), got {lo}")
    if lo > hi:
        raise SsmctlError(f"{family}: dt_min ({lo}) must not exceed dt_max ({hi})")
    if _number(family, "dt_init_floor", dt_init_floor) < 0:
        raise SsmctlError(f"{family}: dt_init_floor must be >= 0, got {dt_init_floor!r}")
    return lo, hi
