import dataclasses
import os
import socket
import threading
from decimal import Decimal

import escpos.exceptions
import pytest
from escpos.constants import RT_STATUS_ONLINE, RT_STATUS_PAPER
from escpos.printer import Dummy

from drivers.errors import ReceiptError, SpoolError
from drivers.events import PrinterStatus
from drivers.printer import PrinterSpec, ReceiptPrinter
from drivers.receipt import (
    Gift,
    Receipt,
    ReceiptLine,
    ShiftReport,
    format_minor,
    format_qty,
    mask_card,
)
from drivers.render import document_ops, preview, receipt_ops
from drivers.spool import Spool

SMALL = Receipt(
    "R-1", "2026-11-23T12:00:00+03:00", "Shop",
    lines=(ReceiptLine("Milk", 2000, 8990, 17980, 1000),),
    subtotal=17980, discount=1000, total=16980, to_pay=16980, payment_method="cash",
)

ONLINE, OFFLINE = b"\x12", b"\x1a"
PAPER_OK, PAPER_LOW, PAPER_OUT = b"\x12", b"\x1e", b"\x72"


class ScriptedDummy(Dummy):
    """A Dummy whose status replies come from a script; `fail_raw` makes job writes fail."""

    def __init__(self, replies, fail_raw=False, **kw):
        super().__init__(**kw)
        self.replies = list(replies)
        self.fail_raw = fail_raw
        self.queries = []

    def _raw(self, msg):
        if msg in (RT_STATUS_ONLINE, RT_STATUS_PAPER):
            self.queries.append(msg)
            return
        if self.fail_raw:
            raise OSError(5, "Input/output error")
        super()._raw(msg)

    def _read(self):
        return self.replies.pop(0) if self.replies else b""


def spec(**kw):
    return PrinterSpec("printer 0", "network", profile="TM-T88V", host="127.0.0.1", **kw)


def test_formatting_without_floats():
    assert format_minor(123456) == "1234.56"
    assert format_minor(-5) == "-0.05"
    assert format_minor(0) == "0.00"
    assert format_qty(2000) == "2"
    assert format_qty(350) == "0.350"
    assert format_qty(1005) == "1.005"
    assert mask_card("7777123456789") == "*********6789"
    assert mask_card("123") == "***"


def test_receipt_bytes_are_exactly_the_escpos_calls(tmp_path):
    printer = ReceiptPrinter(spec(), Spool(tmp_path))
    data, text = printer.render(SMALL)
    want = Dummy(profile="TM-T88V")
    want.hw("INIT")
    want.set(align="center", bold=True, double_height=True)
    want.textln("Shop")
    want.set(align="center", bold=False, normal_textsize=True)
    want.textln("Receipt R-1")
    want.textln("2026-11-23T12:00:00+03:00")
    want.set(align="left")
    want.textln("-" * 42)
    want.textln("Milk")
    want.textln("  2 x 89.90" + " " * 24 + " 179.80")
    want.textln("  discount" + " " * 25 + " -10.00")
    want.textln("-" * 42)
    want.textln("Subtotal" + " " * 27 + " 179.80")
    want.textln("Discount" + " " * 27 + " -10.00")
    want.set(bold=True)
    want.textln("Total" + " " * 30 + " 169.80")
    want.set(bold=False)
    want.set(bold=True)
    want.textln("TO PAY" + " " * 29 + " 169.80")
    want.set(bold=False)
    want.textln("Payment" + " " * 30 + " cash")
    want.set(align="center")
    want.qr("R-1", native=True, size=6)
    want.textln("R-1")
    want.set(align="left")
    want.cut()
    assert data == want.output and data.startswith(b"\x1b@")  # ESC @ opens every job
    # a few bytes pinned literally: native QR model 2 store + print, then a full cut
    assert b"\x1d(k\x06\x001P0R-1\x1d(k\x03\x001Q0" in data
    assert data.endswith(b"\x1dV\x00") or data.endswith(b"\n\n\n\n\n\n\x1dV\x00")
    assert "Milk" in text and "TO PAY" in text and "[QR R-1]" in text


