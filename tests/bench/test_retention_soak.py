"""Retention soak: two years of a terminal at 500 sales a day, the clock passed in.

    POSTERM_BENCH_FULL=1 python -m pytest tests/bench/test_retention_soak.py -q -s

Every simulated day: the day's sales (quoted by the real engine, cards in turn), the central
server's ack of everything sent, the expiry sweep, a Z report, and the daemon's retention pass
(`events_keep_days` 35, `receipts_keep_days` 30). Prints the file size and map use at the end of
each month; the ledger must stay inside its 1 GiB map and verify. Without POSTERM_BENCH_FULL it
runs the same two years at 5 sales a day (a plain test under `make test`). Sync is off (the
fsyncs cost time, not bytes).
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest

import core
from terminal.ledger import Ledger
from tests.terminal.ledger_rules import RULES

ROOT = Path(__file__).resolve().parents[2]
MAP_BYTES = 1024 * 1024 * 1024
DAYS = 730
FULL = bool(os.environ.get("POSTERM_BENCH_FULL"))
SALES_PER_DAY = 500 if FULL else 5
CARDS = 1_000 if FULL else 20
START = dt.datetime(2026, 1, 1, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))


def _cards(ledger: Ledger) -> None:
    entries = [{"number": f"{2000000 + i}", "type": "standard", "version": 1, "balance": 0, "referrers": []}
               for i in range(CARDS)]
    ledger.apply_updates("cards", {"cards": entries}, START.isoformat())


def _day(ledger: Ledger, engine: core.Engine, day: int) -> None:
    for n in range(SALES_PER_DAY):
        now = (START + dt.timedelta(days=day, seconds=60 * n)).isoformat()
        number = f"{2000000 + (day * SALES_PER_DAY + n) % CARDS}"
        cart = {"store": "S01", "lines": [{"sku": f"P{k}", "price": 1000 + 37 * k + n, "qty": 1} for k in range(4)]}
        quote = engine.quote(cart, ledger.card_for_quote(number, now), now, None)
        ledger.commit_sale(f"d{day}-{n}", quote, number, {"tenders": [{"method": "cash", "amount": quote["to_pay"]}]},
                           now)
    end = (START + dt.timedelta(days=day, hours=14)).isoformat()
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    ledger.expire(f"x{day}", end)
    ledger.close_shift(f"z{day}", {}, end)
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    while ledger.prune(end, 35, 30)["more"]:
        pass


@pytest.mark.slow
def test_two_years_stay_inside_the_map():
    path = ROOT / ".bench" / "retention-soak"
    shutil.rmtree(path, ignore_errors=True)
    engine = core.Engine(core.compile_rules(RULES))
    ledger = Ledger.init(path, "T01", map_size_bytes=MAP_BYTES, sync=False)
    try:
        _cards(ledger)
        curve = []
        for day in range(DAYS):
            _day(ledger, engine, day)
            if day % 30 == 29:
                stats = ledger.stats()
                curve.append((day + 1, stats["file_bytes"], stats["usage_percent"], stats["entries"]["receipts"]))
        print(f"\nretention soak: {SALES_PER_DAY} sales a day, {CARDS} cards, {DAYS} days")
        print(" day   file MiB   map %   receipts kept")
        for day, size, usage, receipts in curve:
            print(f"{day:4d} {size / 2**20:10.1f} {usage:7.2f} {receipts:15d}")
        assert curve[-1][2] < 100.0
        assert curve[-1][3] <= 31 * SALES_PER_DAY  # only the return window's receipts stay
        # The file stops growing once retention keeps pace: the last year adds little.
        year_one, year_two = curve[11][1], curve[-1][1]
        assert year_two <= year_one * 1.5
        assert ledger.verify()["ok"]
    finally:
        ledger.close()
        shutil.rmtree(path, ignore_errors=True)
