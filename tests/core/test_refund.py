"""Returns (spec §9) through both engines: shares, exact remainders, clamping, points, refusals."""

from __future__ import annotations

from typing import Any

import pytest

from core import RefundError
from tests.core.pricing_helpers import card, line, quote, rule, rules


def returns(engine: Any, sale: dict[str, Any], *requests: list[tuple[int, Any]]) -> list[dict]:
    """Return `requests` one after another, each listing the earlier refunds as `previous`."""
    done: list[dict[str, Any]] = []
    for request in requests:
        ret = {"lines": [{"line": i, "qty": q} for i, q in request], "previous": list(done)}
        done.append(engine.refund(sale, ret))
    return done


def sale_of(make_engine, tree: dict, lines: list[dict], **kwargs: Any) -> tuple[Any, dict]:
    engine = make_engine(tree)
    return engine, engine.quote({"lines": lines}, kwargs.get("card"), "2026-12-01T10:00:00+03:00",
                                kwargs.get("redeem"))


def test_three_returns_of_one_give_exact_remainders(make_engine) -> None:
    # price 40 × 3 = 120, amount discount 20 → paid 100
    engine, sale = sale_of(make_engine, rules(rule("off", "discount", amount=20)),
                           [line(price=40, qty=3)])
    assert sale["lines"][0]["paid"] == 100
    done = returns(engine, sale, [(0, 1)], [(0, 1)], [(0, 1)])
    assert [r["money"] for r in done] == [33, 33, 34]  # 33.33 → 33, 33, then the remainder
    assert [r["cumulative_decrease"] for r in done] == [33, 33, 34]
    assert done[0]["lines"] == [{"line": 0, "qty_milli": 1_000, "money": 33, "redeem_amount": 0,
                                 "accrual_base": 0, "cumulative_decrease": 33, "points_restored": 0,
                                 "points_clawed": 0, "vat_rate": None, "vat_amount": 0}]


def test_rounded_up_shares_are_clamped_to_what_is_left(make_engine) -> None:
    # price 1 × 4 = 4, amount discount 2 → paid 2; each quarter is 0.5 → 1 (half up)
    engine, sale = sale_of(make_engine, rules(rule("off", "discount", amount=2)),
                           [line(price=1, qty=4)])
    done = returns(engine, sale, [(0, 1)], [(0, 1)], [(0, 1)], [(0, 1)])
    assert [r["money"] for r in done] == [1, 1, 0, 0]
    assert [r["cumulative_decrease"] for r in done] == [1, 1, 0, 0]


def test_weighted_line(make_engine) -> None:
    engine, sale = sale_of(make_engine, rules(), [line(price=100_000, qty="0.35")])
    done = returns(engine, sale, [(0, "0.1")], [(0, "0.25")])
    # 35 000 × 100 / 350 = 10 000; the rest 25 000
    assert [r["money"] for r in done] == [10_000, 25_000]
    assert [r["lines"][0]["qty_milli"] for r in done] == [100, 250]


def test_weighted_line_by_qty_milli(make_engine) -> None:
    engine, sale = sale_of(make_engine, rules(), [line(price=999, qty="0.007")])  # amount 7
    refund = engine.refund(sale, {"lines": [{"line": 0, "qty_milli": 3}]})
    assert refund["money"] == 3  # 7 × 3 / 7


POINTS_TREE = rules(rule("acc", "accrual", percent=10), redeem={"max_percent": 50})
POINTS_LINES = [line("a", 100_000, 2), line("b", 300_000)]


def points_sale(make_engine) -> tuple[Any, dict]:
    return sale_of(make_engine, POINTS_TREE, POINTS_LINES, card=card(balance=10**6), redeem="max")


