"""Coupon codes on the central server (spec §13): the chain's authority for every code.

Series live in the published rules file (`[[coupon_series]]`: one file describes the program);
codes live in the `coupons` table, one row a code: its series, its own last day (`valid_to`,
null = the series' dates only), its state (unspent | spent | void), who issued it (a terminal id,
or `central`) with the issuing receipt, and the sale that spent it. Every change of a row goes
out in the updates feed as a `coupon` item (compacted by code, like products), so terminals know
the codes and their spent state.

Where rows come from:
  - `issue(store, series, count)`: codes for marketing (`posterm-central coupons issue`);
  - a sale event's `issued_coupons`: the codes a terminal made at a sale (unique by their format,
    protocol/coupons.py), registered as they arrive;
  - a sale event's `coupons` (the codes the sale used): single-use ones are marked spent. A code
    already spent by another sale (two offline terminals) leaves both sales standing and is
    booked in `coupon_double_uses`, as double-spent points are booked as shortfalls; so is a
    code spent after central voided it. A code central did not know yet (issued by a terminal
    whose sale has not arrived) is recorded spent and completed when its issuing sale arrives;
  - a return event's `coupons_restored` (unspent again, unless another sale also spent it) and
    `coupons_voided` (void, unless it was spent meanwhile).
Everything happens inside the ingest transaction of the events (`book`), so a redelivered batch
(nothing new stored) changes nothing. The same SQL runs on SQLite and PostgreSQL.
Limits: `ISSUE_COUNT_MAX` codes an issue call, `LIST_MAX` rows a listing.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from core.errors import PricingError
from core.rules import compile_rules, parse_rules_text
from protocol import coupons as codes

ISSUE_COUNT_MAX = 10_000
ISSUE_TRIES_MAX = 8  # a random code already taken: draw again (1 in 2^50)
LIST_MAX = 100_000
COLUMNS = "code, series, valid_to, state, issued_by, receipt, spent_by, spent_receipt, created_ms"
_TABLES = """
CREATE TABLE IF NOT EXISTS coupons (code TEXT PRIMARY KEY, series TEXT NOT NULL, valid_to TEXT,
    state TEXT NOT NULL, issued_by TEXT NOT NULL, receipt TEXT NOT NULL, spent_by TEXT NOT NULL,
    spent_receipt TEXT NOT NULL, created_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS coupon_double_uses (code TEXT NOT NULL, terminal TEXT NOT NULL, epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL, receipt TEXT NOT NULL, first_terminal TEXT NOT NULL, first_receipt TEXT NOT NULL,
    reason TEXT NOT NULL, at_ms BIGINT NOT NULL, PRIMARY KEY (terminal, epoch, seq, code));
"""
SCHEMA_SQLITE = _TABLES
SCHEMA_PG = _TABLES


class CouponError(Exception):
    """A refused coupon command (unknown series, count out of range)."""


def published_series(store: Any) -> dict[str, Any]:
    """The coupon series of the rules central last published ({id: core CouponSeries})."""
    items = store._query("SELECT body FROM feed WHERE kind = 'rules' AND key = 'rules'")
    if not items:
        return {}
    from protocol.wire import unpack

    rules = unpack(bytes(items[0][0]), 4 * 1024 * 1024, 2 * 1024 * 1024)
    try:
        program = compile_rules(parse_rules_text(rules["text"], "published rules"), "published rules")
    except PricingError as exc:  # refused at publish already; a database edited by hand
        raise CouponError(f"the published rules do not compile: {exc}") from None
    return {s.id: s for s in program.coupon_series}


def _item(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return row["code"], {"code": row["code"], "series": row["series"], "valid_to": row["valid_to"],
                         "state": row["state"]}


def issue(store: Any, series: str, count: int = 1, valid_days: int | None = None,
          now_ms: int | None = None) -> list[str]:
    """`count` new codes of a published series, registered and fed to every terminal in one
    transaction; returns them. `valid_days`: the codes' own last day is today + valid_days (UTC);
    None: the series' dates only."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    valid_to = check_issue(published_series(store), series, count, valid_days, now_ms)
    with store.transaction() as tx:
        return issue_in_tx(tx, series, count, valid_to, now_ms)


def check_issue(known: dict[str, Any], series: str, count: int, valid_days: int | None, now_ms: int) -> str | None:
    """Refuse (CouponError) an issue `issue` would refuse; returns the codes' own last day."""
    if series not in known:
        listed = ", ".join(sorted(known)) or "none: publish rules with [[coupon_series]] first"
        raise CouponError(f"coupon series {series!r} is not in the published rules (series: {listed})")
    if not 1 <= count <= ISSUE_COUNT_MAX:
        raise CouponError(f"--count must be 1..{ISSUE_COUNT_MAX}, got {count}")
    if valid_days is not None and not 1 <= valid_days <= 3660:
        raise CouponError(f"--valid-days must be 1..3660, got {valid_days}")
    if valid_days is None:
        return None
    today = dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
    return (today + dt.timedelta(days=valid_days)).isoformat()


def issue_in_tx(tx: Any, series: str, count: int, valid_to: str | None, now_ms: int) -> list[str]:
    """The codes of a checked issue (`check_issue`), inside the caller's transaction (the admin
    API records its reply in the same one)."""
    made: list[dict[str, Any]] = []
    for _ in range(count):
        for _ in range(ISSUE_TRIES_MAX):
            row = _new_row(codes.central_code(), series, valid_to, "central", "", now_ms)
            if _insert(tx, row):
                made.append(row)
                break
        else:
            raise CouponError(f"no free code after {ISSUE_TRIES_MAX} draws")
    tx.put_feed("coupon", [_item(r) for r in made])
    return [r["code"] for r in made]


def _new_row(code: str, series: str, valid_to: str | None, issued_by: str, receipt: str,
             now_ms: int) -> dict[str, Any]:
    return {"code": code, "series": series, "valid_to": valid_to, "state": "unspent", "issued_by": issued_by,
            "receipt": receipt, "spent_by": "", "spent_receipt": "", "created_ms": now_ms}


def _insert(tx: Any, row: dict[str, Any]) -> bool:
    done = tx._rows(
        f"INSERT INTO coupons ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO NOTHING "
        "RETURNING code",
        tuple(row[k] for k in COLUMNS.split(", ")),
    )
    return bool(done)


def _read(tx: Any, code: str) -> dict[str, Any] | None:
    rows = tx._rows(f"SELECT {COLUMNS} FROM coupons WHERE code = ?", (code,))
    return dict(zip(COLUMNS.split(", "), rows[0], strict=True)) if rows else None


def _write(tx: Any, row: dict[str, Any]) -> None:
    tx._rows(
        "UPDATE coupons SET series = ?, valid_to = ?, state = ?, issued_by = ?, receipt = ?, spent_by = ?, "
        "spent_receipt = ? WHERE code = ? RETURNING code",
        (row["series"], row["valid_to"], row["state"], row["issued_by"], row["receipt"], row["spent_by"],
         row["spent_receipt"], row["code"]),
    )


def _has_coupons(event: dict[str, Any]) -> bool:
    return bool(event.get("coupons") or event.get("issued_coupons") or event.get("coupons_restored")
                or event.get("coupons_voided"))


def book(tx: Any, terminal: str, events: list[dict[str, Any]]) -> int:
    """Register, spend, restore and void the codes of newly stored events, inside the ingest
    transaction `tx`; returns the double uses booked. Events without coupon fields cost a look."""
    mine = [e for e in events if e["type"] in ("sale", "return") and _has_coupons(e)]
    if not mine:
        return 0
    changed: dict[str, dict[str, Any]] = {}
    doubles = 0
    for event in mine:
        if event["type"] == "sale":
            for issued in event.get("issued_coupons", []):
                changed[issued["code"]] = _register(tx, terminal, event, issued)
            for used in event.get("coupons", []):
                if used.get("single_use"):
                    row, double = _spend(tx, terminal, event, used)
                    changed[row["code"]], doubles = row, doubles + double
        else:
            for code in event.get("coupons_restored", []):
                row = _restore(tx, code, event["receipt"])
                if row is not None:
                    changed[code] = row
            for code in event.get("coupons_voided", []):
                row = _void(tx, code)
                if row is not None:
                    changed[code] = row
    tx.put_feed("coupon", [_item(r) for r in changed.values()])
    return doubles


def _register(tx: Any, terminal: str, event: dict[str, Any], issued: dict[str, Any]) -> dict[str, Any]:
    fresh = _new_row(issued["code"], issued["series"], issued.get("valid_to"), terminal, event["receipt"],
                     event["at_ms"])
    if _insert(tx, fresh):
        return fresh
    row = _read(tx, issued["code"])
    assert row is not None  # the insert found it
    # Spent somewhere before its issuing sale arrived: keep the state, complete the rest.
    row.update(series=issued["series"], valid_to=issued.get("valid_to"), issued_by=terminal,
               receipt=event["receipt"])
    _write(tx, row)
    return row


def _spend(tx: Any, terminal: str, event: dict[str, Any], used: dict[str, Any]) -> tuple[dict[str, Any], int]:
    code, receipt = used["code"], event["receipt"]
    row = _read(tx, code)
    if row is None:  # issued by a terminal whose sale has not arrived yet
        row = _new_row(code, used["series"], None, "", "", event["at_ms"])
        _insert(tx, row)
    if row["state"] == "unspent":
        row.update(state="spent", spent_by=terminal, spent_receipt=receipt)
        _write(tx, row)
        return row, 0
    if row["state"] == "spent" and row["spent_receipt"] == receipt:
        return row, 0
    reason = "voided before this use" if row["state"] == "void" else "spent by another sale"
    tx._rows(
        "INSERT INTO coupon_double_uses (code, terminal, epoch, seq, receipt, first_terminal, first_receipt, "
        "reason, at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING code",
        (code, terminal, event["epoch"], event["seq"], receipt, row["spent_by"], row["spent_receipt"], reason,
         event["at_ms"]),
    )
    return row, 1


def _restore(tx: Any, code: str, receipt: str) -> dict[str, Any] | None:
    """The return of the sale that spent `code` gives it back — unless another sale spent it too
    (a double use): then it stays spent, by that sale."""
    row = _read(tx, code)
    if row is None or row["state"] != "spent" or row["spent_receipt"] != receipt:
        return None
    other = tx._rows(
        "SELECT terminal, receipt FROM coupon_double_uses WHERE code = ? AND receipt <> ? ORDER BY at_ms LIMIT 1",
        (code, receipt),
    )
    if other:
        row.update(spent_by=other[0][0], spent_receipt=other[0][1])
    else:
        row.update(state="unspent", spent_by="", spent_receipt="")
    _write(tx, row)
    return row


def _void(tx: Any, code: str) -> dict[str, Any] | None:
    row = _read(tx, code)
    if row is None or row["state"] != "unspent":
        return None  # spent meanwhile (another terminal, offline): the use stands
    row["state"] = "void"
    _write(tx, row)
    return row


def double_used(store: Any, limit: int = LIST_MAX) -> list[dict[str, Any]]:
    """The booked double uses, oldest first (`posterm-central coupons double-used`)."""
    rows = store._query(
        "SELECT code, terminal, epoch, seq, receipt, first_terminal, first_receipt, reason, at_ms "
        "FROM coupon_double_uses ORDER BY at_ms, code, terminal LIMIT ?",
        (min(limit, LIST_MAX),),
    )
    names = ("code", "terminal", "epoch", "seq", "receipt", "first_terminal", "first_receipt", "reason", "at_ms")
    return [dict(zip(names, r, strict=True)) for r in rows]


def show(store: Any, code: str) -> dict[str, Any] | None:
    rows = store._query(f"SELECT {COLUMNS} FROM coupons WHERE code = ?", (codes.normal(code),))
    return dict(zip(COLUMNS.split(", "), rows[0], strict=True)) if rows else None


def listing(store: Any, series: str | None = None, limit: int = LIST_MAX) -> list[dict[str, Any]]:
    where, params = ("WHERE series = ?", (series,)) if series else ("", ())
    rows = store._query(f"SELECT {COLUMNS} FROM coupons {where} ORDER BY code LIMIT ?",
                        (*params, min(limit, LIST_MAX)))
    return [dict(zip(COLUMNS.split(", "), r, strict=True)) for r in rows]
