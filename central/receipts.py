"""`GET /v1/receipts/<id>`: a sale as central stored it, for a return at another terminal.

The reply is the sale event's receipt id, terminal, card, totals, lines and gifts (the lines in
cart order, as the selling terminal committed them; `lines` is null for a sale from a terminal
that did not send them yet), the card's `lots` entries of the sale (the dates its redeemed points
came from), and `returns`: every return of the receipt stored here, from any terminal, with what
it gave back per line (`lines` null for a terminal that did not send them) — so the returning
terminal counts them towards the remainders. Receipt ids are unique per terminal: when several terminals used
one, the caller names the terminal (`?terminal=T01`), else the reply is 409 `ambiguous` listing
them. Limits: `RECEIPT_MATCHES_MAX` matches read (central/store.py).
"""

from __future__ import annotations

from typing import Any

from protocol import wire

SALE_FIELDS = ("at", "card", "card_type", "subtotal", "discount", "total", "to_pay", "tenders", "redeemed",
               "redeemed_money", "accrued", "referral")


class AmbiguousReceipt(wire.ProtocolError):
    status = 409
    code = "ambiguous"


def entry(terminal: str, epoch: int, seq: int, body: bytes) -> dict[str, Any]:
    event = wire.unpack(body, wire.BATCH_BYTES_MAX)
    out = {"receipt": event["receipt"], "terminal": terminal, "epoch": epoch, "seq": seq}
    out.update({name: event.get(name) for name in SALE_FIELDS})
    out["lines"] = event.get("lines")
    out["gifts"] = event.get("gifts", [])
    for name in ("coupons", "issued_coupons"):  # spec §13: the return that empties it restores and voids
        if event.get(name):
            out[name] = event[name]
    card = event.get("card")
    out["lots"] = (event.get("lots") or {}).get(card, []) if card else []
    out["returns"] = []
    return out


def returns_of(found: list[tuple[str, int, int, bytes]]) -> list[dict[str, Any]]:
    """The stored return events of a receipt as the reply's `returns`: the points a return moved
    are split as core.refund counts them (restored = given back + annulled; clawed = taken +
    booked as debt)."""
    out = []
    for terminal, _epoch, _seq, body in found:
        event = wire.unpack(body, wire.BATCH_BYTES_MAX)
        out.append({
            "return": event["return"],
            "terminal": terminal,
            "money": event["money"],
            "points_restored": event["restored"] + event["annulled"],
            "points_clawed": event["clawed"] + event["debt"],
            "lines": event.get("lines"),
            "referral": [{k: r[k] for k in ("card", "points", "cumulative")} for r in event.get("referral") or []],
        })
    return out


def pick(receipt: str, found: list[tuple[str, int, int, bytes]], terminal: str | None) -> dict[str, Any] | None:
    """The one stored sale of `receipt` (of `terminal` when given); None when there is none."""
    if terminal is not None:
        found = [row for row in found if row[0] == terminal]
    if not found:
        return None
    terminals = sorted({row[0] for row in found})
    if len(terminals) > 1:
        raise AmbiguousReceipt(f"receipt {receipt} was used by terminals {', '.join(terminals)}; add ?terminal=")
    return entry(*found[-1])  # one terminal: its newest epoch's sale
