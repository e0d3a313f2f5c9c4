"""The local API against a hostile browser and client, on the real daemon: JSON only as
`application/json` (415), Host and Origin checked on TCP (403), 405 with `Allow`, `tenders:
null` refused, deep JSON refused, and event-stream clients that stop reading dropped."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

from terminal.bus import CLIENTS_MAX
from terminal.client import ApiClient

from .conftest import Terminal

MILK = "4600000000022"
WAIT_S = 30.0  # bounded waits for the daemon to react; never asserted as a duration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def enable_tcp_config(config: Path, socket_path: Path) -> int:
    """Give a provisioned terminal's config a loopback TCP listener (a fresh port in place of the
    one provisioning chose for the screen); returns its port."""
    port = free_port()
    text = config.read_text()
    line = f'socket = "{socket_path}"\n'
    assert line in text
    text = re.sub(r"(?m)^tcp_port = \d+\n", "", text)
    config.write_text(text.replace(line, line + f"tcp_port = {port}\n"))
    return port


def enable_tcp(term: Terminal) -> int:
    return enable_tcp_config(term.config, term.socket)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("posterm", timeout=10)
        self.path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def request(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One raw request with exactly the headers given (plus Host unless given)."""
    headers = dict(headers or {})
    conn.connect()
    conn.putrequest(method, path, skip_host="Host" in headers, skip_accept_encoding=True)
    for key, value in headers.items():
        conn.putheader(key, value)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    try:
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    try:
        parsed = json.loads(data) if data else None
    except ValueError:
        parsed = {"error": data.decode(errors="replace")[:300]}
    return response.status, dict(response.getheaders()), parsed


def tcp(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def state(term: Terminal) -> str:
    status, _, body = request(UnixHTTPConnection(term.socket), "GET", "/v1/checkout")
    assert status == 200
    return str(body["state"])


def test_bodies_must_be_json_on_both_listeners(terminal: Terminal) -> None:
    port = enable_tcp(terminal)
    terminal.start()
    line = json.dumps({"code": MILK}).encode()
    for conn in (UnixHTTPConnection(terminal.socket), tcp(port)):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
            status, _, body = request(conn, "POST", "/v1/checkout/lines", line, {"Content-Type": content_type})
            assert status == 415 and "application/json" in body["error"], (content_type, body)
        status, _, body = request(conn, "POST", "/v1/checkout/lines", line)  # no Content-Type at all
        assert status == 415
    assert state(terminal) == "idle"  # nothing was added
    status, _, body = request(tcp(port), "POST", "/v1/checkout/lines", line,
                              {"Content-Type": "application/json; charset=utf-8"})
    assert status == 200 and len(body["lines"]) == 1


def test_tcp_checks_host_and_origin(terminal: Terminal) -> None:
    port = enable_tcp(terminal)
    terminal.start()
    line = json.dumps({"code": MILK}).encode()
    json_type = {"Content-Type": "application/json"}
    refused = [
        {"Host": f"rebound.example:{port}"},  # DNS rebinding: the page's own name in Host
        {"Host": "127.0.0.1:1"},
        {"Host": ""},
        {"Host": f"127.0.0.1:{port}", "Origin": "http://evil.example"},
        {"Host": f"127.0.0.1:{port}", "Origin": "null"},
        {"Host": f"127.0.0.1:{port}", "Origin": f"https://127.0.0.1:{port}"},
    ]
    for headers in refused:
        status, _, body = request(tcp(port), "POST", "/v1/checkout/lines", line, {**headers, **json_type})
        assert status == 403 and "error" in body, headers
        status, _, _ = request(tcp(port), "GET", "/v1/status", None, headers)
        assert status == 403, headers
    assert state(terminal) == "idle"
    for headers in ({"Host": f"localhost:{port}"}, {"Host": f"127.0.0.1:{port}", "Origin": f"http://localhost:{port}"}):
        status, _, _ = request(tcp(port), "GET", "/v1/checkout", None, headers)
        assert status == 200, headers
    # The Unix socket is not reachable from a browser: any Host is fine there.
    status, _, _ = request(UnixHTTPConnection(terminal.socket), "GET", "/v1/checkout", None, {"Host": "x.example"})
    assert status == 200


def test_405_names_the_allowed_methods_and_null_tenders_are_refused(terminal: Terminal) -> None:
    terminal.start()
    unix = UnixHTTPConnection(terminal.socket)
    status, headers, body = request(unix, "PUT", "/v1/checkout")
    assert status == 405 and "GET" in headers["Allow"] and "error" in body
    status, headers, _ = request(unix, "GET", "/v1/checkout/pay")
    assert status == 405 and "POST" in headers["Allow"]
    json_type = {"Content-Type": "application/json"}
    assert request(unix, "POST", "/v1/checkout/lines", json.dumps({"code": MILK}).encode(), json_type)[0] == 200
    for bad in ({"tenders": None}, {"tenders": {}}, {"tenders": "cash"}):
        status, _, body = request(unix, "POST", "/v1/checkout/pay", json.dumps(bad).encode(), json_type)
        assert status == 400 and "tenders" in body["error"], bad
    assert state(terminal) == "open"  # not committed, still the same checkout
    deep = b"[" * 30_000 + b"]" * 30_000
    status, _, body = request(unix, "POST", "/v1/checkout/lines", deep, json_type)
    assert status in (400, 413) and "error" in body
    deep_small = b'{"code": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    status, _, body = request(unix, "POST", "/v1/checkout/lines", deep_small, json_type)
    assert status in (400, 413) and "error" in body
    assert state(terminal) == "open"


def stalled_events_client(port: int) -> socket.socket:
    """GET /v1/events on a socket that is never read (a tiny receive buffer fills at once)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    return sock


def test_event_clients_that_stop_reading_are_dropped(terminal: Terminal) -> None:
    port = enable_tcp(terminal)
    terminal.start()
    stalled = [stalled_events_client(port) for _ in range(CLIENTS_MAX)]

    async def events_status() -> int:
        async with ApiClient(terminal.socket) as api, api.session.get("/v1/events") as response:  # type: ignore[union-attr]
            return response.status

    async def scenario() -> None:
        deadline = time.monotonic() + WAIT_S
        while await events_status() != 503:  # every slot taken by a client that never reads
            assert time.monotonic() < deadline, "the stalled clients never filled the slots"
            await asyncio.sleep(0.05)
        async with ApiClient(terminal.socket) as api:
            await api.attendant("demo", "1234")  # cancelling a cart with lines needs an attendant
            # Events to fill their buffers: each add publishes the cart's quote, growing with it.
            for i in range(300):
                await api.ok("POST", "/v1/checkout/lines", {"code": MILK})
                if i % 20 == 19:
                    await api.ok("POST", "/v1/checkout/cancel")
        while await events_status() != 200:
            assert time.monotonic() < deadline, "stalled event clients still hold every slot"
            await asyncio.sleep(0.2)

    try:
        asyncio.run(asyncio.wait_for(scenario(), WAIT_S + 10))
    finally:
        for sock in stalled:
            sock.close()
