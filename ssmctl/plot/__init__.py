"""Plots: one call each, an optional ``ax=``, labels from the systems' metadata; matplotlib is imported on
first use.

    import ssmctl
    ssmctl.plot.eigenvalues(model)         # eigenvalues coloured by memory horizon (disk, or the near-1 view)
    ssmctl.plot.impulse(sys, L=256)        # step(sys), bode(sys), nyquist(sys), sigma(sys), pzmap(sys[0])
    ssmctl.plot.simulation_figure(result)  # an LTV simulation's panels

``lti`` holds the plots of systems and layers (``views`` the eigenvalue views near z = 1), ``ltv`` those of an LTV simulation, ``compare`` the
inspect/compare panels of checkpoints, ``dsf`` the DSF view (Φ heatmaps, Λ_i over tokens, Hankel-rank profile, Taylor error), ``figures`` the paper's figures and tables, ``io`` figure saving.
"""

from __future__ import annotations

from .compare import plot_compare, plot_inspect
from .dsf import hankel_rank_profile, lambda_traces, phi_heatmaps, taylor_error_curve
from .io import save_figure
from .lti import bode, eigenvalues, hankel, impulse, nyquist, pseudospectrum, pzmap, sigma, step
from .ltv import abs_heatmap, dt_histogram, memory_trace, simulation_figure, transition_decay

__all__ = [
    "eigenvalues", "impulse", "step", "bode", "nyquist", "sigma", "pzmap", "hankel", "pseudospectrum",
    "abs_heatmap", "dt_histogram", "memory_trace", "transition_decay", "simulation_figure",
    "plot_inspect", "plot_compare", "save_figure",
    "phi_heatmaps", "lambda_traces", "hankel_rank_profile", "taylor_error_curve",
]
