"""Input limits: JSON text is scanned without being built (no recursion), and every
excess names the field it is in."""

from __future__ import annotations

import json
import time

import pytest

from yinfin_flow.domain.errors import ValidationError
from yinfin_flow.domain.limits import (
    DEFAULT_LIMITS,
    Limits,
    TooLarge,
    check_json_text,
    check_lines,
    check_size,
    check_value,
)

SMALL = Limits(max_json_depth=4, max_string_length=10)


def refused(text: str, limits: Limits = SMALL, **kw: object) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        check_json_text(text, limits, **kw)  # type: ignore[arg-type]
    return err.value


@pytest.mark.parametrize(("doc", "field"), [
    ({"form": {"lines": [{"memo": "x" * 11}]}}, "form.lines[0].memo"),
    ({"a": 1, "b": ["ok", "ok", "y" * 11]}, "b[2]"),
    (["z" * 11], "[0]"),
    ({"a": "\u00e9" * 3, "k": "\u4e2d" * 11}, "k"),
])
def test_a_long_string_is_named_by_its_path(doc: object, field: str) -> None:
    err = refused(json.dumps(doc, ensure_ascii=False))
    assert (err.details["field"], err.details["problem"]) == (field, "longer than 10 characters")


def test_escapes_count_as_the_characters_they_stand_for() -> None:
    check_json_text(json.dumps({"a": "\u4e2d" * 10}), SMALL)  # 60 bytes escaped, 10 characters
    check_json_text(json.dumps({"a": "\u4e2d" * 10}, ensure_ascii=False).encode(), SMALL)


def test_a_long_key_is_refused_too() -> None:
    err = refused(json.dumps({"form": {"k" * 11: 1}}))
    assert err.details["field"] == "form"


@pytest.mark.parametrize(("text", "field"), [
    ("[[[[[1]]]]]", "[0][0][0][0]"),
    ('{"form": {"lines": [{"x": {"y": 1}}]}}', "form.lines[0].x"),
    ('{"a": 1, "b": [0, {"c": [[]]}]}', "b[1].c[0]"),
])
def test_nesting_past_the_limit_is_named_where_it_goes_too_deep(text: str, field: str) -> None:
    err = refused(text)
    assert (err.details["field"], err.details["problem"]) == (field, "nested deeper than 4 levels")


def test_a_thousand_deep_is_refused_without_recursion() -> None:
    err = refused("[" * 100_000 + "]" * 100_000, DEFAULT_LIMITS)
    assert err.details["problem"] == "nested deeper than 32 levels"


def test_brackets_inside_strings_are_text() -> None:
    check_json_text(json.dumps({"a": "[[[[[[[[{{{{{{{{"}), Limits(max_json_depth=4, max_string_length=100))


def test_malformed_text_costs_one_pass() -> None:
    """An unterminated string with a million escaped quotes must not be rescanned
    at every quote (quadratic)."""
    text = '{"a": "' + '\\"' * 500_000
    started = time.perf_counter()
    with pytest.raises(ValidationError):
        check_json_text(text, DEFAULT_LIMITS)
    assert time.perf_counter() - started < 2


def test_strings_can_be_left_to_the_caller() -> None:
    check_json_text(json.dumps({"encrypt": "x" * 100}), SMALL, strings=False)
    assert refused("[[[[[1]]]]]", strings=False).details["field"] == "[0][0][0][0]"


def test_parsed_values_are_checked_the_same_way() -> None:
    with pytest.raises(ValidationError) as err:
        check_value({"lines": [{"memo": "x" * 11}]}, SMALL, root="form")
    assert err.value.details["field"] == "form.lines[0].memo"
    deep: object = 1
    for _ in range(10_000):  # far past the recursion limit: the walk is iterative
        deep = [deep]
    with pytest.raises(ValidationError) as err:
        check_value({"a": deep}, DEFAULT_LIMITS, root="form")
    assert err.value.details["field"].startswith("form.a[0][0]")
    check_value({"lines": [{"memo": "x" * 10}]}, SMALL, root="form")


def test_sizes_and_lines() -> None:
    check_size(10, 10)
    with pytest.raises(TooLarge) as err:
        check_size(11, 10)
    assert (err.value.http_status, err.value.details["field"], err.value.details["limit"]) == (413, "body", 10)
    check_lines(1000)
    with pytest.raises(ValidationError) as verr:
        check_lines(1001)
    assert verr.value.details["field"] == "form.lines"
