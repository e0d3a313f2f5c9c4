"""Point lots of a card on the central server — pure functions, no I/O, no clock.

A lot is points with dates: usable from `from_ms` until `expires_ms` (ms since the Unix epoch).
Lots of one card with the same dates are interchangeable, so they are one lot: a card's lots
are keyed (expires_ms, from_ms), which also orders them soonest-expiring first, like the
terminal ledger's lot keys. Three kinds of key:
- the debt lot (0, 0): the only lot that may be negative, and it never is positive;
- the dateless lot (NEVER_MS, 0): never expiring, always available — published balances,
  central adjustments, and the points of older events that carry no `lots` field;
- dated lots, from the `lots` field of terminal events (docs/protocol.md §3).

A credit pays the debt lot first, the rest joins the lot with its dates. A debit takes from the
lot the event names (same dates) first, then from lots usable at the event's time
soonest-expiring first, then from lots not yet available, then from expired lots (their
terminal's expiry event has not arrived yet; an `expiry` event takes expired lots first). What
is left becomes debt. So a card with debt has no positive lot, and the debt lot is
min(0, balance): exactly the shortfalls `balances.fold` books.

Only cards that a batch debits, or that are in debt, need their lots read (`needs_lots`): the
others only gain lots, which the store adds to the stored rows without reading them (a card's
lots grow with its sales; reading them all for every accrual would make ingest slow down as
cards age).

Invariant: balance = Σ lots, every lot but the debt lot positive — checked on the lots read
(`CardLots.check`) and, before COMMIT, on every touched card (`CardLots.check_after`: whole for
the cards read, by induction for the others); `Store.verify` sums every card's rows in SQL.
Limits: `LOT_ENTRIES_MAX` entries per card in one event, `LOTS_PER_CARD_MAX` lots a card read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from protocol.schemas import TIME_MAX_ISO, TIME_MIN_ISO, TIME_MS_MAX, TIME_MS_MIN
from protocol.wire import DELTA_POINTS_MAX, LOT_ENTRIES_MAX, ProtocolError, card_number_ok

NEVER_MS = 2**63 - 1  # BIGINT's maximum: a never-expiring lot sorts last
DEBT_KEY = (0, 0)
DATELESS_KEY = (NEVER_MS, 0)
LOTS_PER_CARD_MAX = 100_000
ISO_CHARS_MAX = 64
ENTRY_FIELDS = frozenset({"points", "available_from", "expires_at"})
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_fromisoformat = dt.datetime.fromisoformat
_MS = dt.timedelta(milliseconds=1)

Key = tuple[int, int]  # (expires_ms, from_ms)


class LotInvariantError(Exception):
    """A card's lots do not add up to its balance, or a lot has the wrong sign: a server bug,
    never the terminal's. The ingest transaction rolls back (the terminal gets 503)."""


class Origin(NamedTuple):
    """What opened a lot: an event's type and (terminal, epoch, seq), or a central action
    (`publish`, `adjust`, `opening`) with an empty terminal."""

    source: str
    terminal: str = ""
    epoch: int = 0
    seq: int = 0


NO_ORIGIN = Origin("")  # a lot loaded for the fold: its stored origin is not read


class Entry(NamedTuple):
    """One movement of an event's `lots` field, its dates checked and turned into a lot key."""

    points: int
    key: Key


@dataclass(slots=True)
class Lot:
    """A lot's points and origin; its dates are its key (stored as ms: small rows, fast ingest)."""

    points: int
    origin: Origin = NO_ORIGIN


