"""Embedded SQLite storage: one file, WAL, one writer (a lock serialises every transaction),
`synchronous=FULL` so a reply sent after commit survives power loss."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from central import admin_store, awards, cardfacts, console_db, coupons
from central.balances import CardState, Shortfall
from central.store import (
    CARD_COLUMNS,
    EXPIRY_COLUMNS,
    LOT_COLUMNS,
    OPENING_LOTS_SQL,
    ConflictError,
    IngestTx,
    Store,
    StoreError,
    card_from_row,
)
from protocol.wire import pack

BUSY_TIMEOUT_MS = 10_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS terminals (id TEXT PRIMARY KEY, key BLOB NOT NULL, created_ms INTEGER NOT NULL,
    old_key BLOB, old_key_until_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS streams (terminal TEXT NOT NULL, epoch INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, stored_ms INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (terminal, epoch)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS boundaries (terminal TEXT NOT NULL, epoch INTEGER NOT NULL,
    last_seq INTEGER NOT NULL, mac BLOB NOT NULL, PRIMARY KEY (terminal, epoch, last_seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (terminal TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, at_ms INTEGER NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (terminal, epoch, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cards (number TEXT PRIMARY KEY, type TEXT NOT NULL, holder TEXT NOT NULL,
    referrers BLOB NOT NULL, cumulative INTEGER NOT NULL, blocked INTEGER NOT NULL,
    balance INTEGER NOT NULL, shortfall INTEGER NOT NULL, cursor INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS cards_cursor ON cards (cursor);
CREATE TABLE IF NOT EXISTS shortfalls (terminal TEXT NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
    number TEXT NOT NULL, points INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feed (kind TEXT NOT NULL, key TEXT NOT NULL, body BLOB NOT NULL,
    cursor INTEGER NOT NULL, PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS feed_cursor ON feed (cursor);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('cursor', 0);
CREATE TABLE IF NOT EXISTS lots (number TEXT NOT NULL, expires_ms INTEGER NOT NULL, from_ms INTEGER NOT NULL,
    points INTEGER NOT NULL, source TEXT NOT NULL, terminal TEXT NOT NULL, epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lots_card ON lots (number);
CREATE TABLE IF NOT EXISTS receipts (receipt TEXT NOT NULL, terminal TEXT NOT NULL, epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL, PRIMARY KEY (receipt, terminal, epoch, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS lots_expiry ON lots (expires_ms);
CREATE TABLE IF NOT EXISTS expiries (number TEXT NOT NULL, expires_ms INTEGER NOT NULL, from_ms INTEGER NOT NULL,
    points INTEGER NOT NULL, at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS expiries_card ON expiries (number);
""" + cardfacts.SCHEMA_SQLITE + awards.SCHEMA_SQLITE + coupons.SCHEMA_SQLITE + admin_store.SCHEMA_SQLITE
SCHEMA += console_db.SCHEMA_SQLITE  # the web console's tables (central/web)


def card_params(card: CardState, cursor: int) -> tuple[Any, ...]:
    return (
        card.number,
        card.type,
        card.holder,
        pack(card.referrers),
        card.cumulative,
        int(card.blocked),
        card.balance,
        card.shortfall,
        cursor,
    )


