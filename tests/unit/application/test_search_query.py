"""The search query's rules, words and cursors (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from application.read_models.search import (
    MAX_TERMS,
    InvalidCursor,
    InvalidSearchQuery,
    SearchQuery,
    Sort,
    decode_cursor,
    encode_cursor,
)

pytestmark = pytest.mark.unit


def test_the_text_is_split_into_lower_case_words_each_once() -> None:
    query = SearchQuery("t", text="Night-drive, NIGHT; café_2 !!")

    assert query.terms == ("night", "drive", "café_2")


def test_words_beyond_the_limit_are_ignored() -> None:
    query = SearchQuery("t", text=" ".join(f"w{n}" for n in range(MAX_TERMS + 5)))

    assert len(query.terms) == MAX_TERMS


def test_relevance_without_words_is_newest_and_other_sorts_stay() -> None:
    assert SearchQuery("t", text=" ?! ").effective_sort is Sort.NEWEST
    assert SearchQuery("t", text="night").effective_sort is Sort.RELEVANCE
    assert SearchQuery("t", sort=Sort.PRICE_ASC).effective_sort is Sort.PRICE_ASC


def test_kinds_and_tags_are_normalised() -> None:
    query = SearchQuery("t", kinds=("track", "licence", "track"), tags=(" Lo-Fi ", "lo-fi"))

    assert query.kinds == ("licence", "track")
    assert query.tags == ("lo-fi",)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"text": "x" * 201}, "text"),
        ({"kinds": ("vinyl",)}, "kind"),
        ({"tags": ("",)}, "tag"),
        ({"tags": tuple(f"t{n}" for n in range(21))}, "tag"),
        ({"currency": "eur"}, "currency"),
        ({"min_price": -1}, "min_price"),
        ({"min_price": 10, "max_price": 9}, "min_price"),
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
    ],
)
def test_a_query_that_breaks_a_rule_names_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSearchQuery) as refused:
        SearchQuery("t", **options)

    assert refused.value.field == field


def test_a_cursor_gives_back_the_sort_key_it_was_made_of() -> None:
    for key in [
        (3.25, "t:product:a"),
        (2**63 - 1, "b"),
        (-(2**63), "b"),
        ("2024-01-01T00:00:00.000000+00:00", "c"),
    ]:
        cursor = encode_cursor(Sort.NEWEST, key)

        assert decode_cursor(cursor, Sort.NEWEST, (int, float, str)) == key
        assert "=" not in cursor


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "%%%",
        "bm90IGpzb24",  # "not json"
        encode_cursor(Sort.PRICE_DESC, (1, "a")),  # another sort
        encode_cursor(Sort.PRICE_ASC, ("1", "a")),  # a text where a number belongs
        encode_cursor(Sort.PRICE_ASC, (True, "a")),
        encode_cursor(Sort.PRICE_ASC, (1, 2)),  # type: ignore[arg-type]
        encode_cursor(Sort.PRICE_ASC, (2**63, "a")),  # beyond what a store holds
        encode_cursor(Sort.PRICE_ASC, (-(2**63) - 1, "a")),
        encode_cursor(Sort.PRICE_ASC, (float("nan"), "a")),
        encode_cursor(Sort.PRICE_ASC, (float("-inf"), "a")),
    ],
)
def test_a_cursor_not_handed_out_for_the_sort_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor(cursor, Sort.PRICE_ASC, (int, float))

    assert refused.value.field == "cursor"