class CardLots:
    """One card's lots as read from the database, changed in memory, written back.

    Stored rows are appended, never updated in place: a credit to a card that was not read is a
    new row even when a row of the same dates exists (no lookup, no upsert — the price of a lot
    per sale stays one appended row). Reading sums the rows of each key; a card that was read and
    changed is rewritten whole, one row per key, which also merges such rows.

    Not `loaded`: the card's stored lots were not read (it is not in debt and the batch only
    credits it); `lots` then holds only the points to append, by key."""

    __slots__ = ("balance_before", "loaded", "lots", "number", "stored")

    def __init__(
        self,
        number: str,
        stored: Mapping[Key, int] | None = None,
        loaded: bool = True,
        balance_before: int = 0,
        origins: Mapping[Key, Origin] | None = None,
    ) -> None:
        self.number = number
        self.loaded = loaded
        self.balance_before = balance_before  # the card's balance when its row was locked
        self.stored: dict[Key, int] = dict(stored) if stored else {}
        known = origins or {}
        self.lots: dict[Key, Lot] = (
            {key: Lot(points, known.get(key, NO_ORIGIN)) for key, points in self.stored.items()} if stored else {}
        )

    def total(self) -> int:
        return sum(lot.points for lot in self.lots.values())

    def check(self, balance: int) -> None:
        """balance = Σ lots; every lot positive but the debt lot, which is negative."""
        if len(self.lots) > LOTS_PER_CARD_MAX:
            raise LotInvariantError(f"card {self.number}: more than {LOTS_PER_CARD_MAX} lots")
        for key, lot in self.lots.items():
            if (lot.points >= 0) if key == DEBT_KEY else (lot.points <= 0):
                raise LotInvariantError(f"card {self.number}: lot {key} holds {lot.points} points")
        total = self.total()
        if total != balance:
            raise LotInvariantError(f"card {self.number}: balance {balance} differs from the sum of its lots {total}")

    def check_after(self, balance: int) -> None:
        """The invariant after a fold, before the rows are written. Loaded lots are checked whole.
        A card not loaded held balance_before = Σ stored lots (the last writer checked it); it
        only gained lots here, so balance = Σ lots holds iff those gains are positive, dated (not
        debt) and add up to the balance's rise. `Store.verify` sums every card's rows in SQL."""
        if self.loaded:
            self.check(balance)
            return
        for key, lot in self.lots.items():
            if key == DEBT_KEY or lot.points <= 0:
                raise LotInvariantError(f"card {self.number}: lot {key} gains {lot.points} points")
        gained = self.total()
        if self.balance_before + gained != balance:
            raise LotInvariantError(
                f"card {self.number}: balance went {self.balance_before} → {balance} but its lots gained {gained}"
            )

    def changes(self) -> tuple[bool, list[tuple[Key, Lot]]]:
        """(rewrite, lots): rows to append for a card not read; for a card read and changed,
        rewrite=True and every lot (its stored rows are deleted first); else nothing."""
        if not self.loaded:
            return False, list(self.lots.items())
        if len(self.lots) == len(self.stored) and all(
            self.stored.get(key) == lot.points for key, lot in self.lots.items()
        ):
            return False, []
        return True, list(self.lots.items())


def credit(card: CardLots, points: int, key: Key, origin: Origin) -> None:
    """Add `points` (> 0): the debt lot is paid first, the rest joins the lot with these dates.
    (A card not loaded has no debt: `needs_lots` loads every card with a negative balance.)"""
    debt = card.lots.get(DEBT_KEY)
    if debt is not None:
        paid = min(points, -debt.points)
        debt.points += paid
        points -= paid
        if debt.points == 0:
            del card.lots[DEBT_KEY]
    if points <= 0:
        return
    lot = card.lots.get(key)
    if lot is None:
        card.lots[key] = Lot(points, origin)
    else:
        lot.points += points


def debit(card: CardLots, points: int, at_ms: int, first: Key | None = None, expired_first: bool = False) -> int:
    """Take `points` (> 0) from the positive lots in the module's order; the rest becomes debt.
    Returns the part that became debt."""
    if not card.loaded:
        raise LotInvariantError(f"card {card.number}: a debit of {points} points but its lots were not read")
    order = sorted((key != first, _rank(key, at_ms, expired_first), key) for key in card.lots if key != DEBT_KEY)
    left = points
    for _, _, key in order:
        lot = card.lots[key]
        part = min(left, lot.points)
        lot.points -= part
        left -= part
        if lot.points == 0:
            del card.lots[key]
        if left == 0:
            return 0
    debt = card.lots.get(DEBT_KEY)
    if debt is None:
        card.lots[DEBT_KEY] = Lot(-left, origin=Origin("debt"))
    else:
        debt.points -= left
    return left


def _rank(key: Key, at_ms: int, expired_first: bool) -> int:
    """Usable at `at_ms` (1), not yet available (2), expired (3 — its terminal's expiry event
    is on its way; 0 for an expiry event)."""
    expires_ms, from_ms = key
    if expires_ms <= at_ms:
        return 0 if expired_first else 3
    return 1 if from_ms <= at_ms else 2


def move(card: CardLots, points: int, at_ms: int, origin: Origin) -> None:
    """A dateless movement (published balance, central adjustment, an event without `lots`)."""
    if points > 0:
        credit(card, points, DATELESS_KEY, origin)
    elif points < 0:
        debit(card, -points, at_ms)


# ---------------------------------------------------------------- the `lots` field of events


