"""What an outbox event tells the central server about the lots it moved (its `lots` field).

Every lot change of a write operation — a lot added or paid into the debt, points taken,
restored or expired, debt booked — is recorded on the transaction (`Tx.lot_moved`) with the
dates of the lot it touched, and the next event carries them: {card: [{"points",
"available_from", "expires_at"}]}, in the order they happened, equal dates and sign merged.
Each card's entries add up to its `deltas` entry (checked when the event is written), so the
server can mirror the lots (docs/protocol.md §3). A balance correction from the server moves
lots too but is the server's own movement: it drops its records (`Tx.drop_lot_moves`).

Limit: `LOT_ENTRIES_MAX` entries per card. An operation that touches more distinct lots merges
the rest into one debit without dates (the server takes soonest-expiring first) and one credit
with the earliest expiry and latest start among them (never longer-lived than any of them).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from protocol.wire import LOT_ENTRIES_MAX
from terminal.ledger import moments
from terminal.ledger.errors import LedgerInvariantError

NEVER_MS = 2**64  # sorts after any expiry when comparing


class Move(NamedTuple):
    points: int  # > 0 credit, < 0 debit
    available_from: str | None
    expires_at: str | None


def entries(number: str, moves: list[Move], delta: int) -> list[dict[str, Any]]:
    """A card's moves as wire entries; their sum must be the event's delta for the card."""
    groups: dict[tuple[bool, str | None, str | None], int] = {}
    for move in moves:
        key = (move.points > 0, move.available_from, move.expires_at)
        groups[key] = groups.get(key, 0) + move.points
    merged = [Move(points, start, end) for (_, start, end), points in groups.items()]
    if len(merged) > LOT_ENTRIES_MAX:
        merged = merged[: LOT_ENTRIES_MAX - 2] + _overflow(merged[LOT_ENTRIES_MAX - 2 :])
    total = sum(m.points for m in merged)
    if total != delta:
        raise LedgerInvariantError(f"card {number}: lots moved by {total}, the event's delta is {delta}")
    return [{"points": m.points, "available_from": m.available_from, "expires_at": m.expires_at} for m in merged]


def _ms(value: str | None, default: int) -> int:
    return default if value is None else moments.moment(value, "lot date").ms


def _overflow(rest: list[Move]) -> list[Move]:
    """The moves past the limit as at most one credit and one debit (see the module's doc)."""
    out = []
    credits = [m for m in rest if m.points > 0]
    if credits:
        end = min(credits, key=lambda m: _ms(m.expires_at, NEVER_MS)).expires_at
        start = max(credits, key=lambda m: _ms(m.available_from, 0)).available_from
        out.append(Move(sum(m.points for m in credits), start, end))
    debit = sum(m.points for m in rest if m.points < 0)
    if debit:
        out.append(Move(debit, None, None))
    return out
