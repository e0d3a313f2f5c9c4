"""Who may do what in the console: logins, sessions, CSRF tokens and roles, enforced on the
server for every route (a link the page hides is refused here too).

- Sessions: a random token in the `posterm_console` cookie (HttpOnly, SameSite=Strict, Path
  /console, Max-Age `SESSION_TTL_S`, Secure over TLS); the database keeps its SHA-256, so
  several collectors behind one database share the sessions. Logout deletes the row.
- CSRF: every POST form carries the session's token (`csrf`), compared in constant time; the
  login form a token tied to a short-lived cookie (double submit). A POST whose Origin is
  another site is refused too.
- Roles: viewer < support < marketing < admin (`console_db.ROLES`); each route names the least
  role it needs (`guard`).
- Logins: `LOGIN_FAILURES_MAX` failed logins in `LOGIN_WINDOW_S`, per name and per address, and
  the next ones get 429 until the window passes (per process; `LOGIN_TRACKED_MAX` keys kept).
"""

from __future__ import annotations

import asyncio
import hmac
import io
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.streams import StreamReader
from multidict import MultiDict, MultiDictProxy

from central import console_db, passwords
from central.console_db import User
from central.server import POOL_KEY, log_line
from central.store import Store, StoreError
from central.web.render import page

SESSION_COOKIE = "posterm_console"
LOGIN_COOKIE = "posterm_console_login"
COOKIE_PATH = "/console"
SESSION_TTL_S = 8 * 3600
LOGIN_FORM_TTL_S = 900
LOGIN_FAILURES_MAX = 5
LOGIN_WINDOW_S = 300.0
LOGIN_TRACKED_MAX = 10_000
FORM_FIELD_CHARS_MAX = 1_000
FORM_PARTS_MAX = 16


@dataclass
class Ctx:
    """The request's user, its CSRF token (for the page's forms) and the POSTed form."""

    user: User
    csrf: str
    form: MultiDictProxy[Any]

    def text(self, name: str, chars_max: int = FORM_FIELD_CHARS_MAX) -> str:
        value = self.form.get(name, "")
        return value.strip()[:chars_max] if isinstance(value, str) else ""


Handler = Callable[[web.Request, Ctx], Awaitable[web.StreamResponse]]


class LoginLimiter:
    """Failed logins per key (`name:…`, `addr:…`) inside a sliding window."""

    def __init__(self) -> None:
        self.failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float]:
        found = self.failures.get(key, deque())
        while found and found[0] <= now - LOGIN_WINDOW_S:
            found.popleft()
        return found

    def wait_s(self, keys: list[str]) -> float:
        """Seconds until a login under these keys may be tried again (0: now)."""
        now = time.monotonic()
        waits = [self._recent(k, now) for k in keys]
        full = [w[0] + LOGIN_WINDOW_S - now for w in waits if len(w) >= LOGIN_FAILURES_MAX]
        return max(full, default=0.0)

    def failed(self, keys: list[str]) -> None:
        now = time.monotonic()
        for key in keys:
            found = self._recent(key, now)
            found.append(now)
            while len(found) > LOGIN_FAILURES_MAX:
                found.popleft()
            self.failures[key] = found
            self.failures.move_to_end(key)
        while len(self.failures) > LOGIN_TRACKED_MAX:
            self.failures.popitem(last=False)

    def succeeded(self, keys: list[str]) -> None:
        for key in keys:
            self.failures.pop(key, None)


LIMITER_KEY: web.AppKey[LoginLimiter] = web.AppKey("console_logins", LoginLimiter)


async def run(request: web.Request, fn: Any, *args: Any) -> Any:
    """A store call off the event loop, in the server's read pool (console writes are rare)."""
    return await asyncio.get_running_loop().run_in_executor(request.app[POOL_KEY], fn, *args)


def store_of(request: web.Request) -> Store:
    from central.server import STORE_KEY

    return request.app[STORE_KEY]


