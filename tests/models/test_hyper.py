"""ssmctl.models._hyper: every family merges and checks its hyperparameters the same way, with one wording."""

from __future__ import annotations

import pytest

import ssmctl
from ssmctl.errors import SsmctlError, UnknownNameError

FAMILIES = list(ssmctl.families())


@pytest.mark.parametrize("family", FAMILIES)
def test_unknown_hyperparameter_and_preset(family):
    with pytest.raises(UnknownNameError, match=rf"^{family}: unknown hyperparameter 'd_sate'; known: .*, preset$"):
        ssmctl.init(family, d_sate=4)
    with pytest.raises(UnknownNameError, match=rf"^unknown {family} preset 'huge'; known: "):
        ssmctl.init(family, preset="huge")


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "8"])
def test_sizes_are_positive_integers(family, bad):
    with pytest.raises(SsmctlError, match=rf"^{family}: d_model must be a positive integer, got {bad!r}$"):
        ssmctl.init(family, d_model=bad, n_layers=1)


@pytest.mark.parametrize("family", [f for f in FAMILIES if "dt_min" in ssmctl.models.get_family(f).defaults])
def test_step_size_range(family):
    with pytest.raises(SsmctlError, match=rf"^{family}: dt_min must be > 0 \(Δ is sampled log-uniformly\), got 0.0$"):
        ssmctl.init(family, dt_min=0.0, n_layers=1)
    with pytest.raises(SsmctlError, match=rf"^{family}: dt_min \(0.5\) must not exceed dt_max \(0.1\)$"):
        ssmctl.init(family, dt_min=0.5, dt_max=0.1, n_layers=1)
    with pytest.raises(SsmctlError, match=rf"^{family}: dt_max must be a finite number, got 'x'$"):
        ssmctl.init(family, dt_max="x", n_layers=1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("bad", [-1, 1.5, "x", 2**70, True])
def test_seeds(family, bad):
    """A negative, fractional or huge seed was a ValueError/TypeError from numpy or torch in some families."""
    with pytest.raises(SsmctlError, match=rf"^{family}: seed must be an integer in \[0, 2\*\*63\), got "):
        ssmctl.init(family, seed=bad, n_layers=1)
    assert ssmctl.init(family, seed=2**63 - 1, n_layers=1).layers
