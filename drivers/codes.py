"""Product and card codes: EAN-13, EAN-8 and UPC-A check digits, GS1 restricted-circulation
weight/price codes (prefixes 20–29, per-deployment layouts) and card numbers from barcodes.

Pure functions over strings; nothing here raises on bad input — callers get `None` or a reason.
Limits: `code_chars_max`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

code_chars_max = 256
card_digits_max = 19
gs1_prefixes = tuple(str(n) for n in range(20, 30))

GS1Value = Literal["weight_g", "price_minor"]


def gtin_check_digit(body: str) -> int:
    """The GS1 mod-10 check digit for the digits before it (EAN-8, UPC-A, EAN-13, GTIN-14)."""
    total = 0
    # Weights run 3,1,3,1… from the rightmost body digit, whatever the code length.
    for i, ch in enumerate(reversed(body)):
        total += int(ch) * (3 if i % 2 == 0 else 1)
    return (10 - total % 10) % 10


def gtin_valid(code: str) -> bool:
    return (
        len(code) in (8, 12, 13, 14)
        and code.isascii()
        and code.isdigit()
        and gtin_check_digit(code[:-1]) == int(code[-1])
    )


def symbology_of(code: str) -> str | None:
    """ean13 / ean8 / upca for a code whose check digit holds, else None."""
    if not gtin_valid(code):
        return None
    return {13: "ean13", 8: "ean8", 12: "upca"}.get(len(code))


def luhn_valid(number: str) -> bool:
    if not (number.isascii() and number.isdigit()) or len(number) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


@dataclass(frozen=True, slots=True)
class GS1Layout:
    """How one restricted-circulation prefix packs an item number and a weight or price.

    Layout of the 13 digits: prefix (2) + item (item_digits) + value (value_digits) + check (1),
    so item_digits + value_digits == 10.
    """

    prefix: str
    item_digits: int
    value: GS1Value
    value_digits: int


@dataclass(frozen=True, slots=True)
class GS1Code:
    prefix: str
    item: str
    weight_g: int | None
    price_minor: int | None


def parse_gs1(code: str, layouts: dict[str, GS1Layout]) -> GS1Code | None:
    """Split a valid EAN-13 with a configured 20–29 prefix; None when no layout applies."""
    if len(code) != 13 or not gtin_valid(code):
        return None
    layout = layouts.get(code[:2])
    if layout is None:
        return None
    item_end = 2 + layout.item_digits
    item = code[2:item_end]
    value = int(code[item_end : item_end + layout.value_digits])
    if layout.value == "weight_g":
        return GS1Code(layout.prefix, item, weight_g=value, price_minor=None)
    return GS1Code(layout.prefix, item, weight_g=None, price_minor=value)


@dataclass(frozen=True, slots=True)
class CardBarcode:
    """Card barcodes: digits starting with `prefix`, exactly `digits` long; check optional."""

    prefix: str
    digits: int
    check: Literal["none", "ean", "luhn"] = "ean"


@dataclass(frozen=True, slots=True)
class CodeRules:
    """A deployment's code conventions, read from the `[codes]` table of the terminal config."""

    gs1: dict[str, GS1Layout] = field(default_factory=dict)
    cards: tuple[CardBarcode, ...] = ()
    # A Code128 card label like "LC-000123": its regular-expression-free form is a literal prefix.
    card_text_prefixes: tuple[str, ...] = ()
    track_luhn: bool = False


def card_from_barcode(code: str, rules: CodeRules) -> tuple[str | None, str | None]:
    """(card number, None), (None, reason) for a card-looking code that fails, or (None, None)."""
    for card in rules.cards:
        if not (code.isascii() and code.isdigit() and code.startswith(card.prefix)):
            continue
        if len(code) != card.digits:
            return None, f"card barcode with prefix {card.prefix} must have {card.digits} digits"
        if card.check == "ean" and not gtin_valid(code):
            return None, "card barcode check digit is wrong"
        if card.check == "luhn" and not luhn_valid(code):
            return None, "card barcode fails the Luhn check"
        return code, None
    for prefix in rules.card_text_prefixes:
        if code.startswith(prefix) and len(code) > len(prefix):
            return code, None
    return None, None
