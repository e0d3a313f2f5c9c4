"""Serial scanners and card readers (pyserial): framed bytes in, domain events out.

A device's wire protocol is data — a `SerialProtocol` named tuple (baud rate, parity, framing) —
not code. `FrameDecoder` is synchronous and pure: it cuts a byte stream into frames (CR, LF,
CR LF, or STX…ETX with an optional LRC), drops a partial frame after a gap and refuses frames
longer than `frame_bytes_max`. `SerialInput` opens the port exclusively, reads without blocking
the event loop and reopens the port with capped, jittered backoff when it vanishes.
Limits: `frame_bytes_max`, `read_bytes_max`.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import serial

from drivers.backoff import Backoff
from drivers.classify import classify_line
from drivers.codes import CodeRules
from drivers.events import DeviceState, Event, RejectedInput, preview
from drivers.fdwait import readable

Framing = Literal["crlf", "cr", "lf", "stx_etx"]
FRAMINGS: tuple[Framing, ...] = ("crlf", "cr", "lf", "stx_etx")
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
STX, ETX = 0x02, 0x03
frame_bytes_max = 256
read_bytes_max = 4096


class SerialProtocol(NamedTuple):
    """How a serial input device talks; one per configured device."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    framing: Framing = "crlf"
    lrc: bool = False  # STX…ETX readers that append an XOR check byte after ETX
    gap_ms: int = 500


@dataclass
class FrameDecoder:
    """Bytes → complete frames (as text) or reasons for what was thrown away."""

    framing: Framing = "crlf"
    lrc: bool = False
    gap_ms: int = 500
    frame_bytes_max: int = frame_bytes_max
    _buf: bytearray = field(default_factory=bytearray)
    _in_frame: bool = False
    _overflow: bool = False
    _await_lrc: bool = False
    _last_ms: float = 0.0
    _junk: int = 0

    def feed(self, data: bytes, now_ms: float) -> list[str | RejectedInput]:
        """Frames as str, refusals as RejectedInput with an empty device (the caller names it)."""
        out: list[str | RejectedInput] = []
        if (self._buf or self._in_frame) and now_ms - self._last_ms > self.gap_ms:
            out.append(self._reject(f"partial frame dropped after a gap over {self.gap_ms} ms"))
        self._last_ms = now_ms
        step = self._step_stx if self.framing == "stx_etx" else self._step_line
        for byte in data:
            result = step(byte)
            if result is not None:
                out.append(result)
        return out

    def _reject(self, reason: str) -> RejectedInput:
        raw = bytes(self._buf)
        self._buf.clear()
        self._in_frame = self._overflow = False
        return RejectedInput("", reason, preview(raw))

    def _add(self, byte: int) -> None:
        if len(self._buf) >= self.frame_bytes_max:
            self._overflow = True
        else:
            self._buf.append(byte)

    def _frame(self) -> str | RejectedInput:
        if self._overflow:
            return self._reject(f"frame longer than {self.frame_bytes_max} bytes")
        # Latin-1 maps every byte to one character, so nothing is hidden from the classifier,
        # which refuses anything that is not printable ASCII.
        text = self._buf.decode("latin-1")
        self._buf.clear()
        self._in_frame = False
        return text

    def _step_line(self, byte: int) -> str | RejectedInput | None:
        # Any CR or LF ends a frame and empty frames are skipped, so a reader set to CR LF while
        # configured as CR (or the reverse) still works; framing decides nothing else here.
        if byte in (0x0D, 0x0A):
            if not self._buf and not self._overflow:
                return None
            return self._frame()
        self._add(byte)
        return None

    def _step_stx(self, byte: int) -> str | RejectedInput | None:
        if self._await_lrc:
            self._await_lrc = False
            check = 0
            for b in self._buf:
                check ^= b
            if check ^ ETX != byte:
                return self._reject("frame LRC check byte is wrong")
            return self._frame()
        if byte == STX:
            if self._in_frame:
                partial = self._reject("frame restarted before ETX")
            elif self._junk:
                partial = RejectedInput("", f"{self._junk} bytes outside STX…ETX dropped", "")
            else:
                partial = None
            self._junk = 0
            self._in_frame = True
            return partial
        if not self._in_frame:
            # CR/LF after ETX is common padding; anything else is counted and reported once.
            if byte not in (0x0D, 0x0A):
                self._junk += 1
            return None
        if byte == ETX:
            if self.lrc:
                self._await_lrc = True
                return None
            return self._frame()
        self._add(byte)
        return None


