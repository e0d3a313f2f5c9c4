import asyncio
import os
import pty

import pytest
import serial
from hypothesis import given
from hypothesis import strategies as st

from drivers.backoff import Backoff
from drivers.codes import CodeRules
from drivers.events import CardSwipe, DeviceState, RejectedInput, ScanEvent
from drivers.serial_input import FrameDecoder, SerialInput, SerialProtocol, open_serial

RULES = CodeRules()


def test_line_framings():
    d = FrameDecoder("crlf")
    assert d.feed(b";7777123456789=25", 0) == []
    assert d.feed(b"12?\r\n4006381333931\r\n\r\n", 10) == [";7777123456789=2512?", "4006381333931"]
    assert FrameDecoder("cr").feed(b"abc\rdef\r", 0) == ["abc", "def"]
    assert FrameDecoder("lf").feed(b"abc\n", 0) == ["abc"]


def test_stx_etx_with_junk_restart_and_lrc():
    d = FrameDecoder("stx_etx")
    out = d.feed(b"zz\x02abc\x03\r\n\x02de\x02fg\x03", 0)
    assert out == [
        RejectedInput("", "2 bytes outside STX…ETX dropped", ""),
        "abc",
        RejectedInput("", "frame restarted before ETX", "de"),
        "fg",
    ]
    lrc = 0
    for b in b"12345\x03":
        lrc ^= b
    d = FrameDecoder("stx_etx", lrc=True)
    assert d.feed(b"\x0212345\x03" + bytes([lrc]), 0) == ["12345"]
    assert d.feed(b"\x0212345\x03" + bytes([lrc ^ 1]), 0) == [
        RejectedInput("", "frame LRC check byte is wrong", "12345")
    ]


def test_gap_and_length_limits():
    d = FrameDecoder("crlf", gap_ms=500)
    assert d.feed(b"4006", 0) == []
    assert d.feed(b"381333931\r\n", 900) == [
        RejectedInput("", "partial frame dropped after a gap over 500 ms", "4006"),
        "381333931",
    ]
    d = FrameDecoder("cr", frame_bytes_max=8)
    assert d.feed(b"123456789012\r1\r", 0) == [
        RejectedInput("", "frame longer than 8 bytes", "12345678"),
        "1",
    ]


@given(st.lists(st.binary(max_size=64), max_size=20), st.sampled_from(["crlf", "stx_etx"]))
def test_decoder_never_raises_and_frames_are_bounded(chunks, framing):
    d = FrameDecoder(framing, frame_bytes_max=32)
    for i, chunk in enumerate(chunks):
        for item in d.feed(chunk, i * 10):
            assert isinstance(item, str | RejectedInput)
            if isinstance(item, str):
                assert len(item) <= 32


@pytest.fixture
def pty_port(tmp_path):
    """A pty pair behind a by-id-like symlink; `replug()` points the link at a fresh pty."""

    class Port:
        def __init__(self):
            self.link = tmp_path / "usb-Reader-if00"
            self.masters = []
            self.replug()

        def replug(self):
            master, slave = pty.openpty()
            name = os.ttyname(slave)
            os.close(slave)  # pyserial opens the slave itself, by path
            if self.link.is_symlink():
                self.link.unlink()
            self.link.symlink_to(name)
            self.masters.append(master)
            return master

        def unplug(self):
            os.close(self.masters.pop())

    port = Port()
    yield port
    for fd in port.masters:
        os.close(fd)


def test_exclusive_open(pty_port):
    proto = SerialProtocol()
    first = open_serial(str(pty_port.link), proto)
    try:
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            open_serial(str(pty_port.link), proto)
    finally:
        first.close()


def test_reads_frames_and_reconnects_after_unplug(pty_port):
    seen, sleeps = [], []

    async def main():
        stop = asyncio.Event()
        attaches = 0

        def emit(event):
            nonlocal attaches
            seen.append(event)
            if isinstance(event, DeviceState) and event.state == "attached":
                attaches += 1
                os.write(pty_port.masters[-1], b";7777123456789=2512?\r\n%E?\r\n")
            if isinstance(event, RejectedInput):
                if attaches == 1:
                    pty_port.unplug()  # the reader's USB cable is pulled
                else:
                    stop.set()
            if isinstance(event, DeviceState) and event.state == "detached" and attaches == 1:
                pty_port.link.unlink()  # gone from /dev/serial/by-id until re-plugged

        async def fake_sleep(delay):
            sleeps.append(delay)
            if len(sleeps) == 2:
                pty_port.replug()
            await asyncio.sleep(0)

        reader = SerialInput(
            "card_reader 1", str(pty_port.link), SerialProtocol(9600, framing="crlf"), RULES,
            backoff=Backoff(100, 150, lambda: 0.0), sleep=fake_sleep,
        )
        await asyncio.wait_for(reader.run(emit, stop), timeout=5)

    asyncio.run(main())
    link = str(pty_port.link)
    swipe = CardSwipe("card_reader 1", "7777123456789", "track2")
    bad = RejectedInput("card_reader 1", "bad read on track 1 - swipe again", "%E?")
    assert seen[:3] == [DeviceState("card_reader 1", "attached", link), swipe, bad]
    assert seen[3].state == "detached" and "reconnecting" in seen[3].detail
    # retries while the link is missing report nothing new: the state is still "detached"
    assert seen[4:] == [DeviceState("card_reader 1", "attached", link), swipe, bad]
    assert sleeps == [0.05, 0.075]  # jitter 50 %, doubling, capped at 150 ms


def test_scanner_frames_become_scans(pty_port):
    seen = []

    async def main():
        stop = asyncio.Event()

        def emit(event):
            seen.append(event)
            if isinstance(event, DeviceState):
                os.write(pty_port.masters[-1], b"\x024006381333931\x03")
            else:
                stop.set()

        reader = SerialInput("scanner 2", str(pty_port.link), SerialProtocol(framing="stx_etx"),
                             RULES)
        await asyncio.wait_for(reader.run(emit, stop), timeout=5)

    asyncio.run(main())
    assert seen[1] == ScanEvent("scanner 2", "4006381333931", "ean13")


def test_missing_port_is_reported_once_with_backoff(tmp_path):
    seen, sleeps = [], []

    async def main():
        stop = asyncio.Event()

        async def fake_sleep(delay):
            sleeps.append(delay)
            if len(sleeps) == 4:
                stop.set()
            await asyncio.sleep(0)

        reader = SerialInput("card_reader 1", str(tmp_path / "ttyACM9"), SerialProtocol(), RULES,
                             backoff=Backoff(100, 300, lambda: 1.0), sleep=fake_sleep)
        await asyncio.wait_for(reader.run(seen.append, stop), timeout=5)

    asyncio.run(main())
    assert seen == [DeviceState("card_reader 1", "detached",
                                f"{tmp_path / 'ttyACM9'} is not present - check the cable")]
    assert sleeps == [0.1, 0.2, 0.3, 0.3]
