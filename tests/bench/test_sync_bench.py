"""Sync benchmarks (issue 6): outbox drain to a loopback central, and central ingest with 50
simulated terminals on SQLite and on PostgreSQL. Targets: ≥ 20 000 events/s each.

Default (`make test`): small sizes, run once as smoke tests. The real measurement:

    POSTERM_BENCH_FULL=1 POSTERM_TEST_PG_DSN=postgresql://… \
        .venv/bin/python -m pytest tests/bench/test_sync_bench.py -q -s --benchmark-enable

Each test prints one `sync-bench` line (events, seconds, events/s) and keeps the figures in
the benchmark's extra_info.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from central.balances import CardState
from central.store import open_store
from protocol import wire
from terminal.ledger import Ledger, moments
from terminal.ledger.tx import Tx, event_id, write
from terminal.sync import SyncClient, Syncer
from tests.central.conftest import PG_DSN
from tests.central.helpers import CentralProcess, fresh_store, now_iso, provision, sqlite_dsn, sync_config

FULL = os.environ.get("POSTERM_BENCH_FULL") == "1"
DRAIN_EVENTS = 100_000 if FULL else 2_000
INGEST_TERMINALS = 50 if FULL else 5
INGEST_EVENTS_PER_TERMINAL = 2_000 if FULL else 400
CARDS = 10_000 if FULL else 100
TARGET_EVENTS_PER_S = 20_000
FILL_EVENTS_PER_OP = 10_000
SALES_START_MS = 1_795_000_000_000
LOT_LIFE_MS = 365 * 86_400_000


def report(benchmark: Any, name: str, events: int, seconds: float) -> float:
    """Reported, never asserted: a benchmark is not a timed test."""
    rate = events / seconds
    benchmark.extra_info.update({"events": events, "seconds": round(seconds, 3), "events_per_s": round(rate)})
    verdict = "meets" if rate >= TARGET_EVENTS_PER_S else "MISSES"
    print(f"\nsync-bench {name}: {events} events in {seconds:.2f} s = {rate:,.0f} events/s "
          f"({verdict} the {TARGET_EVENTS_PER_S:,} target)")
    return rate


def cpu_s(pid: int) -> float:
    """A process's CPU time so far (user + system, /proc): the per-event cost, which the other
    sessions of a shared machine disturb far less than the wall-clock rate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def report_cpu(benchmark: Any, name: str, events: int, seconds: float) -> None:
    us = seconds / events * 1e6
    benchmark.extra_info["central_cpu_us_per_event"] = round(us, 1)
    print(f"sync-bench {name}: central CPU {us:.1f} µs an event (process time)")


def accrual_lot(at_ms: int, points: int) -> dict[str, Any]:
    """A sale's accrual lot as the ledger reports it: available from the sale, a year to live."""
    return {
        "points": points,
        "available_from": moments.iso_from_ms(at_ms),
        "expires_at": moments.iso_from_ms(at_ms + LOT_LIFE_MS),
    }


def sale_fields(receipt: str, card: str, at_ms: int) -> dict[str, Any]:
    """A sale event's own fields as a ledger writes them, with three lines (one discounted)."""
    lines = [
        {"sku": "MILK-1L", "qty_milli": 2_000, "price": 1_990, "amount": 3_980, "discount": 199,
         "redeem_amount": 0, "paid": 3_781, "rules": ["milk-5"]},
        {"sku": "BREAD", "qty_milli": 1_000, "price": 2_490, "amount": 2_490, "discount": 0,
         "redeem_amount": 0, "paid": 2_490, "rules": []},
        {"sku": "APPLES", "qty_milli": 1_350, "price": 4_500, "amount": 6_075, "discount": 0,
         "redeem_amount": 0, "paid": 6_075, "rules": []},
    ]
    return {
        "receipt": receipt,
        "card": card,
        "card_type": "standard",
        "card_type_after": None,
        "subtotal": 12_545,
        "discount": 199,
        "total": 12_346,
        "to_pay": 12_346,
        "tenders": [{"method": "card", "amount": 12_346}],
        "redeemed": 0,
        "redeemed_money": 0,
        "accrued": 2,
        "referral": [],
        "lines": lines,
        "gifts": [],
        "deltas": {card: 2},
        "lots": {card: [accrual_lot(at_ms, 2)]},
    }


