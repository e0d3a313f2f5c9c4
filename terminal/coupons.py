"""Checking a presented coupon code before it reaches the cart (spec §13: the core matches series,
the terminal judges validity). Typed at the API (`POST /v1/checkout/coupon`) or scanned (a barcode
in the coupon format, `protocol.coupons.is_coupon_code`).

Order of checks, each refusal one line that changes nothing:
  1. format: 3..32 of A-Z 0-9 _ - (case-insensitive); a `CP-` code with a wrong check character
     is a typing error (400);
  2. at most `COUPONS_MAX` codes a cart (the core's limit), each once (409);
  3. known: a code of the ledger (fed from central, or issued here), else the id of a reusable
     series (`single_use = false`) typed as its promo code (404 otherwise);
  4. its series is in this terminal's rules (409);
  5. not spent and not void (409);
  6. today (the terminal's local date) within the series' valid_from..valid_to and on or before
     the code's own valid_to (409).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from protocol import coupons as codes
from protocol import schemas
from terminal.errors import TerminalError

COUPONS_MAX = schemas.COUPONS_MAX


class CouponRefused(TerminalError):
    """A presented code refused; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def _day(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).isoformat()


def _promo_series(program: Any, code: str) -> Any:
    for series in program.coupon_series:
        if not series.single_use and series.id.upper() == code:
            return series
    return None


def check(ledger: Any, program: Any, raw: Any, today: dt.date, presented: list[dict[str, Any]]) -> dict[str, Any]:
    """The entry the checkout keeps for a presented code: {code, series, single_use}."""
    try:
        code = codes.checked_text(raw)
    except codes.CouponCodeError as exc:
        raise CouponRefused(str(exc), 400) from None
    if any(p["code"] == code for p in presented):
        raise CouponRefused(f"coupon {code}: already presented for this checkout")
    if len(presented) >= COUPONS_MAX:
        raise CouponRefused(f"coupon {code}: at most {COUPONS_MAX} coupons a checkout")
    if program is None:
        raise CouponRefused("no pricing rules yet: coupons wait for the rules from the central server")
    record = ledger.coupon(code)
    if record is None:
        promo = _promo_series(program, code)
        if promo is None:
            raise CouponRefused(f"coupon {code}: not known to this terminal (codes come from the central server; "
                                "one issued at another terminal is known after that terminal's next sync)", 404)
        series, valid_to = promo, None
    else:
        index = program.series_ids.get(record["series"])
        if index is None:
            raise CouponRefused(f"coupon {code}: its series {record['series']!r} is not in this terminal's rules")
        series, valid_to = program.coupon_series[index], record.get("valid_to")
        if record["state"] == "spent":
            raise CouponRefused(f"coupon {code}: already used" + (
                f" (receipt {record['spent_receipt']})" if record.get("spent_receipt") else ""))
        if record["state"] == "void":
            raise CouponRefused(f"coupon {code}: void (its sale was returned)")
    day = today.toordinal()
    if series.valid_from >= 0 and day < series.valid_from:
        raise CouponRefused(f"coupon {code}: series {series.id} starts on {_day(series.valid_from)}")
    if series.valid_to >= 0 and day > series.valid_to:
        raise CouponRefused(f"coupon {code}: series {series.id} ended on {_day(series.valid_to)}")
    if valid_to is not None and today.isoformat() > valid_to:
        raise CouponRefused(f"coupon {code}: expired on {valid_to}")
    return {"code": code, "series": series.id, "single_use": bool(series.single_use)}
