"""The shared wire format: limits, MACs, strict decoding."""

from __future__ import annotations

import os
from typing import Any

import msgpack
import pytest

from protocol import wire
from tests.central.events import complete


def ev(seq: int, **extra: Any) -> dict[str, Any]:
    return complete({"id": os.urandom(16).hex(), "epoch": 1, "seq": seq, "type": "sale", "deltas": {"C1": -1}, **extra})


def test_roundtrip() -> None:
    events = [ev(5), ev(6)]
    body = wire.encode_batch("T01", 1, b"\x00" * 32, events)
    batch = wire.decode_batch(body)
    assert (batch.terminal, batch.first_seq, batch.last_seq, batch.events) == ("T01", 5, 6, events)


def test_mac_over_exact_bytes() -> None:
    key = os.urandom(32)
    body = wire.encode_batch("T01", 1, b"", [ev(1)])
    mac = wire.sign(key, body)
    assert wire.verify(key, body, mac) == bytes.fromhex(mac)
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    for data, given in ((tampered, mac), (body, wire.sign(os.urandom(32), body)), (body, None), (body, "zz" * 32)):
        with pytest.raises(wire.AuthError):
            wire.verify(key, data, given)


def test_event_and_byte_limits() -> None:
    with pytest.raises(wire.ProtocolError, match="more than 1000"):
        wire.encode_batch("T01", 1, b"", [ev(i) for i in range(1, 1002)])
    big = wire.pack({"v": 1, "pad": b"x" * 10, "s": "y" * (wire.BATCH_BYTES_MAX)})
    with pytest.raises(wire.TooLargeError):
        wire.decode_batch(big)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"seq": 7}, "expected 1"),
        ({"epoch": 2}, "epoch"),
        ({"id": "nothex"}, "id must be"),
        ({"type": ""}, "type"),
        ({"deltas": {"C1": "5"}}, "integer"),
        ({"deltas": {"C1": True}}, "integer"),
    ],
)
def test_bad_events_are_refused(change: dict[str, Any], message: str) -> None:
    body = wire.pack(
        {
            "v": 1,
            "terminal": "T01",
            "epoch": 1,
            "first_seq": 1,
            "last_seq": 1,
            "prev_mac": b"",
            "events": [{**ev(1), **change}],
        }
    )
    with pytest.raises(wire.ProtocolError, match=message):
        wire.decode_batch(body)


def test_strict_map_keys_depth_and_trailing_bytes() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.unpack(msgpack.packb({1: 2}), 1000)
    deep: Any = 1
    for _ in range(wire.DEPTH_MAX + 1):
        deep = [deep]
    with pytest.raises(wire.ProtocolError, match="nesting"):
        wire.unpack(msgpack.packb(deep), 1000)
    with pytest.raises(wire.ProtocolError, match="trailing bytes"):
        wire.unpack(msgpack.packb(1) + msgpack.packb(2), 1000)
    with pytest.raises(wire.ProtocolError, match="unknown field"):
        wire.decode_batch(wire.pack({"v": 1, "extra": 1}))


def test_updates_parser() -> None:
    page = wire.decode_updates(wire.encode_updates({"cursor": 3, "more": False, "acked": None, "cards": [{}]}))
    assert page["cursor"] == 3
    for bad in (
        {"cursor": -1, "more": False},
        {"cursor": 1, "more": 1},
        {"cursor": 1, "more": False, "cards": {}},
        {"cursor": 1, "more": False, "rules": {"version": "", "text": ""}},
    ):
        with pytest.raises(wire.ProtocolError):
            wire.decode_updates(wire.pack({"v": 1, **bad}))


def test_a_partial_value_after_the_message_is_refused() -> None:
    body = wire.encode_batch("T01", 1, b"", [ev(1)])
    for tail in (b"\xdc", b"\xdc\x00", b"\x92\x01"):
        with pytest.raises(wire.ProtocolError, match="trailing bytes"):
            wire.decode_batch(body + tail)


def test_a_deeply_nested_event_is_refused_by_its_schema() -> None:
    deep: Any = 1
    for _ in range(wire.DEPTH_MAX * 4):
        deep = [deep]
    for bad in (ev(1, lines=deep), ev(1, gifts=[deep]), ev(1, lots={"C1": deep})):
        with pytest.raises(wire.ProtocolError, match="event 1 field"):
            wire.decode_batch(wire.pack({"v": 1, "terminal": "T01", "epoch": 1, "first_seq": 1, "last_seq": 1,
                                         "prev_mac": b"", "events": [bad]}))
