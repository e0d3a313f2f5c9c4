"""The one-time upgrade of a format-1 or format-2 ledger to format 3 (checksummed records).

Formats 1 and 2 stored plain values; format 3 stores `value + CRC-32(key + value)` (see
`codec`). The first open of an older file seals every record of every sub-database and sets the
format in one write transaction: a crash during it leaves the old file as it was, and the next
open starts again. Values are sealed as they are — the upgrade does not judge them; `verify`
still does. It needs free map space about the size of the file (LMDB writes new pages before
freeing the old ones): when full, nothing changes and the refusal says to raise the map size.
"""

from __future__ import annotations

import logging
from typing import Any

import lmdb

from terminal.ledger import codec
from terminal.ledger.errors import LedgerError
from terminal.ledger.store import DB_NAMES, FORMAT_VERSION, FORMATS_UPGRADED, META_KEY, Store

log = logging.getLogger("posterm.ledger")


def _legacy_meta(raw: bytes | None) -> dict[str, Any] | None:
    """The meta record of an older format, or None (current, absent or damaged)."""
    if raw is None or codec.intact(META_KEY, raw):
        return None
    try:
        meta = codec.unpack(raw, "meta")
    except LedgerError:
        return None  # neither form: the strict read names the damage
    if isinstance(meta, dict) and meta.get("format") in FORMATS_UPGRADED:
        return meta
    return None


def needed(store: Store) -> bool:
    with store.env.begin() as txn:
        return _legacy_meta(txn.get(META_KEY, db=store.dbs["meta"])) is not None


def _seal_all(txn: lmdb.Transaction, db: Any) -> int:
    count = 0
    cursor = txn.cursor(db=db)
    more = cursor.first()
    while more:  # bounded by the sub-database's entries; each is visited once
        key = bytes(cursor.key())
        cursor.put(key, codec.seal(key, bytes(cursor.value())))  # replaces the record in place
        count += 1
        more = cursor.next()
    return count


def run(store: Store) -> int:
    """Seal every record; returns how many (0 when another process upgraded first)."""
    try:
        with store.env.begin(write=True) as txn:
            meta = _legacy_meta(txn.get(META_KEY, db=store.dbs["meta"]))
            if meta is None:
                return 0
            sealed = sum(_seal_all(txn, store.dbs[name]) for name in DB_NAMES if name != "meta")
            old = meta["format"]
            meta.update(format=FORMAT_VERSION, upgraded_from=old)
            txn.put(META_KEY, codec.dump(META_KEY, meta, "meta"), db=store.dbs["meta"])
    except lmdb.MapFullError:
        raise LedgerError(
            f"{store.path}: no room to upgrade the ledger to format {FORMAT_VERSION} (it "
            "needs free map space about the size of the file): raise map_size in the config; "
            "nothing was changed"
        ) from None
    log.info(
        "ledger upgraded",
        extra={"event": "ledger_upgraded", "path": str(store.path), "from_format": old,
               "to_format": FORMAT_VERSION, "records": sealed + 1},
    )
    return sealed + 1
