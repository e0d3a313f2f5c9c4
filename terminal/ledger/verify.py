"""`verify`: a read-only check of the whole file, for technicians and after crashes.

Checks: every record of every sub-database against its checksum (a flipped bit anywhere in a
value, or in the key it is stored under, is named: sub-database and key); the meta record;
every card's balance (server + local) = Σ of its lots, and the lot sum and count its record
carries (`lots_points`, `lots_count`, which the write transactions check against instead of
walking the lots) equal to the walk's; every lot well-formed (only the debt lot negative) and
belonging to a known card; the outbox gap-free from its first kept event to next_seq − 1 and
covering acked_seq + 1 onwards; returns naming existing receipts that list them, with refunds
never exceeding the sale; holds of known cards; the barcode index pointing at products that list
the barcode. A damaged record is reported once and left out of the checks that need its content;
a record that passes its checksum but lacks a field is reported, never a crash. Limit:
`PROBLEMS_MAX` reported.
"""

from __future__ import annotations

from typing import Any

import lmdb

from terminal.ledger import codec, keys, lots
from terminal.ledger.errors import LedgerError
from terminal.ledger.store import DB_NAMES, FORMATS_READ, META_KEY, Store

PROBLEMS_MAX = 1_000
_MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError, LedgerError)


class _Problems(list[str]):
    def add(self, text: str) -> None:
        if len(self) < PROBLEMS_MAX:
            self.append(text)


def record_name(db: str, key: bytes) -> str:
    """A record as a technician reads it: sub-database and key (card number, seq, lot id…)."""
    try:
        if db == "outbox":
            return f"outbox event {keys.read_u64(key)}"
        if db == "lots":
            number, _, lot_id = keys.read_lot(key)
            return f"lots: lot {lot_id} of card {number}"
        if db == "holds":
            card, checkout = key[: keys.TEXT_KEY_BYTES], key[keys.TEXT_KEY_BYTES :]
            return f"holds: hold of card {keys.read_text(card)} for checkout {keys.read_text(checkout)}"
        if db == "meta":
            return f"meta record {key.decode('ascii')}"
        return f"{db}: {keys.read_text(key)}"
    except (ValueError, UnicodeDecodeError, LedgerError, IndexError):
        return f"{db}: key {key.hex()[:48]}"


def _checksums(txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems) -> set[tuple[str, bytes]]:
    damaged: set[tuple[str, bytes]] = set()
    for name in DB_NAMES:
        for found, raw in txn.cursor(db=dbs[name]):
            key = bytes(found)
            if not codec.intact(key, raw):
                damaged.add((name, key))
                out.add(f"{record_name(name, key)}: the record fails its checksum (damaged)")
    return damaged


def _cards_and_lots(
    txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems, damaged: set[tuple[str, bytes]]
) -> int:
    sums: dict[str, int] = {}
    counts: dict[str, int] = {}
    for found, raw in txn.cursor(db=dbs["lots"]):
        key = bytes(found)
        if ("lots", key) in damaged:
            continue
        try:
            number, _, _ = keys.read_lot(key)
            lot = lots.decode(key, raw, f"lot of card {number}")
            lots.check_lot(number, key, lot)
        except _MALFORMED as exc:
            out.add(f"{record_name('lots', key)}: {exc}")
            continue
        sums[number] = sums.get(number, 0) + lot["points"]
        counts[number] = counts.get(number, 0) + 1
    count = 0
    for found, raw in txn.cursor(db=dbs["cards"]):
        key = bytes(found)
        count += 1
        if ("cards", key) in damaged:
            continue
        try:
            _card(keys.read_text(key), codec.load(key, raw, "card"), sums, counts, out)
        except _MALFORMED as exc:
            out.add(f"{record_name('cards', key)}: malformed record ({exc!r})")
    for number in sorted(sums):
        out.add(f"card {number}: has lots but no card record")
    return count


def _card(
    number: str, card: dict[str, Any], sums: dict[str, int], counts: dict[str, int], out: _Problems
) -> None:
    balance = card["server_balance"] + card["local_delta"]
    total, lot_count = sums.pop(number, 0), counts.get(number, 0)
    if balance != total:
        out.add(f"card {number}: balance {balance} but its lots add up to {total}")
    # A record from an older build has no summary yet; its first write adds one.
    if "lots_points" in card and (card["lots_points"], card["lots_count"]) != (total, lot_count):
        out.add(
            f"card {number}: its record says {card['lots_points']} points in "
            f"{card['lots_count']} lots, the lots hold {total} in {lot_count}"
        )


def _outbox(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    meta: dict[str, Any],
    out: _Problems,
    damaged: set[tuple[str, bytes]],
) -> int:
    expected = None
    count = 0
    for found, raw in txn.cursor(db=dbs["outbox"]):
        key = bytes(found)
        seq = keys.read_u64(key) if len(key) == 8 else -1
        if expected is None:
            if seq > meta["acked_seq"] + 1:
                out.add(
                    f"outbox: first event {seq}, but events from {meta['acked_seq'] + 1} "
                    "are not acked yet"
                )
        elif seq != expected:
            out.add(f"outbox: gap, expected sequence {expected}, found {seq}")
        if ("outbox", key) not in damaged:
            try:
                event = codec.load(key, raw, f"event {seq}")
                if event["seq"] != seq or event["epoch"] != meta["epoch"]:
                    out.add(f"outbox: event under key {seq} says seq {event['seq']}")
            except _MALFORMED as exc:
                out.add(f"outbox event {seq}: malformed record ({exc!r})")
        expected = seq + 1
        count += 1
    last = meta["next_seq"] - 1
    if (expected or 1) - 1 != last and not (expected is None and last == meta["acked_seq"]):
        out.add(f"outbox: last event is {(expected or 1) - 1}, meta says {last}")
    if not 0 <= meta["acked_seq"] <= last:
        out.add(f"outbox: acked_seq {meta['acked_seq']} outside 0..{last}")
    return count


