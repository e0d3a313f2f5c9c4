import asyncio
import errno
import os

import pytest
from evdev import InputEvent, ecodes
from hypothesis import given
from hypothesis import strategies as st

from drivers import keyboard
from drivers.backoff import Backoff
from drivers.codes import CardBarcode, CodeRules
from drivers.events import CardSwipe, DeviceState, RejectedInput, ScanEvent
from drivers.keyboard import (
    EVENT_SIZE,
    EvdevInput,
    EvdevSettings,
    KeyDecoder,
    events_for_text,
    pack_event,
    unpack_events,
)
from drivers.keymaps import layout

RULES = CodeRules(cards=(CardBarcode("77", 13, "none"),))


def decode(events, lay="us", **kw):
    decoder = KeyDecoder("kbd", layout(lay), RULES, **kw)
    return [r for r in map(decoder.feed, events) if r is not None]


def press(code, t_us, value=1):
    return InputEvent(t_us // 1_000_000, t_us % 1_000_000, ecodes.EV_KEY, code, value)


@pytest.mark.parametrize("lay", ["us", "de", "fr", "ru"])
def test_ean13_on_every_layout(lay):
    assert decode(events_for_text("4006381333931", lay), lay) == [
        ScanEvent("kbd", "4006381333931", "ean13", "scanner")
    ]


def test_german_scanner_needs_the_german_map():
    events = events_for_text("ZY-1/z", "de")
    assert decode(events, "de") == [ScanEvent("kbd", "ZY-1/z", "text", "scanner")]
    # The same keys read with the US map: the classic Y/Z swap and "-" turned into "/".
    assert decode(events, "us") == [ScanEvent("kbd", "YZ/1&y", "text", "scanner")]


def test_french_digits_need_shift():
    lay = layout("fr")
    assert lay.char(ecodes.KEY_1, shift=False, caps=False, altgr=False) == "&"
    assert lay.char(ecodes.KEY_1, shift=True, caps=False, altgr=False) == "1"
    assert lay.char(ecodes.KEY_Q, shift=False, caps=False, altgr=False) == "a"
    # Caps Lock leaves the AZERTY digit row alone but capitalises letters
    assert lay.char(ecodes.KEY_2, shift=False, caps=True, altgr=False) == "é"
    assert lay.char(ecodes.KEY_Q, shift=False, caps=True, altgr=False) == "A"
    # An AZERTY scanner's "12" read with a US map is "!@"
    assert decode(events_for_text("12", "fr"), "us", kind="scanner") == [
        ScanEvent("kbd", "!@", "text", "scanner")
    ]


def test_russian_layout():
    lay = layout("ru")
    assert lay.char(ecodes.KEY_Q, shift=False, caps=False, altgr=False) == "й"
    assert lay.char(ecodes.KEY_7, shift=True, caps=False, altgr=False) == "?"
    assert lay.char(ecodes.KEY_SLASH, shift=False, caps=False, altgr=False) == "."
    # Latin text read through the ЙЦУКЕН map is Cyrillic: refused, naming the layout
    (result,) = decode(events_for_text("ABC", "us"), "ru")
    assert isinstance(result, RejectedInput) and "layout" in result.reason
    assert result.raw_preview == "ФИС"


def test_caps_lock_shift_and_altgr():
    t = 0
    events = [press(ecodes.KEY_CAPSLOCK, t), press(ecodes.KEY_CAPSLOCK, t, 0)]
    for code in (ecodes.KEY_A, ecodes.KEY_B):
        t += 5000
        events += [press(code, t), press(code, t, 0)]
    t += 5000
    events += [press(ecodes.KEY_LEFTSHIFT, t), press(ecodes.KEY_C, t), press(ecodes.KEY_C, t, 0),
               press(ecodes.KEY_LEFTSHIFT, t, 0)]
    t += 5000
    events += [press(ecodes.KEY_RIGHTALT, t), press(ecodes.KEY_Q, t)]
    events += [press(ecodes.KEY_RIGHTALT, t, 0)]
    events += [press(ecodes.KEY_ENTER, t + 5000)]
    assert decode(events, "de") == [ScanEvent("kbd", "ABc@", "text", "scanner")]


def test_dead_key_then_space_types_the_accent():
    t = 0
    events = []
    for code in (ecodes.KEY_A, ecodes.KEY_GRAVE, ecodes.KEY_SPACE, ecodes.KEY_B, ecodes.KEY_ENTER):
        t += 5000
        events += [press(code, t), press(code, t, 0)]
    assert decode(events, "de") == [ScanEvent("kbd", "a^b", "text", "scanner")]


def test_tab_ends_a_code_and_autorepeat_is_ignored():
    events = events_for_text("96385074", "us", end="\t")
    events.insert(2, press(ecodes.KEY_9, 1, value=2))
    assert decode(events) == [ScanEvent("kbd", "96385074", "ean8", "scanner")]


def test_gap_drops_partial_input():
    first = events_for_text("400", "us", end="")
    rest = events_for_text("4006381333931", "us", start_us=500_000)
    out = decode(first + rest, kind="scanner", gap_ms=100)
    assert out[0] == RejectedInput("kbd", "partial input dropped after a gap over 100 ms", "400")
    assert out[1] == ScanEvent("kbd", "4006381333931", "ean13", "scanner")


def test_buffer_is_bounded_and_recovers():
    long = events_for_text("7" * 300, "us")
    ok = events_for_text("4006381333931", "us", start_us=long[-1].usec + 10_000)
    out = decode(long + ok, kind="scanner", gap_ms=100_000)
    assert isinstance(out[0], RejectedInput) and out[0].reason == "code longer than 256 characters"
    assert out[1] == ScanEvent("kbd", "4006381333931", "ean13", "scanner")


def test_human_or_scanner():
    fast = events_for_text("7712345678901", "us", interval_us=8000)
    slow = events_for_text("4006381333931", "us", interval_us=180_000)
    assert decode(fast) == [CardSwipe("kbd", "7712345678901", "barcode")]
    assert decode(slow) == [ScanEvent("kbd", "4006381333931", "ean13", "keyboard")]
    assert decode(slow, kind="scanner", gap_ms=1000) == [
        ScanEvent("kbd", "4006381333931", "ean13", "scanner")
    ]
    assert decode(fast, kind="human")[0] == CardSwipe("kbd", "7712345678901", "barcode")


def test_packed_structs_through_a_pipe():
    events = events_for_text("4006381333931", "fr")
    read_fd, write_fd = os.pipe()
    try:
        os.write(write_fd, b"".join(pack_event(e) for e in events))
        os.close(write_fd)
        decoder = KeyDecoder("kbd", layout("fr"), RULES)
        out, rest = [], b""
        while chunk := os.read(read_fd, EVENT_SIZE * 3 + 7):  # split mid-struct on purpose
            got, rest = unpack_events(rest + chunk)
            out += [r for r in map(decoder.feed, got) if r is not None]
        assert rest == b""
        assert out == [ScanEvent("kbd", "4006381333931", "ean13", "scanner")]
    finally:
        os.close(read_fd)


class PipeDevice:
    """A fake evdev device: its fd is the read end of a pipe the test writes structs into."""

    def __init__(self, held_polls=0):
        self.fd, self.write_fd = os.pipe()
        self.held_polls = held_polls
        self.grabbed = False
        self.closed = False

    def grab(self):
        assert not self.active_keys(), "grabbed while a key was held"
        self.grabbed = True

    def active_keys(self):
        if self.held_polls:
            self.held_polls -= 1
            return [ecodes.KEY_A]
        return []

    def leds(self):
        return []

    def close(self):
        os.close(self.fd)
        self.closed = True

    def send(self, text):
        os.write(self.write_fd, b"".join(pack_event(e) for e in events_for_text(text, "us")))


def run_input(opener_steps, on_event, grab=True):
    seen, sleeps = [], []
    settings = EvdevSettings("scanner 0", "/dev/input/by-id/usb-fake-event-kbd", grab=grab)

    async def main():
        stop = asyncio.Event()
        steps = list(opener_steps)

        def opener(path):
            step = steps.pop(0) if steps else FileNotFoundError(path)
            if isinstance(step, Exception):
                raise step
            return step

        async def fake_sleep(delay):
            sleeps.append(delay)
            if len(sleeps) > 20:
                stop.set()
            await asyncio.sleep(0)

        def emit(event):
            seen.append(event)
            on_event(event, stop)

        driver = EvdevInput(settings, RULES, opener, Backoff(100, 400, lambda: 1.0), fake_sleep)
        await asyncio.wait_for(driver.run(emit, stop), timeout=5)

    asyncio.run(main())
    return seen, sleeps


def test_reconnects_after_unplug_and_grabs_only_when_no_key_is_held():
    first, second = PipeDevice(held_polls=2), PipeDevice()

    def on_event(event, stop):
        if event == DeviceState("scanner 0", "attached", settings_path):
            device = first if not first.closed and not first.grabbed else second
            if device is first:
                device.send("4006381333931")
                os.close(device.write_fd)  # unplug: end of input
            else:
                device.send("96385074")
        if isinstance(event, ScanEvent) and event.code == "96385074":
            os.close(second.write_fd)
            stop.set()

    settings_path = "/dev/input/by-id/usb-fake-event-kbd"
    missing = f"{settings_path} is not present - check the USB cable"
    seen, sleeps = run_input([FileNotFoundError("x"), FileNotFoundError("x"), first, second],
                             on_event)
    assert seen == [
        DeviceState("scanner 0", "detached", missing),
        DeviceState("scanner 0", "attached", settings_path),
        ScanEvent("scanner 0", "4006381333931", "ean13", "scanner"),
        DeviceState("scanner 0", "detached", f"{settings_path}: end of input"),
        DeviceState("scanner 0", "attached", settings_path),
        ScanEvent("scanner 0", "96385074", "ean8", "scanner"),
    ]
    assert first.grabbed and first.closed and second.grabbed
    # two backoff waits (doubling), two waits for the held key to be released
    assert sleeps == [0.1, 0.2, keyboard.grab_wait_s, keyboard.grab_wait_s]


def test_enodev_read_is_an_unplug(monkeypatch):
    device = PipeDevice()
    real_read = os.read

    def failing_read(fd, n):
        if fd == device.fd:
            raise OSError(errno.ENODEV, "No such device")
        return real_read(fd, n)

    monkeypatch.setattr(keyboard.os, "read", failing_read)

    def on_event(event, stop):
        if isinstance(event, DeviceState) and event.state == "attached":
            device.send("1")
        if isinstance(event, DeviceState) and event.state == "detached":
            stop.set()

    seen, _ = run_input([device], on_event, grab=False)
    assert seen[-1] == DeviceState(
        "scanner 0", "detached", "/dev/input/by-id/usb-fake-event-kbd: No such device"
    )
    os.close(device.write_fd)


def test_permission_denied_says_udev():
    def on_event(event, stop):
        stop.set()

    seen, _ = run_input([PermissionError(13, "denied")], on_event)
    assert seen[0].state == "error" and "udev" in seen[0].detail


def test_auto_uses_the_scanner_gap_for_a_scanner_burst_and_the_long_one_for_a_person():
    burst = events_for_text("4006", "us", end="", interval_us=5000)
    rest = events_for_text("381333931", "us", start_us=400_000, interval_us=5000)
    out = decode(burst + rest, kind="auto", gap_ms=100)
    assert out[0].reason == "partial input dropped after a gap over 100 ms"
    typed = events_for_text("4006", "us", end="", interval_us=200_000)
    rest = events_for_text("381333931", "us", start_us=1_400_000, interval_us=200_000)
    assert decode(typed + rest, kind="auto", gap_ms=100) == [
        ScanEvent("kbd", "4006381333931", "ean13", "keyboard")
    ]


def test_reattach_forgets_held_shift_and_partial_input():
    decoder = KeyDecoder("kbd", layout("us"), RULES, kind="scanner", gap_ms=100_000)
    for event in [press(ecodes.KEY_LEFTSHIFT, 0), press(ecodes.KEY_1, 1000)]:
        decoder.feed(event)
    decoder.reattached(caps=False)  # unplugged with Shift down: no key-up will ever come
    out = [r for r in map(decoder.feed, events_for_text("12", "us", start_us=2000)) if r]
    assert out == [ScanEvent("kbd", "12", "text", "scanner")]


def test_german_wedge_card_reader_sends_track1_with_dead_caret():
    # On QWERTZ "^" is a dead key: the reader presses it and the next key; no composition
    # applies to "^" + a letter or digit, so both characters stand.
    t = 0
    events = []
    for part in ("%B4111111111111111", "^", "DOE/JOHN", "^", "2512101?"):
        if part == "^":
            events += [press(ecodes.KEY_GRAVE, t), press(ecodes.KEY_GRAVE, t, 0)]
            t += 5000
            continue
        chunk = events_for_text(part, "de", start_us=t, end="")
        events += chunk
        t = chunk[-1].sec * 1_000_000 + chunk[-1].usec + 5000
    events += [press(ecodes.KEY_ENTER, t)]
    assert decode(events, "de") == [CardSwipe("kbd", "4111111111111111", "track1")]


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 300), st.integers(-1, 3)),
                max_size=300))
def test_decoder_never_raises_on_random_events(raw):
    decoder = KeyDecoder("kbd", layout("fr"), RULES, kind="auto")
    for i, (etype, code, value) in enumerate(raw):
        result = decoder.feed(InputEvent(0, i * 1000, etype, code, value))
        assert result is None or isinstance(result, ScanEvent | CardSwipe | RejectedInput)
