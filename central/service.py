"""What every route of the central service shares: the app's keys (store, thread pools, the
terminal-key cache), a store call off the event loop, and the structured log line
(`event=… key=value …`) that the metrics also count (`OBSERVERS`)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from central.store import Store

log = logging.getLogger("posterm.central")
# Each app's metrics counts the log events (central.metrics); registered and removed per app.
OBSERVERS: list[Callable[[str, dict[str, Any]], None]] = []

STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
POOL_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)
INGEST_POOL_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("ingest_pool", ThreadPoolExecutor)
KEYS_KEY: web.AppKey[dict[str, tuple[float, list[bytes]]]] = web.AppKey("keys", dict)


def log_line(level: int, event: str, **fields: Any) -> None:
    log.log(level, "event=%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))
    for observe in OBSERVERS:
        observe(event, fields)


def printable(text: str) -> str:
    """An unauthenticated header value, safe for one `key=value` log line."""
    return re.sub(r"[^A-Za-z0-9._-]", "?", text[:64]) or "?"


async def run(request: web.Request, fn: Any, *args: Any, pool: web.AppKey[ThreadPoolExecutor] = POOL_KEY) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[pool], fn, *args)
