"""Who has a ledger open: a flock on `posterm.lock` beside `data.mdb`.

Every `Store` holds it shared for as long as it is open (the daemon, `status`, the CLI), so the
operations that replace the file under everyone (`compact`, `restore`) can take it exclusively
without waiting and refuse while anyone else has the ledger open. LMDB's reader table cannot
tell: it lists only readers inside a transaction.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from terminal.ledger.errors import LedgerError

LOCK_FILE = "posterm.lock"


def _open(directory: Path) -> int:
    try:
        return os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise LedgerError(f"{directory}: cannot open {LOCK_FILE}: {exc.strerror}") from None


def _take(fd: int, mode: int, directory: Path, busy: str) -> int:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LedgerError(f"{directory}: {busy}") from None
    return fd


def shared(directory: Path) -> int:
    """The open-ledger lock; refused while a compaction or restore replaces the file."""
    return _take(_open(directory), fcntl.LOCK_SH, directory,
                 "the ledger is being compacted or restored; try again when that is done")


def exclusive(directory: Path) -> int:
    """Nobody else may have the ledger open (the caller closes the returned fd to release)."""
    return _take(_open(directory), fcntl.LOCK_EX, directory,
                 "the ledger is open in another process: stop the daemon first")


def upgrade(fd: int, directory: Path) -> None:
    """Turn this process's shared lock exclusive, or refuse if another process holds one."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise LedgerError(f"{directory}: the ledger is open in another process: stop the daemon first") from None


def release(fd: int) -> None:
    os.close(fd)
