"""Request bodies are parsed strictly, and a 422 renders whatever it echoes back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from interfaces.http.errors import _renderable
from interfaces.http.strict_json import UnacceptableJson, strict_loads

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "text",
    [
        '{"amount": NaN}',
        '{"amount": Infinity}',
        "[-Infinity]",
        '{"amount": 1e400}',
        '{"amount": -1e400}',
        '{"quantity": 9223372036854775808}',
        '{"quantity": -9223372036854775809}',
        '{"quantity": ' + "9" * 5000 + "}",
        '{"title": "\\ud800"}',
        '{"\\udfff": 1}',
        '{"title": "a\\u0000b"}',
    ],
)
def test_json_that_python_takes_but_no_store_holds_is_refused(text: str) -> None:
    with pytest.raises(UnacceptableJson):
        strict_loads(text)


def test_ordinary_json_parses_as_json_loads_parses_it() -> None:
    text = '{"a": [1, -2.5, 9223372036854775807, -9223372036854775808, "é😀", null, true]}'

    assert strict_loads(text) == json.loads(text)


def test_a_body_that_is_not_json_is_a_plain_value_error() -> None:
    with pytest.raises(ValueError) as raised:
        strict_loads("{nope")

    assert not isinstance(raised.value, UnacceptableJson)


class Unencodable:
    def __iter__(self) -> Any:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "value",
    [
        float("nan"),
        float("-inf"),
        10**5000,
        b"\xff\xfe",
        "\ud800",
        ValueError("a validator's error"),
        {"input": {1: float("inf")}, "ctx": {"error": Unencodable()}},
        (1, {2, 3}),
    ],
    ids=["nan", "infinity", "5000 digits", "bytes", "surrogate", "error", "nested", "tuple"],
)
def test_whatever_a_validation_problem_echoes_renders_as_json(value: Any) -> None:
    rendered = json.dumps({"detail": [_renderable(value)]}, allow_nan=False, ensure_ascii=False)

    assert rendered.encode("utf-8")
