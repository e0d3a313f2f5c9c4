"""Ledger benchmarks (pytest-benchmark; run once as plain tests unless --benchmark-enable).

    make bench    or    POSTERM_PURE=1 python -m pytest tests/bench/test_ledger_bench.py \
                            --benchmark-enable -s --benchmark-columns=min,median,mean,ops

- sale commit with full sync (fsync of data and meta on every commit)
- a raw LMDB put + commit loop writing the same bytes per transaction, same options, same disk:
  the ceiling the ledger is measured against (target: ledger ≥ 0.8 × raw)
- sale commit with sync off (informational: what the fsyncs cost), and the same after 0.3 ms
  of idle CPU before each (informational: a sale's work starts on an idle core after an fsync)
- card lookup (`card_for_quote` of a card with 20 lots and a hold)
- ledger size per 100 000 sales (extrapolated from 10 000 when enabled, 1 000 otherwise)

The ledger lives under the repository's .bench/ directory, not /tmp, so the fsyncs hit a disk.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
from pathlib import Path

import lmdb
import pytest

import core
from terminal.ledger import Ledger, keys
from terminal.ledger.store import META_KEY
from tests.terminal.ledger_rules import RULES

NOW = "2026-11-23T10:00:00+03:00"
ROOT = Path(__file__).resolve().parents[2]
MAP_BYTES = 1024 * 1024 * 1024
RATIO_BLOCKS = 25
RATIO_BLOCK_OPS = 20
RATIO_TARGET = 0.8
IDLE_BEFORE_S = 0.0003


@pytest.fixture
def bench_dir(request):
    path = ROOT / ".bench" / request.node.name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def quote():
    engine = core.Engine(core.compile_rules(RULES))
    card = {"number": "C1", "type": "standard", "cumulative": 0, "lots": [], "referrers": []}
    cart = {
        "store": "S01",
        "lines": [{"sku": f"P{i}", "price": 12345 + i, "qty": 1 + i % 3} for i in range(5)],
    }
    return engine.quote(cart, card, NOW, None)


def _ledger(path: Path, sync: bool) -> Ledger:
    led = Ledger.init(path, "T01", map_size_bytes=MAP_BYTES, sync=sync)
    led.apply_updates(
        "cards",
        {
            "cards": [
                {"number": f"C{i}", "type": "standard", "version": 1, "balance": 1000}
                for i in range(1, 101)
            ]
        },
        NOW,
    )
    return led


def _sale_committer(led: Ledger, quote):
    payment = {"tenders": [{"method": "card", "amount": quote["to_pay"]}]}
    counter = itertools.count()

    def commit_one():
        i = next(counter)
        led.commit_sale(f"sale-{i:012d}", quote, f"C{1 + i % 100}", payment, NOW)

    return commit_one


def _sale_bytes(led: Ledger) -> int:
    """Bytes of keys and values one sale writes (receipt, event, card, lot, op record, meta)."""
    with led.store.env.begin() as txn:
        total = 0
        for db in ("receipts", "outbox", "ops"):
            key, value = next(iter(txn.cursor(db=led.store.dbs[db])))
            total += len(key) + len(value)
        card = txn.get(keys.text("C1"), db=led.store.dbs["cards"])
        key, lot = next(iter(txn.cursor(db=led.store.dbs["lots"])))
        meta = txn.get(b"ledger", db=led.store.dbs["meta"])
    return total + len(card) + len(key) + len(lot) + len(meta) + 2 * keys.TEXT_KEY_BYTES


def _raw_committer(path: Path, value_bytes: int):
    env = lmdb.open(
        str(path),
        map_size=MAP_BYTES,
        max_dbs=16,
        subdir=True,
        sync=True,
        metasync=True,
        writemap=False,
        map_async=False,
        lock=True,
        readahead=False,
        meminit=False,
    )
    db = env.open_db(b"raw")
    value = bytes(value_bytes)
    counter = itertools.count()

    def commit_one():
        with env.begin(write=True) as txn:
            txn.put(keys.u64(next(counter)), value, db=db, append=True)

    return env, commit_one


def _replay_committer(path: Path, sale_led: Ledger):
    """The records one sale writes (receipt, event, card, lot, meta: their bytes taken from
    `sale_led`) written again by a plain loop into a ledger of the same setup, under the keys
    the next sales would use: the sale's own layout and I/O without its Python logic."""
    with sale_led.store.env.begin() as txn:
        first = {
            db: next(iter(txn.cursor(db=sale_led.store.dbs[db])))
            for db in ("receipts", "outbox", "cards", "lots", "meta")
        }
    value = {db: raw for db, (_, raw) in first.items()}
    expiry = first["lots"][0][keys.TEXT_KEY_BYTES : keys.TEXT_KEY_BYTES + 8]
    led = _ledger(path, sync=True)
    env, dbs = led.store.env, led.store.dbs
    counter = itertools.count(1)

    def commit_one():
        i = next(counter)
        card = keys.text(f"C{1 + i % 100}")
        with env.begin(write=True) as txn:
            txn.put(keys.text(f"sale-{i:012d}"), value["receipts"], db=dbs["receipts"], append=True)
            txn.put(keys.u64(i), value["outbox"], db=dbs["outbox"], append=True)
            txn.put(card, value["cards"], db=dbs["cards"])
            txn.put(card + expiry + keys.u64(i), value["lots"], db=dbs["lots"])
            txn.put(META_KEY, value["meta"], db=dbs["meta"])

    return led, commit_one


