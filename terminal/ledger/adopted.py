"""Receipts of other terminals of the chain, copied from the central server so a return can be
made here (`GET /v1/receipts/<id>`, terminal/sync/receipts.py).

`adopt(store, sale, now)` checks the server's sale (its lines and totals must add up as a
quote does, `sales.check_quote`) and stores it as a receipt record in ONE write transaction,
marked with its `origin` (terminal, epoch, seq). No event: the sale is the other terminal's,
already at the server; the return made here is this terminal's event. Adopting again returns
the first result (op id `adopt-<receipt>`) and changes nothing.

What the server's receipt carries and this terminal keeps:
- the dates of the lots the sale's redeemed points came from (the sale event's `lots`): points a
  return gives back go to lots with those dates, latest-expiring first, and an expired lot's
  part is annulled, as at the selling terminal (returns.py); a sale from a terminal that sent no
  lots gives them back as a lot usable now that never expires;
- each line's `accrual_base` and `vat_rate` (the line's paid amount and outside VAT for sales of
  terminals that did not send them);
- the returns of the receipt the server holds, made at any terminal (the return events'
  `lines`): they count towards the remainders, so a receipt is never returned twice across the
  chain while the returning terminal is online. `merge_returns` folds them into a receipt this
  ledger already holds — our own sales too — before a return (terminal/sync/receipts.py).
What it cannot know, and so decides: the sale's accrual lot (points clawed back come from the
card's lots soonest-expiring first); referral credits are taken back here from uplines this
ledger holds, the others at the server.
"""

from __future__ import annotations

import hashlib
from typing import Any

from protocol import schemas
from protocol.wire import LOT_ENTRIES_MAX
from terminal.ledger import fields, keys, moments, sales
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

SALE_FIELDS = frozenset({
    "receipt", "terminal", "epoch", "seq", "at", "card", "card_type", "subtotal", "discount", "total",
    "to_pay", "tenders", "redeemed", "redeemed_money", "accrued", "referral", "lines", "gifts",
    "coupons", "issued_coupons",
    "lots", "returns",
})
# The sale's coupons as its event carried them (protocol/schemas.py): a full return here gives the
# spent codes back and voids the issued ones at central (terminal/ledger/coupons.py).
_COUPON_LISTS = {
    "coupons": schemas.ListOf(schemas.USED_COUPON, schemas.COUPONS_MAX).compile(),
    "issued_coupons": schemas.ListOf(schemas.ISSUED_COUPON, schemas.ISSUED_COUPONS_MAX).compile(),
}
LINE_FIELDS = ("sku", "qty_milli", "price", "amount", "discount", "redeem_amount", "paid", "rules")
LINE_OPTIONAL = ("vat_amount", "vat_rate", "accrual_base")
RETURN_FIELDS = frozenset({"return", "terminal", "money", "points_restored", "points_clawed", "lines", "referral"})
RETURN_LINE_FIELDS = ("line", "qty_milli", "money", "redeem_amount", "accrual_base", "cumulative_decrease",
                      "vat_amount")
RETURNS_MAX = 1_000  # returns.RETURNS_PER_RECEIPT_MAX


def _quote(sale: dict[str, Any], where: str) -> dict[str, Any]:
    lines = sale.get("lines")
    if lines is None:
        raise fields.LedgerInputError(f"{where}: the server has no lines for it (sold by an older terminal)")
    quote = {
        "subtotal": sale.get("subtotal"),
        "discount": sale.get("discount"),
        "total": sale.get("total"),
        "to_pay": sale.get("to_pay"),
        "redeem": {"points": sale.get("redeemed"), "amount": sale.get("redeemed_money")},
        "accrual": {"points": sale.get("accrued"), "available_from": None, "expires_at": None},
        "lines": [
            {name: line.get(name) for name in LINE_FIELDS}
            | {name: line[name] for name in LINE_OPTIONAL if line.get(name) is not None}
            if isinstance(line, dict) else line
            for line in fields.items(lines, f"{where} lines", sales.LINES_MAX)
        ],
        "gifts": [dict(g) if isinstance(g, dict) else g for g in sale.get("gifts") or []],
        "referral": [
            {"card": r.get("card"), "points": r.get("points"), "cumulative": r.get("cumulative")}
            if isinstance(r, dict) else r
            for r in fields.items(sale.get("referral") or [], f"{where} referral", sales.REFERRAL_MAX)
        ],
        "card_type_after": None,
    }
    quote = sales.check_quote(quote, where)
    for i, line in enumerate(quote["lines"]):
        for name in LINE_OPTIONAL:
            if name in line:
                high = 10_000 if name == "vat_rate" else fields.AMOUNT_MAX
                fields.whole(line[name], f"{where} line {i} {name}", 0, high)
    return quote


