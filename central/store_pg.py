"""PostgreSQL storage (psycopg 3) for a chain: several stateless collector processes share one
database. Dedup is by unique constraints; the stream row of a terminal is locked `FOR UPDATE`
for the ingest transaction; cards are locked in sorted order (no deadlocks); feed cursors come
from one sequence under a transaction-scoped advisory lock so they become visible in cursor
order (a feed reader never skips a cursor that commits late).

One connection per thread (the server runs store calls in a bounded thread pool).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from central import admin_store, awards, cardfacts, console_db, coupons
from central.balances import CardState, Shortfall
from central.store import (
    CARD_COLUMNS,
    EMPTY_LIST,
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

CURSOR_LOCK_ID = 0x706F7374  # "post": the advisory lock that orders feed cursors
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 30_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS terminals (id TEXT PRIMARY KEY, key BYTEA NOT NULL, created_ms BIGINT NOT NULL,
    old_key BYTEA, old_key_until_ms BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS streams (terminal TEXT NOT NULL, epoch BIGINT NOT NULL,
    last_seq BIGINT NOT NULL, stored_ms BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (terminal, epoch));
CREATE TABLE IF NOT EXISTS boundaries (terminal TEXT NOT NULL, epoch BIGINT NOT NULL,
    last_seq BIGINT NOT NULL, mac BYTEA NOT NULL, PRIMARY KEY (terminal, epoch, last_seq));
CREATE TABLE IF NOT EXISTS events (terminal TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
    id TEXT NOT NULL UNIQUE, type TEXT NOT NULL, at_ms BIGINT NOT NULL, body BYTEA NOT NULL,
    PRIMARY KEY (terminal, epoch, seq));
CREATE TABLE IF NOT EXISTS cards (number TEXT PRIMARY KEY, type TEXT NOT NULL, holder TEXT NOT NULL,
    referrers BYTEA NOT NULL, cumulative BIGINT NOT NULL, blocked BOOLEAN NOT NULL,
    balance BIGINT NOT NULL, shortfall BIGINT NOT NULL, cursor BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS cards_cursor ON cards (cursor);
CREATE TABLE IF NOT EXISTS shortfalls (terminal TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
    number TEXT NOT NULL, points BIGINT NOT NULL, id BIGSERIAL PRIMARY KEY);
CREATE TABLE IF NOT EXISTS feed (kind TEXT NOT NULL, key TEXT NOT NULL, body BYTEA NOT NULL,
    cursor BIGINT NOT NULL, PRIMARY KEY (kind, key));
CREATE INDEX IF NOT EXISTS feed_cursor ON feed (cursor);
CREATE SEQUENCE IF NOT EXISTS posterm_cursor;
CREATE TABLE IF NOT EXISTS lots (number TEXT NOT NULL, expires_ms BIGINT NOT NULL, from_ms BIGINT NOT NULL,
    points BIGINT NOT NULL, source TEXT NOT NULL, terminal TEXT NOT NULL, epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS lots_card ON lots (number);
CREATE TABLE IF NOT EXISTS receipts (receipt TEXT NOT NULL, terminal TEXT NOT NULL, epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL, PRIMARY KEY (receipt, terminal, epoch, seq));
CREATE INDEX IF NOT EXISTS lots_expiry ON lots (expires_ms);
CREATE TABLE IF NOT EXISTS expiries (number TEXT NOT NULL, expires_ms BIGINT NOT NULL, from_ms BIGINT NOT NULL,
    points BIGINT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS expiries_card ON expiries (number);
""" + cardfacts.SCHEMA_PG + awards.SCHEMA_PG + coupons.SCHEMA_PG + admin_store.SCHEMA_PG
SCHEMA += console_db.SCHEMA_PG  # the web console's tables (central/web)
TABLES = (
    "terminals", "streams", "boundaries", "events", "cards", "shortfalls", "feed", "lots", "receipts", "card_facts",
    "expiries", "awards", "coupons", "coupon_double_uses", *admin_store.TABLES, *console_db.TABLES, "schema_version",
)


SCHEMA_DIGEST = hashlib.sha256(SCHEMA.encode()).hexdigest()


def _one_line(exc: Exception) -> str:
    """libpq messages span lines; a refusal is one line."""
    return " ".join(str(exc).split())[:500]




