"""Provisioning against a real central server (loopback), then the daemon syncing its sales."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from terminal.cli import main
from terminal.client import ApiClient, DaemonProcess
from terminal.demo_run import DATA
from tests.central.helpers import CentralProcess, server_events, sqlite_dsn

ROOT = Path(__file__).resolve().parents[2]
CATALOG = """sku,barcodes,name,price,categories
fridge-x200,4006381333931,Fridge X200,1200000,appliances/fridges
milk-1l,4600000000022,Milk 1 l,8990,grocery/dairy
"""
CARDS = """number,type,holder,referrers,cumulative,blocked,balance,expires_at,birth_date,issued_on,tags
7700000000026,standard,Anna Petrova,,0,,10000,,,,
"""


def central(dsn: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "central.cli", "--db", dsn, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    dsn = sqlite_dsn(tmp_path)
    central(dsn, "terminal", "add", "T01")  # creates the schema; the key is rotated below
    proc = CentralProcess(dsn, tmp_path / "central.log").start()
    yield dsn, proc
    proc.stop()


def test_provision_pulls_from_the_server_and_the_daemon_sends_its_sales(tmp_path: Path, server, capsys) -> None:  # type: ignore[no-untyped-def]
    dsn, proc = server
    key_file = tmp_path / "t01.key"
    key_file.write_text(central(dsn, "terminal", "rotate-key", "T01"))
    (tmp_path / "catalog.csv").write_text(CATALOG)
    (tmp_path / "cards.csv").write_text(CARDS)
    central(dsn, "publish", "rules", str(DATA / "rules.toml"))
    central(dsn, "publish", "catalog", str(tmp_path / "catalog.csv"))
    central(dsn, "publish", "cards", str(tmp_path / "cards.csv"))
    config = tmp_path / "terminal.toml"
    code = main(["provision", "--config", str(config), "--terminal", "T01", "--store", "S01",
                 "--state-dir", str(tmp_path / "state"), "--socket", str(tmp_path / "api.sock"),
                 "--server", proc.url, "--key-file", str(key_file), "--printer", f"sim:{tmp_path / 'printer'}"])
    out = capsys.readouterr().out
    assert code == 0 and "pulled" in out, out
    assert (tmp_path / "state" / "rules.toml").exists()  # the rules came from the server

    daemon = DaemonProcess(config, tmp_path)
    daemon.start()
    try:
        async def sale() -> str:
            async with ApiClient(tmp_path / "api.sock") as api:
                await api.ok("POST", "/v1/checkout/lines", {"code": "4006381333931"})
                view = await api.ok("POST", "/v1/checkout/card", {"number": "7700000000026"})
                assert view["quote"]["discount"] == 60000  # rules, catalog and card all pulled
                assert view["card_mode"] == "online"
                await api.ok("POST", "/v1/checkout/redeem", {"points": "max"})
                done = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
                return str(done["receipt"])

        receipt = asyncio.run(asyncio.wait_for(sale(), 15))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sales = [e for e in server_events(dsn) if e[4]["type"] == "sale"]
            if sales:
                break
            time.sleep(0.1)
        assert [e[4]["receipt"] for e in sales] == [receipt]  # the woken sync sent it, once
        proc.stop()  # the server goes away: the next card is offline and its redemption capped

        async def offline() -> None:
            async with ApiClient(tmp_path / "api.sock") as api:
                await api.ok("POST", "/v1/checkout/lines", {"code": "4006381333931"})
                view = await api.ok("POST", "/v1/checkout/card", {"number": "7700000000026"})
                assert view["card_mode"] == "offline"
                view = await api.ok("POST", "/v1/checkout/redeem", {"points": "max"})
                assert view["quote"]["redeem"]["points"] == 1000  # [sync] offline_redeem_max_points
                done = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
                assert done["balance_after"] == 10000 - 5700 + 114 - 1000 + (1140000 - 100000) * 2 // 10000

        asyncio.run(asyncio.wait_for(offline(), 15))
    finally:
        assert daemon.stop() == 0


def test_provision_with_a_wrong_key_is_refused_clearly(tmp_path: Path, server, capsys) -> None:  # type: ignore[no-untyped-def]
    _, proc = server
    key_file = tmp_path / "wrong.key"
    key_file.write_text("00" * 32)
    code = main(["provision", "--config", str(tmp_path / "terminal.toml"), "--terminal", "T01", "--store", "S01",
                 "--state-dir", str(tmp_path / "state"), "--server", proc.url, "--key-file", str(key_file)])
    err = capsys.readouterr().err
    assert code == 2 and "refused" in err, err
