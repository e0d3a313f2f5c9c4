"""Daemon benchmarks (issue 5): the real daemon process on simulated devices.

  - scan → quote event: a line written into the scanner FIFO until its `quote` event arrives on
    the API's SSE stream (drivers → queue → checkout → pricing → SSE), p50/p99 over `SCANS` scans;
  - sales per minute end to end: add a line and pay through the API, receipts printed;
  - daemon RSS (VmRSS) after that work, and spawn-to-READY time.
Targets on the project machine: p99 ≤ 10 ms, RSS ≤ 80 MB, READY ≤ 2 s. The figures are printed
(`-s`) and kept in the benchmark JSON's extra_info; `make bench` runs them with the others.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from terminal.client import ApiClient, EventWatcher
from terminal.demo_run import split_receipts
from tests.e2e.conftest import Terminal

SCANS = 200
SALES = 30
CODES = ("4600000000022", "4600000000015", "4006381333931")
P99_MS_MAX, RSS_MB_MAX, READY_S_MAX = 10.0, 80.0, 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def scan_latencies(term: Terminal) -> list[float]:
    out = []
    async with ApiClient(term.socket) as api, EventWatcher(api) as events:
        term.scan(CODES[0])  # warm-up: opens the FIFO and the checkout
        await events.wait_for("quote")
        for i in range(SCANS):
            start = time.perf_counter()
            term.scan(CODES[i % len(CODES)])
            await events.wait_for("quote")
            out.append((time.perf_counter() - start) * 1000)
        await api.ok("POST", "/v1/checkout/cancel")
    return out


async def sales_per_minute(term: Terminal) -> float:
    async with ApiClient(term.socket) as api:
        start = time.perf_counter()
        for i in range(SALES):
            await api.ok("POST", "/v1/checkout/lines", {"code": CODES[i % 2]})
            await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
        deadline = time.monotonic() + 30
        while len(split_receipts(term.receipts_text())) < SALES and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - start
    assert len(split_receipts(term.receipts_text())) == SALES
    return SALES / elapsed * 60


def test_daemon_figures(benchmark: Any, tmp_path: Path) -> None:
    term = Terminal(tmp_path)
    figures: dict[str, float] = {}
    try:
        daemon = term.start()
        assert daemon.ready_s is not None
        figures["ready_s"] = daemon.ready_s

        def measure() -> None:
            lat = asyncio.run(scan_latencies(term))
            figures.update(scan_p50_ms=statistics.median(lat), scan_p99_ms=percentile(lat, 0.99),
                           scan_max_ms=max(lat))

        benchmark.group = f"daemon: {SCANS} scans, FIFO → quote SSE event (figures in extra_info)"
        benchmark.pedantic(measure, rounds=1, iterations=1)
        figures["sales_per_min"] = asyncio.run(sales_per_minute(term))
        figures["rss_mb"] = daemon.rss_kib() / 1024
    finally:
        term.close()
    benchmark.extra_info.update(figures)
    print("\ndaemon: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
    # Targets are reported, never asserted: timing on a shared 2-core machine is not a test.
    targets = {"scan_p99_ms": P99_MS_MAX, "rss_mb": RSS_MB_MAX, "ready_s": READY_S_MAX}
    print("daemon targets: " + ", ".join(
        f"{k} {'met' if figures[k] <= limit else 'MISSED'} (≤ {limit})" for k, limit in targets.items()))
    assert figures["sales_per_min"] > 0 and len(figures) == 6  # every figure was measured
