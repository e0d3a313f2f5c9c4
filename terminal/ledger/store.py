"""The LMDB environment: explicit durability options, named sub-databases, the meta record,
map-size usage with a 70 % alarm, and map-full refusals.

Sub-databases (keys are fixed-width big-endian, see `keys`; values are msgpack, see `codec`):
  meta      b"ledger" → terminal id, epoch, next/acked sequence, next lot id, shift, versions
  catalog   sku key → product            barcodes  barcode key → sku
  cards     card key → card record        lots      card + expiry + lot id → lot
  holds     card + checkout key → hold    receipts  receipt id key → quote, payment, lot moves
  returns   return id key → refund        outbox    u64 seq → event
  ops       operation id key → kind, content digest, result (idempotent retries)
  phones    phone digest → card number  coupons   code key → series, valid_to, state
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import lmdb

from terminal.ledger import codec, filecheck, uselock
from terminal.ledger.errors import LedgerDamagedError, LedgerError, LedgerFullError

log = logging.getLogger("posterm.ledger")

DB_NAMES = (
    "meta",
    "catalog",
    "barcodes",
    "cards",
    "lots",
    "holds",
    "receipts",
    "returns",
    "outbox",
    "ops",
    "phones",  # digest of a phone registered at the kiosk → card number (terminal.ledger.staff)
    "coupons",  # coupon code → series, last day, state (terminal.ledger.coupons)
)
MAX_DBS = 16
MAP_SIZE_DEFAULT_BYTES = 1024 * 1024 * 1024
MAP_SIZE_MIN_BYTES = 64 * 1024
MAP_SIZE_MAX_BYTES = 1024**4
USAGE_ALARM_RATIO = 0.70
MAX_READERS = 32
META_KEY = b"ledger"
# 2: card records carry lots_points / lots_count, and a sale keeps its result in its receipt
# instead of an op record (format-1 sales keep theirs and are still matched); each card gets its
# sums when a write first loads it.
# 3: every stored value carries a checksum (`codec.seal`). A format-1 or 2 file is upgraded once,
# when it is first opened, in one write transaction (`upgrade`); older builds refuse format 3.
FORMAT_VERSION = 3
FORMATS_READ = frozenset({3})
FORMATS_UPGRADED = frozenset({1, 2})


class Store:
    """One open ledger file. `sync=False` exists for the informational benchmark only."""

    def __init__(
        self,
        path: str | Path,
        map_size_bytes: int = MAP_SIZE_DEFAULT_BYTES,
        sync: bool = True,
        create: bool = False,
    ) -> None:
        if not MAP_SIZE_MIN_BYTES <= map_size_bytes <= MAP_SIZE_MAX_BYTES:
            raise LedgerError(
                f"map size {map_size_bytes} bytes is outside "
                f"{MAP_SIZE_MIN_BYTES}..{MAP_SIZE_MAX_BYTES}"
            )
        self.path = Path(path)
        filecheck.check(self.path, create)  # before mapping: a short file would be a SIGBUS
        self.lock_fd = uselock.shared(self.path)
        try:
            self.env = lmdb.open(
                os.fspath(self.path),
                map_size=map_size_bytes,
                max_dbs=MAX_DBS,
                max_readers=MAX_READERS,
                subdir=True,
                create=create,
                # Durability: fsync data and meta pages on every commit; no writable mmap so a
                # stray write through the map cannot corrupt the file.
                sync=sync,
                metasync=sync,
                writemap=False,
                map_async=False,
                lock=True,
                readahead=False,
                meminit=False,
            )
        except lmdb.Error as exc:
            uselock.release(self.lock_fd)
            raise LedgerError(f"{self.path}: cannot open the ledger: {exc}") from None
        self._check_mapped()
        # Readers left behind by killed processes pin old pages; clear them at every open.
        self.stale_readers = self.env.reader_check()
        try:
            self.dbs = {name: self.env.open_db(name.encode()) for name in DB_NAMES}
        except lmdb.MapFullError:
            self.close()
            raise LedgerFullError(
                f"{self.path}: ledger full while creating its tables: raise map_size in the config"
            ) from None
        self.map_size_bytes = map_size_bytes
        self.page_bytes: int = self.env.stat()["psize"]  # fixed for the file's life
        self._alarmed = False
        self.check_usage()

    def _check_mapped(self) -> None:
        """LMDB's own view of the last page against the file, before any page is read."""
        last_page = self.env.info()["last_pgno"]
        needed = (last_page + 1) * self.env.stat()["psize"]
        size = os.path.getsize(self.path / "data.mdb")
        if size < needed:
            self.close()
            raise LedgerDamagedError(
                f"{self.path / 'data.mdb'}: the ledger file is truncated: {size} bytes, LMDB "
                f"needs {needed}; restore the ledger from its backup"
            )

    def close(self) -> None:
        self.env.close()
        if self.lock_fd >= 0:
            uselock.release(self.lock_fd)
            self.lock_fd = -1

    def usage(self) -> float:
        """Used bytes / map size (used = pages up to the last one LMDB has handed out)."""
        info = self.env.info()
        return (info["last_pgno"] + 1) * self.page_bytes / info["map_size"]

    def check_usage(self) -> float:
        ratio = self.usage()
        if ratio >= USAGE_ALARM_RATIO and not self._alarmed:
            log.warning(
                "ledger map usage alarm",
                extra={
                    "event": "ledger_usage_alarm",
                    "path": str(self.path),
                    "usage_percent": round(ratio * 100, 1),
                    "map_size_bytes": self.map_size_bytes,
                },
            )
        self._alarmed = ratio >= USAGE_ALARM_RATIO
        return ratio

    def read_meta(self, txn: lmdb.Transaction) -> dict[str, Any]:
        raw = txn.get(META_KEY, db=self.dbs["meta"])
        if raw is None:
            raise LedgerError(f"{self.path}: the ledger has no meta record (not initialised)")
        meta: dict[str, Any] = codec.load(META_KEY, raw, "meta")
        return meta

    def map_full(self) -> LedgerFullError:
        return LedgerFullError(
            f"{self.path}: ledger full ({self.map_size_bytes // (1024 * 1024)} MiB map): the "
            "operation was refused and nothing was written; raise map_size in the config"
        )
