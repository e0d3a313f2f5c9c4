"""A small chain's history for the report and admin API tests: two terminals' signed batches of
sales (with lines), a return, a terminal's expiry, a published card file and catalog item, then
the server's sweep. `EXPECTED` spells out, from these inputs, what each report must say."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from central.balances import CardState
from central.store import Store
from protocol import wire
from tests.central.events import complete


def ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day + "T00:00:00+00:00").timestamp() * 1000)


def iso(day: str) -> str:
    return day + "T00:00:00+00:00"


DAY1, DAY2 = "2027-01-10", "2027-01-11"
MAR, JUN = "2027-03-15", "2027-06-30"
NOON = 12 * 3_600_000
SWEEP_DAY = "2027-03-20"


def line(sku: str, qty_milli: int, price: int, discount: int = 0, redeem: int = 0) -> dict[str, Any]:
    amount = price * qty_milli // 1000
    return {"sku": sku, "qty_milli": qty_milli, "price": price, "amount": amount, "discount": discount,
            "redeem_amount": redeem, "paid": amount - discount - redeem, "rules": []}


def sale(day: str, card: str | None, card_type: str | None, lines: list[dict[str, Any]], redeemed: int = 0,
         accrued: int = 0, lots: dict[str, list[dict[str, Any]]] | None = None, **extra: Any) -> dict[str, Any]:
    subtotal = sum(x["amount"] for x in lines)
    discount = sum(x["discount"] for x in lines)
    money = sum(x["redeem_amount"] for x in lines)
    event = {
        "type": "sale", "at_ms": ms(day) + NOON, "card": card, "card_type": card_type, "subtotal": subtotal,
        "discount": discount, "total": subtotal - discount, "to_pay": subtotal - discount - money,
        "redeemed": redeemed, "redeemed_money": money, "accrued": accrued, "lines": lines,
        "deltas": {card: accrued - redeemed} if card and accrued != redeemed else {}, **extra,
    }
    if lots is not None:
        event["lots"] = lots
    return event


def entry(points: int, expires: str | None) -> dict[str, Any]:
    return {"points": points, "available_from": None, "expires_at": iso(expires) if expires else None}


REFERRAL = {"card": "C9", "level": 1, "points": 5, "cumulative": 0, "local": False}
T01 = [
    sale(DAY1, "C1", "silver", [line("A", 2000, 300, 100, 50), line("B", 1000, 400)], redeemed=50, accrued=30,
         lots={"C1": [entry(-50, JUN), entry(30, MAR)]}, referral=[REFERRAL]),
    sale(DAY2, "C2", "gold", [line("A", 4000, 300), line("C", 4000, 200)], accrued=100),
    {"type": "return", "at_ms": ms(DAY2) + NOON, "return": "r1", "receipt": "x", "card": "C1", "money": 450,
     "annulled": 10, "deltas": {"C1": -10}},
]
T02 = [
    sale(DAY1, None, None, [line("B", 1000, 400), line("C", 500, 200)]),
    {"type": "expiry", "at_ms": ms(DAY2) + NOON, "card": "C2", "points": 7, "deltas": {}},
]
CATALOG = {"A": "Apple", "B": "Bread"}

EXPECTED = {
    # day: earned, redeemed, expired (sweep), expired_terminal, restored, annulled
    "points_daily": {DAY1: (35, 50, 0, 0, 0, 0), DAY2: (100, 0, 0, 7, 0, 10), SWEEP_DAY: (0, 0, 20, 0, 0, 0)},
    # (day, store): receipts, subtotal, discount, total, redeemed_money, returned
    "sales_daily": {(DAY1, "T01"): (1, 1000, 100, 900, 50, 0), (DAY1, "T02"): (1, 500, 0, 500, 0, 0),
                    (DAY2, "T01"): (1, 2000, 0, 2000, 0, 450)},
    # level: receipts, total, discount, redeemed, accrued (biggest total first)
    "sales_by_level": [("gold", 1, 2000, 0, 0, 100), ("silver", 1, 900, 100, 50, 30), ("(no card)", 1, 500, 0, 0, 0)],
    # sku, name, qty_milli, amount, discount, paid, receipts (most paid first)
    "top_products": [("A", "Apple", 6000, 1800, 100, 1650, 2), ("C", "C", 4500, 900, 0, 900, 2),
                     ("B", "Bread", 2000, 800, 0, 800, 2)],
    # before the sweep, as of DAY2 + 1: C1 holds 50 (June) + 20 (March), C2 100 (never), C9 5 (never)
    "liability": {"2027-03": 20, "2027-06": 50, "never": 105},
}
OPENING = [CardState("C1", balance=100, type="silver"), CardState("C2", type="gold")]


def send(store: Store, terminal: str, key: bytes, bodies: list[dict[str, Any]]) -> None:
    """One signed batch, as `POST /v1/batches` takes it: the MAC over the body is the request's."""
    events = [complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": i + 1, **b}) for i, b in enumerate(bodies)]
    body = wire.encode_batch(terminal, 1, b"", events)
    mac = wire.sign(key, body)
    store.ingest(wire.decode_batch(body), bytes.fromhex(mac))


def load(store: Store) -> None:
    """Everything above, up to (not including) the sweep."""
    store.put_cards(OPENING, {"C1": ms(JUN)})
    store.publish("product", [(sku, {"sku": sku, "name": name, "price": 1, "barcodes": []})
                              for sku, name in CATALOG.items()])
    for terminal, bodies in (("T01", T01), ("T02", T02)):
        key = os.urandom(wire.KEY_BYTES)
        store.add_terminal(terminal, key)
        send(store, terminal, key, bodies)


def sweep(store: Store) -> dict[str, Any]:
    return store.expire(ms(SWEEP_DAY))
