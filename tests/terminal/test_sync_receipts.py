"""A return at any terminal of the chain, with a real central process (SQLite and PostgreSQL):
a sale at T01, synced; its receipt returned at T02, which fetches it from the server (signed,
short timeout); balances, lots and referral credits then agree on T01, T02 and the server.
Offline, T02 refuses the return with what to do; an unknown receipt is unknown."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.balances import CardState
from central.store import open_store
from core.refund import compute_refund
from terminal.ledger import Ledger, LedgerNotFoundError
from terminal.sync import SyncClient
from terminal.sync.receipts import ReceiptOfflineError, adopt_from_central
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    CentralProcess,
    assert_consistent,
    fresh_store,
    now_iso,
    provision,
    publish_cards,
    settle,
    sync_config,
)
from tests.terminal.conftest import sell


async def fetch(ledger: Ledger, url: str, key: bytes, receipt: str, timeout_ms: int = 800) -> bool:
    async with SyncClient(url, ledger.terminal_id, key, timeout_ms) as client:
        return await adopt_from_central(ledger, client, receipt, timeout_ms, now_iso())


def test_a_sale_at_one_terminal_is_returned_at_another(dsn: str, tmp_path: Path, engine) -> None:  # noqa: F811
    fresh_store(dsn).close()
    keys = {t: provision(dsn, t) for t in ("T01", "T02")}
    publish_cards(dsn, {"R1": 0})
    central = open_store(dsn)
    central.put_cards([CardState("C1", balance=2000, type="standard", referrers=["R1", "FAR"])])
    central.close()
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    a, b = Ledger.init(tmp_path / "a", "T01"), Ledger.init(tmp_path / "b", "T02")
    configs = {t: sync_config(server.url, keys[t], tmp_path, t) for t in keys}
    both = [(a, configs["T01"]), (b, configs["T02"])]
    try:
        asyncio.run(settle(both))
        now = now_iso()
        quote, _ = sell(a, engine, "T01-s1", "C1", [100_000, 30_000], redeem=500, qty=2, now=now)
        asyncio.run(settle(both))
        assert b.receipt("T01-s1") is None
        assert asyncio.run(fetch(b, server.url, keys["T02"], "T01-s1")) is True
        assert asyncio.run(fetch(b, server.url, keys["T02"], "T01-s1")) is False  # already here
        lines = [{"line": 0, "qty": 1}, {"line": 1, "qty": 2}]
        half = b.commit_return("T02-r1", "T01-s1", lines, now_iso())
        expected = compute_refund(a.receipt("T01-s1")["quote"], {"lines": lines})  # what T01 would give
        assert (half["refund"]["money"], half["refund"]["points_restored"]) == (
            expected["money"], expected["points_restored"])
        rest = b.commit_return("T02-r2", "T01-s1", [{"line": 0, "qty": 1}], now_iso())
        total = half["refund"]["money"] + rest["refund"]["money"]
        assert total == quote["to_pay"]
        taken: dict[str, int] = {}
        for part in (half, rest):
            for ref in part["referral"]:
                taken[ref["card"]] = taken.get(ref["card"], 0) + ref["points"]
        assert taken == {r["card"]: r["points"] for r in quote["referral"] if r["points"]}
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])  # C1, R1 and FAR: the same everywhere, = Σ server lots
        with pytest.raises(LedgerNotFoundError, match="nor at the central server"):
            asyncio.run(fetch(b, server.url, keys["T02"], "T01-nope"))
        sell(a, engine, "T01-s2", "C1", [50_000], now=now_iso())
        asyncio.run(settle(both))
        server.stop()
        with pytest.raises(ReceiptOfflineError, match=r"cannot be reached.*try again when the terminal is online"):
            asyncio.run(fetch(b, server.url, keys["T02"], "T01-s2", timeout_ms=300))
        assert b.receipt("T01-s2") is None
    finally:
        a.close()
        b.close()
        server.stop()
