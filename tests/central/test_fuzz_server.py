"""Fuzzing the live server: signed random and nearly valid bodies get 4xx answers (or 200 when
the fuzzer happened to build a valid batch) — never a 5xx, never a dead process."""

from __future__ import annotations

import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import wire
from tests.central.helpers import CentralProcess, provision, server_events, sqlite_dsn
from tests.central.test_fuzz_wire import fields

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[CentralProcess, bytes, str]]:
    with tempfile.TemporaryDirectory(prefix="posterm-fuzz-central-") as tmp:
        dsn = sqlite_dsn(Path(tmp))
        key = provision(dsn, "T01")
        server = CentralProcess(dsn, Path(tmp) / "central.log").start()
        try:
            yield server, key, dsn
        finally:
            server.stop()


def _post(server: CentralProcess, key: bytes, body: bytes) -> int:
    request = urllib.request.Request(
        server.url + "/v1/batches",
        data=body,
        method="POST",
        headers={wire.TERMINAL_HEADER: "T01", wire.MAC_HEADER: wire.sign(key, body)},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@FUZZ
@given(st.binary(max_size=4096))
def test_signed_random_bytes(live: tuple[CentralProcess, bytes, str], body: bytes) -> None:
    server, key, _ = live
    assert _post(server, key, body) in (400, 413)


@FUZZ
@given(fields)
def test_signed_nearly_valid_batches(live: tuple[CentralProcess, bytes, str], value: dict[str, Any]) -> None:
    server, key, _ = live
    try:
        body = msgpack.packb(value, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    # A fuzzed map may happen to be a valid batch (200) or a valid one out of sequence (409).
    assert _post(server, key, body) in (200, 400, 409, 413)


def test_nothing_was_stored_and_the_server_lives(live: tuple[CentralProcess, bytes, str]) -> None:
    server, _, dsn = live
    assert server.proc is not None and server.proc.poll() is None
    for _, epoch, seq, event_id, body in server_events(dsn):  # only whole, valid batches got in
        assert len(event_id) == 32 and body["seq"] == seq and body["epoch"] == epoch
    assert "Traceback" not in server.log()
