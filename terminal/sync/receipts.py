"""A return at any terminal of the chain: a receipt this ledger does not hold is looked up at
the central server (signed, within `[sync] card_timeout_ms`) and adopted into the ledger
(terminal/ledger/adopted.py), so the return is taken here like one of our own sales.

Offline — the server does not answer in time — the return is refused with what to do: this
terminal cannot know what that sale was, nor whether it was returned already. The card the sale
names is fetched too when the ledger lacks it. A receipt the server does not know either is
refused as unknown.

A receipt this ledger holds (our own sale, or one adopted earlier) is looked up too when the
server answers in time: returns of it made at other terminals are folded in
(`Ledger.merge_returns`), so they count towards the remainders and the receipt is not returned
twice. Offline, or not yet at the server, the return goes on with what this ledger knows — a
terminal's own returns must work offline (README "Returns at any terminal").
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from terminal.ledger import Ledger, LedgerError, LedgerNotFoundError
from terminal.sync.cards import _store_online
from terminal.sync.client import SyncClient
from terminal.sync.errors import SyncError, TransientError

log = logging.getLogger("posterm.sync")

# A receipt barcode as `terminal.checkout.new_checkout_id` makes it: terminal id, UTC time, 4 hex.
_RECEIPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,40}-[0-9]{14}-[0-9a-f]{4}")


def is_receipt_id(code: str) -> bool:
    """`code` has the shape of a receipt barcode of some terminal of the chain."""
    return _RECEIPT_ID.fullmatch(code) is not None


class ReceiptOfflineError(SyncError):
    """Another terminal's receipt and the central server is unreachable: no return now."""

    status = 503


async def adopt_from_central(
    ledger: Ledger, client: SyncClient | None, receipt: str, timeout_ms: int, now: Any
) -> bool:
    """Make `receipt` available in the ledger for a return; True when it was adopted now.
    A receipt already here is left alone (False)."""
    if await asyncio.to_thread(ledger.receipt, receipt) is not None:
        if client is not None:
            await _merge_elsewhere(ledger, client, receipt, timeout_ms)
        return False
    if client is None:
        raise ReceiptOfflineError(_offline(receipt, "the sync task has not started"))
    try:
        sale = await asyncio.wait_for(client.get_receipt(receipt, timeout_ms), timeout_ms / 1000)
        if sale is not None and sale.get("card") and not await _has_card(ledger, sale["card"], now):
            entry = await asyncio.wait_for(client.get_card(sale["card"], timeout_ms), timeout_ms / 1000)
            if entry is not None:
                await asyncio.to_thread(_store_online, ledger, entry, now)
    except (TransientError, TimeoutError) as exc:
        log.info("event=receipt_lookup_offline receipt=%s reason=%r", receipt, str(exc)[:120])
        raise ReceiptOfflineError(_offline(receipt, str(exc)[:120] or "timeout")) from None
    if sale is None:
        raise LedgerNotFoundError(f"receipt {receipt}: not in this terminal's ledger, nor at the central server")
    done = await asyncio.to_thread(ledger.adopt_receipt, sale, now)
    log.info("event=receipt_adopted receipt=%s from=%s", receipt, sale.get("terminal"))
    return bool(done["adopted"])


async def _merge_elsewhere(ledger: Ledger, client: SyncClient, receipt: str, timeout_ms: int) -> None:
    try:
        sale = await asyncio.wait_for(client.get_receipt(receipt, timeout_ms), timeout_ms / 1000)
    except (TransientError, TimeoutError, SyncError) as exc:
        log.info("event=receipt_returns_unchecked receipt=%s reason=%r", receipt, str(exc)[:120])
        return
    if sale is None or not sale.get("returns"):
        return
    try:
        done = await asyncio.to_thread(ledger.merge_returns, receipt, sale["returns"])
    except LedgerError as exc:  # the server's data must not stop a return made here
        log.warning("event=receipt_returns_refused receipt=%s reason=%r", receipt, str(exc)[:200])
        return
    if done["merged"]:
        log.info("event=receipt_returns_merged receipt=%s returns=%d", receipt, len(done["merged"]))


async def _has_card(ledger: Ledger, number: Any, now: Any) -> bool:
    try:
        await asyncio.to_thread(ledger.card, number, now)
    except LedgerNotFoundError:
        return False
    return True


def _offline(receipt: str, reason: str) -> str:
    return (
        f"receipt {receipt} is not from this terminal and the central server cannot be reached "
        f"({reason}): a return of another terminal's sale needs it — try again when the terminal "
        "is online, or make the return at the terminal that sold it"
    )
