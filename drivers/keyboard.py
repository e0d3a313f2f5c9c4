"""Keyboard-wedge scanners and card readers through evdev: key events in, domain events out.

`KeyDecoder` is synchronous and pure: it turns `evdev.InputEvent`s into lines with the layout the
scanner emulates (Shift, Caps Lock, AltGr, dead keys), ends a line on Enter or Tab, drops a
partial line after a gap, refuses lines longer than `code_chars_max`, and tells a scanner from
a typing human by configuration or, for kind "auto", by keystroke timing.
`EvdevInput` opens the device by its stable `/dev/input/by-id/…` path, grabs it only while no key
is held, reads packed `input_event` structs from its fd, and reopens it with backoff after an
unplug (ENODEV) — reporting each change as a `DeviceState`.
Limits: `code_chars_max`, `read_bytes_max`, `grab_tries_max`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import statistics
import struct
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from evdev import InputEvent, ecodes

from drivers.backoff import Backoff
from drivers.classify import classify_line
from drivers.codes import CodeRules
from drivers.events import DeviceState, Entry, Event, RejectedInput, preview
from drivers.fdwait import readable
from drivers.keymaps import Layout, layout

Kind = Literal["scanner", "human", "auto"]

# struct input_event on 64-bit Linux: struct timeval (two longs), __u16 type, __u16 code, __s32.
EVENT_FORMAT = "llHHi"
EVENT_SIZE = struct.calcsize(EVENT_FORMAT)
code_chars_max = 256
read_bytes_max = EVENT_SIZE * 64
grab_tries_max = 50
grab_wait_s = 0.02

_SHIFT = frozenset((ecodes.KEY_LEFTSHIFT, ecodes.KEY_RIGHTSHIFT))
_CTRL = frozenset((ecodes.KEY_LEFTCTRL, ecodes.KEY_RIGHTCTRL))
_ALTGR = ecodes.KEY_RIGHTALT
_END = frozenset((ecodes.KEY_ENTER, ecodes.KEY_KPENTER, ecodes.KEY_TAB))
_KEY_DOWN, _KEY_UP = 1, 0


def unpack_events(buf: bytes) -> tuple[list[InputEvent], bytes]:
    """Packed `input_event` structs → InputEvents, and the bytes of an incomplete trailing one."""
    whole = len(buf) - len(buf) % EVENT_SIZE
    events = [InputEvent(*fields) for fields in struct.iter_unpack(EVENT_FORMAT, buf[:whole])]
    return events, buf[whole:]


def pack_event(event: InputEvent) -> bytes:
    return struct.pack(EVENT_FORMAT, event.sec, event.usec, event.type, event.code, event.value)


@dataclass
class KeyDecoder:
    """Key events → lines → events for one device. Times come from the events themselves."""

    device: str
    layout: Layout
    rules: CodeRules = field(default_factory=CodeRules)
    kind: Kind = "auto"
    gap_ms: int = 100
    human_gap_ms: int = 10_000
    scanner_interval_ms_max: int = 30
    code_chars_max: int = code_chars_max
    caps: bool = False
    _held: set[int] = field(default_factory=set)
    _chars: list[str] = field(default_factory=list)
    _times_us: list[int] = field(default_factory=list)
    _dead: str = ""
    _overflow: bool = False

    def feed(self, event: InputEvent) -> Event | None:
        if event.type != ecodes.EV_KEY:
            return None
        code, value = event.code, event.value
        if value == _KEY_UP:
            self._held.discard(code)
            return None
        if value != _KEY_DOWN:
            # Autorepeat: scanners never hold a key; a human's held key is not part of a code.
            return None
        self._held.add(code)
        now_us = event.sec * 1_000_000 + event.usec
        if code == ecodes.KEY_CAPSLOCK:
            self.caps = not self.caps
            return None
        if code in _END:
            return self._end(now_us)
        return self._type(code, now_us)

    def _gap_us(self) -> int:
        if self.kind == "scanner" or (self.kind == "auto" and self._entry(self._times_us)
                                      == "scanner"):
            return self.gap_ms * 1000
        # A person may pause between digits; their partial input waits longer.
        return self.human_gap_ms * 1000

    def _stale(self, now_us: int) -> bool:
        return bool(self._times_us) and now_us - self._times_us[-1] > self._gap_us()

    def _type(self, code: int, now_us: int) -> Event | None:
        if self._held & _CTRL:
            return None  # a Ctrl chord types no character in a code
        ch = self.layout.char(
            code, shift=bool(self._held & _SHIFT), caps=self.caps, altgr=_ALTGR in self._held
        )
        if not ch:
            return None
        dropped = self._drop_stale(now_us)
        if self._dead:
            ch = self._dead if ch == " " else self._dead + ch
            self._dead = ""
        elif ch in self.layout.dead:
            self._dead = ch
            return dropped
        self._append(ch, now_us)
        return dropped

    def _drop_stale(self, now_us: int) -> Event | None:
        if not self._stale(now_us):
            return None
        partial, gap_ms = "".join(self._chars), self._gap_us() // 1000
        self._reset()
        reason = f"partial input dropped after a gap over {gap_ms} ms"
        return RejectedInput(self.device, reason, preview(partial))

    def _append(self, text: str, now_us: int) -> None:
        if self._overflow:
            return
        if len(self._chars) + len(text) > self.code_chars_max:
            self._overflow = True
            return
        self._chars.extend(text)
        self._times_us.extend([now_us] * len(text))

    def _end(self, now_us: int) -> Event | None:
        if self._stale(now_us):
            return self._drop_stale(now_us)
        line, times, overflow = "".join(self._chars) + self._dead, self._times_us, self._overflow
        self._reset()
        if overflow:
            reason = f"code longer than {self.code_chars_max} characters"
            return RejectedInput(self.device, reason, preview(line))
        if not line:
            return None  # a lone Enter from a human or a scanner's empty prefix
        return classify_line(self.device, line, self.rules, self._entry(times))

    def _entry(self, times_us: list[int]) -> Entry:
        if self.kind != "auto":
            return "scanner" if self.kind == "scanner" else "keyboard"
        intervals = [b - a for a, b in itertools.pairwise(times_us) if b != a]
        if len(intervals) < 2:
            return "keyboard"
        # Median, so one hiccup in a scanner burst or one fast pair from a typist does not decide.
        scanner = statistics.median(intervals) <= self.scanner_interval_ms_max * 1000
        return "scanner" if scanner else "keyboard"

    def _reset(self) -> None:
        self._chars, self._times_us, self._dead, self._overflow = [], [], "", False

    def reattached(self, caps: bool) -> None:
        """Forget held keys and partial input: a device that was unplugged sends no key-ups."""
        self._held.clear()
        self._reset()
        self.caps = caps


class KeyDevice(Protocol):
    """What `EvdevInput` needs of an open device; `evdev.InputDevice` has all of it."""

    fd: int

    def grab(self) -> None: ...
    def active_keys(self) -> list[int]: ...
    def leds(self) -> list[int]: ...
    def close(self) -> None: ...


def open_evdev(path: str) -> KeyDevice:
    from evdev import InputDevice

    return InputDevice(path)


@dataclass(frozen=True, slots=True)
class EvdevSettings:
    name: str
    path: str
    layout: str = "us"
    grab: bool = True
    kind: Kind = "auto"
    gap_ms: int = 100


class EvdevInput:
    """One configured wedge device: open, grab, read, decode, and reopen after an unplug."""

    def __init__(
        self,
        settings: EvdevSettings,
        rules: CodeRules,
        opener: Callable[[str], KeyDevice] = open_evdev,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.decoder = KeyDecoder(
            settings.name, layout(settings.layout), rules, settings.kind, settings.gap_ms
        )
        self.opener = opener
        self.backoff = backoff or Backoff()
        self.sleep = sleep
        self.state = ""  # unknown until the first open attempt, so that one is always reported

    async def run(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None:
        """Until `stop` is set: keep the device open and decoded; never raises for device faults."""
        while not stop.is_set():
            device = self._open(emit)
            if device is None:
                await self.sleep(self.backoff.next_delay_s())
                continue
            self.backoff.reset()
            try:
                await self._grab(device, emit)
                await self._read_until_gone(device, emit, stop)
            finally:
                with contextlib.suppress(OSError):  # the fd of an unplugged device may be gone
                    device.close()

    def _set_state(self, emit: Callable[[Event], None], state: str, detail: str) -> None:
        if state != self.state:
            self.state = state
            emit(DeviceState(self.settings.name, state, detail))  # type: ignore[arg-type]

    def _open(self, emit: Callable[[Event], None]) -> KeyDevice | None:
        path = self.settings.path
        try:
            device = self.opener(path)
        except FileNotFoundError:
            self._set_state(emit, "detached", f"{path} is not present - check the USB cable")
            return None
        except PermissionError:
            self._set_state(emit, "error", f"{path}: permission denied - check the udev rule")
            return None
        except OSError as exc:
            self._set_state(emit, "error", f"{path}: cannot open: {exc.strerror}")
            return None
        try:
            caps = ecodes.LED_CAPSL in device.leds()
        except OSError:
            caps = False  # unknown LED state: assume off, as the kernel starts
        self.decoder.reattached(caps)
        self._set_state(emit, "attached", path)
        return device

    async def _grab(self, device: KeyDevice, emit: Callable[[Event], None]) -> None:
        if not self.settings.grab:
            return
        # Grabbing while a key is down leaves it stuck down for the rest of the system.
        for _ in range(grab_tries_max):
            if not device.active_keys():
                break
            await self.sleep(grab_wait_s)
        else:
            emit(DeviceState(self.settings.name, "error", "not grabbed: a key stayed held"))
            return
        try:
            device.grab()
        except OSError as exc:
            detail = f"not grabbed: {exc.strerror} - another program holds the device"
            emit(DeviceState(self.settings.name, "error", detail))

    async def _read_until_gone(
        self, device: KeyDevice, emit: Callable[[Event], None], stop: asyncio.Event
    ) -> None:
        rest = b""
        while not stop.is_set():
            if not await readable(device.fd, stop):
                return
            try:
                chunk = os.read(device.fd, read_bytes_max)
            except BlockingIOError:
                continue
            except OSError as exc:
                gone = exc.errno == errno.ENODEV
                state = "detached" if gone else "error"
                self._set_state(emit, state, f"{self.settings.path}: {exc.strerror}")
                return
            if not chunk:
                self._set_state(emit, "detached", f"{self.settings.path}: end of input")
                return
            events, rest = unpack_events(rest + chunk)
            for event in self.decode(events):
                emit(event)

    def decode(self, events: list[InputEvent]) -> Iterator[Event]:
        for event in events:
            result = self.decoder.feed(event)
            if result is not None:
                yield result



def events_for_text(
    text: str, layout_name: str, start_us: int = 0, interval_us: int = 5000, end: str = "\n"
) -> list[InputEvent]:
    """The key events a wedge device set to `layout_name` sends to type `text` and a terminator.

    What the simulated wedge and the tests feed the decoder: modifier down, key down, key up,
    modifier up, each key `interval_us` after the previous one.
    """
    from drivers.keymaps import typing_keys

    events: list[InputEvent] = []
    t = start_us

    def key(code: int, value: int) -> None:
        events.append(InputEvent(t // 1_000_000, t % 1_000_000, ecodes.EV_KEY, code, value))
        events.append(InputEvent(t // 1_000_000, t % 1_000_000, ecodes.EV_SYN, 0, 0))

    presses = typing_keys(text, layout_name)
    if end:
        presses.append((ecodes.KEY_TAB if end == "\t" else ecodes.KEY_ENTER, False, False))
    for code, shift, altgr in presses:
        modifier = ecodes.KEY_LEFTSHIFT if shift else _ALTGR if altgr else None
        if modifier is not None:
            key(modifier, _KEY_DOWN)
        key(code, _KEY_DOWN)
        key(code, _KEY_UP)
        if modifier is not None:
            key(modifier, _KEY_UP)
        t += interval_us
    return events
