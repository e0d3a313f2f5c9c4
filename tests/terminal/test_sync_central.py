"""End-to-end with a real central process: double spend across two offline terminals, several
collectors sharing one PostgreSQL, published rules and catalog, online card lookup with the
offline cap, and a bad update page that changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from central.store import open_store
from terminal.ledger import Ledger, LedgerNotFoundError
from terminal.sync import CardLookup, SyncClient, Syncer, SyncError, TransientError
from terminal.sync.updates import apply_page, read_cursor
from tests.central.conftest import PG_DSN, dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    REPO,
    CentralProcess,
    assert_consistent,
    fresh_store,
    now_iso,
    provision,
    publish_cards,
    server_balances,
    server_events,
    settle,
    sync_config,
    sync_round,
)
from tests.terminal.conftest import sell

RULES = """
[program]
point_value = 100
[redeem]
max_percent = 50
[[rule]]
id = "earn-2"
kind = "accrual"
percent = 2
"""


def central_cli(db: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "central.cli", "--db", db, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        input=stdin,
        check=False,
    )


def test_double_spend_on_two_offline_terminals(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    publish_cards(dsn, {"C9": 100})
    keys = [provision(dsn, t) for t in ("T01", "T02")]
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledgers = [Ledger.init(tmp_path / t, t) for t in ("T01", "T02")]
    terminals = [
        (led, sync_config(server.url, k, tmp_path, led.terminal_id)) for led, k in zip(ledgers, keys, strict=True)
    ]
    try:
        asyncio.run(settle(terminals))
        assert [led.card("C9", now_iso())["balance"] for led in ledgers] == [100, 100]
        server.stop()  # both terminals offline: each redeems 80 of the same 100 points
        for i, led in enumerate(ledgers):
            led.adjust(f"redeem-{i}", "C9", -80, "redeemed at the till", "cashier", now_iso())
        server.start()
        asyncio.run(settle(terminals))
        store = open_store(dsn)
        try:
            found = store.card("C9")
            assert found is not None and found[0].balance == -60 and found[0].shortfall == 60
            assert [(s["card"], s["points"]) for s in store.shortfalls()] == [("C9", 60)]
        finally:
            store.close()
        # The correction reached both terminals: the shortfall is a debt the next accruals pay.
        assert [led.card("C9", now_iso())["balance"] for led in ledgers] == [-60, -60]
        assert_consistent(dsn, ledgers)
    finally:
        for led in ledgers:
            led.close()
        server.stop()


def test_several_collectors_share_one_postgres(tmp_path: Path) -> None:
    if not PG_DSN:
        pytest.skip("PostgreSQL: set POSTERM_TEST_PG_DSN (.ci/run starts a cluster and sets it)")
    fresh_store(PG_DSN).close()
    publish_cards(PG_DSN, {f"C{i}": 500 for i in range(3)})
    names = [f"T{i:02}" for i in range(4)]
    keys = [provision(PG_DSN, t) for t in names]
    servers = [CentralProcess(PG_DSN, tmp_path / f"c{i}.log").start() for i in range(2)]
    ledgers = [Ledger.init(tmp_path / t, t) for t in names]
    try:
        # Terminals alternate between the two collectors from round to round.
        def terminals(flip: int) -> list:
            return [
                (led, sync_config(servers[(i + flip) % 2].url, k, tmp_path, led.terminal_id))
                for i, (led, k) in enumerate(zip(ledgers, keys, strict=True))
            ]

        asyncio.run(settle(terminals(0)))
        for round_no in range(3):
            for led in ledgers:
                for j in range(30):
                    led.adjust(f"{round_no}-{j}", f"C{j % 3}", 3 if j % 2 else -2, "t", "tech", now_iso())

            async def concurrently(flip: int) -> None:
                await asyncio.gather(*(settle([t]) for t in terminals(flip)))

            asyncio.run(concurrently(round_no))
        asyncio.run(settle(terminals(1)))
        assert_consistent(PG_DSN, ledgers)
        assert all("event=batch_stored" in s.log() for s in servers)
    finally:
        for led in ledgers:
            led.close()
        for s in servers:
            s.stop()


def test_publish_rules_catalog_cards_via_cli(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    fresh_store(dsn).close()
    added = central_cli(dsn, "terminal", "add", "T01")
    assert added.returncode == 0, added.stderr
    key = bytes.fromhex(added.stdout.strip())
    assert central_cli(dsn, "terminal", "add", "T01").returncode == 2
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "catalog.csv").write_text("sku,name,price,barcodes,categories\nA1,Milk,8900,4006381333931,food/dairy\n")
    (tmp_path / "cards.csv").write_text("number,type,holder,balance\n2000001,standard,Ann,250\n")
    (tmp_path / "bad.toml").write_text("[program]\npoint_value = -1\n")
    for args in (
        ("publish", "rules", str(tmp_path / "rules.toml"), "--version", "r7"),
        ("publish", "catalog", str(tmp_path / "catalog.csv")),
        ("publish", "cards", str(tmp_path / "cards.csv")),
    ):
        done = central_cli(dsn, *args)
        assert done.returncode == 0, done.stderr
    refused = central_cli(dsn, "publish", "rules", str(tmp_path / "bad.toml"))
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    listed = central_cli(dsn, "terminal", "list")
    assert '"terminal": "T01"' in listed.stdout
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    config = sync_config(server.url, key, tmp_path, "T01", rules_file=str(tmp_path / "active-rules.toml"))
    try:
        asyncio.run(settle([(ledger, config)]))
        assert (tmp_path / "active-rules.toml").read_text() == RULES
        assert ledger.meta()["versions"]["rules"] == "r7"
        assert ledger.product("4006381333931")["price"] == 8900
        assert ledger.card("2000001", now_iso())["balance"] == 250
        assert read_cursor(config.state_file) > 0
        row = json.loads(central_cli(dsn, "terminal", "list").stdout.splitlines()[0])
        assert row["terminal"] == "T01" and row["acked_seq"] == ledger.meta()["acked_seq"] > 0
        assert row["last_batch_ms"] > 0
        # Rotating the key locks the old one out (after the server's short key cache).
        rotated = central_cli(dsn, "terminal", "rotate-key", "T01")
        assert rotated.returncode == 0 and bytes.fromhex(rotated.stdout.strip()) != key
        second = bytes.fromhex(rotated.stdout.strip())
        server.stop()
        server.start()  # a fresh key cache
        for k in (key, second):  # the old key works during its grace period, the new one too
            asyncio.run(sync_round(ledger, sync_config(server.url, k, tmp_path, "T01")))
        revoked = central_cli(dsn, "terminal", "rotate-key", "T01", "--grace-s", "0")
        third = bytes.fromhex(revoked.stdout.strip())
        server.stop()
        server.start()
        with pytest.raises(TransientError, match="HTTP 401"):
            asyncio.run(sync_round(ledger, sync_config(server.url, second, tmp_path, "T01")))
        asyncio.run(sync_round(ledger, sync_config(server.url, third, tmp_path, "T01")))
        adjusted = central_cli(dsn, "card", "adjust", "2000001", "-300")
        assert adjusted.returncode == 0 and '"balance": -50' in adjusted.stdout
        shown = central_cli(dsn, "card", "show", "2000001")
        assert '"holder": "Ann"' in shown.stdout and '"balance": -50' in shown.stdout
        events = central_cli(dsn, "events", "--terminal", "T01")
        assert events.returncode == 0 and '"type": "update_applied"' in events.stdout
        assert central_cli(dsn, "shortfalls").returncode == 0
        assert central_cli(dsn, "card", "show", "NOPE").returncode == 2
    finally:
        ledger.close()
        server.stop()


def test_card_lookup_online_then_offline_cap(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    publish_cards(dsn, {"C1": 5_000})
    key = provision(dsn, "T01")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    config = sync_config(server.url, key, tmp_path, "T01", offline_redeem_max_points=300, card_timeout_ms=500)

    async def lookup(number: str) -> tuple[dict, str]:
        async with SyncClient(config.url, "T01", key, 2000) as client:
            return await CardLookup(
                ledger, client, config.card_timeout_ms, config.offline_redeem_max_points
            ).card_for_quote(number, now_iso())

    try:
        card, source = asyncio.run(lookup("C1"))  # unknown locally: stored from the server
        assert source == "online" and sum(lot["points"] for lot in card["lots"]) == 5_000
        # Another terminal spent most of it; this one has unsent events (a backlog): the
        # ledger mirrors the server's view less what this terminal has not sent yet.
        store = open_store(dsn)
        try:
            store.adjust_card("C1", -4_000)
        finally:
            store.close()
        ledger.adjust("local-1", "C1", -50, "test", "tech", now_iso())
        card, source = asyncio.run(lookup("C1"))
        assert source == "online" and sum(lot["points"] for lot in card["lots"]) == 1_000 - 50
        assert ledger.card("C1", now_iso())["balance"] == 950
        server.stop()
        card, source = asyncio.run(lookup("C1"))
        assert source == "offline" and sum(lot["points"] for lot in card["lots"]) == 300
        with pytest.raises(LedgerNotFoundError):
            asyncio.run(lookup("NOPE"))
    finally:
        ledger.close()
        server.stop()


def test_a_bad_update_item_is_refused_alone_and_the_rest_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The feed never stalls on one item: each is reported (event, log line, status count)."""
    ledger = Ledger.init(tmp_path / "led", "T01")
    rules_file = tmp_path / "rules.toml"

    def card(number: str, points: Any, **dates: Any) -> dict[str, Any]:
        lot = {"points": points, "available_from": None, "expires_at": None, **dates}
        return {"number": number, "version": 1, "balance": points, "lots": [lot]}

    product = {"sku": "B", "name": "bread", "price": 100, "barcodes": ["200"]}
    pages = [
        {"cursor": 5, "more": False, "rules": {"version": "x", "text": "[program]\npoint_value = 0\n"},
         "versions": {"rules": "x"}},
        {"cursor": 6, "more": False, "cards": [{"number": "C1", "version": 1, "balance": "many"}, card("C3", 7)]},
        {"cursor": 7, "more": False, "catalog": [{"sku": "A", "price": -1, "name": "x"}, product],
         "cards": [card("C2", 5, expires_at="10000-01-01T00:00:00+00:00")]},
        {"cursor": 8, "more": False, "rules": {"version": "ok", "text": RULES}, "versions": {"rules": "ok"},
         "cards": [{**card("C2", 5), "version": "one"}, card("C4", 10**16), card("C5", 3, expires_at="out of range")]},
    ]
    try:
        for page in pages:
            apply_page(ledger, page, rules_file, now_iso())
        assert rules_file.read_text() == RULES and ledger.meta()["versions"]["rules"] == "ok"
        assert ledger.card("C3", now_iso())["balance"] == 7 and ledger.product("200")["sku"] == "B"
        for number in ("C1", "C2", "C4", "C5"):
            with pytest.raises(LedgerNotFoundError):
                ledger.card(number, now_iso())
        refused = [(e["item"], e["key"]) for e in ledger.outbox_pending() if e["type"] == "update_refused"]
        expected = [("rules", "x"), ("card", "C1"), ("product", "A"), ("card", "C2"), ("card", "C2"),
                    ("card", "C4"), ("card", "C5")]
        assert refused == expected
        assert ledger.stats()["updates_refused"] == len(expected)
        assert sum("event=update_refused" in r.message for r in caplog.records) == len(expected)
        # A page malformed as a whole still changes nothing.
        before = ledger.stats()
        with pytest.raises(SyncError):
            apply_page(ledger, {"cursor": 9, "more": False, "cards": "all of them"}, rules_file, now_iso())
        assert ledger.stats() == before
    finally:
        ledger.close()


