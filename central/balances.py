"""Authoritative card balances from every terminal's events — pure functions, no I/O.

Each terminal event carries `deltas: {card: points}`, the exact point movement it made on each
card (sale redemption and accrual, returns, expiry, adjustments, referral credits). The server's
balance of a card is its published balance plus Σ deltas of all ingested events from all
terminals, in ingest order. A debit that takes a card below zero (the same points redeemed on
two offline terminals) is accepted — the sale happened — and the uncovered part is booked as a
shortfall; the card's new (negative) balance goes out in the updates feed as a correction.
Cumulative spend follows sale totals and return decreases.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

CARD_TYPE_CHARS_MAX = 64


@dataclass
class CardState:
    number: str
    balance: int = 0
    cumulative: int = 0
    type: str = ""
    holder: str = ""
    referrers: list[str] = field(default_factory=list)
    blocked: bool = False
    shortfall: int = 0
    exists: bool = False  # a row is already stored (update, not insert)


@dataclass(frozen=True)
class Shortfall:
    number: str
    seq: int
    points: int


def touched_cards(events: list[dict[str, Any]]) -> list[str]:
    """Every card an event moves or names, sorted (a fixed lock order avoids deadlocks)."""
    numbers: set[str] = set()
    for event in events:
        numbers.update(event.get("deltas", {}))
        card = event.get("card")
        if isinstance(card, str) and card and event.get("type") in ("sale", "return"):
            numbers.add(card)
    return sorted(numbers)


def _whole(value: Any) -> int:
    return value if type(value) is int else 0


def fold(events: list[dict[str, Any]], cards: dict[str, CardState]) -> list[Shortfall]:
    """Apply events in order to `cards` (which holds every touched card); returns shortfalls."""
    shortfalls = []
    for event in events:
        for number, points in event.get("deltas", {}).items():
            card = cards[number]
            card.balance += points
            if points < 0 and card.balance < 0:
                short = min(-points, -card.balance)
                card.shortfall += short
                shortfalls.append(Shortfall(number, event["seq"], short))
        number = event.get("card")
        if not isinstance(number, str) or number not in cards:
            continue
        card = cards[number]
        if event["type"] == "sale":
            card.cumulative += _whole(event.get("total"))
            kind = event.get("card_type")
            if not card.type and isinstance(kind, str) and len(kind) <= CARD_TYPE_CHARS_MAX:
                card.type = kind
        elif event["type"] == "return":
            card.cumulative = max(0, card.cumulative - _whole(event.get("cumulative_decrease")))
    return shortfalls


def card_entry(card: CardState, version: int) -> dict[str, Any]:
    """The updates-feed entry of a card (the ledger's `cards` update entry)."""
    return {
        "number": card.number,
        "type": card.type,
        "holder": card.holder,
        "referrers": list(card.referrers),
        "cumulative": max(0, card.cumulative),
        "blocked": card.blocked,
        "version": version,
        "balance": card.balance,
    }
