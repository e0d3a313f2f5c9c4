"""Fault tests with real processes on loopback: a `posterm-central serve` child (SQLite and
PostgreSQL), a fault-injecting proxy in front of it, two terminals with real LMDB ledgers.

After every scenario: the server's events equal the union of the terminals' outboxes, nothing
is lost or stored twice, and every card's balance is the same everywhere. Each scenario is
bounded in time (`SCENARIO_TIMEOUT_S`)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from protocol import wire
from terminal.ledger import Ledger
from terminal.sync import SyncClient, SyncConfig, Syncer
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    REPO,
    CentralProcess,
    FaultProxy,
    assert_consistent,
    now_iso,
    provision,
    publish_cards,
    server_events,
    settle,
    sync_config,
    sync_round,
)

# Generous: these bound a hang, not a speed (the suite runs on two shared cores).
SCENARIO_TIMEOUT_S = 120.0
CARDS = {f"C{i}": 1_000 for i in range(5)}
TERMINALS = ("T01", "T02")


@dataclass
class World:
    dsn: str
    tmp: Path
    server: CentralProcess
    proxy: FaultProxy
    ledgers: list[Ledger]
    configs: list[SyncConfig]
    keys: list[bytes]

    def terminals(self) -> list[tuple[Ledger, SyncConfig]]:
        return list(zip(self.ledgers, self.configs, strict=True))

    def direct(self) -> list[tuple[Ledger, SyncConfig]]:
        """The same terminals talking to the server without the proxy."""
        return [(led, SyncConfig(**{**cfg.__dict__, "url": self.server.url})) for led, cfg in self.terminals()]


@pytest.fixture
def world(dsn: str, tmp_path: Path) -> Iterator[World]:  # noqa: F811
    publish_cards(dsn, CARDS)
    keys = [provision(dsn, t) for t in TERMINALS]
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    proxy = FaultProxy(server.port)
    ledgers = [Ledger.init(tmp_path / f"ledger-{t}", t) for t in TERMINALS]
    configs = [
        sync_config(proxy.url, k, tmp_path, t, request_timeout_ms=1_500) for t, k in zip(TERMINALS, keys, strict=True)
    ]
    w = World(dsn, tmp_path, server, proxy, ledgers, configs, keys)
    try:
        yield w
    finally:
        for led in ledgers:
            led.close()
        server.stop()


def run(w: World, scenario: Callable[[World], Awaitable[None]]) -> None:
    async def main() -> None:
        await w.proxy.start()
        try:
            await settle(w.terminals())  # every terminal has the published cards
            await asyncio.wait_for(scenario(w), SCENARIO_TIMEOUT_S)
            w.proxy.set("pass")
            await settle(w.terminals())
        finally:
            await w.proxy.close()

    asyncio.run(main())
    assert_consistent(w.dsn, w.ledgers)


def make_events(ledger: Ledger, count: int, tag: str) -> None:
    now = now_iso()
    rng = random.Random(tag)
    for i in range(count):
        points = rng.choice([5, 7, -3, -4])
        ledger.adjust(f"{tag}-{i}", f"C{rng.randrange(len(CARDS))}", points, "fault test", "tech", now)


async def run_syncers_until_drained(w: World, timeout_s: float = 60.0) -> None:
    """The daemon's loop for every terminal, until every outbox is empty (bounded)."""
    stop = asyncio.Event()

    async def one(ledger: Ledger, config: SyncConfig) -> None:
        async with SyncClient(config.url, ledger.terminal_id, config.key, config.request_timeout_ms) as c:
            await Syncer(ledger, config, c, rand=lambda: 1.0).run(stop)

    tasks = [asyncio.create_task(one(led, cfg)) for led, cfg in w.terminals()]
    try:
        async with asyncio.timeout(timeout_s):
            while any(led.backlog() for led in w.ledgers):
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


# ---------------------------------------------------------------- scenarios


