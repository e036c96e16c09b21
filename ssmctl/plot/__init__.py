"""Plots: one call each, an optional ``ax=``, labels from the systems' metadata; matplotlib is imported on
first use.

    import ssmctl
    ssmctl.plot.eigenvalues(model)         # unit-disk eigenvalue cloud coloured by memory horizon
    ssmctl.plot.impulse(sys, L=256)
    ssmctl.plot.bode(sys)
    ssmctl.plot.simulation_figure(result)  # an LTV simulation's panels

``lti`` holds the plots of systems and layers, ``ltv`` those of an LTV simulation, ``compare`` the
inspect/compare panels of checkpoints, ``figures`` the paper's figures and tables, ``io`` figure saving.
"""

from __future__ import annotations

from .compare import plot_compare, plot_inspect
from .io import save_figure
from .lti import bode, eigenvalues, hankel, impulse, pseudospectrum
from .ltv import abs_heatmap, dt_histogram, memory_trace, simulation_figure, transition_decay

__all__ = [
    "eigenvalues", "impulse", "bode", "hankel", "pseudospectrum",
    "abs_heatmap", "dt_histogram", "memory_trace", "transition_decay", "simulation_figure",
    "plot_inspect", "plot_compare", "save_figure",
]
