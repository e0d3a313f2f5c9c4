"""The admin API's tables and writes on the central store (SQLite and PostgreSQL, the same SQL
but for the driver's placeholder): tokens, idempotent requests, card enrolment and blocking.

    admin_tokens   (name, hash, scopes, created_ms, revoked_ms)   # only a SHA-256 of the token
    admin_requests (token, key, digest, status, reply, method, path, at_ms)   # one row a write

Tokens are 256 random bits (`TOKEN_PREFIX` + URL-safe base64), shown once by `posterm-central
token add`; the store keeps their SHA-256 (a slow password hash buys nothing against a guess of
256 random bits, and a lookup stays one indexed read). A revoked token stays listed, refused.

Every write is one transaction that also records its request row: the token's name (who did
it), its `Idempotency-Key`, the digest of method + path + body, and the reply. The key row is
inserted first (`ON CONFLICT DO NOTHING`), so a second request with the same key waits for the
first to commit (PostgreSQL: the unique index; SQLite: the single writer) and then finds its
reply: the same body → the same stored reply, another body → `IdempotencyMismatch`. A refused
write rolls back whole, its key included. Rows older than `REQUESTS_KEEP_MS` are pruned by
later writes.

A card's masked phone comes from the kiosk's `card_registered` events; a partial index holds
only those rows (`events_registrations`), so a lookup reads registrations, not the events table,
and ingest pays for it only on registrations.

Awards (`POST /admin/v1/cards/{n}/awards`) are central/awards.py's grants inside the same
transaction (`award`): the program's dates and per-card limit, recorded in `awards` too.

Card writes are the ones `posterm-central publish cards` makes (`Store.put_cards`): the card's
row is locked, its lots move with `central.lots` (a balance opens a lot: dateless or expiring),
`save_with_lots` writes it under a fresh feed cursor, so it reaches every terminal through the
updates feed. Blocking locks the card, flips `blocked` and saves it (a fresh cursor, the lots
untouched).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from central import awards, cardfacts, lots
from central.balances import CardState
from central.lots import Origin
from central.store import IngestTx, Store, StoreError
from protocol import wire

SCHEMA_SQLITE = """
CREATE TABLE IF NOT EXISTS admin_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,
    created_ms INTEGER NOT NULL, revoked_ms INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS admin_requests (token TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
    status INTEGER NOT NULL, reply BLOB NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, at_ms INTEGER NOT NULL,
    PRIMARY KEY (token, key));
