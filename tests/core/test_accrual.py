"""Earning points (spec §6) on both engines: value kinds, caps, combining, lot dates, bases."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.pricing_helpers import card, line, quote, rule, rules


def acc(rid: str, **fields: Any) -> dict[str, Any]:
    return rule(rid, "accrual", **fields)


def accrual(make_engine, tree: dict, lines: list[dict], the_card: dict | None = None,
            **kwargs: Any) -> dict[str, Any]:
    return quote(make_engine, tree, lines, card=the_card or card(), **kwargs)["accrual"]


def points(make_engine, tree: dict, lines: list[dict], **kwargs: Any) -> int:
    return accrual(make_engine, tree, lines, **kwargs)["points"]


@pytest.mark.parametrize(("value", "amount", "point_value", "expected"), [
    ({"percent": 2}, 1_140_000, 100, 228),  # 22 800 / 100
    ({"percent": 2}, 12_345, 100, 2),  # 246.9 / 100 = 2.469 → 2 (points round down)
    ({"percent": 2}, 12_345, 1, 246),  # 246.9 → 246
    ({"percent": 150}, 1_000, 100, 15),  # accrual percents may exceed 100
    ({"per": {"points": 1, "amount": 10_000}}, 1_234_567, 100, 123),  # spec §10.4
    ({"per": {"points": 3, "amount": 10_000}}, 29_999, 100, 6),  # 3 × floor(2.9999)
    ({"per": {"points": 1, "amount": 10_000}}, 9_999, 100, 0),
    ({"points": 50}, 1, 100, 50),  # per receipt, whatever the amount
])
def test_value_kinds(make_engine, value, amount: int, point_value: int, expected: int) -> None:
    tree = rules(acc("a", **value), program={"point_value": point_value})
    assert points(make_engine, tree, [line(price=amount)]) == expected


def test_percent_sums_the_scope_before_rounding(make_engine) -> None:
    tree = rules(acc("a", percent=1))
    # each line alone would give floor(0.6) = 0; together floor(60 000 × 1 % / 100) = 6
    assert points(make_engine, tree, [line(f"s{i}", 6_000) for i in range(10)]) == 6


@pytest.mark.parametrize(("max_points", "expected"), [(300, 300), (1_000, 1_000), (0, 0)])
def test_max_points_caps_a_rule(make_engine, max_points: int, expected: int) -> None:
    tree = rules(acc("a", percent=10, max_points=max_points))
    assert points(make_engine, tree, [line(price=1_000_000)]) == expected  # 10 % → 1 000 points


def test_fixed_points_need_a_bonus_line_in_scope(make_engine) -> None:
    tree = rules(acc("a", points=50))
    assert points(make_engine, tree, [line("a", 1_000, no_bonus=True)]) == 0
    assert points(make_engine, tree, [line("a", 1_000, no_bonus=True), line("b", 1)]) == 50


def test_no_bonus_lines_are_not_in_the_base(make_engine) -> None:
    tree = rules(acc("a", percent=10))
    lines = [line("a", 10_000), line("b", 90_000, no_bonus=True)]
    assert points(make_engine, tree, lines) == 10  # 10 % of 10 000 / 100


def test_scope_limits_the_base(make_engine) -> None:
    tree = rules(acc("a", percent=10, scope={"categories": ["food"]}))
    lines = [line("a", 10_000, categories=["food/milk"]), line("b", 90_000, categories=["toys"])]
    assert points(make_engine, tree, lines) == 10


def test_base_is_paid_after_discount_and_redemption(make_engine) -> None:
    tree = rules(rule("d", "discount", percent=5), acc("a", percent=2),
                 redeem={"max_percent": 50})
    lines = [line(price=1_200_000)]
    # spec §10.2: paid 1 140 000 → 228; with 5 700 points redeemed paid 570 000 → 114
    assert points(make_engine, tree, lines) == 228
    assert points(make_engine, tree, lines, the_card=card(balance=10_000), redeem="max") == 114


ROOT_CASES = [("sum", 278), ("max", 228), ("min", 50), ("priority", 228)]


@pytest.mark.parametrize(("policy", "expected"), ROOT_CASES)
def test_root_policies(make_engine, policy: str, expected: int) -> None:
    # percent 2 on 1 140 000 = 228, fixed 50
    tree = rules(acc("pct", percent=2), acc("fix", points=50), program={"accrual_combine": policy})
    assert points(make_engine, tree, [line(price=1_140_000)]) == expected


def test_priority_skips_members_giving_nothing(make_engine) -> None:
    tree = rules(acc("none", points=50, priority=0, scope={"skus": ["x"]}),
                 acc("tiny", percent=1, priority=1),  # floor(0.99) = 0
                 acc("pct", percent=2, priority=2), program={"accrual_combine": "priority"})
    assert points(make_engine, tree, [line(price=9_900)]) == 1  # 2 % of 9 900 / 100 = 1.98


def test_nested_accrual_group(make_engine) -> None:
    tree = rules(acc("pct", percent=2, group="best"), acc("fix", points=300, group="best"),
                 acc("visit", points=10), group=[{"id": "best", "combine": "max"}])
    assert points(make_engine, tree, [line(price=1_140_000)]) == 310  # max(228, 300) + 10


NOW = "2026-12-01T10:00:00+03:00"


@pytest.mark.parametrize(("program", "rule_days", "window"), [
    ({"activation_days": 1, "expiry_days": 365}, {},
     ("2026-12-02T10:00:00+03:00", "2027-12-02T10:00:00+03:00")),
    ({"activation_days": 0, "expiry_days": 0}, {}, (NOW, None)),  # 0 = never expires
    ({"activation_days": 1, "expiry_days": 365}, {"activation_days": 14},
     ("2026-12-15T10:00:00+03:00", "2027-12-15T10:00:00+03:00")),
    ({"activation_days": 1, "expiry_days": 365}, {"expiry_days": 30},
     ("2026-12-02T10:00:00+03:00", "2027-01-01T10:00:00+03:00")),
    ({"activation_days": 1, "expiry_days": 365}, {"activation_days": 0, "expiry_days": 0},
     (NOW, None)),
])
def test_lot_dates(make_engine, program: dict, rule_days: dict, window) -> None:
    tree = rules(acc("a", points=5, **rule_days), program=program)
    result = accrual(make_engine, tree, [line()])
    assert (result["available_from"], result["expires_at"]) == window


def test_lot_dates_come_from_the_first_contributing_overriding_rule(make_engine) -> None:
    tree = rules(acc("plain", points=1, priority=0),
                 acc("zero", percent=1, priority=1, activation_days=3),  # floor(0.01) = 0
                 acc("week", points=1, priority=2, activation_days=7),
                 acc("month", points=1, priority=3, activation_days=30),
                 program={"activation_days": 1, "expiry_days": 0})
    result = accrual(make_engine, tree, [line(price=100)])
    assert result == {"points": 3, "available_from": "2026-12-08T10:00:00+03:00",
                      "expires_at": None}


def test_lot_dates_ignore_rules_that_lose_under_max(make_engine) -> None:
    tree = rules(acc("small", points=100, activation_days=30), acc("big", points=200),
                 program={"accrual_combine": "max", "activation_days": 1})
    result = accrual(make_engine, tree, [line()])
    assert (result["points"], result["available_from"]) == (200, "2026-12-02T10:00:00+03:00")


def test_lot_dates_keep_the_offset_of_now(make_engine) -> None:
    tree = rules(acc("a", points=1), program={"activation_days": 2})
    result = accrual(make_engine, tree, [line()], now="2026-12-31T23:00:00-05:00")
    assert result["available_from"] == "2027-01-02T23:00:00-05:00"


def test_no_card_no_points(make_engine) -> None:
    tree = rules(acc("a", points=50), acc("b", percent=10))
    q = quote(make_engine, tree, [line(price=1_000_000)])
    assert q["accrual"] == {"points": 0, "available_from": None, "expires_at": None}


def test_zero_points_have_no_dates(make_engine) -> None:
    tree = rules(acc("a", percent=1), program={"activation_days": 1, "expiry_days": 30})
    assert accrual(make_engine, tree, [line(price=99)]) == {
        "points": 0, "available_from": None, "expires_at": None}
