"""Fiscal documents, the simulated registrar, the fiscal queue, and the ATOL JSON-task driver
against a loopback aiohttp server that checks every request against the task schema and answers
as ATOL's web server does (field names as docs/fiscal.md cites them)."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web

from drivers.atol import AtolRegistrar, sell_task, task_uuid
from drivers.fiscal import (
    FiscalDocument,
    FiscalError,
    FiscalQueue,
    SimulatedFiscal,
    document_from_lines,
)
from drivers.spool import Spool

LINES = [
    {"sku": "milk", "price": 8990, "qty_milli": 2000, "paid": 17980, "vat_rate": 1000, "vat_amount": 1635},
    {"sku": "tv", "price": 1200000, "qty_milli": 1000, "paid": 1140000, "vat_rate": 2000, "vat_amount": 190000},
    {"sku": "free", "price": 100, "qty_milli": 1000, "paid": 0, "vat_rate": None, "vat_amount": 0},
    {"sku": "stamp", "price": 500, "qty_milli": 1000, "paid": 500, "vat_rate": None, "vat_amount": 0},
]
TENDERS = [{"method": "cash", "amount": 20000, "tendered": 50000, "change": 30000},
           {"method": "card", "amount": 1138480, "op": "T01-x-p2"}]


def doc(kind: str = "sell", doc_id: str = "T01-20261123-0001") -> FiscalDocument:
    return document_from_lines(doc_id, kind, LINES, {"milk": "Молоко 1 л", "tv": "TV"},  # type: ignore[arg-type]
                               TENDERS, "osn", "Olga")


def test_document_from_quote_lines() -> None:
    d = doc()
    assert [i.name for i in d.items] == ["Молоко 1 л", "TV", "stamp"]  # the all-points line is left out
    assert [(p.type, p.amount) for p in d.payments] == [("cash", 20000), ("electronically", 1138480)]
    assert d.total == 17980 + 1140000 + 500 == 1158480
    assert FiscalDocument.from_json(d.to_json()) == d
    with pytest.raises(FiscalError, match="payments add up to 20000, items to 1158480"):
        document_from_lines("x", "sell", LINES, {}, TENDERS[:1], "osn", "")
    with pytest.raises(FiscalError, match="sell or sellReturn"):
        document_from_lines("x", "refund", LINES, {}, TENDERS, "osn", "")  # type: ignore[arg-type]


POINTS_LINES = [  # 2 × milk at 89.90: 50.00 paid with points on the first line, 30.00 off the TV
    {**LINES[0], "paid": 12980, "redeem_amount": 5000, "vat_amount": 1180},
    {**LINES[1], "paid": 1137000, "redeem_amount": 3000, "vat_amount": 189500},
    {**LINES[2], "redeem_amount": 100},  # a line paid with points only
]


def test_points_are_a_payment_of_type_other_and_the_items_keep_their_price() -> None:
    d = document_from_lines("T01-P", "sell", POINTS_LINES, {}, [{"method": "card", "amount": 1149980}],
                            "osn", "self-checkout")
    assert [(i.amount, i.vat_amount) for i in d.items] == [(17980, 1635), (1140000, 190000), (100, 0)]
    assert [(p.type, p.amount) for p in d.payments] == [("electronically", 1149980), ("other", 8100)]
    task = sell_task(d, "osn")
    assert task["payments"] == [{"type": "electronically", "sum": 11499.8}, {"type": "other", "sum": 81.0}]
    assert task["total"] == 11580.8
    # a partial return of the first line: its refunded money and points, the same payment types
    back = document_from_lines("T01-R", "sellReturn", [{**POINTS_LINES[0], "money": 6490, "redeem_amount": 2500,
                                                        "qty_milli": 1000}], {}, [{"method": "card", "amount": 6490}],
                               "osn", "Olga", amount_key="money")
    assert [(p.type, p.amount) for p in back.payments] == [("electronically", 6490), ("other", 2500)]
    assert back.items[0].amount == 8990 and back.items[0].vat_amount == 817


def test_atol_sell_task_fields() -> None:
    task = sell_task(doc(), "osn")
    assert task["type"] == "sell" and task["taxationType"] == "osn" and task["operator"] == {"name": "Olga"}
    assert task["items"][0] == {"type": "position", "name": "Молоко 1 л", "price": 89.9, "quantity": 2.0,
                                "amount": 179.8, "tax": {"type": "vat10", "sum": 16.35},
                                "paymentMethod": "fullPayment", "paymentObject": "commodity"}
    assert [i["tax"]["type"] for i in task["items"]] == ["vat10", "vat20", "none"]
    assert task["payments"] == [{"type": "cash", "sum": 200.0}, {"type": "electronically", "sum": 11384.8}]
    assert task["total"] == 11584.8
    odd = document_from_lines("x", "sell", [{**LINES[0], "vat_rate": 1800}], {}, [{"method": "cash", "amount": 17980}],
                              "osn", "")
    with pytest.raises(FiscalError, match="VAT 18 % is not a rate"):
        sell_task(odd, "osn")


class AtolServer:
    """ATOL's web server, enough of it: tasks are checked against the schema, then 'executed'."""

    TAX = frozenset({"none", "vat0", "vat5", "vat7", "vat10", "vat20", "vat22"})
    PAYMENTS = frozenset({"cash", "electronically", "prepaid", "credit", "other"})
    OK: ClassVar[dict[str, Any]] = {"code": 0, "description": ""}

    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.posted: list[dict[str, Any]] = []
        self.device = {"paperPresent": True, "coverOpened": False, "blocked": False, "fiscal": True,
                       "shift": "opened"}
        self.fail_next: str | None = None
        self.polls_before_ready = 1
        app = web.Application()
        app.add_routes([web.post("/api/v2/requests", self.post), web.get("/api/v2/requests/{uuid}", self.get)])
        self.runner = web.AppRunner(app)

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    async def post(self, request: web.Request) -> web.Response:
        body = await request.json(loads=lambda t: json.loads(t, parse_float=Decimal))
        assert set(body) == {"uuid", "request"} and str(uuid.UUID(body["uuid"])) == body["uuid"]
        assert isinstance(body["request"], list) and len(body["request"]) == 1
        if body["uuid"] in self.tasks:
            return web.json_response({"error": {"code": 409, "description": "uuid exists"}}, status=409)
        task = body["request"][0]
        self.check(task)
        self.posted.append(task)
        self.tasks[body["uuid"]] = {"task": task, "polls": 0, "fail": self.fail_next}
        self.fail_next = None
        return web.json_response({}, status=201)

    def check(self, task: dict[str, Any]) -> None:
        if task["type"] == "getDeviceStatus":
            assert task == {"type": "getDeviceStatus"}
            return
        assert set(task) == {"type", "taxationType", "operator", "items", "payments", "total"}
        assert task["type"] in ("sell", "sellReturn")
        assert task["taxationType"] in ("osn", "usnIncome", "usnIncomeOutcome", "esn", "patent")
        assert set(task["operator"]) <= {"name", "vatin"} and isinstance(task["operator"]["name"], str)
        total = Decimal(0)
        for item in task["items"]:
            assert set(item) == {"type", "name", "price", "quantity", "amount", "tax", "paymentMethod",
                                 "paymentObject"}
            assert item["type"] == "position" and 0 < len(item["name"]) <= 128
            assert item["tax"]["type"] in self.TAX and set(item["tax"]) == {"type", "sum"}
            for key in ("price", "quantity", "amount"):
                assert isinstance(item[key], Decimal | int)
            assert item["amount"] == item["amount"].quantize(Decimal("0.01"))
            total += item["amount"]
        assert all(p["type"] in self.PAYMENTS and set(p) == {"type", "sum"} for p in task["payments"])
        assert sum(p["sum"] for p in task["payments"]) == total == task["total"]

    async def get(self, request: web.Request) -> web.Response:
        entry = self.tasks.get(request.match_info["uuid"])
        if entry is None:
            return web.json_response({"error": "no such task"}, status=404)
        entry["polls"] += 1
        if entry["polls"] <= self.polls_before_ready:
            return web.json_response({"results": [{"status": "inProgress", "error": self.OK, "result": None}]})
        if entry["fail"]:
            return web.json_response({"results": [{"status": "error", "result": None,
                                                   "error": {"code": 44, "description": entry["fail"]}}]})
        if entry["task"]["type"] == "getDeviceStatus":
            return web.json_response({"results": [{"status": "ready", "error": self.OK,
                                                   "result": {"deviceStatus": self.device}}]})
        number = list(self.tasks).index(request.match_info["uuid"]) + 1
        return web.json_response({"results": [{"status": "ready", "error": self.OK, "result": {
            "fiscalParams": {"fiscalDocumentNumber": number, "total": entry["task"]["total"]}}}]},
            dumps=lambda v: json.dumps(v, default=str))


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