def _sale_lots(raw: Any, where: str) -> list[dict[str, Any]]:
    """The lots the sale took its redeemed points from (the card's negative `lots` entries)."""
    out = []
    for i, entry in enumerate(fields.items(raw or [], f"{where} lots", LOT_ENTRIES_MAX)):
        entry = fields.mapping(entry, f"{where} lot {i}", frozenset({"points", "available_from", "expires_at"}))
        points = fields.whole(entry.get("points"), f"{where} lot {i} points", -fields.POINTS_MAX, fields.POINTS_MAX)
        start = moments.optional(entry.get("available_from"), f"{where} lot {i} available_from")
        end = moments.optional(entry.get("expires_at"), f"{where} lot {i} expires_at")
        if points < 0:
            out.append({"points": -points, "available_from": start and start.iso, "expires_at": end and end.iso})
    return out


def _returns(raw: Any, where: str) -> list[dict[str, Any]]:
    """The server's returns of the receipt as refunds `core.refund` counts (`previous`)."""
    out = []
    for i, ret in enumerate(fields.items(raw or [], f"{where} returns", RETURNS_MAX)):
        ret = fields.mapping(ret, f"{where} return {i}", RETURN_FIELDS)
        rid = keys.name(ret.get("return"), f"{where} return {i} id")
        if ret.get("lines") is None:
            raise fields.LedgerInputError(
                f"{where}: its return {rid} was made at terminal {ret.get('terminal')} by a version that does not "
                "send what it gave back per line; make this return there")
        lines = []
        for j, line in enumerate(fields.items(ret["lines"], f"{where} return {rid} lines", sales.LINES_MAX)):
            line = fields.mapping(line, f"{where} return {rid} line {j}", frozenset(RETURN_LINE_FIELDS))
            lines.append({name: fields.whole(line.get(name), f"{where} return {rid} line {j} {name}")
                          for name in RETURN_LINE_FIELDS})
        referral = []
        for j, ref in enumerate(fields.items(ret.get("referral") or [], f"{where} return {rid} referral",
                                             sales.REFERRAL_MAX)):
            ref = fields.mapping(ref, f"{where} return {rid} referral {j}")
            referral.append({"card": keys.name(ref.get("card"), f"{where} return {rid} referral {j} card"),
                             "points": fields.whole(ref.get("points"), f"{where} return {rid} referral {j} points"),
                             "cumulative": fields.whole(ref.get("cumulative"),
                                                        f"{where} return {rid} referral {j} cumulative")})
        out.append({
            "return": rid,
            "terminal": fields.text(ret.get("terminal"), f"{where} return {rid} terminal", 64),
            "lines": lines,
            "money": fields.whole(ret.get("money"), f"{where} return {rid} money"),
            "points_restored": fields.whole(ret.get("points_restored"), f"{where} return {rid} points_restored"),
            "points_clawed": fields.whole(ret.get("points_clawed"), f"{where} return {rid} points_clawed"),
            "referral": referral,
        })
    return out


def _advance(entries: list[dict[str, Any]], points: int, order: Any, reverse: bool = False) -> None:
    """Mark `points` of `entries` (moves or sale lots) as given back by a return made elsewhere,
    latest-expiring first as that return did, so ours continues where it stopped."""
    for entry in sorted(entries, key=order, reverse=reverse):
        if points == 0:
            return
        part = min(points, entry["points"] - entry.get("returned", 0))
        if part > 0:
            entry["returned"] = entry.get("returned", 0) + part
            points -= part


def fold_returns(receipt: dict[str, Any], found: list[dict[str, Any]]) -> list[str]:
    """Add the returns made elsewhere (not yet in `receipt`) to its refunds; their ids."""
    from terminal.ledger.returns import latest_first  # returns.py imports this module

    new = [r for r in found if r["return"] not in receipt["returns"]]
    for ret in new:
        if len(receipt["returns"]) >= RETURNS_MAX:
            raise fields.LedgerInputError(f"receipt {receipt['id']}: more than {RETURNS_MAX} returns")
        receipt["returns"].append(ret["return"])
        receipt["refunds"].append({k: ret[k] for k in ("lines", "money", "points_restored", "points_clawed")}
                                  | {"elsewhere": ret["terminal"]})
        if receipt.get("origin"):
            _advance(receipt.setdefault("sale_lots", []), ret["points_restored"], latest_first)
        else:
            _advance(receipt["moves"], ret["points_restored"], lambda m: m["key"], reverse=True)  # lots.restore's order
        taken = receipt.setdefault("referral_back", [[0, 0] for _ in receipt.get("referral") or []])
        for ref in ret["referral"]:
            for done, credit in zip(taken, receipt.get("referral") or [], strict=True):
                if credit["card"] == ref["card"]:
                    done[0], done[1] = done[0] + ref["points"], done[1] + ref["cumulative"]
                    break
    return [r["return"] for r in new]


