"""Point lots of a card: add (paying a debt first), take soonest-expiring first, restore to the
lots they came from latest-expiring first, and the single debt lot.

A lot: {"points", "available_from" (ISO|None), "from_ms", "expires_at" (ISO|None), "source",
"debt"}. Only the debt lot (expiry key 0, lot id 0) may be negative, and it is never positive.
Stored as a fixed header (points: i64, from_ms: u64, big-endian) + msgpack of the rest, so the
per-transaction invariant (Σ lots) and availability read a card's lots without decoding msgpack.
Every change also moves the card's `local_delta`, so balance = server + local = Σ lots holds,
and is recorded on the transaction with the lot's dates, for the next outbox event's `lots`
field (`movements.py`): the central server mirrors the lots from it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import lmdb

from terminal.ledger import codec, keys
from terminal.ledger.errors import LedgerInvariantError
from terminal.ledger.moments import Moment

if TYPE_CHECKING:
    from terminal.ledger.tx import Tx

LOT_WALK_MAX = 10_000
_HEADER = struct.Struct(">qQ")
_POINTS = struct.Struct(">q")
_EXPIRY = struct.Struct(">Q")
_DEBT_SUFFIX = struct.pack(">QQ", keys.DEBT_MS, 0)


def encode(lot: dict[str, Any], what: str) -> bytes:
    rest = {
        "available_from": lot["available_from"],
        "expires_at": lot["expires_at"],
        "source": lot["source"],
    }
    return _HEADER.pack(lot["points"], lot["from_ms"]) + codec.pack(rest, what)


def decode(key: bytes, raw: bytes | memoryview, what: str) -> dict[str, Any]:
    if len(raw) < _HEADER.size + codec.CHECK_BYTES:
        raise LedgerInvariantError(f"{what}: stored lot of {len(raw)} bytes is truncated")
    raw = codec.opened(key, bytes(raw), what)
    points, from_ms = _HEADER.unpack_from(raw)
    rest = codec.unpack(raw[_HEADER.size :], what)
    return {"points": points, "from_ms": from_ms, **rest, "debt": key.endswith(_DEBT_SUFFIX)}


def _get(tx: Tx, key: bytes, what: str) -> dict[str, Any] | None:
    raw = tx.txn.get(key, db=tx.dbs["lots"])
    return None if raw is None else decode(key, raw, what)


def _put(tx: Tx, key: bytes, lot: dict[str, Any], what: str) -> None:
    tx.put_lot(key, encode(lot, what))


def _raw(txn: lmdb.Transaction, dbs: dict[str, Any], number: str) -> Iterator[tuple[bytes, bytes]]:
    prefix = keys.text(number, "card number")
    cursor = txn.cursor(db=dbs["lots"])
    if not cursor.set_range(prefix):
        return
    for count, (found, raw) in enumerate(cursor.iternext()):
        key = bytes(found)  # already bytes (no copy); the stubs also allow memoryview
        if not key.startswith(prefix):
            return
        if count >= LOT_WALK_MAX:
            raise LedgerInvariantError(f"card {number}: more than {LOT_WALK_MAX} lots")
        yield key, codec.opened(key, bytes(raw), f"lot of card {number}")


def stored_points(key: bytes, raw: bytes | memoryview) -> int:
    """A stored lot's points from its header, refusing a damaged or truncated lot or a wrong
    sign."""
    if len(raw) < _HEADER.size + codec.CHECK_BYTES:
        raise LedgerInvariantError(f"lot {bytes(key).hex()}: stored lot of {len(raw)} bytes is truncated")
    raw = codec.opened(key, bytes(raw), f"lot {bytes(key).hex()[:40]}")
    points: int = _POINTS.unpack_from(raw)[0]
    if (points >= 0) if key.endswith(_DEBT_SUFFIX) else (points <= 0):
        number = keys.read_text(key[: keys.TEXT_KEY_BYTES])
        raise LedgerInvariantError(f"card {number}: lot {bytes(key[-8:]).hex()} holds {points} points")
    return points


def checked_sum(txn: lmdb.Transaction, dbs: dict[str, Any], number: str) -> tuple[int, int]:
    """(Σ, count) of a card's lots straight from the headers, checking each lot's sign.

    Walks every lot of the card: writes use the card's stored sum instead (see `tx`); this is for
    a card seen for the first time and for `verify`."""
    prefix = keys.text(number, "card number")
    cursor = txn.cursor(db=dbs["lots"])
    if not cursor.set_range(prefix):
        return 0, 0
    total = count = 0
    for found, raw in cursor:
        key = bytes(found)  # already bytes (no copy); the stubs also allow memoryview
        if not key.startswith(prefix):
            break
        if count >= LOT_WALK_MAX:
            raise LedgerInvariantError(f"card {number}: more than {LOT_WALK_MAX} lots")
        total += stored_points(key, raw)
        count += 1
    return total, count


def card_lots(
    txn: lmdb.Transaction, dbs: dict[str, Any], number: str
) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """A card's lots in key order: debt lot, soonest-expiring first, never-expiring last."""
    prefix = keys.text(number, "card number")
    cursor = txn.cursor(db=dbs["lots"])
    if not cursor.set_range(prefix):
        return
    for count, (found, raw) in enumerate(cursor.iternext()):
        key = bytes(found)
        if not key.startswith(prefix):
            return
        if count >= LOT_WALK_MAX:
            raise LedgerInvariantError(f"card {number}: more than {LOT_WALK_MAX} lots")
        yield key, decode(key, raw, f"lot of card {number}")


