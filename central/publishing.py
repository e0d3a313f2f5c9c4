"""What `publish` puts in the feed: rules, the catalog and the card file, each checked first
(`central.checks`, `protocol.cardfile`) so nothing a terminal would refuse is published.

One code path for the CLI (`posterm-central publish …`) and the web console: both read the
input, call `*_items`/`read_cards` to validate it (a `CheckError` or `CardFileError` names the
row and field; nothing is written), then `publish_*` to write it.
Limits: products go out in chunks of `PUBLISH_CHUNK_ROWS` (one transaction each).
"""

from __future__ import annotations

import csv
import hashlib
import io
from typing import Any

from central import checks
from central.balances import CardState
from central.store import Store
from protocol import cardfile

PUBLISH_CHUNK_ROWS = 5_000
CATALOG_ROWS_MAX = 1_000_000
Product = tuple[str, dict[str, Any]]  # (where, product)


def content_label(data: bytes) -> str:
    """The default version label: the content's hash."""
    return hashlib.sha256(data).hexdigest()[:16]


def check_rules(text: str, source: str, label: str | None) -> str:
    """The version label of rules a terminal compiles (CheckError otherwise)."""
    checks.rules(text, source)  # exactly as a terminal compiles them: a bad tree never reaches the feed
    return checks.version(label or content_label(text.encode()), "rules")


def publish_rules(store: Store, text: str, version: str) -> int:
    return store.publish("rules", [("rules", {"version": version, "text": text})])


def current_rules(store: Store) -> tuple[int, dict[str, Any]] | None:
    """(cursor, {version, text}) of the published rules, or None."""
    rows = store._query("SELECT cursor FROM feed WHERE kind = 'rules' AND key = 'rules'")
    if not rows:
        return None
    found = store.feed_items(int(rows[0][0]) - 1, 1)
    return (found[0][0], found[0][3]) if found else None


def catalog_items(text: str, source: str, stored: dict[str, list[str]]) -> list[Product]:
    """The products of a catalog CSV, each checked as a terminal's ledger checks it."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) > CATALOG_ROWS_MAX:
        raise checks.CheckError(f"{source}: {len(rows)} rows, more than {CATALOG_ROWS_MAX}")
    items = [(f"{source} row {i + 2}", product(row, f"{source} row {i + 2}")) for i, row in enumerate(rows)]
    checks.products(items, stored)
    return items


def publish_catalog(store: Store, items: list[Product], version: str) -> int:
    products = [p for _, p in items]
    for start in range(0, len(products), PUBLISH_CHUNK_ROWS):
        chunk = products[start : start + PUBLISH_CHUNK_ROWS]
        store.publish("product", [(p["sku"], p) for p in chunk])
    return store.publish("version", [("catalog", {"version": version})])


def _int(text: str | None, where: str, default: int | None = None) -> int:
    if (text is None or text == "") and default is not None:
        return default
    try:
        return int(text or "")
    except ValueError:
        raise checks.CheckError(f"{where}: {text!r} is not an integer") from None


def _flag(row: dict[str, str], name: str) -> bool:
    return (row.get(name) or "").strip().lower() in ("1", "true", "yes")


def product(row: dict[str, str], where: str) -> dict[str, Any]:
    """One catalog CSV row as a feed product (columns: docs/protocol.md)."""
    sku = (row.get("sku") or "").strip()
    if not sku:
        raise checks.CheckError(f"{where}: sku is empty")
    if _flag(row, "deleted"):
        return {"sku": sku, "deleted": True}

    def split(name: str) -> list[str]:
        return [x.strip() for x in (row.get(name) or "").split("|") if x.strip()]

    return {
        "sku": sku,
        "barcodes": split("barcodes"),
        "name": (row.get("name") or "").strip() or sku,
        "price": _int(row.get("price"), f"{where} price"),
        "categories": split("categories"),
        "no_discount": _flag(row, "no_discount"),
        "no_bonus": _flag(row, "no_bonus"),
        "min_price": _int(row.get("min_price"), f"{where} min_price", 0),
        # age-restricted products (18 = adults only) wait for an attendant at the kiosk
        **({"age_min": _int(row.get("age_min"), f"{where} age_min", 0)} if (row.get("age_min") or "").strip() else {}),
        # the VAT rate inside the price, as text ("20"); terminals check it (terminal.ledger.catalog)
        **({"vat": row["vat"].strip()} if (row.get("vat") or "").strip() else {}),
    }


def read_cards(data: bytes, now_ms: int, source: str) -> tuple[list[cardfile.CardRow], list[cardfile.Problem]]:
    """The card file's good rows and its problems (protocol/cardfile.py: the terminal's
    `ledger import-cards` reads the same rows and refuses the same ones)."""
    good, problems = cardfile.read(data, now_ms, source)
    return [row for _, row in good], problems


def publish_cards(store: Store, rows: list[cardfile.CardRow]) -> int:
    for start in range(0, len(rows), PUBLISH_CHUNK_ROWS):
        chunk = rows[start : start + PUBLISH_CHUNK_ROWS]
        store.put_cards(
            [card_state(row) for row in chunk],
            {row.number: row.expires_ms for row in chunk if row.expires_ms is not None},
            {row.number: row.facts() for row in chunk},
        )
    return len(rows)


def card_state(row: cardfile.CardRow) -> CardState:
    return CardState(
        number=row.number,
        type=row.type,
        holder=row.holder,
        referrers=list(row.referrers),
        cumulative=row.cumulative,
        blocked=row.blocked,
        balance=row.balance,
    )
