"""Transmission zeros (spectrum.zeros) and classical stability margins (response.stability_margins).

References: python-control with slycot (``zeros`` via ab08nd, ``stability_margins``) on small real systems;
beyond its reach (complex systems, N = 1024) brute force written here: dense frequency sweeps, scipy
root finding, and G evaluated by linear solves.
"""

from __future__ import annotations

import warnings

import control
import numpy as np
import pytest
import scipy.optimize

import ssmctl
from tests.helpers import random_diagonal
from ssmctl import DenseLTI, DiagonalLTI, from_control, to_control
from ssmctl.analysis.response import StabilityMargins, stability_margins
from ssmctl.analysis.spectrum import zeros
from ssmctl.errors import UnsupportedSystemError


def rand_diag(rng, N, m, p, output="conj_pair", batch=(), rmin=0.3, rmax=0.95):
    return random_diagonal(rng, N, m, p, output=output, batch=batch, radius=(rmin, rmax))


def G_at(sys, omega):
    """G(e^{iω}) = zC(zI − Ā)^{-1}B̄ + D by linear solves, shape (F, p, m)."""
    d = sys.to_dense()
    z = np.exp(1j * np.atleast_1d(np.asarray(omega, dtype=float)))[:, None, None]
    X = np.linalg.solve(z * np.eye(d.n_states) - d.A, np.broadcast_to(d.B, (z.shape[0],) + d.B.shape))
    return z * (d.C @ X) + d.D


def same_set(a, b, tol):
    """Multisets of complex numbers equal up to tol (optimal matching)."""
    if len(a) != len(b):
        return False
    if len(a) == 0:
        return True
    M = np.abs(np.asarray(a)[:, None] - np.asarray(b)[None, :])
    r, c = scipy.optimize.linear_sum_assignment(M)
    return M[r, c].max() <= tol