def fill_outbox(ledger: Ledger, count: int) -> None:
    """`count` sale-like events, each moving points on one card and saying which lot (written
    straight through the ledger's transaction helper, many events per transaction, so set-up
    stays quick)."""
    rng = random.Random(6)
    at = moments.moment(now_iso(), "now")
    for start in range(0, count, FILL_EVENTS_PER_OP):

        def body(tx: Tx, start: int = start) -> dict[str, Any]:
            for i in range(start, min(count, start + FILL_EVENTS_PER_OP)):
                card = f"C{rng.randrange(CARDS)}"
                tx.event("sale", at, sale_fields(f"r{i}", card, at.ms + i))
            return {}

        write(ledger.store, f"bench-fill-{start}", "bench", {"start": start}, body)


def test_drain_to_loopback_central(benchmark: Any, tmp_path: Path) -> None:
    dsn = sqlite_dsn(tmp_path)
    key = provision(dsn, "T01")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01", sync=False)
    try:
        fill_outbox(ledger, DRAIN_EVENTS)
        ledger.close()
        ledger = Ledger(tmp_path / "led")  # fsynced acks while draining, as in production
        config = sync_config(server.url, key, tmp_path, "T01")

        async def drain() -> int:
            async with SyncClient(config.url, "T01", key, 30_000) as client:
                return await Syncer(ledger, config, client).drainer.drain()

        started, cpu = time.perf_counter(), cpu_s(server.proc.pid)
        sent = benchmark.pedantic(lambda: asyncio.run(drain()), rounds=1, iterations=1)
        seconds = time.perf_counter() - started
        assert sent == DRAIN_EVENTS and ledger.backlog() == 0
        report(benchmark, "drain", sent, seconds)
        report_cpu(benchmark, "drain", sent, cpu_s(server.proc.pid) - cpu)
    finally:
        ledger.close()
        server.stop()


def terminal_batches(terminal: str, key: bytes, count: int) -> list[bytes]:
    rng = random.Random(terminal)
    events = []
    for seq in range(1, count + 1):
        card = f"C{rng.randrange(CARDS)}"
        at_ms = SALES_START_MS + seq * 1_000 + rng.randrange(1_000)  # each sale its own lot
        events.append(
            {
                "id": event_id(int(time.time() * 1000)),
                "epoch": 1,
                "seq": seq,
                "type": "sale",
                "at": moments.iso_from_ms(at_ms),
                "at_ms": at_ms,
                "shift": 1,
                **sale_fields(f"{terminal}-{seq}", card, at_ms),
            }
        )
    bodies, prev = [], b""
    for start in range(0, count, wire.BATCH_EVENTS_MAX):
        body = wire.encode_batch(terminal, 1, prev, events[start : start + wire.BATCH_EVENTS_MAX])
        bodies.append(body)
        prev = bytes.fromhex(wire.sign(key, body))
    return bodies


async def send_all(url: str, terminals: list[tuple[str, bytes, list[bytes]]]) -> int:
    async def one(session: aiohttp.ClientSession, terminal: str, key: bytes, bodies: list[bytes]) -> int:
        acked = 0
        for body in bodies:  # one batch in flight per terminal
            headers = {wire.TERMINAL_HEADER: terminal, wire.MAC_HEADER: wire.sign(key, body)}
            async with session.post(url + "/v1/batches", data=body, headers=headers) as resp:
                data = await resp.read()
                assert resp.status == 200, data[:300]
                acked = wire.decode_reply(data)["acked_through"]
        return int(acked)

    connector = aiohttp.TCPConnector(limit=len(terminals))
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
        done = await asyncio.gather(*(one(session, t, k, b) for t, k, b in terminals))
    return sum(done)


