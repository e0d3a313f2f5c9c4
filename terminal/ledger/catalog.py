"""The local catalog: products by sku, and a barcode index (barcode → sku).

A product: {sku, barcodes, name, price, categories, no_discount, no_bonus, min_price, vat?}; prices in
minor units; `vat` the VAT rate inside the price (percent, ≤ 2 decimals, kept as the text the pricing
core reads: "20", "7.5"; absent = outside VAT).
Limits: sku/barcode ≤ 64 chars, name ≤ 256, ≤ 16 categories, ≤ 16 barcodes.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import lmdb

from terminal.ledger import codec, fields, keys
from terminal.ledger.errors import LedgerInputError, LedgerNotFoundError
from terminal.ledger.tx import Tx

CATEGORIES_MAX = 16
BARCODES_MAX = 16
PRICE_MAX = 10**11
PRODUCT_FIELDS = frozenset(
    {
        "sku",
        "barcodes",
        "name",
        "price",
        "categories",
        "no_discount",
        "no_bonus",
        "min_price",
        "deleted",
        "vat",
    }
)
VAT = re.compile(r"^(100|[0-9]{1,2})(\.[0-9]{1,2})?$")


def check_product(raw: Any, where: str) -> dict[str, Any]:
    p = fields.mapping(raw, where, PRODUCT_FIELDS)
    sku = keys.name(p.get("sku"), f"{where} field 'sku'")
    if p.get("deleted"):
        return {"sku": sku, "deleted": True}
    barcodes = fields.items(p.get("barcodes", []), f"{where} field 'barcodes'", BARCODES_MAX)
    for code in barcodes:
        keys.text(code, f"{where} barcode")
    categories = fields.items(
        p.get("categories", []), f"{where} field 'categories'", CATEGORIES_MAX
    )
    for cat in categories:
        fields.text(cat, f"{where} category", 128)
    price = fields.whole(p.get("price"), f"{where} field 'price'", 0, PRICE_MAX)
    min_price = fields.whole(p.get("min_price", 0), f"{where} field 'min_price'", 0, PRICE_MAX)
    if min_price > price:
        raise LedgerInputError(f"{where}: min_price {min_price} is above price {price}")
    vat = p.get("vat")
    return {
        **({} if vat is None or vat == "" else {"vat": vat_text(vat, f"{where} field 'vat'")}),
        "sku": sku,
        "barcodes": list(barcodes),
        "name": fields.text(p.get("name"), f"{where} field 'name'"),
        "price": price,
        "categories": list(categories),
        "no_discount": fields.flag(p.get("no_discount", False), f"{where} 'no_discount'"),
        "no_bonus": fields.flag(p.get("no_bonus", False), f"{where} 'no_bonus'"),
        "min_price": min_price,
    }


def vat_text(value: Any, where: str) -> str:
    """A VAT rate (int or decimal text, 0..100, ≤ 2 decimals) → its canonical text ("20", "7.5")."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not VAT.match(text) or Decimal(text) > 100:
        raise LedgerInputError(f"{where}: a VAT rate is a percent 0..100 with ≤ 2 decimals, got {value!r}")
    shown = format(Decimal(text).normalize(), "f")
    return shown


def put(tx: Tx, product: dict[str, Any]) -> None:
    """Insert, replace or (with `deleted`) remove a product, keeping the barcode index right."""
    key = keys.text(product["sku"], "sku")
    old = tx.get("catalog", key, f"product {product['sku']}")
    if old is not None:
        for code in old["barcodes"]:
            tx.delete("barcodes", keys.text(code, "barcode"))
    if product.get("deleted"):
        if old is not None:
            tx.delete("catalog", key)
        return
    for code in product["barcodes"]:
        code_key = keys.text(code, "barcode")
        owner = tx.txn.get(code_key, db=tx.dbs["barcodes"])
        if owner is not None:
            owner = codec.opened(code_key, owner, f"barcode {code}")
            if keys.read_text(owner) != product["sku"]:
                raise LedgerInputError(
                    f"barcode {code}: already belongs to sku {keys.read_text(owner)}"
                )
        tx.txn.put(code_key, codec.seal(code_key, key), db=tx.dbs["barcodes"])
    tx.put("catalog", key, product, f"product {product['sku']}")


def lookup(txn: lmdb.Transaction, dbs: dict[str, Any], code: str) -> dict[str, Any]:
    """A product by sku or barcode."""
    key = keys.text(code, "sku or barcode")
    raw = txn.get(key, db=dbs["catalog"])
    if raw is None:
        sealed = txn.get(key, db=dbs["barcodes"])
        if sealed is not None:
            key = codec.opened(key, sealed, f"barcode {code}")
            raw = txn.get(key, db=dbs["catalog"])
    if raw is None:
        raise LedgerNotFoundError(f"product {code}: no such sku or barcode in the catalog")
    product: dict[str, Any] = codec.load(key, raw, f"product {code}")
    return product
