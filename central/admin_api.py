"""The admin HTTP API for integrations (a CRM, 1C, an app) under `/admin/v1/` on `posterm-central
serve`: JSON in and out, bearer tokens with scopes, every write idempotent by a client key.
docs/admin-openapi.yaml is its contract (tests/central/test_admin_openapi.py keeps it in step).

    GET  /admin/v1/cards/{number}            cards:read    the card: balance, lots with dates, masked phone
    POST /admin/v1/cards                     cards:write   enrol a card (201)
    POST /admin/v1/cards/{number}/block      cards:write   block it (terminals refuse it once they sync)
    POST /admin/v1/cards/{number}/unblock    cards:write
    POST /admin/v1/cards/{number}/awards     awards:write  grant an award of the published program (201)
    POST /admin/v1/coupons                   coupons:write issue codes of a published coupon series (201)
    GET  /admin/v1/reports                   reports:read  the reports' names and what they mean
    GET  /admin/v1/reports/{name}?from=D&to=D[&top=N]   reports:read   a report (central/reports.py)

Every request carries `Authorization: Bearer <token>` (`posterm-central token add NAME --scope
S`; central/admin_store.py): none, unknown or revoked → 401, a scope missing → 403. Every write
carries an `Idempotency-Key` (1..64 of A-Z a-z 0-9 . _ : -): the same key with the same body
gets the stored reply again (header `Idempotent-Replayed: true`), with another body 422; a
write is recorded with the token's name. Refusals are `{"error": code, "message": one line}`
and change nothing: 400 invalid (the field named), 404, 405, 409 conflict, 413 body over
`BODY_BYTES_MAX`, 415 not JSON, 422, 503 database unavailable. (A body declared over
`wire.BATCH_BYTES_MAX` is refused earlier, by `central.limits`, as for terminals: 413.) Card writes reach terminals
through the updates feed, as `publish cards` does. Personal data: a card's phone only masked;
holder names and birth dates are not returned.

Wired into `central.server.make_app` by `add_admin_api`; store calls run in the server's
read pool (SQLite: its single store thread).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from central import admin_store, awards, cardfacts, checks, coupons, lots, reports
from central.admin_store import AdminError, Token, Write
from central.balances import CardState
from central.store import CARD_COLUMNS, IngestTx, Store, StoreError, card_from_row
from protocol import cardfile, wire

log = logging.getLogger("posterm.central")

PREFIX = "/admin/v1"
BODY_BYTES_MAX = 64 * 1024
AUTH_CHARS_MAX = 256
REASON_CHARS_MAX = 200
JSON_TYPE = "application/json"
IDEMPOTENCY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
ENROL_FIELDS = frozenset({"number", "type", "holder", "balance", "expires_at", "referrers"})
AWARD_ID_CHARS_MAX = awards.AWARD_ID_CHARS_MAX
COUPON_SERIES_CHARS_MAX = 64
COUPONS_ISSUED_MAX = 1_000  # codes one request issues (its stored reply stays small)
SHOWN_FACTS = ("issued_on", "tags")  # birth dates are personal data: not returned
ADMIN_STORE: web.AppKey[Store] = web.AppKey("admin_store", Store)
ADMIN_POOL: web.AppKey[ThreadPoolExecutor] = web.AppKey("admin_pool", ThreadPoolExecutor)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store", **(headers or {})})


def _refusal(exc: AdminError, headers: dict[str, str] | None = None) -> web.Response:
    extra = {"WWW-Authenticate": 'Bearer realm="posterm-admin"'} if exc.status == 401 else {}
    return _reply(exc.status, {"error": exc.code, "message": str(exc)[:500]}, {**extra, **(headers or {})})


async def _run(request: web.Request, fn: Callable[..., Any], *args: Any) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[ADMIN_POOL], fn, *args)


async def _token(request: web.Request) -> Token:
    header = request.headers.get("Authorization", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret or len(header) > AUTH_CHARS_MAX:
        raise AdminError("give Authorization: Bearer <token> (posterm-central token add)", 401, "unauthorized")
    found: Token | None = await _run(request, admin_store.find_token, request.app[ADMIN_STORE], secret.strip())
    if found is None:
        raise AdminError("the token is unknown or revoked", 401, "unauthorized")
    return found


async def _authorize(request: web.Request, scope: str) -> Token:
    token = await _token(request)
    if scope not in token.scopes:
        raise AdminError(f"token {token.name} lacks scope {scope}", 403, "forbidden")
    return token


async def _body(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    """The raw body (for the idempotency digest) and its JSON object ({} when empty)."""
    declared = request.content_length
    if declared is not None and declared > BODY_BYTES_MAX:
        raise AdminError(f"body of {declared} bytes; at most {BODY_BYTES_MAX}", 413, "too_large")
    data = await request.read()
    if len(data) > BODY_BYTES_MAX:
        raise AdminError(f"body over {BODY_BYTES_MAX} bytes", 413, "too_large")
    if not data:
        return data, {}
    if request.content_type != JSON_TYPE:
        raise AdminError(f"send the body as {JSON_TYPE}", 415, "unsupported_media_type")
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise AdminError(f"body is not JSON: {str(exc)[:120]}") from None
    if not isinstance(body, dict):
        raise AdminError("body must be a JSON object")
    return data, body


def _key(request: web.Request) -> str:
    key = request.headers.get(IDEMPOTENCY_HEADER, "")
    if not admin_store.IDEMPOTENCY_KEY.fullmatch(key):
        raise AdminError(f"every write needs an {IDEMPOTENCY_HEADER} header: 1..64 of A-Z a-z 0-9 . _ : -")
    return key


def _number(request: web.Request) -> str:
    number = request.match_info["number"]
    if not wire.card_number_ok(number):
        raise AdminError("card number: 1..64 printable characters")
    return number


# ------------------------------------------------------------------ the card view


def card_view(tx: IngestTx, dialect: str, number: str) -> dict[str, Any] | None:
    """The card as the API shows it, read inside `tx` (one snapshot); None if not enrolled."""
    rows = tx._rows(f"SELECT {CARD_COLUMNS}, cursor FROM cards WHERE number = ?", (number,))
    if not rows or int(rows[0][8]) == 0:
        return None
    card = card_from_row(rows[0])
    points, _ = tx.read_lots([number]).get(number, ({}, {}))
    shown = []
    for key in sorted(points):
        lot = lots.public(key, lots.Lot(points[key]))
        shown.append({name: lot[name] for name in ("points", "available_from", "expires_at", "debt")})
    facts = cardfacts.read(tx._rows, [number]).get(number, {})
    return {
        "number": card.number,
        "type": card.type,
        "blocked": card.blocked,
        "balance": card.balance,
        "cumulative": card.cumulative,
        "shortfall": card.shortfall,
        "referrers": list(card.referrers),
        "version": int(rows[0][8]),
        "lots": shown,
        "phone_masked": admin_store.phone_masked(tx._rows, dialect, number),
        **{name: facts[name] for name in SHOWN_FACTS if name in facts},
    }


def _lookup(store: Store, number: str) -> dict[str, Any] | None:
    with store.snapshot() as tx:
        return card_view(tx, store.name, number)


async def get_card(request: web.Request) -> web.Response:
    await _authorize(request, "cards:read")
    number = _number(request)
    found = await _run(request, _lookup, request.app[ADMIN_STORE], number)
    if found is None:
        raise AdminError(f"card {number}: not enrolled", 404, "not_found")
    return _reply(200, found)


# ------------------------------------------------------------------ writes


def _text(body: dict[str, Any], name: str, chars_max: int, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str) or len(value) > chars_max or not value.isprintable():
        raise AdminError(f"field {name}: text of at most {chars_max} printable characters")
    return value


def parse_enrol(body: dict[str, Any], now_ms: int) -> tuple[CardState, int | None]:
    """The card of an enrol body and its balance's expiry, checked with the card file's limits
    (protocol/cardfile.py): what a terminal would take from the feed. One AdminError naming the
    field."""
    unknown = sorted(set(body) - ENROL_FIELDS)
    if unknown:
        raise AdminError(f"field {unknown[0][:40]}: unknown; fields: {', '.join(sorted(ENROL_FIELDS))}")
    number = body.get("number")
    if not isinstance(number, str) or not wire.card_number_ok(number):
        raise AdminError("field number: required, 1..64 printable characters")
    balance = body.get("balance", 0)
    if type(balance) is not int or not 0 <= balance <= cardfile.BALANCE_MAX:
        raise AdminError(f"field balance: a whole number of points 0..{cardfile.BALANCE_MAX}")
    try:
        checks.balance(number, balance)
    except checks.CheckError as exc:
        raise AdminError(f"field balance: {exc}") from None
    expires_ms = None
    if body.get("expires_at") is not None:
        try:
            expires_ms = lots.iso_ms(body["expires_at"], "field expires_at")
        except wire.ProtocolError as exc:
            raise AdminError(str(exc)) from None
        if expires_ms <= now_ms:
            raise AdminError("field expires_at: must be in the future")
    referrers = body.get("referrers", [])
    if (not isinstance(referrers, list) or len(referrers) > cardfile.REFERRERS_MAX
            or not all(isinstance(r, str) and wire.card_number_ok(r) for r in referrers)
            or len(set(referrers)) != len(referrers) or number in referrers):
        raise AdminError(f"field referrers: at most {cardfile.REFERRERS_MAX} distinct card numbers, not the card")
    card = CardState(number, balance=balance, type=_text(body, "type", cardfile.TYPE_CHARS_MAX),
                     holder=_text(body, "holder", cardfile.HOLDER_CHARS_MAX), referrers=list(referrers))
    return card, expires_ms


# Runs in the write's transaction: (status, card number, what to reply beside the card or None).
Change = Callable[[IngestTx], tuple[int, str, dict[str, Any] | None]]


async def _write(request: web.Request, prepare: Callable[[dict[str, Any], Write], Awaitable[Change]],
                 scope: str = "cards:write", card_reply: bool = True) -> web.Response:
    """Authorize, read the body and check it (`prepare` refuses before anything is stored, the
    key included), then run its change once per Idempotency-Key; the reply is the card after it
    (with the change's own reply beside it, as `{…, "card": card}`); without `card_reply`, the
    change's own reply alone."""
    token = await _authorize(request, scope)
    key = _key(request)
    data, body = await _body(request)
    store = request.app[ADMIN_STORE]
    write = Write(token.name, key, request.method, request.path, data)
    change = await prepare(body, write)

    def run(tx: IngestTx) -> admin_store.Reply:
        status, number, extra = change(tx)
        if not card_reply:
            return status, extra or {}
        view = card_view(tx, store.name, number)
        assert view is not None  # written in this transaction
        return status, view if extra is None else {**extra, "card": view}

    (status, reply), replayed = await _run(request, admin_store.idempotent, store, write, run)
    log.info("event=admin_write token=%s method=%s path=%s status=%d replayed=%s", token.name, request.method,
             request.path[:100], status, replayed)
    return _reply(status, reply, {REPLAYED_HEADER: "true"} if replayed else None)


async def post_card(request: web.Request) -> web.Response:
    async def prepare(body: dict[str, Any], write: Write) -> Change:
        card, expires_ms = parse_enrol(body, admin_store.now_ms())

        def change(tx: IngestTx) -> tuple[int, str, None]:
            admin_store.enrol(tx, card, expires_ms, {})
            return 201, card.number, None

        return change

    return await _write(request, prepare)


def _blocking(blocked: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        number = _number(request)

        async def prepare(body: dict[str, Any], write: Write) -> Change:
            _check_reason(body)

            def change(tx: IngestTx) -> tuple[int, str, None]:
                admin_store.set_blocked(tx, number, blocked)
                return 200, number, None

            return change

        return await _write(request, prepare)

    return handler


async def post_award(request: web.Request) -> web.Response:
    """Grant an award of the published program (spec §16, central/awards.py) to the card."""
    number = _number(request)
    store = request.app[ADMIN_STORE]

    async def prepare(body: dict[str, Any], write: Write) -> Change:
        unknown = sorted(set(body) - {"award"})
        if unknown:
            raise AdminError(f"field {unknown[0][:40]}: unknown; the only field is award")
        award_id = _text(body, "award", AWARD_ID_CHARS_MAX)
        if not award_id:
            raise AdminError("field award: required, the id of an award of the published program")
        now = dt.datetime.now(dt.UTC)

        def change(tx: IngestTx) -> tuple[int, str, dict[str, Any]]:
            return 201, number, {"grant": admin_store.award(tx, store, number, award_id, write, now)}

        return change

    return await _write(request, prepare, "awards:write")


async def post_coupons(request: web.Request) -> web.Response:
    """Issue codes of a coupon series of the published rules (spec §13, central/coupons.py), fed
    to every terminal in the transaction that records the reply."""
    store = request.app[ADMIN_STORE]

    async def prepare(body: dict[str, Any], write: Write) -> Change:
        unknown = sorted(set(body) - {"series", "count", "valid_days"})
        if unknown:
            raise AdminError(f"field {unknown[0][:40]}: unknown; fields: count, series, valid_days")
        series = _text(body, "series", COUPON_SERIES_CHARS_MAX)
        if not series:
            raise AdminError("field series: required, a [[coupon_series]] id of the published rules")
        count, valid_days = body.get("count", 1), body.get("valid_days")
        if type(count) is not int or not 1 <= count <= COUPONS_ISSUED_MAX:
            raise AdminError(f"field count: a whole number 1..{COUPONS_ISSUED_MAX}")
        if valid_days is not None and type(valid_days) is not int:
            raise AdminError("field valid_days: a whole number of days, or null for the series' dates")
        now_ms = admin_store.now_ms()
        known = await _run(request, coupons.published_series, store)
        try:
            valid_to = coupons.check_issue(known, series, count, valid_days, now_ms)
        except coupons.CouponError as exc:
            status, code = (404, "not_found") if series not in known else (400, "invalid")
            raise AdminError(str(exc).replace("--count", "field count").replace("--valid-days", "field valid_days"),
                             status, code) from None

        def change(tx: IngestTx) -> tuple[int, str, dict[str, Any]]:
            try:
                made = coupons.issue_in_tx(tx, series, count, valid_to, now_ms)
            except coupons.CouponError as exc:  # no free code after its draws: retry
                raise AdminError(str(exc), 503, "unavailable") from None
            return 201, "", {"series": series, "valid_to": valid_to, "codes": made}

        return change

    return await _write(request, prepare, "coupons:write", card_reply=False)


def _check_reason(body: dict[str, Any]) -> None:
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise AdminError(f"field {unknown[0][:40]}: unknown; the only field is reason")
    _text(body, "reason", REASON_CHARS_MAX)


# ------------------------------------------------------------------ reports


async def list_reports(request: web.Request) -> web.Response:
    await _authorize(request, "reports:read")
    found = [{"name": s.name, "title": s.title, "meaning": s.meaning} for s in reports.REPORTS.values()]
    return _reply(200, {"reports": found, "range_days_max": reports.RANGE_DAYS_MAX, "top_max": reports.TOP_MAX})


async def get_report(request: web.Request) -> web.Response:
    await _authorize(request, "reports:read")
    name = request.match_info["name"]
    if name not in reports.REPORTS:
        raise AdminError(f"no report {name[:40]!r}; reports: {', '.join(reports.REPORTS)}", 404, "not_found")
    unknown = sorted(set(request.query) - {"from", "to", "top"})
    if unknown:
        raise AdminError(f"query parameter {unknown[0][:40]}: unknown; give from, to and (top_products) top")
    top_text = request.query.get("top", str(reports.TOP_DEFAULT))
    if not top_text.isdigit() or len(top_text) > 3:
        raise AdminError(f"top: a whole number 1..{reports.TOP_MAX}")
    start, end = reports.parse_range(request.query.get("from", ""), request.query.get("to", ""))
    top = reports.check_top(int(top_text))
    found = await _run(request, reports.run, request.app[ADMIN_STORE], name, start, end, top)
    return _reply(200, found.as_dict())


# ------------------------------------------------------------------ wiring


ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/cards/{number}", get_card),
    ("POST", "/cards", post_card),
    ("POST", "/cards/{number}/block", _blocking(True)),
    ("POST", "/cards/{number}/unblock", _blocking(False)),
    ("POST", "/cards/{number}/awards", post_award),
    ("POST", "/coupons", post_coupons),
    ("GET", "/reports", list_reports),
    ("GET", "/reports/{name}", get_report),
)


@web.middleware
async def admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /admin/: refusals as JSON (never the terminals' msgpack), unknown routes 404/405
    after authentication, the database down 503."""
    if not request.path.startswith("/admin/"):
        return await handler(request)
    try:
        try:
            return await handler(request)
        except web.HTTPNotFound:
            await _token(request)
            raise AdminError(f"no route {request.method} {request.path[:100]}", 404, "not_found") from None
        except web.HTTPMethodNotAllowed as exc:
            await _token(request)
            allowed = ", ".join(sorted(exc.allowed_methods))
            refused = AdminError(f"{request.method} is not allowed here; allowed: {allowed}", 405, "method_not_allowed")
            return _refusal(refused, {"Allow": allowed})
    except AdminError as exc:
        return _refusal(exc)
    except reports.ReportError as exc:
        return _refusal(AdminError(str(exc)))
    except StoreError as exc:
        log.error("event=store_unavailable route=admin detail=%r", str(exc)[:200])
        return _refusal(AdminError("the database is unavailable; retry later", 503, "unavailable"))


def add_admin_api(app: web.Application, store: Store, pool: ThreadPoolExecutor) -> None:
    """Register the routes and their error middleware on the central app."""
    app[ADMIN_STORE] = store
    app[ADMIN_POOL] = pool
    for method, path, handler in ROUTES:
        app.router.add_route(method, PREFIX + path, handler)
    app.middlewares.append(admin_errors)