def open_serial(port: str, protocol: SerialProtocol) -> Any:
    # exclusive=True: a second program (or a stray ModemManager) reading the same reader
    # would steal half the bytes of every swipe.
    return serial.Serial(
        port,
        baudrate=protocol.baudrate,
        bytesize=protocol.bytesize,
        parity=PARITIES[protocol.parity],
        stopbits=protocol.stopbits,
        timeout=0,
        exclusive=True,
    )


class SerialInput:
    """One configured serial scanner or card reader, kept open across unplugs."""

    def __init__(
        self,
        name: str,
        port: str,
        protocol: SerialProtocol,
        rules: CodeRules,
        opener: Callable[[str, SerialProtocol], Any] = open_serial,
        backoff: Backoff | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock_ms: Callable[[], float] = lambda: time.monotonic() * 1000,
    ) -> None:
        self.name, self.port, self.protocol, self.rules = name, port, protocol, rules
        self.opener, self.sleep, self.clock_ms = opener, sleep, clock_ms
        self.backoff = backoff or Backoff()
        self.state = ""  # unknown until the first open attempt, so that one is always reported

    def decoder(self) -> FrameDecoder:
        p = self.protocol
        return FrameDecoder(p.framing, p.lrc, p.gap_ms)

    async def run(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None:
        """Until `stop` is set: keep the port open and decoded; never raises for device faults."""
        while not stop.is_set():
            port = self._open(emit)
            if port is None:
                await self.sleep(self.backoff.next_delay_s())
                continue
            self.backoff.reset()
            try:
                await self._read_until_gone(port, emit, stop)
            finally:
                port.close()

    def _set_state(self, emit: Callable[[Event], None], state: str, detail: str) -> None:
        if state != self.state:
            self.state = state
            emit(DeviceState(self.name, state, detail))  # type: ignore[arg-type]

    def _open(self, emit: Callable[[Event], None]) -> Any:
        try:
            port = self.opener(self.port, self.protocol)
        except serial.SerialException as exc:
            if exc.errno == errno.ENOENT:
                self._set_state(emit, "detached", f"{self.port} is not present - check the cable")
            elif exc.errno in (errno.EACCES, errno.EPERM):
                detail = f"{self.port}: permission denied - add the user to 'dialout'"
                self._set_state(emit, "error", detail)
            elif "exclusively lock" in str(exc):
                self._set_state(emit, "error", f"{self.port} is busy: another program has it open")
            else:
                self._set_state(emit, "error", f"{self.port}: {exc}")
            return None
        self._set_state(emit, "attached", self.port)
        return port

    async def _read_until_gone(
        self, port: Any, emit: Callable[[Event], None], stop: asyncio.Event
    ) -> None:
        decoder = self.decoder()
        while not stop.is_set():
            if not await readable(port.fileno(), stop):
                return
            try:
                data = port.read(read_bytes_max)
            except (serial.SerialException, OSError) as exc:
                self._set_state(emit, "detached", f"{self.port}: {exc} - reconnecting")
                return
            for item in decoder.feed(data, self.clock_ms()):
                if isinstance(item, RejectedInput):
                    emit(RejectedInput(self.name, item.reason, item.raw_preview))
                else:
                    emit(classify_line(self.name, item, self.rules))
