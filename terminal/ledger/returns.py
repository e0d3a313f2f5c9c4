"""Returns (spec §9): by receipt and lines, in one write transaction, idempotent by return id.

The arithmetic is the pricing core's (`core.refund.compute_refund`, the same function both
engines call), fed with every earlier refund of the receipt kept in the receipt record, so the
last return of a line or receipt gives the exact remainder and the stored refunds add up to the
sale. Points: the redeemed points given back go to the lots they were taken from, latest-expiring
first (annulled when that lot has expired); accrued points are clawed back from the sale's
accrual lot first, then soonest-expiring first; what the balance cannot cover becomes the debt
lot that the next accruals pay first. The card's cumulative total falls; a level card whose
cumulative falls below its level takes the level of the lowered cumulative (spec §11
`level_downgrade`, decided by the running program: `level_after`, `Program.type_after_return`);
the event's `card_type_after` names it (null: the type stays), and central does the same with
its own cumulative.

Referral credits (spec §9 is silent; README "Where the spec is silent"): a return takes back
each upline's credit — points and cumulative — in proportion to the money returned. After each
return, the total taken back is round_half_up(credit × money returned so far / money paid), so
the return that gives back all the money takes the exact remainder and nothing is taken twice.
A referrer kept in this ledger loses the points here (soonest-expiring lots first, then debt);
the others through the server, from the return event's `referral` list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.arith import div_round_half_up
from core.errors import RefundError
from core.refund import compute_refund
from terminal.ledger import coupons, fields, keys, lots, moments
from terminal.ledger.errors import LedgerInputError, LedgerNotFoundError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

LevelAfter = Callable[[str, int], str | None]  # (card type, cumulative) → the lower level, or None
RETURNS_PER_RECEIPT_MAX = 1_000
TENDERS_MAX = 16
SPLIT_FIELDS = frozenset({"tender", "method", "amount", "original", "reference"})


def _points(
    tx: Tx, receipt: dict[str, Any], refund: dict[str, Any], return_id: str, at: moments.Moment
) -> dict[str, Any]:
    number, now_ms = receipt["card"], at.ms
    card = tx.card(number)
    if receipt.get("origin") and refund["points_restored"]:
        # A sale of another terminal (adopted.py): its lots are not here, their dates are.
        restored, annulled = _restore_dated(tx, receipt, refund["points_restored"], return_id, at)
    else:
        restored, annulled = lots.restore(
            tx, number, receipt["moves"], refund["points_restored"], now_ms
        )
    clawed = refund["points_clawed"]
    first = bytes.fromhex(receipt["accrual_lot"]) if receipt["accrual_lot"] else None
    _, short = lots.take(tx, number, clawed, now_ms, only_available=False, first_key=first)
    lots.add_debt(tx, number, short)
    card["cumulative"] = max(0, card["cumulative"] - refund["cumulative_decrease"])
    return {"restored": restored, "annulled": annulled, "clawed": clawed - short, "debt": short}


def _restore_dated(
    tx: Tx, receipt: dict[str, Any], points: int, return_id: str, at: moments.Moment
) -> tuple[int, int]:
    """Give `points` back with the dates of the lots the other terminal's sale took them from
    (`sale_lots`, from the server's sale event), latest-expiring first, as `lots.restore` does
    with our own moves; an expired lot's part is annulled. A sale the server keeps no lots for
    (an older terminal) gives them back as a lot usable now that never expires."""
    number, restored, annulled, left = receipt["card"], 0, 0, points
    taken = receipt.get("sale_lots") or []
    for entry in sorted(taken, key=latest_first):
        part = min(left, entry["points"] - entry.get("returned", 0))
        if part <= 0:
            continue
        entry["returned"] = entry.get("returned", 0) + part  # the receipt keeps this
        left -= part
        end = moments.optional(entry["expires_at"], "sale lot expires_at")
        if end is not None and end.ms <= at.ms:
            annulled += part
            continue
        lots.add(tx, number, part, moments.optional(entry["available_from"], "sale lot available_from"),
                 end, f"return {return_id}")
        restored += part
    if left:
        lots.add(tx, number, left, at, None, f"return {return_id}")
        restored += left
    return restored, annulled


def latest_first(entry: dict[str, Any]) -> int:
    """Sort key of a sale lot: never-expiring first, then the latest-expiring."""
    end = moments.optional(entry["expires_at"], "sale lot expires_at")
    return -(2**63) if end is None else -end.ms


def event_lines(refund: dict[str, Any]) -> list[dict[str, Any]]:
    """What each line gave back, as the return event carries it (a return of the same receipt
    at another terminal counts it towards the remainders)."""
    names = ("line", "qty_milli", "money", "redeem_amount", "accrual_base", "cumulative_decrease", "vat_amount")
    return [{name: line[name] for name in names} for line in refund["lines"]]


def _lower_level(tx: Tx, number: str, level_after: LevelAfter | None) -> str | None:
    """§11: the card's new, lower level after its cumulative fell, or None (its type stays)."""
    if level_after is None:
        return None
    card = tx.card(number)
    lowered = level_after(card["type"], card["cumulative"])
    if lowered is not None:
        card["type"] = lowered
    return lowered


def _share(credit: int, returned: int, paid: int) -> int:
    return credit if returned >= paid else div_round_half_up(credit * returned, paid)


def _referral_back(tx: Tx, receipt: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
    """Take back the uplines' credits in proportion to the money returned so far (the receipt's
    refunds, this one included); records the totals taken in `receipt["referral_back"]`."""
    credits = receipt.get("referral") or []
    if not credits:
        return []
    paid = receipt["quote"]["to_pay"]
    returned = sum(r["money"] for r in receipt["refunds"])
    taken = receipt.setdefault("referral_back", [[0, 0] for _ in credits])
    out = []
    for ref, done in zip(credits, taken, strict=True):
        points = _share(ref["points"], returned, paid) - done[0] if paid else 0
        cumulative = _share(ref["cumulative"], returned, paid) - done[1] if paid else 0
        points, cumulative = max(0, points), max(0, cumulative)
        if not points and not cumulative:
            continue
        done[0], done[1] = done[0] + points, done[1] + cumulative
        local = bool(ref.get("local")) and tx.card_exists(ref["card"])
        if local:
            card = tx.card(ref["card"])
            card["cumulative"] = max(0, card["cumulative"] - cumulative)
            if points:
                _, short = lots.take(tx, ref["card"], points, now_ms, only_available=False)
                lots.add_debt(tx, ref["card"], short)
        out.append({"card": ref["card"], "points": points, "cumulative": cumulative, "local": local})
    return out


def _checked_split(tenders: Any, where: str) -> list[dict[str, Any]]:
    """How the money goes back: [{tender, method, amount, original?, reference?}] (terminal.tenders)."""
    out = fields.items(tenders, f"{where} tenders", TENDERS_MAX)
    for i, part in enumerate(out):
        fields.mapping(part, f"{where} tender {i}", SPLIT_FIELDS)
        fields.whole(part.get("tender"), f"{where} tender {i} index", -1, TENDERS_MAX)
        fields.text(part.get("method"), f"{where} tender {i} method", 32)
        fields.whole(part.get("amount"), f"{where} tender {i} amount")
        for name in ("original", "reference"):
            if name in part:
                fields.text(part[name], f"{where} tender {i} {name}", 128)
    return out


def commit(store: Store, return_id: str, receipt_id: str, lines: Any, now: Any,
           tenders: Any = None, level_after: LevelAfter | None = None) -> dict[str, Any]:
    """Return `lines` ([{"line", "qty" | "qty_milli"}]) of a receipt; returns the refund.
    `tenders`: how the money went back (optional; must add up to the refund's money).
    `level_after`: the running program's §11 rule (`Program.type_after_return`); None keeps
    the card's type."""
    at = moments.moment(now, "now")
    fields.items(lines, f"return {return_id} lines")
    split = None if tenders is None else _checked_split(tenders, f"return {return_id}")
    request = {"receipt": receipt_id, "lines": lines} | ({} if split is None else {"tenders": split})

    def body(tx: Tx) -> dict[str, Any]:
        key = keys.text(receipt_id, "receipt id")
        receipt = tx.get("receipts", key, f"receipt {receipt_id}")
        if receipt is None:
            raise LedgerNotFoundError(f"receipt {receipt_id}: not in the ledger")
        if len(receipt["returns"]) >= RETURNS_PER_RECEIPT_MAX:
            raise LedgerInputError(
                f"receipt {receipt_id}: more than {RETURNS_PER_RECEIPT_MAX} returns"
            )
        try:
            refund = compute_refund(
                receipt["quote"], {"lines": lines, "previous": receipt["refunds"]}
            )
        except RefundError as exc:
            raise LedgerInputError(f"return {return_id} of receipt {receipt_id}: {exc}") from None
        if split is not None and sum(p["amount"] for p in split) != refund["money"]:
            raise LedgerInputError(f"return {return_id}: tenders give back {sum(p['amount'] for p in split)}, "
                                   f"the refund is {refund['money']}")
        moved = _points(tx, receipt, refund, return_id, at) if receipt["card"] else {}
        type_after = _lower_level(tx, receipt["card"], level_after) if receipt["card"] else None
        receipt["returns"].append(return_id)
        receipt["refunds"].append(refund)
        if split is not None:
            receipt.setdefault("refund_tenders", []).append(split)
        referral = _referral_back(tx, receipt, at.ms)
        given_back, voided = [], []
        if (receipt.get("coupons_used") or receipt.get("issued_coupons")) and coupons.emptied(receipt):
            given_back, voided = coupons.at_return(tx, receipt)  # spec §13: the return that empties it
        tx.put("receipts", key, receipt, f"receipt {receipt_id}")
        record = {
            "id": return_id,
            "receipt": receipt_id,
            "at": at.iso,
            "refund": refund,
            "points": moved,
            "referral": referral,
            "shift": tx.meta["shift"],
            "tenders": split,
            "card_type_after": type_after,
        }
        tx.put_new("returns", keys.text(return_id, "return id"), record, f"return {return_id}")
        seq = tx.event(
            "return",
            at,
            {
                "return": return_id,
                "receipt": receipt_id,
                "card": receipt["card"],
                "card_type": receipt["type_before"],
                "money": refund["money"],
                "redeem_amount": refund["redeem_amount"],
                "cumulative_decrease": refund["cumulative_decrease"],
                "restored": moved.get("restored", 0),
                "annulled": moved.get("annulled", 0),
                "clawed": moved.get("clawed", 0),
                "debt": moved.get("debt", 0),
                "tenders": split or [],
                "vat": refund.get("vat", []),
                "referral": referral,
                "lines": event_lines(refund),


                "card_type_after": type_after,
                **({"coupons_restored": given_back} if given_back else {}),
                **({"coupons_voided": voided} if voided else {}),
            },
        )
        return {
            "return": return_id,
            "receipt": receipt_id,
            "seq": seq,
            "refund": refund,
            "points": moved,
            "tenders": split,
            "shift": record["shift"],
            "referral": referral,
            "card_type_after": type_after,
            "coupons_restored": given_back,
            "coupons_voided": voided,
        }

    return write(store, return_id, "return", request, body)
