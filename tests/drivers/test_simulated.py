import asyncio
import os
import threading

from drivers.codes import CardBarcode, CodeRules
from drivers.events import CardSwipe, DeviceState, PrinterStatus, RejectedInput, ScanEvent
from drivers.printer import receipt_dir_printer
from drivers.receipt import Receipt
from drivers.simulated import SimulatedInput

RULES = CodeRules(cards=(CardBarcode("77", 13, "none"),))


def run(source, until, sleep=None):
    seen = []

    async def main():
        stop = asyncio.Event()

        def emit(event):
            seen.append(event)
            if until(seen):
                stop.set()

        async def no_sleep(delay):
            sleeps.append(delay)
            await asyncio.sleep(0)

        device = SimulatedInput("scanner 9", source, RULES, sleep=sleep or no_sleep)
        await asyncio.wait_for(device.run(emit, stop), timeout=5)

    sleeps = []
    asyncio.run(main())
    return seen, sleeps


def test_script_commands(tmp_path):
    script = tmp_path / "demo.txt"
    script.write_text(
        "# a demo\n"
        "scan 4006381333931\n"
        "wait 0.5\n"
        "swipe ;7777123456789=2512?\n"
        "keys de ZY-1\n"
        "swipe %E?\n"
        "wait 999\n"
        "fly away\n"
        "\n"
        "scan 7712345678901\n"
    )
    seen, sleeps = run(script, lambda s: len(s) == 8)
    where = str(script)
    assert seen == [
        DeviceState("scanner 9", "attached", where),
        ScanEvent("scanner 9", "4006381333931", "ean13"),
        CardSwipe("scanner 9", "7777123456789", "track2"),
        ScanEvent("scanner 9", "ZY-1", "text"),
        RejectedInput("scanner 9", "bad read on track 1 - swipe again", "%E?"),
        RejectedInput("scanner 9", f"{where}:7: wait must be 0..60.0 seconds", "wait 999"),
        RejectedInput("scanner 9", f"{where}:8: unknown command 'fly'", "fly away"),
        CardSwipe("scanner 9", "7712345678901", "barcode"),
    ]
    assert sleeps == [0.5]


def test_missing_script_is_an_error_state(tmp_path):
    seen, _ = run(tmp_path / "nope.txt", lambda s: True)
    missing = f"{tmp_path / 'nope.txt'}: No such file or directory"
    assert seen == [DeviceState("scanner 9", "error", missing)]


def test_fifo_feed(tmp_path):
    fifo = tmp_path / "scanner.fifo"
    os.mkfifo(fifo)

    def writer():
        # two writers in turn, as two `echo … > fifo` commands would be
        for text in ("scan 96385074\n", "swipe ;7777123456789?\nsca"):
            with open(fifo, "w") as handle:
                handle.write(text)

    thread = threading.Thread(target=writer)
    thread.start()
    seen, _ = run(fifo, lambda s: len(s) == 3, sleep=asyncio.sleep)
    thread.join(timeout=5)
    assert seen == [
        DeviceState("scanner 9", "attached", str(fifo)),
        ScanEvent("scanner 9", "96385074", "ean8"),
        CardSwipe("scanner 9", "7777123456789", "track2"),
    ]


def test_simulated_printer_files_and_scripted_status(tmp_path):
    printer = receipt_dir_printer(tmp_path, profile="TM-T88V")
    seen = []
    printer.emit = seen.append
    receipt = Receipt("R-7", "2026-11-23T12:00:00", "Shop", total=100, to_pay=100)
    data, text = printer.render(receipt)

    (tmp_path / "paper").write_text("out\n")
    printer.submit(receipt)
    assert printer.drain() == 0 and seen[-1] == PrinterStatus("printer", True, "out")
    assert not (tmp_path / "receipts.bin").exists()

    (tmp_path / "paper").write_text("near_end")
    assert printer.drain() == 1 and seen[-1] == PrinterStatus("printer", True, "near_end")
    assert (tmp_path / "receipts.bin").read_bytes() == data
    assert (tmp_path / "receipts.txt").read_text() == text

    (tmp_path / "unplugged").touch()
    printer.submit(receipt)
    assert printer.drain() == 0 and "unplugged" in seen[-1].detail
    (tmp_path / "unplugged").unlink()
    (tmp_path / "offline").touch()
    assert printer.status().online is False
    (tmp_path / "offline").unlink()
    assert printer.drain() == 1
    assert (tmp_path / "receipts.bin").read_bytes() == data + data
