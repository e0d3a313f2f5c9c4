"""`GET /metrics` of the real daemon after a sale: counts, quote latency and device states."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from terminal.client import ApiClient, EventWatcher

from .conftest import Terminal
from .test_daemon_e2e import FRIDGE, ledger_state


async def _scrape(api: ApiClient) -> dict[str, float]:
    assert api.session is not None
    async with api.session.get("/metrics") as response:
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}"] = s.value
    return samples


def test_metrics_follow_the_sales(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> dict[str, float]:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            before = await _scrape(api)
            assert before["posterm_sales_total{}"] == 0
            terminal.scan(FRIDGE)
            await events.wait_for("quote")
            await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            await events.wait_for("sale")
            return await _scrape(api)

    after = asyncio.run(asyncio.wait_for(scenario(), 15))
    _, stats = ledger_state(terminal, "7700000000026")
    assert after["posterm_sales_total{}"] == 1
    assert after["posterm_quote_seconds_count{}"] >= 1
    assert after["posterm_outbox_backlog{}"] == stats["backlog"] > 0  # no server: nothing acked
    assert 0 < after["posterm_ledger_map_used_ratio{}"] < 1
    assert "posterm_print_queue_jobs{}" in after
    assert any(name.startswith("posterm_device_up{device=") for name in after)
    assert not any(name.startswith("posterm_sync_lag_seconds") for name in after)  # no [sync]
