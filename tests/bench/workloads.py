"""Deterministic benchmark workloads for the pricing core (issue 2).

W1: 20 lines, 50 rules, a card with 10 lots — a typical kiosk basket.
W2: 200 lines, 2000 rules over 300 categories — a hypermarket cart under a large promo calendar.
W3: compiling the 2000-rule tree of W2.

Generated from a fixed seed, so every run measures the same inputs.
"""

from __future__ import annotations

import random
from typing import Any

NOW = "2026-12-02T11:30:00+03:00"  # a Wednesday morning: weekday/time conditions hold for some


def _categories(count: int) -> list[str]:
    """`count` leaf categories in a three-level tree: dept/aisle/shelf."""
    return [f"d{i % 12}/a{i % 40}/s{i}" for i in range(count)]


def rules_tree(rule_count: int, category_count: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    leaves = _categories(category_count)
    prefixes = sorted({c.rsplit("/", 1)[0] for c in leaves} | {c.split("/")[0] for c in leaves})
    groups = [
        {"id": "promo", "combine": "priority", "cap_percent": 30},
        {"id": "brands", "combine": "max", "parent": "promo"},
        {"id": "stack", "combine": "multiply"},
        {"id": "bonus", "kind": "accrual", "combine": "max"},
    ]
    rules: list[dict[str, Any]] = []
    for i in range(rule_count):
        roll = rnd.random()
        scope_pick = rnd.random()
        if scope_pick < 0.7:
            scope = {"categories": [rnd.choice(leaves)]}
        elif scope_pick < 0.9:
            scope = {"categories": [rnd.choice(prefixes)]}
        else:
            scope = {"skus": [f"sku{rnd.randrange(category_count * 3)}"]}
        rule: dict[str, Any] = {"id": f"r{i}", "priority": rnd.randrange(100), "scope": scope}
        if roll < 0.75:
            rule["kind"] = "discount"
            value = rnd.random()
            if value < 0.55:
                rule["percent"] = rnd.choice([3, 5, 7.5, 10, 15, 20])
            elif value < 0.7:
                rule["amount"] = rnd.randrange(1000, 50000)
            elif value < 0.85:
                rule["price"] = rnd.randrange(5000, 90000)
            else:
                rule["tiers"] = [[0, 2], [500000, 4], [2000000, 6]]
                rule["basis"] = rnd.choice(["cumulative", "receipt"])
            group = rnd.random()
            if group < 0.3:
                rule["group"] = rnd.choice(["promo", "brands", "stack"])
        elif roll < 0.9:
            rule["kind"] = "accrual"
            if rnd.random() < 0.5:
                rule["percent"] = rnd.choice([1, 2, 3, 5])
            else:
                rule["per"] = {"points": 1, "amount": 10000}
            if rnd.random() < 0.5:
                rule["group"] = "bonus"
        elif roll < 0.97:
            rule["kind"] = "message"
            rule["text"] = f"Offer {i}: ask about our weekly deals"
        else:
            rule["kind"] = "gift"
            rule["sku"] = f"gift{i}"
        when: dict[str, Any] = {}
        if rnd.random() < 0.2:
            when["card_types"] = rnd.sample(["standard", "silver", "gold"], 2)
        if rnd.random() < 0.15:
            when["weekdays"] = [1, 2, 3, 4, 5]
        if rnd.random() < 0.1:
            when["time"] = ["09:00", "21:00"]
        if rnd.random() < 0.1:
            when["receipt_min"] = rnd.randrange(0, 200000)
        if when:
            rule["when"] = when
        rules.append(rule)
    return {
        "program": {"point_value": 100, "max_discount_percent": 50, "discount_combine": "max",
                    "accrual_combine": "sum", "expiry_days": 365},
        "redeem": {"max_percent": 50},
        "group": groups,
        "rule": rules,
    }


def cart(line_count: int, category_count: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    leaves = _categories(category_count)
    lines = []
    for i in range(line_count):
        cat = rnd.randrange(category_count)
        line: dict[str, Any] = {"sku": f"sku{cat * 3 + i % 3}", "price": rnd.randrange(3000, 250000),
                                "qty": rnd.choice([1, 1, 1, 2, 3]), "categories": [leaves[cat]]}
        if rnd.random() < 0.05:
            line["no_discount"] = True
        lines.append(line)
    return {"store": "S01", "lines": lines}


def card(lot_count: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    lots = []
    for i in range(lot_count):
        month = 1 + i % 12
        lots.append({"points": rnd.randrange(50, 3000),
                     "available_from": f"2026-{month:02d}-01T00:00:00+03:00",
                     "expires_at": f"2027-{month:02d}-01T00:00:00+03:00"})
    return {"number": "7700000000017", "type": "silver", "cumulative": 1_250_000, "lots": lots,
            "referrers": ["7700000000024"]}


def w1() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    categories = 40
    return rules_tree(50, categories, seed=1), cart(20, categories, seed=2), card(10, seed=3)


def w2() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    categories = 300
    return rules_tree(2000, categories, seed=4), cart(200, categories, seed=5), card(10, seed=6)
