"""CSV import (cards with opening balances, catalog) and export of balances, for technicians.

cards.csv   number,type,holder,cumulative,balance,expires_at,referrer
            cumulative in minor units; balance in points (≥ 0; an opening lot available from the
            import moment, expiring at `expires_at` (ISO-8601 with offset) or never when empty);
            referrer: empty or card numbers separated by `|` (level 1 first).
catalog.csv sku,barcode,name,price,categories,no_discount,no_bonus,min_price[,vat]
            price/min_price in minor units; barcode and categories: several separated by `|`;
            flags: 1/0, true/false, yes/no or empty (= no); vat: the VAT rate inside the price in
            percent ("20", "10", "0"; empty = outside VAT); a file without the column has none.

A file with any bad row imports nothing and raises ImportRowsError listing (row, field,
problem) — rows are numbered as in a spreadsheet, the header being row 1. `force=True` imports
the good rows and returns the problems. One import is one transaction, idempotent by the file's
SHA-256 (importing the same file twice changes nothing). Limits: 32 MiB, 200 000 rows,
256 characters a field. Opening balances count as confirmed by the server (the migration seeds
both sides), so they go to server_balance, not local_delta.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from terminal.files import read_bounded
from terminal.ledger import cards, catalog, fields, keys, moments, updates
from terminal.ledger.errors import ImportRowsError, LedgerError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

FILE_BYTES_MAX = 32 * 1024 * 1024
ROWS_MAX = 200_000
FIELD_CHARS_MAX = 256
CARD_COLUMNS = ["number", "type", "holder", "cumulative", "balance", "expires_at", "referrer"]
CATALOG_COLUMNS = [
    "sku",
    "barcode",
    "name",
    "price",
    "categories",
    "no_discount",
    "no_bonus",
    "min_price",
]
CATALOG_OPTIONAL = ["vat"]
_FLAGS = {"": False, "0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}

Problem = tuple[int, str, str]


class RowError(Exception):
    """One bad field of one row (internal: collected into the import report)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def read_rows(
    path: str | Path, columns: list[str], optional: list[str] | None = None
) -> tuple[bytes, list[tuple[int, dict[str, str]]]]:
    optional = optional or []
    path = Path(path)
    data = read_bounded(path, FILE_BYTES_MAX, "CSV", LedgerError)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LedgerError(f"{path}: not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    names = None if header is None else [h.strip() for h in header]
    extra = [] if names is None else names[len(columns):]
    if names is not None and names[: len(columns)] == columns and extra and extra == optional[: len(extra)]:
        columns = names  # the optional columns that are there, in order
    elif names != columns:
        raise LedgerError(f"{path}: row 1 must be the header {','.join(columns + optional)}")
    rows: list[tuple[int, dict[str, str]]] = []
    for number, row in enumerate(reader, start=2):
        if len(rows) >= ROWS_MAX:
            raise LedgerError(f"{path}: more than {ROWS_MAX} rows")
        if not row or all(not cell.strip() for cell in row):
            continue
        rows.append(
            (
                number,
                dict(zip(columns, [c.strip() for c in row], strict=False))
                | ({"__width": str(len(row)), "__want": str(len(columns))}),
            )
        )
    return data, rows


def _int(row: dict[str, str], field: str, low: int = 0, high: int = 10**15) -> int:
    raw = row.get(field, "")
    if not raw.lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise RowError(field, f"expected a whole number {low}..{high}, got {raw!r}")
    return int(raw)


def _check_row(row: dict[str, str], columns: list[str]) -> None:
    want = row.pop("__want")
    if row.pop("__width") != want:
        raise RowError("*", f"expected {want} fields")
    for name in columns:
        if len(row[name]) > FIELD_CHARS_MAX:
            raise RowError(name, f"longer than {FIELD_CHARS_MAX} characters")


def _card_row(row: dict[str, str]) -> dict[str, Any]:
    _check_row(row, CARD_COLUMNS)
    referrers = [r for r in row["referrer"].split("|") if r]
    checks = (
        ("number", lambda: keys.text(row["number"], "card number")),
        ("type", lambda: fields.text(row["type"], "type", cards.TYPE_CHARS_MAX, empty=True)),
        (
            "holder",
            lambda: fields.text(row["holder"], "holder", cards.HOLDER_CHARS_MAX, empty=True),
        ),
        ("referrer", lambda: [keys.text(r, "referrer") for r in referrers]),
        ("referrer", lambda: fields.items(referrers, "referrer", cards.REFERRERS_MAX)),
    )
    for field, check in checks:
        try:
            check()
        except LedgerError as exc:
            raise RowError(field, str(exc)) from None
    record = cards.new_record(
        row["number"], row["type"], row["holder"], referrers, _int(row, "cumulative")
    )
    balance = _int(row, "balance", 0, 10**12)
    try:
        end = moments.optional(row["expires_at"] or None, "expires_at")
    except LedgerError as exc:
        raise RowError("expires_at", str(exc)) from None
    return {"record": record, "balance": balance, "end": end}


def _catalog_row(row: dict[str, str]) -> dict[str, Any]:
    _check_row(row, CATALOG_COLUMNS)
    flags = {}
    for name in ("no_discount", "no_bonus"):
        if row[name].lower() not in _FLAGS:
            raise RowError(name, f"expected 1/0, true/false or yes/no, got {row[name]!r}")
        flags[name] = _FLAGS[row[name].lower()]
    raw = {
        "sku": row["sku"],
        "barcodes": [b for b in row["barcode"].split("|") if b],
        "name": row["name"],
        "price": _int(row, "price", 0, catalog.PRICE_MAX),
        "categories": [c for c in row["categories"].split("|") if c],
        "min_price": _int(row, "min_price", 0, catalog.PRICE_MAX) if row["min_price"] else 0,
        **flags,
        **({"vat": row["vat"]} if row.get("vat") else {}),
    }
    try:
        return catalog.check_product(raw, "row")
    except LedgerError as exc:
        message = str(exc)
        field = next((f for f in CATALOG_COLUMNS + CATALOG_OPTIONAL if f"'{f}" in message), "sku")
        raise RowError(field, message) from None


def _parse(
    rows: list[tuple[int, dict[str, str]]], parse: Callable[[dict[str, str]], Any], unique: str
) -> tuple[list[tuple[int, Any]], list[Problem]]:
    good, problems, seen = [], [], set()
    for number, row in rows:
        key = row.get(unique, "")
        try:
            value = parse(row)
            if key in seen:
                raise RowError(unique, f"{key!r} appears twice in the file")
        except RowError as exc:
            problems.append((number, exc.field, str(exc)))
            continue
        seen.add(key)
        good.append((number, value))
    return good, problems


def _finish(path: str | Path, problems: list[Problem], force: bool) -> None:
    if problems and not force:
        raise ImportRowsError(str(path), problems)


def import_cards(store: Store, path: str | Path, now: Any, force: bool = False) -> dict[str, Any]:
    at = moments.moment(now, "now")
    data, rows = read_rows(path, CARD_COLUMNS)
    good, problems = _parse(rows, _card_row, "number")
    _finish(path, problems, force)

    def body(tx: Tx) -> dict[str, Any]:
        imported, late = 0, []
        for number, item in good:
            record = item["record"]
            if tx.card_exists(record["number"]):
                late.append((number, "number", f"card {record['number']} is already in the ledger"))
                continue
            tx.new_card(record)
            if item["balance"]:
                if item["end"] is not None and item["end"].ms <= at.ms:
                    late.append((number, "expires_at", "already expired"))
                    continue
                updates.correct_balance(
                    tx, record["number"], item["balance"], at, "import", item["end"]
                )
            imported += 1
        if late and not force:
            raise ImportRowsError(str(path), late)
        seq = tx.event("import", at, {"what": "cards", "rows": imported})
        return {"imported": imported, "problems": problems + late, "seq": seq}

    return _run(store, "cards", data, good, force, body)


def import_catalog(store: Store, path: str | Path, now: Any, force: bool = False) -> dict[str, Any]:
    at = moments.moment(now, "now")
    data, rows = read_rows(path, CATALOG_COLUMNS, CATALOG_OPTIONAL)
    good, problems = _parse(rows, _catalog_row, "sku")
    _finish(path, problems, force)

    def body(tx: Tx) -> dict[str, Any]:
        imported, late = 0, []
        for number, product in good:
            try:
                catalog.put(tx, product)
            except LedgerError as exc:
                late.append((number, "barcode", str(exc)))
                continue
            imported += 1
        if late and not force:
            raise ImportRowsError(str(path), late)
        seq = tx.event("import", at, {"what": "catalog", "rows": imported})
        return {"imported": imported, "problems": problems + late, "seq": seq}

    return _run(store, "catalog", data, good, force, body)


def _run(
    store: Store,
    what: str,
    data: bytes,
    good: list[Any],
    force: bool,
    body: Callable[[Tx], dict[str, Any]],
) -> dict[str, Any]:
    op_id = f"import-{what}:{hashlib.sha256(data).hexdigest()[:40]}"
    result = write(store, op_id, "import", {"force": force, "rows": len(good)}, body)
    result["problems"] = [tuple(p) for p in result["problems"]]
    return result


EXPORT_COLUMNS = [
    "number",
    "type",
    "holder",
    "cumulative",
    "balance",
    "available",
    "held",
    "debt",
    "server_balance",
    "server_version",
    "local_delta",
    "blocked",
]


def export_balances(store: Store, out: TextIO, now: Any, rows_max: int = 10_000_000) -> int:
    """Write every card's balances as CSV; returns the number of cards written."""
    from terminal.ledger import reports

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for row in reports.balances(store, now, rows_max):
        writer.writerow([row[c] for c in EXPORT_COLUMNS])
        count += 1
    return count
