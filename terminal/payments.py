"""The paying desk: tenders through the payment terminal, fiscal documents, refunds to the sale's
tenders, cash in and out — the async steps around the checkout's state machine.

Pay (POST /v1/checkout/pay), each step under the desk's lock except the slow device calls:
  1. `prepare_payment` freezes the quote and checks the tenders (cash given → change);
  2. the fiscal registrar is asked whether it can register now and the document is built —
     a refusal blocks the sale before any money is taken (`error` event + 503 with the reason);
  3. `start_payment` records the payment; with card tenders the checkout turns `authorizing`
     and the record, with one operation id per card tender, is fsynced (the intent);
  4. outside the lock (a PIN can take a minute; the watchdog must keep pinging) each card
     operation is first looked up on the terminal (a crash may have sent it), then authorized;
     its answer is recorded at once. A decline, a customer cancel, a timeout or a lost
     connection reverses every card operation of the checkout and returns it to `paying`;
  5. all approved → the sale commits (one ledger transaction), the receipt is queued (the drawer
     kicks when cash moved), the fiscal document is queued, the checkout is forgotten.
Restart with an `authorizing` record: every operation approved → the sale commits once; any
not → the approved ones are reversed and the checkout is resumed. A terminal that does not
answer leaves the record for a later `pay` (which asks again, never charges again) or `cancel`
(which reverses). Limits: `DEVICE_CALL_S`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import RefundError
from core.refund import compute_refund
from drivers.errors import DeviceError
from drivers.fiscal import FiscalError, FiscalQueue, document_from_lines, make_registrar
from drivers.payment import PaymentResult, PaymentTerminal, make_payment_terminal
from drivers.spool import Spool
from terminal import failpoints
from terminal import tenders as tender_rules
from terminal.checkout import BadRequest, CheckoutError, NotFound
from terminal.ledger import LedgerError
from terminal.refunds import CardRefunds, card_parts

if TYPE_CHECKING:
    from terminal.daemon import Daemon

DEVICE_CALL_S = 180.0  # a payment terminal that has not answered by then is treated as lost
FISCAL_RETRY_S = 10.0


class PaymentRefused(CheckoutError):
    """The card payment was declined, cancelled or lost; nothing is charged."""

    status = 402


class DeviceNotReady(CheckoutError):
    status = 503


def _now() -> dt.datetime:
    return dt.datetime.now().astimezone()


class PaymentDesk:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        cfg = daemon.config
        devices = cfg.devices
        self.terminal: PaymentTerminal | None = None
        if devices.payment:
            dev = devices.payment[0]
            self.terminal = make_payment_terminal(dev.name, dev.driver, dev.source)
            daemon.devices[dev.name] = {"role": "payment", "state": "unknown", "detail": dev.describe()}
        self.fiscal: FiscalQueue | None = None
        self.taxation = "osn"
        if devices.fiscal:
            dev = devices.fiscal[0]
            self.taxation = dev.taxation
            registrar = make_registrar(dev.name, dev.driver, dev.source, dev.timeout_s, dev.taxation)
            self.fiscal = FiscalQueue(registrar, Spool(Path(cfg.state_dir) / "fiscal-queue"), daemon.publish)
            daemon.devices[dev.name] = {"role": "fiscal", "state": "unknown", "detail": dev.describe()}
        self.in_flight = False
        self.fiscal_wake = asyncio.Event()
        self.refunds = CardRefunds(self, Path(cfg.state_dir) / "refund-intents")

    # ------------------------------------------------------------------ device calls

    async def _call(self, fn: Any, *args: Any) -> PaymentResult:
        assert self.terminal is not None
        try:
            result = await asyncio.wait_for(asyncio.to_thread(fn, *args), DEVICE_CALL_S)
        except TimeoutError:
            result = PaymentResult(str(args[0]), "timeout", detail=f"no answer in {DEVICE_CALL_S:g} s")
        except (OSError, DeviceError) as exc:
            result = PaymentResult(str(args[0]), "error", detail=f"payment terminal: {exc}")
        # GET /v1/devices shows whether the terminal answers
        lost = result.status in ("error", "timeout")
        self.daemon.devices[self._name()] = {"role": "payment", "state": "fault" if lost else "ok",
                                             "detail": result.detail if lost else ""}
        return result

    def _name(self) -> str:
        return self.terminal.name if self.terminal else "payment"

    # ------------------------------------------------------------------ fiscal

    async def _fiscal_ready(self, document: Any) -> None:
        if self.fiscal is None or document is None:
            return
        registrar = self.fiscal.registrar
        try:
            validate = getattr(registrar, "validate", None)
            if validate is not None:
                validate(document)
            reason = await registrar.check()
        except FiscalError as exc:
            reason = str(exc)
        if reason:
            self.daemon.publish("error", {"message": f"sale blocked, nothing was paid: {reason}",
                                          "device": registrar.name})
            raise DeviceNotReady(f"the fiscal registrar cannot register the receipt: {reason}; "
                                 "nothing was paid — fix it and pay again")

    def sale_document(self, receipt_id: str, quote: dict[str, Any], names: dict[str, str],
                      tenders: list[dict[str, Any]], attendant: str | None) -> Any:
        if self.fiscal is None or quote["to_pay"] <= 0:
            return None
        try:
            return document_from_lines(receipt_id, "sell", quote["lines"], names, tenders, self.taxation,
                                       attendant or "self-checkout")
        except (FiscalError, KeyError, TypeError, ValueError) as exc:
            raise DeviceNotReady(f"checkout {receipt_id}: no fiscal document can be made: {exc}") from None

    def queue_fiscal(self, document: Any) -> None:
        if self.fiscal is None or document is None:
            return
        try:
            self.fiscal.put(document)
        except DeviceError as exc:  # a full queue must not undo a committed sale: say it loudly
            self.daemon.publish("error", {"message": f"fiscal document {document.doc_id} not queued: {exc}"})
            return
        self.fiscal_wake.set()

    async def run_fiscal(self, stop: asyncio.Event, retry_s: float = FISCAL_RETRY_S) -> None:
        assert self.fiscal is not None
        while not stop.is_set():
            self.fiscal_wake.clear()
            await self.fiscal.drain()
            waiters = [asyncio.ensure_future(self.fiscal_wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=retry_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    # ------------------------------------------------------------------ pay

    async def pay(self, tenders: list[Any] | None, method: str, attendant: str | None) -> dict[str, Any]:
        d, reg = self.daemon, self.daemon.register
        if reg.current is not None and reg.current.state == "authorizing" and not self.in_flight:
            return await self._settle()  # a payment left by a crash: ask first, never charge again
        planned, quote = await d.act(reg.prepare_payment, tenders, method, _now(), self.terminal is not None,
                                     attendant)
        co = reg.current
        assert co is not None
        names = {ln["sku"]: ln["name"] for ln in co.lines}
        await self._fiscal_ready(self.sale_document(co.id, quote, names, planned, attendant))
        sale = await d.act(reg.start_payment, planned, quote, _now())
        if sale is None:
            return await self._settle()
        return await d.act(d.after_sale, sale)

    async def _settle(self) -> dict[str, Any]:
        """Authorize every pending card operation; commit when all are approved."""
        d, reg = self.daemon, self.daemon.register
        co = reg.current
        assert co is not None and co.payment is not None and self.terminal is not None
        self.in_flight = True
        try:
            for tender in tender_rules.pending(co.payment["tenders"]):
                result = await self._call(self.terminal.status, tender["op"])
                if result.status == "unknown":  # never reached the terminal: ask for the money now
                    d.publish("payment", {"id": co.id, "op": tender["op"], "amount": tender["amount"],
                                          "state": "waiting for the card"})
                    result = await self._call(self.terminal.authorize, tender["op"], tender["amount"])
                    failpoints.hit("after_authorize")
                await d.act(reg.authorized, tender["op"], result.status, result.reference, result.card)
                if not result.approved:
                    return await self._fail(result)
        finally:
            self.in_flight = False
        sale = await d.act(reg.confirm_authorized, _now())
        return await d.act(d.after_sale, sale)

    async def _fail(self, result: PaymentResult) -> dict[str, Any]:
        """Reverse whatever this checkout may have been charged, then back to `paying`."""
        d, reg = self.daemon, self.daemon.register
        reversed_all = await self._reverse_all()
        if result.status in ("error", "timeout", "unknown") and not reversed_all:
            message = (f"card payment {result.op_id}: {result.detail or result.status}; the payment terminal "
                       "does not answer — the payment is settled when it does (pay again) or reversed (cancel)")
            d.publish("error", {"message": message, "device": self._name()})
            raise PaymentRefused(message)
        await d.act(reg.payment_failed, _now())
        message = f"card payment {result.status}: {result.detail or 'no detail'}; nothing is charged"
        d.publish("payment", {"op": result.op_id, "state": result.status, "detail": result.detail})
        raise PaymentRefused(message)

    async def _reverse_all(self) -> bool:
        """Cancel every card operation of the open checkout that may hold money. True when the
        terminal confirmed each (so nothing is charged)."""
        co = self.daemon.register.current
        assert co is not None and co.payment is not None and self.terminal is not None
        ok = True
        for tender in co.payment["tenders"]:
            if "op" not in tender or tender.get("status") in ("declined", "cancelled", "reversed"):
                continue
            result = await self._call(self.terminal.cancel, tender["op"])
            ok = ok and result.status in ("reversed", "cancelled", "declined")
            await self.daemon.act(self.daemon.register.authorized, tender["op"], result.status, "", "")
        return ok

    async def recover(self) -> None:
        """After a restart: the open card payment, then the card refunds a crash interrupted."""
        await self._recover_checkout()
        await self.refunds.recover()

    async def _recover_checkout(self) -> None:
        """A checkout left `authorizing`: commit it when every operation was approved, reverse
        and resume it when not; leave it when the terminal does not answer."""
        reg = self.daemon.register
        co = reg.current
        if co is None or co.state != "authorizing" or co.payment is None:
            return
        if self.terminal is None:
            self.daemon.publish("error", {"message": f"checkout {co.id} waits for a card payment but no "
                                                     "payment terminal is configured"})
            return
        answers = [await self._call(self.terminal.status, t["op"]) for t in tender_rules.pending(co.payment["tenders"])]
        if any(a.status == "error" for a in answers):
            self.daemon.publish("error", {"message": f"checkout {co.id}: the payment terminal does not answer; "
                                                     "its card payment is settled when it does"})
            return
        for answer in answers:
            await self.daemon.act(reg.authorized, answer.op_id, answer.status, answer.reference, answer.card)
        if all(a.approved for a in answers):
            sale = await self.daemon.act(reg.confirm_authorized, _now())
            await self.daemon.act(self.daemon.after_sale, sale)
            self.daemon.publish("recovered", {"id": co.id, "outcome": "card payment committed"})
            return
        if await self._reverse_all():
            await self.daemon.act(reg.payment_failed, _now())
            self.daemon.publish("recovered", {"id": co.id, "outcome": "card payment reversed"})

    async def cancel(self) -> dict[str, Any]:
        d, reg = self.daemon, self.daemon.register
        co = reg.current
        if co is not None and co.state == "authorizing":
            if self.in_flight:
                raise CheckoutError(f"checkout {co.id}: the customer is paying on the card terminal; "
                                    "cancel there, or wait for its answer")
            if not await self._reverse_all():
                raise DeviceNotReady(f"checkout {co.id}: the payment terminal does not answer; the card "
                                     "payment cannot be reversed yet — try again")
            await d.act(reg.payment_failed, _now())
        return await d.act(reg.cancel, _now())

    # ------------------------------------------------------------------ returns

    async def return_sale(self, receipt_id: str, lines: list[dict[str, Any]] | None,
                          return_id: str | None, attendant: str | None = None,
                          refund_to: str | None = None) -> dict[str, Any]:
        """Money back to the sale's tenders: card ones through the payment terminal (first, and
        before the return commits: a refused card refund refuses the return; terminal/refunds.py
        keeps the intent so a crash neither refunds twice nor refunds without a return), the
        rest in cash."""
        d = self.daemon
        pending = None if return_id is None else self.refunds.intents.find(return_id)
        if pending is not None:  # a card refund left unsettled: ask the terminal, never refund again
            return await self.refunds.run(pending[1])
        plan = await d.act(self._plan_return, receipt_id, lines, return_id, attendant, refund_to)
        try:
            await self._fiscal_ready(plan["document"])
        except DeviceNotReady:
            if plan["intent"]:  # nothing was refunded: the return simply did not happen
                self.refunds.intents.remove(plan["return_id"])
            raise
        if plan["intent"]:
            return await self.refunds.run(plan)
        ret = await d.act(d.commit_return, receipt_id, plan["lines"], plan["return_id"], plan["split"], attendant)
        self.queue_fiscal(plan["document"])
        return ret

    def _plan_return(self, receipt_id: str, lines: list[dict[str, Any]] | None, return_id: str | None,
                     attendant: str | None = None, refund_to: str | None = None) -> dict[str, Any]:
        reg, ledger = self.daemon.register, self.daemon.ledger
        if reg.current is not None:
            raise CheckoutError(f"checkout {reg.current.id} is open; finish or cancel it before a return")
        waiting = self.refunds.intents.of_receipt(receipt_id)
        if waiting is not None:
            raise CheckoutError(f"return {waiting} of receipt {receipt_id} waits for the payment terminal; "
                                "retry it with the same id first")
        receipt = ledger.receipt(receipt_id)
        if receipt is None:
            raise NotFound(f"receipt {receipt_id}: not in this terminal's ledger")
        lines = lines if lines is not None else reg._remaining(receipt)
        if not lines:
            raise CheckoutError(f"receipt {receipt_id}: everything was returned already")
        try:
            refund = compute_refund(receipt["quote"], {"lines": lines, "previous": receipt["refunds"]})
        except RefundError as exc:
            raise BadRequest(f"return of receipt {receipt_id}: {exc}") from None
        stamp = f"{_now().astimezone(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        return_id = return_id or f"{self.daemon.config.terminal_id}-R{stamp}"
        split = tender_rules.refund_split(receipt["tenders"], receipt.get("refund_tenders", []), refund["money"])
        if refund_to == "cash":  # the attendant gives the money back from the drawer (docs/daemon.md)
            split = tender_rules.all_cash(receipt["tenders"], refund["money"])
        by_reference = self._by_reference(receipt, split)
        document = None
        if self.fiscal is not None and refund["money"] > 0:
            sale_lines = receipt["quote"]["lines"]
            rows = [{**sale_lines[ln["line"]], "money": ln["money"], "qty_milli": ln["qty_milli"],
                     "vat_amount": ln.get("vat_amount", 0), "redeem_amount": ln.get("redeem_amount", 0)}
                    for ln in refund["lines"]]
            names = {ln["sku"]: self.daemon.product_name(ln["sku"]) for ln in sale_lines}
            try:
                document = document_from_lines(return_id, "sellReturn", rows, names, split, self.taxation,
                                               attendant or "self-checkout", amount_key="money")
            except FiscalError as exc:
                raise DeviceNotReady(f"return {return_id}: no fiscal document can be made: {exc}") from None
        plan = {"return_id": return_id, "receipt": receipt_id, "lines": lines, "split": split,
                "document": document, "intent": False, "attendant": attendant, "by_reference": by_reference}
        if card_parts(plan):
            if self.terminal is None:
                raise DeviceNotReady("the sale was paid through the payment terminal, which is not configured")
            self.refunds.intents.put(plan)  # durable before any money moves; SpoolError: nothing moved
            plan["intent"] = True
        return plan

    def _by_reference(self, receipt: dict[str, Any], split: list[dict[str, Any]]) -> dict[str, str]:
        """Card parts of another terminal's sale: refunded by the bank's reference where this
        payment terminal can; else refused with the fallback (cash) — never a refund attempt
        against an operation this terminal never saw. {tender index: reference}."""
        origin = receipt.get("origin")
        parts = [p for p in split if "original" in p]
        if not origin or not parts:
            return {}
        refs = {str(p["tender"]): str(receipt["tenders"][p["tender"]].get("reference", "")) for p in parts}
        if self.terminal is not None and self.terminal.refunds_by_reference and all(refs.values()):
            return refs
        raise CheckoutError(f"receipt {receipt['id']} was paid by card at terminal {origin['terminal']}; this "
                            "payment terminal cannot refund a card payment it did not take — make the return "
                            f"at {origin['terminal']}, or give the money back in cash: the same return with "
                            '"refund": "cash"')

    # ------------------------------------------------------------------ cash in / out

    def cash_move(self, kind: str, amount: Any, reason: Any, op_id: str | None) -> dict[str, Any]:
        d = self.daemon
        op_id = op_id or f"{d.config.terminal_id}-C{_now().astimezone(dt.UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        try:
            moved = d.ledger.cash_move(op_id, kind, amount, reason, _now())
        except LedgerError as exc:
            raise BadRequest(str(exc)) from None
        d.publish("cash", {"id": op_id, "kind": kind, "money": moved["amount"], "reason": moved["reason"]})
        d.print_cash_slip(moved)
        d.wake_sync()
        return moved
