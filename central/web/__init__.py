"""The chain staff's web console, served by `posterm-central serve` under `/console/`.

Server-rendered pages (Jinja2 templates, one small stylesheet in the package, no script) behind
logins with roles — viewer < support < marketing < admin — checked on the server for every
route (`ROUTES` names each route's least role; `auth.guard` enforces it and the CSRF token of
every POST). Pages: terminals, cards (search by number or phone, lots, history, adjust, block),
shortfalls, rules / catalog / card file (upload → check → preview → publish), reports (SVG
plots, CSV), audit, users.
Console users are made with `posterm-central user add NAME --role R`.

Modules: `auth` (sessions, CSRF, roles, login rate limit), `pages` (reads and card actions),
`publish` (the upload flow), `preview` (sample carts priced both ways), `reports` (report
pages), `render` (templates and headers); the tables live in `central/console_db.py`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

from central.web import auth, coupons, pages, publish, reports
from central.web.auth import Ctx
from protocol.wire import TERMINAL_HEADER

STYLESHEET = resources.files("central.web").joinpath("static/console.css").read_bytes()


async def stylesheet(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return web.Response(body=STYLESHEET, content_type="text/css",
                        headers={"Cache-Control": "max-age=3600", "X-Content-Type-Options": "nosniff"})


def _routes() -> list[tuple[str, str, str | None, auth.Handler]]:
    """(method, path, least role or None for public, handler)."""
    routes: list[tuple[str, str, str | None, auth.Handler]] = [
        ("GET", "/console/static/console.css", None, stylesheet),
        ("GET", "/console/login", None, auth.login_form),
        ("POST", "/console/login", None, auth.login),
        ("POST", "/console/logout", "viewer", auth.logout),
        ("GET", "/console/", "viewer", pages.home),
        ("GET", "/console/terminals", "viewer", pages.terminals),
        ("GET", "/console/cards", "viewer", pages.cards),
        ("GET", "/console/cards/{number}", "viewer", pages.card),
        ("POST", "/console/cards/{number}/adjust", "support", pages.adjust),
        ("POST", "/console/cards/{number}/block", "support", pages.block),
        ("GET", "/console/shortfalls", "viewer", pages.shortfalls),
        ("GET", "/console/coupons", "viewer", coupons.index),
        ("POST", "/console/coupons/issue", "marketing", coupons.issue),
        ("GET", "/console/audit", "admin", pages.audit),
        ("GET", "/console/users", "admin", pages.users),
        ("GET", "/console/reports", "viewer", reports.index),
        ("GET", "/console/reports/{name}", "viewer", reports.show),
        ("GET", "/console/reports/{name}/csv", "viewer", reports.csv),
    ]
    for kind in publish.KINDS.values():
        routes += [
            ("GET", f"/console/{kind.name}", "viewer", publish.index(kind)),
            ("POST", f"/console/{kind.name}/upload", kind.role, publish.upload(kind)),
            ("GET", f"/console/{kind.name}/drafts/{{draft}}", kind.role, publish.show_draft(kind)),
            ("POST", f"/console/{kind.name}/publish", kind.role, publish.publish(kind)),
        ]
    return routes


ROUTES = _routes()


SEEN_MAX = 100_000  # terminals remembered by one collector


@web.middleware
async def terminal_seen(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """When this collector last answered a terminal's request with 200 — the reply was signed
    with its key, so the header's terminal id is authenticated (401 and the like do not count)."""
    response: web.StreamResponse = await handler(request)
    if response.status == 200 and request.path.startswith("/v1/") and TERMINAL_HEADER in request.headers:
        seen = request.app[pages.SEEN_KEY]
        if len(seen) >= SEEN_MAX:
            seen.clear()
        seen[request.headers[TERMINAL_HEADER][:64]] = int(time.time() * 1000)
    return response


async def _to_home(request: web.Request) -> web.StreamResponse:
    return auth.see_other("/console/")


def setup(app: web.Application) -> None:
    """Add the console's routes to the central app."""
    app[auth.LIMITER_KEY] = auth.LoginLimiter()
    app[pages.SEEN_KEY] = {}
    app.middlewares.append(terminal_seen)
    for method, path, role, handler in ROUTES:
        app.router.add_route(method, path, auth.guard(role, handler))
    app.router.add_get("/console", _to_home)
    app.router.add_route("*", "/console/{tail:.*}", auth.guard("viewer", pages.missing))