def test_server_down_for_a_while(world: World) -> None:
    async def scenario(w: World) -> None:
        w.server.stop()
        for led in w.ledgers:
            make_events(led, 40, led.terminal_id + "-down")
        stop = asyncio.Event()
        syncers = [asyncio.create_task(_loop(led, cfg, stop)) for led, cfg in w.terminals()]
        await asyncio.sleep(1.0)  # both retry against a dead server
        assert all(led.backlog() for led in w.ledgers)
        w.server.start()
        async with asyncio.timeout(60):
            while any(led.backlog() for led in w.ledgers):
                await asyncio.sleep(0.05)
        stop.set()
        await asyncio.gather(*syncers)

    run(world, scenario)
    assert "event=batch_stored" in world.server.log()


async def _loop(ledger: Ledger, config: SyncConfig, stop: asyncio.Event) -> None:
    async with SyncClient(config.url, ledger.terminal_id, config.key, config.request_timeout_ms) as c:
        await Syncer(ledger, config, c).run(stop)


@pytest.mark.parametrize("mode", ["slow", "500", "500_after", "drop"])
def test_faulty_network(world: World, mode: str) -> None:
    async def scenario(w: World) -> None:
        for led in w.ledgers:
            make_events(led, 1_100, led.terminal_id + mode)  # two batches each
        # slow: a reply later than the client's 1.5 s timeout, after the server committed.
        w.proxy.set(mode, count=4, delay_s=2.0)
        await run_syncers_until_drained(w, 60.0)
        assert w.proxy.faults == 4

    run(world, scenario)


def test_duplicate_and_reordered_batches(world: World) -> None:
    async def scenario(w: World) -> None:
        led, key = w.ledgers[0], w.keys[0]
        make_events(led, 30, "dup")
        events = _outbox_from(led, led.meta()["acked_seq"] + 1)
        bodies = []
        prev = b""
        async with aiohttp.ClientSession() as s:
            for chunk in (events[:10], events[10:20], events[20:]):
                body = wire.encode_batch(led.terminal_id, led.meta()["epoch"], prev, chunk)
                bodies.append(body)
                prev = bytes.fromhex(wire.sign(key, body))
            # Reordered: the third batch first is a gap, answered with the expected seq.
            status, reply = await _post(s, w.server.url, led.terminal_id, key, bodies[2])
            assert status == 409 and reply["error"] in ("gap", "chain")
            expected = reply["expected_seq"]
            assert expected == events[0]["seq"]
            # The first batch needs the chain the server holds for this terminal.
            bodies[0] = wire.encode_batch(led.terminal_id, led.meta()["epoch"], reply["prev_mac"], events[:10])
            prev = bytes.fromhex(wire.sign(key, bodies[0]))
            bodies[1] = wire.encode_batch(led.terminal_id, led.meta()["epoch"], prev, events[10:20])
            prev = bytes.fromhex(wire.sign(key, bodies[1]))
            bodies[2] = wire.encode_batch(led.terminal_id, led.meta()["epoch"], prev, events[20:])
            seen: set[int] = set()
            for i in (0, 1, 0, 1, 2, 2, 0, 1):  # duplicates and reordering
                status, reply = await _post(s, w.server.url, led.terminal_id, key, bodies[i])
                assert status == 200, reply
                assert {r["status"] for r in reply["results"]} == {"duplicate" if i in seen else "stored"}
                seen.add(i)
        stored = [e for e in server_events(w.dsn) if e[0] == led.terminal_id]
        assert len(stored) == len({(t, ep, sq) for t, ep, sq, _, _ in stored})

    run(world, scenario)


async def _post(s: aiohttp.ClientSession, url: str, terminal: str, key: bytes, body: bytes) -> tuple[int, Any]:
    headers = {wire.TERMINAL_HEADER: terminal, wire.MAC_HEADER: wire.sign(key, body)}
    async with s.post(url + "/v1/batches", data=body, headers=headers) as resp:
        data = await resp.read()
        if resp.status != 401:
            wire.verify(key, data, resp.headers.get(wire.MAC_HEADER))
        return resp.status, wire.unpack(data, wire.REPLY_BYTES_MAX)


