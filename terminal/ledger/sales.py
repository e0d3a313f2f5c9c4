"""Committing a sale: the quote from the pricing core plus the payment facts, in ONE write
transaction — receipt, redeemed points taken soonest-expiring first, the accrual lot (paying a
debt first), cumulative total and card type, referrer credits, the checkout's hold posted, and
the outbox event. Idempotent by the sale's client id (which is also the receipt id).

The ledger does not price: it checks the quote is self-consistent (to_pay = total − redeemed
money = Σ line paid; tenders add up to to_pay) and that the card can cover the redemption.
Limits: ≤ 1 000 lines, ≤ 16 tenders, ≤ 8 referral credits.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import lmdb

from protocol import schemas
from terminal.ledger import codec, coupons, fields, holds, keys, lots, moments
from terminal.ledger.errors import LedgerBalanceError, LedgerInputError, LedgerInvariantError
from terminal.ledger.moments import Moment
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

LINES_MAX = 1_000
TENDERS_MAX = 16
REFERRAL_MAX = 8
LINE_INT_FIELDS = ("qty_milli", "price", "amount", "discount", "redeem_amount", "paid")
RULE_IDS_MAX = schemas.LINE_RULES_MAX
GIFTS_MAX = schemas.GIFTS_MAX
GIFT_QTY_MAX = schemas.GIFT_QTY_MAX


_HEAD_INTS = itemgetter("subtotal", "discount", "total", "to_pay")
_LINE_INTS = itemgetter(*LINE_INT_FIELDS)
_PAID = itemgetter("paid")
TYPE_AFTER_CHARS_MAX = 64


def _plain_quote(q: Any) -> bool:
    """True when every checked field of the quote is surely valid: the common case, decided with
    a few C-level passes and no message built per field. False sends the quote through
    `_checked_quote`, which names the first bad field (or accepts what this one is unsure of)."""
    if type(q) is not dict:
        return False
    redeem, accrual, lines = q.get("redeem"), q.get("accrual"), q.get("lines")
    if type(redeem) is not dict or type(accrual) is not dict or type(lines) is not list:
        return False
    if len(lines) > LINES_MAX or q.get("referral", []) != []:  # referrers: the careful road
        return False
    after = q.get("card_type_after")
    if after is not None and (type(after) is not str or not 0 < len(after) <= TYPE_AFTER_CHARS_MAX):
        return False
    try:
        amounts = [*_HEAD_INTS(q), redeem["amount"]]
        for line in lines:
            if type(line) is not dict or not _plain_ids(line.get("sku"), line.get("rules", [])):
                return False
            amounts += _LINE_INTS(line)
        if q.get("gifts", []) != []:
            return False
        points = (redeem["points"], accrual["points"])
    except KeyError:
        return False
    return (
        set(map(type, amounts)) == {int}  # exactly int: bool and None are refused here
        and type(points[0]) is int
        and type(points[1]) is int
        and min(amounts) >= 0
        and max(amounts) <= fields.AMOUNT_MAX
        and 0 <= points[0] <= fields.POINTS_MAX
        and 0 <= points[1] <= fields.POINTS_MAX
    )


def _plain_ids(sku: Any, rules: Any) -> bool:
    """A line's sku and rule ids are short strings (what the sale event's schema allows)."""
    if type(sku) is not str or not 0 < len(sku) <= schemas.ID_CHARS_MAX or type(rules) is not list:
        return False
    return all(type(rule) is str and 0 < len(rule) <= schemas.ID_CHARS_MAX for rule in rules)


def _checked_quote(quote: Any, where: str) -> dict[str, Any]:
    q = fields.mapping(quote, f"{where} quote")
    for name in ("subtotal", "discount", "total", "to_pay"):
        fields.whole(q.get(name), f"{where} quote field {name!r}")
    redeem = fields.mapping(q.get("redeem"), f"{where} quote field 'redeem'")
    fields.whole(redeem.get("points"), f"{where} quote redeem.points", 0, fields.POINTS_MAX)
    fields.whole(redeem.get("amount"), f"{where} quote redeem.amount")
    accrual = fields.mapping(q.get("accrual"), f"{where} quote field 'accrual'")
    fields.whole(accrual.get("points"), f"{where} quote accrual.points", 0, fields.POINTS_MAX)
    lines = fields.items(q.get("lines"), f"{where} quote field 'lines'", LINES_MAX)
    for i, line in enumerate(lines):
        fields.mapping(line, f"{where} quote line {i}")
        for name in LINE_INT_FIELDS:
            fields.whole(line.get(name), f"{where} quote line {i} field {name!r}")
        keys.text(line.get("sku"), f"{where} quote line {i} sku")
        for rule in fields.items(line.get("rules", []), f"{where} quote line {i} rules", RULE_IDS_MAX):
            keys.text(rule, f"{where} quote line {i} rule id")
    for i, gift in enumerate(fields.items(q.get("gifts", []), f"{where} quote gifts", GIFTS_MAX)):
        fields.mapping(gift, f"{where} gift {i}")
        keys.text(gift.get("rule"), f"{where} gift {i} rule")
        keys.text(gift.get("sku"), f"{where} gift {i} sku")
        fields.whole(gift.get("qty"), f"{where} gift {i} qty", 1, GIFT_QTY_MAX)
    for i, ref in enumerate(fields.items(q.get("referral", []), f"{where} referral", REFERRAL_MAX)):
        fields.mapping(ref, f"{where} referral {i}")
        keys.text(ref.get("card"), f"{where} referral {i} card")
        fields.whole(ref.get("points"), f"{where} referral {i} points", 0, fields.POINTS_MAX)
        fields.whole(ref.get("cumulative"), f"{where} referral {i} cumulative")
    after = q.get("card_type_after")
    if after is not None:
        fields.text(after, f"{where} quote card_type_after", TYPE_AFTER_CHARS_MAX)
    return q


def check_quote(quote: Any, where: str) -> dict[str, Any]:
    q: dict[str, Any] = quote if _plain_quote(quote) else _checked_quote(quote, where)
    if q["to_pay"] != q["total"] - q["redeem"]["amount"] or q["to_pay"] != sum(map(_PAID, q["lines"])):
        raise LedgerInputError(
            f"{where}: quote does not add up (to_pay ≠ total − redeemed money or ≠ Σ line paid)"
        )
    return q


TENDER_FIELDS = frozenset({"method", "amount", "reference", "tendered", "change", "op", "card"})
_PLAIN_TENDER_FIELDS = frozenset({"method", "amount", "reference"})
METHOD_CHARS_MAX = 32
REFERENCE_CHARS_MAX = 128


def _plain_tenders(payment: Any) -> bool:
    """True when the payment is surely valid (one dict of plain tenders), without messages."""
    if type(payment) is not dict or len(payment) != 1:
        return False
    tenders = payment.get("tenders")
    if type(tenders) is not list or len(tenders) > TENDERS_MAX:
        return False
    for tender in tenders:
        if type(tender) is not dict or not tender.keys() <= _PLAIN_TENDER_FIELDS:
            return False  # cash given and change, payment operations: the checked road
        method, amount, reference = tender.get("method"), tender.get("amount"), tender.get("reference", "-")
        if (
            type(method) is not str
            or not 0 < len(method) <= METHOD_CHARS_MAX
            or type(amount) is not int
            or not 0 <= amount <= fields.AMOUNT_MAX
            or type(reference) is not str
            or not 0 < len(reference) <= REFERENCE_CHARS_MAX
        ):
            return False
    return True


def check_payment(payment: Any, to_pay: int, where: str) -> list[dict[str, Any]]:
    tenders: list[dict[str, Any]] = (
        payment["tenders"] if _plain_tenders(payment) else _checked_tenders(payment, where)
    )
    if sum(t["amount"] for t in tenders) != to_pay:
        raise LedgerInputError(
            f"{where}: tenders add up to {sum(t['amount'] for t in tenders)}, "
            f"the quote asks {to_pay}"
        )
    return tenders


def _checked_tenders(payment: Any, where: str) -> list[dict[str, Any]]:
    pay = fields.mapping(payment, f"{where} payment", frozenset({"tenders"}))
    tenders = fields.items(pay.get("tenders"), f"{where} payment tenders", TENDERS_MAX)
    for i, tender in enumerate(tenders):
        fields.mapping(tender, f"{where} tender {i}", TENDER_FIELDS)
        fields.text(tender.get("method"), f"{where} tender {i} method", METHOD_CHARS_MAX)
        fields.whole(tender.get("amount"), f"{where} tender {i} amount")
        for name in ("reference", "op", "card"):
            if name in tender:
                fields.text(tender[name], f"{where} tender {i} {name}", REFERENCE_CHARS_MAX)
        if "tendered" in tender or "change" in tender:
            # cash handed over and change given back: tendered = amount + change, both ≥ 0
            given = fields.whole(tender.get("tendered"), f"{where} tender {i} tendered")
            change = fields.whole(tender.get("change"), f"{where} tender {i} change")
            if given != tender["amount"] + change:
                raise LedgerInputError(
                    f"{where} tender {i}: tendered {given} ≠ amount {tender['amount']} + change {change}"
                )
    return tenders


def _credit_referrers(
    tx: Tx, quote: dict[str, Any], at: Moment, end: Moment | None, sale_id: str
) -> list[dict[str, Any]]:
    """Referrers kept in this ledger get their credit now; the others only through the server,
    which opens their lot with the dates given here (a local one's are in the event's `lots`)."""
    out = []
    for ref in quote.get("referral", []):
        local = tx.card_exists(ref["card"])
        if local:
            card = tx.card(ref["card"])
            card["cumulative"] += ref["cumulative"]
            if ref["points"]:
                lots.add(tx, ref["card"], ref["points"], at, end, f"referral {sale_id}")
        dates = {"available_from": at.iso, "expires_at": None if end is None else end.iso}
        out.append({**ref, "local": local, **dates})
    return out


def _card_part(
    tx: Tx, sale_id: str, quote: dict[str, Any], number: str, at: Moment, checkout: str | None
) -> dict[str, Any]:
    card = tx.card(number)
    if card["blocked"]:
        raise LedgerBalanceError(f"card {number}: blocked; the sale cannot use it")
    posted = holds.take(tx, number, checkout) if checkout else None
    redeem = quote["redeem"]["points"]
    if redeem:
        others = sum(h["points"] for h in holds.active(tx.txn, tx.dbs, number, at.ms))
        free = lots.available(tx.txn, tx.dbs, number, at.ms) - others
        if redeem > free:
            raise LedgerBalanceError(
                f"card {number}: {free} points available, sale {sale_id} redeems {redeem}"
            )
    moves, short = lots.take(tx, number, redeem, at.ms, only_available=True)
    if short:
        raise LedgerBalanceError(f"card {number}: {short} points short for sale {sale_id}")
    if redeem:  # the offline cap counts these until the server next speaks of the card
        card["offline_redeemed"] = card.get("offline_redeemed", 0) + redeem
    accrual = quote["accrual"]
    start = moments.optional(accrual.get("available_from"), f"sale {sale_id} accrual start")
    end = moments.optional(accrual.get("expires_at"), f"sale {sale_id} accrual expiry")
    added = {"lot": "", "points": 0, "debt_paid": 0}
    if accrual["points"]:
        added = lots.add(tx, number, accrual["points"], start, end, f"sale {sale_id}")
    card["cumulative"] += quote["total"]
    type_before = card["type"]
    if quote.get("card_type_after"):
        card["type"] = quote["card_type_after"]
    referral = _credit_referrers(tx, quote, at, end, sale_id)
    return {
        "moves": moves,
        "accrual_lot": added["lot"],
        "debt_paid": added["debt_paid"],
        "type_before": type_before,
        "referral": referral,
        "hold_posted": None if posted is None else posted["points"],
    }


def commit(
    store: Store,
    sale_id: str,
    quote: Any,
    card: str | None,
    payment: Any,
    now: Any,
    checkout: str | None = None,
    presented: Any = None,
) -> dict[str, Any]:
    """Record a paid sale. Returns {receipt, seq, redeemed, accrued, debt_paid, balance,
    issued_coupons}. `presented`: the coupons the checkout checked, [{code, series, single_use}]."""
    at = moments.moment(now, "now")
    where = f"sale {sale_id}"
    q = check_quote(quote, where)
    tenders = check_payment(payment, q["to_pay"], where)
    if card is None and (q["redeem"]["points"] or q["accrual"]["points"]):
        raise LedgerInputError(f"{where}: points move but no card is named")
    request = {"quote": q, "card": card, "payment": payment, "checkout": checkout}
    shown = coupons.checked_presented(presented, where) if presented else []
    if shown:
        request["coupons"] = shown
    key = keys.text(sale_id, "sale id")

    def body(tx: Tx) -> dict[str, Any]:
        part = _card_part(tx, sale_id, q, card, at, checkout) if card else None
        receipt = {
            "id": sale_id,
            "at": at.iso,
            "at_ms": at.ms,
            "card": card,
            "checkout": checkout,  # with quote, card and tenders: the whole request (`_request_of`)
            "quote": q,
            "tenders": tenders,
            "shift": tx.meta["shift"],
            "returns": [],
            "refunds": [],
            **(part or {"moves": [], "accrual_lot": "", "type_before": None}),
        }
        used, issued = coupons.at_sale(tx, sale_id, q, shown, at) if shown or q.get("issued_coupons") else ([], [])
        if shown:
            receipt["coupons"] = shown  # part of the request (`_request_of`)
        if used or issued:
            receipt["coupons_used"], receipt["issued_coupons"] = used, issued
        balance = None
        if card:
            record = tx.card(card)
            balance = record["server_balance"] + record["local_delta"]
        seq = tx.event(
            "sale",
            at,
            {
                "receipt": sale_id,
                "card": card,
                "card_type": receipt["type_before"],
                "card_type_after": q.get("card_type_after"),
                "subtotal": q["subtotal"],
                "discount": q["discount"],
                "total": q["total"],
                "to_pay": q["to_pay"],
                "tenders": tenders,
                "redeemed": q["redeem"]["points"],
                "redeemed_money": q["redeem"]["amount"],
                "accrued": q["accrual"]["points"],
                "referral": receipt.get("referral", []),
                "lines": event_lines(q["lines"]),
                "gifts": [{"rule": g["rule"], "sku": g["sku"], "qty": g["qty"]} for g in q.get("gifts", [])],
                "vat": q.get("vat", []),
                **({"coupons": used} if used else {}),
                **({"issued_coupons": issued} if issued else {}),
            },
        )
        result = {
            "receipt": sale_id,
            "seq": seq,
            "redeemed": q["redeem"]["points"],
            "accrued": q["accrual"]["points"],
            "debt_paid": receipt.get("debt_paid", 0),
            "balance": balance,
            "shift": receipt["shift"],
            **({"issued_coupons": issued} if issued else {}),
        }
        # The receipt is the sale's op record too: a retry gets this result back from it.
        receipt["result"] = result
        tx.put_new("receipts", key, receipt, f"receipt {sale_id}")
        return result

    def stored(txn: lmdb.Transaction) -> tuple[dict[str, Any], dict[str, Any]] | None:
        raw = txn.get(key, db=store.dbs["receipts"])
        if raw is None:
            return None
        receipt = codec.load(key, raw, f"receipt {sale_id}")
        if "result" not in receipt:  # older builds kept it in an op record, found before this
            raise LedgerInvariantError(f"receipt {sale_id}: neither it nor an op record holds its result")
        return _request_of(receipt), receipt["result"]

    return write(store, sale_id, "sale", request, body, stored)


_EVENT_LINE_OPTIONAL = ("vat_amount", "vat_rate", "accrual_base")


def event_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The committed quote's lines as the sale event carries them, in cart order (central keeps
    them for returns at another terminal and for analytics; docs/protocol.md §3)."""
    return [
        {
            "sku": line["sku"],
            "qty_milli": line["qty_milli"],
            "price": line["price"],
            "amount": line["amount"],
            "discount": line["discount"],
            "redeem_amount": line["redeem_amount"],
            "paid": line["paid"],
            "rules": list(line.get("rules", [])),
            **{name: line[name] for name in _EVENT_LINE_OPTIONAL if line.get(name) is not None},
        }
        for line in lines
    ]


def _request_of(receipt: dict[str, Any]) -> dict[str, Any]:
    """The request a receipt was committed from: check_payment allows `tenders` alone in the
    payment, and returns never change a receipt's quote, card or tenders."""
    request = {
        "quote": receipt["quote"],
        "card": receipt["card"],
        "payment": {"tenders": receipt["tenders"]},
        "checkout": receipt.get("checkout"),
    }
    if receipt.get("coupons"):
        request["coupons"] = receipt["coupons"]
    return request
