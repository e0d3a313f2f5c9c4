"""terminal.level_progress: the quote's level with both thresholds from the program (§11)."""

from __future__ import annotations

import tomllib

import core
from terminal.level_progress import level_progress

RULES = """
[program]
version = "levels-1"
point_value = 100
max_discount_percent = 100
discount_combine = "max"
accrual_combine = "sum"

[[level]]
type = "standard"
cumulative_min = 0

[[level]]
type = "silver"
cumulative_min = 150000

[[level]]
type = "gold"
cumulative_min = 400000
"""
NOW = "2026-11-23T10:00:00+03:00"


def quote(engine: core.Engine, price: int, cumulative: int, card_type: str = "standard") -> dict:
    cart = {"store": "S01", "lines": [{"sku": "p", "price": price, "qty": 1}]}
    card = {"number": "7700000000026", "type": card_type, "cumulative": cumulative, "lots": [], "referrers": []}
    return engine.quote(cart, card, NOW, None)


def test_the_thresholds_come_from_the_program_and_match_to_next() -> None:
    engine = core.Engine(core.compile_rules(tomllib.loads(RULES)))
    shown = level_progress(engine, quote(engine, 50000, 120000))  # 170 000 after: silver, gold next
    assert shown == {"type": "silver", "next": "gold", "to_next": 230000,
                     "cumulative_min": 150000, "next_cumulative_min": 400000}
    top = level_progress(engine, quote(engine, 1000, 500000, "gold"))
    assert top == {"type": "gold", "next": None, "to_next": None, "cumulative_min": 400000,
                   "next_cumulative_min": None}
    assert level_progress(engine, quote(engine, 1000, 0, "staff")) is None  # a type that is no level
    assert level_progress(engine, None) is None and level_progress(None, {"level": shown}) is None
