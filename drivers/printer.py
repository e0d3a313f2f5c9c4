"""ESC/POS receipt printers through python-escpos: render, spool, print, report status.

A receipt is rendered once onto a python-escpos `Dummy` with the printer's capability profile;
the bytes go to the durable reprint queue (`drivers.spool`) and from there to the printer,
oldest first, and are deleted only after the printer took them. A printer that is off, out of
paper or unreachable keeps its jobs and is reported as a `PrinterStatus`.
Transports: USB, serial, network (TCP 9100), file (appends; also /dev/usb/lp0), simulated.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import escpos.exceptions
from escpos.escpos import Escpos
from escpos.printer import Dummy, File, Network, Serial

from drivers.errors import DeviceError
from drivers.events import Event, Paper, PrinterStatus
from drivers.receipt import Receipt, ShiftReport
from drivers.render import document_ops, play, preview
from drivers.spool import Job, Spool

status_timeout_s = 3
retry_s = 10
_PAPER: dict[int, Paper] = {2: "ok", 1: "near_end", 0: "out"}


@runtime_checkable
class TextSink(Protocol):
    """A transport that also keeps the text preview of each job it prints (the simulator)."""

    def job_text(self, text: str) -> None: ...


class AppendFile(File):
    """python-escpos's File printer opens with "wb"; a receipts log must not lose old receipts."""

    def open(self, raise_not_found: bool = True) -> None:
        try:
            self.device = open(self.devfile, "ab")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            self._device = None
            raise escpos.exceptions.DeviceNotFoundError(
                f"cannot open {self.devfile}: {exc.strerror}"
            ) from None


class ClosingNetwork(Network):
    """python-escpos's Network leaks its socket when connect() fails; a retrying daemon would
    leak one per attempt, so this one closes it."""

    def open(self, raise_not_found: bool = True) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect((self.host, self.port))
        except OSError as exc:
            sock.close()
            self.device = None
            raise escpos.exceptions.DeviceNotFoundError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        self.device = sock


@dataclass(frozen=True, slots=True)
class PrinterSpec:
    """What the config says about one printer (see drivers.config)."""

    name: str
    driver: str
    profile: str = "default"
    columns: int | None = None
    status: bool = True
    host: str = ""
    port: int = 9100
    path: str = ""
    vendor: int = 0
    product: int = 0
    serial_port: str = ""
    baudrate: int = 19200
    timeout_s: int = status_timeout_s

    def describe(self) -> str:
        where = {
            "network": f"{self.host}:{self.port}",
            "usb": f"{self.vendor:04x}:{self.product:04x}",
            "serial": f"{self.serial_port} @ {self.baudrate}",
        }.get(self.driver, self.path)
        return f"{self.driver} {where}"


def make_transport(spec: PrinterSpec) -> Escpos:
    """An unopened python-escpos printer for the spec; opening happens when a job is sent."""
    kw: dict[str, Any] = {"profile": spec.profile}
    if spec.driver == "network":
        return ClosingNetwork(spec.host, spec.port, timeout=spec.timeout_s, **kw)
    if spec.driver == "file":
        return AppendFile(spec.path, **kw)
    if spec.driver == "serial":
        return Serial(spec.serial_port, baudrate=spec.baudrate, timeout=spec.timeout_s, **kw)
    if spec.driver == "usb":
        from escpos.printer import Usb

        if not Usb.is_usable():
            raise DeviceError(f"printer {spec.name}: USB printers need pyusb (pip install pyusb)")
        return Usb(spec.vendor, spec.product, timeout=spec.timeout_s * 1000, **kw)
    if spec.driver == "simulated":
        from drivers.simulated import SimulatedPrinter

        return SimulatedPrinter(spec.path, **kw)
    raise DeviceError(f"printer {spec.name}: unknown printer driver {spec.driver!r}")


# Failures a transport reports while opening, querying or writing; anything else is a bug.
_FAULTS: tuple[type[BaseException], ...] = (
    escpos.exceptions.Error, OSError, ValueError, DeviceError,
)


