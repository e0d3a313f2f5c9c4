"""Cash put into or taken out of the drawer outside a sale (float at the shift's start, a bank
drop): one `cash_in` / `cash_out` event with the amount and the attendant's reason, idempotent
by its id. The shift report sums them beside the cash the sales took. Limits: `REASON_CHARS_MAX`.
"""

from __future__ import annotations

from typing import Any

from terminal.ledger import fields, moments
from terminal.ledger.errors import LedgerInputError
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write

REASON_CHARS_MAX = 200
KINDS = ("in", "out")


def move(store: Store, op_id: str, kind: str, amount: Any, reason: Any, now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")
    if kind not in KINDS:
        raise LedgerInputError(f"cash {op_id}: kind must be in or out, got {kind!r}")
    amount = fields.whole(amount, f"cash {op_id} amount", 1)
    reason = fields.text(reason, f"cash {op_id} reason", REASON_CHARS_MAX)

    def body(tx: Tx) -> dict[str, Any]:
        seq = tx.event(f"cash_{kind}", at, {"amount": amount, "reason": reason})
        return {"id": op_id, "kind": kind, "amount": amount, "reason": reason, "seq": seq,
                "shift": tx.meta["shift"], "at": at.iso}

    return write(store, op_id, f"cash_{kind}", {"amount": amount, "reason": reason}, body)
