import control
import numpy as np
import pytest

import ssmctl
from ssmctl.errors import ShapeError, UnsupportedSystemError
from tests.helpers import random_diagonal


@pytest.mark.parametrize("output", ["real", "conj_pair"])
@pytest.mark.parametrize("m,p", [(1, 1), (2, 3)])
def test_to_control_agrees_on_impulse_and_frequency(rng, output, m, p):
    sys = random_diagonal(rng, N=6, m=m, p=p, output=output)
    cs = ssmctl.to_control(sys)
    assert cs.nstates == sys.n_states and cs.isdtime(strict=True)
    L = 30
    resp = control.impulse_response(cs, T=np.arange(L))
    K_control = np.asarray(resp.outputs).reshape(p, m, L).transpose(2, 0, 1)
    np.testing.assert_allclose(ssmctl.impulse_response(sys, L), K_control, atol=1e-12)
    w = np.linspace(0, np.pi, 11)
    G_control = np.asarray(cs(np.exp(1j * w))).reshape(p, m, -1).transpose(2, 0, 1)
    np.testing.assert_allclose(ssmctl.frequency_response(sys, w), G_control, atol=1e-11)
    np.testing.assert_allclose(np.sort_complex(ssmctl.eigenvalues(sys)), np.sort_complex(cs.poles()), atol=1e-12)


def test_from_control_round_trip(rng):
    # A seeded random stable system (control.drss draws from numpy's global state: a different system each run).
    A = rng.normal(size=(5, 5))
    A *= 0.9 / np.abs(np.linalg.eigvals(A)).max()
    cs = control.ss(A, rng.normal(size=(5, 2)), rng.normal(size=(2, 5)), rng.normal(size=(2, 2)), dt=True)
    sys = ssmctl.from_control(cs)
    L = 20
    K_control = np.asarray(control.impulse_response(cs, T=np.arange(L)).outputs).transpose(2, 0, 1)
    np.testing.assert_allclose(ssmctl.impulse_response(sys, L), K_control, atol=1e-10)
    back = ssmctl.to_control(sys)
    np.testing.assert_allclose(np.asarray(back(0.3 + 0.4j)), np.asarray(cs(0.3 + 0.4j)), atol=1e-10)


def test_from_control_with_singular_A():
    # A pure delay: x_{k+1} = 0·x_k + u_k, y_k = x_k — A is singular, so the 2n realization is used.
    cs = control.ss([[0.0]], [[1.0]], [[1.0]], [[0.0]], dt=True)
    sys = ssmctl.from_control(cs)
    K = ssmctl.impulse_response(sys, 4)[:, 0, 0]
    np.testing.assert_allclose(K, [0.0, 1.0, 0.0, 0.0], atol=1e-15)


def test_to_control_refuses_batches_and_complex_systems(rng):
    with pytest.raises(ShapeError, match=r"batch shape \(3,\): pass sys\[i\]"):
        ssmctl.to_control(random_diagonal(rng, batch=(3,)))
    with pytest.raises(UnsupportedSystemError, match="real matrices only"):
        ssmctl.to_control(random_diagonal(rng, output="complex"))


def test_from_control_refuses_continuous_time():
    with pytest.raises(UnsupportedSystemError, match="needs a discrete-time system"):
        ssmctl.from_control(control.rss(3, 1, 1))