def iso_ms(value: Any, what: str) -> int:
    """ms since the epoch of an ISO-8601 time with an offset, in the protocol's range (the ledger's rule)."""
    if type(value) is not str or len(value) > ISO_CHARS_MAX:
        raise ProtocolError(f"{what}: not an ISO-8601 time of at most {ISO_CHARS_MAX} chars")
    try:
        parsed = _fromisoformat(value)
        ms = (parsed - _EPOCH) // _MS
    except ValueError:
        raise ProtocolError(f"{what}: not an ISO-8601 time: {value!r:.70}") from None
    except TypeError:  # a naive time cannot be compared with the aware epoch
        raise ProtocolError(f"{what}: the time {value!r:.70} has no UTC offset") from None
    if not TIME_MS_MIN <= ms <= TIME_MS_MAX:
        raise ProtocolError(f"{what}: {value!r:.70} is out of range {TIME_MIN_ISO}..{TIME_MAX_ISO}")
    return ms


def dates(available_from: Any, expires_at: Any) -> Key:
    """The lot key of a pair of optional ISO times."""
    expires_ms = NEVER_MS if expires_at is None else iso_ms(expires_at, "expires_at")
    from_ms = 0 if available_from is None else iso_ms(available_from, "available_from")
    return expires_ms, from_ms


def event_lots(event: dict[str, Any]) -> dict[str, list[Entry]]:
    """The event's `lots` field, checked: {card: [entry]} with each card's entries adding up to
    its delta. Absent (older terminals) → {}. Malformed → ProtocolError (400, nothing stored)."""
    raw = event.get("lots")
    if raw is None:
        return {}
    if type(raw) is not dict:
        raise ProtocolError(f"event {event.get('seq')}: lots must be a map of card → entries")
    deltas = event.get("deltas") or {}
    out: dict[str, list[Entry]] = {}
    for number, items in raw.items():
        try:
            out[number] = _card_entries(number, items, deltas.get(number, 0))
        except ProtocolError as exc:  # the message names the event only on a refusal (hot path)
            raise ProtocolError(f"event {event.get('seq')} lots of card {number!r:.70}: {exc}") from None
    return out


def _card_entries(number: Any, items: Any, delta: int) -> list[Entry]:
    if not card_number_ok(number):
        raise ProtocolError("card number is not 1..64 printable chars")
    if type(items) is not list or not 0 < len(items) <= LOT_ENTRIES_MAX:
        raise ProtocolError(f"must be a list of 1..{LOT_ENTRIES_MAX} entries")
    entries = []
    total = 0
    for i, item in enumerate(items):
        if type(item) is not dict or not item.keys() <= ENTRY_FIELDS:
            raise ProtocolError(f"entry {i}: must be a map of {', '.join(sorted(ENTRY_FIELDS))}")
        points = item.get("points")
        if type(points) is not int or points == 0 or not -DELTA_POINTS_MAX <= points <= DELTA_POINTS_MAX:
            raise ProtocolError(f"entry {i}: points must be a non-zero integer within ±10^12")
        start, end = item.get("available_from"), item.get("expires_at")
        try:
            key = (NEVER_MS if end is None else iso_ms(end, "expires_at"),
                   0 if start is None else iso_ms(start, "available_from"))
        except ProtocolError as exc:
            raise ProtocolError(f"entry {i} {exc}") from None
        entries.append(Entry(points, key))
        total += points
    if total != delta:
        raise ProtocolError(f"entries add up to {total}, deltas say {delta}")
    return entries


def batch_moves(events: list[dict[str, Any]]) -> list[dict[str, list[Entry]]]:
    """Every event's `lots` field checked and parsed once (`event_lots`), for the lock, the read
    and the fold of one batch."""
    return [event_lots(event) for event in events]


def expire_taken(card: CardLots, points: int, at_ms: int, key: Key | None) -> int:
    """A terminal's `expiry` debit of `points` (> 0): it takes only expired points the server still
    holds — from the lot with the named dates (`key`), or, named none, from lots expired by
    `at_ms` soonest first — never other lots and never a debt. What the server's own sweep
    annulled already is not taken twice (docs/protocol.md, expiry ownership). Returns the points
    taken."""
    if not card.loaded:
        raise LotInvariantError(f"card {card.number}: an expiry of {points} points but its lots were not read")
    if key is not None:
        candidates = [key] if key in card.lots and key != DEBT_KEY else []
    else:
        candidates = sorted(k for k in card.lots if k != DEBT_KEY and k[0] <= at_ms)
    left = points
    for found in candidates:
        lot = card.lots[found]
        part = min(left, lot.points)
        lot.points -= part
        left -= part
        if lot.points == 0:
            del card.lots[found]
        if left == 0:
            break
    return points - left


def sweep(card: CardLots, now_ms: int) -> list[tuple[Key, int]]:
    """The server's expiry of a loaded card: every lot expired by `now_ms` (not the debt lot, not
    a never-expiring one) is removed; returns the removed (key, points)."""
    gone = [(key, lot.points) for key, lot in card.lots.items() if key != DEBT_KEY and key[0] <= now_ms]
    for key, _ in gone:
        del card.lots[key]
    return sorted(gone)


