"""The daemon's housekeeping: retention passes at quiet moments.

Every `[retention] prune_interval_s` the daemon prunes what the central server already holds
(`terminal.ledger.retention`), between checkouts only and in bounded passes (at most
`PASSES_PER_ROUND_MAX` a round, each one short write transaction), so a sale never waits long.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from terminal.errors import TerminalError
from terminal.ledger import LedgerError

if TYPE_CHECKING:
    from terminal.daemon import Daemon

PASSES_PER_ROUND_MAX = 20


def prune_round(daemon: Daemon, now: Any) -> dict[str, Any]:
    """Prune until done or the round's budget is spent; skipped while a checkout is open."""
    keep = daemon.config.retention
    totals: dict[str, Any] = {"events": 0, "receipts": 0, "ops": 0, "more": False, "skipped": False}
    if daemon.register.current is not None:
        return {**totals, "skipped": True}
    for _ in range(PASSES_PER_ROUND_MAX):
        step = daemon.ledger.prune(now, keep.events_keep_days, keep.receipts_keep_days)
        totals["events"] += step["events"]
        totals["receipts"] += step["receipts"]
        totals["ops"] += step["ops"]
        totals["more"] = step["more"]
        if not step["more"]:
            break
    if totals["events"] or totals["receipts"] or totals["ops"]:
        from terminal.daemon import log_event  # the daemon module imports this one

        log_event("ledger_pruned", events=totals["events"], receipts=totals["receipts"], ops=totals["ops"],
                  more=totals["more"])
    return totals


async def prune_loop(daemon: Daemon, now: Any) -> None:
    """`now` is the daemon's clock (a callable), so tests can pass one of their own."""
    interval = daemon.config.retention.prune_interval_s
    while not daemon.stop.is_set():
        try:
            daemon.last_prune = await daemon.act(prune_round, daemon, now())
        except (TerminalError, LedgerError) as exc:
            daemon.publish("error", {"message": f"pruning the ledger: {exc}"})
        with contextlib.suppress(TimeoutError):  # the interval passed without a stop
            await asyncio.wait_for(daemon.stop.wait(), interval)
