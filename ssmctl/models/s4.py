"""S4: diagonal-plus-low-rank (DPLR) SISO layers with bilinear discretization (Gu, Goel, Ré 2022).

Layout: SSMKernelDPLR of state-spaces/s4 (src/models/sequence/kernels/ssm.py) inside FFTConv, per layer
(S = n_ssm copies of (A, B, P) shared over the H channels, r = rank, c = channels, N = d_state)::

    kernel.inv_dt  (H, 1)          Δ = dt_transform(inv_dt); (H, N/2) when dt_tie is False
    kernel.A_real  (S, N/2)        A = −real_transform(A_real) − i·imag_transform(A_imag)
    kernel.A_imag  (S, N/2)
    kernel.B       (1, S, N/2, 2)
    kernel.C       (c, H, N/2, 2)  after the first forward pass this holds C̃ = C(I − Ā^l), l = l_kernel
    kernel.P       (r, S, N/2, 2)
    D              (c, H)

The continuous state matrix of channel h is the conjugate-augmented N×N matrix
diag([Λ, Λ̄]) − Σ_r p_r p_rᴴ with p_r = [P_r; P̄_r]; its low-rank term couples each mode with its conjugate,
so the conjugate half cannot be dropped. :func:`system` writes it in real coordinates x = [Re h; Im h]:

    A = [[Re Λ, −Im Λ], [Im Λ, Re Λ]] − 2 Σ_r q_r q_rᵀ,  q_r = [Re P_r; Im P_r],
    B = [Re B; Im B],  C = [2 Re C, −2 Im C],

then discretizes bilinearly: Ā = (I − ΔA/2)^{-1}(I + ΔA/2), B̄ = (I − ΔA/2)^{-1}ΔB.

HiPPO trap: at init A is unitarily similar to HiPPO-LegS, whose eigenvalues are exactly −1..−N, but LAPACK's
eigenvalues of the dense matrix are off by O(N) (extreme non-normality). :func:`system` therefore hands
its ``DenseLTI`` the exact spectrum (:func:`exact_discrete_eigenvalues`) while the layer is at init, so every
entry point (``layer.eigenvalues()``, ``ssmctl.eigenvalues(layer.system())``, memory horizons, plots) gives
it; for trained layers the system warns that its eigenproblem is ill-conditioned, and
:mod:`ssmctl.analysis.pseudospectra` says what the eigenvalues are worth.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy.special import expit

from ..errors import ShapeError, SsmctlError, UnsupportedSystemError
from ..systems.lti import DenseLTI
from . import hippo
from ._lti_common import (
    check_choice,
    check_dt_range,
    check_positive_int,
    complex_normal,
    complex_of,
    fetch_param,
    log_uniform,
    real_view,
    resolve_config,
    system_meta,
)
from .base import Family, Layer, Model, register

__all__ = [
    "FAMILY",
    "TRANSFORMS",
    "init",
    "layer_from_params",
    "system",
    "step_sizes",
    "exact_continuous_eigenvalues",
    "exact_discrete_eigenvalues",
    "param_transform",
    "inverse_transform",
]

NAME = "s4"
TRANSFORMS: tuple[str, ...] = ("none", "exp", "relu", "sigmoid", "softplus")

DEFAULTS: dict[str, Any] = {
    # configs/model/s4.yaml (d_model, n_layers) and configs/model/layer/s4.yaml (the rest).
    "d_model": 256,
    "d_state": 64,
    "n_layers": 4,
    "rank": 1,
    "n_ssm": 1,
    "channels": 1,
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "dt_transform": "softplus",
    "dt_tie": True,
    "real_transform": "exp",
    "imag_transform": "none",
    "discretization": "bilinear",  # the only one SSMKernelDPLR implements
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # SSMKernel class defaults: Δ = exp(inv_dt) and one (A, B, P) per channel (n_ssm=None → H).
    "kernel_class": {"dt_transform": "exp", "n_ssm": None},
}


def param_transform(x: np.ndarray, name: str) -> np.ndarray:
    """The reference's positive-parameter transforms (ssm.py param_transform), float64.

    Parameters
    ----------
    x : array_like, any shape
        Stored (unconstrained) parameter values.
    name : {"none", "exp", "relu", "sigmoid", "softplus"}
        The transform: identity, exp, max(x, 0) + 1e-4, logistic sigmoid, softplus.

    Returns
    -------
    ndarray, float64, shape of ``x``

    Raises
    ------
    UnknownNameError
        An unknown transform name.
    """
    check_choice(NAME, "transform", name, TRANSFORMS)
    x = np.asarray(x, dtype=np.float64)
    if name == "none":
        return x
    if name == "exp":
        return np.exp(x)
    if name == "relu":
        return np.maximum(x, 0.0) + 1e-4
    if name == "sigmoid":
        return expit(x)  # keeps its relative accuracy in the tail (1 + tanh(x/2) cancels for x ≪ 0)
    return np.logaddexp(0.0, x)  # softplus, overflow-free


def inverse_transform(p: np.ndarray, name: str) -> np.ndarray:
    """Inverse of :func:`param_transform` after clamping to ≥ 1e-4, as the reference's inv_transform.

    Parameters
    ----------
    p : array_like, any shape
        Positive parameter values (values below 1e-4 are raised to 1e-4 first).
    name : {"none", "exp", "relu", "sigmoid", "softplus"}
        The transform to invert ("none" and "relu" return the clamped values).

    Returns
    -------
    ndarray, float64, shape of ``p``

    Raises
    ------
    UnknownNameError
        An unknown transform name.
    """
    check_choice(NAME, "transform", name, TRANSFORMS)
    p = np.maximum(np.asarray(p, dtype=np.float64), 1e-4)
    if name in ("none", "relu"):
        return p
    if name == "exp":
        return np.log(p)
    if name == "sigmoid":
        return np.log(p) - np.log1p(-p)
    return p + np.log(-np.expm1(-p))  # log(exp(p) − 1)


def init(**hyper: Any) -> Model:
    """A freshly initialized S4 model (HiPPO-LegS in DPLR form, bilinear).

    Parameters
    ----------
    **hyper
        ``d_model`` (H, 256), ``d_state`` (N, 64, even), ``n_layers`` (4), ``rank`` (1), ``n_ssm``
        (1; None → H independent copies), ``channels`` (1), ``dt_min``/``dt_max`` (1e-3/1e-1),
        ``dt_transform`` ("softplus"), ``dt_tie`` (True), ``real_transform`` ("exp"), ``imag_transform``
        ("none"), ``discretization`` ("bilinear" only), ``seed`` (0), ``preset`` ("kernel_class"). Defaults follow configs/model/s4.yaml and
        configs/model/layer/s4.yaml of state-spaces/s4.

    Returns
    -------
    Model
        Layers with SSMKernelDPLR names and shapes (float64), C raw (``l_kernel`` = 0).
    """
    cfg = resolve_config(NAME, DEFAULTS, PRESETS, hyper)
    H = check_positive_int(NAME, "d_model", cfg["d_model"])
    N = check_positive_int(NAME, "d_state", cfg["d_state"])
    n_layers = check_positive_int(NAME, "n_layers", cfg["n_layers"])
    rank = check_positive_int(NAME, "rank", cfg["rank"])
    c = check_positive_int(NAME, "channels", cfg["channels"])
    S = H if cfg["n_ssm"] is None else check_positive_int(NAME, "n_ssm", cfg["n_ssm"])
    if H % S:
        raise SsmctlError(f"{NAME}: n_ssm ({S}) must divide d_model ({H})")
    if N % 2:
        raise SsmctlError(f"{NAME}: d_state must be even (N/2 conjugate pairs are stored), got {N}")
    dt_min, dt_max = check_dt_range(NAME, cfg["dt_min"], cfg["dt_max"])
    check_choice(NAME, "discretization", cfg["discretization"], ("bilinear",))
    for key in ("dt_transform", "real_transform", "imag_transform"):
        check_choice(NAME, key, cfg[key], TRANSFORMS)
    rng = np.random.default_rng(cfg["seed"])
    form = hippo.dplr(N).half()
    K = N // 2
    A_real = inverse_transform(-form.lam.real, cfg["real_transform"])
    A_imag = inverse_transform(-form.lam.imag, cfg["imag_transform"])
    P = np.zeros((rank, K), dtype=np.complex128)
    P[0] = form.P  # extra ranks are zero, as hippo.rank_correction pads them
    layers = []
    for i in range(n_layers):
        dt = np.exp(log_uniform(rng, (H, 1) if cfg["dt_tie"] else (H, K), dt_min, dt_max))
        params = {
            "kernel.inv_dt": inverse_transform(dt, cfg["dt_transform"]) if cfg["dt_transform"] != "exp" else np.log(dt),
            "kernel.A_real": np.broadcast_to(A_real, (S, K)).copy(),
            "kernel.A_imag": np.broadcast_to(A_imag, (S, K)).copy(),
            "kernel.B": real_view(np.broadcast_to(form.B, (1, S, K))),
            "kernel.C": real_view(complex_normal(rng, (c, H, K))),
            "kernel.P": real_view(np.broadcast_to(P[:, None, :], (rank, S, K))),
            "D": rng.standard_normal((c, H)),
        }
        layers.append(Layer(NAME, i, params, _layer_config(cfg, N, S)))
    return Model(NAME, dict(cfg), layers, source="init")


def _layer_config(cfg: Mapping[str, Any], N: int, S: int) -> dict[str, Any]:
    return {
        "d_state": N,
        "n_ssm": S,
        "rank": cfg.get("rank", 1),
        "channels": cfg.get("channels", 1),
        "dt_transform": cfg["dt_transform"],
        "real_transform": cfg["real_transform"],
        "imag_transform": cfg["imag_transform"],
        "dt_tie": bool(cfg.get("dt_tie", True)),
        "l_kernel": int(cfg.get("l_kernel", 0)),
        "discretization": "bilinear",
        "init": "legs",
    }


def layer_from_params(params: Mapping[str, Any], config: Mapping[str, Any], index: int) -> Layer:
    """Build (and validate) one S4 layer from its SSMKernelDPLR tensors.

    Parameters
    ----------
    params : mapping
        ``kernel.inv_dt`` (H, 1) or (H, N/2), ``kernel.A_real``/``kernel.A_imag`` (S, N/2), ``kernel.B``
        (1, S, N/2, 2), ``kernel.C`` (c, H, N/2, 2), ``kernel.P`` (r, S, N/2, 2), ``D`` (c, H); numpy or
        torch. A ``kernel.l_kernel`` buffer, if present, sets ``config["l_kernel"]``. Other keys are kept.
    config : mapping
        ``dt_transform`` (default "softplus", as configs/model/layer/s4.yaml; the SSMKernel class default is
        "exp" — read it from the checkpoint's config), ``real_transform`` ("exp"), ``imag_transform``
        ("none"), ``l_kernel`` (0: C is raw; l > 0: C holds C̃ = C(I − Ā^l)).
    index : int

    Returns
    -------
    Layer
    """
    cfg = {k: DEFAULTS[k] for k in ("dt_transform", "real_transform", "imag_transform")}
    cfg.update({"l_kernel": 0, **dict(config)})
    for key in ("dt_transform", "real_transform", "imag_transform"):
        check_choice(NAME, key, cfg[key], TRANSFORMS)
    out = dict(params)
    if "kernel.l_kernel" in params:
        lk = fetch_param(NAME, index, params, "kernel.l_kernel", (), "()")
        if "l_kernel" in config and int(config["l_kernel"]) != int(lk):
            raise SsmctlError(
                f"{NAME} layer {index}: config l_kernel={config['l_kernel']} disagrees with the "
                f"kernel.l_kernel buffer ({int(lk)})"
            )
        cfg["l_kernel"] = int(lk)
    lk = cfg["l_kernel"]
    if isinstance(lk, bool) or int(lk) != lk or lk < 0:
        raise SsmctlError(f"{NAME} layer {index}: l_kernel must be a non-negative integer, got {lk!r}")
    cfg["l_kernel"] = int(lk)
    A_real = fetch_param(NAME, index, params, "kernel.A_real", (None, None), "(S, N/2)")
    S, K = A_real.shape
    C = fetch_param(NAME, index, params, "kernel.C", (None, None, K, 2), "(c, H, N/2, 2)")
    c, H = C.shape[:2]
    if H % S:
        raise ShapeError(f"{NAME} layer {index}: n_ssm = {S} (kernel.A_real axis 0) must divide H = {H}")
    inv_dt = fetch_param(NAME, index, params, "kernel.inv_dt", (H, None), "(H, 1) or (H, N/2)")
    if inv_dt.shape[1] not in (1, K):
        raise ShapeError(
            f"{NAME} layer {index}: parameter 'kernel.inv_dt' has shape {inv_dt.shape}, expected (H, 1) = "
            f"({H}, 1) or (H, N/2) = ({H}, {K})"
        )
    out["kernel.inv_dt"], out["kernel.A_real"], out["kernel.C"] = inv_dt, A_real, C
    out["kernel.A_imag"] = fetch_param(NAME, index, params, "kernel.A_imag", (S, K), "(S, N/2)")
    out["kernel.B"] = fetch_param(NAME, index, params, "kernel.B", (1, S, K, 2), "(1, S, N/2, 2)")
    P = fetch_param(NAME, index, params, "kernel.P", (None, S, K, 2), "(r, S, N/2, 2)")
    out["kernel.P"] = P
    out["D"] = fetch_param(NAME, index, params, "D", (c, H), "(c, H)")
    out.pop("kernel.l_kernel", None)
    cfg.update(
        {
            "d_state": 2 * K,
            "n_ssm": S,
            "rank": P.shape[0],
            "channels": c,
            "dt_tie": inv_dt.shape[1] == 1,
            "discretization": "bilinear",
        }
    )
    return Layer(NAME, index, out, cfg)


def step_sizes(layer: Layer) -> np.ndarray:
    """Δ of each channel, shape (H, 1) (tied) or (H, N/2), float64.

    Parameters
    ----------
    layer : Layer
        An S4 layer: ``kernel.inv_dt`` through the layer's ``dt_transform`` (default "softplus").

    Returns
    -------
    ndarray, float64, shape (H, 1) or (H, N/2)
    """
    return param_transform(layer.params["kernel.inv_dt"], layer.config.get("dt_transform", DEFAULTS["dt_transform"]))


def _continuous_real(layer: Layer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Real-coordinate continuous (A (S, N, N), B (S, N), C (H, c, N), D (H, c, 1)) of a layer."""
    p, cfg = layer.params, layer.config
    lam = -param_transform(p["kernel.A_real"], cfg.get("real_transform", "exp")) - 1j * param_transform(
        p["kernel.A_imag"], cfg.get("imag_transform", "none")
    )  # (S, K)
    S, K = lam.shape
    P = complex_of(p["kernel.P"])  # (r, S, K)
    B = complex_of(p["kernel.B"])[0]  # (S, K)
    C = complex_of(p["kernel.C"])  # (c, H, K)
    idx = np.arange(K)
    A = np.zeros((S, 2 * K, 2 * K))
    A[:, idx, idx] = lam.real
    A[:, idx + K, idx + K] = lam.real
    A[:, idx, idx + K] = -lam.imag
    A[:, idx + K, idx] = lam.imag
    q = np.concatenate([P.real, P.imag], axis=-1)  # (r, S, N)
    A -= 2.0 * np.einsum("rsi,rsj->sij", q, q)
    Br = np.concatenate([B.real, B.imag], axis=-1)
    Cr = 2.0 * np.concatenate([C.real, -C.imag], axis=-1).transpose(1, 0, 2)  # (H, c, N)
    D = np.asarray(p["D"], dtype=np.float64).T[:, :, None]  # (H, c, 1)
    return A, Br, Cr, D


def system(layer: Layer) -> DenseLTI:
    """The layer as H real SISO (SIMO for channels > 1) systems: ``DenseLTI`` with batch (H,), N states.

    The conjugate-augmented DPLR matrix in real coordinates, discretized bilinearly with each channel's Δ.
    When ``l_kernel`` = l > 0 the stored C is C̃ = C(I − Ā^l) and C = C̃(I − Ā^l)^{-1} is recovered here
    (float64), so the system's impulse response is the reference kernel for any length.

    Parameters
    ----------
    layer : Layer
        An S4 layer.

    Returns
    -------
    DenseLTI
        Ā (H, N, N), B̄ (H, N, 1), C (H, c, N), D (H, c, 1), real; ``exact_eigenvalues`` (H, N) from
        :func:`exact_discrete_eigenvalues` while the layer is at its HiPPO-LegS init, else None.
    """
    A, B, C, D = _continuous_real(layer)
    S, N = A.shape[0], A.shape[-1]
    H = C.shape[0]
    which = np.arange(H) % S  # einops '(v t)': channel h uses copy h mod S
    dt = step_sizes(layer)  # (H, 1) or (H, N/2)
    dt = np.broadcast_to(dt, (H, N // 2))
    dt = np.concatenate([dt, dt], axis=-1)[:, :, None]  # Δ acts on Re and Im coordinates alike: (H, N, 1)
    eye = np.eye(N)
    dA = dt * A[which]
    left = eye - dA / 2.0
    Ad = np.linalg.solve(left, eye + dA / 2.0)
    Bd = np.linalg.solve(left, dt * B[which][:, :, None])
    l = int(layer.config.get("l_kernel", 0))
    if l > 0:
        # C̃ = C(I − Ā^l)  ⇒  Cᵀ = (I − Ā^l)^{-ᵀ} C̃ᵀ.
        M = eye - np.linalg.matrix_power(Ad, l)
        C = np.linalg.solve(M.transpose(0, 2, 1), C.transpose(0, 2, 1)).transpose(0, 2, 1)
    try:  # the closed-form spectrum while A and P are still HiPPO-LegS; LAPACK's is off by O(N) there
        exact = exact_discrete_eigenvalues(layer)
    except UnsupportedSystemError:
        exact = None  # trained: DenseLTI.eigenvalues() warns when its eigenproblem is ill-conditioned
    return DenseLTI(Ad, Bd, C, D, meta=system_meta(NAME, layer.index), exact_eigenvalues=exact)


def exact_continuous_eigenvalues(N: int) -> np.ndarray:
    """Exact eigenvalues of the HiPPO-LegS matrix S4 is initialized from: −1, …, −N (triangular form), (N,).

    Parameters
    ----------
    N : int
        State size (d_state).

    Returns
    -------
    ndarray, float64, shape (N,)

    Raises
    ------
    SsmctlError
        When N is not a positive integer.
    """
    return hippo.exact_eigenvalues(N)


def exact_discrete_eigenvalues(layer: Layer, rtol: float = 1e-3) -> np.ndarray:
    """Exact discrete eigenvalues of an S4 layer still at its HiPPO-LegS init, shape (H, N), real.

    λ̄ = (1 + Δλ/2)/(1 − Δλ/2) for λ = −1..−N and each channel's Δ (negative once Δ(n+1) > 2). The layer must
    still hold the LegS DPLR form (checked through the invariants Λ and |P̃|, to ``rtol``): after training
    the eigenvalues move and only pseudospectra (:mod:`ssmctl.analysis.pseudospectra`) are reliable.

    Parameters
    ----------
    layer : Layer
        An S4 layer.
    rtol : float, default 1e-3
        Relative (and absolute) tolerance of the check that Λ and |P̃| are still the LegS DPLR values.

    Returns
    -------
    ndarray, float64, shape (H, N)
        λ̄ for λ = −1, …, −N per channel.

    Raises
    ------
    UnsupportedSystemError
        Untied Δ (per-state steps do not map −k to a single λ̄), or A, P no longer the LegS DPLR form.
    """
    N = int(layer.config.get("d_state", 2 * np.asarray(layer.params["kernel.A_real"]).shape[-1]))
    dt = step_sizes(layer)
    if dt.shape[-1] != 1:
        raise UnsupportedSystemError(f"{NAME}: exact eigenvalues need a tied Δ (kernel.inv_dt of shape (H, 1))")
    form = hippo.dplr(N).half()
    cfg = layer.config
    lam = -param_transform(layer.params["kernel.A_real"], cfg.get("real_transform", "exp")) - 1j * param_transform(
        layer.params["kernel.A_imag"], cfg.get("imag_transform", "none")
    )
    P = complex_of(layer.params["kernel.P"])
    ok = np.allclose(lam, form.lam, rtol=rtol, atol=rtol) and np.allclose(
        np.abs(P[0]), np.abs(form.P), rtol=rtol, atol=rtol
    )
    ok = ok and (P.shape[0] == 1 or np.allclose(P[1:], 0.0, atol=rtol))
    if not ok:
        raise UnsupportedSystemError(
            f"{NAME} layer {layer.index}: A or P differ from the HiPPO-LegS DPLR form (trained?), so the exact "
            "eigenvalues −1..−N no longer apply; use ssmctl.analysis.pseudospectra instead"
        )
    x = dt * exact_continuous_eigenvalues(N)[None, :]
    return (1.0 + x / 2.0) / (1.0 - x / 2.0)


FAMILY = register(
    Family(
        name=NAME,
        paper="Gu, Goel, Ré (2022): Efficiently Modeling Long Sequences with Structured State Spaces",
        kind="LTI",
        parametrization="LTI",
        discretization="Bilinear",
        structure="SISO",
        implementation="Convolution and Recurrence",
        scaffolding="MLP / H3",
        defaults=dict(DEFAULTS),
        init=init,
        notes=(
            "Reference code (state-spaces/s4 SSMKernelDPLR): A = diag(Λ) − PP* from HiPPO-LegS (conjugate half "
            "stored, Im Λ < 0), A = −exp(A_real) − i·A_imag. configs/model/layer/s4.yaml sets "
            "dt_transform softplus and n_ssm 1 (A, B, P shared over channels); the SSMKernel class defaults are "
            "exp and n_ssm = H (preset 'kernel_class'). The kernel excludes D and is computed by Cauchy + "
            "Woodbury at roots of unity on C̃ = C(I − Ā^l): the first forward pass overwrites the stored C with C̃ "
            "and sets l_kernel (system() undoes it). That float32 kernel is only ~1e-4..1e-3 accurate at N=256, "
            "L=4096; ssmctl works in float64. The dense DPLR matrix is extremely non-normal: its LAPACK "
            "eigenvalues are wrong by O(N); the exact init spectrum is −1..−N (exact_continuous_eigenvalues), "
            "bilinear λ̄ < 0 once Δ(n+1) > 2. Table I's SISO: one system per channel (SIMO for channels > 1)."
        ),
        variants=("legs",),
        presets={k: dict(v) for k, v in PRESETS.items()},
        system=system,
        layer_from_params=layer_from_params,
    )
)
