"""The LTV engine: the forward simulation of input-dependent layers with streaming statistics.

``driver`` runs a model chunk after chunk (``simulate``), ``blocks`` holds each family's block, ``scan`` the
selective scan (tensor form and its float64 twin), ``native`` the compiled CPU kernel, ``stats`` the streaming
per-layer statistics.
"""

from __future__ import annotations

from .driver import SimulationResult, simulate
from .scan import SCAN_BACKENDS, selective_scan, selective_scan_ref
from .stats import LayerStats, LTVStats

__all__ = ["simulate", "SimulationResult", "selective_scan", "selective_scan_ref", "SCAN_BACKENDS",
           "LayerStats", "LTVStats"]
