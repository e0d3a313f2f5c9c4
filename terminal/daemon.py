"""The daemon's asyncio wiring: drivers → bounded queue → checkout → ledger → printer, plus the
local API, the systemd watchdog and a graceful stop.

Tasks: one per input device (drivers push onto the drivers' bounded EventQueue, drop-oldest),
one consumer applying those events to the checkout, the printer's drain loop (reprint queue,
retried every `printer_retry_s`), the idle-timeout sweeper (which also reloads the rules file
when sync replaced it, between checkouts only), the sync task when the config has a [sync]
section (terminal.sync; woken after each sale and return), and the watchdog pinger. Every
checkout change runs under ONE asyncio lock, so scans, swipes and API calls are serialised:
the terminal has exactly one checkout at a time. The watchdog pings only after taking that lock
within half the watchdog period, so a stuck handler (or a blocked loop) gets the unit restarted.

Print only after commit: the sale is committed, then rendered into the durable reprint queue,
then the checkout record is cleared. A crash between the two last steps prints the receipt
twice rather than never (at-least-once printing). Limits: `ACTION_WAIT_S`, the queues' sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any, TypeVar

import core
from drivers.config import InputConfig
from drivers.errors import DeviceError
from drivers.events import CardSwipe, DeviceState, Event, EventQueue, PrinterStatus, RejectedInput, ScanEvent
from drivers.printer import ReceiptPrinter
from drivers.receipt import Receipt, ReceiptLine, ReportKind, ShiftReport, mask_card, vat_rows
from drivers.receipt_text import tr
from drivers.spool import Spool
from protocol.coupons import is_coupon_code
from terminal import failpoints, housekeeping
from terminal import tenders as tender_rules
from terminal.attendants import Desk
from terminal.bus import Bus
from terminal.checkout import CheckoutError, Register
from terminal.config import TerminalConfig, sync_config
from terminal.errors import TerminalError
from terminal.ledger import Ledger, LedgerError, LedgerNotFoundError
from terminal.metrics import TerminalMetrics
from terminal.notify import Notifier
from terminal.rules_keeper import RulesKeeper
from terminal.sync.receipts import is_receipt_id

log = logging.getLogger("posterm.daemon")
ACTION_WAIT_S = 5.0
IDLE_SWEEP_S = 1.0
EXPIRY_SWEEP_S = 300.0  # the ledger's expiry sweep (lots no server has seen; terminal/ledger/expiry.py)
T = TypeVar("T")


def now_local() -> dt.datetime:
    return dt.datetime.now().astimezone()


def log_event(event: str, **fields: Any) -> None:
    """One structured line: `event=sale receipt=T01-… to_pay=570000`."""
    parts = [f"event={event}"] + [f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in fields.items()]
    log.info(" ".join(parts))


def make_input(dev: InputConfig, config: TerminalConfig) -> Any:
    rules = config.devices.codes
    if dev.driver == "simulated":
        from drivers.simulated import SimulatedInput

        return SimulatedInput(dev.name, dev.source, rules)
    if dev.driver == "serial":
        from drivers.serial_input import SerialInput

        assert dev.protocol is not None  # drivers.config always sets it for serial inputs
        return SerialInput(dev.name, dev.source, dev.protocol, rules)
    from drivers.keyboard import EvdevInput, EvdevSettings

    settings = EvdevSettings(dev.name, dev.source, dev.layout, dev.grab, dev.kind, dev.gap_ms)  # type: ignore[arg-type]
    return EvdevInput(settings, rules)


class Daemon:
    def __init__(self, config: TerminalConfig, notifier: Notifier | None = None) -> None:
        self.config = config
        self.notifier = notifier or Notifier.from_env()
        self.bus = Bus()
        self.metrics = TerminalMetrics(self)  # reads the daemon's state only when scraped
        self.events = EventQueue()
        self.lock = asyncio.Lock()
        self.stop = asyncio.Event()
        self.started = time.monotonic()
        self.devices: dict[str, dict[str, Any]] = {}
        self.tasks: list[asyncio.Task[Any]] = []
        self.sync = sync_config(config)  # checked now: a bad key must stop the start, clearly
        self.syncer: Any = None
        self.last_prune: dict[str, Any] | None = None
        self.rules_mtime_ns: int | None = None
        # Without a server there is nobody to send rules: no good program at all is a refusal
        # (exit 2); a bad file beside a last good copy starts on the copy (reported).
        self.rules = RulesKeeper(config.rules_path, config.ledger_path)
        program = self.rules.at_start(waiting_allowed=self.sync is not None)
        if config.rules_path.exists():
            self.rules_mtime_ns = config.rules_path.stat().st_mtime_ns
        self.rules_version = None if program is None else program.version
        self.ledger = Ledger(config.ledger_path)
        if self.ledger.terminal_id != config.terminal_id:
            self.ledger.close()
            raise TerminalError(f"{config.ledger_path}: ledger of terminal {self.ledger.terminal_id}, "
                                f"config says {config.terminal_id}; run posterm provision again")
        self.register = Register(
            terminal_id=config.terminal_id, store=config.store, ledger=self.ledger, program=program,
            record_path=config.checkout_path, idle_timeout_s=config.idle_timeout_s,
            hold_timeout_s=config.hold_timeout_s, publish=self.publish,
            offline_cap_points=None if self.sync is None else self.sync.offline_redeem_max_points)
        self.attendants = Desk(config.screen.attendants_file)  # attendant sessions (terminal.guard)
        self.card_lookup: Any = None
        self.register.quote_timer = self.metrics.quote.observe
        self.printer: ReceiptPrinter | None = None
        if config.devices.printers:
            first = config.devices.printers[0]  # one receipt printer per terminal; others unused
            self.printer = ReceiptPrinter(first.spec, Spool(first.spool), emit=self.events.emit)
            self.devices[first.spec.name] = {"role": "printer", "state": "unknown", "detail": ""}
        for dev in config.devices.inputs:
            self.devices[dev.name] = {"role": dev.role, "state": "unknown", "detail": dev.describe()}
        from terminal.payments import PaymentDesk

        self.desk = PaymentDesk(self)

    # ------------------------------------------------------------------ events

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        self.bus.publish(kind, data)
        self.metrics.observe(kind, data)
        if kind not in ("quote", "scan"):
            log_event(kind, **{k: v for k, v in data.items() if k in (
                "id", "receipt", "reason", "to_pay", "redeemed", "accrued", "code", "message", "device",
                "state", "money", "return", "online", "paper", "detail")})

    async def act(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one checkout action under the lock; refuses when the desk is busy too long."""
        try:
            await asyncio.wait_for(self.lock.acquire(), ACTION_WAIT_S)
        except TimeoutError:
            raise CheckoutError(f"the terminal is busy (waited {ACTION_WAIT_S:g} s); try again") from None
        try:
            return fn(*args)
        finally:
            self.lock.release()

    async def consume(self) -> None:
        """Apply driver events to the checkout, one at a time, at the daemon's own pace."""
        while not self.stop.is_set():
            event = await self.events.get()
            try:
                if isinstance(event, CardSwipe):
                    # Outside the lock: the server may take up to card_timeout_ms to answer.
                    await self.act(self.on_swipe, event, await self.card_mode(event.number))
                else:
                    await self.act(self.on_event, event)
            except TerminalError as exc:
                self.publish("error", {"message": str(exc), "device": getattr(event, "device", "")})

    def on_event(self, event: Event) -> None:
        now = now_local()
        if isinstance(event, ScanEvent):
            self.publish("scan", {"device": event.device, "code": event.code, "symbology": event.symbology,
                                  "weight_g": event.weight_g, "price_minor": event.price_minor})
            self.on_scan(event, now)
        elif isinstance(event, RejectedInput):
            self.publish("rejected_input", {"device": event.device, "reason": event.reason,
                                            "raw": event.raw_preview})
        elif isinstance(event, PrinterStatus):
            self.devices[event.device] = {"role": "printer", "state": "ok" if event.online and
                                          event.paper != "out" else "fault", "online": event.online,
                                          "paper": event.paper, "detail": event.detail}
            self.publish("printer", {"device": event.device, "online": event.online,
                                     "paper": event.paper, "detail": event.detail})
        elif isinstance(event, DeviceState):
            self.devices.setdefault(event.device, {"role": "input"}).update(state=event.state, detail=event.detail)
            self.publish("device", {"device": event.device, "state": event.state, "detail": event.detail})

    def on_swipe(self, event: CardSwipe, mode: str) -> None:
        self.publish("swipe", {"device": event.device, "card": mask_card(event.number), "source": event.source,
                               "mode": mode})
        self.register.attach_card(event.number, now_local(), mode)

    async def card_mode(self, number: str) -> str:
        """Refresh the card from the central server (bounded by card_timeout_ms): "online" when
        it answered, "offline" when not (redemption capped), "local" with no server configured."""
        if self.sync is None:
            return "local"
        if self.card_lookup is None:
            return "offline"
        try:
            _, mode = await self.card_lookup.card_for_quote(number, now_local())
        except LedgerNotFoundError:
            return "offline"  # unknown here and the server did not answer: attach refuses it clearly
        return str(mode)

    def on_scan(self, event: ScanEvent, now: dt.datetime) -> None:
        reg = self.register
        if event.gs1_item is None and is_coupon_code(event.code):
            reg.add_coupon(event.code, now)  # a coupon's barcode (protocol/coupons.py); refusals: `error`
            return
        if event.gs1_item is not None:
            plus = [f"{event.gs1_prefix}{event.gs1_item}", event.gs1_item]
            for plu in plus:
                try:
                    line = reg.product_line(event.code, qty_milli=event.weight_g, price=event.price_minor,
                                            weight_code=plu)
                except CheckoutError:
                    continue
                reg.add(line, now)
                return
            self.publish("unknown_code", {"code": event.code, "device": event.device,
                                          "detail": f"no product for weight/price code PLU {' or '.join(plus)}"})
            return
        try:
            line = reg.product_line(event.code)
        except CheckoutError:
            if reg.current is None and self.ledger.receipt(event.code) is not None:
                self.publish("receipt_scanned", {"receipt": event.code})  # a return starts in the UI
            elif reg.current is None and self.sync is not None and is_receipt_id(event.code):
                # another terminal's receipt: the return fetches it from the central server
                self.publish("receipt_scanned", {"receipt": event.code, "elsewhere": True})
            else:
                self.publish("unknown_code", {"code": event.code, "device": event.device})
            return
        reg.add(line, now)

    # ------------------------------------------------------------------ sales and printing

    def pay(self, tenders: list[dict[str, Any]] | None, method: str) -> dict[str, Any]:
        """Pay with tenders the attendant confirms (no payment terminal involved)."""
        return self.after_sale(self.register.pay(tenders, method, now_local()))

    def after_sale(self, sale: dict[str, Any]) -> dict[str, Any]:
        """A committed sale: paper (the drawer kicks when cash moved), fiscal document, sync."""
        failpoints.hit("after_commit")
        self.print_sale(sale)
        self._queue_sale_fiscal(sale)
        self.register.finish()
        self.wake_sync()
        return {k: v for k, v in sale.items() if k != "names"}

    def _queue_sale_fiscal(self, sale: dict[str, Any]) -> None:
        try:
            document = self.desk.sale_document(sale["receipt"], sale["quote"], sale["names"], sale["tenders"],
                                               sale.get("attendant"))
        except CheckoutError as exc:  # checked before payment; only a changed catalog gets here
            self.publish("error", {"message": f"receipt {sale['receipt']}: {exc}"})
            return
        self.desk.queue_fiscal(document)

    def product_name(self, sku: str) -> str:
        try:
            return str(self.ledger.product(sku)["name"])
        except LedgerNotFoundError:
            return sku  # a product deleted since the sale prints by its sku

    def print_sale(self, sale: dict[str, Any]) -> None:
        if self.printer is not None:
            self._print_committed(lambda: self._sale_receipt(sale), f"receipt {sale['receipt']}")

    def _print_committed(self, document: Callable[[], Receipt | ShiftReport], what: str) -> bool:
        """Queue the paper of something already committed. Never raises for a printing problem
        (an `error` event says it; a copy can be asked later); False when nothing was queued."""
        try:
            self.submit(document())
        except DeviceError as exc:
            self.publish("error", {"message": f"{what} cannot be printed: {exc}"})
            return False
        return True

    def _sale_receipt(self, sale: dict[str, Any], copy: bool = False) -> Receipt:
        method = "+".join(t["method"] for t in sale["tenders"]) or "points"
        quote = sale["quote"]
        if quote["accrual"].get("available_from"):  # printed to the minute, not the microsecond
            accrual = {**quote["accrual"], "available_from": _shown(quote["accrual"]["available_from"])}
            quote = {**quote, "accrual": accrual}
        receipt = Receipt.from_quote(
            quote, sale["names"], receipt_id=sale["receipt"], time=_shown(sale["at"]),
            store_name=self.config.store_name or self.config.store, terminal_id=self.config.terminal_id,
            payment_method=method, card_number=sale["card"] or "", points_before=sale["points_before"],
            store_address=self.config.address, language=self.config.screen.language)
        payments = tender_rules.paper_lines(sale["tenders"], quote["redeem"]["points"], quote["redeem"]["amount"])
        return dataclasses.replace(
            receipt, **self._seller(sale.get("shift"), sale.get("attendant")), copy=copy, payments=payments,
            change=tender_rules.change_of(sale["tenders"]),
            open_drawer=not copy and tender_rules.has_cash(sale["tenders"]),
            coupons=tuple((c["code"], c["valid_to"] or "-") for c in sale.get("issued_coupons", [])))

    def _seller(self, shift: int | None, attendant: str | None) -> dict[str, Any]:
        return {"store_legal_name": self.config.legal_name, "store_tax_id": self.config.tax_id,
                "shift": shift, "checkout_by": "" if attendant else "Self-checkout", "cashier": attendant or ""}

    def print_return(self, ret: dict[str, Any]) -> None:
        if self.printer is not None:
            self._print_committed(lambda: self._return_receipt(ret), f"return {ret['return']}")

    def _return_receipt(self, ret: dict[str, Any]) -> Receipt:
        refund, sale_lines = ret["refund"], ret["sale_quote"]["lines"]
        lines = tuple(ReceiptLine(ret["names"].get(sale_lines[ln["line"]]["sku"], "?"), ln["qty_milli"],
                                  sale_lines[ln["line"]]["price"], ln["money"]) for ln in refund["lines"])
        messages = []
        lang = self.config.screen.language
        if ret["card"]:
            messages.append(tr(lang, "Points restored {restored}, taken back {clawed}",
                               restored=refund["points_restored"], clawed=refund["points_clawed"]))
        split = ret.get("tenders") or []
        # said on paper where the money went: back to the card (with the bank's reference) or in cash
        payments = tuple((f"Refunded to {p['method']}" + (f" {p['reference']}" if p.get("reference") else ""),
                          p["amount"]) for p in split)
        return Receipt(receipt_id=ret["return"][:32], time=_shown(ret["at"]), kind="return",
                       store_name=self.config.store_name or self.config.store,
                       terminal_id=self.config.terminal_id, lines=lines, subtotal=refund["money"],
                       total=refund["money"], to_pay=refund["money"], payment_method="refund",
                       card_number=ret["card"] or "", language=lang,
                       messages=(tr(lang, "Sale {receipt}", receipt=ret["receipt"]), *messages),
                       store_address=self.config.address, **self._seller(ret.get("shift"), ret.get("attendant")),
                       payments=payments, vat=vat_rows(refund.get("vat")),
                       open_drawer=any(p["method"] == "cash" and p["amount"] for p in split))

    def submit(self, receipt: Receipt) -> None:
        """Into the durable reprint queue; a full or unwritable queue raises SpoolError."""
        assert self.printer is not None
        self.printer.submit(receipt)

    def reprint(self, receipt_id: str) -> dict[str, Any]:
        record = self.ledger.receipt(receipt_id)
        if record is None:
            raise LedgerNotFoundError(f"receipt {receipt_id}: not in this terminal's ledger")
        if self.printer is None:
            raise CheckoutError("no printer is configured")
        names = {}
        for ln in record["quote"]["lines"]:
            with contextlib.suppress(LedgerNotFoundError):  # a deleted product prints by its sku
                names[ln["sku"]] = self.ledger.product(ln["sku"])["name"]
        sale = {"receipt": receipt_id, "at": record["at"], "quote": record["quote"], "names": names,
                "tenders": record["tenders"], "card": record["card"], "points_before": None,
                "shift": record.get("shift"), "issued_coupons": record.get("issued_coupons", [])}
        self.submit(self._sale_receipt(sale, copy=True))  # a full queue is the caller's 503, not silence
        return {"receipt": receipt_id, "queued": True}

    async def find_receipt(self, receipt_id: str) -> None:
        """A receipt of another terminal of the chain is fetched from the central server."""
        if self.sync is not None:
            from terminal.sync.receipts import adopt_from_central

            client = None if self.card_lookup is None else self.card_lookup.client
            await adopt_from_central(self.ledger, client, receipt_id, self.sync.card_timeout_ms, now_local())

    def commit_return(self, receipt_id: str, lines: list[dict[str, Any]] | None, return_id: str | None,
                      split: list[dict[str, Any]] | None = None, attendant: str | None = None) -> Any:
        ret = {**self.register.return_lines(receipt_id, lines, return_id, now_local(), split), "attendant": attendant}
        self.print_return(ret)
        self.wake_sync()
        return {k: v for k, v in ret.items() if k not in ("names", "sale_quote", "attendant")}

    def print_cash_slip(self, moved: dict[str, Any]) -> None:
        """Cash in or out: a slip with the amount and reason; the drawer opens with it."""
        if self.printer is None:
            return
        label = "CASH IN" if moved["kind"] == "in" else "CASH OUT"
        slip = Receipt(receipt_id=moved["id"][:32], time=_shown(moved["at"]), kind="sale",
                       store_name=self.config.store_name or self.config.store, terminal_id=self.config.terminal_id,
                       store_address=self.config.address, **self._seller(moved["shift"], None),
                       payments=((label, moved["amount"]),), messages=(f"Reason: {moved['reason']}",),
                       open_drawer=True)
        self._print_committed(lambda: slip, f"cash slip {moved['id']}")

    # ------------------------------------------------------------------ shifts

    def close_shift(self, shift: int) -> dict[str, Any]:
        """Z report: the open shift's totals, recorded as its `shift_close` event, and the next
        shift opened. The caller names the shift it read (GET /v1/shift), so a retried close
        cannot close the fresh shift after it; a sale cannot land in between (the desk's lock)."""
        if self.register.view()["state"] != "idle":
            raise CheckoutError("a checkout is open; pay or cancel it before closing the shift")
        report = self.ledger.report_shift()
        if shift != report["shift"]:
            raise CheckoutError(
                f"shift {shift} is not the open one (shift {report['shift']} is): "
                + ("it is closed already" if shift < report["shift"] else "no such shift yet")
            )
        closed = self.ledger.close_shift(f"z-{shift}", report["totals"], now_local())
        self.publish("shift_closed", {"shift": shift, "totals": report["totals"], "tenders": report["tenders"]})
        self.wake_sync()
        printed = self.printer is not None and self._print_committed(
            lambda: self._shift_report("Z", report), f"Z report of shift {shift}")
        return {**report, "closed": closed, "printed": printed}

    def print_shift(self) -> dict[str, Any]:
        """X report on paper: the open shift's totals, nothing changed."""
        if self.printer is None:
            raise CheckoutError("no printer is configured")
        report = self.ledger.report_shift()
        self.submit(self._shift_report("X", report))  # a full queue is the caller's 503
        return {**report, "queued": True}

    def _shift_report(self, kind: ReportKind, report: dict[str, Any]) -> ShiftReport:
        return shift_report(
            kind, {**report, "opened_at": _shown(report["opened_at"] or "")},
            time=_shown(now_local().isoformat()), store_name=self.config.store_name or self.config.store,
            terminal_id=self.config.terminal_id, language=self.config.screen.language)

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        stats = self.ledger.stats()
        spool = self.printer.spool.jobs() if self.printer else []
        return {"terminal": self.config.terminal_id, "store": self.config.store, "pid": os.getpid(),
                "uptime_s": round(time.monotonic() - self.started, 1), "engine": core.IMPLEMENTATION,
                "checkout": self.register.view()["state"],
                "rules": "not yet received" if self.register.engine is None else (self.rules_version or "loaded"),
                "rules_refused": self.rules.refusal or (self.syncer.status.get("rules_refused")
                                                        if self.syncer is not None else None),
                "ledger": {k: stats[k] for k in ("path", "file_bytes", "usage_percent", "backlog", "next_seq",
                                                  "updates_refused")},
                "last_sync": self.ledger.meta().get("last_update"),
                "sync": None if self.syncer is None else self.syncer.status,
                "print_queue": len(spool), "events_dropped": self.events.dropped,
                "sse_clients": len(self.bus.clients), "devices": self.devices, "last_prune": self.last_prune}

    # ------------------------------------------------------------------ lifecycle

    async def watchdog(self) -> None:
        interval = self.notifier.watchdog_interval_s
        if interval is None:
            await self.stop.wait()  # no watchdog configured: nothing to ping
            return
        while not self.stop.is_set():
            await asyncio.sleep(interval)
            try:
                await asyncio.wait_for(self.lock.acquire(), interval)
            except TimeoutError:
                log_event("watchdog_skipped", reason=f"checkout lock held for over {interval:g} s")
                continue
            self.lock.release()
            self.notifier.watchdog()

    async def sweep_idle(self) -> None:
        while not self.stop.is_set():
            await asyncio.sleep(IDLE_SWEEP_S)
            try:
                await self.act(self.register.expire_idle, now_local())
                await self.act(self.reload_rules)
            except TerminalError as exc:
                self.publish("error", {"message": str(exc)})

    async def sweep_expiry(self) -> None:
        """The ledger's expiry sweep, at start and every EXPIRY_SWEEP_S (sooner while it says
        more is left); its `expiry` events go to the server like any other."""
        while not self.stop.is_set():
            now = now_local()
            try:
                done = await asyncio.to_thread(self.ledger.expire, f"expiry-{now.timestamp():.6f}", now)
            except LedgerError as exc:
                self.publish("error", {"message": f"expiry sweep: {exc}"})
                done = {"more": False}
            if done.get("points"):
                log_event("expiry_swept", cards=done["cards"], points=done["points"])
                self.wake_sync()
            if not done["more"]:
                await _wait(self.stop, EXPIRY_SWEEP_S)

    def reload_rules(self) -> None:
        """New rules from sync apply between checkouts, never to a quote the customer has seen."""
        if self.register.current is not None:
            return
        try:
            mtime_ns = self.config.rules_path.stat().st_mtime_ns
        except FileNotFoundError:
            if self.rules_mtime_ns is None:
                return  # waiting for the first rules from the server, or reported already
            self.rules_mtime_ns = None
            raise TerminalError(f"{self.config.rules_path}: the rules file is gone; the loaded rules stay") from None
        except OSError as exc:
            raise TerminalError(f"{self.config.rules_path}: {exc.strerror}") from None
        if mtime_ns == self.rules_mtime_ns:
            return
        self.rules_mtime_ns = mtime_ns
        try:
            program = self.rules.load()
        except (core.PricingError, TerminalError) as exc:
            message = self.rules.refuse(exc)
            self.publish("rules_refused", {"message": message})
            self.publish("error", {"message": f"new rules refused, the old ones stay: {exc}"})
            return
        self.register.engine = core.Engine(program)
        self.rules_version = program.version
        self.publish("rules_reloaded", {"version": program.version, "rules": len(program.rules)})
        log_event("rules_loaded", version=program.version, rules=len(program.rules))

    def wake_sync(self) -> None:
        if self.syncer is not None:
            self.syncer.wake()

    async def run_sync(self) -> None:
        from terminal.sync.cards import CardLookup
        from terminal.sync.client import SyncClient
        from terminal.sync.loop import Syncer

        cfg = self.sync
        async with SyncClient(cfg.url, self.ledger.terminal_id, cfg.key, cfg.request_timeout_ms) as client:
            self.card_lookup = CardLookup(self.ledger, client, cfg.card_timeout_ms, cfg.offline_redeem_max_points)
            self.syncer = Syncer(self.ledger, cfg, client)
            await self.syncer.run(self.stop)

    def recover(self) -> None:
        try:
            outcome, sale = self.register.recover(now_local())
        except TerminalError as exc:
            self.publish("error", {"message": f"recovering the open checkout: {exc}"})
            log_event("recover_failed", message=str(exc))
            return
        if sale is not None:
            self.print_sale(sale)
            self._queue_sale_fiscal(sale)
            self.register.finish()
        log_event("recovered", outcome=outcome)

    async def run(self) -> None:
        from terminal.api import ApiServer  # aiohttp is only needed by a running daemon

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        self.recover()
        await self.desk.recover()  # a card payment left by a crash: committed once or reversed
        if self.rules.refusal:  # started on the last good rules, or waiting: say why
            self.publish("rules_refused", {"message": self.rules.refusal})
        api = ApiServer(self)
        await api.start()
        spawn = self.tasks.append
        for dev in self.config.devices.inputs:
            spawn(asyncio.create_task(make_input(dev, self.config).run(self.events.emit, self.stop), name=dev.name))
        if self.printer is not None:
            spawn(asyncio.create_task(self.printer.run(self.stop, self.config.printer_retry_s), name="printer"))
        if self.desk.fiscal is not None:
            spawn(asyncio.create_task(self.desk.run_fiscal(self.stop, self.config.printer_retry_s), name="fiscal"))
        for name, coro in (("consume", self.consume()), ("idle", self.sweep_idle()), ("watchdog", self.watchdog()),
                           ("prune", housekeeping.prune_loop(self, now_local)), ("expiry", self.sweep_expiry())):
            spawn(asyncio.create_task(coro, name=name))
        if self.sync is not None:
            spawn(asyncio.create_task(self.run_sync(), name="sync"))
        ready_s = time.monotonic() - self.started
        self.notifier.ready(f"serving on {self.config.api_socket}")
        log_event("ready", socket=str(self.config.api_socket), ready_s=round(ready_s, 3), engine=core.IMPLEMENTATION)
        try:
            await self._supervise()
        finally:
            self.notifier.stopping()
            log_event("stopping")
            self.stop.set()
            self.bus.close()
            await api.stop()
            for task in self.tasks:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.ledger.close()
            self.notifier.close()

    async def _supervise(self) -> None:
        """Wait for a stop; a core task that dies stops the daemon (systemd restarts it). A device
        driver that dies is reported and left down: it must not take the checkout with it."""
        watched = set(self.tasks)
        while True:
            stop = asyncio.ensure_future(self.stop.wait())
            try:
                done, _ = await asyncio.wait([stop, *watched], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
            if self.stop.is_set():
                return
            for task in done - {stop}:
                watched.discard(task)
                exc = None if task.cancelled() else task.exception()
                log_event("task_died", task=task.get_name(), error=repr(exc))
                if task.get_name() in self.devices:
                    self.devices[task.get_name()].update(state="error", detail=f"driver stopped: {exc!r}")
                    self.publish("device", {"device": task.get_name(), "state": "error", "detail": repr(exc)})
                    continue
                raise TerminalError(f"daemon task {task.get_name()} stopped: {exc!r}")


async def _wait(stop: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout_s)


def shift_report(kind: ReportKind, report: dict[str, Any], *, time: str, store_name: str,
                 terminal_id: str, language: str = "en") -> ShiftReport:
    from drivers.receipt import shift_extras

    return dataclasses.replace(ShiftReport.from_ledger(kind, report, time=time, store_name=store_name,
                                                       terminal_id=terminal_id, language=language),
                               **shift_extras(report))


def _shown(at: str) -> str:
    try:
        return dt.datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return at[:32]


async def serve(config: TerminalConfig) -> int:
    daemon = Daemon(config)
    await daemon.run()
    return 0