def _outbox_from(ledger: Ledger, first: int) -> list[dict[str, Any]]:
    from tests.central.helpers import outbox

    return [e for e in outbox(ledger) if e["seq"] >= first]


def test_corrupted_and_forged_batches_store_nothing(world: World) -> None:
    async def scenario(w: World) -> None:
        led, key = w.ledgers[0], w.keys[0]
        make_events(led, 5, "forge")
        before = len(server_events(w.dsn))
        events = _outbox_from(led, led.meta()["acked_seq"] + 1)
        body = wire.encode_batch(led.terminal_id, led.meta()["epoch"], b"", events)
        corrupted = body[:-3] + bytes([body[-3] ^ 0x20]) + body[-2:]
        async with aiohttp.ClientSession() as s:
            for data, mac, terminal in (
                (corrupted, wire.sign(key, body), led.terminal_id),  # bytes changed after signing
                (body, wire.sign(os.urandom(32), body), led.terminal_id),  # forged with another key
                (body, wire.sign(w.keys[1], body), "T02"),  # T02's key, T01's batch
                (body, wire.sign(key, body), "T99"),  # unknown terminal
            ):
                headers = {wire.TERMINAL_HEADER: terminal, wire.MAC_HEADER: mac}
                async with s.post(w.server.url + "/v1/batches", data=data, headers=headers) as resp:
                    assert resp.status == 401, await resp.read()
        assert len(server_events(w.dsn)) == before
        log = w.server.log()
        assert log.count("event=batch_refused") >= 4 and "reason=auth" in log

    run(world, scenario)


CHILD = """
import asyncio, sys
from terminal.ledger import Ledger
from terminal.sync import SyncConfig, run_sync
cfg = SyncConfig.from_mapping({"url": sys.argv[2], "key": sys.argv[3], "state_file": sys.argv[4],
                               "request_timeout_ms": 30000})
asyncio.run(run_sync(Ledger(sys.argv[1]), cfg, asyncio.Event()))
"""


def test_terminal_killed_between_commit_and_ack(world: World) -> None:
    async def scenario(w: World) -> None:
        led, cfg = w.ledgers[0], w.configs[0]
        make_events(led, 50, "kill")
        path = led.store.path
        led.close()
        w.proxy.set("hold", count=1)  # the server commits; its reply never reaches the terminal
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), w.proxy.url, w.keys[0].hex(), str(cfg.state_file)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        try:
            await asyncio.wait_for(w.proxy.held.wait(), 60)
            await asyncio.sleep(0.3)  # the server has replied to the proxy by now
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(5)
        w.ledgers[0] = Ledger(path)
        first = w.ledgers[0].meta()["acked_seq"] + 1
        assert w.ledgers[0].backlog() == 50  # the terminal never saw the ack …
        stored = [e for e in server_events(w.dsn) if e[0] == "T01" and e[2] >= first]
        assert len(stored) == 50  # … but the server committed the batch
        w.proxy.set("pass")
        await sync_round(w.ledgers[0], cfg)

    run(world, scenario)


def test_stop_does_not_wait_for_a_hanging_request(world: World) -> None:
    async def scenario(w: World) -> None:
        led = w.ledgers[0]
        make_events(led, 20, "hang")
        w.proxy.set("hold", count=1)  # committed by the server, the reply never comes
        config = SyncConfig(**{**w.configs[0].__dict__, "request_timeout_ms": 30_000})
        stop = asyncio.Event()
        task = asyncio.create_task(_loop(led, config, stop))
        await asyncio.wait_for(w.proxy.held.wait(), 60)
        stop.set()
        # The request would hang for 30 s; the loop must end well before it does.
        await asyncio.wait_for(task, 10)
        assert led.backlog() == 20  # not acked: the reply never came

    run(world, scenario)
