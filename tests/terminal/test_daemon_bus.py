"""The SSE event bus: bounded per-client queues, slow clients cut off, a client limit."""

from __future__ import annotations

import asyncio
import json

from terminal.bus import CLIENT_QUEUE_MAX, CLIENTS_MAX, Bus, sse_frame


def test_every_client_gets_every_event_in_order() -> None:
    async def scenario() -> None:
        bus = Bus()
        a, b = bus.subscribe(), bus.subscribe()
        assert a is not None and b is not None
        bus.publish("scan", {"code": "1"})
        bus.publish("quote", {"total": 5})
        for client in (a, b):
            first, second = client.queue.get_nowait(), client.queue.get_nowait()
            assert (first[1], second[1]) == ("scan", "quote") and first[0] < second[0]
            assert json.loads(second[2])["total"] == 5

    asyncio.run(scenario())


def test_a_slow_client_is_cut_off_and_others_are_not_slowed() -> None:
    async def scenario() -> None:
        bus = Bus()
        slow, fast = bus.subscribe(), bus.subscribe()
        assert slow is not None and fast is not None
        for i in range(CLIENT_QUEUE_MAX + 10):
            bus.publish("scan", {"i": i})
            fast.queue.get_nowait()
        assert slow.overflowed and slow.queue.qsize() == CLIENT_QUEUE_MAX
        assert not fast.overflowed
        bus.close()  # the shutdown notice gets through even to a full queue
        kinds = [slow.queue.get_nowait()[1] for _ in range(slow.queue.qsize())]
        assert kinds[-1] == "shutdown"

    asyncio.run(scenario())


def test_client_limit_and_frame_format() -> None:
    async def scenario() -> None:
        bus = Bus()
        clients = [bus.subscribe() for _ in range(CLIENTS_MAX)]
        assert all(clients) and bus.subscribe() is None
        first = clients[0]
        assert first is not None
        bus.unsubscribe(first)
        assert bus.subscribe() is not None

    asyncio.run(scenario())
    assert sse_frame(7, "quote", '{"a": 1}') == b'id: 7\nevent: quote\ndata: {"a": 1}\n\n'
