"""One ledger write operation: an LMDB write transaction plus what the invariants need.

`write(store, op_id, kind, request)` opens the transaction, answers a retried operation id from
the `ops` table (same content → the original result, nothing changed; different content →
LedgerConflictError), and on success runs the always-on invariant checks before commit:
every touched card's balance equals Σ of its lots, no lot is negative unless it is the debt lot,
every lot movement went out in an event (`lots`, matching its `deltas`), and the outbox grew
gap-free. A map-full error anywhere aborts the whole transaction.

Σ lots without walking every lot: each card record carries `lots_points` and `lots_count`, the
sum and number of its lots as of its last commit. Every lot write goes through this class
(`put_lot`, `delete`), which reads the lot's stored points before its first change; `finish`
reads each written lot back, checks its sign, and measures what moved. A card's new sum is its
stored sum plus the measured move, and must equal its new balance. Lots this transaction did not
write are unchanged, so by induction the stored sum is the true Σ lots — `verify` (and
`posterm ledger verify`) re-walks every lot and cross-checks both fields. A card without the
fields (a new card, or a file from an older build) is walked once to set them.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from typing import Any

import lmdb

from terminal.ledger import codec, keys, lots, movements
from terminal.ledger.errors import (
    LedgerConflictError,
    LedgerInvariantError,
    LedgerNotFoundError,
)
from terminal.ledger.store import FORMAT_VERSION, META_KEY, Store

LOTS_PER_CARD_MAX = 10_000
EVENTS_PER_OP_MAX = 100_000
CARDS_PER_OP_MAX = 100_000
EVENT_RANDOM_BYTES = 10


# The random part comes from a generator seeded from the OS once per process (and again in a
# forked child, which would otherwise repeat its parent's ids): the ids must be unique, not
# secret, and os.urandom is a system call — on a small VM ~5 µs, a tenth of a sale's CPU.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def event_id(at_ms: int) -> str:
    """A time-ordered unique id: 48-bit ms timestamp + 80 random bits, 32 hex digits."""
    return f"{at_ms & (2**48 - 1):012x}{_random.getrandbits(8 * EVENT_RANDOM_BYTES):020x}"


class Tx:
    """The state of one write operation; helpers keep the card cache and event list honest."""

    def __init__(self, store: Store, txn: lmdb.Transaction) -> None:
        self.store = store
        self.txn = txn
        self.dbs = store.dbs
        self.meta = store.read_meta(txn)
        self.first_seq = self.meta["next_seq"]
        self.cards: dict[str, dict[str, Any]] = {}
        # local_delta at load time and the part of its change already carried by an event:
        # every point movement must be described by an event (checked in `finish`).
        self.base_delta: dict[str, int] = {}
        self.attributed: dict[str, int] = {}
        # Lot movements not yet carried by an event (the next event's `lots` field).
        self.lot_moves: dict[str, list[movements.Move]] = {}
        self.events = 0
        self.card_keys: dict[str, bytes] = {}
        # Σ and number of each loaded card's lots before this transaction moved any of them.
        self.base_lots: dict[str, tuple[int, int]] = {}
        # Points of every lot written here, as stored before its first change (None: no lot).
        self.lots_before: dict[bytes, int | None] = {}
        self.lot_cards: set[bytes] = set()  # card keys of those lots (a new card skips the scan)

    # ------------------------------------------------------------------ raw access

    def get(self, db: str, key: bytes, what: str) -> Any:
        raw = self.txn.get(key, db=self.dbs[db])
        return None if raw is None else codec.load(key, raw, what)

    def put(self, db: str, key: bytes, value: Any, what: str) -> None:
        if db == "lots":  # lots have their own encoding and are tracked for the invariant
            raise LedgerInvariantError(f"{what}: lots are written with Tx.put_lot")
        self.txn.put(key, codec.dump(key, value, what), db=self.dbs[db])

    def put_new(self, db: str, key: bytes, value: Any, what: str) -> None:
        """Insert a new record; time-ordered ids (ULIDs, counters) take LMDB's append path, which
        fills pages instead of splitting them in half (receipts: ~2 KB → ~1.1 KB a sale)."""
        data = codec.dump(key, value, what)
        if not self.txn.put(key, data, db=self.dbs[db], append=True) and not self.txn.put(
            key, data, db=self.dbs[db], overwrite=False
        ):
            raise LedgerInvariantError(f"{what}: already present")

    def delete(self, db: str, key: bytes) -> None:
        if db == "lots":
            self._lot_before(key)
        self.txn.delete(key, db=self.dbs[db])

    # ------------------------------------------------------------------ lots

    def put_lot(self, key: bytes, data: bytes) -> None:
        """Write one encoded lot (`lots.encode`, sealed here); the only way a lot is written."""
        self._lot_before(key)
        self.txn.put(key, codec.seal(key, data), db=self.dbs["lots"])

    def _lot_before(self, key: bytes) -> None:
        if key not in self.lots_before:
            self.lot_cards.add(key[: keys.TEXT_KEY_BYTES])
            raw = self.txn.get(key, db=self.dbs["lots"])
            self.lots_before[key] = None if raw is None else lots.stored_points(key, raw)

    def _measured_moves(self, prefix: bytes = b"") -> dict[bytes, tuple[int, int]]:
        """Per card key: (points, lots) moved by this transaction, measured by reading back
        every lot it wrote (whose sign is checked on the way); `prefix` narrows to one card."""
        moves: dict[bytes, tuple[int, int]] = {}
        get, db = self.txn.get, self.dbs["lots"]
        for key, before in self.lots_before.items():
            if not key.startswith(prefix):
                continue
            raw = get(key, db=db)
            after = None if raw is None else lots.stored_points(key, raw)
            card_key = key[: keys.TEXT_KEY_BYTES]
            points, count = moves.get(card_key, (0, 0))
            moves[card_key] = (
                points + (after or 0) - (before or 0),
                count + (after is not None) - (before is not None),
            )
        return moves

    # ------------------------------------------------------------------ cards

    def card_key(self, number: str) -> bytes:
        key = self.card_keys.get(number)
        if key is None:
            key = self.card_keys[number] = keys.text(number, "card number")
        return key

    def card(self, number: str) -> dict[str, Any]:
        """The card record, cached for this transaction; written back at commit."""
        if number in self.cards:
            return self.cards[number]
        found = self.get("cards", self.card_key(number), f"card {number}")
        if found is None:
            raise LedgerNotFoundError(f"card {number}: not in the ledger")
        if len(self.cards) >= CARDS_PER_OP_MAX:
            raise LedgerInvariantError(f"one operation touches more than {CARDS_PER_OP_MAX} cards")
        self._track(found)
        return found

    def _track(self, record: dict[str, Any]) -> None:
        number = record["number"]
        self.cards[number] = record
        self.base_delta[number] = record["local_delta"]
        self.attributed[number] = 0
        if "lots_points" in record:
            self.base_lots[number] = (record["lots_points"], record["lots_count"])
            return
        # A new card, or one written by an older build: walk its lots once (lots left without
        # a card count too, so they still break the invariant), less what this transaction
        # already moved, to get the sum the coming checks start from.
        key = self.card_key(number)
        points, count = lots.checked_sum(self.txn, self.dbs, number)
        moved_points, moved_count = (
            self._measured_moves(key).get(key, (0, 0)) if key in self.lot_cards else (0, 0)
        )
        self.base_lots[number] = (points - moved_points, count - moved_count)

    def new_card(self, record: dict[str, Any]) -> None:
        self._track(record)

    def confirm(self, number: str, points: int) -> None:
        """The server confirmed `points` of this card's local movements (an acked event):
        they move from local_delta to server_balance; the balance and lots do not change."""
        card = self.card(number)
        card["local_delta"] -= points
        card["server_balance"] += points
        self.base_delta[number] -= points

    def mirrored(self, number: str, balance: int, local_delta: int) -> None:
        """The card now holds the server's lots (`mirror.py`): server_balance is the server's
        balance, local_delta the rest of Σ lots. The server's movement, not a local one."""
        card = self.card(number)
        self.base_delta[number] += local_delta - card["local_delta"]
        card["local_delta"] = local_delta
        card["server_balance"] = balance

    def unattributed(self) -> dict[str, int]:
        """Point changes per card not yet carried by an event."""
        out = {}
        for number, card in self.cards.items():
            change = card["local_delta"] - self.base_delta[number] - self.attributed[number]
            if change:
                out[number] = change
        return out

    def card_exists(self, number: str) -> bool:
        return (
            number in self.cards
            or self.txn.get(self.card_key(number), db=self.dbs["cards"]) is not None
        )

    def lot_moved(self, number: str, points: int, lot: dict[str, Any]) -> None:
        """Record that `points` went into (> 0) or out of (< 0) a lot with `lot`'s dates."""
        self.lot_moves.setdefault(number, []).append(
            movements.Move(points, lot.get("available_from"), lot.get("expires_at"))
        )

    def lot_mark(self, number: str) -> int:
        return len(self.lot_moves.get(number, []))

    def drop_lot_moves(self, number: str, mark: int) -> None:
        """Forget the card's lot movements since `mark`: they are the server's (a correction)."""
        del self.lot_moves.get(number, [])[mark:]

    def next_lot_id(self) -> int:
        self.meta["next_lot_id"] += 1
        lot_id: int = self.meta["next_lot_id"]
        return lot_id

    # ------------------------------------------------------------------ outbox

    def event(self, kind: str, at: Any, payload: dict[str, Any]) -> int:
        """Append an outbox event; returns its sequence number."""
        if self.events >= EVENTS_PER_OP_MAX:
            raise LedgerInvariantError(
                f"one operation appends more than {EVENTS_PER_OP_MAX} events"
            )
        seq = self.meta["next_seq"]
        deltas = self.unattributed()
        for number, change in deltas.items():
            self.attributed[number] += change
        # Every card whose points moved must say which lots moved (a delta without lot
        # movements would reach the server as an older terminal's dateless change).
        moved = {
            number: movements.entries(number, self.lot_moves.get(number, []), deltas.get(number, 0))
            for number in sorted(deltas.keys() | self.lot_moves.keys())
            if deltas.get(number) or self.lot_moves.get(number)
        }
        self.lot_moves = {}
        value = {
            "deltas": deltas,
            **({"lots": moved} if moved else {}),
            "id": event_id(at.ms),
            "epoch": self.meta["epoch"],
            "seq": seq,
            "type": kind,
            "at": at.iso,
            "at_ms": at.ms,
            "shift": self.meta["shift"],
            **payload,
        }
        seq_key = keys.u64(seq)
        if not self.txn.put(
            seq_key,
            codec.dump(seq_key, value, f"event {seq}"),
            db=self.dbs["outbox"],
            append=True,
            overwrite=False,
        ):
            raise LedgerInvariantError(f"outbox: sequence {seq} already present")
        self.meta["next_seq"] = seq + 1
        self.events += 1
        return int(seq)

    # ------------------------------------------------------------------ invariants and commit

    def finish(self) -> None:
        loose = self.unattributed()
        if loose:
            raise LedgerInvariantError(
                f"point changes without an outbox event: {sorted(loose.items())[:5]}"
            )
        if any(self.lot_moves.values()):
            raise LedgerInvariantError(
                f"lot movements without an outbox event: cards {sorted(self.lot_moves)[:5]}"
            )
        moves = self._measured_moves()
        for card_key in moves:
            number = keys.read_text(card_key)
            if number in self.cards:
                continue
            # Lots moved on a card this operation never loaded: its balance cannot have moved.
            if not self.card_exists(number):
                raise LedgerInvariantError(f"lots of card {number} changed, but there is no such card")
            self.card(number)
        for number, card in self.cards.items():
            moved_points, moved_count = moves.get(self.card_key(number), (0, 0))
            base_points, base_count = self.base_lots[number]
            total, count = base_points + moved_points, base_count + moved_count
            balance = card["server_balance"] + card["local_delta"]
            if balance != total:
                raise LedgerInvariantError(
                    f"card {number}: balance {balance} (server {card['server_balance']} + local "
                    f"{card['local_delta']}) differs from the sum of its lots {total}"
                )
            if count > LOTS_PER_CARD_MAX:
                raise LedgerInvariantError(f"card {number}: more than {LOTS_PER_CARD_MAX} lots")
            card["lots_points"], card["lots_count"] = total, count
            self.put("cards", self.card_key(number), card, f"card {number}")
        grown = self.meta["next_seq"] - self.first_seq
        if grown != self.events:
            raise LedgerInvariantError(
                f"outbox grew by {grown} but {self.events} events were added"
            )
        if self.events:
            last = self.txn.get(keys.u64(self.meta["next_seq"] - 1), db=self.dbs["outbox"])
            if last is None:
                raise LedgerInvariantError("outbox: the last event is missing")
        self.meta["format"] = FORMAT_VERSION
        self.put("meta", META_KEY, self.meta, "meta")


