"""Checks of untrusted values handed to the ledger: whole numbers in range, bounded text, flags.

Each check names what it checks (`sale s-1 field 'to_pay'`) so the refusal tells the caller
exactly what to fix. Limits here match the pricing core's (core/inputs.py).
"""

from __future__ import annotations

from typing import Any

from terminal.ledger.errors import LedgerInputError

AMOUNT_MAX = 10**15
POINTS_MAX = 10**15
TEXT_CHARS_MAX = 256
LIST_ITEMS_MAX = 1_000


def whole(value: Any, what: str, low: int = 0, high: int = AMOUNT_MAX) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise LedgerInputError(f"{what}: must be a whole number in {low}..{high}, got {value!r}")
    return value


def text(value: Any, what: str, chars_max: int = TEXT_CHARS_MAX, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > chars_max or (not empty and not value):
        raise LedgerInputError(
            f"{what}: must be a {'' if empty else 'non-empty '}string of at most {chars_max} "
            f"characters, got {str(value)[:80]!r}"
        )
    return value


def flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise LedgerInputError(f"{what}: must be true or false, got {value!r}")
    return value


def mapping(value: Any, what: str, allowed: frozenset[str] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LedgerInputError(f"{what}: must be an object")
    if allowed is not None and not value.keys() <= allowed:
        unknown = sorted(str(k) for k in value.keys() - allowed)
        raise LedgerInputError(f"{what}: unknown field(s) {', '.join(unknown)}")
    return value


def items(value: Any, what: str, items_max: int = LIST_ITEMS_MAX) -> list[Any]:
    if not isinstance(value, list) or len(value) > items_max:
        raise LedgerInputError(f"{what}: must be a list of at most {items_max} items")
    return value
