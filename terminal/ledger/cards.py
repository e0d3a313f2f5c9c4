"""Card records and the card dict the pricing core wants.

A card record: number, type, holder, referrers, cumulative (minor units), blocked, and the
offline-authority split of its balance: `server_balance` at `server_version` (what the central
server last confirmed) plus `local_delta` (this terminal's movements not yet confirmed).
Balance = server_balance + local_delta = Σ lots, always.
"""

from __future__ import annotations

from typing import Any

import lmdb

from terminal.ledger import codec, fields, keys, lots
from terminal.ledger.errors import LedgerBalanceError, LedgerNotFoundError
from terminal.ledger.moments import Moment

REFERRERS_MAX = 8
TYPE_CHARS_MAX = 64
HOLDER_CHARS_MAX = 128


def new_record(
    number: str,
    card_type: str,
    holder: str,
    referrers: list[str],
    cumulative: int,
    blocked: bool = False,
) -> dict[str, Any]:
    keys.text(number, "card number")
    fields.text(card_type, f"card {number} field 'type'", TYPE_CHARS_MAX, empty=True)
    fields.text(holder, f"card {number} field 'holder'", HOLDER_CHARS_MAX, empty=True)
    fields.items(referrers, f"card {number} field 'referrers'", REFERRERS_MAX)
    for ref in referrers:
        keys.text(ref, f"card {number} referrer")
    fields.whole(cumulative, f"card {number} field 'cumulative'")
    return {
        "number": number,
        "type": card_type,
        "holder": holder,
        "referrers": list(referrers),
        "cumulative": cumulative,
        "blocked": fields.flag(blocked, f"card {number} 'blocked'"),
        "server_balance": 0,
        "server_version": 0,
        "local_delta": 0,
    }


def read(txn: lmdb.Transaction, dbs: dict[str, Any], number: str) -> dict[str, Any]:
    key = keys.text(number, "card number")
    raw = txn.get(key, db=dbs["cards"])
    if raw is None:
        raise LedgerNotFoundError(f"card {number}: not in the ledger")
    record: dict[str, Any] = codec.load(key, raw, f"card {number}")
    return record


def held_by_others(
    txn: lmdb.Transaction, dbs: dict[str, Any], number: str, now_ms: int, checkout: str | None
) -> int:
    from terminal.ledger import holds  # holds needs cards for its own checks

    return sum(
        h["points"] for h in holds.active(txn, dbs, number, now_ms) if h["checkout"] != checkout
    )


def for_quote(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    number: str,
    now: Moment,
    checkout: str | None = None,
) -> dict[str, Any]:
    """The core's card dict: lots usable at `now` (plus the debt lot) minus other checkouts'
    holds, shown as one negative lot so the core's `available` comes out right."""
    card = read(txn, dbs, number)
    if card["blocked"]:
        raise LedgerBalanceError(f"card {number}: blocked; price the cart without it")
    out_lots = []
    for key, lot in lots.card_lots(txn, dbs, number):
        _, expires_ms, _ = keys.read_lot(key)
        if lot.get("debt") or lots.is_usable(lot, expires_ms, now.ms, True):
            out_lots.append(lots.public(lot))
    held = held_by_others(txn, dbs, number, now.ms, checkout)
    if held:
        out_lots.append({"points": -held, "available_from": None, "expires_at": None})
    return {
        "number": number,
        "type": card["type"],
        "cumulative": card["cumulative"],
        "lots": out_lots,
        "referrers": list(card["referrers"]),
    }


def summary(txn: lmdb.Transaction, dbs: dict[str, Any], number: str, now: Moment) -> dict[str, Any]:
    """Everything a technician wants to see about one card."""
    card = read(txn, dbs, number)
    from terminal.ledger import holds

    all_lots = []
    for key, lot in lots.card_lots(txn, dbs, number):
        _, _, lot_id = keys.read_lot(key)
        all_lots.append(
            {
                "id": lot_id,
                **lots.public(lot),
                "source": lot["source"],
                "debt": bool(lot.get("debt")),
            }
        )
    active = holds.active(txn, dbs, number, now.ms)
    available = lots.available(txn, dbs, number, now.ms)
    held = sum(h["points"] for h in active)
    return {
        **card,
        "balance": card["server_balance"] + card["local_delta"],
        "available": max(0, available - held),
        "held": held,
        "lots": all_lots,
        "holds": active,
    }