def apply_event(
    book: dict[str, CardLots], event: dict[str, Any], origin: Origin, moves: dict[str, list[Entry]]
) -> dict[str, int] | None:
    """Move the lots of every card the event's `deltas` or `lots` name (`moves`: its parsed
    `lots`, `event_lots`). Entries apply in order; a card with a delta but no entries (an older
    terminal) moves its dateless lot. An `expiry` event takes only what is still expired here
    (`expire_taken`): it returns the points each card actually lost, which replace its deltas;
    any other event returns None (its deltas hold)."""
    at_ms = event.get("at_ms")
    at_ms = at_ms if type(at_ms) is int else 0
    if event.get("type") == "expiry":
        return _apply_expiry(book, event, at_ms, moves)
    expired_first = False
    for number, points in (event.get("deltas") or {}).items():
        if number in moves:
            continue
        if points > 0:
            credit(book[number], points, DATELESS_KEY, origin)
        elif points < 0:
            debit(book[number], -points, at_ms, None, expired_first)
    for number, entries in moves.items():
        card = book[number]
        for entry in entries:
            if entry.points > 0:
                credit(card, entry.points, entry.key, origin)
            else:
                # A dated entry names the terminal's lot; a dateless one (debt, a correction's
                # lot on the terminal) names nothing: the server's own order decides.
                first = None if entry.key == DATELESS_KEY else entry.key
                debit(card, -entry.points, at_ms, first, expired_first)
    return None


def _apply_expiry(
    book: dict[str, CardLots], event: dict[str, Any], at_ms: int, moves: dict[str, list[Entry]]
) -> dict[str, int]:
    lost: dict[str, int] = {}
    for number, points in (event.get("deltas") or {}).items():
        if number not in moves and points < 0:
            lost[number] = -expire_taken(book[number], -points, at_ms, None)
    for number, entries in moves.items():
        card = book[number]
        for entry in entries:
            if entry.points < 0:
                key = None if entry.key == DATELESS_KEY else entry.key
                lost[number] = lost.get(number, 0) - expire_taken(card, -entry.points, at_ms, key)
    return lost


def needs_lots(
    events: list[dict[str, Any]], balances: Mapping[str, int], moves: list[dict[str, list[Entry]]] | None = None
) -> set[str]:
    """The cards whose stored lots a fold of `events` must read: in debt before it (`balances`:
    every touched card's balance), or debited by one of them (a negative delta or `lots` entry,
    even inside a card's net credit). `moves`: the events' parsed `lots` (`batch_moves`)."""
    if moves is None:
        moves = batch_moves(events)
    out = {number for number, balance in balances.items() if balance < 0}
    for event, moved in zip(events, moves, strict=True):
        for number, points in (event.get("deltas") or {}).items():
            if points < 0:
                out.add(number)
        for number, entries in moved.items():
            if any(entry.points < 0 for entry in entries):
                out.add(number)
    return out


def ms_iso(ms: int) -> str:
    """An ISO-8601 time in UTC of ms since the epoch (how the server shows a lot's dates)."""
    return (_EPOCH + dt.timedelta(milliseconds=ms)).isoformat()


def _feed_iso(ms: int) -> str:
    """`ms_iso`, or for a date past year 9999 (stored before the server refused such input) a
    text no terminal takes as a date: the terminal reports that card and applies the rest."""
    try:
        return ms_iso(ms)
    except OverflowError:
        return f"out of range: {ms} ms"


def feed_lots(stored: Mapping[Key, int]) -> list[dict[str, Any]]:
    """A card's lots as the updates feed carries them: soonest-expiring first, the debt lot (the
    only negative one) first of all, dates as ISO-8601 UTC or None."""
    out = []
    for key in sorted(stored):
        expires_ms, from_ms = key
        out.append(
            {
                "points": stored[key],
                "available_from": _feed_iso(from_ms) if from_ms else None,
                "expires_at": _feed_iso(expires_ms) if 0 < expires_ms < NEVER_MS else None,
            }
        )
    return out


def public(key: Key, lot: Lot) -> dict[str, Any]:
    """A lot as the CLI and the tests show it: dates in UTC, None for none."""
    expires_ms, from_ms = key
    return {
        "points": lot.points,
        "available_from": ms_iso(from_ms) if from_ms else None,
        "expires_at": ms_iso(expires_ms) if 0 < expires_ms < NEVER_MS else None,
        "debt": key == DEBT_KEY,
        "source": lot.origin.source,
        "terminal": lot.origin.terminal,
        "epoch": lot.origin.epoch,
        "seq": lot.origin.seq,
    }
