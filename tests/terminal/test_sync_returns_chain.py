"""Returns of one receipt at several terminals, with a real central process (SQLite and
PostgreSQL): points given back at another terminal keep the dates of the lots the sale took
them from, and every terminal counts the returns made elsewhere towards the remainders, so a
receipt is never returned twice across the chain (README "Returns at any terminal")."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest

import core
from terminal.ledger import Ledger, LedgerInputError
from terminal.sync import SyncClient
from terminal.sync.receipts import adopt_from_central
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    CentralProcess,
    assert_consistent,
    provision,
    publish_cards,
    settle,
    sync_config,
)
from tests.terminal.conftest import sell

RULES = {
    "program": {"point_value": 100, "activation_days": 0, "expiry_days": 30},
    "redeem": {"max_percent": 100},
    "rule": [{"id": "earn-10", "kind": "accrual", "percent": 10}],
}
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)


def at(days: float) -> str:
    return (T0 + dt.timedelta(days=days)).isoformat()


async def lookup(ledger: Ledger, url: str, key: bytes, receipt: str) -> bool:
    async with SyncClient(url, ledger.terminal_id, key, 2_000) as client:
        return await adopt_from_central(ledger, client, receipt, 2_000, at(1))


def test_returns_across_the_chain_keep_dates_and_remainders(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    engine = core.Engine(core.compile_rules(RULES))
    publish_cards(dsn, {"C1": 0})
    keys = {t: provision(dsn, t) for t in ("A", "B")}
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    a, b = Ledger.init(tmp_path / "A", "A"), Ledger.init(tmp_path / "B", "B")
    both = [(led, sync_config(server.url, keys[led.terminal_id], tmp_path, led.terminal_id)) for led in (a, b)]
    try:
        asyncio.run(settle(both))
        sell(a, engine, "s0", "C1", [500_000], now=at(0))  # 500 points, expiring at +30 days
        asyncio.run(settle(both))
        quote, _ = sell(a, engine, "s1", "C1", [30_000, 20_000], redeem=400, now=at(1))
        assert quote["redeem"]["points"] == 400
        asyncio.run(settle(both))

        assert asyncio.run(lookup(b, server.url, keys["B"], "s1")) is True
        first = b.commit_return("B-r1", "s1", [{"line": 0, "qty": 1}], at(1))
        assert first["points"]["restored"] > 0
        # The points came back with the dates of the lot the sale took them from, not as a
        # never-expiring lot.
        expiring = {lot["expires_at"] for lot in b.card("C1", at(1))["lots"]}
        assert None not in expiring
        asyncio.run(settle(both))

        # A, the selling terminal, learns of B's return before its own.
        assert asyncio.run(lookup(a, server.url, keys["A"], "s1")) is False
        with pytest.raises(LedgerInputError, match="line 0 has 0 left"):
            a.commit_return("A-r1", "s1", [{"line": 0, "qty": 1}], at(1))
        last = a.commit_return("A-r2", "s1", [{"line": 1, "qty": 1}], at(1))
        assert first["refund"]["money"] + last["refund"]["money"] == quote["to_pay"]
        assert (first["refund"]["points_restored"] + last["refund"]["points_restored"]
                == quote["redeem"]["points"])
        assert (first["refund"]["points_clawed"] + last["refund"]["points_clawed"]
                == quote["accrual"]["points"])
        asyncio.run(settle(both))
        # B asks again: A's return is counted there too, nothing is left to return.
        asyncio.run(lookup(b, server.url, keys["B"], "s1"))
        with pytest.raises(LedgerInputError, match="left to return"):
            b.commit_return("B-r2", "s1", [{"line": 1, "qty": 1}], at(1))
        assert_consistent(dsn, [a, b])
    finally:
        a.close()
        b.close()
        server.stop()
