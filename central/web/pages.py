"""The console's read pages and the card actions: terminals, cards (search, a card with its
lots and history, adjust, block), shortfalls, the audit trail and the users.

A card is found by its number or by the phone it was registered with at a kiosk; phones and
holders are shown masked, birth dates not at all. Adjust and block write the change and its
audit row in one transaction. Limits: `REASON_CHARS` for a reason; `QUERY_CHARS_MAX`.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from aiohttp import web

from central import checks, console_db, lots
from central.console_db import ConsoleError
from central.server import log_line
from central.web.auth import Ctx, refusal, run, see_other, store_of
from central.web.render import page
from protocol import schemas

QUERY_CHARS_MAX = 64
REASON_CHARS = (3, 200)
PHONE_DIGITS = (10, 15)
SEEN_KEY: web.AppKey[dict[str, int]] = web.AppKey("console_terminals_seen", dict)


def _context(ctx: Ctx, title: str, **more: Any) -> dict[str, Any]:
    return {"user": ctx.user, "csrf": ctx.csrf, "title": title, **more}


async def home(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return see_other("/console/terminals")


async def terminals(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    store = store_of(request)
    rows = await run(request, console_db.terminals, store)
    seen = request.app[SEEN_KEY]
    for row in rows:
        row["last_seen"] = lots.ms_iso(seen[row["terminal"]]) if row["terminal"] in seen else None
    head = await run(request, console_db.feed_head, store)
    return page("terminals.html", **_context(ctx, "Terminals", terminals=rows, feed_head=head))


def _phone(text: str) -> str | None:
    """The digits of a phone number as kiosks register them, or None if `text` is not one."""
    if set(text) - set("0123456789+-() "):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    return digits if PHONE_DIGITS[0] <= len(digits) <= PHONE_DIGITS[1] else None


async def cards(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q = request.query.get("q", "").strip()[:QUERY_CHARS_MAX]
    store = store_of(request)
    matches: list[dict[str, Any]] = []
    message = ""
    if q:
        if schemas.card_number_ok(q) and await run(request, store.card, q) is not None:
            return see_other(f"/console/cards/{quote(q, safe='')}")
        digits = _phone(q)
        if digits is not None:
            matches = await run(request, console_db.cards_by_phone, store, digits)
        message = "" if matches else f"no card has the number {q}" + (" or that phone" if digits else "")
    return page("cards.html", status=200, **_context(ctx, "Cards", q=q, matches=matches, message=message))


async def card(request: web.Request, ctx: Ctx, message: str = "", status: int = 200) -> web.StreamResponse:
    number = request.match_info["number"]
    store = store_of(request)
    found = await run(request, store.card, number) if schemas.card_number_ok(number) else None
    if found is None:
        return refusal(request, 404, f"card {number[:64]}: unknown to the central server", ctx.user)
    state, version = found
    facts = (await run(request, store.card_facts, [number])).get(number, {})
    lots = await run(request, store.card_lots, number)
    expired = await run(request, store.expiries, number)
    history = await run(request, console_db.card_history, store, number)
    actions = [a for a in await run(request, console_db.audit_rows, store) if a["target"] == number]
    done = request.query.get("done", "")[:200]
    return page("card.html", status=status, **_context(
        ctx, f"Card {number}", card=state, version=version, facts=facts, lots=lots, expired=expired,
        history=history, actions=actions, message=message, done=done, reason_chars=REASON_CHARS,
        adjust_max=schemas.ADJUST_POINTS_MAX))


def _reason(ctx: Ctx) -> str:
    reason = ctx.text("reason", REASON_CHARS[1] + 1)
    if not REASON_CHARS[0] <= len(reason) <= REASON_CHARS[1]:
        raise ConsoleError(f"give a reason of {REASON_CHARS[0]}..{REASON_CHARS[1]} characters; nothing changed")
    return reason


async def adjust(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    number = request.match_info["number"]
    store = store_of(request)
    try:
        reason = _reason(ctx)
        text = ctx.text("points", 20)
        if not text.lstrip("+-").isdigit():
            raise ConsoleError(f"points: {text!r} is not a whole number; nothing changed")
        points = int(text)
        checks.adjustment(number, points)
        if await run(request, store.card, number) is None:
            raise ConsoleError(f"card {number[:64]}: unknown to the central server; nothing changed")

        def write_audit(tx: object) -> None:
            console_db.audit(tx, ctx.user, "card_adjust", number, f"{points:+d} points: {reason}")  # type: ignore[arg-type]

        state = await run(request, lambda: store.adjust_card(number, points, checks.balance, write_audit))
    except (ConsoleError, checks.CheckError) as exc:
        return await card(request, ctx, str(exc), 400)
    log_line(logging.INFO, "console_card_adjusted", user=ctx.user.name, card=number, points=points)
    return see_other(f"/console/cards/{quote(number, safe='')}?done=" + quote(f"adjusted by {points:+d}; "
                                                                               f"balance {state.balance}"))


async def block(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    number = request.match_info["number"]
    want = ctx.text("action", 10)
    try:
        if want not in ("block", "unblock"):
            raise ConsoleError("action: block or unblock; nothing changed")
        reason = _reason(ctx)
        await run(request, console_db.block_card, store_of(request), number, want == "block", ctx.user, reason)
    except ConsoleError as exc:
        return await card(request, ctx, str(exc), 400)
    log_line(logging.INFO, "console_card_blocked", user=ctx.user.name, card=number, blocked=want == "block")
    return see_other(f"/console/cards/{quote(number, safe='')}?done={want}ed")


async def shortfalls(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    rows = await run(request, console_db.shortfalls, store_of(request))
    return page("shortfalls.html", **_context(ctx, "Shortfalls", rows=rows,
                                              shown_max=console_db.SHORTFALLS_SHOWN_MAX))


async def audit(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    rows = await run(request, console_db.audit_rows, store_of(request))
    return page("audit.html", **_context(ctx, "Audit", rows=rows))


async def users(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    rows = await run(request, console_db.users, store_of(request))
    return page("users.html", **_context(ctx, "Users", rows=rows, roles=console_db.ROLES))


async def missing(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    return refusal(request, 404, f"no console page {request.path[:100]}", ctx.user)