def test_posterm_sync_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from terminal.cli import main

    dsn_ = f"sqlite:///{tmp_path / 'central.db'}"
    publish_cards(dsn_, {"C1": 40})
    key = provision(dsn_, "T01")
    (tmp_path / "t.key").write_text(key.hex())
    server = CentralProcess(dsn_, tmp_path / "central.log").start()
    Ledger.init(tmp_path / "led", "T01").close()
    config = tmp_path / "posterm.toml"
    config.write_text(
        f'[sync]\nurl = "{server.url}"\nkey_file = "{tmp_path / "t.key"}"\nstate_file = "{tmp_path / "state.json"}"\n'
    )
    try:
        assert main(["sync", "once", "--ledger", str(tmp_path / "led"), "--config", str(config)]) == 0
        assert main(["sync", "status", "--ledger", str(tmp_path / "led"), "--config", str(config)]) == 0
        out = capsys.readouterr().out
        assert '"pages": 1' in out and '"updates_cursor": 1' in out
        server.stop()
        assert main(["sync", "once", "--ledger", str(tmp_path / "led"), "--config", str(config)]) == 2
        assert "posterm: " in capsys.readouterr().err
    finally:
        server.stop()


def test_double_spend_with_real_sales(dsn: str, tmp_path: Path, engine: Any) -> None:  # noqa: F811
    """The same card pays with points on two offline terminals through the pricing core."""
    publish_cards(dsn, {"C9": 100})
    keys = [provision(dsn, t) for t in ("T01", "T02")]
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledgers = [Ledger.init(tmp_path / t, t) for t in ("T01", "T02")]
    terminals = [
        (led, sync_config(server.url, k, tmp_path, led.terminal_id)) for led, k in zip(ledgers, keys, strict=True)
    ]
    try:
        asyncio.run(settle(terminals))
        server.stop()
        moved = 0
        for i, led in enumerate(ledgers):
            quote, _ = sell(led, engine, f"sale-{i}", "C9", [20_000], redeem=80, now=now_iso())
            assert quote["redeem"]["points"] == 80
            moved += quote["accrual"]["points"] - 80
        server.start()
        asyncio.run(settle(terminals))
        expected = 100 + moved
        assert expected < 0
        store = open_store(dsn)
        try:
            found = store.card("C9")
            assert found is not None and (found[0].balance, found[0].shortfall) == (expected, -expected)
            assert found[0].cumulative == 2 * 20_000 - 2 * 1_000  # two totals after the 5 % discount
        finally:
            store.close()
        assert [led.card("C9", now_iso())["balance"] for led in ledgers] == [expected, expected]
        assert_consistent(dsn, ledgers)
    finally:
        for led in ledgers:
            led.close()
        server.stop()


