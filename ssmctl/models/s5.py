"""S5: one diagonal MIMO state-space system per layer (Smith, Warrington, Linderman 2023).

Layout: S5SSM of lindermanlab/S5 (s5/ssm.py), per layer with P stored modes (P = d_state/2 with conj_sym)::

    Lambda_re  (P,)        continuous eigenvalues Λ = Lambda_re + i·Lambda_im
    Lambda_im  (P,)
    B          (P, H, 2)   B̃ = V^{-1}B (complex, real view)
    C          (H, P, 2)   C̃ = C V
    D          (H,)        y = 2·Re(C̃x) + D⊙u (conj_sym), Re(C̃x) + D⊙u otherwise
    log_step   (P, 1)      per-state Δ = step_rescale·exp(log_step)

Init (s5/ssm_init.py, s5/train.py): the d_state states are split in J = ``blocks`` blocks; each block gets the
HiPPO-N eigen-decomposition of LegS(d_state/J) (with conj_sym its Im < 0 half), so all blocks share their
eigenvalues; V = blkdiag(V_b), V^{-1} = blkdiag(V_b*). B ~ lecun_normal (P_full, H) (fan_in = P_full, truncated
normal), C ~ ``C_init`` (trunc_standard_normal: lecun_normal per output row, fan_in = P_full; lecun_normal:
fan_in = H·P_full; complex_normal: N(0, ½) per part, not multiplied by V), D ~ N(0, 1).
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
    complex_of,
    fetch_param,
    log_uniform,
    real_view,
    system_meta,
    truncated_normal,
    with_extras,
)
from .base import Layer, Model, register_module

__all__ = ["FAMILY", "DISCRETIZATIONS", "C_INITS", "init", "init_eigenbasis", "layer_from_params", "system"]

NAME = "s5"
DISCRETIZATIONS: tuple[str, ...] = ("zoh", "bilinear")
C_INITS: tuple[str, ...] = ("trunc_standard_normal", "lecun_normal", "complex_normal")

DEFAULTS: dict[str, Any] = {
    # lindermanlab/S5 run_train.py
    "d_model": 128,
    "d_state": 256,  # ssm_size_base P (full; conj_sym stores P/2)
    "blocks": 8,
    "n_layers": 6,
    "discretization": "zoh",
    "dt_min": 1e-3,
    "dt_max": 1e-1,
    "conj_sym": True,
    "clip_eigs": False,
    "C_init": "trunc_standard_normal",
    "step_rescale": 1.0,
    "seed": 0,
}

PRESETS: dict[str, dict[str, Any]] = {
    # bin/run_experiments/run_lra_pathx.sh (that run is bidirectional; ssmctl models the forward scan).
    "lra_pathx": {
        "d_model": 128, "d_state": 256, "blocks": 16, "n_layers": 6, "dt_min": 1e-4, "C_init": "complex_normal",
    },
    # bin/run_experiments/run_lra_cifar.sh (bidirectional there as well).
    "lra_cifar": {
        "d_model": 512, "d_state": 384, "blocks": 3, "n_layers": 6, "clip_eigs": True, "C_init": "lecun_normal",
    },
}


def init_eigenbasis(d_state: int, blocks: int, conj_sym: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The block-diagonal HiPPO-N eigen-decomposition of s5/train.py, in block form.

    Parameters
    ----------
    d_state : int
        Full state size P (ssm_size_base); must be divisible by ``blocks`` (and the block size even with
        ``conj_sym``).
    blocks : int
        J.
    conj_sym : bool

    Returns
    -------
    lam : complex128, shape (P_s,)
        Stored eigenvalues (P_s = P/2 with conj_sym): the block's eigenvalues tiled J times.
    V_block : complex128, shape (P/J, P_s/J)
        One block's eigenvectors; V = blkdiag(V_block, …) (P, P_s) and V^{-1} = blkdiag(V_block*, …).
    """
    P, J = check_positive_int(NAME, d_state=d_state, blocks=blocks)
    if P % J:
        raise SsmctlError(f"{NAME}: d_state ({P}) must be divisible by blocks ({J})")
    size = P // J
    if conj_sym and size % 2:
        raise SsmctlError(
            f"{NAME}: with conj_sym the block size d_state/blocks must be even (conjugate pairs), got {size}"
        )
    form = hippo.dplr(size)
    if conj_sym:
        form = form.half()
    return np.tile(form.lam, J), form.V


