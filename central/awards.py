"""Awards (spec §16): points not for a purchase, granted by the central server only.

    grant(store, card, award_id, key, actor, now) -> Grant

opens a dated lot of the award's points on the card — available from `now` + activation_days,
expiring expiry_days after that (0 = never; the dates a sale's accrual lot gets,
`core.inputs.lot_dates`) — and records the grant (key, card, award, points, dates, actor, time)
in the `awards` table, in one transaction with the card's new balance. The card's new state and
its lots go to every terminal through the updates feed, like any change of a card.

- Idempotent by `key`: the same key again returns the first grant (`replayed` true) and opens
  no second lot; the same key for another card or award is refused. The key is the table's
  primary key, so retries through several collectors meet in the database.
- `per_card_max` (0 = no limit) is counted under the card row's lock (the lock every ingest
  and adjustment of the card takes), so it holds across retries and concurrent collectors.
- Refused, with one line a technician can act on (`AwardError`, nothing written): no published
  rules, an award the program does not have, a card central does not know, a blocked card, the
  card's limit reached, a reused key, a balance past the limit, malformed input.

The kiosk's `card_registered` event grants the `registration` award (when the program has one)
inside the ingest transaction that stores the event (`grant_in_tx`, key
`card_registered:<card>`): once per card, whatever batches are re-sent. There a refusal skips
the award (logged); the event is stored all the same.

Limits: keys ≤ `KEY_CHARS_MAX`, actors ≤ `ACTOR_CHARS_MAX` printable characters; listings ≤
`GRANTS_LIST_MAX` rows.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from central import checks, lots
from central.balances import CardState
from central.lots import CardLots, Origin
from core.errors import CartError
from core.inputs import lot_dates
from protocol.wire import card_number_ok

if TYPE_CHECKING:
    from central.store import IngestTx, Store
    from core.rules import Award, Program

log = logging.getLogger("posterm.central")

KEY_CHARS_MAX = 128
ACTOR_CHARS_MAX = 64
AWARD_ID_CHARS_MAX = 64
GRANTS_LIST_MAX = 100_000
REGISTRATION_AWARD = "registration"
REGISTRATION_KEY = "card_registered:"  # + the card number: one registration award per card
GRANT_COLUMNS = "key, number, award, points, from_ms, expires_ms, actor, at_ms"
SCHEMA_SQLITE = (
    "CREATE TABLE IF NOT EXISTS awards (key TEXT PRIMARY KEY, number TEXT NOT NULL, award TEXT NOT NULL, "
    "points INTEGER NOT NULL, from_ms INTEGER NOT NULL, expires_ms INTEGER NOT NULL, actor TEXT NOT NULL, "
    "at_ms INTEGER NOT NULL);\nCREATE INDEX IF NOT EXISTS awards_card ON awards (number, award);\n"
)
SCHEMA_PG = SCHEMA_SQLITE.replace("INTEGER", "BIGINT")


class AwardError(Exception):
    """A grant central refuses; nothing was written. `status`: the HTTP status an admin API
    answers with (400 malformed, 404 unknown card or award, 409 refused by the card's state)."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    """One recorded grant. `replayed`: this call found the key's earlier grant (no new lot)."""

    key: str
    card: str
    award: str
    points: int
    available_from: str
    expires_at: str | None
    actor: str
    at: str
    replayed: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(value: Any, what: str, chars_max: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= chars_max or not value.isprintable():
        raise AwardError(f"award: {what} must be 1..{chars_max} printable characters, got {str(value)[:80]!r}", 400)
    return value


def find_award(program: Program | None, award_id: str) -> Award:
    if program is None:
        raise AwardError("award: central has no published rules; publish the program first "
                         "(posterm-central publish rules FILE)", 404)
    for award in program.awards:
        if award.id == award_id:
            return award
    known = ", ".join(a.id for a in program.awards) or "none"
    raise AwardError(f"award {award_id!r}: not in the published program {program.version!r} (its awards: {known})",
                     404)


def grant(store: Store, card: str, award_id: str, key: str, actor: str, now: dt.datetime) -> Grant:
    """Grant award `award_id` of the published program to `card` once per idempotency `key`,
    by `actor` (who asked: a login, `cli`, …) at `now` (timezone-aware). Refuses with
    AwardError; a database failure is the store's StoreError."""
    if not card_number_ok(card):
        raise AwardError(f"award: card number {str(card)[:80]!r} is not 1..64 printable characters", 400)
    _text(award_id, "the award id", AWARD_ID_CHARS_MAX)
    _text(key, "the idempotency key", KEY_CHARS_MAX)
    _text(actor, "the actor", ACTOR_CHARS_MAX)
    if not isinstance(now, dt.datetime) or now.utcoffset() is None:
        raise AwardError("award: now must be a timezone-aware time", 400)
    at_ms = (now - lots._EPOCH) // lots._MS
    with store.transaction() as tx:
        found = recorded(tx, key)
        if found is not None:  # a retry: the first answer, before any check of today's state
            return _replay(found, card, award_id)
        if not tx._rows("SELECT number FROM cards WHERE number = ?", (card,)):
            raise AwardError(f"award {award_id}: card {card} is unknown to the central server", 404)
        award = find_award(store.published_program(tx), award_id)
        cards, book = tx.lock_with_lots([card])
        done = grant_in_tx(tx, award, cards[card], book[card], key, actor, now, at_ms)
        tx.save_with_lots([cards[card]], book)
    log.info("event=award_granted card=%s award=%s points=%s actor=%s replayed=%s",
             card, award_id, done.points, actor, done.replayed)
    return done


def grant_in_tx(
    tx: IngestTx, award: Award, card: CardState, card_lots: CardLots, key: str, actor: str,
    now: dt.datetime, at_ms: int,
) -> Grant:
    """The grant inside a caller's transaction, the card row locked (`lock_with_lots`); the
    caller saves the card and its lots. Refusals raise AwardError before anything is written."""
    if card.blocked:
        raise AwardError(f"award {award.id}: card {card.number} is blocked")
    if award.per_card_max:
        (count,) = tx._rows("SELECT COUNT(*) FROM awards WHERE number = ? AND award = ?", (card.number, award.id))[0]
        if int(count) >= award.per_card_max:
            raise AwardError(f"award {award.id}: card {card.number} has it {int(count)} time(s) already, "
                             f"the program allows {award.per_card_max} (per_card_max)")
    try:
        start, end = lot_dates(now, award.activation_days, award.expiry_days)
    except CartError as exc:
        raise AwardError(f"award {award.id}: {exc}", 400) from None
    try:
        checks.balance(card.number, card.balance + award.points)
    except checks.CheckError as exc:
        raise AwardError(f"award {award.id}: {exc}") from None
    key_ms = lots.dates(start, end)
    row = (key, card.number, award.id, award.points, key_ms[1], key_ms[0], actor, at_ms)
    # The key's row first: a concurrent grant under the same key waits here for ours (PostgreSQL's
    # unique index), then finds it and replays or refuses it.
    if not tx._rows(f"INSERT INTO awards ({GRANT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (key) DO NOTHING RETURNING key", row):
        found = recorded(tx, key)
        if found is None:  # the conflicting grant rolled back between the two statements: try again
            raise AwardError(f"award {award.id}: key {key!r} is being granted by another request; retry")
        return _replay(found, card.number, award.id)
    card.balance += award.points
    lots.credit(card_lots, award.points, key_ms, Origin("award"))
    return _grant(row)


def recorded(tx: Any, key: str) -> Grant | None:
    rows = tx._rows(f"SELECT {GRANT_COLUMNS} FROM awards WHERE key = ?", (key,))
    return _grant(rows[0]) if rows else None


def _replay(found: Grant, card: str, award_id: str) -> Grant:
    if (found.card, found.award) != (card, award_id):
        raise AwardError(f"award: key {found.key!r} was used for award {found.award} on card {found.card}; "
                         "give a new key for another grant")
    return Grant(**{**found.as_dict(), "replayed": True})


def _grant(row: Any) -> Grant:
    key, number, award, points, from_ms, expires_ms, actor, at_ms = row
    return Grant(
        key=str(key), card=str(number), award=str(award), points=int(points),
        available_from=lots.ms_iso(int(from_ms)),
        expires_at=None if int(expires_ms) == lots.NEVER_MS else lots.ms_iso(int(expires_ms)),
        actor=str(actor), at=lots.ms_iso(int(at_ms)),
    )


def registrations(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `card_registered` events of a batch's newly stored events (the fold's duplicates
    are never here: a re-sent batch grants nothing twice)."""
    return [e for e in events if e.get("type") == "card_registered" and card_number_ok(e.get("card"))]


def grant_registrations(
    tx: IngestTx, program: Program | None, events: list[dict[str, Any]], cards: dict[str, CardState],
    book: dict[str, CardLots], terminal: str,
) -> int:
    """The `registration` award for each card a kiosk enrolled (`card_registered`), at the
    enrolment's time; returns how many were granted. A refusal (blocked card, limit reached)
    skips the award, logged: the event is stored regardless."""
    award = next((a for a in program.awards if a.id == REGISTRATION_AWARD), None) if program else None
    if award is None:
        return 0
    granted = 0
    for event in registrations(events):
        number, at_ms = event["card"], event["at_ms"]
        now = lots._EPOCH + dt.timedelta(milliseconds=at_ms)
        try:
            done = grant_in_tx(tx, award, cards[number], book[number], REGISTRATION_KEY + number,
                               f"terminal {terminal}", now, at_ms)
        except AwardError as exc:
            log.warning("event=award_skipped card=%s award=%s terminal=%s reason=%r",
                        number, award.id, terminal, str(exc))
            continue
        granted += not done.replayed
    return granted


def grants(store: Store, card: str | None = None, limit: int = GRANTS_LIST_MAX) -> list[Grant]:
    """The recorded grants (of one card), oldest first."""
    where, params = ("WHERE number = ?", (card,)) if card else ("", ())
    rows = store._query(f"SELECT {GRANT_COLUMNS} FROM awards {where} ORDER BY at_ms, key LIMIT ?",
                        (*params, min(limit, GRANTS_LIST_MAX)))
    return [_grant(r) for r in rows]
