"""The driver registry and hot-plug polling, after Odoo's IoT box: each driver says which
device nodes it supports; the first that does takes the node. `/dev/*/by-id` is polled and
diffed (no udev bindings needed), and configured devices are turned into running drivers.

Limits: `by_id_entries_max` entries read per directory and poll.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from drivers.codes import CodeRules
from drivers.config import DevicesConfig, InputConfig
from drivers.events import DeviceState, Event
from drivers.keyboard import EvdevInput, EvdevSettings
from drivers.printer import ReceiptPrinter
from drivers.serial_input import SerialInput
from drivers.simulated import SimulatedInput
from drivers.spool import Spool

INPUT_BY_ID = "/dev/input/by-id"
SERIAL_BY_ID = "/dev/serial/by-id"
by_id_entries_max = 256
poll_s = 2.0


class InputDriver(Protocol):
    async def run(self, emit: Callable[[Event], None], stop: asyncio.Event) -> None: ...


@dataclass(frozen=True, slots=True)
class DriverEntry:
    name: str
    supported: Callable[[str, str], bool]  # (bus "input" or "serial", device node path)
    takes: str  # what the driver makes of a supported node, for `posterm devices`


REGISTRY: tuple[DriverEntry, ...] = (
    DriverEntry("evdev", lambda bus, path: bus == "input" and path.endswith("-event-kbd"),
                "keyboard wedge: scanner, card reader or keyboard (set kind and layout)"),
    DriverEntry("serial", lambda bus, path: bus == "serial",
                "serial scanner, card reader or printer (set framing and baud rate)"),
)


def driver_for(bus: str, path: str) -> DriverEntry | None:
    """The first registered driver that supports a device node, if any."""
    for entry in REGISTRY:
        if entry.supported(bus, path):
            return entry
    return None


def list_by_id(directory: str) -> set[str]:
    """Device nodes under a by-id directory; empty when the directory does not exist."""
    try:
        with os.scandir(directory) as entries:
            names = []
            for entry in entries:
                names.append(os.path.join(directory, entry.name))
                if len(names) >= by_id_entries_max:
                    break  # a stated bound: a kiosk has a handful of devices
            return set(names)
    except FileNotFoundError:
        return set()


def diff(before: set[tuple[str, str]], after: set[tuple[str, str]]) -> list[DeviceState]:
    """What changed between two polls of (bus, path) pairs, as events; removals first."""
    gone = [DeviceState(p, "detached", "unplugged") for _, p in sorted(before - after)]
    came = []
    for bus, path in sorted(after - before):
        entry = driver_for(bus, path)
        came.append(DeviceState(path, "attached", entry.takes if entry else "no driver"))
    return gone + came


async def watch(
    emit: Callable[[Event], None],
    stop: asyncio.Event,
    directories: tuple[tuple[str, str], ...] = (("input", INPUT_BY_ID), ("serial", SERIAL_BY_ID)),
    interval_s: float = poll_s,
) -> None:
    """Poll the by-id directories and emit what appeared and vanished, until `stop`."""
    known: set[tuple[str, str]] = set()
    while not stop.is_set():
        current: set[tuple[str, str]] = set()
        for bus, directory in directories:
            current |= {(bus, path) for path in list_by_id(directory)}
        for event in diff(known, current):
            emit(event)
        known = current
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except TimeoutError:
            continue


def make_input(dev: InputConfig, rules: CodeRules) -> InputDriver:
    """The running driver for one configured input device."""
    if dev.driver == "evdev":
        settings = EvdevSettings(dev.name, dev.source, dev.layout, dev.grab,
                                 dev.kind, dev.gap_ms)  # type: ignore[arg-type]
        return EvdevInput(settings, rules)
    if dev.driver == "serial" and dev.protocol is not None:
        return SerialInput(dev.name, dev.source, dev.protocol, rules)
    return SimulatedInput(dev.name, dev.source, rules)


def make_drivers(
    config: DevicesConfig, emit: Callable[[Event], None]
) -> tuple[list[InputDriver], list[ReceiptPrinter]]:
    """Input drivers and printers for a checked config; the daemon runs and drains them."""
    inputs = [make_input(dev, config.codes) for dev in config.inputs]
    printers = [ReceiptPrinter(p.spec, Spool(p.spool), emit=emit) for p in config.printers]
    return inputs, printers
