"""The terminal's coupon codes (spec §13): what it knows of each code, and what its sales and
returns do to them — always inside the sale's or the return's own write transaction.

Sub-database `coupons`: code key → {code, series, valid_to ("YYYY-MM-DD" | None: the series'
dates only), state (unspent | spent | void), origin ("central" | "local"), receipt (the sale that
issued it, local codes), spent_receipt, local_seq}. Records come from the central feed (`put_fed`)
and from this terminal's own sales (issued codes).

`local_seq` is the outbox seq of the last local event that changed the record (a spend, a
restore, a void, an issue). Until central has stored that event (the feed's `acked`), a fed
state older than it does not overwrite the local one — so a code spent here is not made
spendable again by a feed page written before central heard of the sale; after that, central's
state wins (a return at another terminal gives a code back).

At a sale (`at_sale`): each presented code the quote used and that is single-use is spent (it
must still be unspent: the checkout checked it, this re-checks it under the write lock); each
`issued_coupons` entry becomes a new code `protocol.coupons.terminal_code(terminal, n)` with n
the ledger's coupon counter (meta `next_coupon`), valid through the sale's local date +
valid_days. At the return that empties the receipt (`at_return`): the sale's spent single-use
codes are unspent again, and its issued codes still unspent are void.
Limits: `protocol.schemas.COUPONS_MAX` codes used and `ISSUED_COUPONS_MAX` issued a sale.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import lmdb

from protocol import coupons as codes
from protocol import schemas
from terminal.ledger import codec, fields, keys
from terminal.ledger.errors import LedgerBalanceError, LedgerInputError
from terminal.ledger.moments import Moment
from terminal.ledger.tx import Tx

PRESENTED_FIELDS = frozenset({"code", "series", "single_use"})


def lookup(txn: lmdb.Transaction, dbs: dict[str, Any], code: str) -> dict[str, Any] | None:
    key = keys.text(code, "coupon code")
    raw = txn.get(key, db=dbs["coupons"])
    return None if raw is None else dict(codec.load(key, raw, f"coupon {code}"))


def checked_presented(raw: Any, where: str) -> list[dict[str, Any]]:
    """The checkout's presented codes [{code, series, single_use}] (what the sale request holds)."""
    out = []
    for i, item in enumerate(fields.items(raw, f"{where} coupons", schemas.COUPONS_MAX)):
        fields.mapping(item, f"{where} coupon {i}", PRESENTED_FIELDS)
        try:
            code = codes.checked_text(item.get("code"))
        except codes.CouponCodeError as exc:
            raise LedgerInputError(f"{where} coupon {i}: {exc}") from None
        out.append({"code": code, "series": keys.name(item.get("series"), f"{where} coupon {i} series"),
                    "single_use": fields.flag(item.get("single_use"), f"{where} coupon {i} single_use")})
    return out


def _put(tx: Tx, record: dict[str, Any]) -> None:
    tx.put("coupons", keys.text(record["code"], "coupon code"), record, f"coupon {record['code']}")


def at_sale(tx: Tx, sale_id: str, quote: dict[str, Any], presented: list[dict[str, Any]],
            at: Moment) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Spend the used single-use codes and make the issued ones; returns (used, issued) as the
    sale event carries them. Call right before the sale's event (its seq is `local_seq`)."""
    seq = tx.meta["next_seq"]
    by_code = {p["code"]: p for p in presented}
    used = []
    for item in fields.items(quote.get("coupons", []), f"sale {sale_id} quote coupons", schemas.COUPONS_MAX):
        if not isinstance(item, dict) or not item.get("used"):
            continue
        shown = by_code.get(item.get("code"))
        if shown is None:
            raise LedgerInputError(f"sale {sale_id}: the quote uses coupon {item.get('code')!r}, not presented")
        used.append(dict(shown))
        if shown["single_use"]:
            _spend(tx, sale_id, shown, seq)
    issued = []
    wanted = fields.items(quote.get("issued_coupons", []), f"sale {sale_id} issued_coupons",
                          schemas.ISSUED_COUPONS_MAX)
    for i, item in enumerate(wanted):
        where = f"sale {sale_id} issued coupon {i}"
        fields.mapping(item, where)
        valid_days = fields.whole(item.get("valid_days"), f"{where} valid_days", 1, 3660)
        code = _new_code(tx)
        valid_to = (dt.datetime.fromisoformat(at.iso).date() + dt.timedelta(days=valid_days)).isoformat()
        series, rule = keys.name(item.get("series"), f"{where} series"), keys.name(item.get("rule"), f"{where} rule")
        _put(tx, {"code": code, "series": series, "valid_to": valid_to, "state": "unspent", "origin": "local",
                  "receipt": sale_id, "spent_receipt": "", "local_seq": seq})
        issued.append({"code": code, "series": series, "rule": rule, "valid_to": valid_to})
    return used, issued


