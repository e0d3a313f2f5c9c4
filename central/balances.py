"""Authoritative card balances from every terminal's events — pure functions, no I/O.

Each terminal event carries `deltas: {card: points}`, the exact point movement it made on each
card (sale redemption and accrual, returns, expiry, adjustments, referral credits). The server's
balance of a card is its published balance plus Σ deltas of all ingested events from all
terminals, in ingest order. A debit that takes a card below zero (the same points redeemed on
two offline terminals) is accepted — the sale happened — and the uncovered part is booked as a
shortfall; the card's new (negative) balance goes out in the updates feed as a correction.
Cumulative spend follows sale totals and return decreases; a sale's `card_type_after` (an
upgrade, or a §11 level reached) becomes the card's type; a return may lower a level card's
type (§11 `level_downgrade`, by the published program's levels: `_lower_level`); a kiosk's
`card_registered` makes the card here with its type; referral credits for referrers the selling terminal did not
hold (`local: false`) are booked here, as lots with the referral entry's dates; a return's
`referral` list takes them back (points from those uplines' lots, soonest-expiring first, then
debt; cumulative from every upline). Every event also
moves the card's point lots (`central/lots.py`), so balance = Σ lots holds after each one;
an `expiry` event moves a card only by the expired points the server still held (its own sweep
may have annulled them first: nothing is expired twice).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from central import lots
from central.lots import CardLots, Origin
from protocol.wire import ProtocolError, card_number_ok

if TYPE_CHECKING:
    from core.rules import Program

CARD_TYPE_CHARS_MAX = 64
REFERRALS_MAX = lots.REFERRALS_MAX
REFERRAL_POINTS_MAX = 10**9
CARD_EVENTS = ("sale", "return", "card_registered")  # events whose `card` the fold reads


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


def _referrals(event: dict[str, Any]) -> list[dict[str, Any]]:
    """A sale's referral credits that are well formed (card, points, cumulative, local)."""
    raw = event.get("referral")
    if not raw or not isinstance(raw, list) or event.get("type") not in ("sale", "return"):
        return []
    return [r for r in raw[:REFERRALS_MAX] if isinstance(r, dict) and card_number_ok(r.get("card"))]


def touched_cards(events: list[dict[str, Any]], moves: list[dict[str, list[lots.Entry]]] | None = None) -> list[str]:
    """Every card an event moves or names, sorted (a fixed lock order avoids deadlocks).
    `moves`: the events' parsed `lots` fields (`lots.batch_moves`), when at hand."""
    if moves is None:
        moves = lots.batch_moves(events)
    numbers: set[str] = set()
    for event, moved in zip(events, moves, strict=True):
        numbers.update(event.get("deltas", {}))
        card = event.get("card")
        if card and card_number_ok(card) and event.get("type") in CARD_EVENTS:
            numbers.add(card)
        if event.get("referral"):
            numbers.update(r["card"] for r in _referrals(event))
        numbers.update(moved)
    return sorted(numbers)


def needs_program(events: list[dict[str, Any]]) -> bool:
    """Whether a fold of `events` needs the published program: a return of a card (it may
    lower the card's level) or a kiosk enrolment (the registration award)."""
    return any(e.get("type") == "card_registered" or (e.get("type") == "return" and e.get("card")) for e in events)


def _whole(value: Any) -> int:
    return value if type(value) is int else 0


