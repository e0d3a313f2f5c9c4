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

from central import wire
from terminal.ledger import Ledger
from terminal.sync.client import SyncClient
from terminal.sync.errors import SyncError, TransientError

log = logging.getLogger("posterm.sync")

BATCHES_PER_DRAIN_MAX = 10_000
CHAIN_RETRIES_MAX = 2


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


class Drainer:
    def __init__(self, ledger: Ledger, client: SyncClient) -> None:
        self.ledger, self.client = ledger, client
        self.prev_mac = b""
        self.sent_events = 0

    async def send_one(self) -> int:
        """Send the oldest pending batch; returns how many events became acked (0: none pending)."""
        events = await asyncio.to_thread(self.ledger.outbox_pending, wire.BATCH_EVENTS_MAX)
        if not events:
            return 0
        for _ in range(CHAIN_RETRIES_MAX + 1):
            body, batch = build_batch(self.ledger.terminal_id, self.prev_mac, events)
            status, reply = await self.client.post_batch(body)
            if status == 200:
                return await self._acked(batch, reply)
            if status == 409 and reply.get("error") in ("chain", "gap"):
                self._resync(batch, reply)
                continue
            raise SyncError(
                f"central refused batch {batch[0]['seq']}..{batch[-1]['seq']}: HTTP {status} "
                f"{reply.get('error')}: {str(reply.get('message'))[:200]}"
            )
        raise TransientError(f"batch from {events[0]['seq']}: the chain did not settle")

    async def _acked(self, batch: list[dict[str, Any]], reply: dict[str, Any]) -> int:
        # Never ack beyond what this batch carried (a server with a longer history than this
        # ledger — restored from an old backup — must not make us skip events).
        through = min(int(reply["acked_through"]), batch[-1]["seq"])
        if through < batch[0]["seq"]:
            raise TransientError(f"server acked {through}, before this batch's first event {batch[0]['seq']}")
        result = await asyncio.to_thread(self.ledger.mark_acked, through)
        self.prev_mac = reply.get("prev_mac", b"")
        self.sent_events += result["newly_acked"]
        log.debug("event=batch_acked first_seq=%s acked_through=%s", batch[0]["seq"], through)
        return int(result["newly_acked"]) or len(batch)

    def _resync(self, batch: list[dict[str, Any]], reply: dict[str, Any]) -> None:
        expected = int(reply.get("expected_seq", 0))
        self.prev_mac = reply.get("prev_mac", b"")
        if reply["error"] == "gap" or expected != batch[0]["seq"]:
            # The server stored less than this ledger believes acked (its database was restored):
            # the events are still in the outbox, but resending acked ones is a technician's call.
            raise SyncError(
                f"central expects seq {expected} but this terminal has acked through "
                f"{batch[0]['seq'] - 1}: the central database lost events; see docs/protocol.md"
            )
        log.info("event=chain_resync first_seq=%s", batch[0]["seq"])

    async def drain(self, stop: asyncio.Event | None = None) -> int:
        """Send batches until the outbox is empty; returns the number of events acked."""
        total = 0
        for _ in range(BATCHES_PER_DRAIN_MAX):
            if stop is not None and stop.is_set():
                break
            sent = await self.send_one()
            if not sent:
                break
            total += sent
        return total
