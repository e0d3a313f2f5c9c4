"""Crash points for the end-to-end crash tests: `POSTERM_FAILPOINTS=after_commit` makes the
daemon SIGKILL itself at that point, exactly where a power cut could hit. Off (one dict lookup)
unless the variable is set; the systemd unit never sets it. Names: `before_commit` (payment
confirmed and recorded, ledger not yet written), `after_commit` (sale committed, receipt not
yet queued), `after_authorize` (the payment terminal approved a card payment, nothing recorded
yet), `after_refund` (the payment terminal refunded a card part of a return, the return not yet
committed)."""

from __future__ import annotations

import os
import signal

NAMES = frozenset({"before_commit", "after_commit", "after_authorize", "after_refund"})
_ARMED = frozenset(os.environ.get("POSTERM_FAILPOINTS", "").split(",")) & NAMES


def hit(name: str) -> None:
    if name in _ARMED:
        os.kill(os.getpid(), signal.SIGKILL)
