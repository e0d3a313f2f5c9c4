"""Backups, restores and compaction of a ledger file — LMDB's own compacting copy, verified.

- `backup(store, out)`: a consistent copy while the daemon runs (LMDB copies inside one read
  transaction; writers go on), written to a fresh directory, then opened and verified.
- `restore(backup_dir, ledger_dir)`: verifies the backup first, then swaps its file in with a
  rename, so the target is either the old ledger or the backup, never half of each.
- `compact(ledger_dir)`: a compacting copy beside the ledger, verified, renamed over it — only
  while no other process has the ledger open (`uselock`).

Limits: `COPY_BYTES_MAX` for a file copied; a target must be new or empty.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import lmdb

from terminal.ledger import uselock
from terminal.ledger.errors import LedgerError, LedgerInputError
from terminal.ledger.store import MAP_SIZE_MAX_BYTES, Store

COPY_BYTES_MAX = MAP_SIZE_MAX_BYTES
DATA_FILE = "data.mdb"
LOCK_FILE = "lock.mdb"


def _fresh_dir(path: Path, what: str) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise LedgerInputError(f"{path}: the {what} must be a new or empty directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerInputError(f"{path}: cannot create the {what} directory: {exc.strerror}") from None


def _copy(store: Store, out: Path) -> None:
    try:
        store.env.copy(os.fspath(out), compact=True)
    except lmdb.Error as exc:
        raise LedgerError(f"{out}: the copy failed: {exc}") from None


def _verified(path: Path, map_size_bytes: int) -> dict[str, Any]:
    """Open a copied ledger and check all of it; a copy with problems is refused."""
    from terminal.ledger.api import Ledger  # the api module imports this one

    with Ledger(path, map_size_bytes) as ledger:
        report = ledger.verify()
        meta = ledger.meta()
    if report["problems"]:
        raise LedgerError(f"{path}: the copy does not verify: {report['problems'][0]}")
    size = (path / DATA_FILE).stat().st_size
    return {"path": str(path), "terminal": meta["terminal"], "epoch": meta["epoch"],
            "next_seq": meta["next_seq"], "acked_seq": meta["acked_seq"], "file_bytes": size}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def backup(store: Store, out: str | Path) -> dict[str, Any]:
    target = Path(out)
    _fresh_dir(target, "backup")
    _copy(store, target)
    return _verified(target, store.map_size_bytes)


def _swap_in(source: Path, ledger_dir: Path) -> None:
    os.replace(source / DATA_FILE, ledger_dir / DATA_FILE)
    (ledger_dir / LOCK_FILE).unlink(missing_ok=True)  # its reader table described the old file
    _fsync_dir(ledger_dir)


def compact(store: Store) -> dict[str, Any]:
    """Rewrite the ledger without its free pages. The caller closes `store` afterwards."""
    uselock.upgrade(store.lock_fd, store.path)
    before = (store.path / DATA_FILE).stat().st_size
    work = Path(tempfile.mkdtemp(prefix=".compact-", dir=store.path.parent))
    try:
        _copy(store, work)
        result = _verified(work, store.map_size_bytes)
        store.close()
        _swap_in(work, store.path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {**result, "path": str(store.path), "bytes_before": before}


def restore(backup_dir: str | Path, ledger_dir: str | Path, map_size_bytes: int, force: bool = False) -> dict[str, Any]:
    source, target = Path(backup_dir), Path(ledger_dir)
    if not (source / DATA_FILE).is_file():
        raise LedgerInputError(f"{source}: no ledger backup here ({DATA_FILE} missing)")
    if (source / DATA_FILE).stat().st_size > COPY_BYTES_MAX:
        raise LedgerInputError(f"{source}: the backup is larger than {COPY_BYTES_MAX} bytes")
    if (target / DATA_FILE).exists() and not force:
        raise LedgerInputError(f"{target}: a ledger is already here; add --force to replace it")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LedgerInputError(f"{target}: cannot create the ledger directory: {exc.strerror}") from None
    held = uselock.exclusive(target)
    work = Path(tempfile.mkdtemp(prefix=".restore-", dir=target.parent))
    try:
        shutil.copyfile(source / DATA_FILE, work / DATA_FILE)
        with open(work / DATA_FILE, "rb") as f:
            os.fsync(f.fileno())
        result = _verified(work, map_size_bytes)
        _swap_in(work, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        uselock.release(held)
    return {**result, "path": str(target)}