CREATE INDEX IF NOT EXISTS admin_requests_at ON admin_requests (at_ms);
CREATE INDEX IF NOT EXISTS events_registrations ON events (at_ms) WHERE type = 'card_registered';
"""
SCHEMA_PG = """
CREATE TABLE IF NOT EXISTS admin_tokens (name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, scopes TEXT NOT NULL,
    created_ms BIGINT NOT NULL, revoked_ms BIGINT NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS admin_requests (token TEXT NOT NULL, key TEXT NOT NULL, digest TEXT NOT NULL,
    status INTEGER NOT NULL, reply BYTEA NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, at_ms BIGINT NOT NULL,
    PRIMARY KEY (token, key));
CREATE INDEX IF NOT EXISTS admin_requests_at ON admin_requests (at_ms);
CREATE INDEX IF NOT EXISTS events_registrations ON events (at_ms) WHERE type = 'card_registered';
"""
TABLES = ("admin_tokens", "admin_requests")

SCOPES = ("cards:read", "cards:write", "awards:write", "coupons:write", "reports:read")
TOKEN_PREFIX = "pta_"
TOKEN_BYTES = 32
TOKEN_CHARS_MAX = 128
TOKEN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._:-]{1,64}")
REQUESTS_KEEP_MS = 30 * 86_400_000
PHONE_CANDIDATES_MAX = 50
WRITES_LISTED_MAX = 10_000
PENDING = 0  # a request row's status while its transaction runs
REPLY_BYTES_MAX = 1024 * 1024


class AdminError(Exception):
    """A refusal of the admin API or the token CLI: an HTTP status, a code and one line."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class IdempotencyMismatch(AdminError):
    status = 422
    code = "idempotency_mismatch"


@dataclass(frozen=True)
class Token:
    name: str
    scopes: tuple[str, ...]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------ tokens


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        given = ", ".join(s[:40] for s in scopes) or "none"
        raise AdminError(f"scopes must be some of {', '.join(SCOPES)}; got {given}")
    return tuple(sorted(set(scopes)))


def add_token(store: Store, name: str, scopes: list[str]) -> str:
    """A new token (returned once, never stored) named `name` with `scopes`."""
    if not TOKEN_NAME.fullmatch(name or ""):
        raise AdminError(f"token name {name[:70]!r}: 1..64 of A-Z a-z 0-9 . _ - (a letter or digit first)")
    wanted = check_scopes(scopes)
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    with store.transaction() as tx:
        added = tx._rows(
            "INSERT INTO admin_tokens (name, hash, scopes, created_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO NOTHING RETURNING name",
            (name, token_hash(token), " ".join(wanted), now_ms()),
        )
    if not added:
        raise AdminError(f"token {name}: already exists (revoke it, or pick another name)", 409, "conflict")
    return token


def list_tokens(store: Store) -> list[dict[str, Any]]:
    rows = store._query("SELECT name, scopes, created_ms, revoked_ms FROM admin_tokens ORDER BY name")
    return [{"name": str(n), "scopes": str(s).split(), "created": lots.ms_iso(int(c)),
             "revoked": lots.ms_iso(int(r)) if int(r) else None} for n, s, c, r in rows]


def revoke_token(store: Store, name: str) -> None:
    with store.transaction() as tx:
        done = tx._rows("UPDATE admin_tokens SET revoked_ms = ? WHERE name = ? AND revoked_ms = 0 RETURNING name",
                        (now_ms(), name))
    if not done:
        raise AdminError(f"token {name[:70]}: no such token, or revoked already", 404, "not_found")


def find_token(store: Store, token: str) -> Token | None:
    """The live token of this secret, or None (unknown, revoked, malformed)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > TOKEN_CHARS_MAX:
        return None
    rows = store._query("SELECT name, scopes FROM admin_tokens WHERE hash = ? AND revoked_ms = 0",
                        (token_hash(token),))
    return Token(str(rows[0][0]), tuple(str(rows[0][1]).split())) if rows else None


# ------------------------------------------------------------------ idempotent writes


@dataclass(frozen=True)
class Write:
    """Who asks what: the token's name, the client's key and the request it keys."""

    token: str
    key: str
    method: str
    path: str
    body: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(b"\0".join([self.method.encode(), self.path.encode(), self.body])).hexdigest()


Reply = tuple[int, dict[str, Any]]


def idempotent(store: Store, write: Write, change: Callable[[IngestTx], Reply]) -> tuple[Reply, bool]:
    """(reply, replayed): `change(tx)` once per key, in the transaction that records its reply;
    a later request with the key gets the stored reply (replayed=True) or IdempotencyMismatch."""
    now = now_ms()
    with store.transaction() as tx:
        fresh = tx._rows(
            "INSERT INTO admin_requests (token, key, digest, status, reply, method, path, at_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (token, key) DO NOTHING RETURNING key",
            (write.token, write.key, write.digest, PENDING, b"", write.method, write.path, now),
        )
        if not fresh:
            digest, status, reply = tx._rows(
                "SELECT digest, status, reply FROM admin_requests WHERE token = ? AND key = ?",
                (write.token, write.key),
            )[0]
            if digest != write.digest:
                raise IdempotencyMismatch(
                    f"Idempotency-Key {write.key} was used for another request (its method, path or body "
                    "differ); use a new key for a new request"
                )
            return (int(status), json.loads(bytes(reply))), True
        status, body = change(tx)
        stored = json.dumps(body, separators=(",", ":")).encode()
        if len(stored) > REPLY_BYTES_MAX:
            raise StoreError(f"admin reply of {len(stored)} bytes is over {REPLY_BYTES_MAX}")
        tx._rows(
            "UPDATE admin_requests SET status = ?, reply = ? WHERE token = ? AND key = ? RETURNING key",
            (status, stored, write.token, write.key),
        )
        tx._rows("DELETE FROM admin_requests WHERE at_ms < ? RETURNING key", (now - REQUESTS_KEEP_MS,))
    return (status, body), False


def writes(store: Store, limit: int = WRITES_LISTED_MAX) -> list[dict[str, Any]]:
    """The recorded writes, newest first: who (token), what (method, path), the status, when."""
    rows = store._query(
        "SELECT token, key, method, path, status, at_ms FROM admin_requests ORDER BY at_ms DESC, token, key LIMIT ?",
        (limit,),
    )
    return [{"token": t, "key": k, "method": m, "path": p, "status": int(s), "at": lots.ms_iso(int(a))}
            for t, k, m, p, s, a in rows]


# ------------------------------------------------------------------ cards


def _exists(tx: IngestTx, number: str) -> bool:
    # A stored card always has a feed cursor; PostgreSQL's lock_cards inserts a missing card with
    # cursor 0 before locking it, so cursor 0 means "not enrolled" on both databases.
    rows = tx._rows("SELECT cursor FROM cards WHERE number = ?", (number,))
    return bool(rows) and int(rows[0][0]) > 0


def enrol(tx: IngestTx, card: CardState, expires_ms: int | None, facts: dict[str, Any]) -> CardState:
    """Enrol a new card inside `tx` as `publish cards` would (Store.put_cards): its balance opens
    a lot (dateless, or expiring at `expires_ms`). An enrolled card → AdminError 409."""
    if _exists(tx, card.number):
        raise AdminError(f"card {card.number}: already enrolled", 409, "conflict")
    _, book = tx.lock_with_lots([card.number])
    if _exists(tx, card.number):  # enrolled meanwhile by another collector
        raise AdminError(f"card {card.number}: already enrolled", 409, "conflict")
    if card.balance > 0 and expires_ms is not None:
        lots.credit(book[card.number], card.balance, (expires_ms, 0), Origin("admin"))
    else:
        lots.move(book[card.number], card.balance, now_ms(), Origin("admin"))
    tx.save_with_lots([card], book)
    if facts:
        cardfacts.put(tx, {card.number: facts})
    return card


def set_blocked(tx: IngestTx, number: str, blocked: bool) -> CardState:
    """Block or unblock a card inside `tx`: a fresh feed cursor, so terminals get it. Unknown → 404."""
    if not _exists(tx, number):
        raise AdminError(f"card {number}: not enrolled", 404, "not_found")
    card = tx.lock_cards([number])[number]
    card.blocked = blocked
    tx.save_cards([card])
    return card


AWARD_STATUS_CODES = {400: "invalid", 404: "not_found", 409: "conflict"}


def award(tx: IngestTx, store: Store, number: str, award_id: str, write: Write, now: dt.datetime) -> dict[str, Any]:
    """Grant `award_id` of the published program to the card inside `tx` (central/awards.py's
    `grant_in_tx`, the card row locked, its lots and balance saved), by the token's name. The
    grant's own key is derived from the token and its Idempotency-Key. AwardError → AdminError."""
    try:
        if not _exists(tx, number):
            raise AdminError(f"award {award_id}: card {number} is not enrolled", 404, "not_found")
        found = awards.find_award(store.published_program(tx), award_id)
        cards, book = tx.lock_with_lots([number])
        key = "admin:" + hashlib.sha256(f"{write.token}\0{write.key}".encode()).hexdigest()[:40]
        at_ms = (now - lots._EPOCH) // lots._MS
        done = awards.grant_in_tx(tx, found, cards[number], book[number], key, write.token, now, at_ms)
        tx.save_with_lots([cards[number]], book)
    except awards.AwardError as exc:
        raise AdminError(str(exc), exc.status, AWARD_STATUS_CODES.get(exc.status, "conflict")) from None
    grant = done.as_dict()
    grant.pop("replayed", None)  # a replay is the Idempotency-Key's (header Idempotent-Replayed)
    return grant


def phone_masked(rows_of: Callable[[str, tuple[Any, ...]], list[Any]], dialect: str, number: str) -> str | None:
    """The masked phone of the card's newest `card_registered` event (a kiosk enrolment), if any;
    `rows_of` is a transaction's `_rows`, `dialect` the store's name. The bodies are msgpack: the
    card number's packed bytes narrow the rows in SQL, then each candidate is read."""
    needle = wire.pack(number)
    where = "instr(body, ?) > 0" if dialect == "sqlite" else "position(?::bytea in body) > 0"
    rows = rows_of(
        f"SELECT body FROM events WHERE type = 'card_registered' AND {where} ORDER BY at_ms DESC LIMIT ?",
        (needle, PHONE_CANDIDATES_MAX),
    )
    for (body,) in rows:
        event = wire.unpack(bytes(body), wire.BATCH_BYTES_MAX)
        if event.get("card") == number and isinstance(event.get("phone_masked"), str):
            return str(event["phone_masked"])
    return None

