"""Prometheus metrics of the daemon, served by the local API at `GET /metrics`.

- `posterm_sales_total`, `posterm_returns_total`, `posterm_errors_total`: counted from the
  events the daemon publishes (`observe`), the same stream the kiosk screen follows;
- `posterm_quote_seconds`: a histogram of pricing a cart (the checkout's `quote_timer`);
- read at scrape time: `posterm_outbox_backlog` (events not yet acked by the server),
  `posterm_sync_lag_seconds` (since the last successful exchange with it; absent without
  `[sync]`), `posterm_print_queue_jobs`, `posterm_device_up{device,role,state}`, and
  `posterm_ledger_map_used_ratio`.

One `CollectorRegistry` per daemon, never the process-global one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from terminal.daemon import Daemon

QUOTE_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
UP_STATES = frozenset({"ok", "online", "ready", "connected"})


class _State(Collector):
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[GaugeMetricFamily]:
        d = self.daemon
        yield GaugeMetricFamily("posterm_outbox_backlog", "Events the server has not acknowledged",
                                value=d.ledger.backlog())
        yield GaugeMetricFamily("posterm_ledger_map_used_ratio", "Used part of the LMDB map", value=d.ledger.usage())
        spool = d.printer.spool.jobs() if d.printer else []
        yield GaugeMetricFamily("posterm_print_queue_jobs", "Receipts waiting for the printer", value=len(spool))
        devices = GaugeMetricFamily("posterm_device_up", "1 when the device reports itself working",
                                    labels=["device", "role", "state"])
        for name, dev in d.devices.items():
            devices.add_metric([name, dev["role"], dev["state"]], float(dev["state"] in UP_STATES))
        yield devices
        status = None if d.syncer is None else d.syncer.status
        if status is not None:
            last = status.get("last_ok_ms")
            lag = float("inf") if last is None else max(0.0, time.time() - last / 1000)
            yield GaugeMetricFamily("posterm_sync_lag_seconds", "Seconds since the last successful sync", value=lag)


class TerminalMetrics:
    def __init__(self, daemon: Daemon) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sales = Counter("posterm_sales", "Sales committed", registry=r)
        self.returns = Counter("posterm_returns", "Returns committed", registry=r)
        self.errors = Counter("posterm_errors", "Error events published", registry=r)
        self.quote = Histogram("posterm_quote_seconds", "Pricing one cart", buckets=QUOTE_BUCKETS_S, registry=r)
        r.register(_State(daemon))

    def observe(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "sale":
            self.sales.inc()
        elif kind == "return":
            self.returns.inc()
        elif kind == "error":
            self.errors.inc()

    def exposition(self) -> web.Response:
        return web.Response(body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
