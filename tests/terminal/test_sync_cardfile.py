"""The chain's card file end to end with a real central process (SQLite and PostgreSQL).

The bug this covers: a terminal provisioned with `ledger import-cards` synced for the first time
turned a 221-point card into a −9 779 debt and blanked the holder — the server met the card first
in the terminal's events. Now that first sync sends nothing until the server knows the cards,
and says what to do; once the same file is published at central, every number and name holds.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from terminal.ledger import Ledger, LedgerError
from terminal.sync.seeding import LocalCardsError
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import (
    REPO,
    CentralProcess,
    assert_consistent,
    fresh_store,
    now_iso,
    provision,
    server_events,
    settle,
    sync_config,
    sync_round,
)

CARDS = (
    "number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags\n"
    "2000001,standard,Ann Lee,6650000,10000,2099-12-31T23:59:59+03:00,,,1985-03-14,2024-01-10,staff\n"
    "2000002,gold,Bob Stone,0,40,,2000001,,--02-29,,\n"
)


def central_cli(db: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "central.cli", "--db", db, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_a_locally_imported_terminal_syncs_only_once_central_knows_its_cards(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    fresh_store(dsn).close()
    key = provision(dsn, "T01")
    card_file = tmp_path / "cards.csv"
    card_file.write_text(CARDS)
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    config = sync_config(server.url, key, tmp_path, "T01")
    try:
        now = now_iso()
        ledger.import_cards(card_file, now)
        ledger.adjust("spend", "2000001", -9779, "spent before the first sync", "ivan", now)
        assert ledger.card("2000001", now)["balance"] == 221
        # First sync: the server does not know the cards — refused, nothing sent or changed.
        with pytest.raises(LocalCardsError, match="posterm-central publish cards"):
            asyncio.run(sync_round(ledger, config))
        assert server_events(dsn) == []
        card = ledger.card("2000001", now_iso())
        assert (card["balance"], card["holder"]) == (221, "Ann Lee")
        published = central_cli(dsn, "publish", "cards", str(card_file))
        assert published.returncode == 0, published.stderr
        asyncio.run(settle([(ledger, config)]))
        assert_consistent(dsn, [ledger])
        now = now_iso()
        for number, balance, holder in (("2000001", 221, "Ann Lee"), ("2000002", 40, "Bob Stone")):
            card = ledger.card(number, now)
            assert (card["balance"], card["holder"]) == (balance, holder)
            assert not any(lot["debt"] for lot in card["lots"])
        ann = ledger.card("2000001", now)
        assert (ann["birth_date"], ann["issued_on"], ann["tags"]) == ("1985-03-14", "2024-01-10", ["staff"])
        assert ledger.card("2000002", now)["referrers"] == ["2000001"]
        shown = json.loads(central_cli(dsn, "card", "show", "2000001").stdout)
        assert (shown["balance"], shown["holder"], shown["cumulative"]) == (221, "Ann Lee", 6650000)
        assert (shown["birth_date"], shown["tags"]) == ("1985-03-14", ["staff"])
        # The opening lot kept its expiry at central (the dated lot the file gave).
        expiry = [dt.datetime.fromisoformat(lot["expires_at"]) for lot in shown["lots"]]
        assert expiry == [dt.datetime.fromisoformat("2099-12-31T23:59:59+03:00")]
        assert not ledger.meta().get("local_cards")
        # The terminal is synced now: a local import is refused with what to do instead.
        with pytest.raises(LedgerError, match="publish the file there"):
            ledger.import_cards(card_file, now)
    finally:
        ledger.close()
        server.stop()


def test_cards_published_at_central_reach_a_terminal_with_their_facts(dsn: str, tmp_path: Path) -> None:  # noqa: F811
    fresh_store(dsn).close()
    key = provision(dsn, "T01")
    (tmp_path / "cards.csv").write_text(CARDS)
    assert central_cli(dsn, "publish", "cards", str(tmp_path / "cards.csv")).returncode == 0
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    ledger = Ledger.init(tmp_path / "led", "T01")
    try:
        asyncio.run(settle([(ledger, sync_config(server.url, key, tmp_path, "T01"))]))
        bob = ledger.card("2000002", now_iso())
        assert (bob["holder"], bob["balance"], bob["birth_date"], bob["referrers"]) == (
            "Bob Stone", 40, "--02-29", ["2000001"])
        assert "issued_on" not in bob and "tags" not in bob
    finally:
        ledger.close()
        server.stop()