class ReceiptPrinter:
    """One configured printer with its reprint queue."""

    def __init__(
        self,
        spec: PrinterSpec,
        spool: Spool,
        factory: Callable[[], Escpos] | None = None,
        emit: Callable[[Event], None] = lambda event: None,
    ) -> None:
        self.spec, self.spool, self.emit = spec, spool, emit
        self.factory = factory or (lambda: make_transport(spec))
        probe = Dummy(profile=spec.profile)
        self.columns = spec.columns or _profile_columns(probe)
        self.last_status: PrinterStatus | None = None
        self.wake = asyncio.Event()

    def render(self, receipt: Receipt | ShiftReport) -> tuple[bytes, str]:
        """The receipt (or shift report) as ESC/POS bytes for this printer's profile, and its
        text preview."""
        ops = document_ops(receipt, self.columns)
        dummy = Dummy(profile=self.spec.profile)
        dummy.hw("INIT")  # ESC @: each job starts from the printer's defaults, whatever came before
        play(ops, dummy)
        return dummy.output, preview(ops, self.columns)

    def submit(self, receipt: Receipt | ShiftReport) -> Job:
        """Render and queue durably; printing happens in `drain` (now or on a later retry)."""
        data, text = self.render(receipt)
        job = self.spool.put(receipt.receipt_id, data, text)
        self.wake.set()
        return job

    def status(self) -> PrinterStatus:
        """Open, ask the printer how it is, close. Never raises for a printer fault."""
        return query_status(self.spec, self.factory)

    def _query(self, printer: Escpos) -> PrinterStatus:
        return _query(self.spec, printer)

    def _report(self, status: PrinterStatus) -> None:
        if status != self.last_status:
            self.last_status = status
            self.emit(status)

    def drain(self) -> int:
        """Print queued jobs oldest first; stop at the first fault. Returns jobs printed."""
        jobs = self.spool.jobs()
        if not jobs:
            return 0
        try:
            printer = self.factory()
            printer.open()
        except _FAULTS as exc:
            self._report(PrinterStatus(self.spec.name, False, "unknown", _fault(exc)))
            return 0
        printed = 0
        try:
            for job in jobs:
                status = self._query(printer)
                self._report(status)
                if not status.online or status.paper == "out":
                    break
                data, text = self.spool.read(job)
                try:
                    printer._raw(data)  # the bytes were made by python-escpos calls on a Dummy
                except _FAULTS as exc:
                    self._report(PrinterStatus(self.spec.name, False, "unknown", _fault(exc)))
                    break
                if isinstance(printer, TextSink):
                    printer.job_text(text)
                self.spool.remove(job)
                printed += 1
        finally:
            _close(printer)
        return printed

    async def run(self, stop: asyncio.Event, retry_s: float = retry_s) -> None:
        """Drain now, after each submit and every `retry_s` while jobs wait; until `stop`."""
        while not stop.is_set():
            self.wake.clear()
            await asyncio.to_thread(self.drain)
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=retry_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()


def query_status(spec: PrinterSpec, factory: Callable[[], Escpos] | None = None) -> PrinterStatus:
    """Open the printer, ask how it is, close it. Never raises for a printer fault."""
    try:
        printer = (factory or (lambda: make_transport(spec)))()
        printer.open()
    except _FAULTS as exc:
        return PrinterStatus(spec.name, False, "unknown", _fault(exc))
    try:
        return _query(spec, printer)
    finally:
        _close(printer)


def _query(spec: PrinterSpec, printer: Escpos) -> PrinterStatus:
    if not spec.status:
        return PrinterStatus(spec.name, True, "unknown", "status queries disabled")
    try:
        online = printer.is_online()
        paper = _PAPER.get(printer.paper_status(), "unknown") if online else "unknown"
    except NotImplementedError:
        return PrinterStatus(spec.name, True, "unknown", "printer cannot report status")
    except _FAULTS as exc:
        return PrinterStatus(spec.name, False, "unknown", _fault(exc))
    detail = "" if online else "offline - cover open, error or paper out"
    return PrinterStatus(spec.name, online, paper, detail)


def _profile_columns(printer: Escpos) -> int:
    from drivers.render import columns_max, columns_min

    try:
        columns = int(printer.profile.get_columns("a"))
    except (KeyError, ValueError, TypeError, escpos.exceptions.Error):
        columns = 42  # 80 mm paper with font A: the common case when a profile says nothing
    return max(columns_min, min(columns, columns_max))


def _fault(exc: BaseException) -> str:
    if type(exc).__name__ == "NoBackendError":  # pyusb found no libusb on this machine
        return "no USB backend: install libusb (apt install libusb-1.0-0)"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def _close(printer: Escpos) -> None:
    with contextlib.suppress(*_FAULTS):  # closing a dead connection can only fail again
        printer.close()


def receipt_dir_printer(directory: str | Path, profile: str = "default") -> ReceiptPrinter:
    """A simulated printer with its spool inside `directory` — for the demo and tests."""
    directory = Path(directory)
    spec = PrinterSpec("printer", "simulated", profile=profile, status=True, path=str(directory))
    return ReceiptPrinter(spec, Spool(directory / "spool"))
