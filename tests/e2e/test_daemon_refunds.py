"""Card refunds of returns through the real daemon and the simulated payment terminal: SIGKILL
right after the terminal refunded (committed once, or reversed — never refunded twice, never a
refund without a return record), a refusal half-way through a split refund, and a terminal that
does not answer (the return waits for it, under its id)."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
from typing import Any

import aiohttp
import pytest

from drivers.fiscal import SimulatedFiscal
from drivers.payment import SimulatedPaymentTerminal
from terminal.client import ApiClient
from terminal.ledger import Ledger

from .conftest import Terminal
from .test_daemon_e2e import STANDARD, wait_printed
from .test_daemon_tenders import BLENDER, bank, run, script

SPLIT = [{"method": "card", "amount": 40000}, {"method": "card", "amount": 30000}]  # the blender: 700.00


def returns(term: Terminal) -> int:
    with Ledger(term.ledger_path) as ledger:
        assert ledger.verify()["ok"]
        return int(ledger.stats()["entries"]["returns"])


def intents(term: Terminal) -> list[str]:
    directory = term.root / "state" / "refund-intents"
    return sorted(p.name for p in directory.glob("*.bin")) if directory.exists() else []


async def card_sale(api: ApiClient, tenders: list[dict[str, Any]]) -> str:
    await api.attendant("demo", "1234")  # returns need a manager
    await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
    sale = await api.ok("POST", "/v1/checkout/pay", {"tenders": tenders})
    return str(sale["receipt"])


@pytest.mark.parametrize(("tenders", "committed"), [
    ([{"method": "card", "amount": 70000}], True),
    (SPLIT, False),
])
def test_sigkill_after_the_terminal_refunded_commits_once_or_reverses(
        terminal: Terminal, tenders: list[dict[str, Any]], committed: bool) -> None:
    first = terminal.start(env={"POSTERM_FAILPOINTS": "after_refund"})

    async def sell_and_return() -> str:
        async with ApiClient(terminal.socket) as api:
            receipt = await card_sale(api, tenders)
            assert bank(terminal).charged() == 70000
            with pytest.raises(aiohttp.ClientError):  # the daemon dies under the request
                await api.call("POST", "/v1/returns", {"receipt": receipt, "id": "R-CRASH"})
            return receipt

    receipt = run(sell_and_return())
    assert first.proc is not None and first.proc.wait(5) == -signal.SIGKILL
    assert bank(terminal).charged() == 70000 - tenders[0]["amount"]  # the first card part went back
    assert returns(terminal) == 0 and intents(terminal) == ["0000000001.R-CRASH.bin"]
    terminal.start()

    async def after() -> None:
        async with ApiClient(terminal.socket) as api:
            record = await api.ok("GET", f"/v1/receipts/{receipt}")
            if committed:
                await wait_printed(terminal, "R-CRASH")
                assert record["returns"] == ["R-CRASH"]
            else:  # reversed: nothing refunded, nothing recorded — and the receipt can be returned again
                assert record["returns"] == []
                await api.attendant("demo", "1234")
                ret = await api.ok("POST", "/v1/returns", {"receipt": receipt, "id": "R-AGAIN"})
                assert [p["amount"] for p in ret["tenders"]] == [40000, 30000]

    run(after())
    assert terminal.daemons[1].stop() == 0
    assert bank(terminal).charged() == 0  # refunded exactly once, whichever way
    assert returns(terminal) == 1 and intents(terminal) == []
    assert terminal.receipts_text().count("Receipt R-CRASH") == (1 if committed else 0)  # printed once


def test_a_refusal_half_way_reverses_the_refunded_part_and_records_nothing(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            receipt = await card_sale(api, SPLIT)
            script(terminal, "approve", "decline")
            status, refused = await api.call("POST", "/v1/returns", {"receipt": receipt, "id": "R-1"})
            assert status == 402 and "nothing is refunded" in refused["error"]
            assert bank(terminal).charged() == 70000 and intents(terminal) == []
            ret = await api.ok("POST", "/v1/returns", {"receipt": receipt, "id": "R-2"})
            assert sum(p["amount"] for p in ret["tenders"]) == 70000 and bank(terminal).charged() == 0

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    assert returns(terminal) == 1


def test_a_terminal_that_does_not_answer_keeps_the_return_for_its_id(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            receipt = await card_sale(api, [{"method": "card", "amount": 70000}])
            (terminal.root / "payment" / "offline").write_text("")
            status, refused = await api.call("POST", "/v1/returns", {"receipt": receipt, "id": "R-WAIT"})
            assert status == 402 and "retry it with the same id" in refused["error"]
            status, refused = await api.call("POST", "/v1/returns", {"receipt": receipt, "id": "R-OTHER"})
            assert status == 409 and "R-WAIT" in refused["error"]
            (terminal.root / "payment" / "offline").unlink()
            ret = await api.ok("POST", "/v1/returns", {"receipt": receipt, "id": "R-WAIT"})
            assert ret["return"] == "R-WAIT" and ret["tenders"][0]["reference"].startswith("RRN")

    run(scenario())
    assert terminal.daemons[0].stop() == 0
    assert bank(terminal).charged() == 0 and returns(terminal) == 1 and intents(terminal) == []


def test_points_paid_are_their_own_payment_type_in_the_fiscal_documents(terminal: Terminal) -> None:
    terminal.start()

    async def scenario() -> tuple[str, int]:
        async with ApiClient(terminal.socket) as api:
            await api.attendant("demo", "1234")
            await api.ok("POST", "/v1/checkout/lines", {"code": BLENDER})
            await api.ok("POST", "/v1/checkout/card", {"number": STANDARD})
            view = await api.ok("POST", "/v1/checkout/redeem", {"points": 3000})
            points_money = view["quote"]["redeem"]["amount"]
            sale = await api.ok("POST", "/v1/checkout/pay", {"method": "card"})
            await api.ok("POST", "/v1/returns", {"receipt": sale["receipt"], "id": "R-PTS"})
            fiscal = SimulatedFiscal("fiscal", terminal.root / "fiscal")
            for _ in range(200):  # the fiscal queue registers in the background
                if len(fiscal.documents()) >= 2:
                    break
                await asyncio.sleep(0.025)
            return str(sale["receipt"]), int(points_money)

    receipt, points_money = run(scenario())
    assert terminal.daemons[0].stop() == 0
    assert points_money > 0
    sell, back = SimulatedFiscal("fiscal", terminal.root / "fiscal").documents()
    for doc in (sell, back):
        assert doc["payments"] == [{"type": "electronically", "amount": 70000 - points_money},
                                   {"type": "other", "amount": points_money}]
        assert doc["items"][0]["amount"] == 70000  # the price stays; points pay part of it
    assert sell["doc_id"] == receipt and sell["operator"] == "self-checkout"
    assert back["kind"] == "sellReturn" and back["operator"] == "demo"  # the manager who took the return


def adopt_card_sale_of_t09(term: Terminal, receipt: str = "T09-20261204120000-beef") -> str:
    """A card sale of terminal T09 (its own simulated terminal: `bank-T09`), adopted into this
    terminal's ledger as a return at any terminal fetches it from central (terminal/sync/receipts.py)."""
    other = SimulatedPaymentTerminal("payment", term.root / "bank-T09")
    paid = other.authorize(f"{receipt}-a1p1", 70000)
    sale = {"receipt": receipt, "terminal": "T09", "epoch": 1, "seq": 1, "at": "2026-12-04T12:00:00+00:00",
            "card": None, "card_type": None, "subtotal": 70000, "discount": 0, "total": 70000, "to_pay": 70000,
            "tenders": [{"method": "card", "amount": 70000, "op": paid.op_id, "reference": paid.reference}],
            "redeemed": 0, "redeemed_money": 0, "accrued": 0, "referral": [], "gifts": [],
            "lines": [{"sku": BLENDER, "qty_milli": 1000, "price": 70000, "amount": 70000, "discount": 0,
                       "redeem_amount": 0, "paid": 70000, "rules": []}]}
    with Ledger(term.ledger_path) as ledger:
        assert ledger.adopt_receipt(sale, dt.datetime.now().astimezone())["adopted"]
    return receipt


