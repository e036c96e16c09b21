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


def unknown_name(kind: str, name: object, known: "list[str] | tuple[str, ...]") -> UnknownNameError:
    """Build the error for an unknown option, listing the known ones."""
    return UnknownNameError(f"unknown {kind} {name!r}; known: {', '.join(sorted(map(str, known)))}")
