"""Draining the outbox: the oldest unacked events, in one signed batch at a time.

A batch holds ≤ `wire.BATCH_EVENTS_MAX` events of one epoch and ≤ `wire.BATCH_BYTES_MAX` bytes
(halved until it fits). Events are marked acked only after the server's signed reply says it
committed them. `prev_mac` chains each batch to the one before; the terminal keeps it in memory
and learns it from the server's signed 409 `chain` reply after a restart (one extra round trip).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from protocol import wire
from terminal.ledger import Ledger
from terminal.ledger import outbox as ledger_outbox
from terminal.sync.client import SyncClient
from terminal.sync.errors import SyncError, TransientError

log = logging.getLogger("posterm.sync")

BATCHES_PER_DRAIN_MAX = 10_000
CHAIN_RETRIES_MAX = 2


class Rewind(Exception):
    """The server stored less than this ledger has acked (its database was restored from an
    older backup): send again from `seq`, which the outbox still holds (retention keeps acked
    events `events_keep_days`)."""

    def __init__(self, seq: int) -> None:
        super().__init__(seq)
        self.seq = seq


def build_batch(
    terminal: str, prev_mac: bytes, events: list[dict[str, Any]], bytes_max: int = wire.BATCH_BYTES_MAX
) -> tuple[bytes, list[dict[str, Any]]]:
    """The body for the longest prefix of `events` (one epoch) that fits in `bytes_max`."""
    if not events:
        raise SyncError("nothing to send")
    epoch = events[0]["epoch"]
    count = next((i for i, e in enumerate(events) if e["epoch"] != epoch), len(events))
    count = min(count, wire.BATCH_EVENTS_MAX)
    while count:
        body = wire.pack(
            {
                "v": wire.VERSION,
                "terminal": terminal,
                "epoch": epoch,
                "first_seq": events[0]["seq"],
                "last_seq": events[count - 1]["seq"],
                "prev_mac": prev_mac,
                "events": events[:count],
            }
        )
        if len(body) <= bytes_max:
            return body, events[:count]
        count //= 2
    raise SyncError(f"outbox event {events[0]['seq']} alone is over {bytes_max} bytes; it cannot be sent")


def events_after(ledger: Ledger, seq: int, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` committed outbox events after `seq`, gap-free — the read-ahead of the next
    batch while one is in flight. Reads the ledger's outbox module directly (read-only
    transaction; committed events never change)."""
    with ledger.store.env.begin() as txn:
        events = list(ledger_outbox.events_from(txn, ledger.store.dbs, seq + 1, limit))
    for expected, event in enumerate(events, seq + 1):
        if event["seq"] != expected:
            raise SyncError(f"outbox: expected sequence {expected}, found {event['seq']}")
    return events


class Drainer:
    """Sends the outbox, one batch in flight. While a batch is in flight the next one is read
    from the ledger, and a batch's ack is written while the next batch is in flight: the
    terminal's own work hides behind the server's (events are still acked only after the
    server's ack for them; a crash before the ack is written only resends them)."""

    def __init__(self, ledger: Ledger, client: SyncClient) -> None:
        self.ledger, self.client = ledger, client
        self.prev_mac = b""
        self.sent_events = 0

    async def _post(
        self, events: list[dict[str, Any]], body: bytes, batch: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """Post `body` (the longest batch of `events` that fits, rebuilt after a chain resync);
        returns (the batch sent, the seq the server acked)."""
        for attempt in range(CHAIN_RETRIES_MAX + 1):
            if attempt:
                body, batch = build_batch(self.ledger.terminal_id, self.prev_mac, events)
            status, reply = await self.client.post_batch(body)
            if status == 200:
                # Never ack beyond what this batch carried (a server with a longer history
                # than this ledger — restored from an old backup — must not make us skip events).
                through = min(int(reply["acked_through"]), batch[-1]["seq"])
                if through < batch[0]["seq"]:
                    raise TransientError(f"server acked {through}, before this batch's first event {batch[0]['seq']}")
                self.prev_mac = reply.get("prev_mac", b"")
                return batch, through
            if status == 409 and reply.get("error") in ("chain", "gap"):
                self._resync(batch, reply)
                continue
            raise SyncError(
                f"central refused batch {batch[0]['seq']}..{batch[-1]['seq']}: HTTP {status} "
                f"{reply.get('error')}: {str(reply.get('message'))[:200]}"
            )
        raise TransientError(f"batch from {events[0]['seq']}: the chain did not settle")

    def _resync(self, batch: list[dict[str, Any]], reply: dict[str, Any]) -> None:
        expected = int(reply.get("expected_seq", 0))
        self.prev_mac = reply.get("prev_mac", b"")
        if reply["error"] == "gap" or expected != batch[0]["seq"]:
            if 1 <= expected < batch[0]["seq"] and events_after(self.ledger, expected - 1, 1):
                raise Rewind(expected)
            raise SyncError(
                f"central expects seq {expected} but this terminal has acked through "
                f"{batch[0]['seq'] - 1}: the central database lost events this terminal no longer "
                "keeps (pruned, or a newer stream); see docs/protocol.md"
            )
        log.info("event=chain_resync first_seq=%s", batch[0]["seq"])

    async def _mark(self, through: int) -> int:
        result = await asyncio.to_thread(self.ledger.mark_acked, through)
        self.sent_events += result["newly_acked"]
        return int(result["newly_acked"])

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Send batches until the outbox is empty; returns the number of events acked."""
        total = 0
        acking: asyncio.Task[int] | None = None
        try:
            events = await asyncio.to_thread(self.ledger.outbox_pending, wire.BATCH_EVENTS_MAX)
            for _ in range(BATCHES_PER_DRAIN_MAX):
                if not events or (stop is not None and stop.is_set()):
                    break
                body, planned = build_batch(self.ledger.terminal_id, self.prev_mac, events)
                last = planned[-1]["seq"]
                ahead = asyncio.create_task(asyncio.to_thread(events_after, self.ledger, last, wire.BATCH_EVENTS_MAX))
                try:
                    batch, through = await self._post(events, body, planned)
                except Rewind as back:
                    log.warning("event=central_lost_events resend_from=%s acked_through=%s",
                                back.seq, planned[0]["seq"] - 1)
                    events = await asyncio.to_thread(events_after, self.ledger, back.seq - 1, wire.BATCH_EVENTS_MAX)
                    continue
                finally:
                    following = await ahead  # a thread cannot be cancelled: always join it
                if acking is not None:
                    total += await acking
                acking = asyncio.create_task(self._mark(through))
                if through != last or batch[-1]["seq"] != last:
                    # Not the planned batch (rebuilt smaller, or a partial ack): read afresh.
                    total += await acking
                    acking = None
                    following = await asyncio.to_thread(self.ledger.outbox_pending, wire.BATCH_EVENTS_MAX)
                events = following
        finally:
            if acking is not None:
                total += await acking
        return total
