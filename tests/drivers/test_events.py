import asyncio

import pytest

from drivers.events import EventQueue, RejectedInput, ScanEvent, preview


def test_queue_is_bounded_and_drops_the_oldest():
    async def main():
        queue = EventQueue(maxsize=2)
        for code in ("1", "2", "3"):
            queue.emit(ScanEvent("s", code, "text"))
        assert queue.dropped == 1
        assert await queue.get() == ScanEvent("s", "2", "text")
        assert queue.drain() == [ScanEvent("s", "3", "text")]

    asyncio.run(main())
    with pytest.raises(ValueError):
        EventQueue(0)


def test_events_are_frozen_and_previews_short():
    event = RejectedInput("s", "why", preview(b"\x00" + b"x" * 100))
    with pytest.raises(AttributeError):
        event.reason = "other"  # type: ignore[misc]
    assert event.raw_preview.startswith("\\x00xxx") and event.raw_preview.endswith("…")
    assert len(event.raw_preview) <= 41
