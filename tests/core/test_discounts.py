"""Discounts (spec §4) on both engines: value kinds, group combining, caps and per-line limits."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.pricing_helpers import card, line, line_discounts, line_rules, quote, rule, rules


def disc(rid: str, **fields: Any) -> dict[str, Any]:
    return rule(rid, "discount", **fields)


def one_line(make_engine, tree: dict, item: dict, **kwargs: Any) -> dict[str, Any]:
    """The quote's only line."""
    return quote(make_engine, tree, [item], **kwargs)["lines"][0]


# ----------------------------------------------------------------------------- value kinds


@pytest.mark.parametrize(("percent", "amount", "expected"), [
    (5, 1_200_000, 60_000),  # 1 200 000 × 5 %
    (7.5, 12_345, 926),  # 925.875 → 926
    (33.33, 150, 50),  # 49.995 → 50 (half up)
    (5, 10, 1),  # 0.5 → 1 (the tie goes up)
    (0.25, 100_000, 250),
    (100, 4_321, 4_321),
])
def test_percent(make_engine, percent, amount: int, expected: int) -> None:
    result = one_line(make_engine, rules(disc("p", percent=percent)), line(price=amount))
    assert result["discount"] == expected
    assert result["rules"] == ["p"]


def test_percent_that_rounds_to_zero_names_no_rule(make_engine) -> None:
    result = one_line(make_engine, rules(disc("p", percent=5)), line(price=9))  # 0.45 → 0
    assert (result["discount"], result["rules"]) == (0, [])


def test_quote_totals(make_engine) -> None:
    tree = rules(disc("p", percent=10))
    q = quote(make_engine, tree, [line("a", 1_000, 2), line("b", 333, "1.5")])
    # amounts 2000 and round(499.5) = 500; discounts 200 and 50
    assert [x["amount"] for x in q["lines"]] == [2_000, 500]
    assert (q["subtotal"], q["discount"], q["total"], q["to_pay"]) == (2_500, 250, 2_250, 2_250)
    assert [(x["qty_milli"], x["price"], x["paid"]) for x in q["lines"]] == [
        (2_000, 1_000, 1_800), (1_500, 333, 450)]


def test_amount_is_split_over_scope_lines_by_base(make_engine) -> None:
    tree = rules(disc("x", amount=1_000, scope={"skus": ["a", "b"]}))
    q = quote(make_engine, tree, [line("a", 3_000), line("c", 5_000), line("b", 1_000)])
    # 1000 × 3000/4000 = 750, 1000 × 1000/4000 = 250; c is out of scope
    assert line_discounts(q) == [750, 0, 250]
    assert line_rules(q) == [["x"], [], ["x"]]


def test_amount_split_leftover_goes_to_the_earlier_line(make_engine) -> None:
    tree = rules(disc("x", amount=100))
    q = quote(make_engine, tree, [line("a", 1_000), line("b", 1_000), line("c", 1_000)])
    assert line_discounts(q) == [34, 33, 33]  # 33.33 each; the 1 left over → line a (tie)


def test_amount_is_reduced_to_the_scope_total(make_engine) -> None:
    tree = rules(disc("x", amount=10_000, scope={"categories": ["food"]}))
    q = quote(make_engine, tree, [line("a", 3_000, categories=["food"]),
                                  line("b", 1_000, categories=["food/milk"]),
                                  line("c", 9_000, categories=["toys"])])
    assert line_discounts(q) == [3_000, 1_000, 0]  # X reduced to 4000: the scope is free
    assert q["total"] == 9_000


@pytest.mark.parametrize(("price", "qty", "fixed", "expected"), [
    (7_000, 2, 5_000, 4_000),  # 14 000 − 2 × 5 000
    (100_000, "0.35", 80_000, 7_000),  # 35 000 − 28 000 (weighted, per kg)
    (1_000, "0.333", 500, 166),  # 333 − round(166.5) = 333 − 167
    (5_000, 1, 6_000, 0),  # a fixed price above the price gives nothing
])
def test_fixed_price(make_engine, price: int, qty: Any, fixed: int, expected: int) -> None:
    result = one_line(make_engine, rules(disc("fix", price=fixed)), line(price=price, qty=qty))
    assert result["discount"] == expected
    assert result["rules"] == (["fix"] if expected else [])


TIERS = [[100_000, 5], [300_000, 10]]


@pytest.mark.parametrize(("amount", "expected"), [
    (99_999, 0),  # below the first threshold
    (100_000, 5_000),  # 5 %
    (299_999, 15_000),  # 5 % of 299 999 = 14 999.95 → 15 000
    (300_000, 30_000),  # 10 %
])
def test_tiers_on_the_receipt(make_engine, amount: int, expected: int) -> None:
    tree = rules(disc("t", tiers=TIERS, basis="receipt"))
    assert one_line(make_engine, tree, line(price=amount))["discount"] == expected


