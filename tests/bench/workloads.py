"""Deterministic benchmark workloads for the pricing core (issue 2).

W1: 20 lines, 50 rules, a card with 10 lots — a typical kiosk basket.
W2: 200 lines, 2000 rules over 300 categories — a hypermarket cart under a large promo calendar.
W3: compiling the 2000-rule tree of W2.
W1 and W2 programs also have levels, a coupon rule and a `buy` rule (spec v2), their carts VAT
rates and a coupon.
W4: 1 000 lines, 10 000 rules over 1 000 categories with every v2 feature (levels, accrual tiers,
birthday / card age / tags / exclude_tags / coupon conditions, buy, coupon issuing, cap_amount,
accrual and redeem caps, awards); W4 compile: that tree.

Generated from a fixed seed, so every run measures the same inputs.
"""

from __future__ import annotations

import random
from typing import Any

NOW = "2026-12-02T11:30:00+03:00"  # a Wednesday morning: weekday/time conditions hold for some


def _categories(count: int) -> list[str]:
    """`count` leaf categories in a three-level tree: dept/aisle/shelf."""
    return [f"d{i % 12}/a{i % 40}/s{i}" for i in range(count)]


LEVELS = [{"type": "standard", "cumulative_min": 0}, {"type": "silver", "cumulative_min": 1_000_000},
          {"type": "gold", "cumulative_min": 5_000_000}]
SERIES = [{"id": "spring", "single_use": True, "valid_from": "2026-03-01", "valid_to": "2026-12-31"},
          {"id": "visit", "single_use": False}]


def _v2_when(rnd: random.Random) -> dict[str, Any]:
    """One of the v2 conditions (W4): birthday, card age, tags, exclude_tags or a coupon."""
    pick = rnd.randrange(5)
    if pick == 0:
        return {"birthday": [3, 3]}
    if pick == 1:
        return {"card_age_days": [0, rnd.choice([30, 365, 3650])]}
    if pick == 2:
        return {"tags": [rnd.choice(["staff", "b2b", "vip"])]}
    if pick == 3:
        return {"exclude_tags": [rnd.choice(["staff", "b2b"])]}
    return {"coupon": rnd.choice(["spring", "visit"])}


def _v2_value(rnd: random.Random, rule: dict[str, Any]) -> None:
    """W4: some discounts become `buy`, some accruals tiers, some messages coupon issuers."""
    if rule["kind"] == "discount" and rnd.random() < 0.1:
        for key in ("percent", "amount", "price", "tiers", "basis"):
            rule.pop(key, None)
        rule["buy"] = {"qty": rnd.choice([1, 2]), "free": 1, "percent": rnd.choice([50, 100])}
    elif rule["kind"] == "accrual" and rnd.random() < 0.3:
        rule.pop("percent", None)
        rule.pop("per", None)
        rule["tiers"] = [[0, 1], [1_000_000, 2], [5_000_000, 3]]
        rule["basis"] = "cumulative"
    elif rule["kind"] == "message" and rnd.random() < 0.2:
        rule.pop("text")
        rule.update({"kind": "coupon", "series": "visit", "valid_days": 30})


def _v2_program(tree: dict[str, Any], full: bool) -> None:
    """Levels, coupon series, a coupon rule and a `buy` rule; with `full` also every cap and awards."""
    tree["level"] = LEVELS
    tree["coupon_series"] = SERIES
    tree["rule"].append({"id": "spring-coupon", "kind": "discount", "percent": 12,
                         "when": {"coupon": "spring"}, "scope": {"categories": ["d1"]}})
    tree["rule"].append({"id": "two-for-one", "kind": "discount", "buy": {"qty": 2, "free": 1, "percent": 50},
                         "scope": {"categories": ["d2", "d3", "d4", "d5"]}})
    if full:
        tree["program"]["accrual_max_points"] = 50_000
        tree["redeem"].update({"max_points": 20_000, "min_redeem_points": 10})
        tree["group"].append({"id": "capped", "combine": "sum", "cap_amount": 500_000})
        tree["award"] = [{"id": "registration", "points": 100, "expiry_days": 90, "per_card_max": 1},
                         {"id": "review", "points": 20, "per_card_max": 0}]


def rules_tree(rule_count: int, category_count: int, seed: int, v2: str = "") -> dict[str, Any]:
    """v2: "" (a v1 tree), "some" (levels, a coupon rule, a buy rule) or "full" (every v2 feature)."""
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
            elif v2 == "full" and group < 0.4:
                rule["group"] = "capped"
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
        if v2 == "full":
            _v2_value(rnd, rule)
            if rnd.random() < 0.15:
                when.update(_v2_when(rnd))
        if when:
            rule["when"] = when
        rules.append(rule)
    tree = {
        "program": {"point_value": 100, "max_discount_percent": 50, "discount_combine": "max",
                    "accrual_combine": "sum", "expiry_days": 365},
        "redeem": {"max_percent": 50},
        "group": groups,
        "rule": rules,
    }
    if v2:
        _v2_program(tree, v2 == "full")
    return tree


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
        line["vat"] = rnd.choice([20, 20, 10, 0])
        lines.append(line)
    return {"store": "S01", "lines": lines, "coupons": [{"code": "SPR-0001", "series": "spring"},
                                                        {"code": "V-0002", "series": "visit"}]}


def card(lot_count: int, seed: int) -> dict[str, Any]:
    rnd = random.Random(seed)
    lots = []
    for i in range(lot_count):
        month = 1 + i % 12
        lots.append({"points": rnd.randrange(50, 3000),
                     "available_from": f"2026-{month:02d}-01T00:00:00+03:00",
                     "expires_at": f"2027-{month:02d}-01T00:00:00+03:00"})
    return {"number": "7700000000017", "type": "silver", "cumulative": 1_250_000, "lots": lots,
            "referrers": ["7700000000024"], "birth_date": "--12-04", "issued_on": "2026-11-20",
            "tags": ["vip"]}


def w1() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    categories = 40
    return rules_tree(50, categories, seed=1, v2="some"), cart(20, categories, seed=2), card(10, seed=3)


def w2() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    categories = 300
    return rules_tree(2000, categories, seed=4, v2="some"), cart(200, categories, seed=5), card(10, seed=6)


def w4() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    categories = 1000
    tree = rules_tree(10_000 - 2, categories, seed=7, v2="full")  # + the coupon and buy rules
    return tree, cart(1000, categories, seed=8), card(10, seed=9)
