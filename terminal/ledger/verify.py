"""`verify`: a read-only check of the whole file, for technicians and after crashes.

Checks: the meta record; every card's balance (server + local) = Σ of its lots, and the lot
sum and count its record carries (`lots_points`, `lots_count`, which the write transactions
check against instead of walking the lots) equal to the walk's; every lot well-formed (only the
debt lot negative) and belonging to a known card; the outbox gap-free from its first kept event
to next_seq − 1 and covering acked_seq + 1 onwards; returns naming existing receipts that list
them, with refunds never exceeding the sale; holds of known cards; the barcode index pointing at
products that list the barcode. Limit: `PROBLEMS_MAX` reported.
"""

from __future__ import annotations

from typing import Any

import lmdb

from terminal.ledger import codec, keys, lots
from terminal.ledger.errors import LedgerError
from terminal.ledger.store import FORMATS_READ, Store

PROBLEMS_MAX = 1_000


class _Problems(list[str]):
    def add(self, text: str) -> None:
        if len(self) < PROBLEMS_MAX:
            self.append(text)


def _cards_and_lots(txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems) -> int:
    sums: dict[str, int] = {}
    counts: dict[str, int] = {}
    for key, raw in txn.cursor(db=dbs["lots"]):
        try:
            number, _, _ = keys.read_lot(bytes(key))
            lot = lots.decode(bytes(key), raw, f"lot of card {number}")
            lots.check_lot(number, bytes(key), lot)
        except LedgerError as exc:
            out.add(f"lot {bytes(key).hex()[:40]}…: {exc}")
            continue
        sums[number] = sums.get(number, 0) + lot["points"]
        counts[number] = counts.get(number, 0) + 1
    count = 0
    for key, raw in txn.cursor(db=dbs["cards"]):
        count += 1
        number = keys.read_text(bytes(key))
        try:
            card = codec.unpack(raw, f"card {number}")
        except LedgerError as exc:
            out.add(str(exc))
            continue
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
    for number in sorted(sums):
        out.add(f"card {number}: has lots but no card record")
    return count


def _outbox(
    txn: lmdb.Transaction, dbs: dict[str, Any], meta: dict[str, Any], out: _Problems
) -> int:
    expected = None
    count = 0
    for key, raw in txn.cursor(db=dbs["outbox"]):
        seq = keys.read_u64(bytes(key))
        if expected is None:
            if seq > meta["acked_seq"] + 1:
                out.add(
                    f"outbox: first event {seq}, but events from {meta['acked_seq'] + 1} "
                    "are not acked yet"
                )
        elif seq != expected:
            out.add(f"outbox: gap, expected sequence {expected}, found {seq}")
        try:
            event = codec.unpack(raw, f"event {seq}")
            if event["seq"] != seq or event["epoch"] != meta["epoch"]:
                out.add(f"outbox: event under key {seq} says seq {event['seq']}")
        except LedgerError as exc:
            out.add(str(exc))
        expected = seq + 1
        count += 1
    last = meta["next_seq"] - 1
    if (expected or 1) - 1 != last and not (expected is None and last == meta["acked_seq"]):
        out.add(f"outbox: last event is {(expected or 1) - 1}, meta says {last}")
    if not 0 <= meta["acked_seq"] <= last:
        out.add(f"outbox: acked_seq {meta['acked_seq']} outside 0..{last}")
    return count


def _returns(txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems) -> int:
    count = 0
    for _key, raw in txn.cursor(db=dbs["returns"]):
        count += 1
        record = codec.unpack(raw, "return")
        found = txn.get(keys.text(record["receipt"]), db=dbs["receipts"])
        if found is None:
            out.add(f"return {record['id']}: receipt {record['receipt']} is missing")
            continue
        receipt = codec.unpack(found, f"receipt {record['receipt']}")
        if record["id"] not in receipt["returns"]:
            out.add(f"return {record['id']}: receipt {record['receipt']} does not list it")
    for _key, raw in txn.cursor(db=dbs["receipts"]):
        receipt = codec.unpack(raw, "receipt")
        quote, refunds = receipt["quote"], receipt["refunds"]
        if (
            sum(r["money"] for r in refunds) > quote["to_pay"]
            or sum(r["points_restored"] for r in refunds) > quote["redeem"]["points"]
            or sum(r["points_clawed"] for r in refunds) > quote["accrual"]["points"]
        ):
            out.add(f"receipt {receipt['id']}: its returns give back more than the sale")
    return count


def _holds_and_catalog(txn: lmdb.Transaction, dbs: dict[str, Any], out: _Problems) -> None:
    for key, _ in txn.cursor(db=dbs["holds"]):
        card_key = bytes(key)[: keys.TEXT_KEY_BYTES]
        if txn.get(card_key, db=dbs["cards"]) is None:
            out.add(f"hold of unknown card {keys.read_text(card_key)}")
    for key, sku_key in txn.cursor(db=dbs["barcodes"]):
        code = keys.read_text(bytes(key))
        raw = txn.get(bytes(sku_key), db=dbs["catalog"])
        if raw is None or code not in codec.unpack(raw, "product")["barcodes"]:
            out.add(
                f"barcode {code}: points at sku {keys.read_text(bytes(sku_key))}, "
                "which does not list it"
            )


def verify(store: Store) -> dict[str, Any]:
    out = _Problems()
    with store.env.begin() as txn:
        meta = store.read_meta(txn)
        if meta.get("format") not in FORMATS_READ:
            out.add(f"meta: format {meta.get('format')}, expected one of {sorted(FORMATS_READ)}")
        cards = _cards_and_lots(txn, store.dbs, out)
        events = _outbox(txn, store.dbs, meta, out)
        returns = _returns(txn, store.dbs, out)
        _holds_and_catalog(txn, store.dbs, out)
        receipts = txn.stat(store.dbs["receipts"])["entries"]
    return {
        "ok": not out,
        "problems": list(out),
        "cards": cards,
        "events": events,
        "receipts": receipts,
        "returns": returns,
    }
