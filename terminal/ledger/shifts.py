"""Shifts: every event carries the open shift's number; a Z report closes it (one `shift_close`
event with the shift's totals) and opens the next. Idempotent by the close's id."""

from __future__ import annotations

from typing import Any

from terminal.ledger import moments
from terminal.ledger.store import Store
from terminal.ledger.tx import Tx, write


def close(store: Store, op_id: str, totals: dict[str, Any], now: Any) -> dict[str, Any]:
    at = moments.moment(now, "now")

    def body(tx: Tx) -> dict[str, Any]:
        shift = tx.meta["shift"]
        seq = tx.event("shift_close", at, {"closed_shift": shift, "totals": totals})
        tx.meta["shift"] = shift + 1
        tx.meta["shift_opened_at"] = at.iso
        tx.meta["shift_first_seq"] = seq + 1
        return {"closed_shift": shift, "seq": seq, "totals": totals}

    return write(store, op_id, "shift_close", {"totals": totals}, body)
