"""Waiting for a file descriptor to become readable inside asyncio, stoppable by an event."""

from __future__ import annotations

import asyncio


async def readable(fd: int, stop: asyncio.Event) -> bool:
    """Wait until `fd` can be read (True) or `stop` is set (False)."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()
    loop.add_reader(fd, ready.set)
    try:
        waiters = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
        return ready.is_set()
    finally:
        loop.remove_reader(fd)
