"""Checkpoints: safe reading (``reader``), layout detection (``layouts``), loading into models (``load``) and the
inspect/compare reports (``inspect``). Nothing here executes code from a checkpoint.
"""

from __future__ import annotations

from .load import load

__all__ = ["load"]
