"""The open checkout's record (`checkout.json`) read back and checked field by field.

The daemon wrote the record itself, but a hand edit, a restored backup or a disk fault can leave
one that parses and is still wrong (`{"id":"T01-x","state":"committing","lines":[]}` once made
every start die on an assertion). Every field is checked here — type, range, size — and what a
state needs is present (a `committing` record carries its quote, payment and commit time), so
recovery acts only on a record it could have written. A refusal is a ValueError saying which
field; the caller moves the record aside. Limits: the Register's (lines, quantity, record size).
"""

from __future__ import annotations

from typing import Any

from terminal.jsonio import loads_bounded

STATES = ("open", "paying", "authorizing", "committing")
CARD_MODES = ("local", "online", "offline")
ID_CHARS_MAX = 64
TEXT_CHARS_MAX = 256
MONEY_MAX = 10**15
MS_MAX = 2**53
LINE_FIELDS = {
    "sku": str, "name": str, "code": str, "price": int, "qty": str, "qty_milli": int,
    "categories": list, "no_discount": bool, "no_bonus": bool, "min_price": int, "weighed": bool,
}
LINE_OPTIONAL = {
    "vat": (str, type(None)),  # the product's VAT rate name, when the catalog has one
    "age_min": (int,),  # an age-restricted product (the catalog's age_min)
    "age_ok_by": (str, type(None)),  # the attendant who checked the customer's age
}
RECORD_FIELDS = frozenset({
    "id", "opened_ms", "touched_ms", "state", "lines", "card", "card_mode", "redeem", "quote",
    "payment", "commit_at", "attendant", "attempt", "coupons",
})
COUPONS_MAX = 16
COUPON_FIELDS = {"code": str, "series": str, "single_use": bool}
ATTEMPTS_MAX = 1_000


def _text(value: Any, what: str, limit: int = TEXT_CHARS_MAX, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"{what} must be a text of 1..{limit} characters, got {str(value)[:40]!r}")


def _whole(value: Any, what: str, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number {low}..{high}, got {str(value)[:40]!r}")


def _line(i: int, line: Any, lines_max: int, qty_milli_max: int) -> None:
    if not isinstance(line, dict) or not set(LINE_FIELDS) <= set(line) <= set(LINE_FIELDS) | set(LINE_OPTIONAL):
        raise ValueError(f"line {i} must hold exactly the fields {', '.join(sorted(LINE_FIELDS))} "
                         f"(and {', '.join(LINE_OPTIONAL)})")
    for name in ("vat", "age_ok_by"):
        if name in line and (type(line[name]) not in LINE_OPTIONAL[name] or len(line[name] or "") > 64):
            raise ValueError(f"line {i} field {name!r} must be a short text or null")
    if "age_min" in line:
        _whole(line["age_min"], f"line {i} age_min", 0, 150)
    for name, kind in LINE_FIELDS.items():
        if type(line[name]) is not kind:
            raise ValueError(f"line {i} field {name!r} must be a {kind.__name__}")
    for name in ("sku", "name", "code", "qty"):
        _text(line[name], f"line {i} field {name!r}", optional=name == "name" and line[name] == "")
    _whole(line["price"], f"line {i} price", 0, MONEY_MAX)
    _whole(line["min_price"], f"line {i} min_price", 0, MONEY_MAX)
    _whole(line["qty_milli"], f"line {i} qty_milli", 1, qty_milli_max)
    if len(line["categories"]) > lines_max or not all(isinstance(c, str) for c in line["categories"]):
        raise ValueError(f"line {i} categories must be a list of texts")


def parse_record(data: bytes, lines_max: int, qty_milli_max: int) -> dict[str, Any]:
    """The record's fields, checked; a ValueError names the first wrong one."""
    record = loads_bounded(data, parse_float=_no_float)
    if not isinstance(record, dict):
        raise ValueError("the record must be a JSON object")
    missing, unknown = {"id", "opened_ms", "touched_ms", "state"} - set(record), set(record) - RECORD_FIELDS
    if missing or unknown:
        raise ValueError(f"fields missing {sorted(missing)} or unknown {sorted(unknown)[:5]}")
    _text(record["id"], "id", ID_CHARS_MAX)
    _whole(record["opened_ms"], "opened_ms", 0, MS_MAX)
    _whole(record["touched_ms"], "touched_ms", 0, MS_MAX)
    state = record["state"]
    if state not in STATES:
        raise ValueError(f"state must be one of {', '.join(STATES)}, got {str(state)[:40]!r}")
    lines = record.get("lines", [])
    if not isinstance(lines, list) or len(lines) > lines_max:
        raise ValueError(f"lines must be a list of at most {lines_max}")
    for i, line in enumerate(lines):
        _line(i, line, lines_max, qty_milli_max)
    _text(record.get("card"), "card", ID_CHARS_MAX, optional=True)
    if record.get("card_mode", "local") not in CARD_MODES:
        raise ValueError(f"card_mode must be one of {', '.join(CARD_MODES)}")
    redeem = record.get("redeem")
    if redeem is not None and redeem != "max":
        _whole(redeem, "redeem", 1, MONEY_MAX)
    for name in ("quote", "payment"):
        if record.get(name) is not None and not isinstance(record[name], dict):
            raise ValueError(f"{name} must be an object or null")
    _text(record.get("commit_at"), "commit_at", 64, optional=True)
    _text(record.get("attendant"), "attendant", ID_CHARS_MAX, optional=True)
    _whole(record.get("attempt", 0), "attempt", 0, ATTEMPTS_MAX)
    _coupons(record.get("coupons", []))
    if state == "authorizing" and (not lines or record.get("quote") is None or record.get("payment") is None
                                   or not isinstance(record["payment"].get("tenders"), list)):
        raise ValueError("an authorizing record needs its lines, quote and payment tenders")
    if state == "committing":
        payment = record.get("payment")
        if not lines or record.get("quote") is None or payment is None or record.get("commit_at") is None:
            raise ValueError("a committing record needs its lines, quote, payment and commit_at")
        if not isinstance(payment.get("tenders"), list):
            raise ValueError("payment.tenders must be a list")
    return record


def _coupons(coupons: Any) -> None:
    """The checked coupon codes: [{code, series, single_use}] (terminal.coupons)."""
    if not isinstance(coupons, list) or len(coupons) > COUPONS_MAX:
        raise ValueError(f"coupons must be a list of at most {COUPONS_MAX}")
    for i, item in enumerate(coupons):
        if not isinstance(item, dict) or set(item) != set(COUPON_FIELDS):
            raise ValueError(f"coupon {i} must hold exactly {', '.join(COUPON_FIELDS)}")
        for name, kind in COUPON_FIELDS.items():
            if type(item[name]) is not kind:
                raise ValueError(f"coupon {i} field {name!r} must be a {kind.__name__}")
        _text(item["code"], f"coupon {i} code", 32)
        _text(item["series"], f"coupon {i} series", ID_CHARS_MAX)


def _no_float(text: str) -> Any:
    raise ValueError(f"{text}: the record holds no floats")
