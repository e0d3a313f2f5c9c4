"""The central HTTP service (aiohttp): batch ingest, the updates feed, card lookups.

Every request names its terminal (`X-Posterm-Terminal`) and carries an HMAC (`X-Posterm-MAC`)
with that terminal's key over the body (POST) or `METHOD PATH?QUERY` (GET); replies are signed
the same way. Storage calls run in bounded thread pools (one thread for SQLite, the single
writer; for PostgreSQL two for ingest and four for reads). A reply is sent only after the store
committed. One structured log line per refusal:
`event=… terminal=… status=… reason=…`.

Limits: request bodies ≤ `BATCH_BYTES_MAX` (413 above), `KEY_CACHE_TTL_S` for provisioned keys.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from central import balances, expiry, feed, receipts
from central.admin_api import add_admin_api
from central.metrics import CentralMetrics
from central.store import ChainError, GapError, Store, StoreError
from protocol import schemas, wire
from protocol.wire import MAC_HEADER, TERMINAL_HEADER, ProtocolError

log = logging.getLogger("posterm.central")
# Each app's metrics counts the log events (central.metrics); registered and removed per app.
OBSERVERS: list[Callable[[str, dict[str, Any]], None]] = []

KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX = 100_000
# PostgreSQL: reads (keys, updates pages, card lookups) in their own pool, so a swipe never
# queues behind ingests. Ingests share card rows across terminals and the GIL: past two threads
# they only wait on each other's row locks (measured: 2 → 20k events/s, 4 → 18k, 8 → 17.5k).
PG_READ_WORKERS = 4
PG_INGEST_WORKERS = 2
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
POOL_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)
INGEST_POOL_KEY: web.AppKey[ThreadPoolExecutor] = web.AppKey("ingest_pool", ThreadPoolExecutor)
KEYS_KEY: web.AppKey[dict[str, tuple[float, list[bytes]]]] = web.AppKey("keys", dict)


def log_line(level: int, event: str, **fields: Any) -> None:
    log.log(level, "event=%s %s", event, " ".join(f"{k}={v}" for k, v in fields.items()))
    for observe in OBSERVERS:
        observe(event, fields)


def _printable(text: str) -> str:
    """An unauthenticated header value, safe for one `key=value` log line."""
    return re.sub(r"[^A-Za-z0-9._-]", "?", text[:64]) or "?"


async def _run(request: web.Request, fn: Any, *args: Any, pool: web.AppKey[ThreadPoolExecutor] = POOL_KEY) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[pool], fn, *args)


async def _keys(request: web.Request, terminal: str) -> list[bytes]:
    cache = request.app[KEYS_KEY]
    hit = cache.get(terminal)
    if hit is None or hit[0] < time.monotonic():
        if len(cache) >= KEY_CACHE_MAX:
            cache.clear()
        keys = await _run(request, request.app[STORE_KEY].terminal_keys, terminal)
        hit = (time.monotonic() + KEY_CACHE_TTL_S, keys)
        cache[terminal] = hit
    if not hit[1]:
        raise wire.AuthError(f"terminal {terminal} is not provisioned")
    return hit[1]


def _reply(key: bytes | None, body: bytes, status: int = 200) -> web.Response:
    headers = {MAC_HEADER: wire.sign(key, body)} if key else {}
    return web.Response(body=body, status=status, content_type=wire.CONTENT_TYPE, headers=headers)


async def _authenticate(request: web.Request, data: bytes) -> tuple[str, bytes]:
    """(terminal, the key that signed the request — replies are signed with the same one)."""
    terminal = wire.check_terminal_id(request.headers.get(TERMINAL_HEADER))
    keys = await _keys(request, terminal)
    for key in keys[:-1]:  # during a rotation's grace period: the new key, then the old one
        try:
            wire.verify(key, data, request.headers.get(MAC_HEADER))
            return terminal, key
        except wire.AuthError:
            continue
    wire.verify(keys[-1], data, request.headers.get(MAC_HEADER))
    return terminal, keys[-1]


async def post_batch(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    terminal, key = _printable(request.headers.get(TERMINAL_HEADER, "?")), None
    try:
        data = await request.read()
        terminal, key = await _authenticate(request, data)
        mac = bytes.fromhex(request.headers[MAC_HEADER])
        batch = wire.decode_batch(data)
        if batch.terminal != terminal:
            raise wire.AuthError(f"batch names terminal {batch.terminal}, the header {terminal}")
        result = await _run(request, store.ingest, batch, mac, pool=INGEST_POOL_KEY)
    except (GapError, ChainError) as exc:
        last, prev = await _run(request, store.stream_state, terminal, batch.epoch)
        log_line(
            logging.WARNING,
            "batch_refused",
            terminal=terminal,
            status=exc.status,
            reason=exc.code,
            first_seq=batch.first_seq,
            expected_seq=last + 1,
        )
        return _reply(key, wire.error_reply(exc, expected_seq=last + 1, prev_mac=prev), exc.status)
    except web.HTTPRequestEntityTooLarge:
        log_line(logging.WARNING, "batch_refused", terminal=terminal, status=413, reason="too_large")
        return _reply(None, wire.error_reply(wire.TooLargeError("body over the limit")), 413)
    except (ProtocolError, StoreError) as exc:
        return _refused(key, exc, "batch_refused", terminal=terminal, remote=request.remote)
    log_line(
        logging.INFO,
        "batch_stored",
        terminal=terminal,
        epoch=batch.epoch,
        first_seq=batch.first_seq,
        last_seq=batch.last_seq,
        stored=result.stored,
        duplicates=result.duplicates,
        shortfalls=result.shortfalls,
    )
    reply = {
        "acked_through": result.acked_through,
        "prev_mac": result.prev_mac,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "results": _results(batch.first_seq, result.duplicates, result.stored),
    }
    return _reply(key, wire.encode_reply(reply))


def _results(first_seq: int, duplicates: int, stored: int) -> list[dict[str, Any]]:
    """Per-event outcome as seq ranges: the redelivered prefix, then the newly stored rest."""
    out = []
    if duplicates:
        out.append({"from": first_seq, "to": first_seq + duplicates - 1, "status": "duplicate"})
    if stored:
        out.append({"from": first_seq + duplicates, "to": first_seq + duplicates + stored - 1, "status": "stored"})
    return out


async def get_updates(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    key = None
    try:
        terminal, key = await _authenticate(request, wire.request_bytes("GET", request.raw_path))
        since_text = request.query.get("since", "0")
        if not since_text.isdigit() or len(since_text) > 19:
            raise ProtocolError(f"since={since_text[:30]!r} is not a cursor")
        page = await _run(request, feed.build_updates, store, terminal, int(since_text))
        return _reply(key, wire.encode_updates(page))
    except (ProtocolError, StoreError) as exc:
        return _refused(key, exc, "updates_refused")


async def get_card(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    key = None
    try:
        terminal, key = await _authenticate(request, wire.request_bytes("GET", request.raw_path))
        number = request.match_info["number"]
        if not wire.card_number_ok(number):
            raise ProtocolError("card number is not 1..64 printable characters")
        found = await _run(request, store.card_view, number, terminal)
        if found is None:
            return _reply(key, wire.pack({"error": "not_found", "message": f"card {number} unknown"}), 404)
        card, version, stored_lots, acked = found
        # `acked`: the card includes exactly this terminal's events through it (one snapshot),
        # so the terminal mirrors it and adds only its later events (docs/protocol.md).
        entry = balances.card_entry(card, version, stored_lots)
        return _reply(key, wire.pack({**entry, "shortfall": card.shortfall, "acked": acked}))
    except (ProtocolError, StoreError) as exc:
        return _refused(key, exc, "card_refused")


async def get_receipt(request: web.Request) -> web.Response:
    store = request.app[STORE_KEY]
    key = None
    try:
        _, key = await _authenticate(request, wire.request_bytes("GET", request.raw_path))
        receipt = request.match_info["receipt"]
        if not 0 < len(receipt) <= schemas.ID_CHARS_MAX:
            raise ProtocolError(f"receipt id must be 1..{schemas.ID_CHARS_MAX} chars")
        terminal = request.query.get("terminal")
        if terminal is not None:
            wire.check_terminal_id(terminal)
        found = await _run(request, store.receipt, receipt)
        sale = receipts.pick(receipt, found, terminal)
        if sale is None:
            return _reply(key, wire.pack({"error": "not_found", "message": f"receipt {receipt} unknown"}), 404)
        sale["returns"] = receipts.returns_of(await _run(request, store.receipt, receipt, "return"))
        return _reply(key, wire.pack(sale))
    except (ProtocolError, StoreError) as exc:
        return _refused(key, exc, "receipt_refused")


async def not_found(request: web.Request) -> web.Response:
    """A route the server does not have: 404 signed like every other (401 if not authenticated)."""
    key = None
    try:
        data = await request.read()
        bodiless = request.method not in ("POST", "PUT", "PATCH")
        signed = wire.request_bytes(request.method, request.raw_path) if bodiless else data
        _, key = await _authenticate(request, signed)
    except ProtocolError as exc:
        return _refused(key, exc, "route_refused", path=_printable(request.path))
    except web.HTTPRequestEntityTooLarge:
        return _reply(None, wire.error_reply(wire.TooLargeError("body over the limit")), 413)
    message = f"no route {request.method} {request.path[:100]}"
    return _reply(key, wire.pack({"error": "not_found", "message": message}), 404)


@web.middleware
async def signed_not_found(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return await not_found(request)


def _refused(key: bytes | None, exc: ProtocolError | StoreError, event: str, **fields: Any) -> web.Response:
    """The signed reply and the log line for a refused request: the protocol's status, or 503
    when the database is unavailable."""
    if isinstance(exc, StoreError):
        log_line(logging.ERROR, "store_unavailable", **fields, detail=repr(str(exc)[:200]))
        return _reply(key, wire.pack({"error": "unavailable", "message": str(exc)[:300]}), 503)
    log_line(logging.WARNING, event, **fields, status=exc.status, reason=exc.code, detail=repr(str(exc)[:200]))
    return _reply(key, wire.error_reply(exc), exc.status)


async def health(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


def _add_metrics(app: web.Application, store: Store) -> None:
    """`GET /metrics` (unauthenticated, like /v1/health: counts, no card data) and the counting."""
    found = CentralMetrics(store.terminals)
    app.middlewares.append(found.middleware)
    OBSERVERS.append(found.observe)

    async def metrics(request: web.Request) -> web.Response:
        # The terminals gauge reads the database: off the event loop, like every store call.
        response: web.Response = await _run(request, found.exposition)
        return response

    async def forget(app: web.Application) -> None:
        OBSERVERS.remove(found.observe)

    app.router.add_get("/metrics", metrics)
    app.on_cleanup.append(forget)


def make_app(store: Store, expire_every_s: float | None = None) -> web.Application:
    """The service; with `expire_every_s`, the server's expiry sweep runs on that schedule."""
    app = web.Application(client_max_size=wire.BATCH_BYTES_MAX, middlewares=[signed_not_found])
    app[STORE_KEY] = store
    if store.name == "sqlite":  # one connection, the single writer: one thread does it all
        app[POOL_KEY] = app[INGEST_POOL_KEY] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
    else:
        app[POOL_KEY] = ThreadPoolExecutor(max_workers=PG_READ_WORKERS, thread_name_prefix="store-read")
        app[INGEST_POOL_KEY] = ThreadPoolExecutor(max_workers=PG_INGEST_WORKERS, thread_name_prefix="store-ingest")
    app[KEYS_KEY] = {}
    app.router.add_post("/v1/batches", post_batch)
    app.router.add_get("/v1/updates", get_updates)
    app.router.add_get("/v1/cards/{number}", get_card)
    app.router.add_get("/v1/receipts/{receipt}", get_receipt)
    app.router.add_get("/v1/health", health)
    _add_metrics(app, store)
    add_admin_api(app, store, app[POOL_KEY])  # /admin/v1/: JSON for integrations, bearer tokens
    from central.web import setup as add_console  # the staff's web console (central/web/)

    add_console(app)
    if expire_every_s is not None:
        app.cleanup_ctx.append(expiry.scheduled(store, app[INGEST_POOL_KEY], expire_every_s))

    async def shutdown(app: web.Application) -> None:
        app[INGEST_POOL_KEY].shutdown(wait=True)
        app[POOL_KEY].shutdown(wait=True)
        store.close()

    app.on_cleanup.append(shutdown)
    return app
