"""The event bus behind the API's SSE stream: every published event goes to each client's own
bounded queue. A client that falls `CLIENT_QUEUE_MAX` events behind is cut off (it gets an
`overflow` event and should re-read GET /v1/checkout and reconnect) — a slow UI must never
slow the checkout or grow memory. Limits: `CLIENTS_MAX`, `CLIENT_QUEUE_MAX`, `RECENT_MAX`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from dataclasses import dataclass, field
from typing import Any

CLIENTS_MAX = 16
CLIENT_QUEUE_MAX = 256
RECENT_MAX = 64


@dataclass(eq=False)
class Client:
    queue: asyncio.Queue[tuple[int, str, str]] = field(
        default_factory=lambda: asyncio.Queue(CLIENT_QUEUE_MAX))
    overflowed: bool = False


class Bus:
    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.next_id = 1
        self.recent: collections.deque[tuple[int, str, str]] = collections.deque(maxlen=RECENT_MAX)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        body = json.dumps({**data, "ts_ms": int(time.time() * 1000)}, ensure_ascii=False, default=str)
        item = (self.next_id, kind, body)
        self.next_id += 1
        self.recent.append(item)
        for client in self.clients:
            if client.overflowed:
                continue
            try:
                client.queue.put_nowait(item)
            except asyncio.QueueFull:
                client.overflowed = True

    def close(self) -> None:
        """Tell every client the daemon is stopping, so their streams end now (not at a ping)."""
        item = (self.next_id, "shutdown", "{}")
        for client in self.clients:
            if client.queue.full():
                client.queue.get_nowait()  # make room: the shutdown notice must get through
            client.queue.put_nowait(item)

    def subscribe(self) -> Client | None:
        """A new client, or None when `CLIENTS_MAX` are connected already."""
        if len(self.clients) >= CLIENTS_MAX:
            return None
        client = Client()
        self.clients.add(client)
        return client

    def unsubscribe(self, client: Client) -> None:
        self.clients.discard(client)


def sse_frame(event_id: int, kind: str, body: str) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {body}\n\n".encode()
