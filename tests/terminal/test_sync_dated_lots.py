"""Central is the authority for every card's lots, with real processes: a `posterm-central
serve` child, two terminals' ledgers synced against it. Points earned on A keep their dates on
B (activation, expiry, redemption soonest-expiring first), the server's sweep expires them once
for the chain (`posterm-central expire`), a terminal's own sweep covers only points no server
has seen, and A, B and central agree on every lot with its dates — on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import core
from central.store import open_store
from terminal.ledger import Ledger
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    CentralProcess,
    assert_consistent,
    dated,
    provision,
    publish_cards,
    server_lots,
    settle,
    sync_config,
)
from tests.terminal.conftest import sell
from tests.terminal.test_sync_central import central_cli

RULES = {
    "program": {"point_value": 100, "activation_days": 14, "expiry_days": 30},
    "redeem": {"max_percent": 100},
    "rule": [{"id": "earn-10", "kind": "accrual", "percent": 10}],
}
SWEEP_WAIT_S = 20.0
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)


def at(days: float) -> str:
    return (T0 + dt.timedelta(days=days)).isoformat()


def available(ledger: Ledger, number: str, when: str) -> int:
    return int(ledger.card(number, when)["available"])


def test_points_earned_on_a_keep_their_dates_on_b(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    engine = core.Engine(core.compile_rules(RULES))
    publish_cards(dsn, {"C1": 0})
    keys = {t: provision(dsn, t) for t in ("A", "B")}
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    a, b = Ledger.init(tmp_path / "A", "A"), Ledger.init(tmp_path / "B", "B")
    both = [(led, sync_config(server.url, keys[led.terminal_id], tmp_path, led.terminal_id)) for led in (a, b)]
    try:
        asyncio.run(settle(both))
        # Three sales on A: lot 1 usable now and expiring soonest, lot 2 usable now, lot 3 not
        # usable for another two weeks.
        earned = [sell(a, engine, f"s{i}", "C1", [price], now=at(days))[0]["accrual"]["points"]
                  for i, (days, price) in enumerate([(-20, 50_000), (-15, 80_000), (0, 120_000)])]
        assert all(earned) and len(set(earned)) == 3
        asyncio.run(settle(both))
        lots_now = server_lots(dsn)["C1"]
        assert sorted(lots_now.values()) == sorted(earned) and len(lots_now) == 3
        assert_consistent(dsn, [a, b])
        # Activation holds on B: only lots 1 and 2 are usable now, lot 3 not before day 14.
        assert available(b, "C1", at(0)) == earned[0] + earned[1] == available(a, "C1", at(0))
        usable = earned[0] + earned[1]
        quote, _ = sell(b, engine, "b1", "C1", [usable * 100 + 5_000], redeem="max", now=at(0))
        assert quote["redeem"]["points"] == usable  # not lot 3
        assert quote["accrual"]["points"] == 0 or quote["accrual"]["expires_at"] == at(14 + 30)
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])
        earned[2] += quote["accrual"]["points"]  # B's sale earned with lot 3's dates (same day)
        assert list(server_lots(dsn)["C1"].values()) == [earned[2]]

        # Soonest-expiring first: earn two more lots on A, redeem part of them on B.
        more = [sell(a, engine, f"m{i}", "C1", [price], now=at(days))[0]["accrual"]["points"]
                for i, (days, price) in enumerate([(-19, 90_000), (-16, 70_000)])]
        asyncio.run(settle(both))
        part = more[0] // 2
        quote, _ = sell(b, engine, "b2", "C1", [part * 100], redeem=part, now=at(0))
        assert quote["redeem"]["points"] == part and quote["accrual"]["points"] == 0
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])
        assert sorted(server_lots(dsn)["C1"].values()) == sorted([more[0] - part, more[1], earned[2]])

        # Expiry is the server's: lot m0 (day -19 + 14 + 30) goes at day 25, for all at once.
        swept = central_cli(dsn, "expire", "--now", at(25.5))
        assert swept.returncode == 0 and json.loads(swept.stdout) == {"cards": 1, "points": more[0] - part}
        assert a.expire("a-sweep", at(25.5))["points"] == 0  # mirrored lots: not A's to expire
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])
        assert sorted(server_lots(dsn)["C1"].values()) == sorted([more[1], earned[2]])
        assert available(b, "C1", at(25.5)) == more[1] + earned[2] == available(a, "C1", at(25.5))
    finally:
        a.close()
        b.close()
        server.stop()


def test_a_terminals_own_sweep_covers_only_unseen_points(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    """Points A earned offline and that expired before A could send them are expired by A; the
    server's sweep and A's expiry never take the same points twice."""
    engine = core.Engine(core.compile_rules(RULES))
    publish_cards(dsn, {"C1": 0})
    keys = {t: provision(dsn, t) for t in ("A", "B")}
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    a, b = Ledger.init(tmp_path / "A", "A"), Ledger.init(tmp_path / "B", "B")
    both = [(led, sync_config(server.url, keys[led.terminal_id], tmp_path, led.terminal_id)) for led in (a, b)]
    try:
        asyncio.run(settle(both))
        old = sell(a, engine, "old", "C1", [100_000], now=at(-50))[0]["accrual"]["points"]  # expired at day -6
        kept = sell(a, engine, "new", "C1", [60_000], now=at(-20))[0]["accrual"]["points"]  # expires day 24
        swept = a.expire("a-sweep", at(0))  # offline: nobody else has seen these points
        assert (swept["cards"], swept["points"]) == (1, old)
        asyncio.run(settle(both))
        assert central_cli(dsn, "expire", "--now", at(0)).stdout.strip() == '{"cards": 0, "points": 0}'
        assert_consistent(dsn, [a, b])
        assert list(server_lots(dsn)["C1"].values()) == [kept]

        # Now the other order: the server has A's sale when its lot expires. Its sweep decides;
        # A's own sweep leaves the mirrored lot alone, and an `expiry` A sends anyway (a lot
        # it expired before the feed reached it) takes nothing the server already expired.
        store = open_store(dsn)
        try:
            assert store.expire(int((T0 + dt.timedelta(days=25)).timestamp() * 1000)) == {"cards": 1, "points": kept}
        finally:
            store.close()
        assert a.expire("a-sweep-2", at(25))["points"] == 0
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])
        assert server_lots(dsn)["C1"] == {} and a.card("C1", at(25))["balance"] == 0
    finally:
        a.close()
        b.close()
        server.stop()


def test_a_backlog_is_replayed_on_the_servers_lots(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    """Events in flight: A's unsent sale stays on top of every card state the feed brings."""
    engine = core.Engine(core.compile_rules(RULES))
    publish_cards(dsn, {"C1": 0})
    keys = {t: provision(dsn, t) for t in ("A", "B")}
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    a, b = Ledger.init(tmp_path / "A", "A"), Ledger.init(tmp_path / "B", "B")
    both = [(led, sync_config(server.url, keys[led.terminal_id], tmp_path, led.terminal_id)) for led in (a, b)]
    try:
        asyncio.run(settle(both))
        on_b = sell(b, engine, "b1", "C1", [50_000], now=at(-20))[0]["accrual"]["points"]
        asyncio.run(settle([both[1]]))
        on_a = sell(a, engine, "a1", "C1", [30_000], now=at(-18))[0]["accrual"]["points"]
        # A pulls the feed without sending (its sale is unsent): B's lot arrives, A's stays.
        from terminal.sync.client import SyncClient
        from terminal.sync.updates import UpdatesPuller

        async def pull_only() -> None:
            cfg = both[0][1]
            async with SyncClient(cfg.url, "A", cfg.key, cfg.request_timeout_ms) as client:
                await UpdatesPuller(a, client, cfg.state_file, None).pull()

        asyncio.run(pull_only())
        assert sorted(dated(a.card("C1", at(0))["lots"]).values()) == sorted([on_a, on_b])
        assert a.backlog() > 0
        asyncio.run(settle(both))
        assert_consistent(dsn, [a, b])
        assert sorted(server_lots(dsn)["C1"].values()) == sorted([on_a, on_b])
    finally:
        a.close()
        b.close()
        server.stop()