def _blockwise(V_block: np.ndarray, X: np.ndarray, J: int, left: bool) -> np.ndarray:
    """blkdiag(V_b*)·X (left) or X·blkdiag(V_b) (right) without forming the block-diagonal matrix."""
    rows, cols = V_block.shape
    if left:  # X (P, H) → (P_s, H)
        Xb = X.reshape(J, rows, -1)
        return np.einsum("rc,jrh->jch", V_block.conj(), Xb).reshape(J * cols, -1)
    Xb = X.reshape(X.shape[0], J, rows)  # X (H, P) → (H, P_s)
    return np.einsum("hjr,rc->hjc", Xb, V_block).reshape(X.shape[0], J * cols)


def _check_config(cfg: Mapping[str, Any]) -> None:
    check_choice(NAME, "discretization", cfg["discretization"], DISCRETIZATIONS)
    check_choice(NAME, "C_init", cfg["C_init"], C_INITS)
    if not float(cfg["step_rescale"]) > 0:
        raise SsmctlError(f"{NAME}: step_rescale must be > 0, got {cfg['step_rescale']}")


def init(**hyper: Any) -> Model:
    """A freshly initialized S5 model.

    Parameters
    ----------
    **hyper
        ``d_model`` (H, 128), ``d_state`` (P, 256; P/2 stored with conj_sym), ``blocks`` (J, 8),
        ``n_layers`` (6), ``discretization`` ("zoh" | "bilinear"), ``dt_min``/``dt_max`` (1e-3/1e-1),
        ``conj_sym`` (True), ``clip_eigs`` (False), ``C_init`` ("trunc_standard_normal" |
        "lecun_normal" | "complex_normal"), ``step_rescale`` (1.0), ``seed`` (0), ``preset``
        ("lra_pathx", "lra_cifar"). Defaults follow lindermanlab/S5 run_train.py.

    Returns
    -------
    Model
    """
    cfg = resolve_config(NAME, DEFAULTS, PRESETS, hyper)
    H, n_layers = check_positive_int(NAME, d_model=cfg["d_model"], n_layers=cfg["n_layers"])
    dt_min, dt_max = check_dt_range(NAME, cfg["dt_min"], cfg["dt_max"])
    _check_config(cfg)
    conj_sym = bool(cfg["conj_sym"])
    J = int(cfg["blocks"])
    lam, V_block = init_eigenbasis(cfg["d_state"], J, conj_sym)
    P_full, Ps = V_block.shape[0] * J, lam.shape[0]
    rng = np.random.default_rng(cfg["seed"])
    layers = []
    for i in range(n_layers):
        B = truncated_normal(rng, (P_full, H), 1.0 / P_full)  # jax lecun_normal on (P, H): fan_in = P
        if cfg["C_init"] == "complex_normal":
            C_tilde = (rng.standard_normal((H, Ps)) + 1j * rng.standard_normal((H, Ps))) * np.sqrt(0.5)
        else:
            # trunc_standard_normal draws lecun_normal on (1, P, 2) per row (fan_in P); lecun_normal on
            # (H, P, 2) has fan_in H·P (jax counts the leading axis as receptive field).
            fan_in = P_full if cfg["C_init"] == "trunc_standard_normal" else H * P_full
            C_ = truncated_normal(rng, (H, P_full, 2), 1.0 / fan_in)
            C_tilde = _blockwise(V_block, C_[..., 0] + 1j * C_[..., 1], J, left=False)
        params = {
            "Lambda_re": lam.real.copy(),
            "Lambda_im": lam.imag.copy(),
            "B": real_view(_blockwise(V_block, B, J, left=True)),
            "C": real_view(C_tilde),
            "D": rng.standard_normal(H),
            "log_step": log_uniform(rng, (Ps, 1), dt_min, dt_max),
        }
        layers.append(Layer(NAME, i, params, _layer_config(cfg, P_full)))
    return Model(NAME, dict(cfg), layers, source="init")


def _layer_config(cfg: Mapping[str, Any], P_full: int) -> dict[str, Any]:
    return {
        "d_state": P_full,
        "blocks": cfg.get("blocks"),
        "conj_sym": bool(cfg["conj_sym"]),
        "clip_eigs": bool(cfg["clip_eigs"]),
        "discretization": cfg["discretization"],
        "step_rescale": float(cfg["step_rescale"]),
        "C_init": cfg.get("C_init"),
    }