def check_lot(number: str, key: bytes, lot: dict[str, Any]) -> None:
    _, expires_ms, lot_id = keys.read_lot(key)
    points = lot["points"]
    if lot.get("debt"):
        if expires_ms != keys.DEBT_MS or lot_id != 0 or points >= 0:
            raise LedgerInvariantError(f"card {number}: malformed debt lot ({points} points)")
    elif points <= 0:
        raise LedgerInvariantError(f"card {number}: lot {lot_id} holds {points} points")


def is_usable(lot: dict[str, Any], expires_ms: int, now_ms: int, only_available: bool) -> bool:
    if lot.get("debt") or expires_ms <= now_ms:
        return False
    return not (only_available and lot["from_ms"] > now_ms)


def available(txn: lmdb.Transaction, dbs: dict[str, Any], number: str, now_ms: int) -> int:
    """Points usable at `now`: available lots plus the debt lot, never below zero (like core)."""
    total = 0
    for key, raw in _raw(txn, dbs, number):
        points, from_ms = _HEADER.unpack_from(raw)
        debt = key.endswith(_DEBT_SUFFIX)
        if debt or from_ms <= now_ms < _EXPIRY.unpack_from(key, keys.TEXT_KEY_BYTES)[0]:
            total += points
    return max(0, total)


def _debt_key(tx: Tx, number: str) -> bytes:
    return tx.card_key(number) + _DEBT_SUFFIX  # = keys.lot(card key, DEBT_MS, 0)


def add(
    tx: Tx, number: str, points: int, start: Moment | None, end: Moment | None, source: str
) -> dict[str, Any]:
    """Credit `points` to a card: a debt is paid first, the rest becomes a new lot."""
    if points <= 0:
        raise LedgerInvariantError(f"card {number}: cannot add a lot of {points} points")
    card = tx.card(number)
    card["local_delta"] += points
    debt_key = _debt_key(tx, number)
    debt = _get(tx, debt_key, f"debt of card {number}")
    paid = 0
    if debt is not None:
        paid = min(points, -debt["points"])
        debt["points"] += paid
        if debt["points"] == 0:
            tx.delete("lots", debt_key)
        else:
            _put(tx, debt_key, debt, f"debt of card {number}")
    rest = points - paid
    key = b""
    lot = {
        "points": rest,
        "available_from": None if start is None else start.iso,
        "from_ms": 0 if start is None else start.ms,
        "expires_at": None if end is None else end.iso,
        "source": source,
        "debt": False,
    }
    # The whole credit, debt payment included: the server pays its own debt of the card first.
    tx.lot_moved(number, points, lot)
    if rest:
        expires_ms = keys.NEVER_MS if end is None else end.ms
        key = keys.lot(tx.card_key(number), expires_ms, tx.next_lot_id())
        _put(tx, key, lot, f"lot of card {number}")
    return {"lot": key.hex(), "points": rest, "debt_paid": paid}


