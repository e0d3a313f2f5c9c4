"""Manual adjustments by a technician: add or remove points on a card with a reason.

Adding creates a lot (available now; never expiring unless `expires_at` is given). Removing
takes from unexpired lots soonest-expiring first and is refused when the card cannot cover it:
only a return may leave a debt. Idempotent by the adjustment's id.
"""

from __future__ import annotations

from typing import Any

from terminal.ledger import fields, lots, moments
from terminal.ledger.errors import LedgerBalanceError, LedgerInputError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

REASON_CHARS_MAX = 256
ADJUST_POINTS_MAX = 10**9


def adjust(
    store: Store,
    op_id: str,
    number: str,
    points: int,
    reason: str,
    technician: str,
    now: Any,
    expires_at: Any = None,
) -> dict[str, Any]:
    at = moments.moment(now, "now")
    end = moments.optional(expires_at, "adjustment expires_at")
    fields.whole(points, f"adjustment {op_id} points", -ADJUST_POINTS_MAX, ADJUST_POINTS_MAX)
    if points == 0:
        raise LedgerInputError(f"adjustment {op_id}: points must not be 0")
    fields.text(
        reason.strip() if isinstance(reason, str) else reason,
        f"adjustment {op_id} reason",
        REASON_CHARS_MAX,
    )
    fields.text(technician, f"adjustment {op_id} technician", 64)
    if end is not None and end.ms <= at.ms:
        raise LedgerInputError(f"adjustment {op_id}: expires_at is not after now")
    request = {
        "card": number,
        "points": points,
        "reason": reason,
        "technician": technician,
        "expires_at": None if end is None else end.iso,
    }

    def body(tx: Tx) -> dict[str, Any]:
        card = tx.card(number)
        if points > 0:
            lots.add(tx, number, points, at, end, f"adjustment {op_id}")
        else:
            _, short = lots.take(tx, number, -points, at.ms, only_available=False)
            if short:
                raise LedgerBalanceError(
                    f"card {number}: has {-points - short} unexpired points, "
                    f"adjustment {op_id} removes {-points}; nothing changed"
                )
        seq = tx.event(
            "adjustment",
            at,
            {"card": number, "points": points, "reason": reason, "technician": technician},
        )
        return {
            "card": number,
            "points": points,
            "seq": seq,
            "balance": card["server_balance"] + card["local_delta"],
        }

    return write(store, op_id, "adjustment", request, body)
