"""The sync task the daemon runs: drain the outbox, then pull updates, forever.

    await run_sync(ledger, config, stop_event)          # returns when stop_event is set

One request in flight at a time. Updates are pulled only after a drain that ended with every
sent batch acked, so no balance in the feed can include events whose ack we have not seen.
Any failure — server down, slow, 5xx, dropped connection, refused batch — waits a capped,
fully jittered backoff and tries again, forever; nothing is marked sent without a signed ack.
`Syncer.wake()` makes it look for new events at once (call it after a sale commits).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from terminal.ledger import Ledger, LedgerError
from terminal.sync import seeding
from terminal.sync.client import Backoff, SyncClient
from terminal.sync.config import SyncConfig
from terminal.sync.drain import Drainer
from terminal.sync.errors import SyncError, TransientError
from terminal.sync.updates import UpdatesPuller

log = logging.getLogger("posterm.sync")


class Syncer:
    def __init__(
        self, ledger: Ledger, config: SyncConfig, client: SyncClient, rand: Callable[[], float] | None = None
    ) -> None:
        self.ledger, self.config, self.client = ledger, config, client
        self.drainer = Drainer(ledger, client)
        self.puller = UpdatesPuller(ledger, client, config.state_file, config.rules_file)
        backoff_args: dict[str, Any] = {"rand": rand} if rand is not None else {}
        self.backoff = Backoff(config.backoff_base_ms, config.backoff_max_ms, **backoff_args)
        self.woken = asyncio.Event()
        self.status: dict[str, Any] = {"online": False, "last_ok_ms": None, "last_error": None, "failures": 0}

    def wake(self) -> None:
        self.woken.set()

    async def once(self, stop: asyncio.Event | None = None) -> dict[str, int]:
        """One round: drain everything, then pull every update page. Raises on failure."""
        await seeding.confirm_local_cards(self.ledger, self.puller)  # a local import: the server knows it first
        sent = await self.drainer.drain(stop)
        if stop is not None and stop.is_set():
            return {"sent": sent, "pages": 0}
        pages = await self.puller.pull()
        self.status.update(online=True, last_ok_ms=int(time.time() * 1000), last_error=None,
                           rules_refused=self.puller.rules_refused)
        return {"sent": sent, "pages": pages}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.woken.clear()
            try:
                done = await _unless_stopped(self.once(stop), stop)
                if done is None:
                    return
                self.backoff.reset()
                delay_ms = 0.0 if done["sent"] or done["pages"] else float(self.config.idle_interval_ms)
            except (SyncError, LedgerError) as exc:
                level = logging.INFO if isinstance(exc, TransientError) else logging.ERROR
                delay_ms = self.backoff.next_delay_ms()
                self.status.update(
                    online=not isinstance(exc, TransientError),
                    last_error=str(exc)[:300],
                    failures=self.status["failures"] + 1,
                )
                log.log(
                    level,
                    "event=sync_failed kind=%s retry_ms=%d reason=%r",
                    type(exc).__name__,
                    delay_ms,
                    str(exc)[:300],
                )
            if delay_ms:
                await _wait_any(stop, self.woken, delay_ms / 1000)


async def _unless_stopped(work: Coroutine[Any, Any, dict[str, int]], stop: asyncio.Event) -> dict[str, int] | None:
    """Run `work`, but give up on it when `stop` is set (a slow request must not hold up a
    shutdown). Cancelling is safe: events are marked acked only after the server's reply, and
    a cancelled ack write completes in its thread or is redone by the next run."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()  # the caller gave up on the whole loop: no orphan round
        raise
    finally:
        stopping.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _wait_any(stop: asyncio.Event, woken: asyncio.Event, timeout_s: float) -> None:
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run_sync(ledger: Ledger, config: SyncConfig, stop_event: asyncio.Event) -> None:
    """The daemon's entry point: sync until `stop_event` is set."""
    async with SyncClient(config.url, ledger.terminal_id, config.key, config.request_timeout_ms) as client:
        await Syncer(ledger, config, client).run(stop_event)
