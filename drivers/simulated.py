"""Simulated devices for the demo and the tests.

`SimulatedInput`: a scanner or card reader fed from a script file or a FIFO, one command a line:
    scan 4006381333931            what a scanner sends (then Enter)
    swipe ;7777123456789=2512?    what a card reader sends
    keys de ZY-1                  type text as key events on a layout, through the wedge decoder
    wait 0.5                      pause, in seconds (at most `wait_s_max`)
    # comment
`SimulatedPrinter`: a python-escpos printer that appends the ESC/POS bytes to `receipts.bin`
and the text preview to `receipts.txt` in its directory; files there script its status:
`unplugged` (cannot open), `offline`, and `paper` containing ok / near_end / out.
Limits: `script_lines_max`, `line_chars_max`, `wait_s_max`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import escpos.exceptions
from escpos.constants import RT_STATUS_ONLINE, RT_STATUS_PAPER
from escpos.escpos import Escpos

from drivers.classify import classify_line
from drivers.codes import CodeRules
from drivers.events import DeviceState, Event, RejectedInput, preview
from drivers.fdwait import readable
from drivers.keyboard import KeyDecoder, events_for_text
from drivers.keymaps import LAYOUTS, layout

script_lines_max = 10_000
line_chars_max = 512
wait_s_max = 60.0
fifo_read_bytes_max = 4096


class SimulatedInput:
    def __init__(
        self,
        name: str,
        source: str | Path,
        rules: CodeRules,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name, self.source, self.rules, self.sleep = name, Path(source), rules, sleep

    def command(self, line: str, where: str) -> tuple[list[Event], float]:
        """One script line → events and seconds to wait afterwards. Never raises."""
        verb, _, arg = line.strip().partition(" ")
        if not verb or verb.startswith("#"):
            return [], 0.0
        if verb in ("scan", "swipe"):
            return [classify_line(self.name, arg, self.rules)], 0.0
        if verb == "keys":
            lay, _, text = arg.partition(" ")
            if lay not in LAYOUTS:
                return [self._bad(where, f"unknown layout {lay!r}", line)], 0.0
            try:
                events = events_for_text(text, lay, interval_us=5000)
            except ValueError as exc:
                return [self._bad(where, str(exc), line)], 0.0
            decoder = KeyDecoder(self.name, layout(lay), self.rules, kind="scanner")
            return [e for e in map(decoder.feed, events) if e is not None], 0.0
        if verb == "wait":
            try:
                seconds = float(arg)
            except ValueError:
                return [self._bad(where, "wait needs a number of seconds", line)], 0.0
            if not 0 <= seconds <= wait_s_max:
                return [self._bad(where, f"wait must be 0..{wait_s_max} seconds", line)], 0.0
            return [], seconds
        return [self._bad(where, f"unknown command {verb!r}", line)], 0.0

    def _bad(self, where: str, reason: str, line: str) -> RejectedInput:
        return RejectedInput(self.name, f"{where}: {reason}", preview(line))

    async def run(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None:
        try:
            is_fifo = stat.S_ISFIFO(os.stat(self.source).st_mode)
        except OSError as exc:
            emit(DeviceState(self.name, "error", f"{self.source}: {exc.strerror}"))
            return
        emit(DeviceState(self.name, "attached", str(self.source)))
        if is_fifo:
            await self._run_fifo(emit, stop)
        else:
            await self._run_script(emit, stop)
            await stop.wait()

    async def _run_script(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None:
        try:
            with self.source.open(encoding="utf-8", errors="replace") as handle:
                for lineno, line in enumerate(handle, 1):
                    if stop.is_set():
                        return
                    where = f"{self.source}:{lineno}"
                    if lineno > script_lines_max:
                        emit(self._bad(where, f"script longer than {script_lines_max} lines", ""))
                        return
                    await self._do(line.rstrip("\r\n")[:line_chars_max], where, emit)
        except OSError as exc:
            emit(DeviceState(self.name, "error", f"{self.source}: {exc.strerror}"))

    async def _do(self, line: str, where: str, emit: Callable[[Event], None]) -> None:
        events, wait_s = self.command(line, where)
        for event in events:
            emit(event)
        if wait_s:
            await self.sleep(wait_s)

    async def _run_fifo(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None:
        # Non-blocking open: a FIFO with no writer yet must not stall the event loop.
        fd = os.open(self.source, os.O_RDONLY | os.O_NONBLOCK)
        buf = b""
        try:
            while not stop.is_set():
                if not await readable(fd, stop):
                    return
                try:
                    chunk = os.read(fd, fifo_read_bytes_max)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EINTR:
                        emit(DeviceState(self.name, "error", f"{self.source}: {exc.strerror}"))
                        return
                    continue
                if not chunk:
                    await self.sleep(0.05)  # writer closed; wait for the next one, no busy loop
                    continue
                buf += chunk
                *lines, buf = buf.split(b"\n")
                if len(buf) > line_chars_max:
                    emit(self._bad(str(self.source), "line too long", buf.decode("latin-1")))
                    buf = b""
                for line in lines:
                    await self._do(line.decode("utf-8", "replace"), str(self.source), emit)
        finally:
            os.close(fd)


_PAPER_REPLY = {"ok": b"\x12", "near_end": b"\x1e", "out": b"\x72"}
_ONLINE_REPLY, _OFFLINE_REPLY = b"\x12", b"\x1a"


class SimulatedPrinter(Escpos):
    """A printer that is two files, with status replies scripted by files beside them."""

    def __init__(self, directory: str | Path, **kwargs: Any) -> None:
        Escpos.__init__(self, **kwargs)
        self.directory = Path(directory)
        self._asked = b""

    def open(self, raise_not_found: bool = True) -> None:
        if (self.directory / "unplugged").exists():
            raise escpos.exceptions.DeviceNotFoundError(
                f"simulated printer {self.directory} is unplugged (remove the 'unplugged' file)"
            )
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise escpos.exceptions.DeviceNotFoundError(
                f"simulated printer {self.directory}: {exc.strerror}"
            ) from None
        self.device = self.directory

    def close(self) -> None:
        self._device = False

    def _raw(self, msg: bytes) -> None:
        if msg in (RT_STATUS_ONLINE, RT_STATUS_PAPER):
            self._asked = msg
            return
        with (self.directory / "receipts.bin").open("ab") as handle:
            handle.write(msg)

    def _read(self) -> bytes:
        asked, self._asked = self._asked, b""
        if asked == RT_STATUS_ONLINE:
            return _OFFLINE_REPLY if (self.directory / "offline").exists() else _ONLINE_REPLY
        paper_file = self.directory / "paper"
        paper = paper_file.read_text().strip() if paper_file.exists() else "ok"
        return _PAPER_REPLY.get(paper, _PAPER_REPLY["out"])

    def job_text(self, text: str) -> None:
        with (self.directory / "receipts.txt").open("a", encoding="utf-8") as handle:
            handle.write(text)
