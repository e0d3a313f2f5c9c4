"""Domain events the drivers emit, and the bounded queue that carries them to the daemon.

Events are frozen dataclasses holding plain values only, so they can be logged, compared in
tests and serialised without knowing the driver that made them. Limits: `events_queued_max`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

CardSource = Literal["barcode", "track1", "track2"]
Paper = Literal["ok", "near_end", "out", "unknown"]
State = Literal["attached", "detached", "error"]
Entry = Literal["scanner", "keyboard"]

events_queued_max = 256
raw_preview_chars_max = 40


@dataclass(frozen=True, slots=True)
class ScanEvent:
    """A product code. `symbology` is what the digits prove (ean13, ean8, upca) or `text`."""

    device: str
    code: str
    symbology: str
    entry: Entry = "scanner"
    gs1_prefix: str | None = None
    gs1_item: str | None = None
    weight_g: int | None = None
    price_minor: int | None = None


@dataclass(frozen=True, slots=True)
class CardSwipe:
    """A loyalty card number read from a card barcode or a magnetic stripe track."""

    device: str
    number: str
    source: CardSource


@dataclass(frozen=True, slots=True)
class RejectedInput:
    """Input the drivers would not turn into a scan or a swipe; `reason` is for the operator."""

    device: str
    reason: str
    raw_preview: str


@dataclass(frozen=True, slots=True)
class PrinterStatus:
    device: str
    online: bool
    paper: Paper
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DeviceState:
    device: str
    state: State
    detail: str = ""


Event = ScanEvent | CardSwipe | RejectedInput | PrinterStatus | DeviceState


def preview(raw: str | bytes) -> str:
    """A short printable rendering of untrusted input, safe to log and show."""
    if isinstance(raw, bytes):
        raw = raw.decode("latin-1")
    shown = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in raw[:64])
    if len(shown) > raw_preview_chars_max or len(raw) > 64:
        return shown[:raw_preview_chars_max] + "…"
    return shown


class EventQueue:
    """A bounded asyncio queue the input drivers push onto without ever blocking.

    When the daemon falls behind, the oldest event is dropped: a cashier acts on the newest
    scan, and a reader that blocked would lose keystrokes in the kernel instead. Drops are
    counted so `posterm doctor` and the daemon can report them.
    """

    def __init__(self, maxsize: int = events_queued_max) -> None:
        if not 0 < maxsize <= 65536:
            raise ValueError(f"event queue size must be 1..65536, got {maxsize}")
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def emit(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self) -> Event:
        return await self.queue.get()

    def drain(self) -> list[Event]:
        items: list[Event] = []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items
