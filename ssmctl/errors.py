"""ssmctl's exceptions.

Every error ssmctl raises on bad input is a subclass of :class:`SsmctlError`, itself a ``ValueError``, so
callers can catch one type. Messages say what is wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "SsmctlError",
    "ShapeError",
    "NonFiniteError",
    "UnstableSystemError",
    "UnknownNameError",
    "UnsupportedSystemError",
    "CheckpointError",
    "MissingHintError",
    "SsmctlWarning",
    "require_hint",
]


class SsmctlError(ValueError):
    """Base class of every error ssmctl raises on bad input."""


class ShapeError(SsmctlError):
    """Arrays whose shapes do not fit together."""


class NonFiniteError(SsmctlError):
    """NaN or Inf where a finite number is needed."""


class UnstableSystemError(SsmctlError):
    """An analysis that needs a stable system (H2, H-infinity, gramians) got an unstable one."""


class UnknownNameError(SsmctlError):
    """An unknown family, variant, preset, discretization or option name."""


class UnsupportedSystemError(SsmctlError):
    """An analysis that does not apply to this kind of system (e.g. margins of a MIMO system)."""


class CheckpointError(SsmctlError):
    """A checkpoint that cannot be read or whose layout is not known."""


class MissingHintError(CheckpointError):
    """A checkpoint that does not record a setting its numbers depend on, and no hint named it.

    ``ssmctl.load(path, **hints)`` (CLI: one flag per hint) takes the setting; ssmctl never guesses it.
    """


class SsmctlWarning(UserWarning):
    """A result ssmctl returns but whose reading needs care: an ill-conditioned eigenproblem, a mode within
    :data:`ssmctl.analysis.spectrum.MARGINAL_TOL` of the unit circle, margins of an unstable open loop."""


def require_hint(hints: "dict[str, object] | None", name: str, choices: "list[str] | tuple[str, ...]", why: str) -> str:
    """The value of hint ``name``, checked against ``choices``; an error naming the setting when it is missing.

    Parameters
    ----------
    hints : dict or None
        The hints given to ``ssmctl.load`` (keyword name → value).
    name : str
        The hint's keyword, e.g. ``"dt_transform"`` (CLI flag ``--dt-transform``).
    choices : sequence of str
        The values the setting can take.
    why : str
        What the checkpoint lacks, e.g. ``"an S4D layer's state dict does not record how log Δ was stored"``.

    Returns
    -------
    str
        The hint's value, one of ``choices``.

    Raises
    ------
    MissingHintError
        When the hint is missing (the message names the setting, its choices, the keyword and the CLI flag).
    UnknownNameError
        When the hint's value is not one of ``choices``.
    """
    value = (hints or {}).get(name)
    flag = "--" + name.replace("_", "-")
    if value is None:
        raise MissingHintError(
            f"{why}: pass {name}= to ssmctl.load (CLI: {flag}), one of {', '.join(map(str, choices))}"
        )
    if value not in choices:
        raise unknown_name(f"{name} ({flag})", value, choices)
    return str(value)


def unknown_name(kind: str, name: object, known: "list[str] | tuple[str, ...]") -> UnknownNameError:
    """Build the error for an unknown option, listing the known ones."""
    return UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(map(str, known)))}")
