"""Batch ingest: a verified batch of a terminal's events stored exactly once, in one store
transaction (`Store.ingest` opens it; a backend's `IngestTx` supplies the primitive reads and
writes). Dedup is by the database's unique keys — (terminal, epoch, seq) and the event id — so
several collector processes may share one PostgreSQL: the stream row of a terminal is locked for
the transaction, card rows are locked in sorted order, last, so they are held briefly. In the
same transaction: balances and lots folded (central/balances.py, central/lots.py), shortfalls
booked, sales and returns indexed by receipt, kiosk registrations awarded (central/awards.py),
coupon codes booked (central/coupons.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from central import awards, balances, coupons, lots
from central.balances import Shortfall
from protocol.wire import Batch, ProtocolError, pack

if TYPE_CHECKING:
    from central.program import ProgramCache
    from central.store import IngestTx

_BY_RECEIPT = frozenset({"sale", "return"})


class GapError(ProtocolError):
    status = 409
    code = "gap"


class ChainError(ProtocolError):
    status = 409
    code = "chain"


class ConflictError(ProtocolError):
    """Same (terminal, epoch, seq) or event id already stored with other content."""

    status = 409
    code = "conflict"


@dataclass(frozen=True)
class Ingested:
    acked_through: int
    stored: int
    duplicates: int
    shortfalls: int
    prev_mac: bytes


def ingest(tx: IngestTx, batch: Batch, mac: bytes, programs: ProgramCache | None = None) -> Ingested:
    """Store a verified batch exactly once. Raises GapError/ChainError/ConflictError (nothing
    stored: the caller rolls back). `programs`: the published program, read only for a batch
    with returns (§11 level_downgrade) or kiosk enrolments (the registration award, §16)."""
    last = tx.lock_stream(batch.terminal, batch.epoch)
    if batch.first_seq > last + 1:
        raise GapError(
            f"terminal {batch.terminal} epoch {batch.epoch}: expected seq {last + 1}, batch starts at {batch.first_seq}"
        )
    if batch.first_seq == last + 1:
        # A pure append: it must continue the chain of batches the server stored.
        wanted = tx.boundary(batch.terminal, batch.epoch, last) or b""
        if batch.prev_mac != wanted:
            raise ChainError(
                f"terminal {batch.terminal} epoch {batch.epoch}: prev_mac does not "
                f"match the batch the server stored through seq {last}"
            )
    overlap_last = min(last, batch.last_seq)
    duplicates = 0
    if batch.first_seq <= overlap_last:
        # A redelivery (lost ack, retried or replayed batch): the stored part must be identical.
        stored = tx.stored_ids(batch.terminal, batch.epoch, batch.first_seq, overlap_last)
        sent = [(e["seq"], e["id"]) for e in batch.events[: overlap_last - batch.first_seq + 1]]
        if stored != sent:
            raise ConflictError(
                f"terminal {batch.terminal} epoch {batch.epoch}: events "
                f"{batch.first_seq}..{overlap_last} differ from the stored ones"
            )
        duplicates = len(sent)
    new = batch.events[duplicates:]
    found: list[Shortfall] = []
    if new:
        tx.insert_events(batch.terminal, event_rows(batch.terminal, batch, duplicates))
        # A return at another terminal looks its receipt up with the receipt's returns (`Store.receipt`).
        indexed = [(e["receipt"], batch.terminal, e["epoch"], e["seq"]) for e in new if e["type"] in _BY_RECEIPT]
        if indexed:
            tx.insert_receipts(indexed)
        tx.finish_batch(batch.terminal, batch.epoch, batch.last_seq, mac)
        # Card rows are shared by all terminals: lock them last, so they are held briefly.
        moves = lots.batch_moves(new)  # parsed once: a malformed `lots` field stores nothing
        cards, book = tx.lock_with_lots(balances.touched_cards(new, moves), new, moves)
        program = programs.get(tx) if programs is not None and balances.needs_program(new) else None
        found = balances.fold(new, cards, book, batch.terminal, moves, program)
        awards.grant_registrations(tx, program, new, cards, book, batch.terminal)
        tx.insert_shortfalls(batch.terminal, batch.epoch, found)
        tx.save_with_lots(list(cards.values()), book)  # last: it takes the feed-cursor lock
        coupons.book(tx, batch.terminal, new)  # codes issued, spent, restored (nothing to do without)
        prev = mac
    else:
        prev = tx.boundary(batch.terminal, batch.epoch, batch.last_seq) or b""
    return Ingested(batch.last_seq, len(new), duplicates, len(found), prev)


def event_rows(terminal: str, batch: Batch, skip: int) -> list[tuple[Any, ...]]:
    """Rows of the events after the first `skip`: the exact bytes the terminal signed when the
    decoder kept them, else a re-pack."""
    raws = batch.raw_events
    rows = []
    for i in range(skip, len(batch.events)):
        event = batch.events[i]
        at_ms = event.get("at_ms")
        body = raws[i] if raws is not None else pack(event)
        at_ms = at_ms if type(at_ms) is int and 0 <= at_ms < 2**63 else 0
        rows.append((terminal, event["epoch"], event["seq"], event["id"], event["type"], at_ms, body))
    return rows
