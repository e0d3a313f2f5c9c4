"""Tenders: how a sale is paid and how a return pays back.

A tender as the API gives it: `{"method": "cash", "amount": 5000, "tendered": 10000}` (cash
handed over; the change is computed), `{"method": "card", "amount": 7000}` (through the payment
terminal when one is configured), or any other method the attendant confirms (`voucher`, …).
Points are not a tender: they pay through the quote's redemption, and show on paper as one.
Tenders must add up to the quote's `to_pay` (the ledger checks it again).

Card tenders taken through the payment terminal get an operation id (`<checkout>-a<try>p<N>`) and a
`status` that starts `pending`: the checkout record holds them, fsynced, *before* the terminal is
asked for money, so a restart asks the terminal what became of each instead of charging again.

Refunds go back to the sale's tenders: card tenders first (each at most what it took less what
earlier returns gave back to it, through the payment terminal against the original operation),
then the rest in cash from the drawer. Limits: `TENDERS_MAX`, `CARD_METHODS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from terminal.errors import TerminalError

TENDERS_MAX = 16
CARD_METHODS = frozenset({"card"})
METHOD_CHARS_MAX = 32
TENDER_KEYS = frozenset({"method", "amount", "tendered", "reference"})


class TenderError(TerminalError):
    """A tender the API sent is malformed; nothing changed."""

    status = 400


def _whole(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**15:
        raise TenderError(f"{what} must be whole minor units 0..10^15, got {value!r}")
    return value


def plan(given: list[Any] | None, method: str, to_pay: int, checkout_id: str,
         card_terminal: bool, attempt: int = 1) -> list[dict[str, Any]]:
    """The API's tenders → the tenders to record (change computed, payment operations named)."""
    if given is None:
        given = [{"method": method, "amount": to_pay}]
    if not isinstance(given, list) or len(given) > TENDERS_MAX:
        raise TenderError(f"tenders must be a list of at most {TENDERS_MAX} {{method, amount, tendered?}}")
    out = []
    for i, raw in enumerate(given):
        if not isinstance(raw, dict) or not raw.keys() <= TENDER_KEYS:
            raise TenderError(f"tender {i} must be an object of {', '.join(sorted(TENDER_KEYS))}")
        name = raw.get("method")
        if not isinstance(name, str) or not 0 < len(name) <= METHOD_CHARS_MAX or not name.isprintable():
            raise TenderError(f"tender {i}: method must be 1..{METHOD_CHARS_MAX} printable characters")
        if name == "points":
            raise TenderError(f"tender {i}: points pay through POST /v1/checkout/redeem, not as a tender")
        tender: dict[str, Any] = {"method": name, "amount": _whole(raw.get("amount"), f"tender {i} amount")}
        if "tendered" in raw:
            given_cash = _whole(raw["tendered"], f"tender {i} tendered")
            if name != "cash" or given_cash < tender["amount"]:
                raise TenderError(f"tender {i}: only cash is tendered, at least its amount "
                                  f"({tender['amount']}), got {given_cash}")
            tender |= {"tendered": given_cash, "change": given_cash - tender["amount"]}
        if "reference" in raw:
            ref = raw["reference"]
            if not isinstance(ref, str) or not 0 < len(ref) <= 128 or not ref.isprintable():
                raise TenderError(f"tender {i}: reference must be 1..128 printable characters")
            tender["reference"] = ref
        if card_terminal and name in CARD_METHODS and tender["amount"]:
            # one id per attempt: a declined operation stays declined on the terminal
            tender |= {"op": f"{checkout_id}-a{attempt}p{i + 1}", "status": "pending"}
        out.append(tender)
    if sum(t["amount"] for t in out) != to_pay:
        raise TenderError(f"tenders add up to {sum(t['amount'] for t in out)}, the sale asks {to_pay}")
    return out


def pending(tenders: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in tenders if t.get("status") == "pending"]


def recorded(tenders: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the ledger keeps of each tender (the payment status is the checkout's business)."""
    return [{k: v for k, v in t.items() if k != "status"} for t in tenders]


def change_of(tenders: Sequence[dict[str, Any]]) -> int:
    return sum(int(t.get("change", 0)) for t in tenders)


def has_cash(tenders: Sequence[dict[str, Any]]) -> bool:
    return any(t["method"] == "cash" and t["amount"] for t in tenders)


def refund_split(sale_tenders: Sequence[dict[str, Any]], earlier: Sequence[Sequence[dict[str, Any]]],
                 money: int) -> list[dict[str, Any]]:
    """`money` back over the sale's tenders: card first (what each has left), then cash."""
    given: dict[int, int] = {}
    for split in earlier:
        for part in split:
            given[part["tender"]] = given.get(part["tender"], 0) + part["amount"]
    order = sorted(range(len(sale_tenders)), key=lambda i: sale_tenders[i]["method"] == "cash")
    out, left = [], money
    for i in order:
        tender = sale_tenders[i]
        if tender["method"] == "cash" or left <= 0:
            continue
        room = tender["amount"] - given.get(i, 0)
        part = min(room, left)
        if part > 0:
            item = {"tender": i, "method": tender["method"], "amount": part}
            if "op" in tender:
                item["original"] = tender["op"]
            out.append(item)
            left -= part
    if left > 0:
        cash = next((i for i, t in enumerate(sale_tenders) if t["method"] == "cash"), -1)
        out.append({"tender": cash, "method": "cash", "amount": left})
    return out


def all_cash(sale_tenders: Sequence[dict[str, Any]], money: int) -> list[dict[str, Any]]:
    """`money` back in cash from the drawer, whatever paid the sale (the attendant's fallback when
    a card cannot be refunded here); booked against the sale's cash tender when it had one."""
    if money <= 0:
        return []
    cash = next((i for i, t in enumerate(sale_tenders) if t["method"] == "cash"), -1)
    return [{"tender": cash, "method": "cash", "amount": money}]


def paper_lines(tenders: Sequence[dict[str, Any]], points: int, points_money: int) -> tuple[tuple[str, int], ...]:
    """(label, amount) per tender for the receipt; points show as one."""
    rows = [(f"Points ({points})", points_money)] if points else []
    for t in tenders:
        label = str(t["method"]).capitalize()
        if t.get("card"):
            label += f" {t['card'][-8:]}"
        if t.get("reference"):
            label += f" {t['reference']}"
        rows.append((label, int(t["amount"])))
        if "tendered" in t:
            rows.append(("  Cash given", int(t["tendered"])))
    return tuple(rows)
