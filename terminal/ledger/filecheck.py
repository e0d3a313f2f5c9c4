"""The ledger file checked against its own LMDB meta pages before LMDB maps it.

LMDB maps `data.mdb` and reads pages straight from the map: a file shorter than the pages its
meta records name (a `truncate`, a copy cut short, a full disk during a copy) makes the first
read of a missing page a SIGBUS that kills the process with no message. So before opening, the
two meta pages are read here with plain file reads, the newer valid one is chosen the way LMDB
chooses it (highest transaction id), and the file must hold every page up to its last used page.
A zero-length file is what LMDB would silently initialise as a new, empty ledger: it is refused
unless the caller is creating a ledger (`ledger init`).

Meta page layout (lmdb `mdb.c`, native byte order, 64-bit builds): page header 16 bytes, then
MDB_meta: magic u32 (0xBEEFC0DE), version u32, address, map size, two MDB_db of 48 bytes each
(the first's md_pad holds the page size), last used page number, transaction id.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from terminal.ledger.errors import LedgerDamagedError, LedgerError

LMDB_MAGIC = 0xBEEFC0DE
LMDB_DATA_VERSION = 1
META_PAGES = 2
_PAGE_HEADER_BYTES = 16
_META = struct.Struct("=IIQQ")  # magic, version, address, map size
_DB = struct.Struct("=IHHQQQQQ")  # md_pad, flags, depth, branch, leaf, overflow, entries, root
_TAIL = struct.Struct("=QQ")  # last used page number, transaction id
META_BYTES = _PAGE_HEADER_BYTES + _META.size + 2 * _DB.size + _TAIL.size
PAGE_BYTES_ALLOWED = frozenset(1 << n for n in range(9, 17))  # 512 B … 64 KiB


def _meta_at(data: bytes, offset: int) -> tuple[int, int, int] | None:
    """(page size, last page number, txn id) of the meta page at `offset`, None if not one."""
    if len(data) < offset + META_BYTES:
        return None
    at = offset + _PAGE_HEADER_BYTES
    magic, version, _, _ = _META.unpack_from(data, at)
    if magic != LMDB_MAGIC or version != LMDB_DATA_VERSION:
        return None
    page_bytes = _DB.unpack_from(data, at + _META.size)[0]
    last_page, txn_id = _TAIL.unpack_from(data, at + _META.size + 2 * _DB.size)
    if page_bytes not in PAGE_BYTES_ALLOWED:
        return None
    return page_bytes, last_page, txn_id


def required_bytes(data_file: Path) -> tuple[int, int]:
    """(file size, bytes the newest meta page needs); refuses a file without valid meta pages."""
    try:
        size = data_file.stat().st_size
        with open(data_file, "rb") as handle:
            head = handle.read(max(PAGE_BYTES_ALLOWED) + META_BYTES)
    except OSError as exc:
        raise LedgerError(f"{data_file}: cannot read the ledger file: {exc.strerror}") from None
    first = _meta_at(head, 0)
    if first is None:
        raise LedgerDamagedError(
            f"{data_file}: not a ledger file, or its first meta page is damaged ({size} bytes): "
            "restore the ledger from its backup"
        )
    second = _meta_at(head, first[0])
    newest = max((m for m in (first, second) if m is not None), key=lambda m: m[2])
    page_bytes, last_page, _ = newest
    return size, max(META_PAGES, last_page + 1) * page_bytes


def check(path: Path, create: bool) -> None:
    """Refuse an empty file (unless creating) and one shorter than its meta pages say."""
    data_file = path / "data.mdb"
    if not data_file.exists():
        if not create:
            raise LedgerError(f"{path}: no ledger here (run `posterm ledger init` first)")
        return
    if not data_file.is_file():
        raise LedgerError(f"{data_file}: not a regular file")
    if os.path.getsize(data_file) == 0:
        if create:
            return
        raise LedgerDamagedError(
            f"{data_file}: the ledger file is empty (0 bytes): restore it from its backup, or "
            "remove it and run `posterm ledger init` to start an empty ledger"
        )
    size, needed = required_bytes(data_file)
    if size < needed:
        raise LedgerDamagedError(
            f"{data_file}: the ledger file is truncated: {size} bytes, but its meta page names "
            f"pages up to byte {needed}; refusing to open it (LMDB would crash on the missing "
            "pages); restore the ledger from its backup"
        )
