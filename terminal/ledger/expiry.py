"""The expiry sweep: annuls points of lots whose `expires_at` has passed (one `expiry` event per
card, naming the points) and deletes holds past their timeout. Idempotent by the sweep's id.

Limit: one sweep visits at most `SWEEP_LOTS_MAX` lots; `more` in the result says to run again.
"""

from __future__ import annotations

from typing import Any

from terminal.ledger import codec, keys, moments
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

SWEEP_LOTS_MAX = 200_000
SWEEP_HOLDS_MAX = 100_000


def _expired_lots(tx: Tx, now_ms: int) -> tuple[dict[str, int], bool]:
    expired: dict[str, int] = {}
    doomed: list[bytes] = []
    visited = 0
    for key, raw in tx.txn.cursor(db=tx.dbs["lots"]):
        visited += 1
        if visited > SWEEP_LOTS_MAX:
            break
        number, expires_ms, _ = keys.read_lot(key)
        if expires_ms == keys.DEBT_MS or expires_ms > now_ms:
            continue
        lot = codec.unpack(raw, f"lot of card {number}")
        expired[number] = expired.get(number, 0) + lot["points"]
        doomed.append(bytes(key))
    for key in doomed:
        tx.delete("lots", key)
    return expired, visited > SWEEP_LOTS_MAX


def _expired_holds(tx: Tx, now_ms: int) -> int:
    doomed = []
    for count, (key, raw) in enumerate(tx.txn.cursor(db=tx.dbs["holds"])):
        if count >= SWEEP_HOLDS_MAX:
            break
        if codec.unpack(raw, "hold")["expires_ms"] <= now_ms:
            doomed.append(bytes(key))
    for key in doomed:
        tx.delete("holds", key)
    return len(doomed)


def sweep(store: Store, op_id: str, now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")

    def body(tx: Tx) -> dict[str, Any]:
        expired, more = _expired_lots(tx, at.ms)
        for number in sorted(expired):
            tx.card(number)["local_delta"] -= expired[number]
            tx.event("expiry", at, {"card": number, "points": expired[number]})
        holds_dropped = _expired_holds(tx, at.ms)
        return {
            "cards": len(expired),
            "points": sum(expired.values()),
            "holds_dropped": holds_dropped,
            "more": more,
        }

    return write(store, op_id, "expiry", {"now": at.iso}, body)