def adopt(store: Store, sale: Any, now: Any) -> dict[str, Any]:
    """Store the server's sale as a receipt here; returns {"receipt", "adopted": bool}."""
    at = moments.moment(now, "now")
    raw = fields.mapping(sale, "the server's receipt")
    receipt_id = raw.get("receipt")
    key = keys.text(receipt_id, "the server's receipt id")
    where = f"receipt {receipt_id} from the server"
    raw = fields.mapping(sale, where, SALE_FIELDS)
    quote = _quote(raw, where)
    card = raw.get("card")
    if card is not None:
        keys.text(card, f"{where} card")
    sold = moments.moment(raw.get("at"), f"{where} field 'at'")
    origin = {
        "terminal": fields.text(raw.get("terminal"), f"{where} terminal", 64),
        "epoch": fields.whole(raw.get("epoch"), f"{where} epoch", 0, 2**63 - 1),
        "seq": fields.whole(raw.get("seq"), f"{where} seq", 0, 2**63 - 1),
    }
    tenders = sales.check_payment({"tenders": raw.get("tenders")}, quote["to_pay"], where)
    for name, check in _COUPON_LISTS.items():
        try:
            check(raw.get(name, []))
        except schemas.Invalid as exc:
            raise fields.LedgerInputError(f"{where} {name}: {exc}") from None
    sale_lots = _sale_lots(raw.get("lots"), where)
    found = _returns(raw.get("returns"), where)

    def body(tx: Tx) -> dict[str, Any]:
        if tx.get("receipts", key, f"receipt {receipt_id}") is not None:
            return {"receipt": receipt_id, "adopted": False}
        if card is not None:
            tx.card(card)  # LedgerNotFoundError: the caller fetches the card first
        receipt = {
            "id": receipt_id,
            "at": sold.iso,
            "at_ms": sold.ms,
            "card": card,
            "checkout": None,
            "quote": quote,
            "tenders": tenders,
            "shift": tx.meta["shift"],
            "returns": [],
            "refunds": [],
            "moves": [],
            "accrual_lot": "",
            "type_before": raw.get("card_type"),
            # "local": take a credit back here when this ledger holds the upline (returns.py).
            "referral": [{**ref, "local": True} for ref in quote["referral"]],
            "origin": origin,
            "adopted_at": at.iso,
            "sale_lots": sale_lots,
        }
        if raw.get("coupons") or raw.get("issued_coupons"):
            receipt["coupons_used"] = list(raw.get("coupons", []))
            receipt["issued_coupons"] = list(raw.get("issued_coupons", []))
        fold_returns(receipt, found)
        tx.put_new("receipts", key, receipt, f"receipt {receipt_id}")
        return {"receipt": receipt_id, "adopted": True}

    return write(store, f"adopt-{receipt_id}", "adopt", {"receipt": receipt_id, "origin": origin}, body)


def merge_returns(store: Store, receipt_id: str, raw: Any) -> dict[str, Any]:
    """Fold the server's returns of a receipt held here (`raw`: the `returns` of its
    `GET /v1/receipts` reply) into it, in one write transaction; {"receipt", "merged": [ids]}."""
    where = f"receipt {receipt_id} from the server"
    key = keys.text(receipt_id, "receipt id")
    found = _returns(raw, where)
    ids = sorted(r["return"] for r in found)
    op = f"merge-{hashlib.blake2b(repr([receipt_id, ids]).encode(), digest_size=12).hexdigest()}"

    def body(tx: Tx) -> dict[str, Any]:
        receipt = tx.get("receipts", key, f"receipt {receipt_id}")
        if receipt is None:
            raise fields.LedgerInputError(f"receipt {receipt_id}: not in the ledger")
        merged = fold_returns(receipt, found)
        if merged:
            tx.put("receipts", key, receipt, f"receipt {receipt_id}")
        return {"receipt": receipt_id, "merged": merged}

    return write(store, op, "merge_returns", {"receipt": receipt_id, "returns": ids}, body)
