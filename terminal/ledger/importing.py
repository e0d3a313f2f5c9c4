"""CSV import (cards with opening balances, catalog) and export of balances, for technicians.

cards.csv   the chain's card file, `protocol/cardfile.py` (also read by `posterm-central publish
            cards`; docs/ledger.md "The card file"): opening balances are a lot available from
            the import moment, expiring at `expires_at` or never; the §12 facts (birth_date,
            issued_on, tags) are kept on the card record.
catalog.csv sku,barcode,name,price,categories,no_discount,no_bonus,min_price[,vat[,age_min]]
            price/min_price in minor units; barcode and categories: several separated by `|`;
            flags: 1/0, true/false, yes/no or empty (= no); vat: the VAT rate inside the price in
            percent ("20", "10", "0"; empty = outside VAT); a file without the column has none.

A file with any bad row imports nothing and raises ImportRowsError listing (row, field,
problem) — rows are numbered as in a spreadsheet, the header being row 1. `force=True` imports
the good rows and returns the problems. One import is one transaction, idempotent by the file's
SHA-256 (importing the same file twice changes nothing). Limits: 32 MiB, 200 000 rows,
256 characters a field (cards: the card file's own limits). Opening balances count as confirmed
by the server (the migration seeds both sides), so they go to server_balance, not local_delta.

Cards are the central server's on a synced terminal: a ledger that has had an event acked or an
update applied refuses `import_cards` (publish the file at central instead), and a ledger with
locally imported cards records them (`meta["local_cards"]`) so its first sync checks that the
server knows them before sending anything (`terminal/sync/seeding.py`).
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from protocol import cardfile
from terminal.files import read_bounded
from terminal.ledger import cards, catalog, moments, updates
from terminal.ledger.errors import ImportRowsError, LedgerError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

FILE_BYTES_MAX = 32 * 1024 * 1024
ROWS_MAX = 200_000
FIELD_CHARS_MAX = 256
SYNCED_REFUSAL = (
    "this terminal syncs with a central server, which owns its cards: publish the file there "
    "(posterm-central publish cards FILE); the cards reach this terminal with the next sync"
)
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
CATALOG_OPTIONAL = ["vat", "age_min"]  # age_min: 18 = adults only (an attendant approves it)
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
    try:
        _collect(reader, rows, path, columns)
    except csv.Error as exc:  # a field past csv's own limit, a stray quote in strict mode…
        raise LedgerError(f"{path}: not a readable CSV file: {exc}") from None
    return data, rows


def _collect(reader: Any, rows: list[tuple[int, dict[str, str]]], path: Path, columns: list[str]) -> None:
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


def _catalog_row(row: dict[str, str]) -> dict[str, Any]:
    _check_row(row, CATALOG_COLUMNS + [c for c in CATALOG_OPTIONAL if c in row])
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
        "age_min": _int(row, "age_min", 0, catalog.AGE_MAX) if row.get("age_min") else 0,
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


def synced(meta: dict[str, Any]) -> bool:
    """The ledger has talked to a central server (an event acked or an update page applied)."""
    return bool(meta.get("acked_seq") or meta.get("last_update"))


def _card_file(path: str | Path, at: moments.Moment) -> tuple[bytes, list[Any], list[Problem]]:
    data = read_bounded(path, cardfile.FILE_BYTES_MAX, "CSV", LedgerError)
    try:
        good, problems = cardfile.read(data, at.ms, str(path))
    except cardfile.CardFileError as exc:
        raise LedgerError(str(exc)) from None
    return data, good, problems


def check_file(path: str | Path, what: str, now: Any) -> int:
    """Every row of a cards or catalog file checked as the import would, without a ledger (for
    `posterm provision`, which must refuse before it writes anything); returns the row count."""
    at = moments.moment(now, "now")
    if what == "cards":
        _, good, problems = _card_file(path, at)
    else:
        _, rows = read_rows(path, CATALOG_COLUMNS, CATALOG_OPTIONAL)
        good, problems = _parse(rows, _catalog_row, "sku")
    _finish(path, problems, False)
    return len(good)


def import_cards(store: Store, path: str | Path, now: Any, force: bool = False) -> dict[str, Any]:
    at = moments.moment(now, "now")
    with store.env.begin() as txn:  # before the op log: a file imported before the sync too
        if synced(store.read_meta(txn)):
            raise LedgerError(f"{path}: not imported: {SYNCED_REFUSAL}")
    data, good, problems = _card_file(path, at)
    _finish(path, problems, force)

    def body(tx: Tx) -> dict[str, Any]:
        if synced(tx.meta):
            raise LedgerError(f"{path}: not imported: {SYNCED_REFUSAL}")
        imported, late = 0, []
        for number, row in good:
            if tx.card_exists(row.number):
                late.append((number, "number", f"card {row.number} is already in the ledger"))
                continue
            record = cards.new_record(
                row.number, row.type, row.holder, list(row.referrers), row.cumulative, row.blocked, row.facts()
            )
            tx.new_card(record)
            if row.balance:
                end = moments.moment(row.expires_at, "expires_at") if row.expires_at else None
                updates.correct_balance(tx, row.number, row.balance, at, "import", end)
            imported += 1
        if late and not force:
            raise ImportRowsError(str(path), late)
        tx.meta["local_cards"] = tx.meta.get("local_cards", 0) + imported
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