def test_atol_registers_once_and_reports_why_it_cannot() -> None:
    async def scenario() -> None:
        server = AtolServer()
        url = await server.start()
        try:
            atol = AtolRegistrar("fiscal", url, timeout_s=5)
            assert await atol.check() is None
            first = await atol.register(doc())
            assert first.ok and first.fiscal_number == "2"  # task 1 was the status query
            again = await atol.register(doc())  # a resubmission after a crash: 409, the first result
            assert again == first and [t["type"] for t in server.posted] == ["getDeviceStatus", "sell"]
            assert task_uuid("T01-20261123-0001") in server.tasks
            back = await atol.register(doc("sellReturn", "T01-R1"))
            assert back.ok and server.posted[-1]["type"] == "sellReturn"
            points = document_from_lines("T01-P", "sell", POINTS_LINES, {}, [{"method": "card", "amount": 1149980}],
                                         "usnIncome", "self-checkout")
            assert (await atol.register(points)).ok and server.posted[-1]["payments"][-1]["type"] == "other"

            server.device |= {"paperPresent": False, "shift": "expired"}
            reason = await atol.check()
            assert reason == "fiscal registrar fiscal: out of paper, shift over 24 h: close the shift (Z report)"
            server.fail_next = "Нет связи с ФН"
            failed = await atol.register(doc("sell", "T01-2"))
            assert not failed.ok and failed.detail == "Нет связи с ФН (code 44)"
            server.fail_next = "Смена превысила 24 часа"
            assert await atol.check() == "fiscal registrar fiscal: Смена превысила 24 часа (code 44)"
        finally:
            await server.runner.cleanup()
        gone = await AtolRegistrar("fiscal", url, timeout_s=1).check()
        assert gone is not None and "does not answer" in gone

    run(scenario())


