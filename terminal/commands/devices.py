"""`posterm devices`, `posterm doctor`, `posterm test-print`: what is attached, is it working,
does the printer print. Exit codes: 0 all OK, 1 a device check failed, 2 bad input or config."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from drivers.config import DevicesConfig, InputConfig, PrinterConfig, ServiceConfig, parse_devices
from drivers.errors import DeviceError
from drivers.events import Event, PrinterStatus
from drivers.printer import ReceiptPrinter, query_status
from drivers.receipt import Gift, Receipt, ReceiptLine
from drivers.registry import driver_for
from drivers.spool import Spool
from terminal.errors import InputFileError
from terminal.files import read_bounded

DEFAULT_CONFIG = "/etc/posterm/terminal.toml"
CONFIG_BYTES_MAX = 1024 * 1024
LISTED_ENTRIES_MAX = 200
EXIT_OK, EXIT_FAILED = 0, 1


def register(subparsers: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=DEFAULT_CONFIG,
                        help=f"terminal config with [[device]] tables (default {DEFAULT_CONFIG})")
    devices = subparsers.add_parser("devices", parents=[common],
                                    help="list attached and configured devices")
    devices.add_argument("--input-dir", default="/dev/input/by-id", help=argparse.SUPPRESS)
    devices.add_argument("--serial-dir", default="/dev/serial/by-id", help=argparse.SUPPRESS)
    devices.set_defaults(handler=cmd_devices)
    doctor = subparsers.add_parser("doctor", parents=[common],
                                   help="check each configured device and print a verdict")
    doctor.set_defaults(handler=cmd_doctor)
    test_print = subparsers.add_parser("test-print", parents=[common],
                                       help="print a test receipt on the configured printer(s)")
    test_print.add_argument("--printer", type=int, help="only the printer of this device index")
    test_print.add_argument("--preview", action="store_true", help="also show the text preview")
    test_print.set_defaults(handler=cmd_test_print)


def load_config(path: str) -> DevicesConfig:
    data = read_bounded(path, CONFIG_BYTES_MAX, "config")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"{path}: the config file is not valid TOML: {exc}") from None
    try:
        return parse_devices(doc.get("device"), doc.get("codes"))
    except DeviceError as exc:
        raise DeviceError(f"{path}: {exc}") from None


def _by_index(config: DevicesConfig) -> list[PrinterConfig | InputConfig]:
    return sorted([*config.printers, *config.inputs], key=lambda dev: dev.index)


# --- posterm devices ---------------------------------------------------------------------------


def _by_id(directory: str) -> list[str]:
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        print(f"  {directory}: cannot list: {exc.strerror}")
        return []
    return [os.path.join(directory, name) for name in names[:LISTED_ENTRIES_MAX]]


def _input_verdict(path: str, config: DevicesConfig) -> str:
    for dev in config.inputs:
        if dev.source == path:
            return f"configured: {dev.name} ({_input_summary(dev)})"
    entry = driver_for("input", path)
    if entry is None:
        return "ignored: no driver takes it (not a keyboard device)"
    return f"{entry.name} would take it: {entry.takes}"


def _input_summary(dev: InputConfig) -> str:
    if dev.driver == "evdev":
        grab = "grab" if dev.grab else "no grab"
        return f"evdev, layout {dev.layout}, kind {dev.kind}, {grab}"
    if dev.driver == "serial" and dev.protocol is not None:
        p = dev.protocol
        return f"serial {p.baudrate} {p.bytesize}{p.parity}{p.stopbits}, framing {p.framing}"
    return "simulated, fed from a script or FIFO"


def cmd_devices(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"Input devices ({args.input_dir}):")
    entries = _by_id(args.input_dir)
    for path in entries:
        print(f"  {path}: {_input_verdict(path, config)}")
    if not entries:
        print("  none")
    print(f"Serial devices ({args.serial_dir}):")
    entries = _by_id(args.serial_dir)
    for path in entries:
        users = [d.name for d in config.inputs if d.source == path]
        users += [p.spec.name for p in config.printers if p.spec.serial_port == path]
        entry = driver_for("serial", path)
        verdict = (f"configured: {', '.join(users)}" if users
                   else f"{entry.name} would take it: {entry.takes}" if entry else "no driver")
        print(f"  {path}: {verdict}")
    if not entries:
        print("  none")
    print(f"Configured ({args.config}):")
    for dev in _by_index(config):
        if isinstance(dev, PrinterConfig):
            spec = dev.spec
            print(f"  {spec.name}: printer, {spec.describe()}, profile {spec.profile}")
        else:
            present = "present" if os.path.exists(dev.source) else "NOT PRESENT"
            print(f"  {dev.name}: {dev.role}, {_input_summary(dev)}, {dev.source} ({present})")
    if not config.printers and not config.inputs:
        print("  none")
    return EXIT_OK


# --- posterm doctor ----------------------------------------------------------------------------


def _printer_verdict(status: PrinterStatus) -> tuple[bool, str]:
    if not status.online:
        detail = status.detail or "offline"
        return False, f"OFFLINE — {detail}; check power, cable, cover and paper"
    if status.paper == "out":
        return False, "PAPER OUT — load a new roll"
    if status.paper == "near_end":
        return True, "OK, paper NEAR END — replace the roll soon"
    if status.paper == "ok":
        return True, "OK, paper OK"
    return True, f"OK ({status.detail or 'paper status not reported'})"


def _queued(printer: PrinterConfig) -> int:
    try:
        return sum(1 for n in os.listdir(printer.spool) if n.endswith(".bin"))
    except OSError:
        return 0


def _check_printer(printer: PrinterConfig) -> tuple[bool, str]:
    ok, verdict = _printer_verdict(query_status(printer.spec))
    queued = _queued(printer)
    if queued:
        verdict += f"; {queued} receipt(s) waiting in the reprint queue"
    return ok, verdict


def _check_evdev(dev: InputConfig) -> tuple[bool, str]:
    if not os.path.exists(dev.source):
        return False, "MISSING — check the USB cable and the udev rule"
    try:
        from evdev import InputDevice

        device = InputDevice(dev.source)
    except PermissionError:
        return False, "NO ACCESS — install the udev rule (docs/drivers.md) or join group 'input'"
    except OSError as exc:
        return False, f"NOT AN INPUT DEVICE — {exc.strerror or exc}"
    try:
        return True, f"OK, {device.name!r}, {_input_summary(dev)}"
    finally:
        device.close()


def _check_serial(dev: InputConfig) -> tuple[bool, str]:
    import serial

    from drivers.serial_input import open_serial

    if not os.path.exists(dev.source):
        return False, "MISSING — check the cable (and /dev/serial/by-id)"
    assert dev.protocol is not None
    try:
        port = open_serial(dev.source, dev.protocol)
    except serial.SerialException as exc:
        if "exclusively lock" in str(exc):
            return False, "BUSY — another program has the port open (stop it, or ModemManager)"
        if isinstance(exc.__context__, PermissionError) or "Permission denied" in str(exc):
            return False, "NO ACCESS — add the user to 'dialout'"
        return False, f"ERROR — {exc}"
    port.close()
    return True, f"OK, {_input_summary(dev)}"


def _check_input(dev: InputConfig) -> tuple[bool, str]:
    if dev.driver == "evdev":
        return _check_evdev(dev)
    if dev.driver == "serial":
        return _check_serial(dev)
    path = Path(dev.source)
    if not path.exists():
        return False, f"MISSING — the script or FIFO {path} does not exist"
    if not os.access(path, os.R_OK):
        return False, f"NO ACCESS — cannot read {path}"
    return True, "OK, simulated " + ("FIFO" if path.is_fifo() else "script")


def cmd_doctor(args: argparse.Namespace) -> int:
    from terminal.commands.service_checks import check_service

    config = load_config(args.config)
    failed = 0
    services = (*config.payment, *config.fiscal)  # the payment terminal and the fiscal registrar
    for dev in sorted((*_by_index(config), *services), key=lambda d: d.index):
        if isinstance(dev, PrinterConfig):
            ok, verdict = _check_printer(dev)
            print(f"{dev.spec.name} ({dev.spec.describe()}): {verdict}")
        elif isinstance(dev, ServiceConfig):
            ok, verdict = check_service(dev)
            print(f"{dev.name} ({dev.describe()}): {verdict}")
        else:
            ok, verdict = _check_input(dev)
            print(f"{dev.name} ({dev.driver} {dev.source}): {verdict}")
        failed += not ok
    total = len(config.printers) + len(config.inputs) + len(config.payment) + len(config.fiscal)
    if not total:
        print("no devices configured")
    print(f"verdict: {total - failed} of {total} devices OK" + (
        f", {failed} need attention" if failed else ""))
    return EXIT_FAILED if failed else EXIT_OK


# --- posterm test-print ------------------------------------------------------------------------


def test_receipt(now: dt.datetime) -> Receipt:
    return Receipt(
        receipt_id=f"TEST-{now:%Y%m%d%H%M%S}", time=now.isoformat(timespec="seconds"),
        store_name="posterm test print", kind="test", store_address="Printer check",
        lines=(ReceiptLine("Plain ASCII item", 2000, 1250, 2500),
               ReceiptLine("Äpfel / Яблоки (weighed)", 350, 19900, 6965, 500)),
        subtotal=9465, discount=500, total=8965, to_pay=8965, payment_method="test",
        card_number="7777123456789", points_before=1000, points_earned=89, points_after=1089,
        messages=("If you can read this, the printer works.",), gifts=(Gift("Nothing", 1),),
    )


def cmd_test_print(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    printers = [p for p in config.printers if args.printer in (None, p.index)]
    if not printers:
        at = f" at device index {args.printer}" if args.printer is not None else ""
        raise DeviceError(f"{args.config}: no printer configured{at}")
    receipt = test_receipt(dt.datetime.now().astimezone())
    failed = 0
    for printer in printers:
        # A private spool: a test receipt that did not print must not come out hours later.
        with tempfile.TemporaryDirectory(prefix="posterm-test-print-") as spool_dir:
            statuses: list[Event] = []
            driver = ReceiptPrinter(printer.spec, Spool(spool_dir), emit=statuses.append)
            driver.submit(receipt)
            printed = driver.drain()
            if args.preview:
                print(driver.render(receipt)[1], end="")
        where = f"{printer.spec.name} ({printer.spec.describe()})"
        if printed:
            print(f"{where}: test receipt {receipt.receipt_id} printed")
        else:
            failed += 1
            last = statuses[-1] if statuses else None
            reason = _printer_verdict(last)[1] if isinstance(last, PrinterStatus) else "not printed"
            print(f"{where}: NOT PRINTED — {reason}")
    return EXIT_FAILED if failed else EXIT_OK