def test_capability_profiles_decide_qr_code128_or_text(tmp_path):
    # TH230 has hardware Code128 but no QR; "simple" has neither: the id is printed as text
    th230 = ReceiptPrinter(PrinterSpec("p", "file", profile="TH230"), Spool(tmp_path / "a"))
    data, _ = th230.render(SMALL)
    want = Dummy(profile="TH230")
    want.barcode("{BR-1", "CODE128", function_type="B")
    assert want.output in data and b"\x1dkI\x05{BR-1" in data and b"\x1d(k" not in data
    simple = ReceiptPrinter(PrinterSpec("p", "file", profile="simple"), Spool(tmp_path / "b"))
    data, _ = simple.render(SMALL)
    assert b"\x1d(k" not in data and b"\x1dk" not in data and data.count(b"R-1\n") == 2


def test_full_receipt_preview_from_quote():
    quote = {
        "subtotal": 27945, "discount": 1000, "total": 26945,
        "redeem": {"points": 100, "amount": 100, "max_points": 500}, "to_pay": 26845,
        "accrual": {"points": 268, "available_from": "2026-12-07", "expires_at": "2027-12-07"},
        "lines": [
            {"sku": "milk", "qty_milli": 2000, "price": 8990, "amount": 17980, "discount": 1000,
             "redeem_amount": 60, "paid": 16920, "rules": ["r1"]},
            {"sku": "apples", "qty_milli": 500, "price": Decimal(19930), "amount": 9965,
             "discount": 0, "redeem_amount": 40, "paid": 9925, "rules": []},
        ],
        "messages": [{"rule": "m1", "text": "Thank you! Double points on Fridays."}],
        "gifts": [{"rule": "g1", "sku": "bag", "name": "Bag", "qty": 1}],
    }
    receipt = Receipt.from_quote(
        quote, {"milk": "Milk 3.2% 1 l"}, receipt_id="T1-000042", time="2026-11-23T12:00:00",
        store_name="Corner Shop", terminal_id="T1", payment_method="card",
        card_number="7777123456789", points_before=500, points_expiring=50,
        points_expiring_date="2026-12-31",
    )
    assert receipt.points_after == 500 - 100 + 268
    text = preview(receipt_ops(receipt, 32), 32)
    assert text.splitlines() == [
        "          Corner Shop",
        " Terminal T1  Receipt T1-000042",
        "      2026-11-23T12:00:00",
        "-" * 32,
        "Milk 3.2% 1 l",
        "  2 x 89.90               179.80",
        "  discount                -10.00",
        "apples",
        "  0.500 x 199.30           99.65",
        "-" * 32,
        "Subtotal                  279.45",
        "Discount                  -10.00",
        "Total                     269.45",
        "Paid with 100 points       -1.00",
        "TO PAY                    268.45",
        "Payment                     card",
        "-" * 32,
        "Card               *********6789",
        "Points before                500",
        "Points paid                 -100",
        "Points earned               +268",
        "Points after                 668",
        "Earned points usable from",
        "2026-12-07",
        "50 points expire on 2026-12-31",
        "-" * 32,
        "Thank you! Double points on",
        "Fridays.",
        "Gift: Bag x 1",
        "         [QR T1-000042]",
        "           T1-000042",
        "=" * 32,
    ]
    assert "7777123456789" not in text


