"""What `quote` is handed (cart, card, now, redeem): every refusal is a CartError with the same
message on both engines (each case runs once per engine through `engine_cls` and asserts the exact
text), and exact quantities (int, Decimal, decimal string) are accepted."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from core import CartError, compile_rules
from tests.core.pricing_helpers import NOW, line

PROGRAM = compile_rules({"rule": [{"id": "d", "kind": "discount", "percent": 10}]}, "test.toml")
LATER = "2027-01-01T00:00:00+03:00"


def without(item: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k != key}


def carted(*lines: Any) -> dict[str, Any]:
    return {"lines": list(lines)}


OK = carted(line(price=100))
LINE0 = "cart line 0: "

# (cart, card, now, redeem) → the exact message
REFUSALS: dict[str, tuple[Any, Any, Any, Any, str]] = {
    "cart not an object": ([line()], None, NOW, None, "cart: must be an object with 'lines'"),
    "unknown cart field": ({"lines": [line()], "total": 1}, None, NOW, None,
                           "cart: unknown field 'total'"),
    "lines missing": ({"store": "S01"}, None, NOW, None, "cart: field 'lines' must be a list"),
    "store not a string": ({"lines": [line()], "store": 1}, None, NOW, None,
                           "cart: field 'store' must be a string of at most 64 characters"),
    "too many lines": (carted(*[line()] * 1_001), None, NOW, None, "cart: more than 1000 lines"),
    "line not an object": (carted("a"), None, NOW, None, LINE0 + "must be an object"),
    "unknown line field": (carted(line(colour="red")), None, NOW, None,
                           LINE0 + "unknown field 'colour'"),
    "sku missing": (carted(without(line(), "sku")), None, NOW, None,
                    LINE0 + "field 'sku' is missing"),
    "qty missing": (carted(without(line(), "qty")), None, NOW, None,
                    LINE0 + "field 'qty' is missing"),
    "sku too long": (carted(line("x" * 65)), None, NOW, None,
                     LINE0 + "field 'sku' is longer than 64 characters"),
    "negative price": (carted(line(price=-1)), None, NOW, None,
                       LINE0 + "field 'price' must be between 0 and 100000000000, got -1"),
    "price float": (carted(line(price=100.0)), None, NOW, None,
                    LINE0 + "field 'price' must be whole minor units, got 100.0"),
    "price bool": (carted(line(price=True)), None, NOW, None,
                   LINE0 + "field 'price' must be whole minor units, got True"),
    "price string": (carted(line(price="100")), None, NOW, None,
                     LINE0 + "field 'price' must be whole minor units, got '100'"),
    "qty float": (carted(line(qty=1.5)), None, NOW, None,
                  LINE0 + "field 'qty' must be exact: use a whole number or a decimal string"),
    "qty 4 decimals": (carted(line(qty="0.0005")), None, NOW, None,
                       LINE0 + "field 'qty' has more than 3 decimals: 0.0005"),
    "qty Decimal 4 decimals": (carted(line(qty=Decimal("1.0005"))), None, NOW, None,
                               LINE0 + "field 'qty' has more than 3 decimals: 1.0005"),
    "qty 0": (carted(line(qty=0)), None, NOW, None,
              LINE0 + "field 'qty' must be above 0 and at most 1000000, got 0"),
    "qty negative": (carted(line(qty=-1)), None, NOW, None,
                     LINE0 + "field 'qty' must be above 0 and at most 1000000, got -1"),
    "qty over the limit": (carted(line(qty=1_000_001)), None, NOW, None,
                           LINE0 + "field 'qty' must be above 0 and at most 1000000, got 1000001"),
    "qty bool": (carted(line(qty=True)), None, NOW, None,
                 LINE0 + "field 'qty' must be a number, got bool"),
    "qty word": (carted(line(qty="one")), None, NOW, None,
                 LINE0 + "field 'qty' must be written like 2 or 0.350, got 'one'"),
    "qty NaN": (carted(line(qty="NaN")), None, NOW, None,
                LINE0 + "field 'qty' must be written like 2 or 0.350, got 'NaN'"),
    "qty Decimal NaN": (carted(line(qty=Decimal("NaN"))), None, NOW, None,
                        LINE0 + "field 'qty' must be a finite number"),
    "categories not a list": (carted(line(categories="food")), None, NOW, None,
                              LINE0 + "field 'categories' must be a list of at most 16 strings"),
    "17 categories": (carted(line(categories=["a"] * 17)), None, NOW, None,
                      LINE0 + "field 'categories' must be a list of at most 16 strings"),
    "category not a string": (carted(line(categories=[1])), None, NOW, None,
                              LINE0 + "field 'categories' must be a non-empty string, got 1"),
    "no_discount as int": (carted(line(no_discount=1)), None, NOW, None,
                           LINE0 + "field 'no_discount' must be true or false, got 1"),
    "min_price float": (carted(line(min_price=1.5)), None, NOW, None,
                        LINE0 + "field 'min_price' must be whole minor units, got 1.5"),
    "line amount over the limit": (
        carted(line(price=10**11, qty=10**5)), None, NOW, None,
        LINE0 + "the line amount 10000000000000000 is above the limit 1000000000000000"),
    "subtotal over the limit": (carted(*[line(price=10**11, qty=10**4)] * 2), None, NOW, None,
                                "cart: the subtotal is above the limit 1000000000000000"),
    "second line": (carted(line(), line(price=-5)), None, NOW, None,
                    "cart line 1: field 'price' must be between 0 and 100000000000, got -5"),
    "naive time string": (OK, None, "2026-12-01T10:00:00", None,
                          "now: the time 2026-12-01T10:00:00 has no UTC offset"),
    "naive datetime": (OK, None, dt.datetime(2026, 12, 1, 10), None,
                       "now: the time 2026-12-01T10:00:00 has no UTC offset"),
    "time garbage": (OK, None, "yesterday", None, "now: not an ISO-8601 time: 'yesterday'"),
    "time missing": (OK, None, None, None,
                     "now: must be an ISO-8601 time with offset, got NoneType"),
    "card not an object": (OK, "C1", NOW, None, "card: must be an object with a 'number'"),
    "card without number": (OK, {"type": "gold"}, NOW, None,
                            "card: field 'number' must be a non-empty string, got None"),
    "unknown card field": (OK, {"number": "1", "pin": "1234"}, NOW, None,
                           "card: unknown field 'pin'"),
    "cumulative float": (OK, {"number": "1", "cumulative": 1.0}, NOW, None,
                         "card: field 'cumulative' must be whole minor units, got 1.0"),
    "lots and balance": (OK, {"number": "1", "lots": [], "balance": 1}, NOW, None,
                         "card: give either 'lots' or 'balance', not both"),
    "balance float": (OK, {"number": "1", "balance": 1.5}, NOW, None,
                      "card: field 'balance' must be a whole number, got 1.5"),
    "lot unknown field": (OK, {"number": "1", "lots": [{"points": 1, "id": "x"}]}, NOW, None,
                          "card lot 0: must be an object with points, available_from, expires_at"),
    "lot points float": (OK, {"number": "1", "lots": [{"points": 1.0}]}, NOW, None,
                         "card lot 0: field 'points' must be a whole number, got 1.0"),
    "lot naive time": (OK, {"number": "1", "lots": [{"points": 1, "expires_at": "2027-01-01"}]},
                       NOW, None, "card lot 0 expires_at: the time 2027-01-01T00:00:00 has no "
                                  "UTC offset"),
    "9 referrers": (OK, {"number": "1", "referrers": ["R"] * 9}, NOW, None,
                    "card: field 'referrers' must be a list of at most 8 numbers"),
    "redeem negative": (OK, {"number": "1"}, NOW, -1,
                        "redeem: must be a whole number of points or 'max', got -1"),
    "redeem float": (OK, {"number": "1"}, NOW, 1.5,
                     "redeem: must be a whole number of points or 'max', got 1.5"),
    "redeem bool": (OK, {"number": "1"}, NOW, True,
                    "redeem: must be a whole number of points or 'max', got True"),
    "redeem word": (OK, {"number": "1"}, NOW, "all",
                    "redeem: must be a whole number of points or 'max', got 'all'"),
    # the order of checks: now, then the cart, then the card, then the request
    "now before cart": ([1], None, "x", None, "now: not an ISO-8601 time: 'x'"),
    "cart before card": (carted(line(price=-1)), "C1", NOW, None,
                         LINE0 + "field 'price' must be between 0 and 100000000000, got -1"),
    "card before redeem": (OK, "C1", NOW, "all", "card: must be an object with a 'number'"),
}


@pytest.mark.parametrize(("cart", "the_card", "now", "redeem", "message"), REFUSALS.values(),
                         ids=REFUSALS.keys())
def test_refusal_message(engine_cls, cart, the_card, now, redeem, message: str) -> None:
    with pytest.raises(CartError) as info:
        engine_cls(PROGRAM).quote(cart, the_card, now, redeem)
    assert str(info.value) == message


@pytest.mark.parametrize(("qty", "qty_milli", "amount"), [
    (2, 2_000, 200),
    (Decimal("0.35"), 350, 35),
    ("0.35", 350, 35),
    ("1.5", 1_500, 150),
    ("0.001", 1, 0),  # 100 × 0.001 = 0.1 → 0
    ("0.005", 5, 1),  # 0.5 → 1 (half up)
    (Decimal("2.000"), 2_000, 200),  # trailing zeros are not decimals that matter
    (1_000_000, 1_000_000_000, 100_000_000),
])
def test_exact_quantities_are_accepted(engine_cls, qty: Any, qty_milli: int, amount: int) -> None:
    result = engine_cls(PROGRAM).quote(carted(line(price=100, qty=qty)), None, NOW)
    assert (result["lines"][0]["qty_milli"], result["lines"][0]["amount"]) == (qty_milli, amount)


def test_a_thousand_lines_and_aware_datetimes_are_accepted(engine_cls) -> None:
    moment = dt.datetime(2026, 12, 1, 10, tzinfo=dt.timezone(dt.timedelta(hours=3)))
    result = engine_cls(PROGRAM).quote(carted(*[line(price=10)] * 1_000), None, moment)
    assert (result["subtotal"], result["discount"]) == (10_000, 1_000)


def test_optional_fields_are_accepted(engine_cls) -> None:
    item = line(price=100, name="Milk", categories=["food/milk"], no_discount=False,
                no_bonus=True, min_price=0)
    the_card = {"number": "1", "type": "", "cumulative": 0, "referrers": [], "holder": "A. B.",
                "lots": [{"points": 5, "available_from": None, "expires_at": None}]}
    result = engine_cls(PROGRAM).quote({"store": "", "lines": [item]}, the_card, NOW, "max")
    assert result["lines"][0]["discount"] == 10


def test_every_lot_field_is_validated(engine_cls) -> None:
    the_card = {"number": "1", "lots": [{"points": 1, "available_from": LATER,
                                         "expires_at": "garbage"}]}
    with pytest.raises(CartError):
        engine_cls(PROGRAM).quote(OK, the_card, NOW)


def test_card_holder_is_validated(engine_cls) -> None:
    with pytest.raises(CartError):
        engine_cls(PROGRAM).quote(OK, {"number": "1", "holder": {"x": [1, 2]}}, NOW)


@pytest.mark.parametrize("qty", [" 2 ", "1e3", "1_000", "+2"])
def test_only_plain_decimal_strings_are_quantities(engine_cls, qty: str) -> None:
    with pytest.raises(CartError):
        engine_cls(PROGRAM).quote(carted(line(qty=qty)), None, NOW)
