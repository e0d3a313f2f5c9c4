"""Hostile batches to the live central server (`posterm-central serve`), signed with the
terminal's real key so they pass the MAC and reach the parser: msgpack nested 10 000 deep,
containers that claim 2^32 elements, 10^30 integers, invalid UTF-8 and lone surrogates in
ids, floats for points, batches naming another terminal; plus random events inside an
otherwise valid batch. Property: a documented protocol status (400, 401, 409, 413), a signed
msgpack reply `{error, message}`, nothing stored, the server alive and without a traceback."""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from protocol import wire
from tests.central.helpers import CentralProcess, provision, server_events, sqlite_dsn

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
REFUSED = {400, 401, 409, 413}
Live = tuple[CentralProcess, bytes, str]


@pytest.fixture(scope="module")
def live() -> Iterator[Live]:
    with tempfile.TemporaryDirectory(prefix="posterm-fuzz-batches-") as tmp:
        dsn = sqlite_dsn(Path(tmp))
        key = provision(dsn, "T01")
        server = CentralProcess(dsn, Path(tmp) / "central.log").start()
        try:
            yield server, key, dsn
        finally:
            log = server.log()
            server.stop()
            assert "Traceback" not in log, log[-3000:]


def post(server: CentralProcess, key: bytes, body: bytes) -> tuple[int, bytes, str | None]:
    req = urllib.request.Request(server.url + "/v1/batches", data=body, method="POST",
                                 headers={wire.TERMINAL_HEADER: "T01", wire.MAC_HEADER: wire.sign(key, body),
                                          "Content-Type": wire.CONTENT_TYPE})
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return int(resp.status), resp.read(), resp.headers.get(wire.MAC_HEADER)
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read(), exc.headers.get(wire.MAC_HEADER)


def refused_cleanly(live: Live, body: bytes) -> None:
    server, key, dsn = live
    status, reply, mac = post(server, key, body)
    assert status in REFUSED, (status, reply[:300])
    if status != 413:  # a body refused from its size is answered before anyone is authenticated
        wire.verify(key, reply, mac)  # raises unless the refusal is signed with the terminal's key
    decoded = msgpack.unpackb(reply, raw=False)
    assert set(decoded) >= {"error", "message"} and "\n" not in decoded["message"], decoded
    assert server_events(dsn) == []
    assert server.proc is not None and server.proc.poll() is None


def batch(events: Any, **over: Any) -> dict[str, Any]:
    return {"v": 1, "terminal": "T01", "epoch": 1, "first_seq": 1, "last_seq": 1, "prev_mac": b"",
            "events": events, **over}


def deep(depth: int) -> bytes:
    return b"\x91" * depth + b"\xc0"  # fixarray of one element, nested


SEEDS = [
    deep(10_000),
    b"\xdd\xff\xff\xff\xff",  # array32 claiming 2^32 - 1 elements, none sent
    b"\xdf\xff\xff\xff\xff",  # map32 likewise
    msgpack.packb(batch([{"id": "\ud800".encode("utf-8", "surrogatepass")}]), use_bin_type=True),
    b"\x87" + msgpack.packb("v")[0:] + b"\xcf" + b"\xff" * 8,  # truncated map
    msgpack.packb(batch([{"id": "e1", "type": "sale", "points": 1.5}]), use_bin_type=True),
    msgpack.packb(batch([], first_seq=10**30 % 2**64, last_seq=2**64 - 1), use_bin_type=True),
    msgpack.packb(batch([{"id": "x" * 100_000}]), use_bin_type=True),
    msgpack.packb(batch([{"id": "e1"}], terminal="T02"), use_bin_type=True),
    msgpack.packb(batch([[1, 2, 3]] * 5000), use_bin_type=True),
]


@pytest.mark.parametrize("body", SEEDS, ids=[f"seed{i}" for i in range(len(SEEDS))])
def test_the_issue_seeds_are_refused_and_store_nothing(live: Live, body: bytes) -> None:
    refused_cleanly(live, body)


scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64 - 1), st.floats(allow_nan=True),
                   st.text(max_size=10), st.binary(max_size=10))
value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=10)
event = st.dictionaries(st.sampled_from(["id", "type", "seq", "at", "card", "points", "lots", "sale", "x"]),
                        value, max_size=6)


@FUZZ
@given(st.lists(event, min_size=1, max_size=4))
@example([{"id": "e1", "type": "sale", "lots": [{"points": 10**30}]}])
def test_random_events_in_a_signed_batch_are_refused(live: Live, events: list[dict[str, Any]]) -> None:
    try:
        body = msgpack.packb(batch(events, last_seq=len(events)), use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    refused_cleanly(live, body)
