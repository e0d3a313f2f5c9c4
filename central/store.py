"""The central server's storage: one interface, two backends (`store_sqlite`, `store_pg`).

The ingest algorithm lives here once; a backend supplies a transaction object (`IngestTx`) with
a handful of primitive reads and writes. Dedup is by the database's unique keys — (terminal,
epoch, seq) and the event id — so several collector processes may share one PostgreSQL: the
stream row of a terminal is locked for the transaction, card rows are locked in sorted order;
a card's lots (`central/lots.py`) are read and written only under its card row's lock, and the
invariant balance = Σ lots is checked in memory over every touched card before COMMIT (`verify`
sums the stored rows of every card in SQL).

Limits: `FEED_PAGE_ENTRIES_MAX` entries per updates page; `EVENTS_LIST_MAX` rows per events and
cards listing.
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

from central import cardfacts, lots
from central import ingest as ingesting
from central.balances import CardState, Shortfall
from central.lots import CardLots, LotInvariantError, Origin
from central.program import ProgramCache
from protocol.wire import KEY_BYTES, Batch, unpack

FEED_PAGE_ENTRIES_MAX = 2_000
EVENTS_LIST_MAX = 10_000_000
FAULTS_SHOWN_MAX = 100
RECEIPT_MATCHES_MAX = 16
RECEIPT_RETURNS_MAX = 1_000  # a terminal refuses more returns of one receipt (ledger RETURNS_PER_RECEIPT_MAX)
CURSOR_START = 0


CARD_COLUMNS = "number, type, holder, referrers, cumulative, blocked, balance, shortfall"
EXPIRY_COLUMNS = "number, expires_ms, from_ms, points, at_ms"
EXPIRE_CARDS_PER_TX = 1_000
EXPIRE_PASSES_MAX = 1_000
LOT_COLUMNS = "number, expires_ms, from_ms, points, source, terminal, epoch, seq"
# A database from before the lots table: each card's balance becomes its opening lot (dateless,
# or the debt lot when negative), so balance = Σ lots holds from the first ingest on. Idempotent:
# only cards with a balance and no lot at all.
OPENING_LOTS_SQL = (
    f"INSERT INTO lots ({LOT_COLUMNS}) SELECT c.number, CASE WHEN c.balance < 0 THEN 0 ELSE {lots.NEVER_MS} END, "
    "0, c.balance, CASE WHEN c.balance < 0 THEN 'debt' ELSE 'opening' END, '', 0, 0 FROM cards c "
    "WHERE c.balance <> 0 AND NOT EXISTS (SELECT 1 FROM lots l WHERE l.number = c.number)"
)
Acked = dict[str, int] | None  # {epoch, seq}: the newest stream of a terminal
FeedItem = tuple[int, str, str, dict[str, Any]]  # (cursor, kind, key, body)
FeedCard = tuple[int, CardState, dict[lots.Key, int]]  # (cursor, card, its lots)
EMPTY_LIST = b"\x90"  # msgpack [] — most cards have no referrers; skip the decoder


def card_from_row(row: Any) -> CardState:
    return CardState(
        number=row[0],
        type=row[1],
        holder=row[2],
        referrers=[] if bytes(row[3]) == EMPTY_LIST else list(unpack(bytes(row[3]), 4096)),
        cumulative=row[4],
        blocked=bool(row[5]),
        balance=row[6],
        shortfall=row[7],
        exists=True,
    )


class StoreError(Exception):
    """The database refused or is unreachable; the message names the store."""


class IngestTx(ABC):
    """One ingest transaction of a backend. Locks are held until the transaction ends."""

    @abstractmethod
    def lock_stream(self, terminal: str, epoch: int) -> int:
        """Create the (terminal, epoch) stream if new, lock it; returns its last stored seq."""

    @abstractmethod
    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        """Rows of a query written with `?` placeholders, inside this transaction."""

    def boundary(self, terminal: str, epoch: int, seq: int) -> bytes | None:
        """The MAC of the stored batch ending at `seq` (b"" for seq 0), None if none ends there."""
        if seq == 0:
            return b""
        rows = self._rows(
            "SELECT mac FROM boundaries WHERE terminal = ? AND epoch = ? AND last_seq = ?", (terminal, epoch, seq)
        )
        return bytes(rows[0][0]) if rows else None

    def stored_ids(self, terminal: str, epoch: int, first: int, last: int) -> list[tuple[int, str]]:
        rows = self._rows(
            "SELECT seq, id FROM events WHERE terminal = ? AND epoch = ? AND seq BETWEEN ? AND ? ORDER BY seq",
            (terminal, epoch, first, last),
        )
        return [(int(s), str(i)) for s, i in rows]

    @abstractmethod
    def insert_events(self, terminal: str, rows: list[tuple[Any, ...]]) -> None:
        """Insert `event_rows`; a unique violation (an id used by another event) raises ConflictError."""

    @abstractmethod
    def insert_receipts(self, rows: list[tuple[str, str, int, int]]) -> None:
        """Index sale events by receipt id: (receipt, terminal, epoch, seq)."""

    @abstractmethod
    def lock_cards(self, numbers: list[str]) -> dict[str, CardState]:
        """Lock and read the cards (sorted order); missing ones come back with exists=False."""

    @abstractmethod
    def save_cards(self, cards: list[CardState]) -> None:
        """Write the cards and give each a fresh feed cursor (cursors commit in order)."""

    @abstractmethod
    def insert_shortfalls(self, terminal: str, epoch: int, shortfalls: list[Shortfall]) -> None: ...

    @abstractmethod
    def _lot_rows(self, numbers: list[str]) -> list[Any]:
        """The stored `lots` rows (LOT_COLUMNS) of `numbers`, in any order."""

    def read_lots(self, numbers: list[str]) -> dict[str, tuple[dict[lots.Key, int], dict[lots.Key, Origin]]]:
        """{number: ({(expires_ms, from_ms): points}, {key: origin})} of locked cards, the rows of
        each key summed (cards without lots absent)."""
        stored: dict[str, tuple[dict[lots.Key, int], dict[lots.Key, Origin]]] = {}
        for row in self._lot_rows(numbers):
            points, origins = stored.setdefault(row[0], ({}, {}))
            key = (int(row[1]), int(row[2]))
            points[key] = points.get(key, 0) + int(row[3])
            origins.setdefault(key, Origin(row[4], row[5], int(row[6]), int(row[7])))
        return stored

    def save_lots(self, book: dict[str, CardLots]) -> None:
        """Append the new rows of cards not read; rewrite the cards read and changed."""
        rewritten: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for number, card in book.items():
            rewrite, changed = card.changes()
            if rewrite:
                rewritten.append(number)
            rows += [(number, *key, lot.points, *lot.origin) for key, lot in changed]
        if rewritten:
            self._delete_lots(rewritten)
        if rows:
            self._append_lots(rows)

    @abstractmethod
    def _delete_lots(self, numbers: list[str]) -> None: ...

    @abstractmethod
    def _append_lots(self, rows: list[tuple[Any, ...]]) -> None:
        """Insert rows (LOT_COLUMNS order); several rows may share a card and dates."""

    def lock_with_lots(
        self,
        numbers: list[str],
        events: list[dict[str, Any]] | None = None,
        moves: list[dict[str, list[lots.Entry]]] | None = None,
    ) -> tuple[dict[str, CardState], dict[str, CardLots]]:
        """Lock and read the cards, and the lots of those that need them for `events` (all when
        None), checked against their balances."""
        cards = self.lock_cards(numbers)
        balances_now = {n: c.balance for n, c in cards.items()}
        full = set(numbers) if events is None else lots.needs_lots(events, balances_now, moves)
        stored = self.read_lots(sorted(full))
        book = {}
        for n in numbers:
            points, origins = stored.get(n, (None, None))
            book[n] = CardLots(n, points, loaded=n in full, balance_before=balances_now[n], origins=origins)
        for number in full:
            book[number].check(balances_now[number])
        return cards, book

    def save_with_lots(self, cards: list[CardState], book: dict[str, CardLots]) -> None:
        """Check balance = Σ lots on every card (`CardLots.check_after`), then write the cards and
        their lots. (Summing every touched card's rows in SQL here cost a fifth of ingest.)"""
        for card in cards:
            book[card.number].check_after(card.balance)
        # Lots first: saving the cards takes the feed-cursor lock, held by one writer at a time
        # until COMMIT, so nothing else should happen after it.
        self.save_lots(book)
        self.save_cards(cards)

    @abstractmethod
    def put_feed(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Feed items (key, body) of one kind inside this transaction (a key again replaces its item)."""

    @abstractmethod
    def finish_batch(self, terminal: str, epoch: int, last_seq: int, mac: bytes) -> None:
        """Record the batch boundary and the stream's new last seq."""

    @abstractmethod
    def insert_expiries(self, rows: list[tuple[Any, ...]]) -> None:
        """Record the server sweep's expired lots (EXPIRY_COLUMNS order)."""

    # reads inside a snapshot (`Store.snapshot`): the feed's acked, cards and lots agree
    def acked_of(self, terminal: str) -> dict[str, int] | None:
        rows = self._rows(
            "SELECT epoch, last_seq FROM streams WHERE terminal = ? ORDER BY epoch DESC LIMIT 1", (terminal,)
        )
        return {"epoch": int(rows[0][0]), "seq": int(rows[0][1])} if rows else None

    def lots_of(self, numbers: list[str]) -> dict[str, dict[lots.Key, int]]:
        """Each card's lots, rows of one key summed (cards without lots absent)."""
        return {number: points for number, (points, _) in self.read_lots(numbers).items()}


def usable_keys(row: Any) -> list[bytes]:
    """(key, old_key, old_key_until_ms) → the current key, plus the old one inside its grace."""
    key, old, until_ms = row
    keys = [bytes(key)]
    if old is not None and until_ms > time.time() * 1000:
        keys.append(bytes(old))
    return keys


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


class Store(ABC):
    """What the server and the CLI need from the database."""

    name = "store"

    @abstractmethod
    def migrate(self) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def transaction(self) -> AbstractContextManager[IngestTx]: ...

    def ingest(self, batch: Batch, mac: bytes) -> ingesting.Ingested:
        try:
            with self.transaction() as tx:
                return ingesting.ingest(tx, batch, mac, self.programs())
        except LotInvariantError as exc:
            # Rolled back; the terminal retries (503) while a technician reads the log line.
            raise StoreError(f"{self.name}: {exc}") from None

    def programs(self) -> ProgramCache:
        """This store's cache of the published program (central/program.py)."""
        cache: ProgramCache = self.__dict__.setdefault("_programs", ProgramCache())
        return cache

    def published_program(self, tx: IngestTx) -> Any:
        """The compiled program of the published rules as `tx` sees them; None when none is."""
        return self.programs().get(tx)

    @abstractmethod
    def stream_state(self, terminal: str, epoch: int) -> tuple[int, bytes]:
        """(last stored seq, its boundary MAC) of a stream; (0, b"") when new."""

    # terminals
    @abstractmethod
    def add_terminal(self, terminal: str, key: bytes) -> None: ...

    @abstractmethod
    def set_key(self, terminal: str, key: bytes, grace_s: int) -> None:
        """A new key; the previous one stays valid for `grace_s` seconds (0: revoked now)."""

    def terminal_keys(self, terminal: str) -> list[bytes]:
        """The keys a request of this terminal may be signed with, newest first; [] if unknown."""
        rows = self._query("SELECT key, old_key, old_key_until_ms FROM terminals WHERE id = ?", (terminal,))
        return usable_keys(rows[0]) if rows else []

    def terminals(self) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT t.id, t.created_ms, s.epoch, s.last_seq, s.stored_ms FROM terminals t LEFT JOIN streams s "
            "ON s.terminal = t.id AND s.epoch = (SELECT MAX(epoch) FROM streams m WHERE m.terminal = t.id) "
            "ORDER BY t.id"
        )
        # Per terminal: its newest stream and when a batch was last stored (spot silent terminals).
        keys = ("terminal", "created_ms", "epoch", "acked_seq", "last_batch_ms")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def latest_acked(self, terminal: str) -> dict[str, int] | None:
        """The newest stream of a terminal: {epoch, seq}."""
        rows = self._query(
            "SELECT epoch, last_seq FROM streams WHERE terminal = ? ORDER BY epoch DESC LIMIT 1", (terminal,)
        )
        return {"epoch": int(rows[0][0]), "seq": int(rows[0][1])} if rows else None

    # feed and cards
    @abstractmethod
    def publish(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> int:
        """Put feed items (key, body) of one kind (rules, product, version) in one transaction;
        returns the last cursor. A key published again replaces its item (compaction)."""

    def put_cards(
        self,
        cards: list[CardState],
        expiries: dict[str, int] | None = None,
        facts: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Publish card records (balance included) — authoritative overrides. The lots move by
        the difference: a new balance opens a lot (dateless, or expiring at `expiries[number]`
        ms); a lower one takes lots soonest-expiring first (then debt). `facts`: the cards'
        §12 facts (central/cardfacts.py), replaced in the same transaction."""
        latest = {c.number: c for c in cards}  # a number listed twice: the last row counts
        now_ms = int(time.time() * 1000)
        with self.transaction() as tx:
            old, book = tx.lock_with_lots(sorted(latest))  # one lock order: no deadlocks
            for card in latest.values():
                card.shortfall = old[card.number].shortfall
                diff = card.balance - old[card.number].balance
                expires_ms = (expiries or {}).get(card.number)
                if diff > 0 and expires_ms is not None:
                    lots.credit(book[card.number], diff, (expires_ms, 0), Origin("publish"))
                else:
                    lots.move(book[card.number], diff, now_ms, Origin("publish"))
            tx.save_with_lots(list(latest.values()), book)
            if facts is not None:
                cardfacts.put(tx, facts)

    def card_facts(self, numbers: list[str]) -> dict[str, dict[str, Any]]:
        """The §12 facts of the cards that have any."""
        return cardfacts.read(self._query, numbers)

    def adjust_card(
        self,
        number: str,
        points: int,
        check: Callable[[str, int], None] | None = None,
        also: Callable[[IngestTx], None] | None = None,
    ) -> CardState:
        """A technician's correction: a dateless lot when up, lots soonest-expiring first when down.
        `check(number, new_balance)` may refuse (raise) before anything is written; `also(tx)`
        writes in the same transaction (the console's audit row)."""
        with self.transaction() as tx:
            cards, book = tx.lock_with_lots([number])
            card = cards[number]
            if check is not None:
                check(number, card.balance + points)
            card.balance += points
            lots.move(book[number], points, int(time.time() * 1000), Origin("adjust"))
            tx.save_with_lots([card], book)
            if also is not None:
                also(tx)
            return card

    def expire(self, now_ms: int, cards_per_tx: int = EXPIRE_CARDS_PER_TX) -> dict[str, Any]:
        """The server's expiry sweep: every lot expired by `now_ms` leaves its card (a row in
        `expiries` records it), the card's balance drops and its new state goes out in the feed.
        The one place a lot's expiry is decided for the chain (docs/protocol.md); a terminal's
        own `expiry` events then take only what is still expired here (`lots.expire_taken`).
        Runs in transactions of at most `cards_per_tx` cards, locked in sorted order like an
        ingest; safe to run on several collectors at once (a card is swept under its lock)."""
        cards_total = points_total = 0
        for _ in range(EXPIRE_PASSES_MAX):
            with self.transaction() as tx:
                numbers = [
                    str(r[0])
                    for r in tx._rows(
                        "SELECT DISTINCT number FROM lots WHERE expires_ms > 0 AND expires_ms <= ? "
                        "ORDER BY number LIMIT ?",
                        (now_ms, cards_per_tx),
                    )
                ]
                if not numbers:
                    break
                cards, book = tx.lock_with_lots(numbers)
                rows: list[tuple[Any, ...]] = []
                for number in numbers:
                    gone = lots.sweep(book[number], now_ms)
                    cards[number].balance -= sum(points for _, points in gone)
                    rows += [(number, *key, points, now_ms) for key, points in gone]
                tx.insert_expiries(rows)
                tx.save_with_lots([cards[n] for n in numbers], book)
            cards_total += len(numbers)
            points_total += sum(r[3] for r in rows)
            if len(numbers) < cards_per_tx:
                break
        return {"cards": cards_total, "points": points_total}

    @abstractmethod
    def snapshot(self) -> AbstractContextManager[IngestTx]:
        """A read-only transaction that sees one committed state throughout."""

    def feed_page(self, terminal: str, since: int, limit: int) -> tuple[Acked, list[FeedItem], list[FeedCard]]:
        """(acked, items, cards with their lots) after `since`, read in one snapshot: every card
        state includes exactly the events of this terminal through `acked` — the terminal adds
        only its later events on top (docs/protocol.md, the updates feed)."""
        with self.snapshot() as tx:
            acked = tx.acked_of(terminal)
            rows = tx._rows(
                "SELECT cursor, kind, key, body FROM feed WHERE cursor > ? ORDER BY cursor LIMIT ?", (since, limit)
            )
            items = [(int(c), k, key, unpack(bytes(b), 4 * 1024 * 1024, 2 * 1024 * 1024)) for c, k, key, b in rows]
            card_rows = tx._rows(
                f"SELECT {CARD_COLUMNS}, cursor FROM cards WHERE cursor > ? ORDER BY cursor LIMIT ?", (since, limit)
            )
            found = tx.lots_of([r[0] for r in card_rows])
        cards = [(int(r[8]), card_from_row(r), found.get(r[0], {})) for r in card_rows]
        return acked, items, cards

    def card_view(self, number: str, terminal: str) -> tuple[CardState, int, dict[lots.Key, int], Acked] | None:
        """(card, version, lots, this terminal's acked) in one snapshot, for a swipe's lookup."""
        with self.snapshot() as tx:
            rows = tx._rows(f"SELECT {CARD_COLUMNS}, cursor FROM cards WHERE number = ?", (number,))
            if not rows:
                return None
            return card_from_row(rows[0]), int(rows[0][8]), tx.lots_of([number]).get(number, {}), tx.acked_of(terminal)

    def expiries(self, number: str | None = None) -> list[dict[str, Any]]:
        """What the server's sweeps expired, oldest first."""
        where, params = ("WHERE number = ?", (number,)) if number else ("", ())
        rows = self._query(f"SELECT {EXPIRY_COLUMNS} FROM expiries {where} ORDER BY at_ms, number, expires_ms", params)
        return [
            {"card": r[0], "points": int(r[3]), "expires_at": lots.ms_iso(int(r[1])),
             "available_from": lots.ms_iso(int(r[2])) if int(r[2]) else None, "at": lots.ms_iso(int(r[4]))}
            for r in rows
        ]

    # reads: the same SQL on both databases but for the driver's placeholder
    PARAM = "?"
    SHORTFALL_ORDER = "rowid"

    @abstractmethod
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]: ...

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        return self._read(sql.replace("?", self.PARAM), params)

    def card(self, number: str) -> tuple[CardState, int] | None:
        """A card and its version (feed cursor)."""
        rows = self._query(f"SELECT {CARD_COLUMNS}, cursor FROM cards WHERE number = ?", (number,))
        return (card_from_row(rows[0]), int(rows[0][8])) if rows else None

    def feed_items(self, since: int, limit: int) -> list[tuple[int, str, str, dict[str, Any]]]:
        """(cursor, kind, key, body) with cursor > since, oldest first."""
        rows = self._query(
            "SELECT cursor, kind, key, body FROM feed WHERE cursor > ? ORDER BY cursor LIMIT ?", (since, limit)
        )
        return [(int(c), k, key, unpack(bytes(b), 4 * 1024 * 1024, 2 * 1024 * 1024)) for c, k, key, b in rows]

    def published_barcodes(self) -> dict[str, list[str]]:
        """The published catalog's barcodes by sku (deleted products have none)."""
        rows = self._query("SELECT key, body FROM feed WHERE kind = 'product'")
        out = {}
        for sku, body in rows:
            item = unpack(bytes(body), 4 * 1024 * 1024, 2 * 1024 * 1024)
            out[str(sku)] = [] if item.get("deleted") else list(item.get("barcodes", []))
        return out

    def feed_head(self) -> int:
        """The newest cursor of the feed (items and cards); 0 for an empty one."""
        rows = self._query("SELECT (SELECT MAX(cursor) FROM feed), (SELECT MAX(cursor) FROM cards)")
        return max((int(v) for v in rows[0] if v is not None), default=0) if rows else 0

    def feed_cards(self, since: int, limit: int) -> list[tuple[int, CardState]]:
        rows = self._query(
            f"SELECT {CARD_COLUMNS}, cursor FROM cards WHERE cursor > ? ORDER BY cursor LIMIT ?", (since, limit)
        )
        return [(int(r[8]), card_from_row(r)) for r in rows]

    # inspection (CLI, tests)
    def events(
        self, terminal: str | None = None, limit: int = EVENTS_LIST_MAX
    ) -> Iterator[tuple[str, int, int, str, bytes]]:
        """(terminal, epoch, seq, id, msgpack body), ordered; at most `limit`."""
        where, params = ("WHERE terminal = ?", (terminal,)) if terminal else ("", ())
        rows = self._query(
            f"SELECT terminal, epoch, seq, id, body FROM events {where} ORDER BY terminal, epoch, seq LIMIT ?",
            (*params, min(limit, EVENTS_LIST_MAX)),
        )
        for t, e, s, i, b in rows:
            yield t, int(e), int(s), str(i), bytes(b)

    def receipt(self, receipt: str, kind: str = "sale") -> list[tuple[str, int, int, bytes]]:
        """The sale events (or, with kind "return", the return events) stored under a receipt id:
        (terminal, epoch, seq, msgpack body), at most `RECEIPT_MATCHES_MAX` sales (ids are unique
        per terminal, not across a chain) or `RECEIPT_RETURNS_MAX` returns."""
        rows = self._query(
            "SELECT e.terminal, e.epoch, e.seq, e.body FROM receipts r JOIN events e ON e.terminal = r.terminal "
            "AND e.epoch = r.epoch AND e.seq = r.seq WHERE r.receipt = ? AND e.type = ? "
            "ORDER BY e.terminal, e.epoch, e.seq LIMIT ?",
            (receipt, kind, RECEIPT_MATCHES_MAX if kind == "sale" else RECEIPT_RETURNS_MAX),
        )
        return [(str(t), int(e), int(s), bytes(b)) for t, e, s, b in rows]

    def shortfalls(self) -> list[dict[str, Any]]:
        rows = self._query(
            f"SELECT terminal, epoch, seq, number, points FROM shortfalls ORDER BY {self.SHORTFALL_ORDER}"
        )
        return [dict(zip(("terminal", "epoch", "seq", "card", "points"), r, strict=True)) for r in rows]

    def all_cards(self) -> list[CardState]:
        return [card_from_row(r) for r in self._query(f"SELECT {CARD_COLUMNS} FROM cards ORDER BY number")]

    def verify(self) -> dict[str, Any]:
        """Every card's balance against the sum of its stored lot rows, and the rows' signs, in
        one SQL pass (ingest checks the cards it touches in memory; this reads what is stored)."""
        rows = self._query(
            "SELECT c.number, c.balance, COALESCE(SUM(l.points), 0), COALESCE(SUM(CASE WHEN "
            "(l.expires_ms = 0 AND l.points >= 0) OR (l.expires_ms <> 0 AND l.points <= 0) THEN 1 ELSE 0 END), 0) "
            "FROM cards c LEFT JOIN lots l ON l.number = c.number GROUP BY c.number, c.balance ORDER BY c.number"
        )
        faults = []
        for number, balance, total, bad in rows:
            if bad:
                faults.append(f"card {number}: {int(bad)} lots with the wrong sign")
            elif int(total) != int(balance):
                faults.append(f"card {number}: balance {int(balance)} differs from the sum of its lots {int(total)}")
        shown = faults[:FAULTS_SHOWN_MAX]
        return {"ok": not faults, "cards": len(rows), "faults": shown, "fault_count": len(faults)}

    def card_lots(self, number: str) -> list[dict[str, Any]]:
        """A card's lots, debt lot first, then soonest-expiring first, never-expiring last."""
        with self.transaction() as tx:
            points, origins = tx.read_lots([number]).get(number, ({}, {}))
        return [lots.public(key, lots.Lot(points[key], origins[key])) for key in sorted(points)]

    def card_listing(self, limit: int = EVENTS_LIST_MAX) -> list[dict[str, Any]]:
        """Every card with its balance and the points that expire soonest (summed over the lots
        with the earliest expiry; None when no lot expires). One query on the lots' key order."""
        rows = self._query(
            "SELECT c.number, c.type, c.cumulative, c.blocked, c.balance, c.shortfall, x.expires_ms, x.points "
            "FROM cards c LEFT JOIN (SELECT l.number, MIN(l.expires_ms) AS expires_ms, "
            "CAST(SUM(l.points) AS BIGINT) AS points FROM lots l WHERE l.expires_ms = (SELECT MIN(m.expires_ms) "
            "FROM lots m WHERE m.number = l.number AND m.expires_ms > 0 AND m.expires_ms < ?) GROUP BY l.number) x "
            "ON x.number = c.number ORDER BY c.number LIMIT ?",
            (lots.NEVER_MS, min(limit, EVENTS_LIST_MAX)),
        )
        out = []
        for number, kind, cumulative, blocked, balance, shortfall, expires_ms, points in rows:
            soonest = None if expires_ms is None else {"points": int(points), "expires_at": lots.ms_iso(expires_ms)}
            out.append(
                {
                    "number": number,
                    "type": kind,
                    "cumulative": int(cumulative),
                    "blocked": bool(blocked),
                    "balance": int(balance),
                    "shortfall": int(shortfall),
                    "expiring_soonest": soonest,
                }
            )
        return out


def open_store(dsn: str) -> Store:
    """`sqlite:///path/to/file.db` (or a plain path) → SQLite; `postgresql://…` → PostgreSQL."""
    if dsn.startswith(("postgresql://", "postgres://")):
        from central.store_pg import PgStore

        return PgStore(dsn)
    path = dsn.removeprefix("sqlite://")
    if not path:
        raise StoreError(f"database {dsn!r}: give sqlite:///path or postgresql://…")
    from central.store_sqlite import SqliteStore

    return SqliteStore(path)
