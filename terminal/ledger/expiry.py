"""The expiry sweep: annuls points of lots whose `expires_at` has passed (one `expiry` event per
card, naming the points) and deletes holds past their timeout. Idempotent by the sweep's id.

Only points no server has seen yet: lots mirrored from the central server are its to expire —
its sweep decides once for the chain and the feed brings the card without them; until then
they are past their date and no quote offers them. (A local lot whose sale the server already
has may still be expired here: the server takes from its `expiry` only what is still expired
there, so nothing is counted twice.)

Limits: one sweep annuls at most `SWEEP_EXPIRED_MAX` lots (`more` in the result says to run
again: the next sweep starts over and finds the rest, since annulled lots are gone) and visits at
most `SWEEP_VISIT_MAX` lots.
"""

from __future__ import annotations

from typing import Any

from terminal.ledger import codec, keys, lots, mirror, moments
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

SWEEP_EXPIRED_MAX = 100_000
SWEEP_VISIT_MAX = 20_000_000
SWEEP_HOLDS_MAX = 100_000


def _expired_lots(tx: Tx, now_ms: int) -> tuple[dict[str, list[dict[str, Any]]], bool]:
    """The expired lots per card (deleted from the ledger), and whether more remain."""
    expired: dict[str, list[dict[str, Any]]] = {}
    doomed: list[bytes] = []
    more = False
    for visited, (key, raw) in enumerate(tx.txn.cursor(db=tx.dbs["lots"])):
        if visited >= SWEEP_VISIT_MAX or len(doomed) >= SWEEP_EXPIRED_MAX:
            more = True
            break
        key = bytes(key)
        number, expires_ms, _ = keys.read_lot(key)
        if expires_ms == keys.DEBT_MS or expires_ms > now_ms:
            continue
        lot = lots.decode(key, raw, f"lot of card {number}")
        if server_seen(lot):
            continue  # the server expires it, and the feed tells us (docs/protocol.md)
        expired.setdefault(number, []).append(lot)
        doomed.append(key)
    for key in doomed:
        tx.delete("lots", key)
    return expired, more


def server_seen(lot: dict[str, Any]) -> bool:
    """A lot mirrored from the server (`mirror.SOURCE`) or put there by its balance correction:
    its expiry is the server's decision."""
    source = lot.get("source", "")
    return source == mirror.SOURCE or source.startswith("update ")


def _expired_holds(tx: Tx, now_ms: int) -> int:
    doomed = []
    for count, (key, raw) in enumerate(tx.txn.cursor(db=tx.dbs["holds"])):
        if count >= SWEEP_HOLDS_MAX:
            break
        if codec.load(bytes(key), raw, "hold")["expires_ms"] <= now_ms:
            doomed.append(bytes(key))
    for key in doomed:
        tx.delete("holds", key)
    return len(doomed)


def sweep(store: Store, op_id: str, now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")

    def body(tx: Tx) -> dict[str, Any]:
        expired, more = _expired_lots(tx, at.ms)
        total = 0
        for number in sorted(expired):
            points = sum(lot["points"] for lot in expired[number])
            tx.card(number)["local_delta"] -= points
            for lot in expired[number]:  # the event names each lot's dates for the server
                tx.lot_moved(number, -lot["points"], lot)
            tx.event("expiry", at, {"card": number, "points": points})
            total += points
        holds_dropped = _expired_holds(tx, at.ms)
        return {
            "cards": len(expired),
            "points": total,
            "holds_dropped": holds_dropped,
            "more": more,
        }

    return write(store, op_id, "expiry", {"now": at.iso}, body)
