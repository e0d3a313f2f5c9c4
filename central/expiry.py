"""The server's expiry sweep, on a schedule inside `posterm-central serve` and on demand with
`posterm-central expire`: the one place where a lot's expiry is decided for the chain
(`Store.expire`); the changed cards reach every terminal through the updates feed.

Limits: the interval is `EXPIRE_EVERY_S_MIN`..`EXPIRE_EVERY_S_MAX` seconds (default
`EXPIRE_EVERY_S_DEFAULT`); one sweep runs at a time per process (several collectors on one
PostgreSQL may sweep at once: a card is swept under its row lock, so nothing expires twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from central.store import Store, StoreError

log = logging.getLogger("posterm.central")

EXPIRE_EVERY_S_DEFAULT = 3600.0
EXPIRE_EVERY_S_MIN = 1.0
EXPIRE_EVERY_S_MAX = 86_400.0


def run_sweep(store: Store, now_ms: int | None = None) -> dict[str, Any]:
    """One sweep at `now_ms` (default: now), logged as one line."""
    at_ms = int(time.time() * 1000) if now_ms is None else now_ms
    started = time.monotonic()
    result = store.expire(at_ms)
    log.info(
        "event=expiry_swept cards=%s points=%s at_ms=%s took_ms=%d",
        result["cards"], result["points"], at_ms, (time.monotonic() - started) * 1000,
    )
    return result


async def sweep_forever(store: Store, pool: ThreadPoolExecutor, every_s: float) -> None:
    """Sweep now, then every `every_s` seconds; a database failure is logged and retried at the
    next tick (the feed and ingest go on meanwhile)."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(pool, run_sweep, store)
        except StoreError as exc:
            log.error("event=expiry_sweep_failed reason=%r", str(exc)[:300])
        await asyncio.sleep(every_s)


def scheduled(store: Store, pool: ThreadPoolExecutor, every_s: float) -> Any:
    """An aiohttp cleanup context running `sweep_forever` for the app's lifetime."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep_forever(store, pool, every_s), name="expiry-sweep")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
