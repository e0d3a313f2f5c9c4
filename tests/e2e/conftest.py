"""A provisioned terminal in a temporary directory, and a way to run its daemon."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from terminal.client import DaemonProcess
from terminal.demo_run import setup

FIFO_OPEN_S = 5.0


class Terminal:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = setup(root)
        with self.config.open("a") as handle:  # short retries so a printer fault test stays quick
            handle.write("\n[printer]\nretry_s = 0.2\n\n[checkout]\nidle_timeout_s = 60\nhold_timeout_s = 120\n")
        self.socket = root / "api.sock"
        self.printer = root / "printer"
        self.spool = root / "state" / "spool"
        self.ledger_path = root / "state" / "ledger"
        self.daemons: list[DaemonProcess] = []
        self.fifos: dict[str, int] = {}

    def start(self, watchdog_usec: int = 0, env: dict[str, str] | None = None) -> DaemonProcess:
        daemon = DaemonProcess(self.config, self.root, env=env)
        self.daemons.append(daemon)
        daemon.start(watchdog_usec)
        return daemon

    def write(self, fifo: str, line: str) -> None:
        """A line into a simulated device's FIFO (opened once; reopened after a restart)."""
        fd = self.fifos.get(fifo)
        if fd is None:
            fd = self.fifos[fifo] = open_fifo(self.root / fifo)
        try:
            os.write(fd, (line + "\n").encode())
        except BrokenPipeError:  # the daemon that read it was killed: open for the new one
            os.close(fd)
            del self.fifos[fifo]
            self.write(fifo, line)

    def scan(self, code: str) -> None:
        self.write("scanner.fifo", f"scan {code}")

    def swipe(self, line: str) -> None:
        self.write("card.fifo", f"swipe {line}")

    def receipts_text(self) -> str:
        path = self.printer / "receipts.txt"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        for fd in self.fifos.values():
            os.close(fd)
        for daemon in self.daemons:
            daemon.stop()


def open_fifo(path: Path) -> int:
    """O_NONBLOCK open for writing fails with ENXIO until the daemon has it open for reading."""
    deadline = time.monotonic() + FIFO_OPEN_S
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()
