"""Levels and accrual tiers (spec §11, example §18.1) on both engines."""

from __future__ import annotations

import pytest

from core import compile_rules
from core.errors import RuleError
from tests.core.pricing_helpers import card, line, quote, rule, rules

LEVELS = [{"type": "bronze", "cumulative_min": 0}, {"type": "silver", "cumulative_min": 3_000_000},
          {"type": "gold", "cumulative_min": 10_000_000}]


def test_example_18_1_bronze_becomes_silver(make_engine) -> None:
    result = quote(make_engine, rules(level=LEVELS), [line("a", 100_000)],
                   card=card(type="bronze", cumulative=2_950_000))
    assert result["cumulative_after"] == 3_050_000
    assert result["card_type_after"] == "silver"
    assert result["level"] == {"type": "silver", "next": "gold", "to_next": 6_950_000}


def test_the_top_level_has_no_next(make_engine) -> None:
    result = quote(make_engine, rules(level=LEVELS), [line("a", 100_000)],
                   card=card(type="gold", cumulative=12_000_000))
    assert result["level"] == {"type": "gold", "next": None, "to_next": None}
    assert result["card_type_after"] is None


def test_a_sale_never_lowers_a_level(make_engine) -> None:
    # a gold card whose cumulative fell below gold (a return with level_downgrade = false)
    result = quote(make_engine, rules(level=LEVELS), [line("a", 1_000)],
                   card=card(type="gold", cumulative=100))
    assert result["card_type_after"] is None
    assert result["level"] == {"type": "gold", "next": None, "to_next": None}


def test_an_upgrade_message_above_the_level_wins_and_one_below_does_not(make_engine) -> None:
    tree = rules(rule("up", "message", text="Gold offer", upgrade_to="gold"), level=LEVELS)
    result = quote(make_engine, tree, [line("a", 1_000)], card=card(type="bronze"))
    assert result["card_type_after"] == "gold"
    assert result["level"] == {"type": "gold", "next": None, "to_next": None}
    tree = rules(rule("up", "message", text="Bronze", upgrade_to="bronze"), level=LEVELS)
    result = quote(make_engine, tree, [line("a", 100_000)], card=card(type="bronze", cumulative=2_950_000))
    assert result["card_type_after"] == "silver"


def test_cards_that_are_no_level_keep_the_v1_meaning(make_engine) -> None:
    tree = rules(rule("up", "message", text="Staff", upgrade_to="staff-plus"), level=LEVELS)
    result = quote(make_engine, tree, [line("a", 5_000_000)], card=card(type="staff"))
    assert result["card_type_after"] == "staff-plus" and result["level"] is None
    assert quote(make_engine, tree, [line("a", 1)])["level"] is None  # no card


def test_accrual_tiers_by_cumulative_and_by_receipt(make_engine) -> None:
    by_cumulative = rules(rule("acc", "accrual", tiers=[[0, 1], [3_000_000, 3]], basis="cumulative"))
    assert quote(make_engine, by_cumulative, [line("a", 100_000)],
                 card=card(cumulative=3_000_000))["accrual"]["points"] == 30
    assert quote(make_engine, by_cumulative, [line("a", 100_000)],
                 card=card(cumulative=0))["accrual"]["points"] == 10
    by_receipt = rules(rule("acc", "accrual", tiers=[[0, 1], [200_000, 5]], basis="receipt"))
    assert quote(make_engine, by_receipt, [line("a", 100_000, qty=2)], card=card())["accrual"]["points"] == 100


def test_type_after_a_return() -> None:
    program = compile_rules(rules(level=LEVELS))
    assert program.type_after_return("gold", 5_000_000) == "silver"
    assert program.type_after_return("silver", 5_000_000) is None
    assert program.type_after_return("staff", 0) is None
    kept = compile_rules(rules(level=LEVELS, program={"level_downgrade": False}))
    assert kept.type_after_return("gold", 0) is None


@pytest.mark.parametrize(("levels", "problem"), [
    ([{"type": "a", "cumulative_min": 5}], "the first level starts at 0"),
    ([{"type": "a", "cumulative_min": 0}, {"type": "a", "cumulative_min": 9}], "used twice"),
    ([{"type": "a", "cumulative_min": 0}, {"type": "b", "cumulative_min": 0}], "strictly increase"),
    ([{"type": "a"}], "'cumulative_min': is missing"),
    ([{"type": "a", "cumulative_min": 0, "colour": "red"}], "unknown key 'colour'"),
    ([{"type": f"l{i}", "cumulative_min": i} for i in range(33)], "more than 32"),
])
def test_bad_levels_are_refused(levels, problem) -> None:
    with pytest.raises(RuleError, match=problem):
        compile_rules(rules(level=levels), "levels.toml")
