"""Holds: points reserved for an in-progress checkout until a timeout.

available for checkout X = available − Σ active holds of other checkouts. A hold is posted by
the sale that names its checkout (the sale consumes the points), voided by `void`, and ignored
once its `expires_at` has passed (the expiry sweep deletes it). Key: card key + checkout key.
"""

from __future__ import annotations

from typing import Any

import lmdb

from terminal.ledger import codec, fields, keys, lots, moments
from terminal.ledger.errors import LedgerBalanceError, LedgerInputError, LedgerNotFoundError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

HOLDS_PER_CARD_MAX = 64
HOLD_TIMEOUT_MS_MAX = 24 * 3600 * 1000


def all_of(
    txn: lmdb.Transaction, dbs: dict[str, Any], number: str
) -> list[tuple[bytes, dict[str, Any]]]:
    prefix = keys.text(number, "card number")
    cursor = txn.cursor(db=dbs["holds"])
    out: list[tuple[bytes, dict[str, Any]]] = []
    if not cursor.set_range(prefix):
        return out
    for found, raw in cursor.iternext():
        key = bytes(found)
        if not key.startswith(prefix):
            break
        if len(out) >= HOLDS_PER_CARD_MAX:
            raise LedgerInputError(f"card {number}: more than {HOLDS_PER_CARD_MAX} holds")
        out.append((key, codec.load(key, raw, f"hold of card {number}")))
    return out


def active(
    txn: lmdb.Transaction, dbs: dict[str, Any], number: str, now_ms: int
) -> list[dict[str, Any]]:
    return [h for _, h in all_of(txn, dbs, number) if h["expires_ms"] > now_ms]


def place(
    store: Store, op_id: str, number: str, checkout: str, points: int, now: Any, expires_at: Any
) -> dict[str, Any]:
    """Hold `points` of card `number` for `checkout` until `expires_at`."""
    at = moments.moment(now, "now")
    until = moments.moment(expires_at, "hold expires_at")
    fields.whole(points, f"hold {op_id} points", 1, fields.POINTS_MAX)
    if not 0 < until.ms - at.ms <= HOLD_TIMEOUT_MS_MAX:
        raise LedgerInputError(
            f"hold {op_id}: expires_at must be after now and within {HOLD_TIMEOUT_MS_MAX // 1000} s"
        )
    request = {"card": number, "checkout": checkout, "points": points, "until": until.iso}

    def body(tx: Tx) -> dict[str, Any]:
        card = tx.card(number)
        if card["blocked"]:
            raise LedgerBalanceError(f"card {number}: blocked; points cannot be held")
        key = keys.hold(keys.text(number), checkout)
        held = tx.get("holds", key, "hold")
        if held is not None and held["expires_ms"] > at.ms:  # a timed-out hold is replaced
            raise LedgerInputError(f"card {number}: checkout {checkout} already holds points")
        others = sum(h["points"] for h in active(tx.txn, tx.dbs, number, at.ms))
        free = lots.available(tx.txn, tx.dbs, number, at.ms) - others
        if points > free:
            raise LedgerBalanceError(f"card {number}: {free} points free, {points} asked to hold")
        tx.put(
            "holds",
            key,
            {
                "card": number,
                "checkout": checkout,
                "points": points,
                "expires_at": until.iso,
                "expires_ms": until.ms,
                "at": at.iso,
            },
            "hold",
        )
        seq = tx.event(
            "hold",
            at,
            {"card": number, "checkout": checkout, "points": points, "expires_at": until.iso},
        )
        return {"card": number, "checkout": checkout, "points": points, "seq": seq}

    return write(store, op_id, "hold", request, body)


def take(tx: Tx, number: str, checkout: str) -> dict[str, Any] | None:
    """Delete a checkout's hold (inside a sale that posts it or a void); returns it if any."""
    key = keys.hold(keys.text(number), checkout)
    found = tx.get("holds", key, "hold")
    if found is not None:
        tx.delete("holds", key)
    return found


def void(store: Store, op_id: str, number: str, checkout: str, now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")

    def body(tx: Tx) -> dict[str, Any]:
        tx.card(number)
        found = take(tx, number, checkout)
        if found is None:
            raise LedgerNotFoundError(f"card {number}: checkout {checkout} holds no points")
        seq = tx.event(
            "hold_void", at, {"card": number, "checkout": checkout, "points": found["points"]}
        )
        return {"card": number, "checkout": checkout, "points": found["points"], "seq": seq}

    return write(store, op_id, "hold_void", {"card": number, "checkout": checkout}, body)
