"""The local API for the kiosk UI: HTTP+JSON on a Unix socket (TCP on 127.0.0.1 optional).
Documented in docs/openapi.yaml (a test keeps the two in step).

Every action goes through `Daemon.act`, i.e. the checkout lock: API calls, scans and swipes
never interleave. Refusals are JSON `{"error": "..."}` with 400 (bad request), 404 (unknown
receipt, card, product, line), 409 (not possible in the checkout's state), 413 (body too
large), 503 (busy / too many event clients); 403 (foreign Host/Origin on TCP) and 415 (a body
that is not `application/json`) come from `terminal.api_guards`. Limits: `BODY_BYTES_MAX`, the
bus's limits, `SSE_PING_S` (a comment line keeps idle streams alive and detects gone clients),
`SSE_WRITE_TIMEOUT_S` (a client that stopped reading is dropped).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from core.errors import PricingError
from drivers.errors import DeviceError
from terminal.api_guards import guards
from terminal.attendants import AttendantError
from terminal.bus import sse_frame
from terminal.checkout import BadRequest, CheckoutError, parse_qty
from terminal.daemon import now_local
from terminal.errors import TerminalError
from terminal.guard import attended, needs, record
from terminal.jsonio import loads_bounded
from terminal.ledger import (
    LedgerBalanceError,
    LedgerConflictError,
    LedgerInputError,
    LedgerNotFoundError,
)

if TYPE_CHECKING:
    from terminal.daemon import Daemon

BODY_BYTES_MAX = 64 * 1024
SSE_PING_S = 15.0
# A stream whose client stopped reading blocks its writes once the socket buffers are full:
# past this it is dropped, so stalled clients cannot hold all `CLIENTS_MAX` slots.
SSE_WRITE_TIMEOUT_S = 5.0
# The kernel would buffer up to megabytes for a stream that is not read; capped, a stalled
# client is noticed after a few dozen events, and 16 of them cost little memory.
SSE_SEND_BUFFER_BYTES = 64 * 1024
SHUTDOWN_S = 2.0
TEXT_CHARS_MAX = 64
RETURN_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()  # ledger records hold lot keys as bytes
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_json_default)


def _ok(data: Any) -> web.Response:
    return web.json_response(data, dumps=_dumps)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _status_of(exc: Exception) -> int:
    if isinstance(exc, CheckoutError | AttendantError) or type(getattr(exc, "status", None)) is int:
        return int(exc.status)  # type: ignore[attr-defined]
    if isinstance(exc, LedgerNotFoundError):
        return 404
    if isinstance(exc, LedgerInputError | PricingError):
        return 400
    if isinstance(exc, LedgerBalanceError | LedgerConflictError):
        return 409
    if isinstance(exc, DeviceError):
        return 503
    return 409


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except (TerminalError, PricingError, DeviceError) as exc:
        return _error(_status_of(exc), str(exc))
    except web.HTTPRequestEntityTooLarge:
        return _error(413, f"request body larger than {BODY_BYTES_MAX} bytes")
    except web.HTTPException as exc:
        if exc.status >= 400:
            response = _error(exc.status, exc.reason)
            if "Allow" in exc.headers:  # 405 names the methods the path takes
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        raise


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json(loads=lambda text: loads_bounded(text, parse_float=_no_floats))
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise BadRequest("the body is nested too deeply to be a request") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def _no_floats(text: str) -> Any:
    raise ValueError(f"{text}: amounts and quantities are integers or decimal strings, never floats")


def _text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= TEXT_CHARS_MAX or not value.isprintable():
        raise BadRequest(f"field {key!r} must be text of 1..{TEXT_CHARS_MAX} printable characters")
    return value


def _only(body: dict[str, Any], keys: set[str]) -> None:
    extra = set(body) - keys
    if extra:
        raise BadRequest(f"unknown field(s) {', '.join(sorted(map(str, extra)))}; expected {', '.join(sorted(keys))}")


class ApiServer:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.app = web.Application(client_max_size=BODY_BYTES_MAX, middlewares=[errors, guards])
        self.app.add_routes(self.routes())
        self.runner: web.AppRunner | None = None

    def routes(self) -> list[web.RouteDef]:
        from terminal.screen.routes import kiosk_routes  # the customer screen and attendant sessions

        return [*kiosk_routes(self),
            web.get("/v1/checkout", self.get_checkout),
            web.post("/v1/checkout/lines", self.add_line),
            web.delete("/v1/checkout/lines/{index}", self.remove_line),
            web.post("/v1/checkout/card", self.attach_card),
            web.post("/v1/checkout/redeem", self.redeem),
            web.post("/v1/checkout/payment", self.begin_payment),
            web.delete("/v1/checkout/payment", self.back_to_cart),
            web.post("/v1/checkout/pay", self.pay),
            web.post("/v1/checkout/cancel", self.cancel),
            web.post("/v1/cash", self.cash),
            web.post("/v1/returns", self.return_sale),
            web.get("/v1/receipts/{id}", self.get_receipt),
            web.post("/v1/receipts/{id}/print", self.reprint),
            web.get("/v1/shift", self.get_shift),
            web.post("/v1/shift/close", self.close_shift),
            web.post("/v1/shift/print", self.print_shift),
            web.get("/v1/devices", self.get_devices),
            web.post("/v1/printer/retry", self.printer_retry),
            web.get("/v1/status", self.get_status),
            web.get("/metrics", self.get_metrics),
            web.get("/v1/events", self.events),
        ]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        cfg = self.daemon.config
        self.runner = web.AppRunner(self.app, handle_signals=False, access_log=None,
                                    shutdown_timeout=SHUTDOWN_S)
        await self.runner.setup()
        path = cfg.api_socket
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists() or path.is_symlink():
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise TerminalError(f"{path}: exists and is not a socket; refusing to replace it")
            path.unlink()  # left by a daemon that was killed; nobody can be listening on it now
        await web.UnixSite(self.runner, str(path)).start()
        os.chmod(path, 0o660)  # the kiosk UI connects through the socket's group
        if cfg.api_tcp_port:
            await web.TCPSite(self.runner, "127.0.0.1", cfg.api_tcp_port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        self.daemon.config.api_socket.unlink(missing_ok=True)

    # ------------------------------------------------------------------ checkout

    async def get_checkout(self, request: web.Request) -> web.Response:
        return _ok(await self.daemon.act(self.daemon.register.view))

    async def add_line(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"code", "qty"})
        code = _text(body, "code")
        qty = parse_qty(body["qty"]) if "qty" in body else None
        reg = self.daemon.register

        def add() -> dict[str, Any]:
            return reg.add(reg.product_line(code or "", qty_milli=qty), now_local())

        return _ok(await self.daemon.act(add))

    async def remove_line(self, request: web.Request) -> web.Response:
        raw = request.match_info["index"]
        if not raw.isdigit() or len(raw) > 6:
            raise BadRequest(f"line index must be a small whole number, got {raw[:20]!r}")
        who = needs(self.daemon, request, "void")
        remove = attended(self.daemon, who, "line_removed", {"line": int(raw)}, self.daemon.register.remove)
        return _ok(await self.daemon.act(remove, int(raw), now_local()))

    async def attach_card(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"number"})
        number = _text(body, "number") or ""
        mode = await self.daemon.card_mode(number)
        return _ok(await self.daemon.act(self.daemon.register.attach_card, number, now_local(), mode))

    async def redeem(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"points"})
        points = body.get("points")
        if points != "max" and (isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= 10**12):
            raise BadRequest("field 'points' must be a whole number ≥ 0 (0 = none) or \"max\"")
        return _ok(await self.daemon.act(self.daemon.register.set_redeem, points, now_local()))

    async def begin_payment(self, request: web.Request) -> web.Response:
        return _ok(await self.daemon.act(self.daemon.register.begin_payment, now_local()))

    async def back_to_cart(self, request: web.Request) -> web.Response:
        return _ok(await self.daemon.act(self.daemon.register.back_to_cart, now_local()))

    async def pay(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"method", "tenders", "attendant"})
        method = _text(body, "method", required=False) or "card"
        attendant = _text(body, "attendant", required=False)
        tenders = body.get("tenders")
        if "tenders" in body and not isinstance(tenders, list):
            raise BadRequest("field 'tenders' must be a list of {method, amount, tendered?, reference?}")
        return _ok(await self.daemon.desk.pay(tenders, method, attendant))

    async def cancel(self, request: web.Request) -> web.Response:
        who = needs(self.daemon, request, "cancel") if self.daemon.register.view()["lines"] else None
        closed = await self.daemon.desk.cancel()  # after the first scan only an attendant cancels
        if who is not None:
            await record(self.daemon, who, "cancelled", {})
        return _ok(closed)

    async def cash(self, request: web.Request) -> web.Response:
        """Cash put into (float) or taken out of (bank drop) the drawer, with the reason."""
        body = await _body(request)
        _only(body, {"kind", "amount", "reason", "id"})
        kind = body.get("kind")
        if kind not in ("in", "out"):
            raise BadRequest("field 'kind' must be \"in\" or \"out\"")
        amount = body.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 10**13:
            raise BadRequest("field 'amount' must be whole minor units above 0")
        reason = _text(body, "reason")
        op_id = _text(body, "id", required=False)
        if op_id is not None and not RETURN_ID.match(op_id):
            raise BadRequest("field 'id' must be 1..32 of A-Z a-z 0-9 _ -")
        who = needs(self.daemon, request, "shift")  # the drawer's cash is the shift's: a manager's job
        run = attended(self.daemon, who, "cash_move", {"kind": kind, "amount": amount}, self.daemon.desk.cash_move)
        return _ok(await self.daemon.act(run, kind, amount, reason, op_id))

    async def return_sale(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"receipt", "lines", "id", "refund"})
        receipt = _text(body, "receipt")
        if body.get("refund") not in (None, "cash"):
            raise BadRequest("field 'refund' must be \"cash\" (all the money back from the drawer) or absent")
        lines = body.get("lines")
        if lines is not None and (not isinstance(lines, list) or not lines):
            raise BadRequest("field 'lines' must be a non-empty list of {line, qty} (omit it to return all)")
        return_id = _text(body, "id", required=False)
        if return_id is not None and not RETURN_ID.match(return_id):
            raise BadRequest("field 'id' must be 1..32 of A-Z a-z 0-9 _ - (it is printed as a barcode)")
        who = needs(self.daemon, request, "return")
        if receipt:  # another terminal's sale: from the central server first
            await self.daemon.find_receipt(receipt)
        ret = await self.daemon.desk.return_sale(receipt or "", lines, return_id, who.name, body.get("refund"))
        await record(self.daemon, who, "return", {"receipt": receipt})
        return _ok(ret)

    async def get_receipt(self, request: web.Request) -> web.Response:
        receipt_id = request.match_info["id"]
        if len(receipt_id) > TEXT_CHARS_MAX:
            raise BadRequest(f"receipt id longer than {TEXT_CHARS_MAX} characters")
        record = self.daemon.ledger.receipt(receipt_id)
        if record is None:
            raise LedgerNotFoundError(f"receipt {receipt_id}: not in this terminal's ledger")
        return _ok(record)

    async def reprint(self, request: web.Request) -> web.Response:
        receipt_id = request.match_info["id"][:TEXT_CHARS_MAX]
        who = needs(self.daemon, request, "reprint")
        run = attended(self.daemon, who, "reprint", {"receipt": receipt_id}, self.daemon.reprint)
        return _ok(await self.daemon.act(run, receipt_id))

    # ------------------------------------------------------------------ shifts

    async def get_shift(self, request: web.Request) -> web.Response:
        """X report: the open shift's totals, nothing changed."""
        needs(self.daemon, request, "shift")
        return _ok(await self.daemon.act(self.daemon.ledger.report_shift))

    async def close_shift(self, request: web.Request) -> web.Response:
        body = await _body(request)
        _only(body, {"shift"})
        shift = body.get("shift")
        if isinstance(shift, bool) or not isinstance(shift, int) or not 1 <= shift <= 10**12:
            raise BadRequest("field 'shift' must be the open shift's number (GET /v1/shift)")
        who = needs(self.daemon, request, "shift")
        run = attended(self.daemon, who, "shift_close", {"shift": shift}, self.daemon.close_shift)
        return _ok(await self.daemon.act(run, shift))

    async def print_shift(self, request: web.Request) -> web.Response:
        """X report on paper."""
        who = needs(self.daemon, request, "shift")
        return _ok(await self.daemon.act(attended(self.daemon, who, "shift_print", {}, self.daemon.print_shift)))

    # ------------------------------------------------------------------ devices

    async def get_devices(self, request: web.Request) -> web.Response:
        return _ok(self.daemon.devices)

    async def printer_retry(self, request: web.Request) -> web.Response:
        printer = self.daemon.printer
        if printer is None:
            raise CheckoutError("no printer is configured")
        printer.wake.set()
        return _ok({"queued": len(printer.spool.jobs())})

    async def get_status(self, request: web.Request) -> web.Response:
        return _ok(self.daemon.status())

    async def get_metrics(self, request: web.Request) -> web.Response:
        """Prometheus text format (terminal.metrics): counts and states, no card data."""
        return self.daemon.metrics.exposition()

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: scan, swipe, quote, sale, return, printer, device, error, …"""
        bus = self.daemon.bus
        client = bus.subscribe()
        if client is None:
            return _error(503, "too many event-stream clients connected")
        try:
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache"})
            _cap_send_buffer(request)
            await response.prepare(request)
            await _send(response, sse_frame(0, "hello", json.dumps(self.daemon.register.view())))
            while not self.daemon.stop.is_set():
                try:
                    item = await asyncio.wait_for(client.queue.get(), SSE_PING_S)
                except TimeoutError:
                    await _send(response, b": ping\n\n")
                    continue
                await _send(response, sse_frame(*item))
                if item[1] == "shutdown":
                    break
                if client.overflowed and client.queue.empty():
                    await _send(response, sse_frame(0, "overflow", '{"reason": "client too slow"}'))
                    break
            return response
        except ConnectionResetError:  # the UI went away mid-write; it reconnects when it wants
            return web.Response(status=204)
        except _Stalled:
            if request.transport is not None:
                request.transport.abort()  # drop what is buffered for it: it is not reading
            return web.Response(status=204)
        finally:
            bus.unsubscribe(client)


class _Stalled(Exception):
    """An event-stream write did not finish within `SSE_WRITE_TIMEOUT_S`."""


def _cap_send_buffer(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    transport.set_write_buffer_limits(high=SSE_SEND_BUFFER_BYTES)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SSE_SEND_BUFFER_BYTES)


async def _send(response: web.StreamResponse, frame: bytes) -> None:
    try:
        await asyncio.wait_for(response.write(frame), SSE_WRITE_TIMEOUT_S)
    except TimeoutError:
        raise _Stalled from None
