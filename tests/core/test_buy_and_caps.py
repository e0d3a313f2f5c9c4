"""Buy N get M (§14, example §18.2), caps and limits (§15, example §18.5), awards (§16)."""

from __future__ import annotations

import pytest

from core import compile_rules
from core.errors import RuleError
from tests.core.pricing_helpers import card, line, line_discounts, quote, rule, rules


def test_example_18_2_three_for_two(make_engine) -> None:
    tree = rules(rule("3for2", buy={"qty": 2, "free": 1}))
    result = quote(make_engine, tree, [line("A", 30_000), line("B", 20_000, qty=2), line("C", 10_000)])
    assert line_discounts(result) == [0, 0, 10_000]
    assert line_discounts(quote(make_engine, tree, [line("A", 5_000, qty=7)])) == [10_000]


def test_second_at_half_price_ties_and_weighed_lines(make_engine) -> None:
    tree = rules(rule("half", buy={"qty": 1, "free": 1, "percent": 50}))
    # units 100, 100, 300 (+ a weighed line outside the pool): k = 1, the earlier 100 line
    result = quote(make_engine, tree, [line("A", 300), line("B", 100), line("C", 100),
                                       line("W", 50, qty="0.5")])
    assert line_discounts(result) == [0, 50, 0, 0]
    assert result["lines"][1]["rules"] == ["half"]


def test_buy_leaves_out_no_discount_lines_and_combines_in_its_group(make_engine) -> None:
    tree = rules(rule("3for2", buy={"qty": 2, "free": 1}), rule("five", percent=5),
                 program={"discount_combine": "sum"})
    result = quote(make_engine, tree, [line("A", 1_000, qty=2), line("B", 100, no_discount=True),
                                       line("C", 2_000)])
    assert line_discounts(result) == [1_000 + 100, 0, 100]


def test_example_18_5_a_capped_group(make_engine) -> None:
    tree = rules(rule("ten", percent=10, group="promo"),
                 group=[{"id": "promo", "combine": "sum", "cap_amount": 50_000}])
    result = quote(make_engine, tree, [line("a", 300_000), line("b", 300_000)])
    assert line_discounts(result) == [25_000, 25_000]


def test_a_cap_split_by_largest_remainder_and_after_cap_percent(make_engine) -> None:
    tree = rules(rule("ten", percent=10, group="promo"),
                 group=[{"id": "promo", "combine": "sum", "cap_percent": 5, "cap_amount": 100}])
    # cap_percent: 50, 50, 50 → 150 > 100: 33.3 each, the leftover kopeck to the first line
    result = quote(make_engine, tree, [line("a", 1_000), line("b", 1_000), line("c", 1_000)])
    assert line_discounts(result) == [34, 33, 33]
    under = quote(make_engine, tree, [line("a", 1_000)])
    assert line_discounts(under) == [50]


def test_accrual_max_points(make_engine) -> None:
    tree = rules(rule("acc", "accrual", percent=10), program={"accrual_max_points": 50})
    assert quote(make_engine, tree, [line("a", 100_000)], card=card())["accrual"]["points"] == 50
    tree = rules(rule("acc", "accrual", percent=10), program={"accrual_max_points": 0})
    assert quote(make_engine, tree, [line("a", 100_000)], card=card())["accrual"] == {
        "points": 0, "available_from": None, "expires_at": None}


def test_redeem_max_points_and_min_redeem_points(make_engine) -> None:
    tree = rules(redeem={"max_percent": 100, "max_points": 300, "min_redeem_points": 100})
    result = quote(make_engine, tree, [line("a", 100_000)], card=card(balance=1_000), redeem="max")
    assert result["redeem"] == {"points": 300, "amount": 30_000, "max_points": 300}
    few = quote(make_engine, tree, [line("a", 100_000)], card=card(balance=1_000), redeem=99)
    assert few["redeem"] == {"points": 0, "amount": 0, "max_points": 300}
    poor = quote(make_engine, tree, [line("a", 100_000)], card=card(balance=99), redeem="max")
    assert poor["redeem"] == {"points": 0, "amount": 0, "max_points": 0}


def test_awards_are_validated_and_compiled() -> None:
    program = compile_rules(rules(award=[
        {"id": "registration", "points": 100, "expiry_days": 90, "per_card_max": 1},
        {"id": "review", "points": 20, "activation_days": 1, "per_card_max": 0}]))
    assert [(a.id, a.points, a.activation_days, a.expiry_days, a.per_card_max) for a in program.awards] == [
        ("registration", 100, 0, 90, 1), ("review", 20, 1, 0, 0)]
    assert compile_rules(rules(award=[{"id": "x", "points": 1}])).awards[0].per_card_max == 1


@pytest.mark.parametrize(("tree", "problem"), [
    (rules(award=[{"id": "a", "points": 0}]), "award 'a': field 'points'"),
    (rules(award=[{"id": "a"}]), "'points': is missing"),
    (rules(award=[{"id": "a", "points": 1}, {"id": "a", "points": 2}]), "used twice"),
    (rules(award=[{"id": "a", "points": 1, "why": "x"}]), "unknown key 'why'"),
    (rules(award=[{"id": "a", "points": 1, "per_card_max": -1}]), "'per_card_max'"),
    (rules(rule("b", buy={"qty": 0, "free": 1})), "'buy.qty'"),
    (rules(rule("b", buy={"qty": 2})), "'buy.free': is missing"),
    (rules(rule("b", buy={"qty": 2, "free": 1, "percent": 101})), "'buy.percent'"),
    (rules(rule("b", buy={"qty": 2, "free": 1}, basis="receipt")), "only tiered discounts"),
    (rules(rule("b", "accrual", tiers=[[0, 1]])), "'basis'"),
    (rules(group=[{"id": "g", "kind": "accrual", "cap_amount": 5}]), "'cap_amount': only discount groups"),
    (rules(group=[{"id": "g", "cap_amount": -5}]), "'cap_amount'"),
    (rules(program={"accrual_max_points": -1}), "'accrual_max_points'"),
    (rules(program={"level_downgrade": 1}), "'level_downgrade'"),
    (rules(redeem={"min_redeem_points": 1.5}), "'min_redeem_points'"),
])
def test_bad_v2_values_are_refused(tree, problem) -> None:
    with pytest.raises(RuleError, match=problem):
        compile_rules(tree, "v2.toml")