class Riders(threading.local):
    """A write that rides along with the next ledger write of this thread (one at a time):
    `Ledger.attributed` puts an attendant's `attendant_action` event there, so the privileged
    action and the event naming who did it commit in ONE transaction. Per thread, so a write
    of another thread (the expiry sweep's) never carries it."""

    def __init__(self) -> None:
        self.pending: Callable[[Tx], None] | None = None


RIDERS = Riders()


def _conflict(kind: str, op_id: str, used_for: str) -> LedgerConflictError:
    return LedgerConflictError(
        f"{kind} {op_id}: this id was already used for a different {used_for} "
        "(exists_with_different_fields); nothing changed"
    )


def write(
    store: Store,
    op_id: str,
    kind: str,
    request: Any,
    body: Callable[[Tx], dict[str, Any]],
    stored: Callable[[lmdb.Transaction], tuple[Any, dict[str, Any]] | None] | None = None,
) -> dict[str, Any]:
    """Run `body` once for `op_id`: atomically, idempotently, with the invariants checked.

    The op record keeps the digest of `request`, which a retry's must match. An operation that
    writes its whole request and its result in its own record anyway (a sale's receipt) passes
    `stored`, which reads (request, result) back: it gets no op record at all — one record and
    one B-tree page fewer per sale — and a retry is compared with that content itself
    (`codec.same_content`); the digest of a sale's ~1 KB quote was the costliest step of a sale.
    """
    op_key = keys.text(op_id, f"{kind} id")
    # Before the transaction: a request that cannot be digested is refused without the lock.
    wanted = None if stored is not None else codec.digest([kind, request])
    rider: Callable[[Tx], None] | None = None
    try:
        with store.env.begin(write=True) as txn:
            found = txn.get(op_key, db=store.dbs["ops"])
            if found is not None:  # every kind but sales, and sales recorded by older builds
                done = codec.load(op_key, found, f"operation {op_id}")
                if done["kind"] != kind or done["digest"] != (wanted or codec.digest([kind, request])):
                    raise _conflict(kind, op_id, done["kind"])
                result: dict[str, Any] = done["result"]
                return result
            earlier = None if stored is None else stored(txn)
            if earlier is not None:
                if not codec.same_content(earlier[0], request):
                    raise _conflict(kind, op_id, kind)
                return earlier[1]
            if stored is None and txn.get(op_key, db=store.dbs["receipts"]) is not None:
                raise _conflict(kind, op_id, "sale")
            tx = Tx(store, txn)
            result = body(tx)
            rider = RIDERS.pending
            if rider is not None:
                rider(tx)
            tx.finish()
            if stored is None:
                # `last_seq`: the ledger's newest event once it committed (its own, or the one
                # before it when it wrote none) — retention drops the record once that event is
                # pruned (terminal/ledger/retention.py).
                last_seq = tx.meta["next_seq"] - 1
                tx.put_new(
                    "ops", op_key, {"kind": kind, "digest": wanted, "result": result, "last_seq": last_seq},
                    f"operation {op_id}",
                )
    except lmdb.MapFullError:
        raise store.map_full() from None
    if rider is not None and RIDERS.pending is rider:
        RIDERS.pending = None  # committed with this write: it rides no further
    store.check_usage()
    return result
