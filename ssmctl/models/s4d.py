"""S4D: diagonal SISO state-space layers (Gu et al. 2022, "On the parameterization and initialization of
diagonal state space models").

Layout: the minimal S4D of state-spaces/s4 (src/models/s4/s4d.py), per layer::

    kernel.log_dt      (H,)          Δ = exp(log_dt), log-uniform in [dt_min, dt_max]
    kernel.log_A_real  (H, N/2)      Re A = −exp(log_A_real)
    kernel.A_imag      (H, N/2)      Im A = +A_imag   (minimal-code sign: A = −exp(log_A_real) + i·A_imag)
    kernel.C           (H, N/2, 2)   complex C (real view), B = 1 folded into C
    D                  (H,)

Each channel is a SISO system with N/2 stored modes, output y = 2·Re(C h) + D u (the conjugate modes are
implicit). ``state-spaces/s4`` dplr.py / SSMKernelDiag use the opposite sign A = −real − i·imag (Im ≤ 0,
stored A_imag ≥ 0 as −Im); under 2·Re(·) the two give the same kernel with conjugated C, so ssmctl keeps
the minimal-code sign throughout and never mixes them.

Variants (the init of A): ``lin`` A_n = −½ + iπn (minimal s4d.py); ``inv`` A_n = −½ + i(N/π)(N/(2n+1) − 1)
(configs/model/layer/s4d.yaml ``scaling: inverse``); ``legs`` the eigenvalues of HiPPO-N (−½ + i|ω_n|);
``real`` A_n = −(n+1). With ``is_real=True`` (S4D-Real as SSMKernelDiag ``is_real``, e.g. the Mega
LRA-image s4d-real configs) d_state counts real states: N real modes −1..−N with real C (layout
``kernel.log_A_real`` (H, N), ``kernel.C`` (H, N), no ``kernel.A_imag``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import SsmctlError
from ..systems.discretize import from_continuous
from ..systems.lti import DiagonalLTI
from . import hippo
from ._hyper import check_dt_range, check_positive_int, resolve_config
from ._lti_common import (
    check_choice,
    complex_normal,
    complex_of,
    fetch_param,
    log_uniform,
    real_view,
    system_meta,
    with_extras,
)
from .base import Layer, Model, register_module

__all__ = ["FAMILY", "VARIANTS", "DISCRETIZATIONS", "init", "init_A", "layer_from_params", "system"]

NAME = "s4d"
VARIANTS: tuple[str, ...] = ("lin", "inv", "real", "legs")
DISCRETIZATIONS: tuple[str, ...] = ("zoh", "bilinear")

DEFAULTS: dict[str, Any] = {
    "d_model": 128,  # state-spaces/s4 example.py (the minimal S4D model)
    "d_state": 64,
    "n_layers": 4,
    "variant": "lin",
    "discretization": "zoh",
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "is_real": False,
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # configs/model/layer/s4d.yaml: scaling inverse (S4D-Inv), dt in [1e-3, 1e-1].
    "s4d_yaml": {"variant": "inv"},
    # S4D-Real with real storage (SSMKernelDiag is_real=True, Mega LRA-image s4d-real configs).
    "real_states": {"variant": "real", "is_real": True},
}


def init_A(variant: str, N: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous eigenvalues of a variant in the minimal-code sign, as (Re, Im) of the stored modes.

    Parameters
    ----------
    variant : {"lin", "inv", "real", "legs"}
    N : int
        Full state size d_state (stored modes: N/2).

    Returns
    -------
    real, imag : ndarray, float64, shape (N/2,)
        A_n = real_n + i·imag_n with imag ≥ 0.
    """
    check_choice(NAME, "variant", variant, VARIANTS)
    n = np.arange(N // 2, dtype=np.float64)
    if variant == "real":
        return -(n + 1.0), np.zeros_like(n)
    if variant == "lin":
        return np.full_like(n, -0.5), np.pi * n
    if variant == "inv":
        return np.full_like(n, -0.5), (N / np.pi) * (N / (2.0 * n + 1.0) - 1.0)
    lam = hippo.dplr(N).half().lam  # Im < 0 half; the minimal sign stores its conjugate
    return lam.real.copy(), -lam.imag


def _check_config(cfg: Mapping[str, Any]) -> None:
    check_choice(NAME, "variant", cfg["variant"], VARIANTS)
    check_choice(NAME, "discretization", cfg["discretization"], DISCRETIZATIONS)
    if cfg["is_real"] and cfg["variant"] != "real":
        raise SsmctlError(f"{NAME}: is_real=True needs variant 'real' (got variant {cfg['variant']!r})")


def init(**hyper: Any) -> Model:
    """A freshly initialized S4D model.

    Parameters
    ----------
    **hyper
        ``d_model`` (H, 128), ``d_state`` (N, 64: N/2 stored complex modes; N real modes with
        ``is_real``), ``n_layers`` (4), ``variant`` ("lin" | "inv" | "real" | "legs"; "lin"),
        ``discretization`` ("zoh" | "bilinear"; "zoh"), ``dt_min``/``dt_max`` (1e-3/1e-1),
        ``is_real`` (False), ``seed`` (0), ``preset`` (see ``FAMILY.presets``).
        Defaults follow state-spaces/s4's minimal s4d.py and example.py.

    Returns
    -------
    Model
        ``source="init"``; each layer's params use the minimal S4D names and shapes (float64).
    """
    cfg = resolve_config(NAME, DEFAULTS, PRESETS, hyper)
    H, N, n_layers = check_positive_int(NAME, d_model=cfg["d_model"], d_state=cfg["d_state"], n_layers=cfg["n_layers"])
    dt_min, dt_max = check_dt_range(NAME, cfg["dt_min"], cfg["dt_max"])
    _check_config(cfg)
    is_real = bool(cfg["is_real"])
    if not is_real and N % 2:
        raise SsmctlError(f"{NAME}: d_state must be even (N/2 conjugate pairs are stored), got {N}")
    rng = np.random.default_rng(cfg["seed"])
    if is_real:
        real = -np.arange(1.0, N + 1.0)  # SSMKernelDiag doubles d_state internally, then keeps N/2 = d_state
        imag = np.zeros(N)
    else:
        real, imag = init_A(cfg["variant"], N)
    layers = []
    for i in range(n_layers):
        log_dt = log_uniform(rng, (H,), dt_min, dt_max)
        if is_real:
            C = complex_normal(rng, (H, N)).real  # SSMKernelDiag registers C.real of a cfloat randn
        else:
            C = real_view(complex_normal(rng, (H, N // 2)))
        params: dict[str, Any] = {
            "kernel.log_dt": log_dt,
            "kernel.log_A_real": np.broadcast_to(np.log(-real), (H, real.size)).copy(),
        }
        if not is_real:
            params["kernel.A_imag"] = np.broadcast_to(imag, (H, imag.size)).copy()
        params["kernel.C"] = C
        params["D"] = rng.standard_normal(H)
        layers.append(_layer(params, _layer_config(cfg, N), i))
    model_cfg = {k: v for k, v in cfg.items()}
    return Model(NAME, model_cfg, layers, source="init")


def _layer_config(cfg: Mapping[str, Any], N: int) -> dict[str, Any]:
    return {
        "variant": cfg.get("variant"),
        "discretization": cfg["discretization"],
        "is_real": bool(cfg["is_real"]),
        "d_state": N,
        "layout": "minimal",
    }


def _layer(params: dict[str, Any], config: dict[str, Any], index: int) -> Layer:
    return Layer(NAME, index, params, config)


def layer_from_params(params: Mapping[str, Any], config: Mapping[str, Any], index: int) -> Layer:
    """Build (and validate) one S4D layer from its state-dict tensors.

    Parameters
    ----------
    params : mapping
        ``kernel.log_dt`` (H,), ``kernel.log_A_real`` (H, N/2), ``kernel.A_imag`` (H, N/2),
        ``kernel.C`` (H, N/2, 2), ``D`` (H,) — numpy arrays or torch tensors. With ``config["is_real"]``:
        ``kernel.log_A_real`` (H, N), ``kernel.C`` (H, N) and no ``kernel.A_imag``. Other keys
        (``output_linear.*`` scaffolding) are kept as they are.
    config : mapping
        ``discretization`` ("zoh" default), ``is_real`` (False), ``variant`` (informative only).
    index : int
        Layer index (for messages and plots).

    Returns
    -------
    Layer
        With float32/float64 numpy params and ``config`` completed (``d_state`` inferred).

    Raises
    ------
    CheckpointError, ShapeError, NonFiniteError, UnknownNameError
        Missing keys, shapes that do not fit together (the message names the key, the expected and the found
        shape), NaN/Inf, unknown discretization.
    """
    cfg = {"variant": None, "discretization": DEFAULTS["discretization"], "is_real": False, **dict(config)}
    check_choice(NAME, "discretization", cfg["discretization"], DISCRETIZATIONS)
    if cfg["variant"] is not None:
        check_choice(NAME, "variant", cfg["variant"], VARIANTS)
    is_real = bool(cfg["is_real"])
    out: dict[str, Any] = {}
    log_dt = fetch_param(NAME, index, params, "kernel.log_dt", (None,), "(H,)")
    H = log_dt.shape[0]
    log_A_real = fetch_param(NAME, index, params, "kernel.log_A_real", (H, None), "(H, N)" if is_real else "(H, N/2)")
    K = log_A_real.shape[1]
    out["kernel.log_dt"], out["kernel.log_A_real"] = log_dt, log_A_real
    if is_real:
        out["kernel.C"] = fetch_param(NAME, index, params, "kernel.C", (H, K), "(H, N)")
    else:
        out["kernel.A_imag"] = fetch_param(NAME, index, params, "kernel.A_imag", (H, K), "(H, N/2)")
        out["kernel.C"] = fetch_param(NAME, index, params, "kernel.C", (H, K, 2), "(H, N/2, 2)")
    out["D"] = fetch_param(NAME, index, params, "D", (H,), "(H,)")
    layer_cfg = {**cfg, "d_state": K if is_real else 2 * K, "layout": "minimal"}
    return _layer(with_extras(NAME, index, params, out), layer_cfg, index)


def continuous(layer: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(A (H, K), C (H, K), Δ (H,)) of a layer in the minimal-code sign; complex A and C unless is_real."""
    p = layer.params
    dt = np.exp(np.asarray(p["kernel.log_dt"], dtype=np.float64))
    real = -np.exp(np.asarray(p["kernel.log_A_real"], dtype=np.float64))
    if layer.config.get("is_real"):
        return real, np.asarray(p["kernel.C"], dtype=np.float64), dt
    A = real + 1j * np.asarray(p["kernel.A_imag"], dtype=np.float64)
    return A, complex_of(p["kernel.C"]), dt


def system(layer: Layer) -> DiagonalLTI:
    """The layer as a batch of H SISO systems: ``DiagonalLTI`` with batch (H,), output ``"conj_pair"``.

    Ā, B̄ by the layer's discretization (ZOH: Ā = exp(ΔA), B̄ = (exp(ΔA) − 1)/A; bilinear), B = 1, C as
    stored, D (H, 1, 1). Real eigenvalues with real B̄ (S4D-Real) make a real-state system of N/2 (or N
    with ``is_real``) states, y = 2·C h + D u.

    Parameters
    ----------
    layer : Layer
        An S4D layer.

    Returns
    -------
    DiagonalLTI
        Batch (H,): λ (H, K), B (H, K, 1), C (H, 1, K), D (H, 1, 1), K = d_state/2 (d_state with ``is_real``).
    """
    A, C, dt = continuous(layer)
    H, K = A.shape
    D = np.asarray(layer.params["D"], dtype=np.float64)
    return from_continuous(
        A,
        np.ones((H, K, 1)),
        C[:, None, :],
        D[:, None, None],
        dt=dt,
        method=layer.config.get("discretization", "zoh"),
        output="conj_pair",
        meta=system_meta(NAME, layer.index),
    )


FAMILY = register_module(
    __name__,
    name=NAME,
    paper="Gu, Gupta, Goel, Ré (2022): On the Parameterization and Initialization of Diagonal State Space Models",
    kind="LTI",
    parametrization="LTI",
    discretization="Exact",
    structure="SISO",
    implementation="Convolution and Recurrence",
    scaffolding="MLP / H3",
    notes=(
        "Reference code (state-spaces/s4 minimal s4d.py): A = −exp(log_A_real) + i·A_imag (Im ≥ 0); "
        "dplr.py/SSMKernelDiag use A = −real − i·imag (Im ≤ 0) — same kernel under 2·Re, never mix. "
        "B = 1 is folded into C (no B parameter). 'Exact' is ZOH, the default; bilinear is optional "
        "(SSMKernelDiag disc='bilinear'; 'dss' not modelled). Minimal code initializes S4D-Lin; the repo's "
        "s4d.yaml uses S4D-Inv (preset 's4d_yaml'). S4D-Real: is_real=False keeps N/2 real modes −1..−N/2 in "
        "the 2·Re path; is_real=True (preset 'real_states') N real modes −1..−N. SSMKernelDiag's inv_transform "
        "clamps stored A_imag to ≥ 1e-4, so its S4D-Real (and Lin's n=0 mode) carry Im = −1e-4, not 0; the "
        "minimal layout stores 0. Output y = 2·Re(Ch) + D u "
        "per channel, then GELU and a Conv1d+GLU output mixer (scaffolding not modelled as a system)."
    ),
    variants=VARIANTS,
)