def test_receipt_tiers_count_no_discount_scope_lines(make_engine) -> None:
    tree = rules(disc("t", tiers=TIERS, basis="receipt"))
    q = quote(make_engine, tree, [line("a", 200_000, no_discount=True), line("b", 100_000)])
    # scope subtotal 300 000 → the 10 % tier; line a gets none, line b 10 000
    assert line_discounts(q) == [0, 10_000]


def test_receipt_tiers_measure_the_scope_only(make_engine) -> None:
    tree = rules(disc("t", tiers=TIERS, basis="receipt", scope={"skus": ["b"]}))
    q = quote(make_engine, tree, [line("a", 500_000), line("b", 100_000)])
    assert line_discounts(q) == [0, 5_000]  # scope subtotal 100 000 → 5 %


CUMULATIVE = [[0, 5], [3_000_000, 7], [10_000_000, 10]]


@pytest.mark.parametrize(("cumulative", "expected"), [
    (0, 50_000), (2_999_999, 50_000), (3_000_000, 70_000), (6_650_000, 70_000),
    (10_000_000, 100_000),
])
def test_tiers_on_the_cumulative_total(make_engine, cumulative: int, expected: int) -> None:
    tree = rules(disc("cum", tiers=CUMULATIVE, basis="cumulative"))
    result = one_line(make_engine, tree, line(price=1_000_000), card=card(cumulative=cumulative))
    assert result["discount"] == expected


def test_cumulative_tiers_give_nothing_without_a_card(make_engine) -> None:
    tree = rules(disc("cum", tiers=CUMULATIVE, basis="cumulative"))
    assert one_line(make_engine, tree, line(price=1_000_000))["discount"] == 0


# ----------------------------------------------------------------------------- combining

GOLD = disc("gold", percent=17, priority=1)
BRAND = disc("brand", percent=30, priority=2, scope={"categories": ["brand"]})


@pytest.mark.parametrize(("policy", "expected", "given_by"), [
    ("max", 30_000, ["brand"]),
    ("min", 17_000, ["gold"]),
    ("sum", 47_000, ["gold", "brand"]),  # 17 000 + 30 000
    ("multiply", 41_900, ["gold", "brand"]),  # 17 000 + 30 % of 83 000
    ("priority", 17_000, ["gold"]),  # gold runs first
])
def test_root_policies_on_the_gold_and_brand_example(make_engine, policy, expected, given_by):
    tree = rules(GOLD, BRAND, program={"discount_combine": policy})
    result = one_line(make_engine, tree, line(price=100_000, categories=["brand/shoes"]))
    assert (result["discount"], result["rules"]) == (expected, given_by)


def test_priority_falls_through_to_the_next_member_per_line(make_engine) -> None:
    tree = rules(disc("brand", percent=30, priority=0, scope={"categories": ["brand"]}),
                 disc("gold", percent=17, priority=1), program={"discount_combine": "priority"})
    q = quote(make_engine, tree, [line("a", 100_000, categories=["brand"]), line("b", 100_000)])
    assert line_discounts(q) == [30_000, 17_000]
    assert line_rules(q) == [["brand"], ["gold"]]


def test_min_ignores_members_giving_nothing(make_engine) -> None:
    tree = rules(disc("zero", percent=5), disc("ten", percent=10),
                 program={"discount_combine": "min"})
    # zero: 5 % of 9 = 0.45 → 0 (ignored); ten: 0.9 → 1
    assert one_line(make_engine, tree, line(price=9))["discount"] == 1


def test_max_tie_keeps_the_earlier_member(make_engine) -> None:
    tree = rules(disc("first", percent=10), disc("second", amount=10_000))
    assert one_line(make_engine, tree, line(price=100_000))["rules"] == ["first"]


def test_nested_sum_group_competes_under_max(make_engine) -> None:
    tree = rules(disc("a", percent=10, group="promo"), disc("b", percent=5, group="promo"),
                 disc("c", percent=12), group=[{"id": "promo", "combine": "sum"}])
    result = one_line(make_engine, tree, line(price=100_000))
    assert (result["discount"], result["rules"]) == (15_000, ["a", "b"])  # 15 000 > 12 000


def test_group_cap_applies_before_the_parent_combines(make_engine) -> None:
    tree = rules(disc("a", percent=10, group="promo"), disc("b", percent=5, group="promo"),
                 disc("c", percent=12),
                 group=[{"id": "promo", "combine": "sum", "cap_percent": 11}])
    result = one_line(make_engine, tree, line(price=100_000))
    assert (result["discount"], result["rules"]) == (12_000, ["c"])  # promo capped to 11 000