def add_debt(tx: Tx, number: str, points: int) -> None:
    if points <= 0:
        return
    tx.card(number)["local_delta"] -= points
    # No dates: the server takes what it still holds of the card before it books a debt.
    tx.lot_moved(number, -points, {})
    key = _debt_key(tx, number)
    debt = _get(tx, key, f"debt of card {number}") or {
        "points": 0,
        "available_from": None,
        "from_ms": 0,
        "expires_at": None,
        "source": "debt",
        "debt": True,
    }
    debt["points"] -= points
    _put(tx, key, debt, f"debt of card {number}")


def take(
    tx: Tx,
    number: str,
    points: int,
    now_ms: int,
    only_available: bool,
    first_key: bytes | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Take up to `points` from usable lots, `first_key`'s lot first, then soonest-expiring first.

    Returns the moves (each with the lot's key and its value before the move, so a return can
    put the points back) and the shortfall.
    """
    moves: list[dict[str, Any]] = []
    left = points
    if points == 0:
        return moves, 0
    ordered = list(card_lots(tx.txn, tx.dbs, number))
    if first_key:
        ordered.sort(key=lambda item: item[0] != first_key)  # stable: the rest keep key order
    for key, lot in ordered:
        if left == 0:
            break
        _, expires_ms, _ = keys.read_lot(key)
        if not is_usable(lot, expires_ms, now_ms, only_available):
            continue
        part = min(left, lot["points"])
        moves.append({"key": key, "points": part, "lot": dict(lot)})
        tx.lot_moved(number, -part, lot)
        lot["points"] -= part
        left -= part
        if lot["points"] == 0:
            tx.delete("lots", key)
        else:
            _put(tx, key, lot, f"lot of card {number}")
    tx.card(number)["local_delta"] -= points - left
    return moves, left


def restore(
    tx: Tx, number: str, moves: list[dict[str, Any]], points: int, now_ms: int
) -> tuple[int, int]:
    """Put `points` back into the lots they were taken from, latest-expiring first.

    Points whose lot has expired meanwhile are annulled. Each move remembers how much of it
    came back (`returned`), so later returns continue where earlier ones stopped.
    Returns (restored, annulled).
    """
    restored = annulled = 0
    left = points
    for move in sorted(moves, key=lambda m: m["key"], reverse=True):
        if left == 0:
            break
        part = min(left, move["points"] - move.get("returned", 0))
        if part <= 0:
            continue
        move["returned"] = move.get("returned", 0) + part  # the receipt keeps this
        left -= part
        key = move["key"]
        _, expires_ms, _ = keys.read_lot(key)
        if expires_ms <= now_ms:
            annulled += part
            continue
        lot = _get(tx, key, f"lot of card {number}") or {**move["lot"], "points": 0}
        lot["points"] += part
        _put(tx, key, lot, f"lot of card {number}")
        tx.lot_moved(number, part, lot)
        restored += part
    if left:
        raise LedgerInvariantError(f"card {number}: {left} points to restore have no lot to go to")
    tx.card(number)["local_delta"] += restored
    return restored, annulled


def public(lot: dict[str, Any]) -> dict[str, Any]:
    """The lot as the pricing core's card dict wants it."""
    return {
        "points": lot["points"],
        "available_from": lot["available_from"],
        "expires_at": lot["expires_at"],
    }