def test_another_terminals_card_sale_is_refunded_by_reference_or_in_cash_on_request(terminal: Terminal) -> None:
    terminal.start()
    terminal.daemons[0].stop()  # provisioned and migrated: now the ledger takes the adopted receipt
    receipt = adopt_card_sale_of_t09(terminal)
    t09 = SimulatedPaymentTerminal("payment", terminal.root / "bank-T09")
    terminal.start()

    async def scenario() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.attendant("demo", "1234")
            body = {"receipt": receipt, "lines": [{"line": 0, "qty": 1}], "id": "R-T09"}
            status, refused = await api.call("POST", "/v1/returns", body)
            assert status == 409 and "paid by card at terminal T09" in refused["error"]
            assert '"refund": "cash"' in refused["error"] and intents(terminal) == []
            status, bad = await api.call("POST", "/v1/returns", {**body, "refund": "card"})
            assert status == 400 and "'refund' must be" in bad["error"]

            (terminal.root / "payment").mkdir(exist_ok=True)  # this terminal refunds by RRN at the acquirer
            (terminal.root / "payment" / "by_reference").write_text(f"{terminal.root / 'bank-T09'}\n")
            ret = await api.ok("POST", "/v1/returns", body)
            assert ret["tenders"][0]["method"] == "card" and ret["tenders"][0]["reference"].startswith("RRN")
            assert bank(terminal).charged() + t09.charged() == 0  # the T09 payment went back, once
            status, _ = await api.call("POST", "/v1/returns", {"receipt": receipt, "id": "R-T09-2"})
            assert status == 409  # everything was returned already

    run(scenario())
    assert terminal.daemons[1].stop() == 0

    # the fallback: the same kind of return in cash, from the drawer, with no payment terminal involved
    second = adopt_card_sale_of_t09(terminal, "T09-20261204120500-cafe")
    terminal.start()

    async def cash() -> None:
        async with ApiClient(terminal.socket) as api:
            await api.attendant("demo", "1234")
            (terminal.root / "payment" / "by_reference").unlink()
            ret = await api.ok("POST", "/v1/returns", {"receipt": second, "refund": "cash", "id": "R-CASH"})
            assert ret["tenders"] == [{"tender": -1, "method": "cash", "amount": 70000}]
            text = await wait_printed(terminal, "R-CASH")
            assert "Refunded to cash" in text

    run(cash())
    assert terminal.daemons[2].stop() == 0
    # the second sale's card payment stays at the bank; its money went back in cash
    assert bank(terminal).charged() + t09.charged() == 70000
    assert b"\x1bp\x0022" in (terminal.printer / "receipts.bin").read_bytes()  # the drawer opened
