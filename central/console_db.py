"""The web console's tables and reads, the same SQL on SQLite and PostgreSQL (the driver's
placeholder aside): console users, their sessions, the audit trail of every privileged write,
uploaded drafts waiting to be published, and the console's views of cards and terminals.

The tables join the store's schema (`store_sqlite.SCHEMA`, `store_pg.SCHEMA`), so `migrate`
creates them. Writes run in `Store.transaction()` through `IngestTx._rows`; `RETURNING` keeps
both drivers' fetchall happy. A session row holds the SHA-256 of the cookie's token, never the
token. Limits: `DRAFTS_KEPT_MAX`, `AUDIT_SHOWN_MAX`, `HISTORY_SCANNED_MAX` (events read for a card's
history: those whose body holds its number), `REGISTRATIONS_SCANNED_MAX` (a phone search).
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from central import admin_store, lots
from central.store import IngestTx, Store, StoreError
from protocol import wire

ROLES = ("viewer", "support", "marketing", "admin")  # each may do what the ones before it may
NAME_PATTERN = re.compile(r"[a-z][a-z0-9._-]{0,31}")
DRAFTS_KEPT_MAX = 16
AUDIT_SHOWN_MAX = 500
AUDIT_DETAIL_CHARS_MAX = 500
HISTORY_SCANNED_MAX = 1_000
HISTORY_SHOWN_MAX = 100
REGISTRATIONS_SCANNED_MAX = 200_000
MATCHES_MAX = 50
SHORTFALLS_SHOWN_MAX = 1_000
_APPLIED = re.compile(r"central-([0-9]{1,19})-")

_TABLES = """
CREATE TABLE IF NOT EXISTS console_users (name TEXT PRIMARY KEY, role TEXT NOT NULL, hash TEXT NOT NULL,
    created_ms {int} NOT NULL);
CREATE TABLE IF NOT EXISTS console_sessions (token_sha TEXT PRIMARY KEY, name TEXT NOT NULL, csrf TEXT NOT NULL,
    expires_ms {int} NOT NULL);