def test_group_cap_rounds_half_up(make_engine) -> None:
    tree = rules(disc("a", percent=20, group="g"), disc("b", percent=20, group="g"),
                 group=[{"id": "g", "combine": "sum", "cap_percent": 30}])
    q = quote(make_engine, tree, [line("a", 100_000), line("b", 5)])
    # a: 40 000 capped to 30 000; b: 1 + 1 = 2 capped to round(1.5) = 2
    assert line_discounts(q) == [30_000, 2]


def test_nested_multiply_inside_a_sum_root(make_engine) -> None:
    tree = rules(disc("a", percent=10, group="m"), disc("b", percent=10, group="m"),
                 disc("c", percent=5), group=[{"id": "m", "combine": "multiply"}],
                 program={"discount_combine": "sum"})
    result = one_line(make_engine, tree, line(price=100_000))
    # m: 10 000 + 10 % of 90 000 = 19 000; root sum: 19 000 + 5 000
    assert (result["discount"], result["rules"]) == (24_000, ["a", "b", "c"])


def test_nested_group_in_a_multiply_parent_works_on_what_is_left(make_engine) -> None:
    tree = rules(disc("x", percent=50, priority=0), disc("y", percent=50, group="g"),
                 group=[{"id": "g", "priority": 1, "cap_percent": 10}],
                 program={"discount_combine": "multiply"})
    result = one_line(make_engine, tree, line(price=100_000))
    # x: 50 000; g on the 50 000 left: y 25 000 capped to 10 % of 50 000 = 5 000
    assert (result["discount"], result["rules"]) == (55_000, ["x", "y"])


def test_amount_inside_multiply_splits_what_is_left(make_engine) -> None:
    tree = rules(disc("half", percent=50, priority=0), disc("off", amount=300, priority=1),
                 program={"discount_combine": "multiply"})
    q = quote(make_engine, tree, [line("a", 1_000), line("b", 200)])
    # half: 500 and 100; left 500 and 100 → 300 split 250 / 50
    assert line_discounts(q) == [750, 150]


def test_group_result_is_clamped_to_the_base(make_engine) -> None:
    tree = rules(disc("a", percent=60), disc("b", percent=70), program={"discount_combine": "sum"})
    assert one_line(make_engine, tree, line(price=1_000))["discount"] == 1_000  # 1300 → 1000


# ----------------------------------------------------------------------------- line limits


@pytest.mark.parametrize(("max_percent", "price", "expected"), [
    (20, 100_000, 20_000),  # 50 % asked, 20 % allowed
    (33.33, 1_000, 333),  # 333.3 → 333
    (33.35, 10, 3),  # 3.335 → 3
    (0, 100_000, 0),
])
def test_max_discount_percent(make_engine, max_percent, price: int, expected: int) -> None:
    tree = rules(disc("p", percent=50), program={"max_discount_percent": max_percent})
    result = one_line(make_engine, tree, line(price=price))
    assert result["discount"] == expected
    assert result["rules"] == (["p"] if expected else [])


@pytest.mark.parametrize(("price", "qty", "min_price", "expected"), [
    (10_000, 2, 9_000, 2_000),  # 20 000 − 18 000
    (1_000, "0.35", 900, 35),  # 350 − 315
    (1_001, "0.5", 1_001, 0),  # the floor is the whole amount
    (10_000, 1, 20_000, 0),  # min_price above the price: no discount, never a surcharge
    (10_000, 1, 8_000, 2_000),
])
def test_min_price(make_engine, price: int, qty: Any, min_price: int, expected: int) -> None:
    tree = rules(disc("p", percent=50))
    result = one_line(make_engine, tree, line(price=price, qty=qty, min_price=min_price))
    assert result["discount"] == expected
    assert result["paid"] == result["amount"] - expected


def test_no_discount_lines_get_nothing_and_stay_out_of_splits(make_engine) -> None:
    tree = rules(disc("pct", percent=10, scope={"skus": ["a"]}),
                 disc("off", amount=600, scope={"skus": ["b", "c"]}),
                 program={"discount_combine": "sum"})
    q = quote(make_engine, tree, [line("a", 1_000, no_discount=True),
                                  line("b", 3_000, no_discount=True), line("c", 1_000)])
    assert line_discounts(q) == [0, 0, 600]  # all 600 on c, not 450 / 150
    assert line_rules(q) == [[], [], ["off"]]
    assert q["discount"] == 600


def test_rules_attribution_per_line(make_engine) -> None:
    tree = rules(disc("food", percent=10, scope={"categories": ["food"]}),
                 disc("milk", percent=3, scope={"categories": ["food/milk"]}),
                 program={"discount_combine": "sum"})
    q = quote(make_engine, tree, [line("bread", 1_000, categories=["food"]),
                                  line("kefir", 1_000, categories=["food/milk"]),
                                  line("toy", 1_000, categories=["toys"])])
    assert line_discounts(q) == [100, 130, 0]
    assert line_rules(q) == [["food"], ["food", "milk"], []]
