"""Property tests: on random carts and cards under a rules tree that uses every feature, the
compiled engine returns exactly what the pure one does, and every quote keeps its invariants."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import compile_rules, fallback

try:
    from core import _cengine
except ImportError:  # reported by test_engine_loaded.py
    _cengine = None

TREE = {
    "program": {"point_value": 100, "max_discount_percent": 60, "discount_combine": "max",
                "accrual_combine": "sum", "activation_days": 1, "expiry_days": 365},
    "redeem": {"max_percent": 50, "min_receipt": 1_000, "min_points": 10,
               "categories": ["food", "home"]},
    "group": [
        {"id": "promo", "combine": "sum", "cap_percent": 35},
        {"id": "stack", "parent": "promo", "combine": "multiply", "priority": 3},
        {"id": "bonus", "kind": "accrual", "combine": "max"},
    ],
    "rule": [
        {"id": "cum", "kind": "discount", "tiers": [[0, 3], [50_000, 7]], "basis": "cumulative"},
        {"id": "gold", "kind": "discount", "percent": 17, "group": "promo",
         "when": {"card_types": ["gold"]}},
        {"id": "food", "kind": "discount", "percent": 12.5, "group": "stack",
         "scope": {"categories": ["food"], "exclude_skus": ["s3"]}},
        {"id": "off", "kind": "discount", "amount": 777, "group": "stack",
         "when": {"qty_min": 1.5}},
        {"id": "fix", "kind": "discount", "price": 900, "scope": {"skus": ["s1"]}},
        {"id": "big", "kind": "discount", "tiers": [[2_000, 5], [20_000, 9]], "basis": "receipt",
         "when": {"time": ["22:00", "11:00"]}},
        {"id": "acc", "kind": "accrual", "percent": 2, "group": "bonus"},
        {"id": "per", "kind": "accrual", "per": {"points": 3, "amount": 1_000}, "group": "bonus",
         "max_points": 40, "activation_days": 7},
        {"id": "visit", "kind": "accrual", "points": 5, "when": {"card": True}},
        {"id": "hi", "kind": "message", "text": "Hi", "upgrade_to": "silver",
         "when": {"receipt_min": 5_000}},
        {"id": "bag", "kind": "gift", "sku": "BAG", "scope": {"categories": ["home"]}},
        {"id": "ref", "kind": "referral", "levels": [3, 1], "credit": "points"},
    ],
}
PROGRAM = compile_rules(TREE, "agree.toml")

LINES = st.fixed_dictionaries(
    {"sku": st.sampled_from(["s0", "s1", "s2", "s3"]),
     "price": st.integers(0, 50_000),
     "qty": st.one_of(st.integers(1, 5),
                      st.integers(1, 5_000).map(lambda m: str(Decimal(m).scaleb(-3))))},
    optional={"categories": st.lists(st.sampled_from(["food", "food/milk", "home", "foodx"]),
                                     max_size=2),
              "no_discount": st.booleans(), "no_bonus": st.booleans(),
              "min_price": st.integers(0, 50_000)})
CARDS = st.one_of(st.none(), st.fixed_dictionaries(
    {"number": st.just("C1"), "type": st.sampled_from(["", "gold", "silver"]),
     "cumulative": st.integers(0, 100_000), "balance": st.integers(-50, 5_000),
     "referrers": st.lists(st.sampled_from(["R1", "R2", "R3"]), max_size=3)}))
MOMENTS = st.sampled_from(["2026-12-01T10:00:00+03:00", "2026-12-01T12:00:00+03:00",
                           "2026-12-06T23:30:00-05:00"])
REQUESTS = st.one_of(st.none(), st.just("max"), st.integers(0, 2_000))


@pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
@settings(max_examples=150, deadline=None)
@given(lines=st.lists(LINES, max_size=6), card=CARDS, now=MOMENTS, redeem=REQUESTS)
def test_compiled_equals_pure(lines: list[dict], card: Any, now: str, redeem: Any) -> None:
    cart = {"store": "S01", "lines": lines}
    expected = fallback.Engine(PROGRAM).quote(cart, card, now, redeem)
    assert _cengine.Engine(PROGRAM).quote(cart, card, now, redeem) == expected


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(LINES, max_size=6), card=CARDS, now=MOMENTS, redeem=REQUESTS)
def test_quote_invariants(lines: list[dict], card: Any, now: str, redeem: Any) -> None:
    q = fallback.Engine(PROGRAM).quote({"lines": lines}, card, now, redeem)
    out = q["lines"]
    assert q["subtotal"] == sum(x["amount"] for x in out)
    assert q["discount"] == sum(x["discount"] for x in out) == q["subtotal"] - q["total"]
    assert q["redeem"]["amount"] == sum(x["redeem_amount"] for x in out)
    assert q["redeem"]["amount"] == q["redeem"]["points"] * 100
    assert q["redeem"]["points"] <= q["redeem"]["max_points"]
    assert q["to_pay"] == q["total"] - q["redeem"]["amount"] == sum(x["paid"] for x in out)
    for item, raw in zip(out, lines, strict=True):
        assert 0 <= item["discount"] <= item["amount"] * 60 // 100 + 1  # max_discount 60 %
        assert item["paid"] == item["amount"] - item["discount"] - item["redeem_amount"] >= 0
        assert (item["discount"] > 0) == bool(item["rules"])
        if raw.get("no_discount"):
            assert item["discount"] == 0
        if raw.get("no_bonus"):
            assert item["redeem_amount"] == 0