# --------------------------------------------------------------------------------------------------
# zeros
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("m", [1, 2])
@pytest.mark.parametrize("output", ["conj_pair", "real"])
def test_zeros_match_python_control(m, output):
    rng = np.random.default_rng(0)
    for _ in range(3):
        sys = rand_diag(rng, 4, m, m, output=output)
        ref = control.zeros(to_control(sys))
        z = zeros(sys)
        assert z.shape == (sys.n_states,)
        assert same_set(z, ref, 1e-8 * max(1.0, np.abs(ref).max()))
        assert same_set(zeros(sys.to_dense()), ref, 1e-8 * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("m", [1, 2])
def test_zeros_of_strictly_proper_systems_drop_the_infinite_ones(m):
    # D' = 0: the pencil has infinite eigenvalues, which must not be reported
    rng = np.random.default_rng(1)
    for _ in range(3):
        n = 5
        A = rng.standard_normal((n, n))
        A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()
        ss = control.ss(A, rng.standard_normal((n, m)), rng.standard_normal((m, n)), np.zeros((m, m)), dt=True)
        ref = control.zeros(ss)
        z = zeros(from_control(ss))
        assert len(ref) < n and same_set(z, ref, 1e-8 * max(1.0, np.abs(ref).max()))


def test_zeros_of_complex_systems_make_G_singular():
    rng = np.random.default_rng(2)
    sys = rand_diag(rng, 4, 2, 2, output="complex")
    z = zeros(sys)
    assert z.shape == (4,)
    d = sys.to_dense()
    A, Bp, C, Dp = d.A, d.A @ d.B, d.C, d.C @ d.B + d.D  # textbook form, written out here
    for z0 in z:
        Gz = C @ np.linalg.solve(z0 * np.eye(4) - A, Bp) + Dp
        s = np.linalg.svd(Gz, compute_uv=False)
        assert s[-1] <= 1e-8 * s[0]
        pencil = np.block([[A - z0 * np.eye(4), Bp], [C, Dp]])
        s = np.linalg.svd(pencil, compute_uv=False)
        assert s[-1] <= 1e-10 * s[0]


def test_zeros_batch_and_errors():
    rng = np.random.default_rng(3)
    sys = rand_diag(rng, 3, 1, 1, batch=(2, 2))
    z = zeros(sys)
    assert z.shape == (2, 2, 6)
    for i in range(2):
        for j in range(2):
            assert same_set(z[i, j], zeros(sys[i, j]), 1e-12)
    with pytest.raises(UnsupportedSystemError, match=r"square system .* p=3 outputs and m=2 inputs"):
        zeros(rand_diag(rng, 3, 2, 3))


# --------------------------------------------------------------------------------------------------
# stability margins
# --------------------------------------------------------------------------------------------------
def _pc_margins(sys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(control.stability_margins(to_control(sys)), dtype=float)


def _genuine(sys, r):
    """Whether python-control's reported crossings are real ones: its polynomial method accepts roots up to
    eps^(1/deg) off the unit circle, so near-tangent loops can get spurious crossings."""
    ok = True
    if np.isfinite(r[1]):
        ok &= abs(abs(G_at(sys, r[4])[0, 0, 0]) - 1.0) < 1e-6
    if np.isfinite(r[0]) and r[3] > 0:
        g = G_at(sys, r[3])[0, 0, 0]
        ok &= abs(g.imag) < 1e-6 * abs(g)
    return ok


def _check_against_python_control(sys):
    ours = stability_margins(sys)
    assert isinstance(ours, StabilityMargins)
    o = np.array(ours, dtype=float)
    r = _pc_margins(sys)
    if not _genuine(sys, r):
        return None
    # gm, pm and their frequencies: the same crossing, to root-finding accuracy
    assert np.allclose(o[[0, 1, 3, 4]], r[[0, 1, 3, 4]], rtol=1e-7, atol=1e-9, equal_nan=True)
    # sm: python-control minimizes locally from a coarse grid, so ours (a certified global minimum over
    # [0, π], mirrored for the real system) may only be smaller
    brute = _brute_sm(lambda w: G_at(sys, w)[:, 0, 0], 0.0, np.pi)
    assert o[2] <= brute * (1 + 1e-9) and o[2] <= r[2] * (1 + 1e-8)
    assert o[2] >= brute * (1 - 1e-3)  # the sweep may miss the very bottom of a sharp dip, never by much
    assert np.abs(1.0 + G_at(sys, o[5])[0, 0, 0]) == pytest.approx(o[2], rel=1e-12)  # attained
    return o


def _brute_sm(G, lo, hi, F=20001):
    """min |1 + G| by a sweep refined with a bounded scalar minimization around its best sample."""
    w = np.linspace(lo, hi, F)
    d = np.abs(1.0 + G(w))
    k = int(np.argmin(d))
    res = scipy.optimize.minimize_scalar(
        lambda x: np.abs(1.0 + G(np.array([x])))[0],
        bounds=(w[max(k - 1, 0)], w[min(k + 1, F - 1)]),
        method="bounded",
        options={"xatol": 1e-14},
    )
    return min(d[k], res.fun)


def test_margins_match_python_control_on_random_systems():
    rng = np.random.default_rng(4)
    found = {"gm": 0, "pm": 0, "gm_at_dc": 0, "compared": 0}
    for _ in range(40):
        n = int(rng.integers(2, 5))
        lam = rng.uniform(0.3, 0.95, n) * np.exp(1j * rng.uniform(0, np.pi, n))
        sys = DiagonalLTI(lam, rng.standard_normal((n, 1)) + 1j * rng.standard_normal((n, 1)),
                          rng.uniform(0.3, 3) * (rng.standard_normal((1, n)) + 1j * rng.standard_normal((1, n))),
                          rng.standard_normal((1, 1)), output=["conj_pair", "real"][n % 2])
        o = _check_against_python_control(sys)
        if o is None:
            continue
        found["compared"] += 1
        found["gm"] += np.isfinite(o[0])
        found["pm"] += np.isfinite(o[1])
        found["gm_at_dc"] += o[3] == 0.0
    # the sample exercises every branch, and python-control's answer is usable in most draws
    assert min(found.values()) >= 3 and found["compared"] >= 30


def test_margins_of_dense_systems_and_known_loop():
    rng = np.random.default_rng(5)
    compared = 0
    for _ in range(6):
        n = 4
        A = rng.standard_normal((n, n))
        A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()
        sys = DenseLTI(A, rng.standard_normal((n, 1)), 2 * rng.standard_normal((1, n)), rng.standard_normal((1, 1)))
        compared += _check_against_python_control(sys) is not None
    assert compared >= 4
    # L(z) = k/(z − a) in textbook form: at ω = π, L = −k/(1 + a), so gm = (1 + a)/k
    a, k = 0.5, 0.6
    loop = from_control(control.ss([[a]], [[1.0]], [[k]], [[0.0]], dt=True))
    m = stability_margins(loop)
    assert m.gm == np.inf  # python-control keeps phase crossovers with arg < π: the one at π is not reported
    assert m.sm == pytest.approx(1 - k / (1 + a), rel=1e-12) and m.wms == pytest.approx(np.pi, abs=1e-6)
    r = _pc_margins(loop)
    assert r[0] == np.inf


def test_margins_at_N_1024_against_a_dense_sweep():
    # python-control's polynomial method cannot do this size; compare with a sweep refined by brentq
    rng = np.random.default_rng(6)
    N = 1024
    a = -0.5 + 1j * np.pi * np.arange(N)
    C = (rng.standard_normal((1, N)) + 1j * rng.standard_normal((1, N))) * np.sqrt(0.5)
    sys = ssmctl.from_continuous(a, np.ones((N, 1)), C, rng.standard_normal((1, 1)), dt=1e-2, output="conj_pair")
    m = stability_margins(sys)
    w = np.linspace(0.0, np.pi, 60001)  # 80 points per resonance width (1 − |λ| = 0.005)
    G = ssmctl.frequency_response(sys, w)[:, 0, 0]
    g = lambda x: ssmctl.frequency_response(sys, [x])[0, 0, 0]

    def crossings(f):
        i = np.flatnonzero(np.sign(f[1:-1]) != np.sign(f[2:])) + 1
        return i, w[i] - f[i] * (w[i + 1] - w[i]) / (f[i + 1] - f[i])  # linear interpolation

    i, wr = crossings(G.imag)
    Gr = G[i] + (G[i + 1] - G[i]) * (wr - w[i]) / (w[i + 1] - w[i])
    neg = Gr.real <= 0
    cand_w, cand_gm = wr[neg], 1 / np.abs(Gr[neg])
    if G[0].real <= 0:
        cand_w, cand_gm = np.append(cand_w, 0.0), np.append(cand_gm, 1 / abs(G[0].real))
    assert cand_w.size > 3
    k = np.argmin(np.abs(np.log(cand_gm)))
    j = np.searchsorted(w, cand_w[k])
    wpc = scipy.optimize.brentq(lambda x: g(x).imag, w[j - 1], w[j], xtol=1e-14) if cand_w[k] > 0 else 0.0
    assert m.wpc == pytest.approx(wpc, abs=1e-9)
    assert m.gm == pytest.approx(1 / abs(g(wpc)), rel=1e-8)

    i, wr = crossings(np.abs(G) - 1)
    Gr = G[i] + (G[i + 1] - G[i]) * (wr - w[i]) / (w[i + 1] - w[i])
    pms = np.remainder(np.angle(Gr, deg=True), 360) - 180
    assert wr.size > 3
    k = np.argmin(np.abs(pms))
    wgc = scipy.optimize.brentq(lambda x: abs(g(x)) - 1, w[i[k]], w[i[k] + 1], xtol=1e-14)
    assert m.wgc == pytest.approx(wgc, abs=1e-9)
    assert m.pm == pytest.approx(np.remainder(np.angle(g(wgc), deg=True), 360) - 180, abs=1e-7)

    brute = _brute_sm(lambda x: ssmctl.frequency_response(sys, x)[:, 0, 0], 0.0, np.pi, F=60001)
    assert brute * (1 - 1e-3) <= m.sm <= brute * (1 + 1e-9)
    assert abs(1 + g(m.wms)) == pytest.approx(m.sm, rel=1e-12)


def _brute_crossings(sys, lo, hi, F=40001):
    """(gm, wpc, pm, wgc) by a dense sweep of G (linear solves) and brentq refinement, with python-control's
    choices: the phase crossover (Im G = 0, Re G ≤ 0) whose 1/|G| is closest to 1, the gain crossover
    (|G| = 1) with the smallest |pm|."""
    g = lambda x: G_at(sys, x)[0, 0, 0]  # noqa: E731
    w = np.linspace(lo, hi, F)
    G = G_at(sys, w)[:, 0, 0]

    def roots(values, f):
        i = np.flatnonzero(np.sign(values[:-1]) != np.sign(values[1:]))
        return [scipy.optimize.brentq(f, w[j], w[j + 1], xtol=1e-15) for j in i]

    phase = [r for r in roots(G.imag, lambda x: g(x).imag) if g(r).real <= 0]
    gain = roots(np.abs(G) - 1, lambda x: abs(g(x)) - 1)
    pm_of = lambda r: np.remainder(np.angle(g(r), deg=True), 360) - 180  # noqa: E731
    wpc = min(phase, key=lambda r: abs(np.log(abs(g(r))))) if phase else np.nan
    wgc = min(gain, key=lambda r: abs(pm_of(r))) if gain else np.nan
    gm = 1 / abs(g(wpc)) if phase else np.inf
    pm = pm_of(wgc) if gain else np.inf
    return gm, wpc, pm, wgc


@pytest.mark.parametrize("seed", [11, 13, 23])
def test_margins_complex_system_use_the_whole_circle(seed):
    # Complex systems lack conjugate symmetry: crossovers at negative frequencies count (seed 11 has both there).
    sys = rand_diag(np.random.default_rng(seed), 3, 1, 1, output="complex", rmax=0.9)
    m = stability_margins(sys)
    gm, wpc, pm, wgc = _brute_crossings(sys, -np.pi, np.pi)
    assert np.isfinite(gm) and np.isfinite(pm)  # the crossings exist, so every check below runs
    assert m.wpc == pytest.approx(wpc, abs=1e-9) and m.gm == pytest.approx(gm, rel=1e-9)
    assert m.wgc == pytest.approx(wgc, abs=1e-9) and m.pm == pytest.approx(pm, abs=1e-7)
    brute = _brute_sm(lambda w: G_at(sys, w)[:, 0, 0], -np.pi, np.pi)
    assert brute * (1 - 1e-3) <= m.sm <= brute * (1 + 1e-9)
    assert np.abs(1.0 + G_at(sys, m.wms)[0, 0, 0]) == pytest.approx(m.sm, rel=1e-12)


def test_margins_of_batches_are_those_of_each_system():
    rng = np.random.default_rng(7)
    batch = rand_diag(rng, 3, 1, 1, batch=(2, 3))
    mb = stability_margins(batch)
    assert all(np.shape(x) == (2, 3) for x in mb)
    for i in range(2):
        for j in range(3):
            one = stability_margins(batch[i, j])
            assert np.allclose(np.array([x[i, j] for x in mb], dtype=float), np.array(one, dtype=float), equal_nan=True)


def test_margins_refuse_mimo():
    sys = rand_diag(np.random.default_rng(8), 3, 2, 1)
    with pytest.raises(UnsupportedSystemError, match=r"SISO loops only; this system has 2 inputs and 1 outputs"):
        stability_margins(sys)


def test_margins_of_static_gains_match_python_control_and_leave_the_others_alone():
    """A channel with B̄ = 0 (a Mamba channel at zero input without conv bias) is a static gain G ≡ D; |G| − 1
    is then identically zero (D = 1), which the crossing search must not subdivide forever."""
    rng = np.random.default_rng(7)
    lam = rng.uniform(0.2, 0.95, (4, 5)) * np.exp(1j * rng.uniform(0, np.pi, (4, 5)))
    B = rng.standard_normal((4, 5, 1)) + 0j
    B[[0, 2]] = 0.0
    C = rng.standard_normal((4, 1, 5)) + 1j * rng.standard_normal((4, 1, 5))
    D = np.array([1.0, 0.3, -0.5, -1.2]).reshape(4, 1, 1)
    sys_ = ssmctl.DiagonalLTI(lam, B, C, D, output="conj_pair")
    m = ssmctl.stability_margins(sys_)
    for i in range(4):
        ref = control.stability_margins(ssmctl.to_control(sys_[i]))
        if i in (0, 2):
            assert (m.gm[i], m.pm[i]) == (np.inf, np.inf) and np.isnan(m.wpc[i]) and np.isnan(m.wgc[i])
            assert m.sm[i] == pytest.approx(ref[2], rel=1e-12) and (ref[0], ref[1]) == (np.inf, np.inf)
        else:
            one = ssmctl.stability_margins(sys_[i])
            np.testing.assert_array_equal([np.asarray(x)[()] for x in one], [np.asarray(x)[i] for x in m])


def test_margins_of_an_unstable_open_loop_say_so():
    """L(z) = k/(z − a), a = 1.5: python-control reports margins as for any loop; ours are the same numbers and
    a warning says they are no statement about the closed loop (its pole a − k is what decides)."""
    from ssmctl.errors import SsmctlWarning

    a, k = 1.5, 0.8
    ss = control.ss([[a]], [[1.0]], [[k]], [[0.0]], dt=True)
    loop = from_control(ss)
    with pytest.warns(SsmctlWarning, match=r"open loop is not stable, spectral radius 1\.5: gain and phase margins"):
        m = stability_margins(loop)
    ref = _pc_margins(loop)
    w = np.linspace(0, np.pi, 200001)
    sweep = np.abs(1 + k / (np.exp(1j * w) - a))  # the closed form of |1 + L(e^{iω})|
    assert m.gm == pytest.approx(ref[0], rel=1e-9) and m.sm == pytest.approx(sweep.min(), rel=1e-9)
    batch = DiagonalLTI(np.array([[0.5], [1.5]]), np.ones((2, 1, 1)), np.ones((2, 1, 1)), output="real")
    with pytest.warns(SsmctlWarning, match=r"\(1 of 2 systems\)"):
        stability_margins(batch)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SsmctlWarning)
        stability_margins(batch[0])  # a stable loop: no warning
