"""HTTP routes of the kiosk screen, added to the local API (terminal.api) by `kiosk_routes`.

    GET  /                       the screen (static/index.html); /screen/{name} its script and styles
    GET  /v1/screen              language, store name, the programme's terms (shown in full at enrolment)
    GET  /v1/receipts/{id}/qr.svg  the receipt's QR code, SVG drawn by segno
    POST /v1/checkout/phone      attach the card registered to a phone number typed on the screen
    POST /v1/checkout/coupon     a coupon code typed or scanned, checked and priced (terminal/coupons.py)
    POST /v1/cards               enrolment: a new card for a phone, with consent to the terms
    POST /v1/attendant/session   an attendant's name + PIN → a session token (rate-limited)
    GET|DELETE /v1/attendant/session
    POST /v1/checkout/age        the attendant approves the age-restricted lines (permission `age`)
    POST /v1/cards/{number}/adjust  points adjustment by an attendant (permission `adjust`)

Phone numbers are masked in every answer and event and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import secrets
import time
from typing import Any

import segno
from aiohttp import web

from drivers.codes import gtin_check_digit
from terminal.api import ApiServer, _body, _ok, _only, _text
from terminal.attendants import AttendantError, check_name, check_pin
from terminal.checkout import BadRequest, CheckoutError
from terminal.daemon import now_local
from terminal.files import read_bounded
from terminal.guard import HEADER, attended, needs
from terminal.ledger import LedgerConflictError
from terminal.screen import ASSETS, STATIC

TERMS_BYTES_MAX = 64 * 1024
COUPON = re.compile(r"^[A-Za-z0-9_-]{3,32}$")
RECEIPT_ID_CHARS_MAX = 32
ENROL_TRIES_MAX = 8
CARD_DIGITS = 13
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


class KioskRoutes:
    def __init__(self, api: ApiServer) -> None:
        self.api = api
        self.login_lock = asyncio.Lock()  # one PIN check at a time: scrypt is slow on purpose

    @property
    def daemon(self) -> Any:
        return self.api.daemon

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/screen/{name}", self.asset),
            web.get("/v1/screen", self.settings),
            web.get("/v1/receipts/{id}/qr.svg", self.qr),
            web.post("/v1/checkout/phone", self.phone),
            web.post("/v1/checkout/coupon", self.coupon),
            web.post("/v1/cards", self.enrol),
            web.post("/v1/attendant/session", self.login),
            web.get("/v1/attendant/session", self.whoami),
            web.delete("/v1/attendant/session", self.logout),
            web.post("/v1/checkout/age", self.approve_age),
            web.post("/v1/cards/{number}/adjust", self.adjust),
        ]

    # ------------------------------------------------------------------ the screen itself

    async def index(self, request: web.Request) -> web.StreamResponse:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound(reason=f"no screen file {name[:40]!r}")
        return self._file(name)

    @staticmethod
    def _file(name: str) -> web.Response:
        body = (STATIC / name).read_bytes()
        kind = CONTENT_TYPES[name[name.rindex("."):]]
        return web.Response(body=body, content_type=kind, charset="utf-8",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def settings(self, request: web.Request) -> web.Response:
        cfg = self.daemon.config
        screen, engine = cfg.screen, self.daemon.register.engine
        terms = ""
        if screen.terms_file is not None:
            terms = read_bounded(screen.terms_file, TERMS_BYTES_MAX, "terms").decode("utf-8", "replace")
        return _ok({"language": screen.language, "languages": ["ru", "en"], "store": cfg.store,
                    "store_name": cfg.store_name or cfg.store, "terminal": cfg.terminal_id,
                    "terms": terms, "terms_version": screen.terms_version, "enrolment": bool(terms),
                    "point_value": None if engine is None else engine.program.point_value})

    async def qr(self, request: web.Request) -> web.Response:
        receipt_id = request.match_info["id"]
        if not 0 < len(receipt_id) <= RECEIPT_ID_CHARS_MAX or not receipt_id.isascii() or not receipt_id.isprintable():
            raise BadRequest(f"a receipt id is 1..{RECEIPT_ID_CHARS_MAX} printable ASCII characters")
        if self.daemon.ledger.receipt(receipt_id) is None:
            raise web.HTTPNotFound(reason=f"receipt {receipt_id}: not in this terminal's ledger")
        out = io.BytesIO()
        segno.make(receipt_id, error="m").save(out, kind="svg", scale=6, border=2, xmldecl=False,
                                               title=receipt_id)
        return web.Response(body=out.getvalue(), content_type="image/svg+xml")

    # ------------------------------------------------------------------ customer entries

    async def phone(self, request: web.Request) -> web.Response:

        body = await _body(request)
        _only(body, {"phone"})
        phone = _text(body, "phone") or ""
        number = self.daemon.ledger.card_by_phone(phone)
        mode = await self.daemon.card_mode(number)
        return _ok(await self.daemon.act(self.daemon.register.attach_card, number, now_local(), mode))

    async def coupon(self, request: web.Request) -> web.Response:

        body = await _body(request)
        _only(body, {"code"})
        code = _text(body, "code") or ""
        if not COUPON.match(code):
            raise BadRequest("a coupon code is 3..32 of A-Z a-z 0-9 _ -")
        return _ok(await self.daemon.act(self.daemon.register.add_coupon, code, now_local()))

    async def enrol(self, request: web.Request) -> web.Response:

        body = await _body(request)
        _only(body, {"phone", "consent", "terms_version"})
        phone = _text(body, "phone") or ""
        screen = self.daemon.config.screen
        if screen.terms_file is None:
            raise CheckoutError("enrolment is off: no programme terms are configured ([screen] terms_file)")
        if body.get("consent") is not True or body.get("terms_version") != screen.terms_version:
            raise BadRequest(f"enrolment needs consent (true) to the terms version {screen.terms_version}")
        terms = read_bounded(screen.terms_file, TERMS_BYTES_MAX, "terms")
        consent = {"terms_version": screen.terms_version, "terms_sha256": hashlib.sha256(terms).hexdigest()}
        cfg = self.daemon.config

        def register() -> dict[str, Any]:
            for _ in range(ENROL_TRIES_MAX):  # a random number that is taken: draw again
                number = _new_card_number(screen.enrol_prefix)
                try:
                    return dict(self.daemon.ledger.register_card(
                        f"enrol-{number}", number, screen.enrol_type, phone, consent, cfg.store, now_local()))
                except LedgerConflictError as exc:
                    if "phone" in str(exc):
                        raise
            raise CheckoutError(f"no free card number after {ENROL_TRIES_MAX} tries; call the attendant")

        card = await self.daemon.act(register)
        self.daemon.publish("card_registered", {"card": card["card"], "phone": card["phone"]})
        self.daemon.wake_sync()
        return _ok(card)

    # ------------------------------------------------------------------ attendants

    async def login(self, request: web.Request) -> web.Response:

        body = await _body(request)
        _only(body, {"name", "pin"})
        try:
            name, pin = check_name(body.get("name")), check_pin(body.get("pin"))
        except AttendantError as exc:
            raise BadRequest(str(exc)) from None
        desk = self.daemon.attendants
        async with self.login_lock:
            entry = await asyncio.to_thread(desk.check, name, pin, time.monotonic())
        session = desk.open(entry, time.monotonic())
        self.daemon.publish("attendant", {"attendant": session.name, "role": session.role, "state": "in"})
        return _ok({"token": session.token, "header": HEADER, **session.public()})

    async def whoami(self, request: web.Request) -> web.Response:
        token = request.headers.get(HEADER)
        session = self.daemon.attendants.sessions.get(token or "")
        if session is None:
            raise AttendantError("no attendant session")
        return _ok(session.public())

    async def logout(self, request: web.Request) -> web.Response:
        closed = self.daemon.attendants.close(request.headers.get(HEADER))
        if closed:
            self.daemon.publish("attendant", {"state": "out"})
        return _ok({"closed": closed})

    async def approve_age(self, request: web.Request) -> web.Response:
        who = needs(self.daemon, request, "age")
        run = attended(self.daemon, who, "age_approved", {}, self.daemon.register.approve_age)
        return _ok(await self.daemon.act(run, who.name, now_local()))

    async def adjust(self, request: web.Request) -> web.Response:

        who = needs(self.daemon, request, "adjust")
        number = request.match_info["number"][:64]
        body = await _body(request)
        _only(body, {"points", "reason"})
        points, reason = body.get("points"), _text(body, "reason") or ""
        if isinstance(points, bool) or not isinstance(points, int) or points == 0:
            raise BadRequest("field 'points' must be a whole number other than 0 (negative takes points off)")
        op_id = f"adj-{secrets.token_hex(8)}"
        # The ledger's adjustment event names the attendant (its `technician` field).
        result = await self.daemon.act(self.daemon.ledger.adjust, op_id, number, points, reason, who.name,
                                       now_local())
        self.daemon.wake_sync()
        return _ok(result)


def _new_card_number(prefix: str) -> str:
    body = prefix + "".join(secrets.choice("0123456789") for _ in range(CARD_DIGITS - 1 - len(prefix)))
    return body + str(gtin_check_digit(body))


def kiosk_routes(api: ApiServer) -> list[web.RouteDef]:
    return KioskRoutes(api).routes()
