"""The watchdog pings only while the checkout desk answers: a stuck action stops the pings (so
systemd restarts the unit), and they resume when it is free again."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from terminal.config import load_config
from terminal.daemon import Daemon
from terminal.demo_run import setup
from terminal.notify import Notifier


def test_pings_stop_while_the_desk_is_stuck(tmp_path: Path) -> None:
    listen = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listen.bind(str(tmp_path / "notify.sock"))
    listen.setblocking(False)

    def pings() -> int:
        count = 0
        while True:
            try:
                count += listen.recv(64) == b"WATCHDOG=1"
            except BlockingIOError:
                return count

    async def scenario() -> tuple[int, int, int]:
        daemon = Daemon(load_config(setup(tmp_path)), Notifier(str(tmp_path / "notify.sock"), 100_000))
        task = asyncio.create_task(daemon.watchdog())  # pings every 0.05 s
        try:
            await asyncio.sleep(0.3)
            free = pings()
            async with daemon.lock:  # an action that never finishes
                await asyncio.sleep(0.4)
                stuck = pings()
            await asyncio.sleep(0.3)
            again = pings()
        finally:
            daemon.stop.set()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            daemon.ledger.close()
            daemon.notifier.close()
        return free, stuck, again

    try:
        free, stuck, again = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        listen.close()
    assert free >= 2 and again >= 2
    assert stuck <= 1  # at most the ping already under way when the desk got stuck
