"""ATOL fiscal registrars through the ATOL driver's web server (ДТО 10 "JSON tasks"), over aiohttp.

    POST {url}/api/v2/requests        {"uuid": U, "request": [task]}   → 201 (409: uuid known)
    GET  {url}/api/v2/requests/{U}    → {"results": [{"status", "error": {"code", "description"}, "result"}]}

`status` goes wait → inProgress → ready | error (also interrupted, blocked, canceled). Tasks used:
`getDeviceStatus` (before a sale: `result.deviceStatus` paperPresent, coverOpened, blocked,
fiscal, shift closed | opened | expired) and `sell` / `sellReturn` with `taxationType` (osn |
usnIncome | usnIncomeOutcome | esn | patent), `operator` {`name`}, `items` of type `position`
(`name`, `price`, `quantity`, `amount`, `tax` {`type` = none | vat0 | vat5 | vat7 | vat10 |
vat20 | vat22, `sum`}, `paymentMethod` fullPayment, `paymentObject` commodity), `payments`
(`type` cash | electronically | prepaid | credit | other, `sum`) and `total`. Points a card
redeemed are paid as `other` (drivers/fiscal.py). Money is sent as JSON numbers in roubles with
2 decimals, quantities with 3, written from integers (the float of m/100 has the exact shortest
repr). Field names as ATOL's documentation gives them; where they were checked is in
docs/fiscal.md.

The task uuid is derived from the document id (uuid5), so a document resubmitted after a crash
gets 409 and its first result is read back — never registered twice.
Limits: `poll_s`, the config's `timeout_s`, `reply_bytes_max`.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from drivers.fiscal import FiscalDocument, FiscalError, FiscalResult

NAMESPACE = uuid.UUID("8a7c4c0e-5d0e-4b59-9a56-6f1e0c1d2b3a")
poll_s = 0.2
check_timeout_s = 3.0
reply_bytes_max = 256 * 1024
TAX_TYPES = {None: "none", 0: "vat0", 500: "vat5", 700: "vat7", 1000: "vat10", 2000: "vat20", 2200: "vat22"}
DONE = frozenset({"ready", "error", "interrupted", "blocked", "canceled"})


def task_uuid(doc_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, doc_id))


def roubles(minor: int) -> float:
    return minor / 100  # exact in repr for |minor| < 2**53: the JSON number is the decimal


def tax_type(rate_bp: int | None, doc_id: str) -> str:
    try:
        return TAX_TYPES[rate_bp]
    except KeyError:
        raise FiscalError(f"fiscal document {doc_id}: VAT {(rate_bp or 0) / 100:g} % is not a rate an ATOL "
                          "registrar knows (0, 5, 7, 10, 20, 22 or none); fix the product's vat") from None


def sell_task(document: FiscalDocument, taxation: str) -> dict[str, Any]:
    items = [{
        "type": "position", "name": item.name, "price": roubles(item.price),
        "quantity": item.qty_milli / 1000, "amount": roubles(item.amount),
        "tax": {"type": tax_type(item.vat_rate_bp, document.doc_id), "sum": roubles(item.vat_amount)},
        "paymentMethod": "fullPayment", "paymentObject": "commodity",
    } for item in document.items]
    task: dict[str, Any] = {
        "type": document.kind, "taxationType": document.taxation or taxation,
        "operator": {"name": document.operator or "self-checkout"},
        "items": items, "payments": [{"type": p.type, "sum": roubles(p.amount)} for p in document.payments],
        "total": roubles(document.total),
    }
    return task


class AtolRegistrar:
    def __init__(self, name: str, url: str, timeout_s: float = 30, taxation: str = "osn") -> None:
        self.name, self.url, self.timeout_s, self.taxation = name, url.rstrip("/"), timeout_s, taxation

    async def _run(self, task_id: str, task: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Post one task (or find it posted already) and wait for its result."""
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        deadline = time.monotonic() + timeout_s
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                async with session.post(f"{self.url}/api/v2/requests",
                                        json={"uuid": task_id, "request": [task]}) as reply:
                    if reply.status not in (200, 201, 409):  # 409: posted before a crash; read its result
                        text = (await reply.content.read(2000)).decode("utf-8", "replace")
                        raise FiscalError(f"fiscal registrar {self.name}: HTTP {reply.status}: {text[:200]}")
                while True:
                    async with session.get(f"{self.url}/api/v2/requests/{task_id}") as reply:
                        if reply.status != 200:
                            raise FiscalError(f"fiscal registrar {self.name}: HTTP {reply.status} "
                                              f"reading task {task_id}")
                        body = await reply.content.read(reply_bytes_max + 1)
                    result = _first_result(body, self.name)
                    if result.get("status") in DONE:
                        return result
                    if time.monotonic() >= deadline:
                        raise FiscalError(f"fiscal registrar {self.name}: task {task_id} still "
                                          f"{result.get('status')!r} after {timeout_s:g} s")
                    await asyncio.sleep(poll_s)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise FiscalError(f"fiscal registrar {self.name} at {self.url} does not answer: "
                              f"{type(exc).__name__} {exc}"[:300]) from None

    async def check(self) -> str | None:
        try:
            result = await self._run(str(uuid.uuid4()), {"type": "getDeviceStatus"},
                                     min(self.timeout_s, check_timeout_s))
        except FiscalError as exc:
            return str(exc)
        if result.get("status") != "ready":
            return f"fiscal registrar {self.name}: {error_text(result)}"
        status = (result.get("result") or {}).get("deviceStatus") or {}
        problems = [text for bad, text in (
            (status.get("paperPresent") is False, "out of paper"),
            (status.get("coverOpened") is True, "cover open"),
            (status.get("blocked") is True, "blocked (call the registrar's service)"),
            (status.get("fiscal") is False, "not fiscalised"),
            (status.get("shift") == "expired", "shift over 24 h: close the shift (Z report)"),
        ) if bad]
        return f"fiscal registrar {self.name}: {', '.join(problems)}" if problems else None

    async def register(self, document: FiscalDocument) -> FiscalResult:
        task = sell_task(document, self.taxation)
        result = await self._run(task_uuid(document.doc_id), task, self.timeout_s)
        if result.get("status") != "ready":
            return FiscalResult(document.doc_id, False, detail=error_text(result)[:200])
        params = (result.get("result") or {}).get("fiscalParams") or {}
        return FiscalResult(document.doc_id, True, str(params.get("fiscalDocumentNumber", "")))


def error_text(result: dict[str, Any]) -> str:
    """A failed task's reason: the web server's `error.description` (with its code), else its status."""
    error = result.get("error")
    if isinstance(error, dict) and error.get("description"):
        code = error.get("code")
        return f"{error['description']}" + (f" (code {code})" if code else "")
    return str(result.get("status"))


def _first_result(body: bytes, name: str) -> dict[str, Any]:
    if len(body) > reply_bytes_max:
        raise FiscalError(f"fiscal registrar {name}: reply larger than {reply_bytes_max} bytes")
    try:
        data = json.loads(body)
        result = data["results"][0]
    except (ValueError, KeyError, IndexError, TypeError):
        raise FiscalError(f"fiscal registrar {name}: unreadable reply {body[:80]!r}") from None
    if not isinstance(result, dict):
        raise FiscalError(f"fiscal registrar {name}: unreadable reply {body[:80]!r}")
    return result
