"""ssmctl.checkpoints.settings: every config value the loaders read is checked by type and range."""

from __future__ import annotations

import math

import pytest

from ssmctl.checkpoints.settings import KINDS, as_float, checked, checked_mapping
from ssmctl.errors import CheckpointError


@pytest.mark.parametrize("value, expected", [(16, 16), (16.0, 16), (1, 1)])
def test_sizes(value, expected):
    out = checked("d_state", value, "entry")
    assert out == expected and type(out) is int


@pytest.mark.parametrize("value", ["16", 0, -1, 2.5, True, None, [16], {}, float("nan")])
def test_bad_sizes(value):
    with pytest.raises(CheckpointError, match=r"^config entry must be a positive integer, got "):
        checked("d_state", value, "config entry")


def test_eps_and_transformers_float_form():
    assert checked("eps", 1e-5, "e") == 1e-5 and checked("eps", 0, "e") == 0.0
    assert checked("eps", {"__float__": "1e-6"}, "e") == 1e-6
    for bad in ("x", -1e-5, float("inf"), float("nan"), True, [1e-5], {"__float__": "x"}):
        with pytest.raises(CheckpointError, match="must be a finite number >= 0"):
            checked("eps", bad, "e")


def test_dt_limit():
    assert checked("dt_limit", [0.0, {"__float__": "Infinity"}], "d") == (0.0, math.inf)
    assert checked("dt_limit", (1e-3, 0.1), "d") == (1e-3, 0.1)
    for bad in ([0.1, 0.0], [-1, 1], [0, 1, 2], "ab", 5, [0, "x"], [float("nan"), 1], {"a": 1, "b": 2}):
        with pytest.raises(CheckpointError, match=r"must be a pair \[low, high\]"):
            checked("dt_limit", bad, "d")


def test_flags_and_names():
    assert checked("conv_bias", False, "f") is False
    for bad in (1, 0, "true", None):
        with pytest.raises(CheckpointError, match="must be true or false"):
            checked("conv_bias", bad, "f")
    assert checked("dt_transform", "exp", "t") == "exp"
    with pytest.raises(CheckpointError, match=r"must be a name \(a string\), got 3"):
        checked("dt_transform", 3, "t")


def test_long_values_are_shortened_in_messages():
    with pytest.raises(CheckpointError) as err:
        checked("d_model", "x" * 500, "e")
    assert len(str(err.value)) < 120 and str(err.value).endswith("...")


def test_mapping_and_as_float():
    assert checked_mapping({"a": 1}, "c") == {"a": 1}
    with pytest.raises(CheckpointError, match="c must be a JSON object, got list"):
        checked_mapping([1], "c")
    assert as_float(3) == 3.0
    with pytest.raises(CheckpointError):
        as_float(True)


def test_every_setting_hf_known_reads_has_a_kind():
    """hf_known's names (all families) and lightning_known's are all in KINDS."""
    from ssmctl.checkpoints.layouts import hf_known
    from ssmctl.checkpoints.load import _LIGHTNING_SETTINGS

    config = {name: 4 for name in (
        "hidden_size", "state_size", "conv_kernel", "time_step_rank", "n_groups", "num_heads", "head_dim",
        "lru_width", "num_attention_heads", "conv1d_width")}
    for family in ("mamba", "mamba2", "rglru", "s4"):
        assert set(hf_known(family, config)) <= set(KINDS)
    assert set(_LIGHTNING_SETTINGS.values()) <= set(KINDS)
