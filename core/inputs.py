"""Validation of what `quote` is handed: the cart, the card, the moment and the redemption request.

Untrusted data: every value is type- and range-checked and refused with a `CartError` naming the
line and field. Limits: ≤ 1 000 lines, ≤ 16 categories a line, price ≤ 10^11 and line amount
≤ 10^15 minor units, quantity ≤ 10^6 units with ≤ 3 decimals, ≤ 10 000 lots, ≤ 8 referrers,
≤ 16 card tags, ≤ 16 coupons a cart.

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
TAGS_MAX = 16
NO_BIRTHDAY = 10**6  # a birthday offset no window (≤ 31 days) reaches
COUPONS_MAX = 16

CART_FIELDS = frozenset({"store", "lines", "coupons"})
LINE_FIELDS = frozenset(
    {"sku", "name", "price", "qty", "categories", "no_discount", "no_bonus", "min_price", "vat"}
)
CARD_FIELDS = frozenset({"number", "type", "cumulative", "lots", "balance", "referrers", "holder",
                         "birth_date", "issued_on", "tags"})
COUPON_FIELDS = frozenset({"code", "series"})
LOT_FIELDS = frozenset({"points", "available_from", "expires_at"})
REDEEM_ALL = -1
VAT_NONE = -1  # core.vat.VAT_NONE
VAT_BP_MAX = 10_000  # 100 %
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH_DAY = re.compile(r"--[0-9]{2}-[0-9]{2}")
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
    vat_bp: int = VAT_NONE  # the line's VAT rate in basis points; VAT_NONE = outside VAT


class Card(NamedTuple):
    number: str
    type: str
    cumulative: int
    available: int  # points usable at the quote's moment
    referrers: tuple[str, ...]
    birth_month: int = 0  # 0 = birth date unknown
    birth_day: int = 0
    issued_on: int = -1  # proleptic ordinal; -1 = unknown
    tags: tuple[str, ...] = ()


class Coupon(NamedTuple):
    code: str
    series: str


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
    milli = number.scaleb(3)
    if milli != milli.to_integral_value():
        raise CartError(f"{where}: field 'qty' has more than 3 decimals: {value}")
    if not 0 < milli <= QTY_MILLI_MAX:
        raise CartError(f"{where}: field 'qty' must be above 0 and at most 1000000, got {value}")
    return int(milli)


def read_vat(value: Any, where: str) -> int:
    """A VAT rate (0–100 %, at most 2 decimals: int, float by its shortest repr, Decimal or a
    decimal string) in basis points."""
    problem = f"{where}: field 'vat' must be a percent from 0 to 100 with at most 2 decimals, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise CartError(problem)
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise CartError(problem)
    try:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation:
        raise CartError(problem) from None
    if not number.is_finite():
        raise CartError(problem)
    bp = number.scaleb(2)
    if bp != bp.to_integral_value() or not 0 <= bp <= VAT_BP_MAX:
        raise CartError(problem)
    return int(bp)


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
        VAT_NONE if raw.get("vat") is None else read_vat(raw["vat"], where),
    )


def read_coupons(raw: Any) -> tuple[Coupon, ...]:
    """§13: the codes the terminal has checked, in cart order; a code listed twice is refused."""
    if not isinstance(raw, list) or len(raw) > COUPONS_MAX:
        raise CartError(f"cart: field 'coupons' must be a list of at most {COUPONS_MAX} coupons")
    coupons: list[Coupon] = []
    for i, item in enumerate(raw):
        where = f"cart coupon {i}"
        if not isinstance(item, dict) or item.keys() != COUPON_FIELDS:
            raise CartError(f"{where}: must be an object with 'code' and 'series'")
        coupon = Coupon(_text(item["code"], where, "code", SKU_CHARS_MAX),
                        _text(item["series"], where, "series", SKU_CHARS_MAX))
        if any(c.code == coupon.code for c in coupons):
            raise CartError(f"{where}: the code {coupon.code!r} is listed twice")
        coupons.append(coupon)
    return tuple(coupons)


def read_cart_coupons(cart: Any) -> tuple[Coupon, ...]:
    """The coupons of a cart `read_cart` accepted (none when the key is absent or null)."""
    raw = cart.get("coupons")
    return () if raw is None else read_coupons(raw)


def read_cart(cart: Any) -> tuple[str, list[Line]]:
    """The store and the validated lines of a cart; refuses the whole cart on the first fault
    (its coupons, read by `read_cart_coupons`, included)."""
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
    read_cart_coupons(cart)
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
    month, day = read_birth_date(card.get("birth_date"))
    return Card(number, card_type, cumulative, available, refs, month, day,
                read_issued_on(card.get("issued_on")), read_tags(card.get("tags")))


def read_birth_date(value: Any) -> tuple[int, int]:
    """(month, day) of "YYYY-MM-DD" or "--MM-DD" (year unknown; 29 February allowed); (0, 0) for
    None."""
    if value is None:
        return 0, 0
    problem = f"card: field 'birth_date' must be written YYYY-MM-DD or --MM-DD, got {value!r}"
    if not isinstance(value, str):
        raise CartError(problem)
    if _DATE.fullmatch(value):
        try:
            date = dt.date.fromisoformat(value)
        except ValueError:
            raise CartError(f"card: field 'birth_date': no such date: {value}") from None
        return date.month, date.day
    if not _MONTH_DAY.fullmatch(value):
        raise CartError(problem)
    month, day = int(value[2:4]), int(value[5:7])
    try:
        dt.date(2000, month, day)  # a leap year: 29 February is a birthday
    except ValueError:
        raise CartError(f"card: field 'birth_date': no such day of the year: {value}") from None
    return month, day


def read_issued_on(value: Any) -> int:
    """The card's issue date as a proleptic ordinal; -1 for None."""
    if value is None:
        return -1
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise CartError(f"card: field 'issued_on' must be written YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value).toordinal()
    except ValueError:
        raise CartError(f"card: field 'issued_on': no such date: {value}") from None


def read_tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or len(value) > TAGS_MAX:
        raise CartError(f"card: field 'tags' must be a list of at most {TAGS_MAX} tags")
    return tuple(_text(t, "card", "tags", SKU_CHARS_MAX) for t in value)


def birthday_offsets(month: int, day: int, today: int) -> tuple[int, int, int]:
    """today − B in days for the birthday B of the previous, current and next year (ordinals);
    29 February is 28 February in a year that has none."""
    year = dt.date.fromordinal(today).year
    out = []
    for y in (year - 1, year, year + 1):
        if not dt.MINYEAR <= y <= dt.MAXYEAR:
            out.append(NO_BIRTHDAY)  # beyond the calendar: never within a window
            continue
        d = day
        if month == 2 and day == 29 and not (y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)):
            d = 28
        out.append(today - dt.date(y, month, d).toordinal())
    return out[0], out[1], out[2]


def read_redeem(value: Any) -> int:
    """Points asked for: a count, 'max' (REDEEM_ALL) or None (0)."""
    if value is None:
        return 0
    if value == "max":
        return REDEEM_ALL
    if not _is_int(value) or not 0 <= value <= POINTS_MAX:
        raise CartError(f"redeem: must be a whole number of points or 'max', got {value!r}")
    return value
