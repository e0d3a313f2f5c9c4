"""central.limits on the real `posterm-central serve` process, with raw sockets on loopback:
trickling heads and bodies are dropped, an oversized declared body gets 413 before it is sent,
connections past the cap get 503, and the server keeps serving. Every client loop is bounded
in count and time and stops by itself."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import wire
from tests.central.helpers import LOOPBACK, CentralProcess, provision, sqlite_dsn

HEAD_S, BODY_S, CONNECTIONS = 1.0, 1.0, 20
TRICKLERS = 100
TRICKLE_STEPS_MAX = 100  # a trickler sends one byte a step, 0.1 s apart: 10 s at most
WAIT_S = 20.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[CentralProcess]:
    dsn = sqlite_dsn(tmp_path)
    provision(dsn, "T01")
    args = ("--head-timeout-s", str(HEAD_S), "--body-timeout-s", str(BODY_S),
            "--connections-max", str(CONNECTIONS))
    proc = CentralProcess(dsn, tmp_path / "central.log", extra=args).start()
    try:
        yield proc
    finally:
        proc.stop()


async def status_line(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readline(), WAIT_S)


async def health(port: int) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    try:
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: central\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), WAIT_S)
    finally:
        writer.close()


async def trickle(port: int, head: bytes, body: bytes = b"") -> int:
    """Send `head` whole (if a body follows) or byte by byte, then the body byte by byte; the
    number of bytes the server let through before it closed the connection."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    slow = body or head
    sent = 0
    try:
        if body:
            writer.write(head)
        for step in range(min(len(slow), TRICKLE_STEPS_MAX)):
            if reader.at_eof() or writer.is_closing():
                break
            writer.write(slow[step:step + 1])
            await writer.drain()
            sent += 1
            try:  # the server's reply or its close, if any, ends the trickle
                if await asyncio.wait_for(reader.read(4096), 0.1) == b"":
                    break
            except TimeoutError:
                continue
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        writer.close()
    return sent


def test_trickling_heads_are_dropped_and_the_server_keeps_serving(server: CentralProcess) -> None:
    head = b"GET /v1/health HTTP/1.1\r\nHost: central\r\nX-Slow: " + b"a" * 400 + b"\r\n\r\n"

    async def scenario() -> list[int]:
        # Under the connection cap at any moment: TRICKLERS in waves of CONNECTIONS - 2.
        sent: list[int] = []
        for start in range(0, TRICKLERS, CONNECTIONS - 2):
            wave = range(start, min(start + CONNECTIONS - 2, TRICKLERS))
            sent += await asyncio.gather(*(trickle(server.port, head) for _ in wave))
        return sent

    started = time.monotonic()
    sent = asyncio.run(asyncio.wait_for(scenario(), 120))
    assert len(sent) == TRICKLERS
    # Dropped well before the whole head went through (the head never completed).
    assert max(sent) < TRICKLE_STEPS_MAX, sent
    assert asyncio.run(health(server.port)).startswith(b"HTTP/1.1 200"), server.log()[-2000:]
    assert time.monotonic() > started  # (ran; durations are not asserted)


def test_a_trickling_body_gets_408_and_a_silent_client_is_dropped(server: CentralProcess) -> None:
    body = b"\x00" * 500
    head = (b"POST /v1/batches HTTP/1.1\r\nHost: central\r\n" + wire.TERMINAL_HEADER.encode() + b": T01\r\n"
            b"Content-Type: application/msgpack\r\nContent-Length: 500\r\n\r\n")

    async def slow_body() -> bytes:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            writer.write(head + body[:10])
            await writer.drain()
            return await asyncio.wait_for(reader.read(4096), WAIT_S)
        finally:
            writer.close()

    async def silent() -> bytes:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            return await asyncio.wait_for(reader.read(4096), WAIT_S)  # b"" once the server hangs up
        finally:
            writer.close()

    reply = asyncio.run(slow_body())
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert b"timeout" in reply
    assert asyncio.run(silent()) == b""
    assert asyncio.run(trickle(server.port, head, body)) < len(body)
    assert "status=408" in server.log()


def test_an_oversized_declared_body_gets_413_before_it_is_sent(server: CentralProcess) -> None:
    async def scenario() -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            writer.write(b"POST /v1/batches HTTP/1.1\r\nHost: central\r\n" + wire.TERMINAL_HEADER.encode()
                         + b": T01\r\nContent-Length: 999999999999\r\n\r\n")
            await writer.drain()
            line = await status_line(reader)  # not one body byte was sent
            rest = await asyncio.wait_for(reader.read(), WAIT_S)  # … and the server closes
            return line, rest
        finally:
            writer.close()

    line, rest = asyncio.run(scenario())
    assert line.startswith(b"HTTP/1.1 413"), line
    assert b"too_large" in rest
    assert asyncio.run(health(server.port)).startswith(b"HTTP/1.1 200")


def test_connections_past_the_cap_get_503_then_service_resumes(server: CentralProcess) -> None:
    async def scenario() -> list[bytes]:
        held = [await asyncio.open_connection(LOOPBACK, server.port) for _ in range(CONNECTIONS)]
        try:
            await asyncio.sleep(0.2)  # let the server accept them all
            extra_reader, extra_writer = await asyncio.open_connection(LOOPBACK, server.port)
            try:
                reply = await asyncio.wait_for(extra_reader.read(4096), WAIT_S)
            finally:
                extra_writer.close()
        finally:
            for _, writer in held:
                writer.close()
        deadline = time.monotonic() + WAIT_S
        while True:  # the held ones are gone once the server noticed their close
            after = await health(server.port)
            if after.startswith(b"HTTP/1.1 200") or time.monotonic() > deadline:
                return [reply, after]
            await asyncio.sleep(0.1)

    reply, after = asyncio.run(scenario())
    assert reply.startswith(b"HTTP/1.1 503"), reply
    assert after.startswith(b"HTTP/1.1 200"), after
    assert "reason=too_many" in server.log()


def test_oversized_heads_are_refused(server: CentralProcess) -> None:
    async def send(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
        try:
            writer.write(request)
            await writer.drain()
            return await status_line(reader)
        finally:
            writer.close()

    long_line = b"GET /v1/cards/" + b"1" * 10_000 + b" HTTP/1.1\r\nHost: c\r\n\r\n"
    many = b"GET /v1/health HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(100)) + b"\r\n"
    for request in (long_line, many):
        line = asyncio.run(send(request))
        assert re.match(rb"HTTP/1\.[01] (400|413|431) ", line), (request[:60], line)
