"""Prometheus metrics of a collector, served at `GET /metrics` (text exposition format).

- `posterm_central_events_ingested_total`, `posterm_central_batches_total{outcome}`,
  `posterm_central_batches_refused_total{reason}`, `posterm_central_database_errors_total`:
  counted from the collector's own structured log events (`observe`), so every refusal that is
  logged is counted and no code path can count without logging;
- `posterm_central_request_seconds{route}`: latency of every request, batches included;
- `posterm_central_terminal_lag_seconds{terminal}` and `posterm_central_terminals_lagging`:
  read from the database at scrape time (the collectors share it), a terminal lagging when its
  last stored batch is older than `LAG_S`.

One `CollectorRegistry` per application, never the process-global one, so tests and several
apps in one process do not share counts. Limits: at most `TERMINALS_LABELS_MAX` terminal labels.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

LAG_S = 900
TERMINALS_LABELS_MAX = 10_000
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _Terminals(Collector):
    def __init__(self, read: Callable[[], list[dict[str, Any]]]) -> None:
        self.read = read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = GaugeMetricFamily("posterm_central_terminal_lag_seconds",
                                "Seconds since the terminal's last stored batch", labels=["terminal"])
        lagging = 0
        now_ms = time.time() * 1000
        for row in self.read()[:TERMINALS_LABELS_MAX]:
            since = row["last_batch_ms"] if row["last_batch_ms"] is not None else row["created_ms"]
            seconds = max(0.0, (now_ms - since) / 1000)
            lagging += seconds > LAG_S
            lag.add_metric([row["terminal"]], seconds)
        yield lag
        yield GaugeMetricFamily("posterm_central_terminals_lagging",
                                f"Terminals with no batch stored for over {LAG_S} s", value=lagging)


class CentralMetrics:
    def __init__(self, terminals: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.ingested = Counter("posterm_central_events_ingested", "Events stored", registry=r)
        self.batches = Counter("posterm_central_batches", "Batches answered", ["outcome"], registry=r)
        self.refused = Counter("posterm_central_batches_refused", "Batches refused", ["reason"], registry=r)
        self.db_errors = Counter("posterm_central_database_errors", "Database unavailable", registry=r)
        self.latency = Histogram("posterm_central_request_seconds", "Request latency", ["route"],
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        r.register(_Terminals(terminals))

    def observe(self, event: str, fields: dict[str, Any]) -> None:
        """Count one structured log event of the collector."""
        if event == "batch_stored":
            self.batches.labels("stored").inc()
            self.ingested.inc(int(fields.get("stored", 0)))
        elif event == "batch_refused":
            self.batches.labels("refused").inc()
            self.refused.labels(str(fields.get("reason", "unknown"))[:32]).inc()
        elif event == "store_unavailable":
            self.db_errors.inc()

    @web.middleware
    async def middleware(self, request: web.Request,
                         handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        started = time.perf_counter()
        try:
            return await handler(request)
        finally:
            self.latency.labels(name).observe(time.perf_counter() - started)

    def exposition(self) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
