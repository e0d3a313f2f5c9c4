"""A central server restored from an older backup: the terminal sends again what it lost.

Real central process on SQLite; the backup is taken with SQLite's online backup API while the
server runs (as docs/protocol.md tells operators to), the server is stopped, its database put
back, and started again.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from central.balances import CardState
from central.store import open_store
from terminal.ledger import Ledger
from terminal.sync import SyncConfig
from tests.central.helpers import (
    CentralProcess,
    assert_consistent,
    now_iso,
    provision,
    publish_cards,
    server_events,
    settle,
    sqlite_dsn,
    sync_config,
)


def _sqlite_backup(db: Path, out: Path) -> None:
    source, target = sqlite3.connect(db), sqlite3.connect(out)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()


def _chain(tmp_path: Path) -> tuple[str, Path, CentralProcess, Ledger, list[tuple[Ledger, SyncConfig]]]:
    """A central on SQLite with card C1 (1 000 points) and one terminal T01 synced against it."""
    dsn = sqlite_dsn(tmp_path)
    publish_cards(dsn, {"C1": 1000})
    key = provision(dsn, "T01")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "T01", "T01")
    return dsn, tmp_path / "central.db", server, ledger, [(ledger, sync_config(server.url, key, tmp_path, "T01"))]


def test_terminal_resends_what_a_restored_server_lost(tmp_path: Path) -> None:
    dsn, db, server, ledger, terminal = _chain(tmp_path)
    try:
        asyncio.run(settle(terminal))
        for i in range(5):
            ledger.adjust(f"a{i}", "C1", 10, "goodwill", "tech", now_iso())
        asyncio.run(settle(terminal))
        _sqlite_backup(db, tmp_path / "backup.db")
        kept = len(server_events(dsn))
        for i in range(7):
            ledger.adjust(f"b{i}", "C1", -3, "correction", "tech", now_iso())
        asyncio.run(settle(terminal))
        assert ledger.backlog() == 0 and len(server_events(dsn)) >= kept + 7
        server.stop()
        _sqlite_backup(tmp_path / "backup.db", db)  # the restore: the last 7 events are gone
        assert len(server_events(dsn)) == kept
        server.start()
        ledger.adjust("c0", "C1", 1, "after the restore", "tech", now_iso())
        asyncio.run(settle(terminal))
        assert_consistent(dsn, [ledger])  # every event back on the server, balances equal
        assert ledger.card("C1", now_iso())["balance"] == 1000 + 50 - 21 + 1
    finally:
        ledger.close()
        server.stop()


def test_the_feed_reaches_a_terminal_whose_cursor_is_above_a_restored_server(tmp_path: Path) -> None:
    """Before: the terminal asked for updates after its cursor, above the restored server's
    head, and was told "nothing new" until the server's cursor passed it again — and then its
    newer card versions made it skip the restored server's entries as stale."""
    dsn, db, server, ledger, terminal = _chain(tmp_path)
    try:
        asyncio.run(settle(terminal))
        _sqlite_backup(db, tmp_path / "backup.db")
        for i in range(6):  # the server's cursor and C1's version move on, the backup stays behind
            ledger.adjust(f"b{i}", "C1", 5, "goodwill", "tech", now_iso())
            asyncio.run(settle(terminal))
        publish_cards(dsn, {"C9": 7})
        asyncio.run(settle(terminal))
        server.stop()
        _sqlite_backup(tmp_path / "backup.db", db)
        server.start()
        store = open_store(dsn)
        try:
            store.adjust_card("C1", 100)  # central's own changes after the restore …
            store.put_cards([CardState("C2", balance=40, type="standard")])
        finally:
            store.close()
        asyncio.run(settle(terminal))
        # … reach the terminal, and its re-sent events are on the server again.
        assert ledger.card("C2", now_iso())["balance"] == 40
        assert ledger.card("C1", now_iso())["balance"] == 1000 + 30 + 100
        assert_consistent(dsn, [ledger])
    finally:
        ledger.close()
        server.stop()