def _block_rate(fn, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return count / (time.perf_counter() - started)


def test_sale_commit_full_sync(benchmark, bench_dir, quote):
    led = _ledger(bench_dir / "ledger", sync=True)
    benchmark(_sale_committer(led, quote))
    assert led.verify()["ok"]
    led.close()


def test_raw_lmdb_put_commit_full_sync(benchmark, bench_dir, quote):
    led = _ledger(bench_dir / "ledger", sync=False)
    _sale_committer(led, quote)()
    size = _sale_bytes(led)
    led.close()
    env, commit_one = _raw_committer(bench_dir / "raw", size)
    benchmark.extra_info["value_bytes"] = size
    benchmark(commit_one)
    env.close()


def test_sale_commit_sync_off(benchmark, bench_dir, quote):
    led = _ledger(bench_dir / "ledger", sync=False)
    benchmark(_sale_committer(led, quote))
    led.close()


def test_sale_commit_sync_off_after_idle(benchmark, bench_dir, quote):
    """The same sale commit with the CPU idle for 0.3 ms before each (about what an fsync
    takes here; informational): how much slower a sale's own work runs when it starts on an
    idle core, as every sale of the full-sync loops does."""
    led = _ledger(bench_dir / "ledger", sync=False)
    commit_one = _sale_committer(led, quote)
    for _ in range(100):
        commit_one()
    rounds = 2000 if benchmark.enabled else 1
    benchmark.pedantic(
        commit_one, setup=lambda: time.sleep(IDLE_BEFORE_S), rounds=rounds, iterations=1
    )
    led.close()


def test_card_lookup(benchmark, bench_dir):
    led = _ledger(bench_dir / "ledger", sync=False)
    for i in range(19):
        led.adjust(
            f"a{i}", "C1", 10 + i, "bench", "t", NOW, f"2027-{1 + i % 12:02d}-01T00:00:00+03:00"
        )
    led.hold("h", "C1", "K1", 5, NOW, "2026-11-23T10:05:00+03:00")
    card = benchmark(led.card_for_quote, "C1", NOW, "K2")
    assert len(card["lots"]) == 21  # 20 lots + the other checkout's hold
    led.close()


def test_sale_commit_vs_raw_lmdb_ratio(benchmark, bench_dir, quote):
    """Both loops in the same run, interleaved in small blocks so that the shared disk's noise
    hits both alike; the ratio is of the median block rates. A third loop, interleaved too,
    writes the sale's own records without its logic (informational: it splits the gap into
    what the ledger's layout costs and what its Python costs)."""
    led = _ledger(bench_dir / "ledger", sync=True)
    sale = _sale_committer(led, quote)
    sale()
    env, raw = _raw_committer(bench_dir / "raw", _sale_bytes(led))
    replay_led, replay = _replay_committer(bench_dir / "replay", led)
    blocks = RATIO_BLOCKS if benchmark.enabled else 3
    rates: dict[str, list[float]] = {"sale": [], "raw": [], "replay": []}
    for _ in range(blocks):
        for name, loop in (("sale", sale), ("raw", raw), ("replay", replay)):
            rates[name].append(_block_rate(loop, RATIO_BLOCK_OPS))
    sale_rate, raw_rate, replay_rate = (statistics.median(rates[n]) for n in ("sale", "raw", "replay"))
    ratio = sale_rate / raw_rate
    print(
        f"\nsale commits/s (full sync) {sale_rate:.0f}, raw LMDB put+commit/s {raw_rate:.0f} "
        f"({blocks} × {RATIO_BLOCK_OPS} each, interleaved), ratio {ratio:.2f} "
        f"(target {RATIO_TARGET}); the sale's records replayed {replay_rate:.0f}/s "
        f"(replay / raw {replay_rate / raw_rate:.2f}, sale / replay {sale_rate / replay_rate:.2f})"
    )
    benchmark.extra_info.update(
        sale_per_s=round(sale_rate),
        raw_per_s=round(raw_rate),
        replay_per_s=round(replay_rate),
        ratio=round(ratio, 3),
    )
    benchmark.pedantic(sale, rounds=1, iterations=1)
    assert led.verify()["ok"]
    env.close()
    replay_led.close()
    led.close()


def test_ledger_size_per_100k_sales(benchmark, bench_dir, quote):
    sales = 10_000 if benchmark.enabled else 1_000
    led = _ledger(bench_dir / "ledger", sync=False)
    commit_one = _sale_committer(led, quote)
    empty_pages = led.store.env.info()["last_pgno"]
    benchmark.pedantic(lambda: [commit_one() for _ in range(sales)], rounds=1, iterations=1)
    page = led.store.env.stat()["psize"]
    used = (led.store.env.info()["last_pgno"] - empty_pages) * page
    per_100k = used * 100_000 / sales
    benchmark.extra_info.update(sales=sales, used_bytes=used, per_100k_bytes=round(per_100k))
    print(
        f"\nledger size: {used / 1e6:.1f} MB for {sales} sales → {per_100k / 1e6:.0f} MB per "
        f"100k sales (extrapolated), {used / sales:.0f} bytes a sale"
    )
    assert led.verify()["ok"]
    led.close()