def test_the_server_sweeps_by_itself_while_it_serves(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    engine = core.Engine(core.compile_rules(RULES))
    publish_cards(dsn, {"C1": 0})
    keys = {t: provision(dsn, t) for t in ("A", "B")}
    server = CentralProcess(dsn, tmp_path / "central.log", extra=("--expire-every-s", "1")).start()
    a, b = Ledger.init(tmp_path / "A", "A"), Ledger.init(tmp_path / "B", "B")
    both = [(led, sync_config(server.url, keys[led.terminal_id], tmp_path, led.terminal_id)) for led in (a, b)]
    try:
        asyncio.run(settle(both))
        sell(a, engine, "old", "C1", [100_000], now=at(-50))  # its lot expired at day -6
        kept = sell(a, engine, "new", "C1", [60_000], now=at(-20))[0]["accrual"]["points"]
        asyncio.run(settle(both))
        deadline = time.monotonic() + SWEEP_WAIT_S  # a bounded wait for the schedule, not a timing
        while sum(server_lots(dsn)["C1"].values()) != kept and time.monotonic() < deadline:
            time.sleep(0.2)
        asyncio.run(settle(both))
        assert list(server_lots(dsn)["C1"].values()) == [kept]
        assert_consistent(dsn, [a, b])
        assert "event=expiry_swept cards=1" in server.log()
    finally:
        a.close()
        b.close()
        server.stop()