def see_other(location: str) -> web.Response:
    """303 after a POST (or to the login form): the browser GETs `location`."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def refusal(request: web.Request, status: int, message: str, user: User | None = None) -> web.Response:
    return page("error.html", status, user=user, csrf="", message=message, title=f"{status}")


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or origin == f"{request.scheme}://{request.host}"


def guard(role: str | None, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """The route's handler behind a session of at least `role`, with a CSRF check on POST.
    (`role` None: public, no session needed — the login form and the stylesheet.)"""

    async def guarded(request: web.Request) -> web.StreamResponse:
        form: MultiDictProxy[Any] = MultiDictProxy(MultiDict())
        if request.method == "POST":
            if not _same_origin(request):
                return refusal(request, 403, "this form was sent from another site; nothing changed")
            form = await _form(request)
        if role is None:
            return await handler(request, Ctx(User("", "viewer"), "", form))
        found = await _session(request)
        if found is None:
            if request.method == "GET":
                return see_other("/console/login")
            return refusal(request, 401, "not logged in (or the session expired); log in and try again")
        user, csrf = found
        if not user.may(role):
            log_line(logging.WARNING, "console_refused", user=user.name, role=user.role, path=request.path[:100],
                     status=403, reason="role")
            return refusal(request, 403, f"this needs the {role} role; you are {user.role}", user)
        if request.method == "POST":
            sent = form.get("csrf", "")
            if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), csrf.encode()):
                log_line(logging.WARNING, "console_refused", user=user.name, path=request.path[:100], status=403,
                         reason="csrf")
                return refusal(request, 403, "the form's CSRF token is missing or stale; reload the page and "
                               "send it again (nothing changed)", user)
        try:
            return await handler(request, Ctx(user, csrf, form))
        except StoreError as exc:
            log_line(logging.ERROR, "store_unavailable", path=request.path[:100], detail=repr(str(exc)[:200]))
            return refusal(request, 503, f"the database is unavailable: {str(exc)[:300]}; try again", user)

    guarded.console_role = role or "public"  # type: ignore[attr-defined]
    return guarded


async def _form(request: web.Request) -> MultiDictProxy[Any]:
    """The POSTed form. A multipart body is parsed from the bytes already read: the server's
    body deadline (central/limits.py) reads every body first, which leaves aiohttp's own
    multipart reader an empty stream. At most `FORM_PARTS_MAX` parts."""
    if request.content_type != "multipart/form-data":
        return await request.post()
    data = await request.read()
    # a high-water mark above the body: it is all here, nothing to pause
    stream = StreamReader(BaseProtocol(asyncio.get_running_loop()), len(data) + 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(data)
    stream.feed_eof()
    found: MultiDict[Any] = MultiDict()
    reader = MultipartReader(request.headers, stream)
    for _ in range(FORM_PARTS_MAX):
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader) or not part.name:
            continue
        body = await part.read()
        if part.filename is None:
            found.add(part.name, body.decode("utf-8", errors="replace"))
        else:
            found.add(part.name, web.FileField(part.name, part.filename, io.BytesIO(body),
                                               part.headers.get("Content-Type", ""), part.headers))
    return MultiDictProxy(found)


async def _session(request: web.Request) -> tuple[User, str] | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    try:
        found: tuple[User, str] | None = await run(request, console_db.session, store_of(request), token)
    except StoreError:
        return None
    return found


def _cookie(response: web.StreamResponse, request: web.Request, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path=COOKIE_PATH, httponly=True, samesite="Strict",
                        secure=request.secure)


async def login_form(request: web.Request, ctx: Ctx, message: str = "", status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(32)
    response = page("login.html", status, user=None, csrf=token, message=message, title="Log in")
    _cookie(response, request, LOGIN_COOKIE, token, LOGIN_FORM_TTL_S)
    return response


async def login(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    sent, cookie = ctx.text("csrf"), request.cookies.get(LOGIN_COOKIE, "")
    if not sent or not hmac.compare_digest(sent.encode(), cookie.encode()):
        return await login_form(request, ctx, "the login form expired; log in again", 403)
    name, password = ctx.text("name", 64), ctx.form.get("password", "")
    password = password if isinstance(password, str) else ""
    keys = [f"name:{name}", f"addr:{request.remote}"]
    limiter = request.app[LIMITER_KEY]
    wait_s = limiter.wait_s(keys)
    if wait_s > 0:
        log_line(logging.WARNING, "console_login_refused", remote=request.remote, status=429, reason="rate")
        return await login_form(request, ctx, f"too many failed logins; try again in {int(wait_s) + 1} s", 429)
    store = store_of(request)
    found = await run(request, console_db.password_hash, store, name)
    # scrypt on the default executor: the store's pool (one thread on SQLite) stays free.
    ok = await asyncio.get_running_loop().run_in_executor(
        None, passwords.verify, password, found[1] if found else None)
    if not ok or found is None:
        limiter.failed(keys)
        log_line(logging.WARNING, "console_login_refused", remote=request.remote, status=401, reason="password")
        return await login_form(request, ctx, "wrong name or password", 401)
    limiter.succeeded(keys)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await run(request, console_db.open_session, store, found[0], token, csrf, SESSION_TTL_S * 1000)
    log_line(logging.INFO, "console_login", user=found[0].name, role=found[0].role)
    response = see_other("/console/")
    _cookie(response, request, SESSION_COOKIE, token, SESSION_TTL_S)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)
    return response


async def logout(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    token = request.cookies.get(SESSION_COOKIE, "")
    await run(request, console_db.close_session, store_of(request), token)
    response = see_other("/console/login")
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)
    return response
