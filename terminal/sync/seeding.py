"""The first sync of a ledger whose cards were imported on the terminal (`posterm ledger
import-cards` before the terminal had a server).

The server would meet those cards first in this terminal's events: it would start them from a
zero balance and an empty holder, and its feed would then turn the opening balances into debts
and blank the names (the bug this module exists for). So while the ledger records local cards
(`meta["local_cards"]`), a sync round first pulls the whole feed (nothing has been sent yet, so
no balance in it can include an unacked event of ours) and sends nothing until every card of
the ledger is one the server has confirmed. Cards the server does not know are refused with
what to do: publish the same card file at central. Once all are known, the mark is cleared and
sync goes on as usual.
"""

from __future__ import annotations

import datetime as dt

from terminal.ledger import Ledger
from terminal.sync.errors import SyncError
from terminal.sync.updates import UpdatesPuller

NAMED_MAX = 3


class LocalCardsError(SyncError):
    """Cards imported on this terminal are unknown to the central server; nothing was sent."""


async def confirm_local_cards(ledger: Ledger, puller: UpdatesPuller) -> int:
    """Pages pulled (0 when the ledger has no unconfirmed local import). Raises LocalCardsError."""
    if not ledger.meta().get("local_cards"):
        return 0
    pages = await puller.pull()
    unknown = ledger.unconfirmed_cards(NAMED_MAX + 1)
    if unknown:
        named = ", ".join(unknown[:NAMED_MAX]) + (" and more" if len(unknown) > NAMED_MAX else "")
        raise LocalCardsError(
            f"cards imported on this terminal are unknown to the central server (card {named}); "
            "publish the same card file there (posterm-central publish cards FILE) — nothing is "
            "sent until it knows them"
        )
    ledger.local_cards_confirmed(dt.datetime.now(dt.UTC))
    return pages
