"""How long and how much the central server waits for a client, and how many it serves.

aiohttp alone waits an hour for a request head that trickles in and reads a body for as long
as it keeps coming; a few hundred such connections hold the server's sockets. So `serve`:
- drops a connection whose request line and headers are not complete `head_timeout_s` after it
  was opened or after the previous reply (aiohttp's keep-alive timer, which only fires while no
  request is complete);
- answers 413 from the declared `Content-Length` before reading a byte of the body, and closes;
- reads the whole body within `body_timeout_s`, else answers 408 and closes;
- serves at most `connections_max` connections at once; one more gets a 503 and is closed;
- caps the request line, each header and the number of headers (400 beyond, from aiohttp).

Limits: `HEAD_TIMEOUT_S`, `BODY_TIMEOUT_S`, `CONNECTIONS_MAX`, `LINE_BYTES_MAX`,
`FIELD_BYTES_MAX`, `HEADERS_MAX`, `protocol.wire.BATCH_BYTES_MAX` for bodies.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from protocol import wire

log = logging.getLogger("posterm.central")

HEAD_TIMEOUT_S = 15.0
BODY_TIMEOUT_S = 30.0
CONNECTIONS_MAX = 512  # below the unit's LimitNOFILE, with room for the database and logs
LINE_BYTES_MAX = 4096
FIELD_BYTES_MAX = 4096
HEADERS_MAX = 32
SHUTDOWN_S = 5.0
BACKLOG = 128
BUSY_REPLY = (b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 2\r\n"
              b"Content-Length: 0\r\n\r\n")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SlowBodyError(wire.ProtocolError):
    status = 408
    code = "timeout"


@dataclass(frozen=True, slots=True)
class Limits:
    head_timeout_s: float = HEAD_TIMEOUT_S
    body_timeout_s: float = BODY_TIMEOUT_S
    connections_max: int = CONNECTIONS_MAX


def _closing(status: int, error: wire.ProtocolError) -> web.Response:
    """An unsigned refusal (nothing is authenticated yet) that ends the connection."""
    response = web.Response(body=wire.error_reply(error), status=status, content_type=wire.CONTENT_TYPE)
    response.force_close()
    return response


def body_deadline(limits: Limits) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        declared = request.content_length
        if declared is not None and declared > wire.BATCH_BYTES_MAX:
            log.warning("event=request_refused status=413 reason=too_large declared=%d", declared)
            return _closing(413, wire.TooLargeError(f"body of {declared} bytes; at most {wire.BATCH_BYTES_MAX}"))
        if request.body_exists:
            try:  # read here, under the deadline; the handler's read() gets the same bytes
                await asyncio.wait_for(request.read(), limits.body_timeout_s)
            except TimeoutError:
                log.warning("event=request_refused status=408 reason=slow_body")
                return _closing(408, SlowBodyError(f"the body did not arrive within {limits.body_timeout_s} s"))
            except web.HTTPRequestEntityTooLarge:
                return _closing(413, wire.TooLargeError(f"body over {wire.BATCH_BYTES_MAX} bytes"))
        return await handler(request)

    return middleware


class _Busy(asyncio.Protocol):
    """What a connection past `connections_max` gets: a 503, then the door."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(BUSY_REPLY)
        transport.close()


def _capped(server: web.Server, connections_max: int) -> Callable[[], asyncio.BaseProtocol]:
    def factory() -> asyncio.BaseProtocol:
        if len(server.connections) >= connections_max:
            log.warning("event=connection_refused status=503 reason=too_many connections=%d", connections_max)
            return _Busy()
        return server()

    return factory


async def _serve(app: web.Application, host: str, port: int, limits: Limits) -> None:
    app.middlewares.insert(0, body_deadline(limits))
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_S,
                           keepalive_timeout=limits.head_timeout_s, max_line_size=LINE_BYTES_MAX,
                           max_field_size=FIELD_BYTES_MAX, max_headers=HEADERS_MAX)
    await runner.setup()
    assert runner.server is not None
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    listener = await loop.create_server(_capped(runner.server, limits.connections_max), host, port,
                                        backlog=BACKLOG, reuse_address=True)
    try:
        await stop.wait()
    finally:
        listener.close()
        await runner.cleanup()


def serve(app: web.Application, host: str, port: int, limits: Limits) -> None:
    """Run the app on host:port under `limits` until SIGINT or SIGTERM."""
    asyncio.run(_serve(app, host, port, limits))
