"""errors.require_hint: the one way a missing checkpoint setting is asked for."""

import pytest

from ssmctl.errors import CheckpointError, MissingHintError, UnknownNameError, require_hint

WHY = "an S4 state dict does not record how Δ is parametrized"


def test_a_given_hint_is_returned():
    assert require_hint({"dt_transform": "exp"}, "dt_transform", ("exp", "softplus"), WHY) == "exp"


@pytest.mark.parametrize("hints", [None, {}, {"dt_transform": None}])
def test_a_missing_hint_names_the_setting_its_choices_and_the_flag(hints):
    with pytest.raises(MissingHintError) as info:
        require_hint(hints, "dt_transform", ("exp", "softplus"), WHY)
    assert str(info.value) == (f"{WHY}: pass dt_transform= to ssmctl.load (CLI: --dt-transform), one of exp, softplus")
    assert isinstance(info.value, CheckpointError)


def test_an_unknown_hint_value_lists_the_choices():
    with pytest.raises(UnknownNameError, match=r"unknown dt_transform \(--dt-transform\) 'foo'; known: exp, softplus"):
        require_hint({"dt_transform": "foo"}, "dt_transform", ("exp", "softplus"), WHY)