def test_bad_receipts_are_refused():
    with pytest.raises(ReceiptError, match="receipt_id"):
        Receipt("", "t", "s")
    with pytest.raises(ReceiptError, match="integer"):
        Receipt("R", "t", "s", total=1.5)
    with pytest.raises(ReceiptError, match="quote is incomplete"):
        Receipt.from_quote({"lines": []}, {}, receipt_id="R", time="t", store_name="s")
    with pytest.raises(ReceiptError, match="quote is incomplete"):
        Receipt.from_quote({"subtotal": Decimal("1.5"), "total": 1, "to_pay": 1}, {},
                           receipt_id="R", time="t", store_name="s")
    with pytest.raises(ReceiptError, match="more than 20 messages"):
        Receipt("R", "t", "s", messages=("x",) * 15, gifts=(Gift("g", 1),) * 6)


@pytest.mark.parametrize(
    ("replies", "want"),
    [
        ([ONLINE, PAPER_OK], PrinterStatus("printer 0", True, "ok")),
        ([ONLINE, PAPER_LOW], PrinterStatus("printer 0", True, "near_end")),
        ([ONLINE, PAPER_OUT], PrinterStatus("printer 0", True, "out")),
        ([OFFLINE], PrinterStatus("printer 0", False, "unknown",
                                  "offline - cover open, error or paper out")),
        ([], PrinterStatus("printer 0", False, "unknown",
                           "offline - cover open, error or paper out")),
    ],
)
def test_status_from_scripted_replies(tmp_path, replies, want):
    dummy = ScriptedDummy(replies, profile="TM-T88V")
    printer = ReceiptPrinter(spec(), Spool(tmp_path), factory=lambda: dummy)
    assert printer.status() == want


def test_reprint_queue_survives_a_failing_printer_and_a_restart(tmp_path):
    seen = []
    offline = ScriptedDummy([OFFLINE], profile="TM-T88V")
    first = ReceiptPrinter(spec(), Spool(tmp_path / "spool"), lambda: offline, seen.append)
    job = first.submit(SMALL)
    assert first.drain() == 0 and offline.output == b""
    assert seen == [PrinterStatus("printer 0", False, "unknown",
                                  "offline - cover open, error or paper out")]
    assert job.path.exists()

    out = ScriptedDummy([ONLINE, PAPER_OUT], profile="TM-T88V")
    second = ReceiptPrinter(spec(), Spool(tmp_path / "spool"), lambda: out, seen.append)
    assert second.drain() == 0 and seen[-1] == PrinterStatus("printer 0", True, "out")

    broken = ScriptedDummy([ONLINE, PAPER_OK], fail_raw=True, profile="TM-T88V")
    third = ReceiptPrinter(spec(), Spool(tmp_path / "spool"), lambda: broken, seen.append)
    assert third.drain() == 0 and seen[-1].detail == "[Errno 5] Input/output error"

    def unreachable():
        raise escpos.exceptions.DeviceNotFoundError("Could not open socket for 127.0.0.1")

    fourth = ReceiptPrinter(spec(), Spool(tmp_path / "spool"), unreachable, seen.append)
    assert fourth.drain() == 0 and "Could not open socket" in seen[-1].detail

    # after a "restart" (new objects on the same directory) the printer recovers
    second_receipt = Receipt("R-2", "t", "Shop", total=1, to_pay=1)
    ok = ScriptedDummy([ONLINE, PAPER_OK, ONLINE, PAPER_OK], profile="TM-T88V")
    fifth = ReceiptPrinter(spec(), Spool(tmp_path / "spool"), lambda: ok, seen.append)
    fifth.spool.put("R-2", fifth.render(second_receipt)[0])
    assert [j.job_id for j in fifth.spool.jobs()] == ["R-1", "R-2"]  # oldest first
    assert fifth.drain() == 2
    assert ok.output == fifth.render(SMALL)[0] + fifth.render(second_receipt)[0]
    assert fifth.spool.jobs() == [] and os.listdir(tmp_path / "spool") == []
    assert seen[-1] == PrinterStatus("printer 0", True, "ok")


