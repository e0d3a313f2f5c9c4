"""The outbox: events keyed by a gap-free u64 sequence per terminal epoch, read by the sync
task with `pending`, confirmed with `mark_acked`. Acked events stay (reports read them) until a
later issue's retention prunes them; only committed events are ever visible here.

Acking moves each event's per-card point deltas from the card's local_delta to its
server_balance: the server now knows them. Limit: `BATCH_EVENTS_MAX` events per read or ack.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lmdb

from terminal.ledger import codec, keys
from terminal.ledger.errors import LedgerInputError, LedgerInvariantError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx

BATCH_EVENTS_MAX = 1_000
ACK_EVENTS_MAX = 100_000


def events_from(
    txn: lmdb.Transaction, dbs: dict[str, Any], first_seq: int, limit: int
) -> Iterator[dict[str, Any]]:
    cursor = txn.cursor(db=dbs["outbox"])
    if not cursor.set_range(keys.u64(first_seq)):
        return
    for count, (key, raw) in enumerate(cursor.iternext()):
        if count >= limit:
            return
        event: dict[str, Any] = codec.load(bytes(key), raw, f"event {keys.read_u64(key)}")
        yield event


def pending(store: Store, limit: int = BATCH_EVENTS_MAX) -> list[dict[str, Any]]:
    """The oldest unacked events, at most `limit` (≤ BATCH_EVENTS_MAX), in sequence order."""
    if not 0 < limit <= BATCH_EVENTS_MAX:
        raise LedgerInputError(f"outbox: limit must be 1..{BATCH_EVENTS_MAX}, got {limit}")
    with store.env.begin() as txn:
        meta = store.read_meta(txn)
        out = list(events_from(txn, store.dbs, meta["acked_seq"] + 1, limit))
    for expected, event in enumerate(out, meta["acked_seq"] + 1):
        if event["seq"] != expected:
            raise LedgerInvariantError(
                f"outbox: expected sequence {expected}, found {event['seq']}"
            )
    return out


def backlog(store: Store) -> int:
    with store.env.begin() as txn:
        meta = store.read_meta(txn)
    return int(meta["next_seq"] - 1 - meta["acked_seq"])


def mark_acked(store: Store, through_seq: int) -> dict[str, Any]:
    """The server committed events up to `through_seq`; acking again is harmless."""
    try:
        with store.env.begin(write=True) as txn:
            tx = Tx(store, txn)
            acked, last = tx.meta["acked_seq"], tx.meta["next_seq"] - 1
            if through_seq > last:
                raise LedgerInputError(
                    f"outbox: cannot ack {through_seq}, the last event is {last}"
                )
            if through_seq - acked > ACK_EVENTS_MAX:
                raise LedgerInputError(f"outbox: ack at most {ACK_EVENTS_MAX} events at once")
            if through_seq <= acked:
                return {"acked_seq": acked, "newly_acked": 0}
            for event in events_from(txn, store.dbs, acked + 1, through_seq - acked):
                for number, points in event.get("deltas", {}).items():
                    if tx.card_exists(number):
                        tx.confirm(number, points)
            tx.meta["acked_seq"] = through_seq
            tx.finish()
    except lmdb.MapFullError:
        raise store.map_full() from None
    return {"acked_seq": through_seq, "newly_acked": through_seq - acked}
