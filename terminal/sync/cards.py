"""Card state at swipe time: fresh from the central server when it answers within
`card_timeout_ms`, else the ledger's with the offline redemption cap.

Online, the server's answer is the card's authoritative state — its lots with their dates —
as of this terminal's events through the `acked` it names (one snapshot on the server). The
ledger mirrors it exactly like a feed card entry (`terminal/ledger/mirror.py`): the server's
lots plus this terminal's events after `acked`, which the server has not stored yet. So with a
backlog the quote, which reads the ledger, sees the server's view plus what the terminal has
not yet sent — never an event counted twice, never one missing. An older server that sends no
lots: the ledger's state, at most the server's balance plus this terminal's unconfirmed debits.

Offline, `[sync] offline_redeem_max_points` caps the card's redemptions on this terminal over
the whole offline period: the points the card redeemed here since the server last spoke of it
(the ledger's `offline_redeemed`, reset by every server state of the card) count against it.
The cap is one negative lot the pricing core subtracts — the same trick the ledger uses for
holds. (The checkout applies the same cap to the quotes it makes: `Register._cap_offline`.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from typing import Any

from protocol import wire
from terminal.ledger import Ledger, LedgerError, LedgerNotFoundError
from terminal.sync.client import SyncClient
from terminal.sync.errors import TransientError

log = logging.getLogger("posterm.sync")

ENTRY_FIELDS = ("number", "type", "holder", "referrers", "cumulative", "blocked", "version", "balance", "lots")


def period_cap(summary: dict[str, Any], cap_points: int) -> int:
    """What the card may still redeem offline here: the cap less what it redeemed since the
    server last spoke of it."""
    return max(0, max(0, cap_points) - int(summary.get("offline_redeemed", 0)))


def cap_available(ledger: Ledger, card: dict[str, Any], number: str, now: Any, cap_points: int) -> dict[str, Any]:
    """Limit the points the core may offer to `cap_points` (one negative lot)."""
    available = ledger.card(number, now)["available"]
    if available > max(0, cap_points):
        card["lots"].append({"points": max(0, cap_points) - available, "available_from": None, "expires_at": None})
    return card


def _store_online(ledger: Ledger, entry: dict[str, Any], now: Any) -> int | None:
    """Mirror the server's card state; returns None, or — from an older server without lots,
    with events not yet acked — a cap for this sale: the server's balance plus this terminal's
    unconfirmed debits (counted even if the server has some of them already — the safe side)."""
    number = entry["number"]
    if "lots" not in entry:
        try:
            known = ledger.card(number, now)
        except LedgerNotFoundError:
            known = None
        if known is not None and known["server_version"] >= entry["version"]:
            return None
        if known is not None and ledger.backlog():
            return int(entry["balance"]) + min(0, int(known["local_delta"]))
    batch: dict[str, Any] = {"cards": [{k: entry[k] for k in ENTRY_FIELDS if k in entry}]}
    if "acked" in entry:
        batch["acked"] = entry["acked"]
    # Every lookup is a fresh contact (it restarts the offline period): its own operation id.
    digest = hashlib.sha256(wire.pack(batch)).hexdigest()[:16]
    ledger.apply_updates(f"card-{digest}-{time.time_ns()}", batch, now)
    return None


class CardLookup:
    def __init__(self, ledger: Ledger, client: SyncClient | None, timeout_ms: int, cap_points: int) -> None:
        self.ledger, self.client = ledger, client
        self.timeout_ms, self.cap_points = timeout_ms, cap_points
        self.reachable = True  # did the last lookup reach the server (the screen's fault says so)

    async def card_for_quote(self, number: str, now: Any, checkout: str | None = None) -> tuple[dict[str, Any], str]:
        """(the core's card dict, "online" | "offline"). LedgerNotFoundError: unknown offline."""
        entry = None
        if self.client is not None:
            try:
                entry = await asyncio.wait_for(self.client.get_card(number, self.timeout_ms), self.timeout_ms / 1000)
                self.reachable = True
            except (TransientError, TimeoutError) as exc:
                self.reachable = False
                log.info("event=card_lookup_offline card=%s reason=%r", number, str(exc)[:120])
        cap: int | None = None
        if entry is not None:
            try:
                cap = await asyncio.to_thread(_store_online, self.ledger, entry, now)
            except (LedgerError, TypeError, ValueError, KeyError) as exc:
                log.warning("event=card_lookup_refused card=%s reason=%r", number, str(exc)[:200])
                entry = None
        card = await asyncio.to_thread(self.ledger.card_for_quote, number, now, checkout)
        if entry is None:
            summary = await asyncio.to_thread(self.ledger.card, number, now)
            cap = period_cap(summary, self.cap_points)
        if cap is not None:
            card = await asyncio.to_thread(cap_available, self.ledger, card, number, now, cap)
        return card, "online" if entry is not None else "offline"
