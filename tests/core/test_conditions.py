"""When a rule applies (spec §3 `when`) and which lines it touches (`scope`), on both engines.

A 10 % discount on 1 000 gives 100 when it applies, so each case reads as "100 or 0"."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.pricing_helpers import NOW, card, line, line_discounts, quote, rule, rules

ON, OFF = 100, 0  # 10 % of 1 000


def tenth(make_engine, when: dict[str, Any] | None = None, scope: dict[str, Any] | None = None,
          lines: list[dict[str, Any]] | None = None, **kwargs: Any) -> list[int]:
    """Per-line discounts of one 10 % rule."""
    fields: dict[str, Any] = {"percent": 10}
    if when is not None:
        fields["when"] = when
    if scope is not None:
        fields["scope"] = scope
    tree = rules(rule("r", "discount", **fields))
    return line_discounts(quote(make_engine, tree, lines or [line(price=1_000)], **kwargs))


@pytest.mark.parametrize(("when", "the_card", "expected"), [
    ({"card": True}, None, OFF),
    ({"card": True}, card(), ON),
    ({"card": False}, None, ON),
    ({"card": False}, card(), OFF),
    ({"card_types": ["gold"]}, card(type="gold"), ON),
    ({"card_types": ["gold", "vip"]}, card(type="vip"), ON),
    ({"card_types": ["gold"]}, card(type="silver"), OFF),
    ({"card_types": ["gold"]}, card(), OFF),  # a card without a type
    ({"card_types": ["gold"]}, None, OFF),  # card_types implies a card
])
def test_card_conditions(make_engine, when, the_card, expected: int) -> None:
    assert tenth(make_engine, when, card=the_card) == [expected]


@pytest.mark.parametrize(("store", "expected"), [("S01", ON), ("S02", OFF), ("", OFF)])
def test_stores(make_engine, store: str, expected: int) -> None:
    assert tenth(make_engine, {"stores": ["S01", "S03"]}, store=store) == [expected]


@pytest.mark.parametrize(("weekdays", "now", "expected"), [
    ([2], NOW, ON),  # 2026-12-01 is a Tuesday
    ([1, 3, 4, 5, 6, 7], NOW, OFF),
    ([7], "2026-12-06T12:00:00+03:00", ON),  # Sunday = 7
    ([1], "2026-12-07T00:00:00+03:00", ON),  # Monday = 1
    # Sunday 23:30 in New York is Monday 04:30 UTC: the local day counts
    ([7], "2026-12-06T23:30:00-05:00", ON),
    ([1], "2026-12-06T23:30:00-05:00", OFF),
])
def test_weekdays(make_engine, weekdays: list[int], now: str, expected: int) -> None:
    assert tenth(make_engine, {"weekdays": weekdays}, now=now) == [expected]


@pytest.mark.parametrize(("window", "clock", "expected"), [
    (["09:00", "12:00"], "09:00", ON),
    (["09:00", "12:00"], "11:59", ON),
    (["09:00", "12:00"], "12:00", OFF),  # [from, to): the end is excluded
    (["09:00", "12:00"], "08:59", OFF),
    (["22:00", "02:00"], "22:00", ON),  # wraps over midnight
    (["22:00", "02:00"], "23:30", ON),
    (["22:00", "02:00"], "00:00", ON),
    (["22:00", "02:00"], "01:59", ON),
    (["22:00", "02:00"], "02:00", OFF),
    (["22:00", "02:00"], "21:59", OFF),
    (["20:00", "24:00"], "23:59", ON),
    (["20:00", "24:00"], "00:00", OFF),
])
def test_time_window(make_engine, window: list[str], clock: str, expected: int) -> None:
    now = f"2026-12-01T{clock}:00+03:00"
    assert tenth(make_engine, {"time": window}, now=now) == [expected]


def test_time_window_uses_the_local_time_of_now(make_engine) -> None:
    # the same instant: 10:00 in Moscow, 07:00 UTC
    when = {"time": ["09:00", "12:00"]}
    assert tenth(make_engine, when, now="2026-12-01T10:00:00+03:00") == [ON]
    assert tenth(make_engine, when, now="2026-12-01T07:00:00+00:00") == [OFF]


@pytest.mark.parametrize(("now", "expected"), [
    ("2026-12-01T00:00:00+03:00", ON),  # both days included
    ("2026-12-31T23:59:59+03:00", ON),
    ("2027-01-01T00:00:00+03:00", OFF),
    ("2026-11-30T23:59:59+03:00", OFF),
    ("2026-11-30T22:00:00-03:00", OFF),  # 1 December in UTC, still 30 November locally
])
def test_dates(make_engine, now: str, expected: int) -> None:
    assert tenth(make_engine, {"dates": ["2026-12-01", "2026-12-31"]}, now=now) == [expected]


FOOD = {"categories": ["food"]}


@pytest.mark.parametrize(("receipt_min", "expected"), [(1_400, [ON, 40, OFF]),
                                                       (1_401, [OFF, OFF, OFF])])
def test_receipt_min_is_measured_on_scope_lines(make_engine, receipt_min, expected) -> None:
    lines = [line("a", 1_000, categories=["food"]), line("b", 400, categories=["food/milk"]),
             line("c", 50_000, categories=["toys"])]
    # scope subtotal 1 000 + 400 = 1 400 (the 50 000 toy does not count)
    assert tenth(make_engine, {"receipt_min": receipt_min}, FOOD, lines) == expected


def test_receipt_min_counts_no_discount_lines_and_amounts_before_discount(make_engine) -> None:
    lines = [line("a", 600, no_discount=True), line("b", 400)]
    # scope subtotal 600 + 400 = 1 000 (before discount, no_discount line included)
    assert tenth(make_engine, {"receipt_min": 1_000}, lines=lines) == [0, 40]
    assert tenth(make_engine, {"receipt_min": 1_001}, lines=lines) == [0, 0]


@pytest.mark.parametrize(("qty_min", "expected"), [(2, [50, 150]), (2.001, [0, 0])])
def test_qty_min_sums_scope_quantities(make_engine, qty_min, expected) -> None:
    lines = [line("a", 1_000, "0.5"), line("b", 1_000, "1.5"), line("c", 1_000, 5)]
    # scope = a and b: 0.5 + 1.5 = 2 units; amounts 500 and 1 500
    assert tenth(make_engine, {"qty_min": qty_min}, {"skus": ["a", "b"]}, lines)[:2] == expected


def test_all_conditions_must_hold(make_engine) -> None:
    when = {"card": True, "stores": ["S01"], "weekdays": [2], "time": ["09:00", "12:00"]}
    assert tenth(make_engine, when, card=card()) == [ON]
    assert tenth(make_engine, when, card=card(), store="S02") == [OFF]
    assert tenth(make_engine, when, card=card(), now="2026-12-01T12:30:00+03:00") == [OFF]


def test_a_rule_needs_a_line_in_its_scope(make_engine) -> None:
    tree = rules(rule("hello", "message", text="hi", scope={"skus": ["x"]}),
                 rule("all", "message", text="always"))
    assert quote(make_engine, tree, [line("a")])["messages"] == [{"rule": "all", "text": "always"}]


# ----------------------------------------------------------------------------- scopes


@pytest.mark.parametrize(("categories", "expected"), [
    (["a"], ON), (["a/b"], ON), (["a/b/c"], ON),
    (["ab"], OFF), (["b/a"], OFF), ([], OFF),
    (["z", "a/b"], ON),  # any of the line's categories
])
def test_category_prefix(make_engine, categories: list[str], expected: int) -> None:
    lines = [line(price=1_000, categories=categories)]
    assert tenth(make_engine, scope={"categories": ["a"]}, lines=lines) == [expected]


def test_skus_and_categories_add_up(make_engine) -> None:
    lines = [line("s9", 1_000, categories=["z"]), line("s1", 1_000, categories=["a"]),
             line("s2", 1_000, categories=["z"])]
    assert tenth(make_engine, scope={"categories": ["a"], "skus": ["s9"]}, lines=lines) == [
        ON, ON, OFF]


@pytest.mark.parametrize(("categories", "expected"), [
    (["a/b"], OFF), (["a/b/c"], OFF), (["a/bc"], ON), (["a"], ON), (["x", "a/b"], OFF),
])
def test_exclude_categories(make_engine, categories: list[str], expected: int) -> None:
    lines = [line(price=1_000, categories=categories)]
    scope = {"categories": ["a"], "exclude_categories": ["a/b"]}
    assert tenth(make_engine, scope=scope, lines=lines) == [expected]


def test_exclude_skus_on_an_all_lines_scope(make_engine) -> None:
    lines = [line("a", 1_000), line("b", 1_000)]
    assert tenth(make_engine, scope={"exclude_skus": ["b"]}, lines=lines) == [ON, OFF]


def test_excluded_lines_do_not_count_for_receipt_min(make_engine) -> None:
    lines = [line("a", 1_000), line("b", 9_000)]
    scope = {"exclude_skus": ["b"]}
    assert tenth(make_engine, {"receipt_min": 1_000}, scope, lines) == [ON, OFF]
    assert tenth(make_engine, {"receipt_min": 1_001}, scope, lines) == [OFF, OFF]