def test_the_points_sale(make_engine) -> None:
    _, sale = points_sale(make_engine)
    # 50 % of 500 000 = 2 500 points = 250 000, split 200 000 : 300 000 → 100 000 / 150 000;
    # to_pay 250 000; accrual 10 % of 250 000 / 100 = 250 points
    assert sale["redeem"] == {"points": 2_500, "amount": 250_000, "max_points": 2_500}
    assert [x["paid"] for x in sale["lines"]] == [100_000, 150_000]
    assert sale["accrual"]["points"] == 250


def test_points_restored_and_clawed_back_in_steps(make_engine) -> None:
    engine, sale = points_sale(make_engine)
    done = returns(engine, sale, [(0, 1)], [(1, 1)], [(0, 1)])
    # 1 of a: money 50 000, redeemed 50 000 → restored 2 500 × 50 000 / 250 000 = 500,
    #         clawed 250 × 50 000 / 250 000 = 50, cumulative 100 000
    # b:      150 000 / 150 000 → 1 500 restored, 150 clawed, cumulative 300 000
    # last a: the remainders: 50 000, 500 and 50 points, cumulative 100 000
    assert [(r["money"], r["redeem_amount"], r["points_restored"], r["points_clawed"],
             r["cumulative_decrease"]) for r in done] == [
        (50_000, 50_000, 500, 50, 100_000),
        (150_000, 150_000, 1_500, 150, 300_000),
        (50_000, 50_000, 500, 50, 100_000),
    ]
    assert sum(r["money"] for r in done) == sale["to_pay"]
    assert sum(r["cumulative_decrease"] for r in done) == sale["total"]


def test_whole_receipt_at_once_splits_points_over_lines(make_engine) -> None:
    engine, sale = points_sale(make_engine)
    refund = engine.refund(sale, {"lines": [{"line": 0, "qty": 2}, {"line": 1, "qty": 1}]})
    assert (refund["money"], refund["points_restored"], refund["points_clawed"]) == (
        250_000, 2_500, 250)
    # split by redeemed money 100 000 : 150 000 and by money back 100 000 : 150 000
    assert [(x["points_restored"], x["points_clawed"]) for x in refund["lines"]] == [
        (1_000, 100), (1_500, 150)]


def test_the_receipt_emptying_return_gives_the_points_remainder(make_engine) -> None:
    tree = rules(rule("visit", "accrual", points=7))
    engine, sale = sale_of(make_engine, tree, [line("a", 1_000), line("b", 1_000),
                                               line("c", 1_000)], card=card())
    done = returns(engine, sale, [(0, 1)], [(1, 1)], [(2, 1)])
    assert [r["points_clawed"] for r in done] == [2, 2, 3]  # 7/3 = 2.33 → 2, 2, then 3


def test_a_receipt_paid_with_points_claws_back_on_the_last_return(make_engine) -> None:
    tree = rules(rule("visit", "accrual", points=5), redeem={"max_percent": 100})
    engine, sale = sale_of(make_engine, tree, [line(price=1_000, qty=2)],
                           card=card(balance=10**6), redeem="max")
    assert (sale["to_pay"], sale["redeem"]["points"], sale["accrual"]["points"]) == (0, 20, 5)
    done = returns(engine, sale, [(0, 1)], [(0, 1)])
    assert [(r["money"], r["points_restored"], r["points_clawed"]) for r in done] == [
        (0, 10, 0), (0, 10, 5)]


