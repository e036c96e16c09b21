"""ssmctl: deep state-space models seen as linear systems.

Every layer becomes a system object (:class:`DiagonalLTI`, :class:`DenseLTI`, :class:`LTVSystem`) and every
analysis is a pure function of systems. See docs/design.md for the layout and conventions.
"""

from __future__ import annotations

import os as _os
import sys as _sys

# OpenMP threads that spin while they wait stall every small torch operation when another process holds a core
# (the `ssmctl` command ran up to 30x slower with its default threads on a busy 2-core machine). libgomp reads
# the policy once, when torch loads it, so it is set here, before anything below imports torch; an explicit
# OMP_WAIT_POLICY is kept, and a torch imported earlier by the caller keeps the policy it started with.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from . import errors, plot
from .analysis import summary as _summary  # noqa: F401  (registers the rich display)
from .analysis.cloud import eigenvalue_cloud
from .analysis.dsf import Phi, dsf, dsf_eigenvalues, materialize, materialize_ref
from .analysis.dsf_measures import *  # noqa: F401,F403
from .analysis.dsf_measures import __all__ as _dsf_measures_all
from .analysis.norms import *  # noqa: F401,F403
from .analysis.norms import __all__ as _norms_all
from .analysis.response import *  # noqa: F401,F403
from .analysis.response import __all__ as _response_all
from .analysis.spectrum import *  # noqa: F401,F403
from .analysis.spectrum import __all__ as _spectrum_all
from .analysis.pseudospectra import *  # noqa: F401,F403
from .analysis.pseudospectra import __all__ as _pseudospectra_all
from .checkpoints.load import load
from .checkpoints.tokenizer import tokenize
from .models import Layer, Model, families, init
from .systems.control import from_control, to_control
from .systems.discretize import from_continuous, from_continuous_dense
from .systems.lti import DenseLTI, DiagonalLTI
from .engine.driver import SimulationResult, simulate
from .systems.ltv import LTVSystem

__version__ = "0.1.0"

__all__ = [
    "DiagonalLTI",
    "DenseLTI",
    "LTVSystem",
    "simulate",
    "SimulationResult",
    "from_continuous",
    "from_continuous_dense",
    "to_control",
    "from_control",
    "init",
    "load",
    "tokenize",
    "families",
    "Model",
    "Layer",
    "errors",
    "plot",
    *_spectrum_all,
    *_response_all,
    *_norms_all,
    *_pseudospectra_all,
    "eigenvalue_cloud",
    "dsf",
    "dsf_eigenvalues",
    "materialize",
    "materialize_ref",
    "Phi",
    *_dsf_measures_all,
]
