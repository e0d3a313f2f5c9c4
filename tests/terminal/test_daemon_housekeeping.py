"""The daemon's retention rounds and the [retention] config."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest

from terminal import housekeeping
from terminal.config import ConfigError, Retention, parse_config

from .conftest import NOW, add_card, sell

BASE = {"terminal": {"id": "T01", "store": "S01"}}


def _daemon(ledger, current=None):
    return SimpleNamespace(config=SimpleNamespace(retention=Retention()), register=SimpleNamespace(current=current),
                           ledger=ledger)


def test_a_round_prunes_what_the_server_holds_and_waits_for_a_quiet_desk(ledger, engine):
    add_card(ledger, "C1")
    for i in range(5):
        sell(ledger, engine, f"s{i}", "C1", [10000])
    ledger.close_shift("z1", {}, NOW)
    ledger.mark_acked(ledger.meta()["next_seq"] - 1)
    later = dt.datetime.fromisoformat(NOW) + dt.timedelta(days=90)
    busy = housekeeping.prune_round(_daemon(ledger, current=object()), later)
    assert busy["skipped"] and ledger.stats()["entries"]["receipts"] == 5
    done = housekeeping.prune_round(_daemon(ledger), later)
    # card, 5 sales; the Z stays (and its op record); the card's applied update's record goes
    assert done == {"events": 6, "receipts": 5, "ops": 1, "more": False, "skipped": False}
    assert ledger.verify()["ok"]


def test_retention_settings_are_read_and_bounded():
    config = parse_config({**BASE, "retention": {"receipts_keep_days": 14, "prune_interval_s": 600}}, Path("t.toml"))
    assert config.retention == Retention(events_keep_days=35, receipts_keep_days=14, prune_interval_s=600)
    assert parse_config(BASE, Path("t.toml")).retention == Retention()
    for bad in ({"receipts_keep_days": 0}, {"prune_interval_s": 5}, {"events_keep_days": "35"}, {"keep": 1}):
        with pytest.raises(ConfigError, match=r"\[retention\]"):
            parse_config({**BASE, "retention": bad}, Path("t.toml"))