REFUSALS = {
    "unknown line": ({"lines": [{"line": 5, "qty": 1}]},
                     "return line 0: the receipt has no line 5"),
    "too much qty": ({"lines": [{"line": 0, "qty": 4}]},
                     "return: line 0 has 3 left to return, asked 4"),
    "named twice": ({"lines": [{"line": 0, "qty": 1}, {"line": 0, "qty": 1}]},
                    "return line 1: line 0 is named twice"),
    "no lines": ({"lines": []}, "return: 'lines' must list 1 to 1000 lines"),
    "float qty": ({"lines": [{"line": 0, "qty": 1.0}]}, "return line 0: field 'qty' must be exact"),
    "qty 0": ({"lines": [{"line": 0, "qty": 0}]}, "return line 0: field 'qty' must be above 0"),
    "4 decimals": ({"lines": [{"line": 0, "qty": "0.0001"}]},
                   "return line 0: field 'qty' has more than 3 decimals"),
    "qty and qty_milli": ({"lines": [{"line": 0, "qty": 1, "qty_milli": 1_000}]},
                          "return line 0: give 'line' and one of 'qty' or 'qty_milli'"),
    "negative line": ({"lines": [{"line": -1, "qty": 1}]}, "return line 0 field 'line'"),
    "unknown key": ({"lines": [{"line": 0, "qty": 1}], "reason": "x"},
                    "return: must be an object with 'lines'"),
    "previous not a list": ({"lines": [{"line": 0, "qty": 1}], "previous": {}},
                            "return: 'previous' must be a list"),
    "previous too big": ({"lines": [{"line": 0, "qty": 1}], "previous": [
        {"lines": [{"line": 0, "qty_milli": 1_000, "money": 500, "redeem_amount": 0,
                    "accrual_base": 0, "cumulative_decrease": 0}], "points_restored": 0,
         "points_clawed": 0}]},
        "return: earlier refunds gave back more than line 0 holds"),
    "previous without fields": ({"lines": [{"line": 0, "qty": 1}], "previous": [{"lines": []}]},
                                "previous refund 0 field 'points_restored'"),
}


@pytest.mark.parametrize(("ret", "message"), REFUSALS.values(), ids=REFUSALS.keys())
def test_refusals(make_engine, ret: dict, message: str) -> None:
    engine, sale = sale_of(make_engine, rules(), [line(price=100, qty=3)])  # paid 300
    with pytest.raises(RefundError) as info:
        engine.refund(sale, ret)
    assert str(info.value).startswith(message)


def test_returning_more_after_the_line_is_empty_is_refused(make_engine) -> None:
    engine, sale = sale_of(make_engine, rules(), [line(price=100, qty=3)])
    done = returns(engine, sale, [(0, 3)])
    with pytest.raises(RefundError, match="line 0 has 0 left to return, asked 1"):
        engine.refund(sale, {"lines": [{"line": 0, "qty": 1}], "previous": done})


def test_a_quote_without_lines_is_refused(make_engine) -> None:
    engine, _ = sale_of(make_engine, rules(), [line()])
    with pytest.raises(RefundError, match="quote: must be a quote object"):
        engine.refund({"total": 1}, {"lines": [{"line": 0, "qty": 1}]})


def test_a_quote_is_not_changed_by_a_refund(make_engine) -> None:
    engine, sale = points_sale(make_engine)
    before = repr(sale)
    returns(engine, sale, [(0, 1)], [(1, 1)])
    assert repr(sale) == before
    assert quote(make_engine, POINTS_TREE, POINTS_LINES, card=card(balance=10**6),
                 redeem="max") == sale


def test_returning_a_line_that_earned_nothing_claws_back_nothing(make_engine) -> None:
    # 10 % accrual, point_value 100: line A pays 1 000 → 1 point; line B is no_bonus (9 000).
    # Returning B gives 9 000 back but claws back 0 points: B could not earn any.
    tree = rules(rule("acc", "accrual", percent=10))
    engine, sale = sale_of(make_engine, tree, [line("A", price=1_000), line("B", price=9_000, no_bonus=True)],
                           card=card())
    assert sale["accrual"]["points"] == 1
    assert [ln["accrual_base"] for ln in sale["lines"]] == [1_000, 0]
    first = engine.refund(sale, {"lines": [{"line": 1, "qty": 1}]})
    assert (first["money"], first["points_clawed"]) == (9_000, 0)
    last = engine.refund(sale, {"lines": [{"line": 0, "qty": 1}], "previous": [first]})
    assert (last["money"], last["points_clawed"]) == (1_000, 1)
