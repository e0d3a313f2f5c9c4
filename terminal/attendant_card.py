"""Attendant cards at the kiosk: a swipe or scan while the attendant prompt is open.

The screen opens the prompt (POST /v1/attendant/prompt, terminal.attendants.Desk); while it is
open, a card swipe — or a scanned code that is neither a product nor a receipt — is tried as an
attendant's card (one scrypt, in a thread, one check at a time with the PIN logins). A match
opens a session that the prompt's nonce collects; the `attendant_card` event says only who
came in, never the token. A customer's card (one the ledger knows) never opens a session: it
is told so and goes on as the customer's card. Unknown cards count as wrong tries.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from drivers.events import CardSwipe, Event, ScanEvent
from terminal.attendants import AttendantError, check_card
from terminal.checkout import CheckoutError
from terminal.ledger import LedgerError, LedgerNotFoundError

if TYPE_CHECKING:
    from terminal.daemon import Daemon


async def at_prompt(daemon: Daemon, event: Event) -> bool:
    """True when the event was taken as an attendant card (the checkout does not see it)."""
    if not isinstance(event, CardSwipe | ScanEvent) or not daemon.attendants.prompt_open(time.monotonic()):
        return False
    code = event.number if isinstance(event, CardSwipe) else event.code
    try:
        check_card(code)
    except AttendantError:
        return False
    if isinstance(event, ScanEvent) and _known_code(daemon, event):
        return False  # a product or a receipt scanned while the prompt is open: as usual
    if _customer_card(daemon, code):
        daemon.publish("attendant_card", {"state": "refused", "reason": "a customer's card opens no attendant session"})
        return False
    try:
        async with daemon.login_lock:
            entry = await asyncio.to_thread(daemon.attendants.check_card, code, time.time())
    except AttendantError as exc:
        daemon.publish("attendant_card", {"state": "refused", "reason": str(exc)})
        return True
    session = daemon.attendants.card_session(entry, time.monotonic())
    daemon.publish("attendant_card", {"state": "in", "attendant": session.name, "role": session.role})
    return True


def _known_code(daemon: Daemon, event: ScanEvent) -> bool:
    if event.gs1_item is not None:
        return True
    try:
        daemon.register.product_line(event.code)
        return True
    except CheckoutError:
        pass
    try:
        return daemon.ledger.receipt(event.code) is not None
    except LedgerError:
        return False


def _customer_card(daemon: Daemon, code: str) -> bool:
    from terminal.daemon import now_local

    try:
        daemon.ledger.card(code, now_local())
    except LedgerNotFoundError:
        return False
    except LedgerError:
        return True  # cannot tell: no session on a number that might be a customer's
    return True
