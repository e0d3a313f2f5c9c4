"""Validation of what `quote` is handed: the cart, the card, the moment and the redemption request.

Untrusted data: every value is type- and range-checked and refused with a `CartError` naming the
line and field. Limits: ≤ 1 000 lines, ≤ 16 categories a line, price ≤ 10^11 and line amount
≤ 10^15 minor units, quantity ≤ 10^6 units with ≤ 3 decimals, ≤ 10 000 lots, ≤ 8 referrers.

The cart reader here is the readable reference; the compiled engine has its own copy of it
(`_cengine.pyx: _read_lines`) that must accept and refuse exactly the same carts.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from core.arith import MILLI, price_times_qty
from core.errors import CartError

LINES_MAX = 1_000
LINE_CATEGORIES_MAX = 16
TEXT_CHARS_MAX = 256
SKU_CHARS_MAX = 64
PRICE_MAX = 10**11
QTY_MILLI_MAX = 10**9
AMOUNT_MAX = 10**15
LOTS_MAX = 10_000
REFERRERS_MAX = 8
POINTS_MAX = 10**15
QTY_DIGITS_MAX = 9  # a quantity's decimal exponent: far above QTY_MILLI_MAX, far below overflow


def lot_dates(now: dt.datetime, activation_days: int, expiry_days: int) -> tuple[str, str | None]:
    """A points lot's start and expiry (ISO) from `now`; both engines use it, so a `now` so late
    that the dates pass year 9999 gets the same one-line refusal from either."""
    try:
        start = now + dt.timedelta(days=activation_days)
        end = start + dt.timedelta(days=expiry_days) if expiry_days else None
    except OverflowError:
        raise CartError(f"now: {now.isoformat()} is too late: the points' dates would pass year 9999") from None
    return start.isoformat(), None if end is None else end.isoformat()

CART_FIELDS = frozenset({"store", "lines"})
LINE_FIELDS = frozenset(
    {"sku", "name", "price", "qty", "categories", "no_discount", "no_bonus", "min_price"}
)
CARD_FIELDS = frozenset({"number", "type", "cumulative", "lots", "balance", "referrers", "holder"})
LOT_FIELDS = frozenset({"points", "available_from", "expires_at"})
REDEEM_ALL = -1
_PLAIN_DECIMAL = re.compile(r"[0-9]{1,7}(\.[0-9]{1,9})?")  # "2", "0.35": no sign, exponent or spaces


class Line(NamedTuple):
    sku: str
    price: int
    qty_milli: int
    amount: int
    categories: tuple[str, ...]
    no_discount: bool
    no_bonus: bool
    min_price: int


class Card(NamedTuple):
    number: str
    type: str
    cumulative: int
    available: int  # points usable at the quote's moment
    referrers: tuple[str, ...]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def qty_to_milli(value: Any, where: str) -> int:
    """A quantity (int, Decimal or decimal string; never a float) in thousandths."""
    if _is_int(value):
        if not 0 < value <= QTY_MILLI_MAX // MILLI:
            raise CartError(f"{where}: field 'qty' must be above 0 and at most 1000000, got {value}")
        return value * MILLI
    if isinstance(value, float):
        raise CartError(f"{where}: field 'qty' must be exact: use a whole number or a decimal string")
    if not isinstance(value, Decimal | str):
        raise CartError(f"{where}: field 'qty' must be a number, got {type(value).__name__}")
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise CartError(f"{where}: field 'qty' must be written like 2 or 0.350, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CartError(f"{where}: field 'qty' must be a number, got {value!r}") from None
    if not number.is_finite():
        raise CartError(f"{where}: field 'qty' must be a finite number")
    if number.adjusted() > QTY_DIGITS_MAX:  # 1e999999 would overflow the decimal context below
        raise CartError(f"{where}: field 'qty' must be above 0 and at most 1000000, got {value}")
    milli = number.scaleb(3)
    if milli != milli.to_integral_value():
        raise CartError(f"{where}: field 'qty' has more than 3 decimals: {value}")
    if not 0 < milli <= QTY_MILLI_MAX:
        raise CartError(f"{where}: field 'qty' must be above 0 and at most 1000000, got {value}")
    return int(milli)


def _money(value: Any, where: str, field: str, limit: int) -> int:
    if not _is_int(value):
        raise CartError(f"{where}: field {field!r} must be whole minor units, got {value!r}")
    if not 0 <= value <= limit:
        raise CartError(f"{where}: field {field!r} must be between 0 and {limit}, got {value}")
    return value


def _text(value: Any, where: str, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value:
        raise CartError(f"{where}: field {field!r} must be a non-empty string, got {value!r}")
    if len(value) > limit:
        raise CartError(f"{where}: field {field!r} is longer than {limit} characters")
    return value


def _flag(value: Any, where: str, field: str) -> bool:
    if not isinstance(value, bool):
        raise CartError(f"{where}: field {field!r} must be true or false, got {value!r}")
    return value


def _unknown_field(data: dict[str, Any], allowed: frozenset[str], where: str) -> CartError:
    name = sorted(str(k) for k in data if k not in allowed)[0]
    return CartError(f"{where}: unknown field {name!r}")


def read_line(raw: Any, where: str) -> Line:
    if not isinstance(raw, dict):
        raise CartError(f"{where}: must be an object")
    if not raw.keys() <= LINE_FIELDS:
        raise _unknown_field(raw, LINE_FIELDS, where)
    for field in ("sku", "price", "qty"):
        if field not in raw:
            raise CartError(f"{where}: field {field!r} is missing")
    sku = _text(raw["sku"], where, "sku", SKU_CHARS_MAX)
    if "name" in raw:
        _text(raw["name"], where, "name", TEXT_CHARS_MAX)
    price = _money(raw["price"], where, "price", PRICE_MAX)
    qty_milli = qty_to_milli(raw["qty"], where)
    categories = raw.get("categories", [])
    if not isinstance(categories, list) or len(categories) > LINE_CATEGORIES_MAX:
        raise CartError(f"{where}: field 'categories' must be a list of at most "
                        f"{LINE_CATEGORIES_MAX} strings")
    cats = tuple(_text(c, where, "categories", TEXT_CHARS_MAX) for c in categories)
    amount = price_times_qty(price, qty_milli)
    if amount > AMOUNT_MAX:
        raise CartError(f"{where}: the line amount {amount} is above the limit {AMOUNT_MAX}")
    return Line(
        sku, price, qty_milli, amount, cats,
        _flag(raw.get("no_discount", False), where, "no_discount"),
        _flag(raw.get("no_bonus", False), where, "no_bonus"),
        _money(raw.get("min_price", 0), where, "min_price", PRICE_MAX),
    )


def read_cart(cart: Any) -> tuple[str, list[Line]]:
    """The store and the validated lines of a cart; refuses the whole cart on the first fault."""
    if not isinstance(cart, dict):
        raise CartError("cart: must be an object with 'lines'")
    if not cart.keys() <= CART_FIELDS:
        raise _unknown_field(cart, CART_FIELDS, "cart")
    store = cart.get("store", "")
    if not isinstance(store, str) or len(store) > SKU_CHARS_MAX:
        raise CartError("cart: field 'store' must be a string of at most 64 characters")
    raw_lines = cart.get("lines")
    if not isinstance(raw_lines, list):
        raise CartError("cart: field 'lines' must be a list")
    if len(raw_lines) > LINES_MAX:
        raise CartError(f"cart: more than {LINES_MAX} lines")
    lines = [read_line(raw, f"cart line {i}") for i, raw in enumerate(raw_lines)]
    if sum(line.amount for line in lines) > AMOUNT_MAX:
        raise CartError(f"cart: the subtotal is above the limit {AMOUNT_MAX}")
    return store, lines


def read_moment(value: Any, where: str) -> dt.datetime:
    """An aware datetime from a datetime or an ISO-8601 string with a UTC offset."""
    if isinstance(value, str):
        if len(value) > 64:
            raise CartError(f"{where}: not an ISO-8601 time")
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise CartError(f"{where}: not an ISO-8601 time: {value!r}") from None
    if not isinstance(value, dt.datetime):
        raise CartError(f"{where}: must be an ISO-8601 time with offset, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise CartError(f"{where}: the time {value.isoformat()} has no UTC offset")
    return value


def _available(lots: Any, now: dt.datetime) -> int:
    if not isinstance(lots, list) or len(lots) > LOTS_MAX:
        raise CartError(f"card: field 'lots' must be a list of at most {LOTS_MAX} lots")
    available = 0
    for i, lot in enumerate(lots):
        where = f"card lot {i}"
        if not isinstance(lot, dict) or not lot.keys() <= LOT_FIELDS:
            raise CartError(f"{where}: must be an object with points, available_from, expires_at")
        points = lot.get("points")
        if not isinstance(points, int) or isinstance(points, bool) or abs(points) > POINTS_MAX:
            raise CartError(f"{where}: field 'points' must be a whole number, got {points!r}")
        start, end = lot.get("available_from"), lot.get("expires_at")
        start = None if start is None else read_moment(start, f"{where} available_from")
        end = None if end is None else read_moment(end, f"{where} expires_at")
        if (start is None or start <= now) and (end is None or now < end):
            available += points
    if available > POINTS_MAX:
        raise CartError(f"card: {available} points available is above the limit {POINTS_MAX}")
    return max(0, available)  # a debt lot can eat the balance, never below zero


def read_card(card: Any, now: dt.datetime) -> Card | None:
    if card is None:
        return None
    if not isinstance(card, dict):
        raise CartError("card: must be an object with a 'number'")
    if not card.keys() <= CARD_FIELDS:
        raise _unknown_field(card, CARD_FIELDS, "card")
    number = _text(card.get("number"), "card", "number", SKU_CHARS_MAX)
    if "holder" in card and card["holder"] is not None:
        _text(card["holder"], "card", "holder", TEXT_CHARS_MAX)
    card_type = card.get("type", "")
    if not isinstance(card_type, str) or len(card_type) > SKU_CHARS_MAX:
        raise CartError("card: field 'type' must be a string")
    cumulative = _money(card.get("cumulative", 0), "card", "cumulative", AMOUNT_MAX)
    if "lots" in card and "balance" in card:
        raise CartError("card: give either 'lots' or 'balance', not both")
    if "balance" in card:
        balance = card["balance"]
        if not _is_int(balance) or abs(balance) > POINTS_MAX:
            raise CartError(f"card: field 'balance' must be a whole number, got {balance!r}")
        available = max(0, balance)
    else:
        available = _available(card.get("lots", []), now)
    referrers = card.get("referrers", [])
    if not isinstance(referrers, list) or len(referrers) > REFERRERS_MAX:
        raise CartError(f"card: field 'referrers' must be a list of at most {REFERRERS_MAX} numbers")
    refs = tuple(_text(r, "card", "referrers", SKU_CHARS_MAX) for r in referrers)
    return Card(number, card_type, cumulative, available, refs)


def read_redeem(value: Any) -> int:
    """Points asked for: a count, 'max' (REDEEM_ALL) or None (0)."""
    if value is None:
        return 0
    if value == "max":
        return REDEEM_ALL
    if not _is_int(value) or not 0 <= value <= POINTS_MAX:
        raise CartError(f"redeem: must be a whole number of points or 'max', got {value!r}")
    return value
