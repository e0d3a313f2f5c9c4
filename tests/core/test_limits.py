"""Extreme values that the validators accept price the same on both engines: the compiled engine
takes products in 128 bits, points earned are capped at POINTS_MAX, and a card holding more than
POINTS_MAX available points is refused."""

from __future__ import annotations

import pytest

from core.errors import CartError
from core.rules import POINTS_MAX
from tests.core.pricing_helpers import card, line, quote, rule, rules


def test_largest_line_prices_exactly(make_engine) -> None:
    # price 10^11 × 10 000 units = 10^15 (the line limit); 33.33 % of it exactly
    tree = rules(rule("p", "discount", percent=33.33))
    q = quote(make_engine, tree, [line(price=10**11, qty=10_000)])
    assert (q["subtotal"], q["discount"]) == (10**15, 333_300_000_000_000)


def test_largest_weighted_line_rounds_half_up(make_engine) -> None:
    # 99 999 999 999 × 0.005 = 499 999 999.995 → 500 000 000
    q = quote(make_engine, rules(), [line(price=99_999_999_999, qty="0.005")])
    assert q["lines"][0]["amount"] == 500_000_000


def test_points_earned_are_capped_at_the_limit(make_engine) -> None:
    # n × floor(10^11 / 1) = 10^26 by the formula; a receipt never earns more than 10^15
    tree = rules(rule("a", "accrual", per={"points": POINTS_MAX, "amount": 1}))
    q = quote(make_engine, tree, [line(price=10**11)], card=card())
    assert q["accrual"]["points"] == POINTS_MAX


def test_summed_accrual_rules_are_capped_at_the_limit(make_engine) -> None:
    # two rules of 10^15 points each in the `sum` root: capped at 10^15, not 2 × 10^15
    tree = rules(rule("a", "accrual", points=POINTS_MAX), rule("b", "accrual", points=POINTS_MAX))
    q = quote(make_engine, tree, [line(price=100)], card=card())
    assert q["accrual"]["points"] == POINTS_MAX


def test_lots_adding_up_past_the_limit_are_refused(make_engine) -> None:
    lots = [{"points": POINTS_MAX}] * 10_000  # 10^19 points available
    engine = make_engine(rules(redeem={"max_percent": 100}))
    with pytest.raises(CartError, match="points available is above the limit"):
        engine.quote({"lines": [line(price=10**11)]}, card(lots=lots), "2026-12-01T10:00:00+03:00", "max")
