"""Receipts of other terminals of the chain, copied from the central server so a return can be
made here (`GET /v1/receipts/<id>`, terminal/sync/receipts.py).

`adopt(store, sale, now)` checks the server's sale (its lines and totals must add up as a
quote does, `sales.check_quote`) and stores it as a receipt record in ONE write transaction,
marked with its `origin` (terminal, epoch, seq). No event: the sale is the other terminal's,
already at the server; the return made here is this terminal's event. Adopting again returns
the first result (op id `adopt-<receipt>`) and changes nothing.

What this terminal cannot know about a sale made elsewhere, and so decides:
- the lots the redeemed points came from: points a return gives back open a lot available now
  that never expires (returns.py);
- the sale's accrual lot: points clawed back come from the card's lots soonest-expiring first;
- each line's `accrual_base`: the line's paid amount (the sale event does not carry it);
- referral credits: taken back here from uplines this ledger holds, the others at the server.
Returns of the same receipt made at other terminals are not known here (the server's receipt
has the sale only), so they do not count towards its remainders.
"""

from __future__ import annotations

from typing import Any

from protocol import schemas
from terminal.ledger import fields, keys, moments, sales
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

SALE_FIELDS = frozenset({
    "receipt", "terminal", "epoch", "seq", "at", "card", "card_type", "subtotal", "discount", "total",
    "to_pay", "tenders", "redeemed", "redeemed_money", "accrued", "referral", "lines", "gifts",
    "coupons", "issued_coupons",
})
# The sale's coupons as its event carried them (protocol/schemas.py): a full return here gives the
# spent codes back and voids the issued ones at central (terminal/ledger/coupons.py).
_COUPON_LISTS = {
    "coupons": schemas.ListOf(schemas.USED_COUPON, schemas.COUPONS_MAX).compile(),
    "issued_coupons": schemas.ListOf(schemas.ISSUED_COUPON, schemas.ISSUED_COUPONS_MAX).compile(),
}
LINE_FIELDS = ("sku", "qty_milli", "price", "amount", "discount", "redeem_amount", "paid", "rules")


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
            {name: line.get(name) for name in LINE_FIELDS} if isinstance(line, dict) else line
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
    return sales.check_quote(quote, where)


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
        }
        if raw.get("coupons") or raw.get("issued_coupons"):
            receipt["coupons_used"] = list(raw.get("coupons", []))
            receipt["issued_coupons"] = list(raw.get("issued_coupons", []))
        tx.put_new("receipts", key, receipt, f"receipt {receipt_id}")
        return {"receipt": receipt_id, "adopted": True}

    return write(store, f"adopt-{receipt_id}", "adopt", {"receipt": receipt_id, "origin": origin}, body)
