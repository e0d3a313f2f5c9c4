"""VAT inside prices (spec §17, example §18.6): per line, per rate, and in returns."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import CartError
from tests.core.pricing_helpers import card, line, quote, rule, rules


def test_example_18_6_vat_of_paid_amounts(make_engine) -> None:
    result = quote(make_engine, rules(), [line("a", 12_000, vat=20), line("b", 9_990, vat=10)])
    assert [x["vat_amount"] for x in result["lines"]] == [2_000, 908]
    assert [x["vat_rate"] for x in result["lines"]] == [2_000, 1_000]
    assert result["vat"] == [{"rate": 1_000, "paid": 9_990, "amount": 908},
                             {"rate": 2_000, "paid": 12_000, "amount": 2_000}]


def test_lines_outside_vat_carry_none_and_are_not_summed(make_engine) -> None:
    result = quote(make_engine, rules(), [line("a", 5_000), line("b", 5_000, vat=None)])
    assert [(x["vat_rate"], x["vat_amount"]) for x in result["lines"]] == [(None, 0), (None, 0)]
    assert result["vat"] == []


def test_rate_sums_are_the_sum_of_line_vat_not_the_vat_of_the_sum(make_engine) -> None:
    # 3 × VAT(1 kopeck at 20 %) = 3 × round(1/6) = 0; VAT of 3 kopecks would be round(0.5) = 1
    result = quote(make_engine, rules(), [line(f"s{i}", 1, vat=20) for i in range(3)])
    assert result["vat"] == [{"rate": 2_000, "paid": 3, "amount": 0}]


@pytest.mark.parametrize("vat", [7.5, "7.5", Decimal("7.50"), "0", 0, 100])
def test_fractional_rates_in_every_spelling(make_engine, vat) -> None:
    result = quote(make_engine, rules(), [line("a", 10_750, vat=vat)])
    rate = int(Decimal(str(vat)) * 100)
    assert result["lines"][0]["vat_rate"] == rate
    assert result["lines"][0]["vat_amount"] == (10_750 * rate * 2 + 10_000 + rate) // (2 * (10_000 + rate))


@pytest.mark.parametrize("vat", [-1, 101, 7.555, "7,5", "x", True, [20], float("nan"), "1e1"])
def test_bad_rates_are_refused_naming_the_line(make_engine, vat) -> None:
    with pytest.raises(CartError, match=r"cart line 0: field 'vat'"):
        quote(make_engine, rules(), [line("a", 100, vat=vat)])


def test_points_and_discounts_lower_the_vat_base(make_engine) -> None:
    tree = rules(rule("d10", percent=10), program={"point_value": 100},
                 redeem={"max_percent": 50})
    result = quote(make_engine, tree, [line("a", 120_000, vat=20)],
                   card=card(balance=100), redeem=100)
    item = result["lines"][0]
    assert item["paid"] == 120_000 - 12_000 - 10_000
    assert item["vat_amount"] == (98_000 * 2_000 * 2 + 12_000) // (2 * 12_000)


def test_returns_give_back_the_vat_of_their_money_and_the_last_the_remainder(make_engine) -> None:
    engine = make_engine(rules())
    sale = engine.quote({"lines": [line("a", 333, qty=3, vat=20)]}, None, "2026-12-01T10:00:00+03:00")
    assert sale["lines"][0]["vat_amount"] == 167  # 999 × 20 / 120 = 166.5
    first = engine.refund(sale, {"lines": [{"line": 0, "qty": 1}]})
    second = engine.refund(sale, {"lines": [{"line": 0, "qty": 1}], "previous": [first]})
    last = engine.refund(sale, {"lines": [{"line": 0, "qty": 1}], "previous": [first, second]})
    assert [r["lines"][0]["vat_amount"] for r in (first, second, last)] == [56, 56, 55]
    assert first["vat"] == [{"rate": 2_000, "money": 333, "amount": 56}]
    assert sum(r["vat_amount"] for r in (first, second, last)) == sale["lines"][0]["vat_amount"]


def test_a_v1_quote_without_vat_fields_refunds_with_no_vat(make_engine) -> None:
    engine = make_engine(rules())
    sale = engine.quote({"lines": [line("a", 1_000, vat=20)]}, None, "2026-12-01T10:00:00+03:00")
    for item in sale["lines"]:
        del item["vat_rate"], item["vat_amount"]
    refund = engine.refund(sale, {"lines": [{"line": 0, "qty": 1}]})
    assert refund["lines"][0]["vat_amount"] == 0 and refund["vat"] == []
