"""Coupons across a chain, with real processes: a central server (SQLite) and two terminal daemons
provisioned against it. A marketing code spent at T01 is refused at T02 once T02 has synced; a
next-visit code issued and printed at T01 is accepted at T02; a single-use code spent on both
terminals while central is down leaves both sales standing and is booked as a double use."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from terminal.client import ApiClient, DaemonProcess
from terminal.demo_chain import CentralChild
from terminal.demo_run import setup

ROOT = Path(__file__).resolve().parents[2]
CATALOG = """sku,barcodes,name,price,categories
spade-1,2000000000019,Spade,200000,garden/tools
lamp-1,2000000000026,Lamp,150000,home/light
"""
SPADE, LAMP = "2000000000019", "2000000000026"
WAIT_S = 20.0


@pytest.fixture
def chain(tmp_path: Path):  # type: ignore[no-untyped-def]
    central = CentralChild(tmp_path / "central")
    (tmp_path / "catalog.csv").write_text(CATALOG)
    keys = {t: tmp_path / f"{t}.key" for t in ("T01", "T02")}
    for terminal, key in keys.items():
        central.add_terminal(terminal, key)
    # examples/coupons.toml with the spring series open whatever today is (the daemons read the clock)
    rules = (ROOT / "examples" / "coupons.toml").read_text().replace('valid_from = "2026-03-01"', "")
    (tmp_path / "rules.toml").write_text(rules.replace('valid_to = "2026-05-31"', ""))
    central.cli("publish", "rules", str(tmp_path / "rules.toml"))
    central.cli("publish", "catalog", str(tmp_path / "catalog.csv"))
    central.start()
    daemons = {}
    try:
        for terminal, key in keys.items():
            config = setup(tmp_path / terminal, terminal_id=terminal, server_url=central.url, key_file=key)
            daemons[terminal] = DaemonProcess(config, tmp_path / terminal)
            daemons[terminal].start()
        yield central, {t: tmp_path / t / "api.sock" for t in keys}, tmp_path
    finally:
        for daemon in daemons.values():
            daemon.stop()
        central.stop()


async def sell(socket: Path, code: str) -> dict[str, Any]:
    async with ApiClient(socket) as api:
        await api.ok("POST", "/v1/checkout/lines", {"code": SPADE})
        await api.ok("POST", "/v1/checkout/lines", {"code": LAMP})
        view = await api.ok("POST", "/v1/checkout/coupon", {"code": code.lower()})
        assert view["quote"]["coupons"] == [{"code": code, "series": "spring", "used": True}], view["quote"]
        sale: dict[str, Any] = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
        return sale


async def present(socket: Path, code: str) -> tuple[int, dict[str, Any]]:
    """Present `code` on a fresh checkout; the checkout is cancelled again (an attendant may be
    needed after a scan, so no line is scanned)."""
    async with ApiClient(socket) as api:
        status, body = await api.call("POST", "/v1/checkout/coupon", {"code": code})
        view = await api.ok("GET", "/v1/checkout")
        if view["state"] != "idle":
            await api.ok("POST", "/v1/checkout/cancel")
        return status, body


async def until(socket: Path, code: str, status: int) -> dict[str, Any]:
    """Present `code` until the terminal answers `status` (its sync pulls the feed), bounded."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got, body = await present(socket, code)
        if got == status or time.monotonic() > deadline:
            assert got == status, body
            return body
        await asyncio.sleep(0.2)


def central_coupon(central: CentralChild, code: str) -> dict[str, Any]:
    shown: dict[str, Any] = json.loads(central.cli("coupons", "show", code))
    return shown


def wait_central(central: CentralChild, code: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        row = central_coupon(central, code)
        if row["state"] == state or time.monotonic() > deadline:
            assert row["state"] == state, row
            return row
        time.sleep(0.2)


def test_a_code_spent_on_t01_is_refused_on_t02_and_an_offline_double_use_is_booked(chain) -> None:  # type: ignore[no-untyped-def]
    central, sockets, root = chain
    first, second = central.cli("coupons", "issue", "spring", "--count", "2").split()
    asyncio.run(until(sockets["T02"], first, 200))  # T02 has the codes from the feed

    sale = asyncio.run(sell(sockets["T01"], first))
    [issued] = sale["issued_coupons"]  # 3 200.00 after the spring discount: a next-visit code
    assert issued["series"] == "next-visit" and issued["code"].startswith("CP-T01-")
    paper = root / "T01" / "printer" / "receipts.bin"
    deadline = time.monotonic() + WAIT_S  # printed after the commit, by the printer's own task
    while issued["code"].encode() not in (paper.read_bytes() if paper.exists() else b""):
        assert time.monotonic() < deadline, "the issued code was not printed"
        time.sleep(0.1)
    code = issued["code"].encode()
    assert b"\x1dkI" + bytes([len(code) + 2]) + b"{B" + code in paper.read_bytes()  # CODE128, code set B
    assert wait_central(central, first, "spent")["spent_receipt"] == sale["receipt"]

    body = asyncio.run(until(sockets["T02"], first, 409))
    assert "already used" in body["error"]
    asyncio.run(until(sockets["T02"], issued["code"], 200))  # T01's code is known chain-wide
    assert central_coupon(central, issued["code"])["issued_by"] == "T01"

    central.stop()  # both terminals offline: both know `second` unspent and both sell with it
    t01 = asyncio.run(sell(sockets["T01"], second))
    t02 = asyncio.run(sell(sockets["T02"], second))
    central.start()  # same port: the terminals' sync loops deliver both sales
    deadline = time.monotonic() + WAIT_S
    while True:
        doubles = [json.loads(line) for line in central.cli("coupons", "double-used").splitlines()]
        if doubles or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(doubles) == 1 and doubles[0]["code"] == second
    assert {doubles[0]["receipt"], doubles[0]["first_receipt"]} == {t01["receipt"], t02["receipt"]}
    receipts = json.loads(central.cli("coupons", "show", second))["spent_receipt"]
    assert receipts in (t01["receipt"], t02["receipt"])  # both sales stand; the first stored spent it