def layer_from_params(params: Mapping[str, Any], config: Mapping[str, Any], index: int) -> Layer:
    """Build (and validate) one S5 layer from its S5SSM parameters.

    Parameters
    ----------
    params : mapping
        ``Lambda_re``/``Lambda_im`` (P,), ``B`` (P, H, 2), ``C`` (H, P, 2), ``D`` (H,), ``log_step`` (P, 1);
        numpy or torch. Other keys are kept.
    config : mapping
        ``conj_sym`` (True), ``clip_eigs`` (False), ``discretization`` ("zoh"), ``step_rescale`` (1.0).
        A bidirectional layer (``C1``/``C2``, C of shape (H, 2P, 2)) is refused: it is not causal.
    index : int

    Returns
    -------
    Layer
    """
    cfg = {k: DEFAULTS[k] for k in ("conj_sym", "clip_eigs", "discretization", "step_rescale")}
    cfg.update(dict(config))
    _check_config({**cfg, "C_init": cfg.get("C_init") or DEFAULTS["C_init"]})
    if "C1" in params or "C2" in params or cfg.get("bidirectional"):
        raise SsmctlError(
            f"{NAME} layer {index}: bidirectional S5 (C1/C2) runs a backward scan too and is not a causal "
            "system; ssmctl models unidirectional S5 only"
        )
    out: dict[str, Any] = {}
    lre = fetch_param(NAME, index, params, "Lambda_re", (None,), "(P,)")
    Ps = lre.shape[0]
    out["Lambda_re"] = lre
    out["Lambda_im"] = fetch_param(NAME, index, params, "Lambda_im", (Ps,), "(P,)")
    B = fetch_param(NAME, index, params, "B", (Ps, None, 2), "(P, H, 2)")
    H = B.shape[1]
    out["B"] = B
    out["C"] = fetch_param(NAME, index, params, "C", (H, Ps, 2), "(H, P, 2)")
    out["D"] = fetch_param(NAME, index, params, "D", (H,), "(H,)")
    out["log_step"] = fetch_param(NAME, index, params, "log_step", (Ps, 1), "(P, 1)")
    cfg["d_state"] = 2 * Ps if cfg["conj_sym"] else Ps
    return Layer(NAME, index, with_extras(NAME, index, params, out), cfg)


def system(layer: Layer) -> DiagonalLTI:
    """The layer as one MIMO ``DiagonalLTI`` (m = p = H), output ``"conj_pair"`` (conj_sym) or ``"real"``.

    Λ (clipped to Re ≤ −1e-4 with ``clip_eigs``), discretized with per-state Δ = step_rescale·exp(log_step)
    by ZOH or bilinear; D = diag(D).

    Parameters
    ----------
    layer : Layer
        An S5 layer.

    Returns
    -------
    DiagonalLTI
        No batch dims: λ (P,), B (P, H), C (H, P), D (H, H); P = d_state/2 with ``conj_sym``, else d_state.
    """
    p, cfg = layer.params, layer.config
    re = np.asarray(p["Lambda_re"], dtype=np.float64)
    if cfg.get("clip_eigs"):
        re = np.minimum(re, -1e-4)
    lam = re + 1j * np.asarray(p["Lambda_im"], dtype=np.float64)
    B = complex_of(p["B"])
    C = complex_of(p["C"])
    D = np.diag(np.asarray(p["D"], dtype=np.float64))
    step = float(cfg.get("step_rescale", 1.0)) * np.exp(np.asarray(p["log_step"], dtype=np.float64)[:, 0])
    return from_continuous(
        lam,
        B,
        C,
        D,
        dt=step,
        method=cfg.get("discretization", "zoh"),
        output="conj_pair" if cfg.get("conj_sym", True) else "real",
        meta=system_meta(NAME, layer.index),
    )


FAMILY = register_module(
    __name__,
    name=NAME,
    paper="Smith, Warrington, Linderman (2023): Simplified State Space Layers for Sequence Modeling",
    kind="LTI",
    parametrization="LTI",
    discretization="Exact / Bilinear",
    structure="MIMO",
    implementation="Parallel Scan",
    scaffolding="MLP / H3",
    notes=(
        "Reference code (lindermanlab/S5): ZOH by default, bilinear optional; per-state Δ (log_step (P,1)). "
        "conj_sym (default) stores P/2 modes with output 2·Re(C̃x) + D⊙u. Block-diagonal HiPPO-N init: J "
        "blocks share identical eigenvalues (default 16 distinct values × 8, Re = −½). B is drawn "
        "lecun_normal on (P, H) — fan_in P, not H — then B̃ = V^{-1}B; C_init trunc_standard_normal (default) "
        "is lecun_normal per row; clip_eigs clips Re Λ to ≤ −1e-4. The repo's LRA scripts are bidirectional "
        "(a second, backward scan with C2): not causal, not modelled; presets keep their other settings."
    ),
    variants=(),
)
