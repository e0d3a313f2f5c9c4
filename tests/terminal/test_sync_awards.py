"""Awards reach a real terminal's ledger with their dates (spec §16), on SQLite and PostgreSQL:
a `posterm-central serve` child, a kiosk's ledger synced against it. `posterm-central award`
opens a lot that the terminal mirrors with its activation and expiry; a card enrolled at the
kiosk gets the `registration` award once at central, and its lot comes back to the kiosk."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

from central import awards
from central.store import open_store
from terminal.ledger import Ledger
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    CentralProcess,
    assert_consistent,
    dated,
    provision,
    publish_cards,
    settle,
    sync_config,
)
from tests.terminal.test_sync_central import central_cli

RULES = """
[program]
point_value = 100
[[award]]
id = "registration"
points = 50
expiry_days = 30
[[award]]
id = "visit"
points = 7
activation_days = 2
expiry_days = 10
per_card_max = 0
[[rule]]
id = "earn"
kind = "accrual"
percent = 1
"""
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0)
CONSENT = {"terms_version": "1", "terms_sha256": "ab" * 32}


def at(days: float) -> str:
    return (T0 + dt.timedelta(days=days)).isoformat()


def test_awarded_lots_reach_the_terminal_with_their_dates(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    assert central_cli(dsn, "publish", "rules", str(rules)).returncode == 0
    publish_cards(dsn, {"C1": 0})
    key = provision(dsn, "K1")
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    kiosk = Ledger.init(tmp_path / "K1", "K1")
    synced = [(kiosk, sync_config(server.url, key, tmp_path, "K1"))]
    try:
        asyncio.run(settle(synced))
        done = central_cli(dsn, "award", "C1", "visit", "--key", "visit-1", "--actor", "crm")
        assert done.returncode == 0, done.stderr
        granted = json.loads(done.stdout)
        asyncio.run(settle(synced))
        card = kiosk.card("C1", at(0))
        assert card["balance"] == 7 and card["available"] == 0  # activation: not before day 2
        assert dated(card["lots"]) == dated([{**granted, "debt": False}])
        assert kiosk.card("C1", at(3))["available"] == 7 and kiosk.card("C1", at(13))["available"] == 0

        # A customer enrolled at the kiosk: central grants `registration`, the lot comes back.
        kiosk.register_card("e1", "N1", "standard", "+79123456789", CONSENT, "S01", at(0))
        asyncio.run(settle(synced))
        enrolled = kiosk.card("N1", at(0))
        assert enrolled["balance"] == 50 and enrolled["available"] == 50
        assert kiosk.card("N1", at(31))["available"] == 0  # 30 days from the enrolment
        asyncio.run(settle(synced))  # nothing new: still one grant per card
        store = open_store(dsn)
        try:
            assert sorted((g.card, g.award) for g in awards.grants(store)) == [("C1", "visit"), ("N1", "registration")]
        finally:
            store.close()
        assert_consistent(dsn, [kiosk])
    finally:
        server.stop()
