"""Levels across a real daemon and a real central server (spec §11), on SQLite and PostgreSQL:
a silver card's sale reaches gold (the quote's `level`, the `sale` event, the ledger and central
all say gold); a return of it lowers the card to silver on the terminal (API answer, `return`
event, ledger) and at central, and the next feed keeps it silver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from central.store import open_store
from terminal.client import ApiClient, DaemonProcess, EventWatcher
from terminal.demo_chain import ledger_card
from terminal.demo_run import setup
from tests.central.conftest import dsn  # noqa: F401 — the sqlite/pg parametrized fixture
from tests.central.helpers import CentralProcess
from tests.terminal.test_sync_central import central_cli

RULES = """
[program]
point_value = 100
level_downgrade = true
[[level]]
type = "bronze"
cumulative_min = 0
[[level]]
type = "silver"
cumulative_min = 3000000
[[level]]
type = "gold"
cumulative_min = 10000000
[[rule]]
id = "earn"
kind = "accrual"
percent = 1
"""
CARDS = """number,type,holder,referrers,cumulative,blocked,balance,expires_at,birth_date,issued_on,tags
7700000000501,silver,,,9500000,,0,,,,
"""
CARD = "7700000000501"
FRIDGE = "4006381333931"  # 1 200 000 in the demo catalog
WAIT_S = 20.0


def wait_until(what: str, check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {WAIT_S} s")


def central_card(db: str) -> tuple[str, int]:
    store = open_store(db)
    try:
        found = store.card(CARD)
        assert found is not None
        return found[0].type, found[0].cumulative
    finally:
        store.close()


def central_version(db: str) -> int:
    store = open_store(db)
    try:
        found = store.card(CARD)
        assert found is not None
        return found[1]
    finally:
        store.close()


def test_a_sale_raises_and_a_return_lowers_the_level_on_the_terminal_and_at_central(
    dsn: str, tmp_path: Path  # noqa: F811
) -> None:
    (tmp_path / "rules.toml").write_text(RULES)
    (tmp_path / "cards.csv").write_text(CARDS)
    added = central_cli(dsn, "terminal", "add", "T01")
    assert added.returncode == 0, added.stderr
    (tmp_path / "t01.key").write_text(added.stdout)
    for what, name in (("rules", "rules.toml"), ("cards", "cards.csv")):
        done = central_cli(dsn, "publish", what, str(tmp_path / name))
        assert done.returncode == 0, done.stderr
    server = CentralProcess(dsn, tmp_path / "central.log").start()
    root = tmp_path / "t01"
    config = setup(root, server_url=server.url, key_file=tmp_path / "t01.key")
    daemon = DaemonProcess(config, root)
    daemon.start()
    ledger_path = root / "state" / "ledger"
    try:
        async def sale() -> str:
            async with ApiClient(root / "api.sock") as api, EventWatcher(api) as events:
                await api.ok("POST", "/v1/checkout/lines", {"code": FRIDGE})
                view = await api.ok("POST", "/v1/checkout/card", {"number": CARD})
                assert view["quote"]["card_type_after"] == "gold"  # 9 500 000 + 1 200 000
                assert view["quote"]["level"] == {"type": "gold", "next": None, "to_next": None}
                done = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
                _, event = await events.wait_for("sale")
                assert (event["card_type_after"], event["level"]["type"]) == ("gold", "gold")
                return str(done["receipt"])

        receipt = asyncio.run(asyncio.wait_for(sale(), 30))
        assert ledger_card(ledger_path, CARD)["type"] == "gold"
        wait_until("central sees the sale", lambda: central_card(dsn) == ("gold", 10_700_000))

        async def give_back() -> dict[str, Any]:
            async with ApiClient(root / "api.sock") as api, EventWatcher(api) as events:
                await api.attendant("demo", "1234")  # a return needs a manager's session
                ret = await api.ok("POST", "/v1/returns", {"receipt": receipt})
                _, event = await events.wait_for("return")
                assert event["card_type_after"] == "silver"
                return dict(ret)

        ret = asyncio.run(asyncio.wait_for(give_back(), 30))
        assert ret["card_type_after"] == "silver"
        card = ledger_card(ledger_path, CARD)
        assert (card["type"], card["cumulative"]) == ("silver", 9_500_000)
        wait_until("central lowers the card", lambda: central_card(dsn) == ("silver", 9_500_000))
        # The feed's entry of the card after the return (its version at central) agrees.
        version = central_version(dsn)
        fed = wait_until("the feed sends the card back",
                         lambda: (c := ledger_card(ledger_path, CARD))["server_version"] >= version and c)
        assert (fed["type"], fed["cumulative"]) == ("silver", 9_500_000)
    finally:
        assert daemon.stop() == 0
        server.stop()
