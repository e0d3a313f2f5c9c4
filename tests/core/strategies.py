"""Hypothesis strategies: random but valid rules trees, carts, cards, moments and returns.

Pools are small on purpose (a few categories, skus and card types) so generated rules and carts
actually meet: scopes match, conditions hold sometimes, groups nest and combine.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

CATEGORIES = ["food", "food/dairy", "food/dairy/milk", "tech", "tech/tv", "toys"]
SKUS = ["s1", "s2", "s3", "s4", "s5"]
CARD_TYPES = ["standard", "silver", "gold"]
STORES = ["S01", "S02"]
SERIES = ["spring", "visit"]
TAGS = ["staff", "b2b", "vip"]

percents = st.one_of(
    st.integers(0, 100),
    st.decimals(min_value=0, max_value=100, places=2, allow_nan=False, allow_infinity=False),
).map(lambda p: float(p) if isinstance(p, Decimal) else p)
money = st.integers(0, 500_000)


@st.composite
def when_tables(draw: st.DrawFn, series: tuple[str, ...] = ()) -> dict[str, Any]:
    when: dict[str, Any] = {}
    if draw(st.booleans()):
        return when
    if series and draw(st.integers(0, 2)) == 0:
        when["coupon"] = draw(st.sampled_from(series))
    if draw(st.integers(0, 6)) == 0:
        when["birthday"] = [draw(st.integers(0, 31)), draw(st.integers(0, 31))]
    if draw(st.integers(0, 6)) == 0:
        low = draw(st.integers(0, 400))
        when["card_age_days"] = [low, low + draw(st.integers(0, 400))]
    for name in ("tags", "exclude_tags"):
        if draw(st.integers(0, 6)) == 0:
            when[name] = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True))
    customer = {"birthday", "card_age_days", "tags", "exclude_tags"} & when.keys()
    if draw(st.integers(0, 5)) == 0:
        when["card"] = True if customer else draw(st.booleans())
    if draw(st.integers(0, 4)) == 0 and when.get("card") is not False:
        when["card_types"] = draw(st.lists(st.sampled_from(CARD_TYPES), min_size=1, max_size=2,
                                           unique=True))
    if draw(st.integers(0, 5)) == 0:
        when["stores"] = [draw(st.sampled_from(STORES))]
    if draw(st.integers(0, 5)) == 0:
        when["weekdays"] = draw(st.lists(st.integers(1, 7), min_size=1, max_size=4, unique=True))
    if draw(st.integers(0, 5)) == 0:
        start, end = draw(st.lists(st.integers(0, 23), min_size=2, max_size=2, unique=True))
        when["time"] = [f"{start:02d}:00", f"{end:02d}:30"]
    if draw(st.integers(0, 6)) == 0:
        when["dates"] = ["2026-11-01", draw(st.sampled_from(["2026-11-30", "2026-12-31"]))]
    if draw(st.integers(0, 3)) == 0:
        when["receipt_min"] = draw(st.integers(0, 300_000))
    if draw(st.integers(0, 5)) == 0:
        when["qty_min"] = draw(st.sampled_from([1, 2, 1.5, 3]))
    return when


@st.composite
def scope_tables(draw: st.DrawFn) -> dict[str, Any]:
    scope: dict[str, Any] = {}
    if draw(st.booleans()):
        scope["categories"] = draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        scope["skus"] = draw(st.lists(st.sampled_from(SKUS), max_size=2, unique=True))
    if draw(st.integers(0, 4)) == 0:
        scope["exclude_categories"] = [draw(st.sampled_from(CATEGORIES))]
    if draw(st.integers(0, 4)) == 0:
        scope["exclude_skus"] = [draw(st.sampled_from(SKUS))]
    return scope


@st.composite
def discount_values(draw: st.DrawFn) -> dict[str, Any]:
    value = draw(st.sampled_from(["percent", "amount", "price", "tiers", "buy"]))
    if value == "buy":
        buy = {"qty": draw(st.integers(1, 3)), "free": draw(st.integers(1, 2))}
        if draw(st.booleans()):
            buy["percent"] = draw(percents)
        return {"buy": buy}
    if value == "percent":
        return {"percent": draw(percents)}
    if value == "amount":
        return {"amount": draw(st.integers(1, 200_000))}
    if value == "price":
        return {"price": draw(st.integers(0, 100_000))}
    thresholds = sorted(draw(st.lists(st.integers(0, 400_000), min_size=1, max_size=3, unique=True)))
    return {"tiers": [[t, draw(percents)] for t in thresholds],
            "basis": draw(st.sampled_from(["cumulative", "receipt"]))}


@st.composite
def accrual_values(draw: st.DrawFn) -> dict[str, Any]:
    value = draw(st.sampled_from(["percent", "per", "points", "tiers"]))
    out: dict[str, Any]
    if value == "tiers":
        thresholds = sorted(draw(st.lists(st.integers(0, 400_000), min_size=1, max_size=3, unique=True)))
        out = {"tiers": [[t, draw(percents)] for t in thresholds],
               "basis": draw(st.sampled_from(["cumulative", "receipt"]))}
    elif value == "percent":
        out = {"percent": draw(percents)}
    elif value == "per":
        out = {"per": {"points": draw(st.integers(1, 5)), "amount": draw(st.integers(1, 50_000))}}
    else:
        out = {"points": draw(st.integers(1, 500))}
    if draw(st.integers(0, 3)) == 0:
        out["max_points"] = draw(st.integers(0, 1000))
    if draw(st.integers(0, 3)) == 0:
        out["activation_days"] = draw(st.integers(0, 30))
    if draw(st.integers(0, 3)) == 0:
        out["expiry_days"] = draw(st.integers(0, 400))
    return out


@st.composite
def rules_trees(draw: st.DrawFn) -> dict[str, Any]:
    tree: dict[str, Any] = {"program": {
        "point_value": draw(st.sampled_from([1, 10, 100])),
        "max_discount_percent": draw(st.sampled_from([100, 50, 33.33, 0])),
        "discount_combine": draw(st.sampled_from(["priority", "max", "min", "sum", "multiply"])),
        "accrual_combine": draw(st.sampled_from(["priority", "max", "min", "sum"])),
        "activation_days": draw(st.integers(0, 14)),
        "expiry_days": draw(st.sampled_from([0, 30, 365])),
    }}
    if draw(st.integers(0, 3)) > 0:
        tree["redeem"] = {
            "max_percent": draw(percents),
            "min_receipt": draw(st.sampled_from([0, 0, 50_000])),
            "min_points": draw(st.sampled_from([0, 0, 100])),
            "categories": draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True)),
        }
        if draw(st.integers(0, 2)) == 0:
            tree["redeem"]["max_points"] = draw(st.integers(0, 3_000))
        if draw(st.integers(0, 2)) == 0:
            tree["redeem"]["min_redeem_points"] = draw(st.integers(0, 500))
    _program_v2(draw, tree)
    series = tuple(s["id"] for s in tree.get("coupon_series", []))
    groups: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["discount", "accrual"]))
        policies = ["priority", "max", "min", "sum"] + (["multiply"] if kind == "discount" else [])
        group: dict[str, Any] = {"id": f"g{i}", "kind": kind, "combine": draw(st.sampled_from(policies))}
        parents = [g["id"] for g in groups if g["kind"] == kind]
        if parents and draw(st.booleans()):
            group["parent"] = draw(st.sampled_from(parents))
        if kind == "discount" and draw(st.integers(0, 2)) == 0:
            group["cap_percent"] = draw(percents)
        if kind == "discount" and draw(st.integers(0, 2)) == 0:
            group["cap_amount"] = draw(st.integers(0, 100_000))
        if draw(st.integers(0, 3)) == 0:
            group["priority"] = draw(st.integers(-5, 20))
        groups.append(group)
    if groups:
        tree["group"] = groups
    rules = []
    for i in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["discount", "discount", "discount", "accrual", "accrual",
                                     "message", "gift", "referral"] + (["coupon"] if series else [])))
        rule: dict[str, Any] = {"id": f"r{i}", "kind": kind, "priority": draw(st.integers(0, 20)),
                                "when": draw(when_tables(series)), "scope": draw(scope_tables())}
        if kind == "discount":
            rule.update(draw(discount_values()))
        elif kind == "accrual":
            rule.update(draw(accrual_values()))
        elif kind == "message":
            rule["text"] = f"message {i}"
            if draw(st.booleans()):
                rule["upgrade_to"] = draw(st.sampled_from(CARD_TYPES))
        elif kind == "gift":
            rule.update({"sku": f"gift{i}", "qty": draw(st.integers(1, 3))})
        elif kind == "coupon":
            rule.update({"series": draw(st.sampled_from(series)), "valid_days": draw(st.integers(1, 60))})
        else:
            rule.update({"levels": draw(st.lists(percents, min_size=1, max_size=3)),
                         "credit": draw(st.sampled_from(["points", "cumulative"]))})
        own = [g["id"] for g in groups if g["kind"] == kind]
        if own and draw(st.booleans()):
            rule["group"] = draw(st.sampled_from(own))
        rules.append(rule)
    if rules:
        tree["rule"] = rules
    return tree


def _program_v2(draw: st.DrawFn, tree: dict[str, Any]) -> None:
    """Levels, accrual cap, coupon series and awards (§11, §13, §15, §16), each sometimes."""
    if draw(st.booleans()):
        silver = draw(st.integers(1, 300_000))
        tree["level"] = [{"type": "standard", "cumulative_min": 0},
                         {"type": "silver", "cumulative_min": silver},
                         {"type": "gold", "cumulative_min": silver + draw(st.integers(1, 300_000))}]
        tree["program"]["level_downgrade"] = draw(st.booleans())
    if draw(st.integers(0, 3)) == 0:
        tree["program"]["accrual_max_points"] = draw(st.integers(0, 2_000))
    if draw(st.booleans()):
        tree["coupon_series"] = [{"id": "spring", "single_use": True,
                                  "valid_from": "2026-03-01", "valid_to": "2026-03-31"},
                                 {"id": "visit", "single_use": draw(st.booleans())}]
    if draw(st.integers(0, 3)) == 0:
        tree["award"] = [{"id": "registration", "points": 100, "expiry_days": 90, "per_card_max": 1}]


quantities = st.one_of(
    st.integers(1, 5),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal("3"), places=3),
    st.sampled_from(["0.35", "1.250", "2"]),
)


@st.composite
def carts(draw: st.DrawFn) -> dict[str, Any]:
    lines = []
    for _ in range(draw(st.integers(0, 6))):
        line: dict[str, Any] = {"sku": draw(st.sampled_from(SKUS)), "price": draw(money),
                                "qty": draw(quantities)}
        if draw(st.integers(0, 4)) > 0:
            line["categories"] = draw(st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True))
        if draw(st.integers(0, 5)) == 0:
            line["no_discount"] = True
        if draw(st.integers(0, 5)) == 0:
            line["no_bonus"] = True
        if draw(st.integers(0, 5)) == 0:
            line["min_price"] = draw(st.integers(0, line["price"]))
        if draw(st.integers(0, 2)) > 0:
            line["vat"] = draw(st.sampled_from([0, 10, 20, 20, 7.5, "18", Decimal("9.99"), None]))
        lines.append(line)
    cart: dict[str, Any] = {"store": draw(st.sampled_from(STORES)), "lines": lines}
    if draw(st.booleans()):
        pool = [{"code": "SPR-1", "series": "spring"}, {"code": "SPR-2", "series": "spring"},
                {"code": "V-1", "series": "visit"}, {"code": "X-1", "series": "autumn"}]
        cart["coupons"] = draw(st.lists(st.sampled_from(pool), max_size=3, unique_by=lambda c: c["code"]))
    return cart


moments = st.builds(
    lambda day, minute, offset: dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=offset)))
    + dt.timedelta(days=day, minutes=minute),
    st.integers(0, 60), st.integers(0, 24 * 60 - 1), st.integers(-5, 12),
)


def timestamps(moment: dt.datetime, odd: bool) -> st.SearchStrategy[str]:
    """The canonical form; with `odd`, sometimes other spellings or an impossible date, so both
    engines' slow paths and refusals are compared too."""
    canonical = moment.isoformat()
    if not odd:
        return st.just(canonical)
    return st.sampled_from([
        canonical, canonical, canonical, canonical,
        moment.replace(microsecond=123456).isoformat(),
        canonical.replace("T", " "),
        moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
        canonical[:5] + "13" + canonical[7:],
        canonical[:19],
    ])


