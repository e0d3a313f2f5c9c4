"""Mirroring a card's lots from the central server (a feed card entry, a swipe's lookup).

The server is the authority for every card's lots. Its entry holds the card's lots as of its
events from this terminal through `acked`; the terminal's lots become exactly those, plus —
replayed on top in outbox order — the lot movements of its own events after `acked`, which the
server has not stored yet. The replay moves lots the way the server will when it ingests them
(`central/lots.py`): a credit pays the debt first and joins the lot of its dates; a debit takes
the lot it names first, then lots usable at the event's time soonest-expiring first, then lots
not yet available, then expired ones, and the rest becomes debt; an `expiry` takes only the
expired lot it names, as far as it is still there (the server's own sweep may have annulled it:
nothing is expired twice). So once the server has those events, its next entry agrees.

Mirrored lots carry the source `central`: the terminal's own expiry sweep leaves them to the
server (`expiry.py`); replayed local credits keep their event type as source.

Limits: `ENTRY_LOTS_MAX` lots an entry, `REPLAY_EVENTS_MAX` outbox events replayed a page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from terminal.ledger import fields, keys, lots, moments
from terminal.ledger.errors import LedgerInputError
from terminal.ledger.tx import LOTS_PER_CARD_MAX, Tx

ENTRY_LOTS_MAX = LOTS_PER_CARD_MAX
REPLAY_EVENTS_MAX = 1_000_000
LOT_FIELDS = frozenset({"points", "available_from", "expires_at"})
SOURCE = "central"
NEVER = keys.NEVER_MS
DEBT = (0, 0, 0)  # (expires_ms, from_ms, origin): the debt lot sorts first

# A lot of the mirror: (expires_ms, from_ms, origin) → points, with origin 0 for the server's
# points and 1 for points of this terminal's events not yet stored there.
Key = tuple[int, int, int]


@dataclass
class Pending:
    """One unstored event's movements of one card: (points, available_from, expires_at)."""

    kind: str
    at_ms: int
    moves: list[tuple[int, str | None, str | None]] = field(default_factory=list)


def checked_lots(raw: Any, where: str, balance: int) -> dict[Key, tuple[int, str | None, str | None]]:
    """The entry's lots, every field checked; their sum must be the balance. Only one lot may
    be negative, the dateless debt lot."""
    out: dict[Key, tuple[int, str | None, str | None]] = {}
    for i, item in enumerate(fields.items(raw, f"{where} field 'lots'", ENTRY_LOTS_MAX)):
        lot = fields.mapping(item, f"{where} lot {i}", LOT_FIELDS)
        points = fields.whole(lot.get("points"), f"{where} lot {i} points", -fields.POINTS_MAX, fields.POINTS_MAX)
        start = moments.optional(lot.get("available_from"), f"{where} lot {i} available_from")
        end = moments.optional(lot.get("expires_at"), f"{where} lot {i} expires_at")
        if points < 0 and (start or end):
            raise LedgerInputError(f"{where} lot {i}: only the dateless debt lot may be negative")
        if points == 0:
            raise LedgerInputError(f"{where} lot {i}: holds no points")
        key = DEBT if points < 0 else (NEVER if end is None else end.ms, 0 if start is None else start.ms, 0)
        if key in out:
            raise LedgerInputError(f"{where} lot {i}: two lots with the same dates (or two debt lots)")
        out[key] = (points, None if start is None else start.iso, None if end is None else end.iso)
    total = sum(points for points, _, _ in out.values())
    if total != balance:
        raise LedgerInputError(f"{where}: its lots add up to {total}, its balance says {balance}")
    return out


def pending_moves(tx: Tx, numbers: set[str], after_seq: int) -> dict[str, list[Pending]]:
    """The lot movements of the outbox events after `after_seq` on `numbers`, in order."""
    from terminal.ledger.outbox import events_from  # outbox imports tx, like this module

    out: dict[str, list[Pending]] = {}
    last = tx.meta["next_seq"] - 1
    if after_seq >= last or not numbers:
        return out
    if last - after_seq > REPLAY_EVENTS_MAX:
        raise LedgerInputError(f"{last - after_seq} events the server has not stored: more than {REPLAY_EVENTS_MAX}")
    for event in events_from(tx.txn, tx.dbs, after_seq + 1, last - after_seq):
        named = event.get("lots") or {}
        for number in numbers.intersection(named.keys() | event.get("deltas", {}).keys()):
            entries = named.get(number) or [{"points": event["deltas"][number]}]
            moves = [(e["points"], e.get("available_from"), e.get("expires_at")) for e in entries if e["points"]]
            out.setdefault(number, []).append(Pending(event["type"], int(event["at_ms"]), moves))
    return out


