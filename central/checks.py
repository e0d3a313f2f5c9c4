"""What central refuses before it publishes: anything a terminal would refuse.

A terminal applies an update page whole or not at all, so one item it cannot apply would stop
its feed; central therefore checks each input the way a terminal's ledger checks it — rules
compiled by `core.compile_rules` as `terminal.sync.updates` does, catalog items by
`protocol.schemas.check_product` (the ledger's `check_product` limits) and their barcodes unique
across the catalog, adjustments within the ledger's limits (`ADJUST_POINTS_MAX`, a balance within
±`POINTS_MAX`). Every refusal is one `CheckError` line naming the row or field.
"""

from __future__ import annotations

from typing import Any

from core.errors import PricingError
from core.rules import compile_rules, parse_rules_text
from protocol import schemas

VERSION_CHARS_MAX = 64  # what `wire.decode_updates` accepts for a version label


class CheckError(Exception):
    """An input central will not publish; the message names what to fix."""


def rules(text: str, source: str) -> None:
    try:  # parse_rules_text bounds the nesting before tomllib recurses, as a terminal's reader does
        compile_rules(parse_rules_text(text, source), source)
    except PricingError as exc:
        raise CheckError(f"{source}: refused as a terminal would: {exc}") from None


def version(label: str, what: str) -> str:
    if not 0 < len(label) <= VERSION_CHARS_MAX or not label.isprintable():
        raise CheckError(f"{what} version {label[:80]!r}: must be 1..{VERSION_CHARS_MAX} printable characters")
    return label


def products(items: list[tuple[str, dict[str, Any]]], stored: dict[str, list[str]]) -> None:
    """`items`: (where, product) in file order; `stored`: the published catalog's barcodes by sku.
    Refuses a product a ledger would refuse, a sku listed twice, and a barcode that another sku
    holds (in the file or in the published catalog: a terminal refuses that page)."""
    owners = {code: sku for sku, codes in stored.items() for code in codes}
    for sku in {p["sku"] for _, p in items}:  # replaced by this file: their old barcodes go
        for code in stored.get(sku, []):
            owners.pop(code, None)
    seen: set[str] = set()
    for where, product in items:
        try:
            schemas.check_product(product)
        except schemas.Invalid as exc:
            raise CheckError(f"{where}: field {exc.path}: {exc.reason}") from None
        sku = product["sku"]
        if sku in seen:
            raise CheckError(f"{where}: sku {sku} is listed twice")
        seen.add(sku)
        for code in product.get("barcodes", []):
            owner = owners.setdefault(code, sku)
            if owner != sku:
                raise CheckError(f"{where}: barcode {code} already belongs to sku {owner}")


def adjustment(number: str, points: int) -> None:
    if not schemas.card_number_ok(number):
        raise CheckError(f"card adjust: card number {number[:80]!r} is not 1..64 printable characters")
    if points == 0 or not -schemas.ADJUST_POINTS_MAX <= points <= schemas.ADJUST_POINTS_MAX:
        raise CheckError(
            f"card adjust {number}: points must be a non-zero whole number within ±{schemas.ADJUST_POINTS_MAX:,}"
            f" (a terminal's limit), got {points}"
        )


def balance(number: str, value: int) -> None:
    """A card's balance every terminal can take from the feed."""
    if not -schemas.POINTS_MAX <= value <= schemas.POINTS_MAX:
        raise CheckError(f"card {number}: balance {value} would be beyond ±{schemas.POINTS_MAX:.0e}; nothing changed")
