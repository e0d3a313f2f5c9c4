"""Hostile bodies to the local API of the real daemon process (over its Unix socket): random
JSON of every shape, random bytes, wrong media types, and the issue's seeds (a 30 000-deep
array, `1e999999`, a lone surrogate, `tenders: null`, 10^5-digit numbers). Property: a
documented status (200 or 400/403/404/409/413/415; 403: an attendant route without a session),
a refusal is `{"error": one line}` and leaves
the checkout as it was, and the daemon never logs a traceback and keeps running."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from terminal.client import DaemonProcess
from terminal.demo_run import setup
from tests.e2e.test_daemon_api_guards import UnixHTTPConnection, request

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
REFUSED = {400, 403, 404, 409, 413, 415}
ROUTES = ["/v1/checkout/lines", "/v1/checkout/card", "/v1/checkout/redeem", "/v1/checkout/pay",
          "/v1/returns", "/v1/shift/close", "/v1/checkout/lines/0", "/v1/receipts/T01-x/print"]
JSON_TYPE = {"Content-Type": "application/json"}
FIELDS = ["code", "qty", "number", "points", "method", "tenders", "receipt", "lines", "id", "shift",
          "amount", "reference", "line"]

scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=20),
                   st.sampled_from(["4600000000022", "max", "cash", "7700000000026", "0.350", "1e3", "-1"]))
json_value = st.recursive(scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), inner, max_size=4)),
    max_leaves=12)
body = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), json_value, max_size=4).map(lambda d: json.dumps(d).encode()),
    json_value.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=200),
)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DaemonProcess, Path]]:
    root = tmp_path_factory.mktemp("fuzz-http")
    proc = DaemonProcess(setup(root), root)
    proc.start()
    try:
        yield proc, root / "api.sock"
    finally:
        proc.stop()
    assert "Traceback" not in proc.log_tail(1_000_000), proc.log_tail()


def view(sock: Path) -> Any:
    status, _, data = request(UnixHTTPConnection(sock), "GET", "/v1/checkout")
    assert status == 200
    return data


def send(sock: Path, method: str, path: str, data: bytes, headers: dict[str, str]) -> None:
    before = view(sock)
    status, _, reply = request(UnixHTTPConnection(sock), method, path, data, headers)
    if status == 200:
        return
    assert status in REFUSED, (path, data[:200], status, reply)
    assert isinstance(reply, dict) and set(reply) == {"error"}, reply
    assert reply["error"] and "\n" not in reply["error"] and "Traceback" not in reply["error"]
    assert view(sock) == before, (path, data[:200], reply)


@FUZZ
@given(st.sampled_from(ROUTES), body)
@example("/v1/checkout/lines", b"[" * 30_000 + b"]" * 30_000)
@example("/v1/checkout/lines", b'{"code": "4600000000022", "qty": 1e999999}')
@example("/v1/checkout/lines", b'{"code": "46000\\ud800"}')
@example("/v1/checkout/lines", b'{"code": "4600000000022", "qty": ' + b"9" * 100_000 + b"}")
@example("/v1/checkout/pay", b'{"tenders": null}')
@example("/v1/checkout/redeem", b'{"points": 1e400}')
@example("/v1/shift/close", b'{"shift": 99999999999999999999999}')
@example("/v1/returns", b'{"receipt": "T01-x", "lines": [{"line": -1, "qty": "NaN"}]}')
def test_hostile_bodies_get_a_documented_status(daemon: tuple[DaemonProcess, Path], path: str, data: bytes) -> None:
    proc, sock = daemon
    method = "DELETE" if path.startswith("/v1/checkout/lines/") else "POST"
    send(sock, method, path, data, JSON_TYPE)
    assert proc.proc is not None and proc.proc.poll() is None, proc.log_tail()


@FUZZ
@given(st.sampled_from(ROUTES[:6]), body,
       st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "application/jsonx"]))
def test_bodies_of_other_media_types_change_nothing(daemon: tuple[DaemonProcess, Path], path: str, data: bytes,
                                                    content_type: str) -> None:
    _, sock = daemon
    headers = {"Content-Type": content_type} if content_type else {}
    before = view(sock)
    status, _, reply = request(UnixHTTPConnection(sock), "POST", path, data or b"{}", headers)
    assert status == 415 and "application/json" in reply["error"], (status, reply)
    assert view(sock) == before