@pytest.mark.parametrize(("backend", "collectors"), [("sqlite", 1), ("pg", 1), ("pg", 2)])
def test_central_ingest_50_terminals(benchmark: Any, tmp_path: Path, backend: str, collectors: int) -> None:
    """50 terminals, one batch in flight each, 1 000-event batches of sale events on 10 000
    shared cards, each with its own accrual lot (the server writes a lot row per event); with
    PostgreSQL also two collector processes sharing the database."""
    if backend == "pg" and not PG_DSN:
        pytest.skip("PostgreSQL: set POSTERM_TEST_PG_DSN (.ci/run starts a cluster and sets it)")
    dsn = sqlite_dsn(tmp_path) if backend == "sqlite" else PG_DSN
    store = fresh_store(dsn)
    try:
        store.put_cards([CardState(f"C{i}", balance=1_000) for i in range(CARDS)])
    finally:
        store.close()
    names = [f"B{i:03}" for i in range(INGEST_TERMINALS)]
    terminals = []
    for name in names:
        key = provision(dsn, name)
        terminals.append((name, key, terminal_batches(name, key, INGEST_EVENTS_PER_TERMINAL)))
    servers = [CentralProcess(dsn, tmp_path / f"central-{i}.log").start() for i in range(collectors)]
    groups = [(s.url, terminals[i :: len(servers)]) for i, s in enumerate(servers)]

    async def send_everything() -> int:
        return sum(await asyncio.gather(*(send_all(url, group) for url, group in groups)))

    try:
        started, cpu = time.perf_counter(), sum(cpu_s(s.proc.pid) for s in servers)
        acked = benchmark.pedantic(lambda: asyncio.run(send_everything()), rounds=1, iterations=1)
        seconds = time.perf_counter() - started
        cpu = sum(cpu_s(s.proc.pid) for s in servers) - cpu
        total = INGEST_TERMINALS * INGEST_EVENTS_PER_TERMINAL
        assert acked == total
        check = open_store(dsn)
        try:
            assert sum(1 for _ in check.events()) == total
            assert sum(c.balance for c in check.all_cards()) == 1_000 * CARDS + 2 * total
        finally:
            check.close()
        name = f"ingest {backend} {INGEST_TERMINALS} terminals, {collectors} collector(s)"
        report(benchmark, name, total, seconds)
        report_cpu(benchmark, name, total, cpu)
    finally:
        for server in servers:
            server.stop()


FEED_CARDS = 2_000
FEED_LOTS_PER_CARD = 5


def test_feed_cost_per_card(benchmark: Any, tmp_path: Path) -> None:
    """What one card entry costs (issue 11): bytes on the wire, the server's time to build a
    page (snapshot read of cards and lots, entries, msgpack) and the terminal's time to apply it
    (check, mirror the lots), per card with `FEED_LOTS_PER_CARD` dated lots."""
    from central.feed import build_updates
    from central.lots import Lot, Origin

    store = fresh_store(sqlite_dsn(tmp_path))
    ledger = Ledger.init(tmp_path / "led", "T01", map_size_bytes=1 << 30)
    try:
        store.put_cards([CardState(f"C{i:06}", type="standard") for i in range(FEED_CARDS)])
        day = 86_400_000
        base = moments.moment(now_iso(), "now").ms
        with store.transaction() as tx:  # dated lots, as terminals' accruals leave them
            cards, book = tx.lock_with_lots([f"C{i:06}" for i in range(FEED_CARDS)])
            for number, card in cards.items():
                for k in range(FEED_LOTS_PER_CARD):
                    key = (base + (30 + k) * day, base + k * day)
                    book[number].lots[key] = Lot(100 + k, Origin("sale", "T01", 1, k))
                card.balance = sum(100 + k for k in range(FEED_LOTS_PER_CARD))
            tx.save_with_lots(list(cards.values()), book)
        started = time.perf_counter()
        page = build_updates(store, "T01", 0)
        built_s = time.perf_counter() - started
        body = wire.encode_updates(page)
        assert len(page["cards"]) == FEED_CARDS and all(len(c["lots"]) == FEED_LOTS_PER_CARD for c in page["cards"])
        decoded = wire.decode_updates(body)
        batch = {"cards": decoded["cards"], "acked": decoded["acked"]}

        def apply() -> dict[str, Any]:
            return ledger.apply_updates("feed-bench", batch, now_iso())

        started = time.perf_counter()
        result = benchmark.pedantic(apply, rounds=1, iterations=1)
        applied_s = time.perf_counter() - started
        assert result["cards_applied"] == FEED_CARDS
        per_card = {
            "bytes_per_card": round(len(body) / FEED_CARDS),
            "build_us_per_card": round(built_s / FEED_CARDS * 1e6, 1),
            "apply_us_per_card": round(applied_s / FEED_CARDS * 1e6, 1),
        }
        benchmark.extra_info.update(per_card)
        print(f"\nfeed, {FEED_LOTS_PER_CARD} lots a card: {per_card}")
    finally:
        ledger.close()
        store.close()
