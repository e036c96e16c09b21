"""Model families. Each ``<family>.py`` registers itself on import."""

from __future__ import annotations

import importlib

from .base import Family, Layer, Model, families, get_family, init, register

__all__ = ["Family", "Layer", "Model", "families", "get_family", "init", "register"]

# Registration order is the order of figures and tables.
_FAMILY_MODULES = ("s4", "s4d", "s5", "lru", "mamba", "mamba2", "rglru", "s6", "attention", "qlstm")
for _name in _FAMILY_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except ModuleNotFoundError as exc:  # a family not written yet
        if exc.name != f"{__name__}.{_name}":
            raise