def test_card_upgrade_survives_the_feed(tmp_path: Path, engine: Any) -> None:
    dsn_ = f"sqlite:///{tmp_path / 'central.db'}"
    publish_cards(dsn_, {"C1": 0})
    key = provision(dsn_, "T01")
    server = CentralProcess(dsn_, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    terminal = [(ledger, sync_config(server.url, key, tmp_path, "T01"))]
    try:
        asyncio.run(settle(terminal))
        quote, _ = sell(ledger, engine, "big", "C1", [1_200_000], now=now_iso())
        assert quote["card_type_after"] == "silver" and ledger.card("C1", now_iso())["type"] == "silver"
        asyncio.run(settle(terminal))  # the card comes back in the feed with a newer version
        assert ledger.card("C1", now_iso())["type"] == "silver"
        assert_consistent(dsn_, [ledger])
    finally:
        ledger.close()
        server.stop()


def test_large_feed_arrives_in_pages(tmp_path: Path) -> None:
    dsn_ = f"sqlite:///{tmp_path / 'central.db'}"
    publish_cards(dsn_, {f"N{i:05}": i for i in range(5_000)})  # three pages of ≤ 2 000
    key = provision(dsn_, "T01")
    server = CentralProcess(dsn_, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    config = sync_config(server.url, key, tmp_path, "T01")
    try:
        done = asyncio.run(sync_round(ledger, config))
        assert done["pages"] == 3
        assert ledger.stats()["entries"]["cards"] == 5_000
        assert ledger.card("N04999", now_iso())["balance"] == 4_999
    finally:
        ledger.close()
        server.stop()


def test_syncer_wakes_at_once_and_stops_promptly(tmp_path: Path) -> None:
    dsn_ = f"sqlite:///{tmp_path / 'central.db'}"
    publish_cards(dsn_, {"C1": 10})
    key = provision(dsn_, "T01")
    server = CentralProcess(dsn_, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    # A long idle interval: only wake() can make the loop send the new event quickly.
    config = sync_config(server.url, key, tmp_path, "T01", idle_interval_ms=60_000, backoff_max_ms=60_000)

    async def scenario() -> None:
        stop = asyncio.Event()
        async with SyncClient(config.url, "T01", key, 2_000) as client:
            syncer = Syncer(ledger, config, client)
            task = asyncio.create_task(syncer.run(stop))
            async with asyncio.timeout(10):
                while ledger.backlog() or syncer.status["last_ok_ms"] is None:
                    await asyncio.sleep(0.02)
            ledger.adjust("a1", "C1", 5, "test", "tech", now_iso())
            syncer.wake()
            async with asyncio.timeout(5):
                while ledger.backlog():
                    await asyncio.sleep(0.02)
            started = time.monotonic()
            stop.set()
            await asyncio.wait_for(task, 5)
            assert time.monotonic() - started < 1.0

    try:
        asyncio.run(scenario())
    finally:
        ledger.close()
        server.stop()


def test_a_terminal_reprovisioned_on_a_new_disk_syncs_as_a_new_stream(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    publish_cards(dsn, {"C7": 1000})
    key = provision(dsn, "T01")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    try:
        old = Ledger.init(tmp_path / "old-disk", "T01")
        config = sync_config(server.url, key, tmp_path, "T01")
        asyncio.run(settle([(old, config)]))
        old.adjust("a-1", "C7", -80, "redeemed at the till", "cashier", now_iso())
        asyncio.run(settle([(old, config)]))
        old.close()  # the disk dies; a technician provisions the same terminal on a new one
        time.sleep(0.002)
        new = Ledger.init(tmp_path / "new-disk", "T01")
        asyncio.run(settle([(new, config)]))  # the same sequence numbers, a new epoch: no conflict
        assert new.card("C7", now_iso())["balance"] == 920
        new.adjust("a-2", "C7", -50, "redeemed at the till", "cashier", now_iso())
        asyncio.run(settle([(new, config)]))
        assert new.backlog() == 0
        streams = {(t, e) for t, e, _, _, _ in server_events(dsn)}
        assert len(streams) == 2 and all(t == "T01" for t, _ in streams)
        assert server_balances(dsn)["C7"] == 870 == new.card("C7", now_iso())["balance"]
        new.close()
    finally:
        server.stop()