def _return(txn: lmdb.Transaction, dbs: dict[str, Any], record: dict[str, Any], out: _Problems) -> None:
    receipt_key = keys.text(record["receipt"])
    found = txn.get(receipt_key, db=dbs["receipts"])
    if found is None:
        out.add(f"return {record['id']}: receipt {record['receipt']} is missing")
        return
    receipt = codec.load(receipt_key, found, f"receipt {record['receipt']}")
    if record["id"] not in receipt["returns"]:
        out.add(f"return {record['id']}: receipt {record['receipt']} does not list it")


def _receipt(receipt: dict[str, Any], out: _Problems) -> None:
    quote, refunds = receipt["quote"], receipt["refunds"]
    if (
        sum(r["money"] for r in refunds) > quote["to_pay"]
        or sum(r["points_restored"] for r in refunds) > quote["redeem"]["points"]
        or sum(r["points_clawed"] for r in refunds) > quote["accrual"]["points"]
    ):
        out.add(f"receipt {receipt['id']}: its returns give back more than the sale")


def _each(
    txn: lmdb.Transaction,
    dbs: dict[str, Any],
    name: str,
    damaged: set[tuple[str, bytes]],
) -> Any:
    """(key, value) of every intact record of `name`; a failed check of one is reported."""
    for found, raw in txn.cursor(db=dbs[name]):
        key = bytes(found)
        if (name, key) not in damaged:
            yield key, raw


def _returns(
    txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems, damaged: set[tuple[str, bytes]]
) -> int:
    count = 0
    for key, raw in _each(txn, dbs, "returns", damaged):
        count += 1
        try:
            _return(txn, dbs, codec.load(key, raw, "return"), out)
        except _MALFORMED as exc:
            out.add(f"{record_name('returns', key)}: malformed record or receipt ({exc!r})")
    for key, raw in _each(txn, dbs, "receipts", damaged):
        try:
            _receipt(codec.load(key, raw, "receipt"), out)
        except _MALFORMED as exc:
            out.add(f"{record_name('receipts', key)}: malformed record ({exc!r})")
    return count


def _holds_and_catalog(
    txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems, damaged: set[tuple[str, bytes]]
) -> None:
    for key, _ in _each(txn, dbs, "holds", damaged):
        card_key = key[: keys.TEXT_KEY_BYTES]
        if txn.get(card_key, db=dbs["cards"]) is None:
            out.add(f"{record_name('holds', key)}: the card is unknown")
    for key, sealed in _each(txn, dbs, "barcodes", damaged):
        try:
            sku_key = codec.opened(key, sealed, "barcode")
            raw = txn.get(sku_key, db=dbs["catalog"])
            if raw is None or keys.read_text(key) not in codec.load(sku_key, raw, "product")["barcodes"]:
                out.add(
                    f"barcode {keys.read_text(key)}: points at sku {keys.read_text(sku_key)}, "
                    "which does not list it"
                )
        except _MALFORMED as exc:
            out.add(f"{record_name('barcodes', key)}: malformed index entry ({exc!r})")


def _meta(txn: lmdb.Transaction, store: Store, out: _Problems) -> dict[str, Any] | None:
    raw = txn.get(META_KEY, db=store.dbs["meta"])
    if raw is None:
        out.add("meta: no meta record (not initialised)")
        return None
    if not codec.intact(META_KEY, raw):
        return None  # reported by the checksum pass
    try:
        meta: dict[str, Any] = codec.load(META_KEY, raw, "meta")
        if meta.get("format") not in FORMATS_READ:
            out.add(f"meta: format {meta.get('format')}, expected one of {sorted(FORMATS_READ)}")
        for field in ("epoch", "next_seq", "acked_seq"):
            if type(meta.get(field)) is not int:
                raise ValueError(f"field {field!r} is {meta.get(field)!r}")
        return meta
    except _MALFORMED as exc:
        out.add(f"meta: malformed record ({exc})")
        return None


def verify(store: Store) -> dict[str, Any]:
    out = _Problems()
    with store.env.begin() as txn:
        damaged = _checksums(txn, store.dbs, out)
        meta = _meta(txn, store, out)
        cards = _cards_and_lots(txn, store.dbs, out, damaged)
        events = 0 if meta is None else _outbox(txn, store.dbs, meta, out, damaged)
        returns = _returns(txn, store.dbs, out, damaged)
        _holds_and_catalog(txn, store.dbs, out, damaged)
        receipts = txn.stat(store.dbs["receipts"])["entries"]
    return {
        "ok": not out,
        "damaged": len(damaged),
        "problems": list(out),
        "cards": cards,
        "events": events,
        "receipts": receipts,
        "returns": returns,
    }
