"""Coupon codes (spec §13) as terminal and central both read and make them, and the coupon
entry of the updates feed.

Code format (README "Coupons"; docs/protocol.md §4):
    CP-<terminal>-<seq>-<rand><check>   issued by a terminal at a sale: `CP-T01-42-K7QD3`
    CP-C-<rand><check>                  issued by central for marketing: `CP-C-7KQ2M9XW4PB`
`<terminal>` is the terminal id (unique in the chain), `<seq>` the terminal's own coupon counter
(kept in its ledger, so the code is unique in the chain without asking anybody), `<rand>` random
characters of `ALPHABET` so the next code cannot be guessed from the last one, and `<check>` the
ISO 7064 MOD 37,36 check character (python-stdnum) over every letter and digit before it: a
mistyped or swapped character is refused before any lookup. The two shapes have different part
counts, so a terminal named `C` cannot collide with central's codes. Codes are case-insensitive
(`normal` upper-cases them); a scanned barcode starting with `PREFIX` is a coupon, not a product.
A reusable promo code (a series with `single_use = false`) may also be typed as the series id.
Limits: `CODE_CHARS_MAX` characters a code, `SEQ_MAX` codes a terminal ever issues.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from typing import Any

from stdnum.exceptions import ValidationError
from stdnum.iso7064 import mod_37_36

PREFIX = "CP-"
CODE_CHARS_MAX = 32  # printed as CODE128 on an 80 mm roll, typed on the kiosk screen
CODE = re.compile(r"^[A-Z0-9_-]{3,32}$")
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed by customers
TERMINAL_RANDOM_CHARS = 4
CENTRAL_RANDOM_CHARS = 10
SEQ_MAX = 10**12 - 1
STATES = ("unspent", "spent", "void")
SERIES_CHARS_MAX = 64
ITEM_FIELDS = frozenset({"code", "series", "valid_to", "state"})


class CouponCodeError(ValueError):
    """A code that breaks the format (the message says which part)."""


def normal(code: str) -> str:
    return code.strip().upper()


def _check_char(body: str) -> str:
    check: str = mod_37_36.calc_check_digit("".join(ch for ch in body if ch.isalnum()))
    return check


def _random(chars: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(chars))


def terminal_code(terminal_id: str, seq: int) -> str:
    """The `seq`-th code issued by `terminal_id` (its ledger's coupon counter)."""
    if not 1 <= seq <= SEQ_MAX:
        raise CouponCodeError(f"coupon sequence {seq} outside 1..{SEQ_MAX}")
    body = f"{PREFIX}{normal(terminal_id)}-{seq}-{_random(TERMINAL_RANDOM_CHARS)}"
    code = body + _check_char(body)
    if not CODE.match(code):
        raise CouponCodeError(f"terminal id {terminal_id!r} makes no valid coupon code")
    return code


def central_code() -> str:
    """A new marketing code (`posterm-central coupons issue`); uniqueness is the table's key."""
    body = f"{PREFIX}C-{_random(CENTRAL_RANDOM_CHARS)}"
    return body + _check_char(body)


def is_coupon_code(code: str) -> bool:
    """A scanned or typed code in the coupon format, its check character right."""
    code = normal(code)
    if not code.startswith(PREFIX) or not CODE.match(code):
        return False
    try:
        return bool(mod_37_36.is_valid("".join(ch for ch in code if ch.isalnum())))
    except ValidationError:
        return False


def checked_text(raw: Any) -> str:
    """A presented code: text in the code alphabet (a promo code may be a series id), normalised."""
    if not isinstance(raw, str) or not CODE.match(normal(raw)):
        raise CouponCodeError(f"a coupon code is 3..{CODE_CHARS_MAX} of A-Z 0-9 _ - (got {str(raw)[:40]!r})")
    code = normal(raw)
    if code.startswith(PREFIX) and not is_coupon_code(code):
        raise CouponCodeError(f"coupon {code}: the check character is wrong; type the code again")
    return code


def check_item(raw: Any) -> dict[str, Any]:
    """A feed coupon entry {code, series, valid_to ("YYYY-MM-DD" | null), state}: refused whole
    (CouponCodeError naming the field) or returned normalised. Central checks what it publishes
    with this, terminals what they apply."""
    if not isinstance(raw, dict) or not raw.keys() <= ITEM_FIELDS or "code" not in raw or "series" not in raw:
        raise CouponCodeError(f"a coupon entry is an object with {', '.join(sorted(ITEM_FIELDS))}")
    code = checked_text(raw["code"])
    series = raw["series"]
    if not isinstance(series, str) or not 0 < len(series) <= SERIES_CHARS_MAX:
        raise CouponCodeError(f"coupon {code}: series must be 1..{SERIES_CHARS_MAX} characters")
    valid_to = raw.get("valid_to")
    if valid_to is not None:
        if not isinstance(valid_to, str) or len(valid_to) != 10:
            raise CouponCodeError(f"coupon {code}: valid_to must be YYYY-MM-DD or null")
        try:
            dt.date.fromisoformat(valid_to)
        except ValueError:
            raise CouponCodeError(f"coupon {code}: valid_to {valid_to!r} is not a date") from None
    state = raw.get("state", "unspent")
    if state not in STATES:
        raise CouponCodeError(f"coupon {code}: state must be one of {', '.join(STATES)}")
    return {"code": code, "series": series, "valid_to": valid_to, "state": state}