class _Tx(IngestTx):
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    PARAM = "%s"

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return list(self.conn.execute(sql.replace("?", self.PARAM), params).fetchall())

    def cursor_lock(self) -> None:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (CURSOR_LOCK_ID,))

    def put_feed(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> None:
        """Feed items (key, body) inside this transaction, under the cursor lock (cursor order)."""
        if not items:
            return
        self.cursor_lock()
        self.conn.execute(
            "INSERT INTO feed SELECT %s, u.key, u.body, nextval('posterm_cursor') "
            "FROM unnest(%b::text[], %b::bytea[]) AS u(key, body) ON CONFLICT (kind, key) "
            "DO UPDATE SET body = excluded.body, cursor = excluded.cursor",
            (kind, [key for key, _ in items], [pack(body) for _, body in items]),
        )

    def lock_stream(self, terminal: str, epoch: int) -> int:
        # One round trip: create the stream or touch it — either way its row is locked now.
        row = self.conn.execute(
            "INSERT INTO streams (terminal, epoch, last_seq) VALUES (%s, %s, 0) ON CONFLICT (terminal, epoch) "
            "DO UPDATE SET last_seq = streams.last_seq RETURNING last_seq",
            (terminal, epoch),
        ).fetchone()
        assert row is not None  # INSERT … RETURNING always returns the row
        return int(row[0])

    def insert_events(self, terminal: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            with (
                self.conn.cursor() as cur,
                cur.copy("COPY events (terminal, epoch, seq, id, type, at_ms, body) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        except pg_errors.UniqueViolation as exc:
            raise ConflictError(
                f"terminal {terminal}: an event id is already stored ({exc.diag.message_detail})"
            ) from None

    def insert_receipts(self, rows: list[tuple[str, str, int, int]]) -> None:
        with self.conn.cursor() as cur, cur.copy("COPY receipts (receipt, terminal, epoch, seq) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _select_for_update(self, numbers: list[str], found: dict[str, CardState]) -> None:
        rows = self.conn.execute(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE number = ANY(%b) ORDER BY number FOR UPDATE",
            (numbers,),  # %b: binary parameters, no per-element text escaping of the arrays
        ).fetchall()
        for row in rows:
            found[row[0]] = card_from_row(row)

    def lock_cards(self, numbers: list[str]) -> dict[str, CardState]:
        found: dict[str, CardState] = {n: CardState(n) for n in numbers}
        if not numbers:
            return found
        self._select_for_update(numbers, found)
        missing = sorted(n for n, card in found.items() if not card.exists)
        if missing:
            # Create them (sorted; waiting on a concurrent creator) and lock them too, so two
            # collectors never both fold a new card from 0.
            self.conn.execute(
                "INSERT INTO cards SELECT u.number, '', '', %s, 0, false, 0, 0, 0 "
                "FROM unnest(%b::text[]) AS u(number) ORDER BY u.number ON CONFLICT DO NOTHING",
                (EMPTY_LIST, missing),
            )
            self._select_for_update(missing, found)
        return found

    def save_cards(self, cards: list[CardState]) -> None:
        """Every card exists and is locked (`lock_cards`): a plain UPDATE from arrays."""
        if not cards:
            return
        cards = sorted(cards, key=lambda c: c.number)
        self.cursor_lock()
        self.conn.execute(
            """UPDATE cards SET type = u.type, holder = u.holder, referrers = u.referrers,
                cumulative = u.cumulative, blocked = u.blocked, balance = u.balance, shortfall = u.shortfall,
                cursor = nextval('posterm_cursor')
            FROM (SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::bytea[], %b::bigint[],
                        %b::bool[], %b::bigint[], %b::bigint[])
                 AS v(number, type, holder, referrers, cumulative, blocked, balance, shortfall)
                 ORDER BY number) AS u
            WHERE cards.number = u.number""",
            (
                [c.number for c in cards],
                [c.type for c in cards],
                [c.holder for c in cards],
                [pack(c.referrers) if c.referrers else EMPTY_LIST for c in cards],
                [c.cumulative for c in cards],
                [c.blocked for c in cards],
                [c.balance for c in cards],
                [c.shortfall for c in cards],
            ),
        )

    def _lot_rows(self, numbers: list[str]) -> list[Any]:
        if not numbers:
            return []
        return self.conn.execute(f"SELECT {LOT_COLUMNS} FROM lots WHERE number = ANY(%b)", (numbers,)).fetchall()

    def _delete_lots(self, numbers: list[str]) -> None:
        self.conn.execute("DELETE FROM lots WHERE number = ANY(%b)", (numbers,))

    def _append_lots(self, rows: list[tuple[Any, ...]]) -> None:
        # COPY: a lot per sale is the bulk of the rows, and an append needs no conflict check
        with self.conn.cursor() as cur, cur.copy(f"COPY lots ({LOT_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def insert_shortfalls(self, terminal: str, epoch: int, shortfalls: list[Shortfall]) -> None:
        if shortfalls:
            with self.conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO shortfalls (terminal, epoch, seq, number, points) VALUES (%s, %s, %s, %s, %s)",
                    [(terminal, epoch, s.seq, s.number, s.points) for s in shortfalls],
                )

    def insert_expiries(self, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            with self.conn.cursor() as cur:
                cur.executemany(f"INSERT INTO expiries ({EXPIRY_COLUMNS}) VALUES (%s, %s, %s, %s, %s)", rows)

    def finish_batch(self, terminal: str, epoch: int, last_seq: int, mac: bytes) -> None:
        self.conn.execute(
            "WITH boundary AS (INSERT INTO boundaries VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING) "
            "UPDATE streams SET last_seq = %s, stored_ms = %s WHERE terminal = %s AND epoch = %s",
            (terminal, epoch, last_seq, mac, last_seq, int(time.time() * 1000), terminal, epoch),
        )


class PgStore(Store):
    name = "postgres"
    PARAM = "%s"
    SHORTFALL_ORDER = "id"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.local = threading.local()
        self.all_conns: list[psycopg.Connection[Any]] = []
        self.conns_lock = threading.Lock()
        try:
            self.migrate()
        except BaseException:
            self.close()  # a failed open leaves no connection behind
            raise

    def conn(self) -> psycopg.Connection[Any]:
        found: psycopg.Connection[Any] | None = getattr(self.local, "conn", None)
        if found is not None and not found.closed:
            return found
        try:
            conn = psycopg.connect(
                self.dsn,
                connect_timeout=CONNECT_TIMEOUT_S,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
            )
        except psycopg.Error as exc:
            raise StoreError(f"postgres: cannot connect: {_one_line(exc)}") from None
        self.local.conn = conn
        with self.conns_lock:
            self.all_conns.append(conn)
        return conn

    def migrate(self) -> None:
        conn = self.conn()
        with conn.transaction():
            # Two collectors starting at once must not race on CREATE … IF NOT EXISTS.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (CURSOR_LOCK_ID + 1,))
            # A store opened beside a running server (a CLI command) must not take the schema's
            # table locks: CREATE INDEX … IF NOT EXISTS locks `events` against the server's
            # ingest, in another order than the ingest takes them — a deadlock. So the schema
            # runs only when its digest changed. The opening lots always (row locks only, and
            # only for cards of a database from before lots).
            if not self._schema_current(conn):
                conn.execute(SCHEMA)
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (digest TEXT NOT NULL)")
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_DIGEST,))
            conn.execute(OPENING_LOTS_SQL)

    @staticmethod
    def _schema_current(conn: psycopg.Connection[Any]) -> bool:
        if conn.execute("SELECT to_regclass('schema_version')").fetchone() == (None,):
            return False
        return conn.execute("SELECT digest FROM schema_version").fetchall() == [(SCHEMA_DIGEST,)]

    def drop_all(self) -> None:
        """Tests only: an empty database."""
        conn = self.conn()
        with conn.transaction():
            conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)}")
            conn.execute("DROP SEQUENCE IF EXISTS posterm_cursor")

    def close(self) -> None:
        with self.conns_lock:
            for conn in self.all_conns:
                conn.close()
            self.all_conns.clear()

    @contextmanager
    def transaction(self) -> Iterator[_Tx]:
        conn = self.conn()
        try:
            with conn.transaction():
                yield _Tx(conn)
        except psycopg.Error as exc:
            # Lost connection, deadlock, timeout …: the transaction rolled back; the terminal
            # gets 503 and retries. A broken connection is dropped and reopened next time.
            if isinstance(exc, psycopg.OperationalError):
                conn.close()
            raise StoreError(f"postgres: {type(exc).__name__}: {_one_line(exc)}") from None

    @contextmanager
    def snapshot(self) -> Iterator[_Tx]:
        with self.transaction() as tx:
            tx.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield tx

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.transaction() as tx:
            return tx.conn.execute(sql, params).fetchall()

    def stream_state(self, terminal: str, epoch: int) -> tuple[int, bytes]:
        with self.transaction() as tx:
            last = tx.lock_stream(terminal, epoch)
            return last, tx.boundary(terminal, epoch, last) or b""

    def add_terminal(self, terminal: str, key: bytes) -> None:
        with self.transaction() as tx:
            found = tx.conn.execute(
                "INSERT INTO terminals (id, key, created_ms) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (terminal, key, int(time.time() * 1000)),
            ).rowcount
        if found != 1:
            raise StoreError(f"terminal {terminal}: already registered (use rotate-key)")

    def set_key(self, terminal: str, key: bytes, grace_s: int) -> None:
        until_ms = int(time.time() * 1000) + grace_s * 1000
        with self.transaction() as tx:
            changed = tx.conn.execute(
                "UPDATE terminals SET old_key = key, old_key_until_ms = %s, key = %s WHERE id = %s",
                (until_ms, key, terminal),
            ).rowcount
        if changed != 1:
            raise StoreError(f"terminal {terminal}: not registered")

    def publish(self, kind: str, items: list[tuple[str, dict[str, Any]]]) -> int:
        with self.transaction() as tx:
            tx.cursor_lock()
            row = tx.conn.execute(
                "WITH put AS (INSERT INTO feed SELECT %s, u.key, u.body, nextval('posterm_cursor') "
                "FROM unnest(%b::text[], %b::bytea[]) AS u(key, body) ON CONFLICT (kind, key) "
                "DO UPDATE SET body = excluded.body, cursor = excluded.cursor RETURNING cursor) "
                "SELECT max(cursor) FROM put",
                (kind, [key for key, _ in items], [pack(body) for _, body in items]),
            ).fetchone()
            assert row is not None  # an aggregate always returns a row
            return int(row[0])
