"""Request guards of the local API, checked before any handler runs.

- A request with a body must say `Content-Type: application/json` (415 otherwise). A page in
  the kiosk browser can send a "simple" cross-site POST (`text/plain`, no preflight) to
  127.0.0.1; requiring JSON's own media type makes the browser ask first, and we never answer
  CORS preflights.
- Over TCP the `Host` must be this listener (`127.0.0.1:PORT` or `localhost:PORT`) and an
  `Origin`, when sent, the same origin (403 otherwise): a DNS name rebound to 127.0.0.1 arrives
  with its own name in `Host`, a foreign page with its own `Origin`. The Unix socket is not
  reachable from a browser; it is not checked.

Limits: `HOST_CHARS_MAX` (longer Host/Origin values are refused unread).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

HOST_CHARS_MAX = 255
JSON_TYPE = "application/json"
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def tcp_port(request: web.Request) -> int | None:
    """The local TCP port the request came in on; None on the Unix socket."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return None


def allowed_hosts(port: int) -> set[str]:
    hosts = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:  # browsers leave the default port out of Host and Origin
        hosts.update(LOOPBACK_NAMES)
    return hosts


def origin_problem(request: web.Request, port: int) -> str | None:
    """Why a TCP request's Host or Origin is refused, or None when both are this listener."""
    hosts = allowed_hosts(port)
    host = request.headers.get("Host", "")
    if len(host) > HOST_CHARS_MAX or host.lower() not in hosts:
        return f"Host {host[:64]!r} is not this terminal's API (use 127.0.0.1:{port} or localhost:{port})"
    origin = request.headers.get("Origin")
    if origin is not None and origin.lower() not in {f"http://{h}" for h in hosts}:
        return f"Origin {origin[:64]!r} may not call this terminal's API (cross-site request refused)"
    return None


@web.middleware
async def guards(request: web.Request, handler: Handler) -> web.StreamResponse:
    port = tcp_port(request)
    if port is not None:
        problem = origin_problem(request, port)
        if problem is not None:
            return _refuse(403, problem)
    if request.body_exists and request.content_type != JSON_TYPE:
        return _refuse(415, f"the body must be sent as Content-Type: {JSON_TYPE}, "
                            f"got {request.content_type[:64]!r}")
    return await handler(request)
