"""compact_json: the hot paths' JSON reads what the standard library wrote, and writes what
a receiver expects."""

import json
import math

import pytest

from alertd import compact_json


def test_output_is_compact_utf8_in_key_order() -> None:
    value = {"b": "Zürich ✓", "a": [1, 2.5, None, True], "c": ("x", "y")}
    text = compact_json.dumps(value)
    assert text == '{"b":"Zürich ✓","a":[1,2.5,null,true],"c":["x","y"]}'
    assert compact_json.dumps_bytes(value) == text.encode()
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_round_trip_and_stdlib_output_both_read() -> None:
    value = {"labels": [["instance", "h1"], ["job", "node"]], "value": 0.1 + 0.2}
    assert compact_json.loads(compact_json.dumps(value)) == value
    assert compact_json.loads(json.dumps(value)) == value  # rows written before orjson


def test_non_finite_numbers_are_written_as_null_and_read_from_old_rows() -> None:
    assert compact_json.dumps({"v": math.nan, "w": math.inf}) == '{"v":null,"w":null}'
    old = json.loads(json.dumps({"v": math.nan}))  # the stdlib writes NaN, not JSON
    assert math.isnan(compact_json.loads(json.dumps(old))["v"])


def test_invalid_json_still_raises() -> None:
    with pytest.raises(json.JSONDecodeError, match="Expecting property name"):
        compact_json.loads("{not json")