def _ms(value: str | None, default: int) -> int:
    return default if value is None else moments.moment(value, "lot date").ms


class Book:
    """A card's lots being replayed: points by key, dates (ISO) and source by key."""

    def __init__(self, server: dict[Key, tuple[int, str | None, str | None]]) -> None:
        self.points = {key: value[0] for key, value in server.items()}
        self.dates = {key: (value[1], value[2]) for key, value in server.items()}
        self.source = {key: SOURCE for key in server}

    def credit(self, points: int, start: str | None, end: str | None, source: str) -> None:
        debt = self.points.get(DEBT, 0)
        paid = min(points, -debt)
        if paid:
            self._add(DEBT, paid)
            points -= paid
        if points:
            key = (_ms(end, NEVER), _ms(start, 0), 1)
            self.dates.setdefault(key, (start, end))
            self.source.setdefault(key, source)
            self._add(key, points)

    def debit(self, points: int, at_ms: int, named: tuple[int, int] | None) -> None:
        def rank(key: Key) -> tuple[bool, int, Key]:
            expires_ms, from_ms, _ = key
            usable = 3 if expires_ms <= at_ms else (1 if from_ms <= at_ms else 2)
            return (key[:2] != named, usable, key)

        left = points
        for key in sorted((k for k in self.points if k != DEBT), key=rank):
            part = min(left, self.points[key])
            self._add(key, -part)
            left -= part
            if not left:
                return
        self.dates.setdefault(DEBT, (None, None))
        self.source.setdefault(DEBT, "debt")
        self._add(DEBT, -left)

    def expire(self, points: int, at_ms: int, named: tuple[int, int] | None) -> None:
        """An `expiry`: only expired points still here (see the module's doc)."""
        if named is not None:
            found = sorted(k for k in self.points if k != DEBT and k[:2] == named)
        else:
            found = sorted(k for k in self.points if k != DEBT and k[0] <= at_ms)
        left = points
        for key in found:
            part = min(left, self.points[key])
            self._add(key, -part)
            left -= part

    def _add(self, key: Key, points: int) -> None:
        value = self.points.get(key, 0) + points
        if value:
            self.points[key] = value
        else:
            self.points.pop(key, None)

    def replay(self, events: list[Pending]) -> None:
        for event in events:
            for points, start, end in event.moves:
                dated = start is not None or end is not None
                named = (_ms(end, NEVER), _ms(start, 0)) if dated else None
                if points > 0:
                    self.credit(points, start, end, event.kind)
                elif event.kind == "expiry":
                    self.expire(-points, event.at_ms, named)
                else:
                    self.debit(-points, event.at_ms, named)


def mirror(tx: Tx, number: str, balance: int, server: dict[Key, tuple[int, str | None, str | None]],
           pending: list[Pending]) -> int:
    """Make the card's lots the server's plus `pending` (see the module's doc); the card's
    server_balance becomes `balance`, its local_delta the rest. Returns the change of the card's
    balance on this terminal. Not a local movement: no event reports it."""
    book = Book(server)
    book.replay(pending)
    card = tx.card(number)
    before = card["server_balance"] + card["local_delta"]
    for key, _ in list(lots.card_lots(tx.txn, tx.dbs, number)):
        tx.delete("lots", key)
    card_key = tx.card_key(number)
    for key in sorted(book.points):
        points = book.points[key]
        start, end = book.dates[key]
        debt = key == DEBT
        lot = {
            "points": points,
            "available_from": start,
            "from_ms": key[1],
            "expires_at": end,
            "source": book.source[key],
            "debt": debt,
        }
        lot_key = keys.lot(card_key, keys.DEBT_MS, 0) if debt else keys.lot(card_key, key[0], tx.next_lot_id())
        tx.put_lot(lot_key, lots.encode(lot, f"lot of card {number}"))
    total = sum(book.points.values())
    tx.mirrored(number, balance, total - balance)
    return total - before


def describe(value: Any) -> str:
    """A refused item's key for the report, however malformed the item."""
    if isinstance(value, dict):
        for name in ("number", "sku"):
            if isinstance(value.get(name), str):
                return value[name][:64]
    return "?"