class _Tx(IngestTx):
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    PARAM = "?"

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return list(self.db.execute(sql.replace("?", self.PARAM), params).fetchall())

    def next_cursors(self, count: int) -> int:
        """Reserve `count` cursors; returns the first."""
        (value,) = self.db.execute(
            "UPDATE counters SET value = value + ? WHERE name = 'cursor' RETURNING value", (count,)
        ).fetchone()
        return int(value) - count + 1

    def put_feed(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Feed items (key, body) inside this transaction, each under a fresh cursor."""
        if not items:
            return
        first = self.next_cursors(len(items))
        self.db.executemany(
            "INSERT OR REPLACE INTO feed VALUES (?, ?, ?, ?)",
            [(kind, key, pack(body), first + i) for i, (key, body) in enumerate(items)],
        )

    def lock_stream(self, terminal: str, epoch: int) -> int:
        self.db.execute("INSERT OR IGNORE INTO streams (terminal, epoch, last_seq) VALUES (?, ?, 0)", (terminal, epoch))
        (last,) = self.db.execute(
            "SELECT last_seq FROM streams WHERE terminal = ? AND epoch = ?", (terminal, epoch)
        ).fetchone()
        return int(last)

    def insert_events(self, terminal: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            self.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        except sqlite3.IntegrityError as exc:
            raise ConflictError(f"terminal {terminal}: an event id is already stored ({exc})") from None

    def insert_receipts(self, rows: list[tuple[str, str, int, int]]) -> None:
        self.db.executemany("INSERT INTO receipts VALUES (?, ?, ?, ?)", rows)

    def lock_cards(self, numbers: list[str]) -> dict[str, CardState]:
        found: dict[str, CardState] = {n: CardState(n) for n in numbers}
        for start in range(0, len(numbers), 500):  # SQLite's bound-parameter limit
            chunk = numbers[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT {CARD_COLUMNS} FROM cards WHERE number IN ({marks})", chunk):
                found[row[0]] = card_from_row(row)
        return found

    def save_cards(self, cards: list[CardState]) -> None:
        if not cards:
            return
        first = self.next_cursors(len(cards))
        self.db.executemany(
            f"INSERT INTO cards ({CARD_COLUMNS}, cursor) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (number) "
            "DO UPDATE SET type = excluded.type, holder = excluded.holder, referrers = excluded.referrers, "
            "cumulative = excluded.cumulative, blocked = excluded.blocked, balance = excluded.balance, "
            "shortfall = excluded.shortfall, cursor = excluded.cursor",
            [card_params(c, first + i) for i, c in enumerate(cards)],
        )

    def _lot_rows(self, numbers: list[str]) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(numbers), 500):  # SQLite's bound-parameter limit
            chunk = numbers[start : start + 500]
            sql = f"SELECT {LOT_COLUMNS} FROM lots WHERE number IN ({','.join('?' * len(chunk))})"
            rows += self.db.execute(sql, chunk).fetchall()
        return rows

    def _delete_lots(self, numbers: list[str]) -> None:
        self.db.executemany("DELETE FROM lots WHERE number = ?", [(n,) for n in numbers])

    def _append_lots(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany(f"INSERT INTO lots ({LOT_COLUMNS}) VALUES ({','.join('?' * 8)})", rows)

    def insert_shortfalls(self, terminal: str, epoch: int, shortfalls: list[Shortfall]) -> None:
        self.db.executemany(
            "INSERT INTO shortfalls VALUES (?, ?, ?, ?, ?)",
            [(terminal, epoch, s.seq, s.number, s.points) for s in shortfalls],
        )

    def insert_expiries(self, rows: list[tuple[Any, ...]]) -> None:
        self.db.executemany(f"INSERT INTO expiries ({EXPIRY_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)

    def finish_batch(self, terminal: str, epoch: int, last_seq: int, mac: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO boundaries VALUES (?, ?, ?, ?)", (terminal, epoch, last_seq, mac))
        self.db.execute(
            "UPDATE streams SET last_seq = ?, stored_ms = ? WHERE terminal = ? AND epoch = ?",
            (last_seq, int(time.time() * 1000), terminal, epoch),
        )


class SqliteStore(Store):
    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {path}: cannot open: {exc}") from None
        self.lock = threading.Lock()
        self.migrate()

    def migrate(self) -> None:
        with self.lock:
            self.db.executescript(SCHEMA)
        with self.transaction() as tx:
            tx.db.execute(OPENING_LOTS_SQL)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield _Tx(self.db)
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[_Tx]:
        # A deferred transaction: WAL keeps its first read's snapshot for the rest of it (and
        # this process's other users wait on the lock meanwhile).
        with self.lock:
            self.db.execute("BEGIN")
            try:
                yield _Tx(self.db)
            finally:
                self.db.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.lock:
            return self.db.execute(sql, params).fetchall()

    def stream_state(self, terminal: str, epoch: int) -> tuple[int, bytes]:
        with self.transaction() as tx:
            last = tx.lock_stream(terminal, epoch)
            return last, tx.boundary(terminal, epoch, last) or b""

    def add_terminal(self, terminal: str, key: bytes) -> None:
        try:
            with self.lock:
                self.db.execute(
                    "INSERT INTO terminals (id, key, created_ms) VALUES (?, ?, ?)",
                    (terminal, key, int(time.time() * 1000)),
                )
        except sqlite3.IntegrityError:
            raise StoreError(f"terminal {terminal}: already registered (use rotate-key)") from None

    def set_key(self, terminal: str, key: bytes, grace_s: int) -> None:
        until_ms = int(time.time() * 1000) + grace_s * 1000
        with self.lock:
            changed = self.db.execute(
                "UPDATE terminals SET old_key = key, old_key_until_ms = ?, key = ? WHERE id = ?",
                (until_ms, key, terminal),
            ).rowcount
        if changed != 1:
            raise StoreError(f"terminal {terminal}: not registered")

    def publish(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> int:
        with self.transaction() as tx:
            first = tx.next_cursors(len(items))
            tx.db.executemany(
                "INSERT OR REPLACE INTO feed VALUES (?, ?, ?, ?)",
                [(kind, key, pack(body), first + i) for i, (key, body) in enumerate(items)],
            )
            return first + len(items) - 1
