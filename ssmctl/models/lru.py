"""LRU: the Linear Recurrent Unit, a directly parametrized discrete diagonal MIMO system (Orvieto et al. 2023).

Layout: LRU of NicolasZucchet/minimal-LRU (lru/model.py), per layer with N = d_state (d_hidden), H = d_model::

    nu_log     (N,)     λ = exp(−exp(nu_log) + i·exp(theta_log))
    theta_log  (N,)
    gamma_log  (N,)     γ = exp(gamma_log), a trainable parameter initialized to log √(1 − |λ|²)
    B_re, B_im (N, H)   B_norm = (B_re + i·B_im)·γ  (each ~ N(0, 1/(2H)))
    C_re, C_im (H, N)   each ~ N(0, 1/N)
    D          (H,)     ~ N(0, 1)

h_k = diag(λ) h_{k−1} + B_norm u_k,  y_k = Re(C h_k) + D⊙u_k. No discretization: Ā is the parameter.
Ring init: |λ|² ~ U[r_min², r_max²], arg λ ~ U[0, max_phase].
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..errors import SsmctlError
from ..systems.lti import DiagonalLTI
from ._hyper import check_positive_int, resolve_config
from ._lti_common import fetch_param, system_meta, with_extras
from .base import Layer, Model, register_module

__all__ = ["FAMILY", "init", "layer_from_params", "system", "eigenvalues_of", "ring_init"]

NAME = "lru"

DEFAULTS: dict[str, Any] = {
    # NicolasZucchet/minimal-LRU run_train.py and the LRU module defaults
    "d_model": 256,
    "d_state": 128,
    "n_layers": 4,
    "r_min": 0.0,
    "r_max": 1.0,
    "max_phase": 6.28,  # the code's literal, not exactly 2π
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # LRU paper's long-range ring (τ ∈ [9.49, 999.5] at ε = 1/e); unverified against code.
    "long_range": {"r_min": 0.9, "r_max": 0.999, "max_phase": math.pi / 10},
}


def _check_ring(r_min: Any, r_max: Any, max_phase: Any) -> tuple[float, float, float]:
    try:
        lo, hi, phase = float(r_min), float(r_max), float(max_phase)
    except (TypeError, ValueError):
        raise SsmctlError(f"{NAME}: r_min, r_max, max_phase must be numbers") from None
    if not all(map(math.isfinite, (lo, hi, phase))):
        raise SsmctlError(f"{NAME}: r_min, r_max, max_phase must be finite, got {lo}, {hi}, {phase}")
    if lo < 0:
        raise SsmctlError(f"{NAME}: r_min must be >= 0, got {lo}")
    if lo > hi:
        raise SsmctlError(f"{NAME}: r_min ({lo}) must not exceed r_max ({hi})")
    if hi > 1:
        raise SsmctlError(f"{NAME}: r_max must be <= 1 (|λ| > 1 is unstable), got {hi}")
    if lo >= 1:
        raise SsmctlError(f"{NAME}: r_min must be < 1 (|λ| = 1 gives nu_log = −inf), got {lo}")
    if phase <= 0:
        raise SsmctlError(f"{NAME}: max_phase must be > 0 (theta_log = log(max_phase·u)), got {phase}")
    return lo, hi, phase


def ring_init(
    rng: np.random.Generator, N: int, r_min: float, r_max: float, max_phase: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nu_log, theta_log, gamma_log), each (N,), as minimal-LRU's nu_init, theta_init, gamma_log_init.

    |λ|² ~ U[r_min², r_max²] and arg λ ~ U[0, max_phase]; γ = √(1 − |λ|²). The arguments are not checked
    here (:func:`init` checks them).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the two uniform draws (moduli first, then phases).
    N : int
        Number of states.
    r_min, r_max : float
        Ring radii, 0 ≤ r_min ≤ r_max ≤ 1 (r_min < 1).
    max_phase : float
        Largest phase in radians, > 0.

    Returns
    -------
    nu_log, theta_log, gamma_log : ndarray, float64, shape (N,)
        λ = exp(−exp(nu_log) + i·exp(theta_log)), γ = exp(gamma_log).
    """
    u1 = rng.random(N)
    nu_log = np.log(-0.5 * np.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    u2 = rng.random(N)
    theta_log = np.log(max_phase * u2)
    modulus_sq = np.exp(-2.0 * np.exp(nu_log))
    gamma_log = np.log(np.sqrt(1.0 - modulus_sq))
    return nu_log, theta_log, gamma_log


def init(**hyper: Any) -> Model:
    """A freshly initialized LRU model.

    Parameters
    ----------
    **hyper
        ``d_model`` (H, 256), ``d_state`` (N = d_hidden, 128), ``n_layers`` (4), ``r_min`` (0.0),
        ``r_max`` (1.0), ``max_phase`` (6.28), ``seed`` (0), ``preset`` ("long_range": r ∈ [0.9, 0.999],
        max_phase π/10). Defaults follow NicolasZucchet/minimal-LRU.

    Returns
    -------
    Model
    """
    cfg = resolve_config(NAME, DEFAULTS, PRESETS, hyper)
    H, N, n_layers = check_positive_int(NAME, d_model=cfg["d_model"], d_state=cfg["d_state"], n_layers=cfg["n_layers"])
    r_min, r_max, max_phase = _check_ring(cfg["r_min"], cfg["r_max"], cfg["max_phase"])
    rng = np.random.default_rng(cfg["seed"])
    layers = []
    for i in range(n_layers):
        nu_log, theta_log, gamma_log = ring_init(rng, N, r_min, r_max, max_phase)
        params = {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": gamma_log,
            "B_re": rng.standard_normal((N, H)) / math.sqrt(2 * H),
            "B_im": rng.standard_normal((N, H)) / math.sqrt(2 * H),
            "C_re": rng.standard_normal((H, N)) / math.sqrt(N),
            "C_im": rng.standard_normal((H, N)) / math.sqrt(N),
            "D": rng.standard_normal(H),
        }
        layers.append(Layer(NAME, i, params, {"d_state": N, "d_model": H}))
    return Model(NAME, dict(cfg), layers, source="init")


def layer_from_params(params: Mapping[str, Any], config: Mapping[str, Any], index: int) -> Layer:
    """Build (and validate) one LRU layer from its minimal-LRU parameters.

    Parameters
    ----------
    params : mapping
        ``nu_log``, ``theta_log``, ``gamma_log`` (N,), ``B_re``, ``B_im`` (N, H), ``C_re``, ``C_im`` (H, N),
        ``D`` (H,); numpy or torch. Other keys are kept.
    config : mapping
        Nothing is required (kept as given).
    index : int

    Returns
    -------
    Layer
    """
    out: dict[str, Any] = {}
    nu = fetch_param(NAME, index, params, "nu_log", (None,), "(N,)")
    N = nu.shape[0]
    out["nu_log"] = nu
    for key in ("theta_log", "gamma_log"):
        out[key] = fetch_param(NAME, index, params, key, (N,), "(N,)")
    B_re = fetch_param(NAME, index, params, "B_re", (N, None), "(N, H)")
    H = B_re.shape[1]
    out["B_re"] = B_re
    out["B_im"] = fetch_param(NAME, index, params, "B_im", (N, H), "(N, H)")
    for key in ("C_re", "C_im"):
        out[key] = fetch_param(NAME, index, params, key, (H, N), "(H, N)")
    out["D"] = fetch_param(NAME, index, params, "D", (H,), "(H,)")
    return Layer(NAME, index, with_extras(NAME, index, params, out), {**dict(config), "d_state": N, "d_model": H})


def eigenvalues_of(layer: Layer) -> np.ndarray:
    """λ = exp(−exp(nu_log) + i·exp(theta_log)), shape (N,), complex128.

    Parameters
    ----------
    layer : Layer
        An LRU layer (``params["nu_log"]``, ``params["theta_log"]``, each (N,)).

    Returns
    -------
    ndarray, complex128, shape (N,)
        The stored modes (output ``"real"``: their conjugates are the other half of the real system).
    """
    nu = np.asarray(layer.params["nu_log"], dtype=np.float64)
    theta = np.asarray(layer.params["theta_log"], dtype=np.float64)
    return np.exp(-np.exp(nu) + 1j * np.exp(theta))


def system(layer: Layer) -> DiagonalLTI:
    """The layer as one MIMO ``DiagonalLTI`` (m = p = H), output ``"real"``: y = Re(C h) + D⊙u.

    λ from (nu_log, theta_log), B̄ = (B_re + i·B_im)·exp(gamma_log) (the stored γ, not √(1 − |λ|²)),
    C = C_re + i·C_im, D = diag(D).

    Parameters
    ----------
    layer : Layer
        An LRU layer (parameters as in :func:`layer_from_params`).

    Returns
    -------
    DiagonalLTI
        No batch dims: λ (N,), B (N, H), C (H, N), D (H, H), complex128 (D float64).
    """
    p = layer.params
    gamma = np.exp(np.asarray(p["gamma_log"], dtype=np.float64))
    B = (np.asarray(p["B_re"], dtype=np.float64) + 1j * np.asarray(p["B_im"], dtype=np.float64)) * gamma[:, None]
    C = np.asarray(p["C_re"], dtype=np.float64) + 1j * np.asarray(p["C_im"], dtype=np.float64)
    D = np.diag(np.asarray(p["D"], dtype=np.float64))
    return DiagonalLTI(
        eigenvalues_of(layer),
        B,
        C,
        D,
        output="real",
        meta=system_meta(NAME, layer.index),
    )


FAMILY = register_module(
    __name__,
    name=NAME,
    paper=(
        "Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu, De (2023): "
        "Resurrecting Recurrent Neural Networks for Long Sequences"
    ),
    kind="LTI",
    parametrization="LTI",
    discretization="None",
    structure="MIMO",
    implementation="Parallel Scan",
    scaffolding="MLP / H3",
    notes=(
        "Reference code (NicolasZucchet/minimal-LRU): exponential parametrization λ = exp(−exp(ν) + i·exp(θ)); "
        "γ normalization is a separate trainable parameter gamma_log initialized to log √(1 − |λ|²) and not "
        "recomputed from λ afterwards. Code defaults r_min 0, r_max 1, max_phase 6.28; the paper's "
        "long-range ring (r ∈ [0.9, 0.999], max_phase π/10) is the preset 'long_range' (unverified against "
        "code). Output y = Re(Ch) + D⊙u, then GELU and a GLU (scaffolding, not modelled as a system)."
    ),
    variants=(),
)