def fold(
    events: list[dict[str, Any]],
    cards: dict[str, CardState],
    book: dict[str, CardLots],
    terminal: str = "",
    moves: list[dict[str, list[lots.Entry]]] | None = None,
    program: Program | None = None,
) -> list[Shortfall]:
    """Apply events of `terminal` in order to `cards` and their lots in `book` (both hold every
    touched card); returns shortfalls. A malformed `lots` field raises ProtocolError. `moves`:
    the events' parsed `lots` fields (`lots.batch_moves`), when at hand. `program`: the
    published program, whose levels decide a return's level change (`_lower_level`)."""
    if moves is None:
        moves = lots.batch_moves(events)
    shortfalls = []
    for event, moved in zip(events, moves, strict=True):
        origin = Origin(event["type"], terminal, event["epoch"], event["seq"])
        if event["type"] == "return":
            shortfalls += _take_back_referrals(event, cards, book)
            refs: list[dict[str, Any]] = []
        else:
            refs = _referrals(event)
        for ref in refs:
            # Referrers kept in the selling terminal's ledger were credited there (their points
            # are in `deltas`); the others are credited here. Cumulative credit counts for all.
            referrer = cards[ref["card"]]
            referrer.cumulative += _whole(ref.get("cumulative"))
            points = min(max(0, _whole(ref.get("points"))), REFERRAL_POINTS_MAX)
            if not ref.get("local") and points:
                referrer.balance += points
                try:
                    key = lots.dates(ref.get("available_from"), ref.get("expires_at"))
                except ProtocolError as exc:
                    raise ProtocolError(f"event {event['seq']} referral of card {ref['card']}: {exc}") from None
                lots.credit(book[ref["card"]], points, key, origin)
        lost = lots.apply_event(book, event, origin, moved)
        # An expiry moves a card only by what was still expired here (`lots.expire_taken`).
        for number, points in (event.get("deltas", {}) if lost is None else lost).items():
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
            _set_type(card, event.get("card_type"), only_if_empty=True)
            _set_type(card, event.get("card_type_after"), only_if_empty=False)
        elif event["type"] == "return":
            card.cumulative = max(0, card.cumulative - _whole(event.get("cumulative_decrease")))
            _lower_level(card, program, event.get("card_type_after"))
        elif event["type"] == "card_registered":  # a kiosk enrolment: the card is new here
            _set_type(card, event.get("card_type"), only_if_empty=True)
    return shortfalls


def _lower_level(card: CardState, program: Program | None, terminal_type: Any) -> None:
    """§11 returns: a level card whose cumulative fell below its level's threshold takes the
    level of its cumulative here — central's cumulative, which has every terminal's sales — when
    the program says so (`level_downgrade`, `Program.type_after_return`). With no published
    program central cannot know the levels: it takes the type the returning terminal set."""
    if program is None:
        _set_type(card, terminal_type, only_if_empty=False)
        return
    lowered = program.type_after_return(card.type, card.cumulative)
    if lowered is not None:
        card.type = lowered


def _take_back_referrals(
    event: dict[str, Any], cards: dict[str, CardState], book: dict[str, CardLots]
) -> list[Shortfall]:
    """A return's `referral` list: the uplines' credits taken back in proportion to the money
    returned (the terminal computed the shares; README "Where the spec is silent", §9)."""
    for ref in _referrals(event):
        referrer = cards[ref["card"]]
        referrer.cumulative = max(0, referrer.cumulative - max(0, _whole(ref.get("cumulative"))))
    at_ms = event.get("at_ms") if type(event.get("at_ms")) is int else 0
    out = []
    for number, points in lots.referral_takebacks(event):
        card = cards[number]
        card.balance -= points
        lots.debit(book[number], points, at_ms)
        if card.balance < 0:
            short = min(points, -card.balance)
            card.shortfall += short
            out.append(Shortfall(number, event["seq"], short))
    return out


def _set_type(card: CardState, kind: Any, only_if_empty: bool) -> None:
    """The card type a sale saw or upgraded to (a message rule's `upgrade_to`)."""
    if isinstance(kind, str) and 0 < len(kind) <= CARD_TYPE_CHARS_MAX and not (only_if_empty and card.type):
        card.type = kind


def card_entry(card: CardState, version: int, stored_lots: dict[lots.Key, int] | None = None) -> dict[str, Any]:
    """The updates-feed entry of a card (the ledger's `cards` update entry), with its lots
    (`lots.feed_lots`; Σ lots = balance) when `stored_lots` is given."""
    entry = {
        "number": card.number,
        "type": card.type,
        "holder": card.holder,
        "referrers": list(card.referrers),
        "cumulative": max(0, card.cumulative),
        "blocked": card.blocked,
        "version": version,
        "balance": card.balance,
    }
    if stored_lots is not None:
        entry["lots"] = lots.feed_lots(stored_lots)
    return entry
