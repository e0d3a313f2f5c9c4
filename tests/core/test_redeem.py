"""Paying with points (spec §5) on both engines: limits, scope, lots, requests and the split."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.pricing_helpers import card, line, quote, rule, rules

FUTURE = "2027-01-01T00:00:00+03:00"
PAST = "2026-11-01T00:00:00+03:00"
NOW_ = "2026-12-01T10:00:00+03:00"


def redeem_tree(*extra_rules: dict[str, Any], point_value: int = 100, **redeem: Any) -> dict:
    return rules(*extra_rules, program={"point_value": point_value},
                 redeem={"max_percent": 50, **redeem})


def redeemed(make_engine, tree: dict, lines: list[dict], balance: int | None = 10**6,
             ask: Any = "max", **card_fields: Any) -> dict[str, Any]:
    the_card = card(balance=balance, **card_fields) if balance is not None else card(**card_fields)
    return quote(make_engine, tree, lines, card=the_card, redeem=ask)


def summary(q: dict[str, Any]) -> tuple[int, int, int, int]:
    return q["redeem"]["points"], q["redeem"]["amount"], q["redeem"]["max_points"], q["to_pay"]


@pytest.mark.parametrize(("amount", "balance", "expected"), [
    (1_200_000, 10_000, (6_000, 600_000, 6_000, 600_000)),  # 50 % of 1 200 000 / 100
    (1_200_000, 3_000, (3_000, 300_000, 3_000, 900_000)),  # the balance caps it
    (12_345, 10_000, (61, 6_100, 61, 6_245)),  # floor(6 172.5 / 100) = 61
    (99, 10_000, (0, 0, 0, 99)),  # floor(49.5 / 100) = 0
])
def test_max_percent(make_engine, amount: int, balance: int, expected) -> None:
    q = redeemed(make_engine, redeem_tree(), [line(price=amount)], balance)
    assert summary(q) == expected
    assert q["lines"][0]["redeem_amount"] == expected[1]
    assert q["lines"][0]["paid"] == expected[3]


def test_max_percent_with_a_point_value_of_7(make_engine) -> None:
    q = redeemed(make_engine, redeem_tree(point_value=7), [line(price=1_000)])
    # floor(1000 × 50 % / 7) = floor(71.43) = 71 points = 497
    assert summary(q) == (71, 497, 71, 503)


@pytest.mark.parametrize(("min_receipt", "expected_max"), [(100_000, 500), (100_001, 0)])
def test_min_receipt(make_engine, min_receipt: int, expected_max: int) -> None:
    tree = redeem_tree(min_receipt=min_receipt)
    q = redeemed(make_engine, tree, [line(price=100_000)])  # 50 % of 100 000 / 100 = 500
    assert q["redeem"]["max_points"] == expected_max


@pytest.mark.parametrize(("balance", "expected_max"), [(99, 0), (100, 100), (2_000, 500)])
def test_min_points(make_engine, balance: int, expected_max: int) -> None:
    q = redeemed(make_engine, redeem_tree(min_points=100), [line(price=100_000)], balance)
    assert q["redeem"]["max_points"] == expected_max


def test_min_receipt_counts_eligible_amounts_after_discount(make_engine) -> None:
    tree = redeem_tree(rule("d", "discount", percent=10), min_receipt=100_000)
    q = redeemed(make_engine, tree, [line(price=100_000)])  # eligible 90 000 < 100 000
    assert q["redeem"]["max_points"] == 0


def test_eligible_base_is_after_discount(make_engine) -> None:
    tree = redeem_tree(rule("d", "discount", percent=10))
    q = redeemed(make_engine, tree, [line(price=100_000)])
    assert summary(q) == (450, 45_000, 450, 45_000)  # 50 % of 90 000 / 100


def test_categories_scope_and_no_bonus_lines(make_engine) -> None:
    tree = redeem_tree(categories=["food"])
    lines = [line("bread", 10_000, categories=["food/bakery"]),
             line("toy", 10_000, categories=["toys"]),
             line("wine", 10_000, categories=["food"], no_bonus=True)]
    q = redeemed(make_engine, tree, lines)
    # only bread is eligible: 50 % of 10 000 / 100 = 50 points = 5 000, all on bread
    assert summary(q) == (50, 5_000, 50, 25_000)
    assert [x["redeem_amount"] for x in q["lines"]] == [5_000, 0, 0]


def test_no_bonus_lines_are_not_eligible_with_an_all_lines_scope(make_engine) -> None:
    q = redeemed(make_engine, redeem_tree(),
                 [line("a", 10_000), line("b", 30_000, no_bonus=True)])
    assert summary(q) == (50, 5_000, 50, 35_000)


def test_available_points_come_from_lots_in_their_window(make_engine) -> None:
    lots = [
        {"points": 100, "available_from": PAST, "expires_at": FUTURE},
        {"points": 200, "available_from": "2026-12-01T10:00:01+03:00", "expires_at": None},  # soon
        {"points": 400, "available_from": PAST, "expires_at": NOW_},  # expires_at = now: gone
        {"points": 800, "available_from": NOW_, "expires_at": "2026-12-01T10:00:01+03:00"},
        {"points": -150, "available_from": None, "expires_at": None},  # a debt
    ]
    q = redeemed(make_engine, redeem_tree(), [line(price=1_000_000)], None, lots=lots, ask=None)
    assert q["redeem"]["max_points"] == 750  # 100 + 800 − 150


def test_lot_windows_compare_instants_across_offsets(make_engine) -> None:
    # expires 07:30 UTC = 10:30 Moscow: still available at 10:00 Moscow
    lots = [{"points": 300, "available_from": None, "expires_at": "2026-12-01T07:30:00+00:00"}]
    q = redeemed(make_engine, redeem_tree(), [line(price=1_000_000)], None, lots=lots, ask=None)
    assert q["redeem"]["max_points"] == 300


@pytest.mark.parametrize(("lots", "balance"), [
    ([{"points": 100}, {"points": -500}], None),  # a debt larger than the lots
    (None, -40),
])
def test_a_debt_leaves_nothing_to_redeem(make_engine, lots, balance) -> None:
    fields = {"lots": lots} if lots is not None else {}
    q = redeemed(make_engine, redeem_tree(), [line(price=100_000)], balance, **fields)
    assert summary(q) == (0, 0, 0, 100_000)


@pytest.mark.parametrize(("ask", "points"), [
    ("max", 500), (120, 120), (500, 500), (501, 500), (10**9, 500), (0, 0), (None, 0),
])
def test_requests(make_engine, ask: Any, points: int) -> None:
    q = redeemed(make_engine, redeem_tree(), [line(price=100_000)], ask=ask)
    assert summary(q) == (points, points * 100, 500, 100_000 - points * 100)


def test_without_a_redeem_section_points_cannot_pay(make_engine) -> None:
    q = redeemed(make_engine, rules(), [line(price=100_000)])
    assert summary(q) == (0, 0, 0, 100_000)


def test_without_a_card_points_cannot_pay(make_engine) -> None:
    q = quote(make_engine, redeem_tree(), [line(price=100_000)], redeem="max")
    assert summary(q) == (0, 0, 0, 100_000)


def test_redeemed_money_is_split_by_base(make_engine) -> None:
    lines = [line("a", 1_000), line("b", 2_000)]
    q = redeemed(make_engine, redeem_tree(), lines, ask=3)  # 300 over 1 000 : 2 000
    assert [x["redeem_amount"] for x in q["lines"]] == [100, 200]
    assert [x["paid"] for x in q["lines"]] == [900, 1_800]


def test_redeemed_money_split_leftover_goes_to_the_earlier_line(make_engine) -> None:
    lines = [line("a", 1_000), line("b", 1_000), line("c", 1_000)]
    q = redeemed(make_engine, redeem_tree(), lines, ask=1)  # 100 over three equal lines
    assert [x["redeem_amount"] for x in q["lines"]] == [34, 33, 33]


def test_split_uses_amounts_after_discount(make_engine) -> None:
    tree = redeem_tree(rule("d", "discount", percent=50, scope={"skus": ["a"]}))
    q = redeemed(make_engine, tree, [line("a", 2_000), line("b", 1_000)], ask=10)
    # bases 1 000 and 1 000 (a after its 50 %): 1 000 split 500 / 500
    assert [x["redeem_amount"] for x in q["lines"]] == [500, 500]
    assert q["to_pay"] == 2_000 - 1_000


def test_full_payment_with_points(make_engine) -> None:
    q = redeemed(make_engine, redeem_tree(max_percent=100), [line(price=12_300)])
    assert summary(q) == (123, 12_300, 123, 0)
    assert q["lines"][0]["paid"] == 0
