"""Card state at swipe time: fresh from the central server when it answers within
`card_timeout_ms`, else the ledger's with the offline redemption cap.

Online, a card this ledger does not know is stored at once (so the sale can commit), and a
known card takes the server's state only while the outbox is empty — with events the server
may already hold but we have not seen acked, its balance could count them twice (the updates
feed corrects the card later); meanwhile the sale may use at most the server's balance plus
this terminal's unconfirmed debits. Offline, the card's available points are capped at
`[sync] offline_redeem_max_points` per sale (the rules file has no such field), by one
negative lot the pricing core subtracts — the same trick the ledger uses for holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

from terminal.ledger import Ledger, LedgerError, LedgerNotFoundError
from terminal.sync.client import SyncClient
from terminal.sync.errors import TransientError

log = logging.getLogger("posterm.sync")

ENTRY_FIELDS = ("number", "type", "holder", "referrers", "cumulative", "blocked", "version", "balance")


def cap_available(ledger: Ledger, card: dict[str, Any], number: str, now: Any, cap_points: int) -> dict[str, Any]:
    """Limit the points the core may offer to `cap_points` (one negative lot)."""
    available = ledger.card(number, now)["available"]
    if available > max(0, cap_points):
        card["lots"].append({"points": max(0, cap_points) - available, "available_from": None, "expires_at": None})
    return card


def _store_online(ledger: Ledger, entry: dict[str, Any], now: Any) -> int | None:
    """Store the server's card state when that is safe; else return a cap for this sale:
    the server's balance plus this terminal's unconfirmed debits (counted even if the server
    has some of them already — the safe side)."""
    number = entry["number"]
    try:
        known = ledger.card(number, now)
    except LedgerNotFoundError:
        known = None
    if known is not None and known["server_version"] >= entry["version"]:
        return None
    if known is not None and ledger.backlog():
        return int(entry["balance"]) + min(0, int(known["local_delta"]))
    batch = {"cards": [{k: entry[k] for k in ENTRY_FIELDS if k in entry}]}
    digest = hashlib.sha256(number.encode()).hexdigest()[:16]
    ledger.apply_updates(f"card-{digest}-{entry['version']}", batch, now)
    return None


class CardLookup:
    def __init__(self, ledger: Ledger, client: SyncClient | None, timeout_ms: int, cap_points: int) -> None:
        self.ledger, self.client = ledger, client
        self.timeout_ms, self.cap_points = timeout_ms, cap_points

    async def card_for_quote(self, number: str, now: Any, checkout: str | None = None) -> tuple[dict[str, Any], str]:
        """(the core's card dict, "online" | "offline"). LedgerNotFoundError: unknown offline."""
        entry = None
        if self.client is not None:
            try:
                entry = await asyncio.wait_for(self.client.get_card(number, self.timeout_ms), self.timeout_ms / 1000)
            except (TransientError, TimeoutError) as exc:
                log.info("event=card_lookup_offline card=%s reason=%r", number, str(exc)[:120])
        cap: int | None = self.cap_points
        if entry is not None:
            try:
                cap = await asyncio.to_thread(_store_online, self.ledger, entry, now)
            except (LedgerError, TypeError, ValueError) as exc:
                log.warning("event=card_lookup_refused card=%s reason=%r", number, str(exc)[:200])
                entry, cap = None, self.cap_points
        card = await asyncio.to_thread(self.ledger.card_for_quote, number, now, checkout)
        if cap is not None:
            card = await asyncio.to_thread(cap_available, self.ledger, card, number, now, cap)
        return card, "online" if entry is not None else "offline"
