"""Retention: what a terminal may forget once the central server holds it.

Without it a ledger grows by every sale forever. `prune` drops
- outbox events the server acknowledged, of closed shifts, older than `events_keep_days` — the
  period reports and a restored central server (which the terminal re-sends to) need them until then;
- receipts older than `receipts_keep_days` (the return window) whose sale and returns the server
  acknowledged, with their return records and those returns' op records — a later return of such
  a receipt goes through the central server;
- op records of the other operations (cash in/out, adjustments, holds, expiry, imports, shift
  closes, attendant actions, enrolments, applied updates) once the ledger's newest event when
  they committed (`last_seq`: theirs, or the one before when they wrote none) is pruned: acked
  and outside `events_keep_days`. A retry of such an old operation id is no longer recognised —
  the window is far longer than any client's retry. Records of builds before `last_seq` stay.
Nothing unsent, nothing of the open shift and never the newest event is dropped.

One bounded write transaction per call (`ITEMS_PER_PRUNE_MAX` deletions), no outbox event (it is
housekeeping, not a business fact); the daemon calls it until `more` is false, at a quiet moment.
"""

from __future__ import annotations

from typing import Any

import lmdb

from terminal.ledger import codec, keys, moments
from terminal.ledger.errors import LedgerInputError
from terminal.ledger.store import Store

DAY_MS = 86_400_000
KEEP_DAYS_MAX = 3_660
ITEMS_PER_PRUNE_MAX = 5_000
PASSES_MAX = 10_000  # passes of one `posterm ledger prune` (5 · 10^7 items)
EVENTS_KEEP_DAYS_DEFAULT = 35
RECEIPTS_KEEP_DAYS_DEFAULT = 30


def _days(value: Any, name: str) -> int:
    if type(value) is not int or not 1 <= value <= KEEP_DAYS_MAX:
        raise LedgerInputError(f"retention: {name} must be a whole number 1..{KEEP_DAYS_MAX}, got {value!r}")
    return value


def _prune_events(txn: lmdb.Transaction, dbs: dict[str, Any], meta: dict[str, Any], cutoff_ms: int,
                  budget: int) -> tuple[int, bool]:
    """Delete acked events of closed shifts older than the cutoff, oldest first, up to `budget`."""
    # Events of the open shift start at shift_first_seq; the newest event stays so the outbox
    # always shows where the sequence stands.
    last_droppable = min(meta["acked_seq"], meta.get("shift_first_seq", 1) - 1, meta["next_seq"] - 2)
    cursor = txn.cursor(db=dbs["outbox"])
    dropped = 0
    if not cursor.first():
        return 0, False
    while dropped < budget:
        seq = keys.read_u64(bytes(cursor.key()))
        if seq > last_droppable:
            return dropped, False
        event = codec.load(cursor.key(), cursor.value(), f"event {seq}")
        if event["at_ms"] >= cutoff_ms:
            return dropped, False
        cursor.delete()  # moves to the next record
        dropped += 1
        if cursor.key() == b"":
            return dropped, False
    return dropped, True


def _acked(txn: lmdb.Transaction, dbs: dict[str, Any], op_id: str, acked_seq: int) -> bool:
    key = keys.text(op_id, "operation id")
    raw = txn.get(key, db=dbs["ops"])
    if raw is None:
        return False
    seq: int = codec.load(key, raw, f"operation {op_id}")["result"].get("seq", acked_seq + 1)
    return seq <= acked_seq


def _prune_receipts(txn: lmdb.Transaction, dbs: dict[str, Any], acked_seq: int, cutoff_ms: int,
                    budget: int) -> tuple[int, bool]:
    """Delete old receipts the server holds in full (sale and every return acked)."""
    doomed: list[tuple[bytes, list[str]]] = []
    scanned = 0
    more = False
    for key, raw in txn.cursor(db=dbs["receipts"]):
        scanned += 1
        if scanned > budget * 4 or len(doomed) >= budget:
            more = True
            break
        receipt = codec.load(key, raw, "receipt")
        if receipt["at_ms"] >= cutoff_ms:
            continue
        result = receipt.get("result")  # format-1 sales keep their result in an op record
        if (result["seq"] > acked_seq) if result else not _acked(txn, dbs, receipt["id"], acked_seq):
            continue
        if all(_acked(txn, dbs, rid, acked_seq) for rid in receipt["returns"]):
            doomed.append((bytes(key), receipt["returns"]))
    for key, returned in doomed:
        txn.delete(key, db=dbs["receipts"])
        for rid in returned:
            rkey = keys.text(rid, "return id")
            txn.delete(rkey, db=dbs["returns"])
            txn.delete(rkey, db=dbs["ops"])
    return len(doomed), more


# Op records that retention may drop by their events' age; sales and returns go with their receipt.
PRUNABLE_OP_KINDS = frozenset({"adjustment", "cash_in", "cash_out", "expiry", "hold", "hold_void", "import",
                               "shift_close", "attendant_action", "card_registered", "update"})


def _prune_ops(txn: lmdb.Transaction, dbs: dict[str, Any], budget: int) -> tuple[int, bool]:
    """Delete op records of `PRUNABLE_OP_KINDS` whose `last_seq` is below the outbox's first
    event (pruned: acked, of a closed shift, outside the window); scans ≤ 4 × `budget` records."""
    outbox = txn.cursor(db=dbs["outbox"])
    if not outbox.first():
        return 0, False
    first_seq = keys.read_u64(bytes(outbox.key()))
    doomed: list[bytes] = []
    more = False
    for scanned, (key, raw) in enumerate(txn.cursor(db=dbs["ops"])):
        if scanned >= budget * 4 or len(doomed) >= budget:
            more = len(doomed) >= budget  # a full scan of unprunable records is no reason to loop
            break
        op = codec.load(key, raw, "operation")
        if op.get("kind") in PRUNABLE_OP_KINDS and 0 < op.get("last_seq", 0) < first_seq:
            doomed.append(bytes(key))
    for key in doomed:
        txn.delete(key, db=dbs["ops"])
    return len(doomed), more


def prune(store: Store, now: Any, events_keep_days: int = EVENTS_KEEP_DAYS_DEFAULT,
          receipts_keep_days: int = RECEIPTS_KEEP_DAYS_DEFAULT,
          items_max: int = ITEMS_PER_PRUNE_MAX) -> dict[str, Any]:
    """One bounded pruning pass. Returns {events, receipts, more}; call again while `more`."""
    at = moments.moment(now, "now")
    events_days = _days(events_keep_days, "events_keep_days")
    receipts_days = _days(receipts_keep_days, "receipts_keep_days")
    if type(items_max) is not int or not 1 <= items_max <= ITEMS_PER_PRUNE_MAX:
        raise LedgerInputError(f"retention: items_max must be 1..{ITEMS_PER_PRUNE_MAX}")
    try:
        with store.env.begin(write=True) as txn:
            meta = store.read_meta(txn)
            events, more_events = _prune_events(txn, store.dbs, meta, at.ms - events_days * DAY_MS, items_max)
            receipts, more_receipts = _prune_receipts(
                txn, store.dbs, meta["acked_seq"], at.ms - receipts_days * DAY_MS, items_max - events or 1
            )
            ops, more_ops = _prune_ops(txn, store.dbs, max(items_max - events - receipts, 1))
    except lmdb.MapFullError:
        raise store.map_full() from None
    return {"events": events, "receipts": receipts, "ops": ops, "more": more_events or more_receipts or more_ops}