def test_spool_limits_and_leftovers(tmp_path):
    (tmp_path / ".tmp-0000000001.R.bin").write_bytes(b"half")
    spool = Spool(tmp_path, jobs_max=2, bytes_max=10)
    assert not list(tmp_path.glob(".tmp-*"))
    spool.put("a/../b", b"1234")
    assert spool.jobs()[0].job_id == "a____b"
    with pytest.raises(SpoolError, match="exceed 10 bytes"):
        spool.put("c", b"1234567")
    spool.put("c", b"123")
    with pytest.raises(SpoolError, match="holds 2 jobs"):
        spool.put("d", b"1")
    with pytest.raises(SpoolError, match="empty"):
        spool.put("e", b"")
    assert len(spool.jobs()) == 2


class EscposServer:
    """A loopback TCP 9100 printer: answers DLE EOT status queries, records everything else."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while chunk := conn.recv(65536):
                    buf += chunk
                    while True:
                        at = buf.find(b"\x10\x04")
                        if at < 0 or len(buf) < at + 3:
                            break
                        self.received += buf[:at]
                        conn.sendall(b"\x12")
                        buf = buf[at + 3 :]
                    if b"\x10" not in buf[-2:]:
                        self.received += buf
                        buf = b""
                self.received += buf

    def close(self):
        self.sock.close()
        self.thread.join(timeout=2)


def test_network_printer_over_loopback(tmp_path):
    server = EscposServer()
    try:
        seen = []
        printer = ReceiptPrinter(
            PrinterSpec("printer 0", "network", "TM-T88V", host="127.0.0.1", port=server.port),
            Spool(tmp_path), emit=seen.append,
        )
        assert printer.status() == PrinterStatus("printer 0", True, "ok")
        printer.submit(SMALL)
        assert printer.drain() == 1
        data, _ = printer.render(SMALL)
        for _ in range(100):
            if len(server.received) >= len(data):
                break
            threading.Event().wait(0.01)
        assert bytes(server.received) == data
    finally:
        server.close()


def test_network_printer_down_keeps_the_job(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    seen = []
    printer = ReceiptPrinter(
        PrinterSpec("printer 0", "network", "TM-T88V", host="127.0.0.1", port=port, timeout_s=1),
        Spool(tmp_path), emit=seen.append,
    )
    printer.submit(SMALL)
    assert printer.drain() == 0
    assert len(printer.spool.jobs()) == 1
    assert seen[0].online is False
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in seen[0].detail


def test_serial_printer_on_a_pty(tmp_path):
    import pty

    master, slave = pty.openpty()
    try:
        spec = PrinterSpec("printer 0", "serial", "TM-T88V", status=False,
                           serial_port=os.ttyname(slave), baudrate=19200, timeout_s=1)
        printer = ReceiptPrinter(spec, Spool(tmp_path))
        printer.submit(SMALL)
        assert printer.drain() == 1
        data, _ = printer.render(SMALL)
        got = b""
        while len(got) < len(data):
            got += os.read(master, 65536)
        assert got == data
    finally:
        os.close(master)
        os.close(slave)


def test_usb_printer_without_backend_or_device_is_offline_not_a_crash(tmp_path):
    status = ReceiptPrinter(
        PrinterSpec("printer 0", "usb", vendor=0x04B8, product=0x0202), Spool(tmp_path)
    ).status()
    assert status.online is False
    assert "libusb" in status.detail or "not found" in status.detail.lower()


def test_run_loop_prints_after_submit(tmp_path):
    import asyncio

    dummy = ScriptedDummy([ONLINE, PAPER_OK] * 4, profile="TM-T88V")
    printer = ReceiptPrinter(spec(), Spool(tmp_path), lambda: dummy)

    async def main():
        stop = asyncio.Event()
        task = asyncio.create_task(printer.run(stop, retry_s=5))
        await asyncio.sleep(0.05)
        printer.submit(SMALL)
        for _ in range(200):
            if not printer.spool.jobs():
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(main())
    assert dummy.output == printer.render(SMALL)[0]


def test_file_printer_appends_and_asks_no_status(tmp_path):
    from drivers.config import parse_devices

    out = tmp_path / "receipts.bin"
    out.write_bytes(b"old")
    (cfg,) = parse_devices([{"role": "printer", "driver": "file", "path": str(out),
                             "spool": str(tmp_path / "spool")}]).printers
    printer = ReceiptPrinter(cfg.spec, Spool(cfg.spool))
    printer.submit(SMALL)
    assert printer.drain() == 1
    assert out.read_bytes() == b"old" + printer.render(SMALL)[0]


def test_return_receipt_says_refund_not_to_pay():
    ret = Receipt(receipt_id="R-2", time="2026-11-23T12:05:00", kind="return", store_name="Corner Shop",
                  lines=(ReceiptLine("Milk", 1000, 8990, 8990),), subtotal=8990, total=8990,
                  to_pay=8990, payment_method="refund")
    lines = preview(receipt_ops(ret, 32), 32).splitlines()
    assert "RETURN" in (line.strip() for line in lines)
    assert "REFUND                     89.90" in lines
    assert not any(line.startswith("TO PAY") for line in lines)


Z_REPORT = {
    "shift": 7,
    "opened_at": "2026-11-23 08:00",
    "totals": {"sales": 2, "total": 25980, "discount": 1000, "redeemed_money": 500, "to_pay": 25480,
               "returns": 1, "returned_money": 8990, "accrued": 254, "redeemed": 50},
    "tenders": {"card": 16490, "cash": 8990},
}


def test_z_report_bytes_are_exactly_the_escpos_calls(tmp_path):
    printer = ReceiptPrinter(spec(), Spool(tmp_path))
    report = ShiftReport.from_ledger("Z", Z_REPORT, time="2026-11-23 20:00", store_name="Shop",
                                     terminal_id="T01")
    data, text = printer.render(report)

    def pair(left, right):
        return f"{left:<{41 - len(right)}} {right}"

    want = Dummy(profile="TM-T88V")
    want.hw("INIT")
    want.set(align="center", bold=True, double_height=True)
    want.textln("Shop")
    want.set(align="center", bold=False, normal_textsize=True)
    want.textln("Terminal T01")
    want.set(bold=True)
    want.textln("Z REPORT - SHIFT 7")
    want.set(bold=False)
    want.set(align="left")
    want.textln("-" * 42)
    want.textln(pair("Shift opened", "2026-11-23 08:00"))
    want.textln(pair("Closed", "2026-11-23 20:00"))
    want.textln("-" * 42)
    for left, right in [("Sales", "2"), ("Total", "259.80"), ("Discounts given", "10.00"),
                        ("Paid with points", "5.00")]:
        want.textln(pair(left, right))
    want.set(bold=True)
    want.textln(pair("Taken", "254.80"))
    want.set(bold=False)
    want.textln(pair("  card", "164.90"))
    want.textln(pair("  cash", "89.90"))
    want.textln(pair("Returns", "1"))
    want.textln(pair("Refunded", "-89.90"))
    want.set(bold=True)
    want.textln(pair("Net", "164.90"))
    want.set(bold=False)
    want.textln("-" * 42)
    want.textln(pair("Points earned", "254"))
    want.textln(pair("Points paid", "50"))
    want.set(align="center", bold=True)
    want.textln("SHIFT CLOSED")
    want.set(align="left", bold=False)
    want.cut()
    assert data == want.output
    assert b"Taken" + b" " * 31 + b"254.80\n" in data  # one line pinned literally (42 columns)
    assert report.receipt_id == "Z-7" and "Z REPORT - SHIFT 7" in text and "SHIFT CLOSED" in text
    job = printer.submit(report)
    assert job.job_id == "Z-7"


def test_x_report_of_a_first_shift_and_bad_reports():
    first = {**Z_REPORT, "shift": 1, "opened_at": None, "tenders": {}}
    x = ShiftReport.from_ledger("X", first, time="2026-11-23 12:00", store_name="Shop")
    text = preview(document_ops(x, 32), 32)
    assert "X REPORT - SHIFT 1" in text and "Printed" in text and "SHIFT CLOSED" not in text
    assert "Shift opened" + " " * 19 + "-" in text.splitlines()  # 32 columns
    with pytest.raises(ReceiptError, match="kind must be X or Z"):
        ShiftReport.from_ledger("Y", Z_REPORT, time="t", store_name="Shop")
    with pytest.raises(ReceiptError, match="incomplete"):
        ShiftReport.from_ledger("Z", {**Z_REPORT, "totals": {"sales": 1}}, time="t", store_name="Shop")
    with pytest.raises(ReceiptError, match="negative"):
        ShiftReport.from_ledger("Z", {**Z_REPORT, "totals": {**Z_REPORT["totals"], "sales": -1}},
                                time="t", store_name="Shop")
    with pytest.raises(ReceiptError, match="outside"):
        ShiftReport.from_ledger("Z", {**Z_REPORT, "shift": 0}, time="t", store_name="Shop")
    many = {f"m{i}": 1 for i in range(40)}
    with pytest.raises(ReceiptError, match="payment methods"):
        ShiftReport.from_ledger("Z", {**Z_REPORT, "tenders": many}, time="t", store_name="Shop")


TENDERED = Receipt(
    "R-7", "2026-11-23 12:00", "Shop", store_address="1 Main St", store_legal_name="Shop LLC",
    store_tax_id="7701234567", shift=3, cashier="Olga",
    lines=(ReceiptLine("Milk", 1000, 8990, 8990),), subtotal=8990, total=8990, to_pay=8990,
    payments=(("Cash", 8990), ("  Cash given", 10000)), change=1010, vat=((1000, 8990, 817),),
    open_drawer=True, copy=True,
)


@pytest.mark.parametrize("profile", ["TM-T88V", "simple"])
def test_tenders_vat_seller_copy_and_drawer_bytes_per_profile(tmp_path, profile):
    printer = ReceiptPrinter(PrinterSpec("p", "file", profile=profile), Spool(tmp_path))
    data, text = printer.render(TENDERED)
    cols = printer.columns

    def pair(left, right):
        return f"{left:<{cols - 1 - len(right)}} {right}"

    want = Dummy(profile=profile)
    want.hw("INIT")
    want.cashdraw(2)
    want.set(align="center", bold=True, double_height=True)
    want.textln("Shop")
    want.set(align="center", bold=False, normal_textsize=True)
    want.textln("Shop LLC")  # the seller block: legal name, address, tax id, under the store's name
    want.textln("1 Main St")
    want.textln("Tax ID 7701234567")
    want.textln("Receipt R-7")
    want.textln("Shift 3  Cashier Olga")
    want.textln("2026-11-23 12:00")
    want.set(bold=True)
    want.textln("COPY")
    want.set(bold=False)
    want.set(align="left")
    want.textln("-" * cols)
    want.textln("Milk")
    want.textln(pair("  1 x 89.90", "89.90"))
    want.textln("-" * cols)
    want.textln(pair("Subtotal", "89.90"))
    want.set(bold=True)
    want.textln(pair("Total", "89.90"))
    want.set(bold=False)
    want.set(bold=True)
    want.textln(pair("TO PAY", "89.90"))
    want.set(bold=False)
    want.textln(pair("Cash", "89.90"))
    want.textln(pair("  Cash given", "100.00"))
    want.textln(pair("Change", "10.10"))
    want.textln(pair("incl. VAT 10% of 89.90", "8.17"))
    want.set(align="center")
    if profile == "TM-T88V":
        want.qr("R-7", native=True, size=6)
    else:
        pass  # "simple" has neither QR nor Code128: the id is printed as text only
    want.textln("R-7")
    want.set(align="left")
    want.cut()
    assert data == want.output
    # pinned literally: ESC @, then the drawer kick on pin 2 (ESC p 0 50 50), before any text
    assert data.startswith(b"\x1b@\x1bp\x0022\x1b!")
    assert "COPY" in text and "Change" in text and "[DRAWER]" not in text
    assert [ln.strip() for ln in text.splitlines()[:8]] == [
        "Shop", "Shop LLC", "1 Main St", "Tax ID 7701234567", "Receipt R-7", "Shift 3  Cashier Olga",
        "2026-11-23 12:00", "COPY"]
    ru = printer.render(dataclasses.replace(TENDERED, language="ru", cashier="", checkout_by="Self-checkout",
                                            kind="return"))[1]
    assert [ln.strip() for ln in ru.splitlines()[3:9]] == [
        "ИНН 7701234567", "Чек R-7", "Смена 3  Касса самообслуживания", "2026-11-23 12:00", "ВОЗВРАТ", "КОПИЯ"]
    cashier_ru = printer.render(dataclasses.replace(TENDERED, language="ru"))[1]
    assert "Смена 3  Кассир Olga" in cashier_ru


@pytest.mark.parametrize(("profile", "want"), [
    ("TM-T88V", b"Caf\x82 \x1bt\x11\x8c\xa8\xe0 ? ? ?\n"),  # é in CP437, ESC t 17 = CP866 for Мир, no CJK or emoji
    ("simple", b"Caf\x82 ??? ? ? ?\n"),              # one code page only: the Cyrillic goes too
])
def test_characters_no_code_page_has_become_question_marks(tmp_path, profile, want):
    receipt = Receipt("R-8", "t", "Shop", lines=(ReceiptLine("Café Мир 中 😀 ☃", 1000, 1, 1),), total=1, to_pay=1)
    data, text = ReceiptPrinter(PrinterSpec("p", "file", profile=profile), Spool(tmp_path)).render(receipt)
    assert want in data
    assert "GB18030" not in text and b"\xd6\xd0" not in data  # 中 in GB18030: never sent
    assert "Café Мир 中 😀 ☃" in text  # the screen preview keeps what the catalog says


def test_z_report_prints_refunds_cash_moves_and_vat(tmp_path):
    from drivers.receipt import shift_extras

    ledger = {**Z_REPORT, "totals": {**Z_REPORT["totals"], "cash_in": 500000, "cash_out": 200000},
              "refunds": {"card": 8990},
              "vat": {"sales": [{"rate": 1000, "paid": 8990, "amount": 817},
                                {"rate": 2000, "paid": 16490, "amount": 2748}],
                      "returns": [{"rate": 1000, "money": 8990, "amount": 817}]}}
    import dataclasses

    report = dataclasses.replace(ShiftReport.from_ledger("Z", ledger, time="t", store_name="Shop"),
                                 **shift_extras(ledger))
    lines = preview(document_ops(report, 32), 32).splitlines()
    start = lines.index("VAT in sales")
    assert lines[start:start + 3] == ["VAT in sales", "  10% of 89.90              8.17",
                                      "  20% of 164.90            27.48"]
    assert "  card                    -89.90" in lines and "VAT in returns" in lines
    assert "Cash in                  5000.00" in lines and "Cash out                -2000.00" in lines
    data, _ = ReceiptPrinter(spec(), Spool(tmp_path)).render(report)
    assert data.startswith(b"\x1b@") and b"Cash in" in data
    with pytest.raises(ReceiptError, match="incomplete"):
        shift_extras({"totals": {"cash_in": "x"}})


def test_a_russian_receipt_prints_cyrillic_through_an_escpos_code_page(tmp_path):
    import dataclasses

    printer = ReceiptPrinter(spec(), Spool(tmp_path))
    ru = dataclasses.replace(SMALL, language="ru", store_name="Магазин",
                             lines=(ReceiptLine("Молоко", 2000, 8990, 17980, 1000),))
    data, text = printer.render(ru)
    want = Dummy(profile="TM-T88V")
    want.hw("INIT")
    want.set(align="center", bold=True, double_height=True)
    want.textln("Магазин")
    want.set(align="center", bold=False, normal_textsize=True)
    want.textln("Чек R-1")
    want.textln("2026-11-23T12:00:00+03:00")
    want.set(align="left")
    want.textln("-" * 42)
    want.textln("Молоко")
    want.textln("  2 x 89.90" + " " * 24 + " 179.80")
    want.textln("  скидка" + " " * 27 + " -10.00")
    want.textln("-" * 42)
    want.textln("Сумма" + " " * 30 + " 179.80")
    want.textln("Скидка" + " " * 29 + " -10.00")
    want.set(bold=True)
    want.textln("Итого" + " " * 30 + " 169.80")
    want.set(bold=False)
    want.set(bold=True)
    want.textln("К ОПЛАТЕ" + " " * 27 + " 169.80")
    want.set(bold=False)
    want.textln("Оплата" + " " * 27 + " наличные")
    want.set(align="center")
    want.qr("R-1", native=True, size=6)
    want.textln("R-1")
    want.set(align="left")
    want.cut()
    assert data == want.output
    # pinned literally: ESC t 17 selects CP866 once, then the words are CP866 bytes
    assert data.count(b"\x1bt\x11") == 1
    assert b"\x1bt\x11\x8c\xa0\xa3\xa0\xa7\xa8\xad\n" in data  # "Магазин"
    assert "Итого".encode("cp866") + b" " * 30 + b" 169.80\n" in data
    assert "К ОПЛАТЕ" in text and "Молоко" in text
    assert "TO PAY" not in text and "Subtotal" not in text


def test_receipt_language_is_checked():
    import dataclasses

    with pytest.raises(ReceiptError, match="language"):
        dataclasses.replace(SMALL, language="de")


def test_issued_coupons_print_as_code128_barcodes_with_their_last_day(tmp_path):
    # spec §13: each code the sale issued, as the same python-escpos barcode call as a receipt id
    code = "CP-T01-1-K7QD3"
    receipt = Receipt(**{**{f: getattr(SMALL, f) for f in ("receipt_id", "time", "store_name", "lines", "subtotal",
                                                            "discount", "total", "to_pay", "payment_method")}},
                      coupons=((code, "2026-05-10"),))
    printer = ReceiptPrinter(spec(), Spool(tmp_path / "a"))
    data, text = printer.render(receipt)
    columns = printer.columns
    want = Dummy(profile="TM-T88V")
    want.textln("-" * columns)
    want.set(align="center", bold=True)
    want.textln("COUPON")
    want.set(bold=False)
    want.textln("Valid until 2026-05-10")
    want.barcode("{B" + code, "CODE128", function_type="B")
    want.textln(code)
    want.set(align="left")
    block = want.output.removeprefix(b"\x1bt\x00")  # a fresh Dummy selects its code page first
    assert block in data and data.index(block) < data.index(b"\x1d(k")  # before the receipt's own QR
    # GS k 73 (CODE128, function B), length, code set B, then the code itself
    assert b"\x1dkI" + bytes([len(code) + 2]) + b"{B" + code.encode() in data
    assert "COUPON" in text and "Valid until 2026-05-10" in text and code in text
    simple = ReceiptPrinter(PrinterSpec("p", "file", profile="simple"), Spool(tmp_path / "b"))
    data, _ = simple.render(receipt)
    assert b"\x1dk" not in data and code.encode() + b"\n" in data  # no barcode support: the code as text
    with pytest.raises(ReceiptError, match="coupon code"):
        Receipt("R-2", "t", "Shop", coupons=(("bad\ncode", "2026-05-10"),))