@st.composite
def cards(draw: st.DrawFn, odd_timestamps: bool = False) -> dict[str, Any] | None:
    if draw(st.integers(0, 4)) == 0:
        return None
    card: dict[str, Any] = {"number": "7700000000017", "type": draw(st.sampled_from(CARD_TYPES)),
                            "cumulative": draw(st.integers(0, 500_000))}
    if draw(st.booleans()):
        card["balance"] = draw(st.integers(-100, 50_000))
    else:
        lots = []
        for _ in range(draw(st.integers(0, 4))):
            start = draw(st.one_of(st.none(), moments))
            end = draw(st.one_of(st.none(), moments))
            lots.append({"points": draw(st.integers(-50, 20_000)),
                         "available_from": None if start is None else draw(timestamps(start, odd_timestamps)),
                         "expires_at": None if end is None else draw(timestamps(end, odd_timestamps))})
        card["lots"] = lots
    card["referrers"] = draw(st.lists(st.sampled_from(["R1", "R2", "R3"]), max_size=3))
    if draw(st.booleans()):
        card["birth_date"] = draw(st.sampled_from(["--12-03", "--11-15", "1990-11-20", "--02-29",
                                                   "2000-01-02", "--12-31", None]))
    if draw(st.booleans()):
        card["issued_on"] = draw(st.sampled_from(["2026-11-01", "2026-06-15", "2025-12-01", None]))
    if draw(st.booleans()):
        card["tags"] = draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True))
    return card


redeem_requests = st.one_of(st.none(), st.just("max"), st.integers(0, 100_000))