def _spend(tx: Tx, sale_id: str, shown: dict[str, Any], seq: int) -> None:
    record = lookup(tx.txn, tx.dbs, shown["code"])
    if record is None:
        raise LedgerBalanceError(f"coupon {shown['code']}: not known to this terminal; sale {sale_id} refused")
    if record["state"] != "unspent":
        raise LedgerBalanceError(
            f"coupon {shown['code']}: {record['state']}"
            + (f" by sale {record['spent_receipt']}" if record.get("spent_receipt") else "")
            + f"; sale {sale_id} refused — take the coupon off and pay again"
        )
    record.update(state="spent", spent_receipt=sale_id, local_seq=seq)
    _put(tx, record)


def _new_code(tx: Tx) -> str:
    n = int(tx.meta.get("next_coupon", 0)) + 1
    tx.meta["next_coupon"] = n
    try:
        code = codes.terminal_code(tx.meta["terminal"], n)
    except codes.CouponCodeError as exc:
        raise LedgerInputError(str(exc)) from None
    if lookup(tx.txn, tx.dbs, code) is not None:  # cannot happen: the counter only grows
        raise LedgerInputError(f"coupon {code}: already in the ledger")
    return code


def emptied(receipt: dict[str, Any]) -> bool:
    """Every line of the receipt returned in full (its refunds, the last one included)."""
    done: dict[int, int] = {}
    for refund in receipt["refunds"]:
        for line in refund["lines"]:
            done[line["line"]] = done.get(line["line"], 0) + line["qty_milli"]
    return all(done.get(i, 0) >= line["qty_milli"] for i, line in enumerate(receipt["quote"]["lines"]))


def at_return(tx: Tx, receipt: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The return emptied `receipt`: (codes given back, codes voided). Call right before the
    return's event. A code this ledger does not hold (another terminal's sale) is still listed
    for central, which holds it."""
    seq = tx.meta["next_seq"]
    restored, voided = [], []
    for used in receipt.get("coupons_used", []):
        if not used["single_use"]:
            continue
        record = lookup(tx.txn, tx.dbs, used["code"])
        if record is not None:
            if record["state"] != "spent" or record.get("spent_receipt") != receipt["id"]:
                continue  # central gave it to another sale meanwhile: nothing to give back
            record.update(state="unspent", spent_receipt="", local_seq=seq)
            _put(tx, record)
        restored.append(used["code"])
    for issued in receipt.get("issued_coupons", []):
        record = lookup(tx.txn, tx.dbs, issued["code"])
        if record is not None:
            if record["state"] != "unspent":
                continue  # already used: that sale stands
            record.update(state="void", local_seq=seq)
            _put(tx, record)
        voided.append(issued["code"])
    return restored, voided


def put_fed(tx: Tx, item: dict[str, Any], replay_after: int) -> bool:
    """A feed entry (checked by `protocol.coupons.check_item`). Returns False when a local
    change central has not stored yet keeps this ledger's state (series and date still update)."""
    record = lookup(tx.txn, tx.dbs, item["code"])
    if record is None:
        record = {"code": item["code"], "origin": "central", "receipt": "", "spent_receipt": "", "local_seq": 0}
    fresh = record.get("local_seq", 0) <= replay_after
    record.update(series=item["series"], valid_to=item["valid_to"])
    if fresh:
        record["state"] = item["state"]
        if item["state"] != "spent":
            record["spent_receipt"] = ""
    elif "state" not in record:
        record["state"] = item["state"]
    _put(tx, record)
    return fresh
