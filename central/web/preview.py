"""What new rules would do: a few sample carts priced by the pricing core with the current
published rules and with the uploaded ones, side by side.

The samples are the newest sales central stored (their lines, the card as it is now), topped up
with carts of the published catalog's first products for each card type in use, so a preview
shows something before the first sale. Both sides run the same `core.Engine` a terminal runs.
Limits: `SAMPLE_SALES_MAX` sales, `SAMPLE_CARTS_MAX` carts, `SAMPLE_LINES_MAX` lines a cart.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import core
from central.store import Store
from core.errors import PricingError
from protocol import wire

SAMPLE_SALES_MAX = 4
SAMPLE_CARTS_MAX = 8
SAMPLE_LINES_MAX = 20
SAMPLE_PRODUCTS = 3
SAMPLE_BALANCE_POINTS = 1_000
CARD_TYPES_MAX = 4


def _products(store: Store, skus: list[str] | None) -> dict[str, dict[str, Any]]:
    if skus is None:
        rows = store._query("SELECT key, body FROM feed WHERE kind = 'product' ORDER BY key LIMIT ?", (50,))
    elif not skus:
        return {}
    else:
        marks = ",".join("?" * len(skus))
        rows = store._query(f"SELECT key, body FROM feed WHERE kind = 'product' AND key IN ({marks})", tuple(skus))
    found = {str(k): wire.unpack(bytes(b), wire.BATCH_BYTES_MAX) for k, b in rows}
    return {k: p for k, p in found.items() if not p.get("deleted")}


def _line(sku: str, price: int, qty_milli: int, product: dict[str, Any] | None) -> dict[str, Any]:
    qty: int | Decimal = qty_milli // 1000 if qty_milli % 1000 == 0 else Decimal(qty_milli) / 1000
    line: dict[str, Any] = {"sku": sku, "price": price, "qty": qty}
    if product:
        line.update(categories=list(product.get("categories", [])), no_discount=bool(product.get("no_discount")),
                    no_bonus=bool(product.get("no_bonus")), min_price=int(product.get("min_price", 0)))
    return line


def _card(store: Store, number: str | None, card_type: str | None) -> dict[str, Any] | None:
    if number is None:
        return None
    found = store.card(number)
    if found is None:
        return {"number": number, "type": card_type or "", "cumulative": 0, "balance": 0}
    card = found[0]
    return {"number": number, "type": card.type, "cumulative": card.cumulative, "balance": max(card.balance, 0)}


def sample_carts(store: Store) -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(label, cart, card) of the preview."""
    samples = []
    rows = store._query("SELECT body FROM events WHERE type = 'sale' ORDER BY at_ms DESC LIMIT ?",
                        (SAMPLE_SALES_MAX,))
    for (body,) in rows:
        sale = wire.unpack(bytes(body), wire.BATCH_BYTES_MAX)
        lines = (sale.get("lines") or [])[:SAMPLE_LINES_MAX]
        if not lines:
            continue
        catalog = _products(store, sorted({line["sku"] for line in lines}))
        cart = {"lines": [_line(x["sku"], x["price"], x["qty_milli"], catalog.get(x["sku"])) for x in lines]}
        samples.append((f"receipt {sale['receipt']}", cart, _card(store, sale.get("card"), sale.get("card_type"))))
    catalog = _products(store, None)
    if catalog:
        first = sorted(catalog)[:SAMPLE_PRODUCTS]
        cart = {"lines": [_line(sku, int(catalog[sku]["price"]), 1000, catalog[sku]) for sku in first]}
        samples.append(("catalog sample, no card", cart, None))
        types = [str(r[0]) for r in store._query("SELECT DISTINCT type FROM cards ORDER BY type LIMIT ?",
                                                 (CARD_TYPES_MAX,))]
        for card_type in types:
            card = {"number": "SAMPLE", "type": card_type, "cumulative": 0, "balance": SAMPLE_BALANCE_POINTS}
            samples.append((f"catalog sample, {card_type or 'untyped'} card", cart, card))
    return samples[:SAMPLE_CARTS_MAX]


def _priced(program: core.Program | None, cart: dict[str, Any], card: dict[str, Any] | None,
            now: dt.datetime) -> dict[str, Any] | None:
    if program is None:
        return None
    try:
        quote = core.Engine(program).quote(cart, card, now, None)
    except PricingError as exc:
        return {"error": str(exc)}
    rules = sorted({rule for line in quote["lines"] for rule in line["rules"]})
    return {"subtotal": quote["subtotal"], "discount": quote["discount"], "to_pay": quote["to_pay"],
            "accrued": quote["accrual"]["points"], "max_points": quote["redeem"]["max_points"], "rules": rules}


def compare(store: Store, current: core.Program | None, new: core.Program, now: dt.datetime) -> list[dict[str, Any]]:
    """Each sample priced both ways."""
    return [{"label": label, "lines": len(cart["lines"]), "card": card["type"] if card else None,
             "current": _priced(current, cart, card, now), "new": _priced(new, cart, card, now)}
            for label, cart, card in sample_carts(store)]
