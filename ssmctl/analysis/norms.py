"""System norms, gramians, Hankel singular values, balanced truncation, controllability."""

from __future__ import annotations

__all__: list[str] = []
