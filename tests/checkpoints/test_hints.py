"""ssmctl.checkpoints.hints: the table of settings a checkpoint may not record, and how they are resolved."""

from __future__ import annotations

import pytest

from ssmctl.checkpoints.hints import HINTS, Hint, check_hints, recorded_or_hint
from ssmctl.errors import CheckpointError, MissingHintError, UnknownNameError


def test_table_entries_name_their_flag_and_values():
    assert HINTS["dt_transform"].choices == ("exp", "softplus") and HINTS["dt_transform"].flag == "--dt-transform"
    assert HINTS["ngroups"].choices is None and HINTS["ngroups"].type is int
    assert all(isinstance(h, Hint) and name == h.name and h.help for name, h in HINTS.items())


def test_check_hints_drops_unset_converts_and_refuses():
    assert check_hints(None) == {} and check_hints({"dt_transform": None}) == {}
    assert check_hints({"ngroups": "2", "dt_transform": "exp"}) == {"ngroups": 2, "dt_transform": "exp"}
    with pytest.raises(UnknownNameError, match=r"unknown hint 'etta'; known: dt_transform, eta, ngroups, num_heads, "
                       r"variant"):
        check_hints({"etta": 0.1})
    with pytest.raises(UnknownNameError, match=r"unknown dt_transform \(--dt-transform\) 'tanh'; known: exp, softplus"):
        check_hints({"dt_transform": "tanh"})
    with pytest.raises(CheckpointError, match=r"hint ngroups \(--ngroups\): cannot read 'two' as int"):
        check_hints({"ngroups": "two"})


def test_recorded_wins_hint_fills_in_nothing_is_guessed():
    why = "x.pt: layout s4-dplr does not record dt_transform"
    assert recorded_or_hint({"dt_transform": "softplus"}, {}, "dt_transform", why) == "softplus"
    assert recorded_or_hint({}, {"dt_transform": "exp"}, "dt_transform", why) == "exp"
    assert recorded_or_hint({"dt_transform": "exp"}, {"dt_transform": "exp"}, "dt_transform", why) == "exp"
    with pytest.raises(MissingHintError, match=r"^x.pt: layout s4-dplr does not record dt_transform: pass dt_transform= "
                       r"to ssmctl.load \(CLI: --dt-transform\), one of exp, softplus$"):
        recorded_or_hint({}, None, "dt_transform", why)
    with pytest.raises(CheckpointError, match=r"records dt_transform='softplus' but the hint says 'exp'; drop the hint"):
        recorded_or_hint({"dt_transform": "softplus"}, {"dt_transform": "exp"}, "dt_transform", why)
    assert recorded_or_hint({}, {"ngroups": 4}, "ngroups", "no config") == 4
    with pytest.raises(MissingHintError, match=r"no config: pass ngroups= to ssmctl.load \(CLI: --ngroups\), an integer$"):
        recorded_or_hint({}, {}, "ngroups", "no config")


def test_a_layout_narrows_a_hints_choices():
    """variant: softmax/linear for an attention layout, standard/reversed for a qLSTM one."""
    with pytest.raises(MissingHintError, match=r"pass variant= to ssmctl.load \(CLI: --variant\), one of standard, reversed$"):
        recorded_or_hint({}, None, "variant", "q.pt: no variant", ("standard", "reversed"))
    with pytest.raises(UnknownNameError, match=r"unknown variant \(--variant\) 'softmax'; known: reversed, standard"):
        recorded_or_hint({}, {"variant": "softmax"}, "variant", "q.pt: no variant", ("standard", "reversed"))
    assert recorded_or_hint({}, {"variant": "linear"}, "variant", "a.pt", ("softmax", "linear")) == "linear"
