"""The real daemon (`python -m terminal.cli run`) on simulated devices, driven through the API:
a sale with redemption, a return by receipt barcode, refusals, SIGKILL mid-checkout with a
restart, a printer fault with the receipt printed later, and the systemd notifications."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import time
from typing import Any

import aiohttp
import pytest

from terminal.client import ApiClient, EventWatcher
from terminal.demo_run import split_receipts
from terminal.ledger import Ledger

from .conftest import Terminal

STANDARD = "7700000000026"
FRIDGE, MILK, BLENDER = "4006381333931", "4600000000022", "4600000000015"
WAIT_S = 5.0


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 15))


def ledger_state(term: Terminal, number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    now = dt.datetime.now().astimezone()
    with Ledger(term.ledger_path) as ledger:
        return ledger.card(number, now), ledger.stats()


async def wait_printed(term: Terminal, receipt_id: str, timeout_s: float = WAIT_S) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for text in split_receipts(term.receipts_text()):
            if receipt_id in text:
                return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"receipt {receipt_id} not printed within {timeout_s} s")


def test_sale_with_points_then_return_by_receipt_barcode(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            terminal.scan(FRIDGE)
            _, view = await events.wait_for("quote")
            assert view["quote"]["total"] == 1200000
            terminal.swipe(f";{STANDARD}=2512?")
            await events.wait_for("swipe")
            _, view = await events.wait_for("quote")
            assert view["card"] == STANDARD and view["quote"]["discount"] == 60000
            view = await api.ok("POST", "/v1/checkout/redeem", {"points": "max"})
            assert view["quote"]["redeem"]["points"] == 5700 and view["quote"]["to_pay"] == 570000
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
            assert sale["balance_after"] == 10000 - 5700 + 114
            _, done = await events.wait_for("sale")
            assert done["receipt"] == sale["receipt"] and done["accrued"] == 114
            text = await wait_printed(terminal, sale["receipt"])
            assert "Paid with 5700 points" in text and "Points after" in text and "4414" in text
            assert (await api.ok("GET", "/v1/checkout"))["state"] == "idle"

            terminal.scan(sale["receipt"])  # the receipt's barcode, scanned at the desk
            _, scanned = await events.wait_for("receipt_scanned")
            await api.attendant("demo", "1234")  # a return needs an attendant's session
            ret = await api.ok("POST", "/v1/returns", {"receipt": scanned["receipt"]})
            assert ret["refund"]["money"] == 570000
            assert ret["refund"]["points_restored"] == 5700 and ret["refund"]["points_clawed"] == 114
            text = await wait_printed(terminal, ret["return"])
            assert "RETURN" in text and "REFUND" in text and "TO PAY" not in text
            status, again = await api.call("POST", "/v1/returns", {"receipt": sale["receipt"]})
            assert status == 409 and "returned already" in again["error"]

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    card, stats = ledger_state(terminal, STANDARD)
    assert card["balance"] == 10000 and card["held"] == 0  # all given back by the return
    assert stats["entries"]["receipts"] == 1


def test_x_and_z_reports_through_the_api(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            await api.attendant("demo", "1234")  # shift reports need a manager's session
            x = await api.ok("GET", "/v1/shift")
            shift = x["shift"]
            assert x["totals"]["sales"] == 0
            terminal.scan(MILK)
            await events.wait_for("quote")
            status, refused = await api.call("POST", "/v1/shift/close", {"shift": shift})
            assert status == 409 and "checkout is open" in refused["error"]
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            x = await api.ok("GET", "/v1/shift")
            assert x["shift"] == shift and x["totals"]["sales"] == 1
            assert x["tenders"] == {"cash": x["totals"]["to_pay"]} and x["totals"]["to_pay"] > 0
            x_printed = await api.ok("POST", "/v1/shift/print")
            assert x_printed["queued"] and x_printed["totals"] == x["totals"]
            paper = await wait_printed(terminal, f"X REPORT - SHIFT {shift}")
            assert "SHIFT CLOSED" not in paper and any(
                line.split() == ["Sales", "1"] for line in paper.splitlines()
            )
            z = await api.ok("POST", "/v1/shift/close", {"shift": shift})
            assert z["closed"]["closed_shift"] == shift and z["totals"] == x["totals"] and z["printed"]
            paper = await wait_printed(terminal, f"Z REPORT - SHIFT {shift}")
            taken = f"{x['totals']['to_pay'] // 100}.{x['totals']['to_pay'] % 100:02d}"
            assert "SHIFT CLOSED" in paper and ["Taken", taken] in (ln.split() for ln in paper.splitlines())
            _, closed = await events.wait_for("shift_closed")
            assert closed["shift"] == shift and closed["totals"] == x["totals"]
            # A retried close (its reply lost) is refused; it does not close the fresh shift.
            status, again = await api.call("POST", "/v1/shift/close", {"shift": shift})
            assert status == 409 and "closed already" in again["error"]
            x = await api.ok("GET", "/v1/shift")
            assert x["shift"] == shift + 1 and x["totals"]["sales"] == 0
            status, bad = await api.call("POST", "/v1/shift/close", {"shift": "1"})
            assert status == 400 and "open shift's number" in bad["error"]
            assert (await api.ok("GET", f"/v1/receipts/{sale['receipt']}"))["shift"] == shift

    run(scenario())
    assert terminal.daemons[0].stop() == 0


def test_bad_requests_get_clear_4xx(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            assert (await api.call("POST", "/v1/checkout/pay", {}))[0] == 409
            status, body = await api.call("POST", "/v1/checkout/lines", {"code": "0000000000000"})
            assert status in (400, 404) and "catalog" in body["error"]
            status, body = await api.call("POST", "/v1/checkout/lines", {"code": MILK, "qty": 1.5})
            assert status == 400 and "float" in body["error"]
            status, body = await api.call("POST", "/v1/checkout/lines", {"code": MILK, "colour": "red"})
            assert status == 400 and "colour" in body["error"]
            status, body = await api.call("POST", "/v1/checkout/lines", [1, 2])
            assert status == 400 and "object" in body["error"]
            status, body = await api.call("POST", "/v1/checkout/lines", {"code": "x" * 100_000})
            assert status == 413
            status, body = await api.call("DELETE", "/v1/checkout/lines/abc")
            assert status == 400
            status, body = await api.call("GET", "/v1/nothing")
            assert status == 404 and "error" in body
            status, body = await api.call("PUT", "/v1/checkout")
            assert status == 405
            status, body = await api.call("POST", "/v1/checkout/card", {"number": "7799999999999"})
            assert status == 404 and "not known" in body["error"]
            assert (await api.call("POST", "/v1/checkout/lines", {"code": MILK}))[0] == 200
            status, body = await api.call("POST", "/v1/checkout/redeem", {"points": 10})
            assert status == 409 and "attach a card" in body["error"]
            assert (await api.call("POST", "/v1/checkout/payment"))[0] == 200
            status, body = await api.call("POST", "/v1/checkout/lines", {"code": MILK})
            assert status == 409 and "waiting for payment" in body["error"]
            status, body = await api.call("POST", "/v1/checkout/pay", {"tenders": [{"method": "cash", "amount": 1}]})
            assert status == 400 and "tenders add up" in body["error"]
            await api.attendant("demo", "1234")
            status, body = await api.call("POST", "/v1/returns", {"receipt": "T01-none"})
            assert status == 409 and "finish or cancel" in body["error"]
            assert (await api.call("POST", "/v1/checkout/cancel"))[0] == 200
            status, body = await api.call("GET", "/v1/receipts/T01-none")
            assert status == 404

    run(scenario())


def test_sigkill_mid_checkout_then_restart_loses_and_doubles_nothing(terminal: Terminal) -> None:
    first = terminal.start()

    async def before() -> str:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            terminal.scan(FRIDGE)
            await events.wait_for("quote")
            terminal.swipe(f";{STANDARD}=2512?")
            await events.wait_for("swipe")
            await events.wait_for("quote")
            view = await api.ok("POST", "/v1/checkout/redeem", {"points": 3000})
            return str(view["id"])

    checkout_id = run(before())
    first.kill()  # power cut mid-checkout: 3000 points are held for it
    terminal.start()

    async def after() -> str:
        async with ApiClient(terminal.socket) as api:
            view = await api.ok("GET", "/v1/checkout")
            assert view["id"] == checkout_id and view["state"] == "open"  # resumed
            assert view["card"] == STANDARD and view["quote"]["redeem"]["points"] == 3000
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
            await wait_printed(terminal, sale["receipt"])
            return str(sale["receipt"])

    receipt = run(after())
    assert receipt == checkout_id
    assert terminal.daemons[1].stop() == 0
    card, stats = ledger_state(terminal, STANDARD)
    assert stats["entries"]["receipts"] == 1  # one sale, not two
    assert card["held"] == 0 and stats["entries"]["holds"] == 0  # the hold was posted, none leaked
    accrued = (1140000 - 300000) * 2 // 10000
    assert card["balance"] == 10000 - 3000 + accrued
    assert terminal.receipts_text().count(f"Receipt {receipt}") == 1


def test_sigkill_with_an_open_checkout_then_cancel_releases_the_hold(terminal: Terminal) -> None:
    first = terminal.start()

    async def before() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
            await api.ok("POST", "/v1/checkout/card", {"number": STANDARD})
            await api.ok("POST", "/v1/checkout/redeem", {"points": 100})

    run(before())
    first.kill()
    terminal.start()

    async def after() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.attendant("anna", "2468")  # a checkout with lines: only an attendant cancels
            closed = await api.ok("POST", "/v1/checkout/cancel")
            assert closed["points_released"] == 100

    run(after())
    terminal.daemons[1].stop()
    card, stats = ledger_state(terminal, STANDARD)
    assert card["held"] == 0 and stats["entries"]["receipts"] == 0 and card["balance"] == 10000


def test_printer_out_of_paper_prints_the_receipt_later(terminal: Terminal) -> None:
    terminal.printer.mkdir(parents=True, exist_ok=True)
    (terminal.printer / "paper").write_text("out\n")
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            _, status = await events.wait_for("printer")
            assert status["paper"] == "out"
            assert sale["receipt"] not in terminal.receipts_text()  # committed, not printed
            assert (await api.ok("GET", "/v1/status"))["print_queue"] == 1
            assert (await api.ok("GET", "/v1/devices"))["printer"]["state"] == "fault"
            (terminal.printer / "paper").write_text("ok\n")  # the cashier loads paper
            await api.ok("POST", "/v1/printer/retry")
            await wait_printed(terminal, sale["receipt"])
            deadline = time.monotonic() + WAIT_S
            while (await api.ok("GET", "/v1/status"))["print_queue"] and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert (await api.ok("GET", "/v1/status"))["print_queue"] == 0

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    assert list(terminal.spool.glob("*.bin")) == []


def test_ready_watchdog_and_stopping_notifications(terminal: Terminal) -> None:
    daemon = terminal.start(watchdog_usec=400_000)  # pings every 0.2 s
    assert daemon.ready_s is not None and daemon.ready_s < 5
    daemon.wait_message("WATCHDOG=1", 2.0)
    daemon.wait_message("WATCHDOG=1", 2.0)
    assert daemon.proc is not None
    daemon.proc.terminate()
    daemon.wait_message("STOPPING=1", 5.0)
    assert daemon.proc.wait(10) == 0


def test_status_shows_the_running_daemon_and_its_devices(terminal: Terminal, capsys: Any) -> None:
    from terminal.cli import main

    terminal.start()
    assert main(["status", "--config", str(terminal.config)]) == 0
    out = capsys.readouterr().out
    assert "daemon      pid" in out and "device      scanner0: scanner attached" in out
    assert "device      card-reader0: card_reader attached" in out


def test_an_unplugged_printer_never_blocks_a_sale_and_a_copy_prints_later(terminal: Terminal) -> None:
    terminal.printer.mkdir(parents=True, exist_ok=True)
    (terminal.printer / "unplugged").write_text("")
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            first = await api.ok("POST", "/v1/checkout/pay", {"method": "cash"})
            _, status = await events.wait_for("printer")
            assert status["online"] is False and "unplugged" in status["detail"]
            await api.attendant("demo", "1234")
            copy = await api.ok("POST", f"/v1/receipts/{first['receipt']}/print")
            assert copy["queued"] and (await api.ok("GET", "/v1/status"))["print_queue"] == 2
            (terminal.printer / "unplugged").unlink()
            await api.ok("POST", "/v1/printer/retry")
            deadline = time.monotonic() + WAIT_S
            while terminal.receipts_text().count(f"Receipt {first['receipt']}") < 2:
                assert time.monotonic() < deadline, "the receipt and its copy were not printed"
                await asyncio.sleep(0.05)
            status_code, body = await api.call("POST", "/v1/returns", {"receipt": first["receipt"], "id": "bad id!"})
            assert status_code == 400 and "barcode" in body["error"]

    run(scenario())


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
def test_power_cut_while_paying_commits_once_and_prints_once(terminal: Terminal, point: str) -> None:
    first = terminal.start(env={"POSTERM_FAILPOINTS": point})

    async def pay() -> str:
        async with ApiClient(terminal.socket) as api:
            await api.ok("POST", "/v1/checkout/lines", {"code": FRIDGE})
            await api.ok("POST", "/v1/checkout/card", {"number": STANDARD})
            view = await api.ok("POST", "/v1/checkout/redeem", {"points": "max"})
            with pytest.raises(aiohttp.ClientError):  # the daemon dies under the request
                await api.call("POST", "/v1/checkout/pay", {"method": "card"})
            return str(view["id"])

    checkout_id = run(pay())
    assert first.proc is not None and first.proc.wait(5) == -signal.SIGKILL
    terminal.start()  # no failpoint: recovery finishes the confirmed payment

    async def after() -> None:
        async with ApiClient(terminal.socket) as api:
            assert (await api.ok("GET", "/v1/checkout"))["state"] == "idle"
            record = await api.ok("GET", f"/v1/receipts/{checkout_id}")
            assert record["quote"]["redeem"]["points"] == 5700
            await wait_printed(terminal, checkout_id)

    run(after())
    assert terminal.daemons[1].stop() == 0
    card, stats = ledger_state(terminal, STANDARD)
    assert stats["entries"]["receipts"] == 1 and stats["entries"]["holds"] == 0
    assert card["balance"] == 10000 - 5700 + 114
    assert terminal.receipts_text().count(f"Receipt {checkout_id}") == 1