CREATE TABLE IF NOT EXISTS console_audit (id {serial} PRIMARY KEY, at_ms {int} NOT NULL, actor TEXT NOT NULL,
    role TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS console_drafts (id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL,
    body {blob} NOT NULL, actor TEXT NOT NULL, at_ms {int} NOT NULL);
CREATE INDEX IF NOT EXISTS events_applied ON events (type, terminal, epoch, seq) WHERE type = 'update_applied';
"""
SCHEMA_SQLITE = _TABLES.format(int="INTEGER", serial="INTEGER", blob="BLOB")
SCHEMA_PG = _TABLES.format(int="BIGINT", serial="BIGSERIAL", blob="BYTEA")
TABLES = ("console_users", "console_sessions", "console_audit", "console_drafts")


class ConsoleError(Exception):
    """A console request the store will not carry out; the message says why."""


@dataclass(frozen=True)
class User:
    name: str
    role: str

    def may(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def now_ms() -> int:
    return int(time.time() * 1000)


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise ConsoleError(f"user name {name[:40]!r}: 1..32 of a-z 0-9 . _ -, starting with a letter")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConsoleError(f"role {role[:40]!r}: one of {', '.join(ROLES)}")
    return role


def audit(tx: IngestTx, actor: User, action: str, target: str, detail: str) -> None:
    """One audit row, inside the transaction of the change it records."""
    tx._rows(
        "INSERT INTO console_audit (at_ms, actor, role, action, target, detail) VALUES (?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        (now_ms(), actor.name, actor.role, action, target[:200], detail[:AUDIT_DETAIL_CHARS_MAX]),
    )


def add_user(store: Store, name: str, role: str, password_hash: str, by: User) -> None:
    check_name(name)
    check_role(role)
    with store.transaction() as tx:
        if tx._rows("SELECT name FROM console_users WHERE name = ?", (name,)):
            raise ConsoleError(f"user {name}: already exists")
        tx._rows("INSERT INTO console_users VALUES (?, ?, ?, ?) RETURNING name", (name, role, password_hash, now_ms()))
        audit(tx, by, "user_add", name, f"role {role}")


def users(store: Store) -> list[dict[str, Any]]:
    rows = store._query("SELECT name, role, created_ms FROM console_users ORDER BY name")
    return [{"name": n, "role": r, "created": lots.ms_iso(int(c))} for n, r, c in rows]


def password_hash(store: Store, name: str) -> tuple[User, str] | None:
    rows = store._query("SELECT name, role, hash FROM console_users WHERE name = ?", (name,))
    return (User(rows[0][0], rows[0][1]), rows[0][2]) if rows else None


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, user: User, token: str, csrf: str, ttl_ms: int) -> None:
    with store.transaction() as tx:
        tx._rows("DELETE FROM console_sessions WHERE expires_ms < ? RETURNING name", (now_ms(),))
        tx._rows("INSERT INTO console_sessions VALUES (?, ?, ?, ?) RETURNING name",
                 (_sha(token), user.name, csrf, now_ms() + ttl_ms))


def session(store: Store, token: str) -> tuple[User, str] | None:
    """(user, csrf token) of a live session; the user's role as it is now."""
    rows = store._query(
        "SELECT u.name, u.role, s.csrf FROM console_sessions s JOIN console_users u ON u.name = s.name "
        "WHERE s.token_sha = ? AND s.expires_ms > ?",
        (_sha(token), now_ms()),
    )
    return (User(rows[0][0], rows[0][1]), rows[0][2]) if rows else None


def close_session(store: Store, token: str) -> None:
    with store.transaction() as tx:
        tx._rows("DELETE FROM console_sessions WHERE token_sha = ? RETURNING name", (_sha(token),))


def audit_rows(store: Store, limit: int = AUDIT_SHOWN_MAX) -> list[dict[str, Any]]:
    rows = store._query(
        "SELECT at_ms, actor, role, action, target, detail FROM console_audit ORDER BY id DESC LIMIT ?",
        (min(limit, AUDIT_SHOWN_MAX),),
    )
    keys = ("at", "actor", "role", "action", "target", "detail")
    return [dict(zip(keys, (lots.ms_iso(int(r[0])), *r[1:]), strict=True)) for r in rows]


def log_action(store: Store, actor: User, action: str, target: str, detail: str) -> None:
    """An audit row of its own (for changes made in several transactions, e.g. a catalog)."""
    with store.transaction() as tx:
        audit(tx, actor, action, target, detail)


# drafts: an upload checked and waiting for its preview and publish
def put_draft(store: Store, kind: str, name: str, body: bytes, actor: User) -> str:
    draft = hashlib.sha256(kind.encode() + b"\0" + body).hexdigest()
    with store.transaction() as tx:
        tx._rows("DELETE FROM console_drafts WHERE id = ? RETURNING id", (draft,))
        tx._rows("INSERT INTO console_drafts VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                 (draft, kind, name[:200], body, actor.name, now_ms()))
        old = tx._rows("SELECT id FROM console_drafts ORDER BY at_ms DESC, id LIMIT ? OFFSET ?",
                       (1_000, DRAFTS_KEPT_MAX))
        for (stale,) in old:
            tx._rows("DELETE FROM console_drafts WHERE id = ? RETURNING id", (stale,))
    return draft


def draft(store: Store, kind: str, draft_id: str) -> tuple[str, bytes] | None:
    """(file name, body) of a draft of this kind."""
    if not re.fullmatch(r"[0-9a-f]{64}", draft_id):
        return None
    rows = store._query("SELECT name, body FROM console_drafts WHERE id = ? AND kind = ?", (draft_id, kind))
    return (str(rows[0][0]), bytes(rows[0][1])) if rows else None


# cards
def block_card(store: Store, number: str, blocked: bool, actor: User, reason: str) -> None:
    """Block or unblock a card in one transaction with its audit row (the admin API's write:
    a fresh feed cursor, so terminals get it; its lots untouched)."""
    with store.transaction() as tx:
        if not tx._rows("SELECT number FROM cards WHERE number = ?", (number,)):
            raise ConsoleError(f"card {number}: unknown to the central server; nothing changed")
        admin_store.set_blocked(tx, number, blocked)
        audit(tx, actor, "card_block" if blocked else "card_unblock", number, reason)


def _holding(store: Store) -> str:
    """SQL narrowing events to those whose msgpack body holds `text` packed (then each is read)."""
    return "instr(body, ?) > 0" if store.name == "sqlite" else "position(?::bytea in body) > 0"


def cards_by_phone(store: Store, digits: str) -> list[dict[str, Any]]:
    """Cards registered at a kiosk to this phone (the `card_registered` events), phones masked."""
    rows = store._query(  # the registrations' partial index (central/admin_store.py), narrowed by the digits
        f"SELECT body FROM events WHERE type = 'card_registered' AND {_holding(store)} LIMIT ?",
        (wire.pack(digits), REGISTRATIONS_SCANNED_MAX),
    )
    found = []
    for (body,) in rows:
        event = wire.unpack(bytes(body), wire.BATCH_BYTES_MAX)
        if event.get("phone") == digits:
            found.append({"card": event["card"], "phone": event["phone_masked"], "store": event.get("store", ""),
                          "at": event.get("at", "")})
            if len(found) >= MATCHES_MAX:
                break
    return found


def card_history(store: Store, number: str) -> list[dict[str, Any]]:
    """The newest events that moved or named this card, newest first (the SQL keeps the events
    whose body holds the number, at most `HISTORY_SCANNED_MAX`; each is then read); personal
    data (a registration's phone) left out."""
    rows = store._query(
        f"SELECT terminal, seq, type, at_ms, body FROM events WHERE {_holding(store)} "
        "ORDER BY at_ms DESC LIMIT ?", (wire.pack(number), HISTORY_SCANNED_MAX),
    )
    out = []
    for terminal, seq, kind, at_ms, body in rows:
        event = wire.unpack(bytes(body), wire.BATCH_BYTES_MAX)
        deltas = event.get("deltas") or {}
        if event.get("card") != number and number not in deltas:
            continue
        out.append({"at": lots.ms_iso(int(at_ms)) if at_ms else "", "terminal": terminal, "seq": int(seq),
                    "type": kind, "points": deltas.get(number, 0), "what": _what(event)})
        if len(out) >= HISTORY_SHOWN_MAX:
            break
    return out


def _what(event: dict[str, Any]) -> str:
    kind = event.get("type")
    if kind == "sale":
        return f"receipt {event.get('receipt')}: total {event.get('total')}, redeemed {event.get('redeemed')}, " \
               f"accrued {event.get('accrued')}"
    if kind == "return":
        return f"return {event.get('return')} of {event.get('receipt')}: money {event.get('money')}"
    if kind == "adjustment":
        return f"{event.get('technician')}: {event.get('reason')}"
    if kind == "card_registered":
        return f"registered at store {event.get('store')}, phone {event.get('phone_masked')}"
    return ""


def shortfalls(store: Store) -> list[dict[str, Any]]:
    rows = store._query(
        f"SELECT terminal, epoch, seq, number, points FROM shortfalls ORDER BY {store.SHORTFALL_ORDER} DESC LIMIT ?",
        (SHORTFALLS_SHOWN_MAX,),
    )
    return [dict(zip(("terminal", "epoch", "seq", "card", "points"), r, strict=True)) for r in rows]


def terminals(store: Store) -> list[dict[str, Any]]:
    """Every terminal: its stream, last batch, newest event, key rotation and the feed it applied."""
    grace = {str(t): int(u) for t, u in store._query("SELECT id, old_key_until_ms FROM terminals")}
    out = []
    for row in store.terminals():
        terminal = row["terminal"]
        newest = applied = None
        if row["epoch"] is not None and row["acked_seq"]:
            found = store._query("SELECT at_ms FROM events WHERE terminal = ? AND epoch = ? AND seq = ?",
                                 (terminal, row["epoch"], row["acked_seq"]))
            newest = int(found[0][0]) if found and found[0][0] else None
        last = store._query(
            "SELECT body FROM events WHERE type = 'update_applied' AND terminal = ? ORDER BY epoch DESC, seq DESC "
            "LIMIT 1", (terminal,))
        if last:
            match = _APPLIED.match(str(wire.unpack(bytes(last[0][0]), wire.BATCH_BYTES_MAX).get("batch", "")))
            applied = int(match.group(1)) if match else None
        until = grace.get(terminal, 0)
        out.append({**row, "created": lots.ms_iso(row["created_ms"]),
                    "last_batch": lots.ms_iso(row["last_batch_ms"]) if row["last_batch_ms"] else None,
                    "newest_event": lots.ms_iso(newest) if newest else None, "applied_cursor": applied,
                    "old_key_until": lots.ms_iso(until) if until > now_ms() else None})
    return out


def feed_head(store: Store) -> int:
    return store.feed_head()


__all__ = ["ROLES", "ConsoleError", "StoreError", "User"]
