import json

import numpy as np
import pytest

from ssmctl.report import dumps, fmt, format_table, to_jsonable


def test_strict_json_has_no_nan_or_infinity():
    text = dumps({"a": np.inf, "b": np.nan, "c": np.float32(1.5), "d": np.arange(3), "e": 1 + 2j})
    data = json.loads(text)
    assert data == {"a": None, "b": None, "c": 1.5, "d": [0, 1, 2], "e": {"re": 1.0, "im": 2.0}}
    assert "NaN" not in text and "Infinity" not in text


def test_dumps_refuses_what_it_cannot_make_strict():
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        dumps({"x": object()})


def test_fmt_and_table():
    assert fmt(np.inf) == "inf" and fmt(None) == "-" and fmt(3) == "3" and fmt(0.123456) == "0.1235"
    table = format_table([{"a": 1, "b": 2.5}], ["a", "b"], ["A", "B"])
    assert table.splitlines()[0].split() == ["A", "B"]
    assert table.splitlines()[2].split() == ["1", "2.5"]
    assert to_jsonable(np.bool_(True)) is True


def test_table_left_aligns_text_columns_and_strips_trailing_spaces():
    rows = [{"i": 0, "name": "mamba", "x": 0.5, "note": ""}, {"i": 12, "name": "attention", "x": None, "note": "n"}]
    table = format_table(rows, ["i", "name", "x", "note"], ["layer", "family", "x", "warnings"], left=("name", "note"))
    assert table.splitlines() == [
        "layer  family       x  warnings",
        "-----  ---------  ---  --------",
        "    0  mamba      0.5",
        "   12  attention    -  n",
    ]
