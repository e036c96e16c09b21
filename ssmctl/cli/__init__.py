"""The ``ssmctl`` command line: one module per command group.

``app`` holds the parser and the built-in commands (``demo``, ``eig``, ``figures``), ``checkpoints`` the
``inspect``/``compare`` commands, ``simulate`` the LTV engine's command, ``common`` the options they share.
"""

from __future__ import annotations

from .app import build_parser, demo_system, main

__all__ = ["main", "build_parser", "demo_system"]
