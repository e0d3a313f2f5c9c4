"""The real daemon with the simulated payment terminal and fiscal registrar: card declined,
cancelled on the PIN pad and lost; cash with change and the drawer; a refund back to the card;
a fiscal registrar that is not ready blocks the sale before money is taken; cash in and out in
the X report; and SIGKILL right after the bank approved — committed once, or reversed."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from typing import Any

import aiohttp
import pytest

from drivers.fiscal import SimulatedFiscal
from drivers.payment import SimulatedPaymentTerminal
from terminal.client import ApiClient, EventWatcher
from terminal.ledger import Ledger

from .conftest import Terminal
from .test_daemon_e2e import wait_printed

MILK, BLENDER = "4600000000022", "4600000000015"  # 89.90 at VAT 10 %; 1000.00 (700.00 after the promo) at 20 %


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def bank(term: Terminal) -> SimulatedPaymentTerminal:
    return SimulatedPaymentTerminal("payment", term.root / "payment")


def script(term: Terminal, *outcomes: str) -> None:
    (term.root / "payment").mkdir(exist_ok=True)
    (term.root / "payment" / "script").write_text("".join(f"{o}\n" for o in outcomes))


def receipts(term: Terminal) -> int:
    with Ledger(term.ledger_path) as ledger:
        return int(ledger.stats()["entries"]["receipts"])


def test_card_refusals_charge_nothing_then_a_sale_and_its_refund_to_the_card(terminal: Terminal) -> None:
    terminal.start()
    script(terminal, "decline", "cancel", "lost")

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            view = await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
            to_pay = view["quote"]["to_pay"]
            for said in ("declined by the bank", "cancelled by the customer", "connection lost"):
                status, refused = await api.call("POST", "/v1/checkout/pay", {"method": "card"})
                assert status == 402 and said in refused["error"] and "nothing is charged" in refused["error"]
                assert (await api.ok("GET", "/v1/checkout"))["state"] == "paying"
                assert bank(terminal).charged() == 0  # the lost one was reversed
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
            assert bank(terminal).charged() == to_pay and sale["tenders"][0]["reference"].startswith("RRN")
            text = await wait_printed(terminal, sale["receipt"])
            assert "Card ****4242 RRN" in text and "incl. VAT 20% of 700.00" in text
            _, done = await events.wait_for("sale")
            assert done["tenders"][0]["op"] == f"{sale['receipt']}-a4p1"  # the fourth attempt

            script(terminal, "decline")  # the bank refuses the refund: the return is not recorded
            status, refused = await api.call("POST", "/v1/returns", {"receipt": sale["receipt"], "id": "R-1"})
            assert status == 402 and "the return is not recorded" in refused["error"]
            assert bank(terminal).charged() == to_pay
            ret = await api.ok("POST", "/v1/returns", {"receipt": sale["receipt"], "id": "R-2"})
            assert ret["tenders"][0]["method"] == "card" and ret["tenders"][0]["amount"] == to_pay
            assert bank(terminal).charged() == 0
            text = await wait_printed(terminal, ret["return"])
            assert "Refunded to card RRN" in text and "RETURN" in text
            x = await api.ok("GET", "/v1/shift")
            assert x["tenders"] == {"card": to_pay} and x["refunds"] == {"card": to_pay}
            assert x["vat"]["returns"] == [{"rate": 2000, "money": to_pay, "amount": 11667}]
            fiscal = SimulatedFiscal("fiscal", terminal.root / "fiscal")
            for _ in range(200):  # the fiscal queue registers in the background
                if len(fiscal.documents()) >= 2:
                    break
                await asyncio.sleep(0.025)

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    docs = SimulatedFiscal("fiscal", terminal.root / "fiscal").documents()
    assert [d["kind"] for d in docs] == ["sell", "sellReturn"]
    assert docs[0]["payments"] == [{"type": "electronically", "amount": 70000}]
    assert docs[0]["items"][0]["vat_rate_bp"] == 2000 and docs[0]["items"][0]["vat_amount"] == 11667


def test_cash_with_change_opens_the_drawer_and_cash_moves_show_in_the_x_report(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
            await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})  # 89.90 + 700.00
            status, bad = await api.call("POST", "/v1/checkout/pay", {"tenders": [
                {"method": "cash", "amount": 8990, "tendered": 5000}, {"method": "card", "amount": 70000}]})
            assert status == 400 and "at least its amount" in bad["error"]
            sale = await api.ok("POST", "/v1/checkout/pay", {"attendant": "Olga", "tenders": [
                {"method": "cash", "amount": 8990, "tendered": 10000}, {"method": "card", "amount": 70000}]})
            assert sale["change"] == 1010 and bank(terminal).charged() == 70000
            text = await wait_printed(terminal, sale["receipt"])
            for line in ("Cashier Olga", "Cash given", "Change", "incl. VAT 10% of 89.90",
                         "incl. VAT 20% of 700.00", "Tax ID 7701234567", "Posterm Demo LLC"):
                assert line in text
            moved = await api.ok("POST", "/v1/cash", {"kind": "out", "amount": 5000, "reason": "bank drop"})
            assert moved["kind"] == "out"
            status, bad = await api.call("POST", "/v1/cash", {"kind": "out", "amount": 0, "reason": "x"})
            assert status == 400
            x = await api.ok("GET", "/v1/shift")
            assert x["tenders"] == {"card": 70000, "cash": 8990} and x["totals"]["cash_out"] == 5000
            assert x["cash_moves"] == [{"kind": "cash_out", "amount": 5000, "reason": "bank drop"}]
            await wait_printed(terminal, moved["id"])
            reprint = await api.ok("POST", f"/v1/receipts/{sale['receipt']}/print")
            assert reprint["queued"]
            for _ in range(200):  # the copy prints after the answer: wait for it before stopping
                if "COPY" in terminal.receipts_text():
                    break
                await asyncio.sleep(0.025)

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    data = (terminal.printer / "receipts.bin").read_bytes()
    # ESC @ starts every job; the sale and the cash slip kick the drawer, the COPY does not
    assert data.count(b"\x1b@") == 3 and data.count(b"\x1b@\x1bp\x0022") == 2
    assert terminal.receipts_text().count("COPY") == 1


def test_a_fiscal_registrar_that_is_not_ready_blocks_the_sale_before_payment(terminal: Terminal) -> None:
    (terminal.root / "fiscal").mkdir()
    (terminal.root / "fiscal" / "not_ready").write_text("out of paper")
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api, EventWatcher(api) as events:
            await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
            status, refused = await api.call("POST", "/v1/checkout/pay", {"method": "card"})
            assert status == 503 and "fiscal registrar" in refused["error"] and "out of paper" in refused["error"]
            _, error = await events.wait_for("error")
            assert "nothing was paid" in error["message"]
            assert bank(terminal).charged() == 0 and receipts(terminal) == 0
            (terminal.root / "fiscal" / "not_ready").unlink()
            await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
            _, registered = await events.wait_for("fiscal")
            assert registered["kind"] == "sell" and registered["fiscal_number"] == "1"

    run(scenario())
    assert terminal.daemons[0].stop() == 0


@pytest.mark.parametrize(("tenders", "committed"), [
    ([{"method": "card", "amount": 70000}], True),
    ([{"method": "card", "amount": 40000}, {"method": "card", "amount": 30000}], False),
])
def test_sigkill_after_the_bank_approved_commits_once_or_reverses(
        terminal: Terminal, tenders: list[dict[str, Any]], committed: bool) -> None:
    first = terminal.start(env={"POSTERM_FAILPOINTS": "after_authorize"})

    async def pay() -> str:
        async with ApiClient(terminal.socket) as api:
            view = await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
            with pytest.raises(aiohttp.ClientError):  # the daemon dies under the request
                await api.call("POST", "/v1/checkout/pay", {"tenders": tenders})
            return str(view["id"])

    checkout_id = run(pay())
    assert first.proc is not None and first.proc.wait(5) == -signal.SIGKILL
    assert bank(terminal).charged() == tenders[0]["amount"]  # the bank took the first part
    terminal.start()

    async def after() -> None:
        async with ApiClient(terminal.socket) as api:
            view = await api.ok("GET", "/v1/checkout")
            if committed:
                assert view["state"] == "idle"
                record = await api.ok("GET", f"/v1/receipts/{checkout_id}")
                assert record["tenders"][0]["op"] == f"{checkout_id}-a1p1"
                await wait_printed(terminal, checkout_id)
            else:
                assert view["state"] == "paying" and view["id"] == checkout_id  # resumed: pay again
                status, _ = await api.call("GET", f"/v1/receipts/{checkout_id}")
                assert status == 404

    run(after())
    assert terminal.daemons[1].stop() == 0
    assert bank(terminal).charged() == (70000 if committed else 0)  # never twice, never without a sale
    assert receipts(terminal) == (1 if committed else 0)
    assert terminal.receipts_text().count(f"Receipt {checkout_id}") == (1 if committed else 0)
    with Ledger(terminal.ledger_path) as ledger:
        assert ledger.verify()["ok"]
        assert dt.datetime.now().astimezone() and ledger.stats()["entries"]["holds"] == 0
