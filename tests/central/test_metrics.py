"""`GET /metrics` of a real collector: ingest, refusals by reason, latency, terminals lagging."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from central.metrics import LAG_S, CentralMetrics
from protocol import wire
from terminal.ledger import Ledger
from tests.central.helpers import (
    CentralProcess,
    now_iso,
    provision,
    publish_cards,
    server_events,
    settle,
    sqlite_dsn,
    sync_config,
)


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_what_the_collector_did(tmp_path: Path) -> None:
    dsn = sqlite_dsn(tmp_path)
    publish_cards(dsn, {"C1": 100})
    key = provision(dsn, "T01")
    provision(dsn, "T02")  # never syncs: lagging since it was added
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "T01", "T01")
    terminal = [(ledger, sync_config(server.url, key, tmp_path, "T01"))]
    try:
        asyncio.run(settle(terminal))  # the card arrives
        for i in range(3):
            ledger.adjust(f"a{i}", "C1", 5, "goodwill", "tech", now_iso())
        asyncio.run(settle(terminal))
        forged = wire.pack({"v": 1})
        request = urllib.request.Request(server.url + "/v1/batches", data=forged, method="POST", headers={
            "Content-Type": wire.CONTENT_TYPE, wire.TERMINAL_HEADER: "T01", wire.MAC_HEADER: "00" * 32})
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        found = _scrape(server.url)
        assert found[("posterm_central_events_ingested_total", ())] == len(server_events(dsn))
        assert found[("posterm_central_batches_refused_total", (("reason", "auth"),))] == 1
        assert found[("posterm_central_request_seconds_count", (("route", "/v1/batches"),))] >= 2
        assert found[("posterm_central_terminals_lagging", ())] == 0  # T02 was added a moment ago
        assert found[("posterm_central_terminal_lag_seconds", (("terminal", "T01"),))] < 60
        assert ("posterm_central_terminal_lag_seconds", (("terminal", "T02"),)) in found
    finally:
        ledger.close()
        server.stop()


def test_a_terminal_silent_past_the_limit_is_lagging() -> None:
    now_ms = time.time() * 1000
    rows = [{"terminal": "T01", "created_ms": 0, "last_batch_ms": now_ms - 10_000},
            {"terminal": "T02", "created_ms": now_ms - (LAG_S + 60) * 1000, "last_batch_ms": None}]
    registry = CentralMetrics(lambda: rows).registry
    assert registry.get_sample_value("posterm_central_terminals_lagging") == 1
    assert registry.get_sample_value("posterm_central_terminal_lag_seconds", {"terminal": "T02"}) >= LAG_S + 60