def test_simulated_registrar_and_the_fiscal_queue(tmp_path: Path) -> None:
    sim = SimulatedFiscal("fiscal", tmp_path / "fiscal")
    seen: list[tuple[str, dict[str, Any]]] = []
    queue = FiscalQueue(sim, Spool(tmp_path / "queue"), lambda kind, data: seen.append((kind, data)))

    async def scenario() -> None:
        assert await sim.check() is None
        (tmp_path / "fiscal").mkdir()
        (tmp_path / "fiscal" / "not_ready").write_text("out of paper\n")
        assert await sim.check() == "out of paper"
        (tmp_path / "fiscal" / "not_ready").unlink()
        queue.put(doc())
        (tmp_path / "fiscal" / "broken").touch()
        assert await queue.drain() == 0 and len(queue.spool.jobs()) == 1  # kept for the retry
        assert seen[-1][0] == "error" and "it is retried" in seen[-1][1]["message"]
        (tmp_path / "fiscal" / "broken").unlink()
        queue.put(doc("sellReturn", "T01-R1"))
        assert await queue.drain() == 2 and queue.spool.jobs() == []
        assert [d["kind"] for d in sim.documents()] == ["sell", "sellReturn"]
        assert (await sim.register(doc())).fiscal_number == "1"  # known already: not twice
        assert len(sim.documents()) == 2

    run(scenario())
    assert [k for k, _ in seen].count("fiscal") == 2
