"""The compiled engine reads canonical input in C (moment, lines, card, lots) and hands anything
else to the reference readers. These tests aim at the edges of those fast readers: wall-clock
weekday and minute under any offset and before 1970, keys that are equal but not the same
object (as JSON decoding makes them), and shapes the fast path must pass on."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import compile_rules, fallback
from core.errors import CartError

try:
    from core import _cengine
except ImportError:  # reported by test_engine_loaded.py
    _cengine = None

pytestmark = pytest.mark.skipif(_cengine is None, reason="compiled engine not built")

TREE = {
    "program": {"point_value": 100, "expiry_days": 30},
    "rule": [
        {"id": f"day{d}", "kind": "message", "text": f"day {d}", "when": {"weekdays": [d]}}
        for d in range(1, 8)
    ] + [
        {"id": "night", "kind": "message", "text": "night", "when": {"time": ["23:59", "00:01"]}},
        {"id": "noon", "kind": "discount", "percent": 5, "when": {"time": ["12:00", "12:01"]}},
        {"id": "acc", "kind": "accrual", "percent": 3},
    ],
}
PROGRAM = compile_rules(TREE, "fast.toml")
CART = {"store": "S01", "lines": [{"sku": "A", "price": 10_000, "qty": 2, "categories": ["x"]}]}
CARD = {"number": "C1", "type": "gold", "cumulative": 5, "referrers": [],
        "lots": [{"points": 700, "available_from": "2026-01-01T00:00:00+00:00",
                  "expires_at": "2027-01-01T00:00:00.250000-02:30"},
                 {"points": -20, "available_from": None, "expires_at": None}]}


def both(cart, card, now, redeem=None):
    return [cls(PROGRAM).quote(cart, card, now, redeem) for cls in (_cengine.Engine, fallback.Engine)]


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30)),
    offset_min=st.integers(-23 * 60 - 59, 23 * 60 + 59),
    micro=st.booleans(),
)
def test_any_moment_gives_the_same_weekday_time_and_lot_dates(moment, offset_min, micro):
    tz = dt.timezone(dt.timedelta(minutes=offset_min))
    now = moment.replace(tzinfo=tz, microsecond=moment.microsecond if micro else 0).isoformat()
    compiled, pure = both(CART, CARD, now, "max")
    assert compiled == pure


@pytest.mark.parametrize("now", [
    "1969-12-31T23:59:59+00:00",  # the day before the epoch: a Wednesday
    "0001-01-01T00:00:00+00:00",  # a Monday
    "2024-02-29T12:00:30+14:00",  # the discount's minute, a leap day
    "2026-11-29T23:59:00-00:30",
])
def test_edge_moments(now):
    compiled, pure = both(CART, CARD, now)
    assert compiled == pure
    weekday = dt.datetime.fromisoformat(now).isoweekday()
    assert {"rule": f"day{weekday}", "text": f"day {weekday}"} in compiled["messages"]


@pytest.mark.parametrize("now", [
    "2026-12-02T11:30:00.000000+03:00",  # zero microseconds: isoformat leaves them out
    "2026-12-02T11:30:00.000250+03:00",
    "2026-12-02T11:30:00-00:00",  # UTC written with a minus: isoformat writes "+00:00"
    "2028-02-10T00:00:00+00:00",  # the lot's window crosses a leap day
    "9999-12-10T10:00:00-23:59",  # its expiry passes year 9999: the reference's refusal
    "9999-12-31T23:59:59.999999+23:59",
])
def test_lot_dates_written_in_c_match_the_reference(now):
    def lot(cls):
        try:
            return cls(PROGRAM).quote(CART, CARD, now)["accrual"]
        except CartError as exc:
            return f"CartError: {exc}"
    compiled, pure = lot(_cengine.Engine), lot(fallback.Engine)
    assert compiled == pure
    assert now.startswith("9999") == isinstance(compiled, str)


def test_json_decoded_keys_read_like_literal_ones():
    now = "2026-12-02T11:30:00+03:00"
    decoded_cart, decoded_card = json.loads(json.dumps(CART)), json.loads(json.dumps(CARD))
    assert both(decoded_cart, decoded_card, now) == both(CART, CARD, now)


def outcome(cls, cart, card):
    try:
        return cls(PROGRAM).quote(cart, card, "2026-12-02T11:30:00+03:00")
    except CartError as exc:
        return f"CartError: {exc}"


@pytest.mark.parametrize("cart, card, refused", [
    ({"store": "S01", "lines": [{**CART["lines"][0], "colour": "red"}]}, CARD, True),
    ({"store": "S01", "lines": [{"sku": "A", "price": 1}]}, CARD, True),
    ({"lines": CART["lines"], "till": 3}, CARD, True),
    (CART, {**CARD, "lots": [{"points": 1, "available_from": None, "expires": None}]}, True),
    (CART, {**CARD, "pin": "1234"}, True),
    (CART, {**CARD, "lots": [{"points": 1, "available_from": None}]}, False),  # expiry optional
    ({"lines": CART["lines"]}, {"number": "C1", "balance": 50}, False),
])
def test_shapes_off_the_fast_path_get_the_reference_answer(cart, card, refused):
    compiled, pure = outcome(_cengine.Engine, cart, card), outcome(fallback.Engine, cart, card)
    assert compiled == pure
    assert isinstance(compiled, str) == refused
