"""The console's coupon page: the published series (spec §13), the codes central holds, the
double uses booked at ingest, and issuing codes of a series (marketing and up).

Issuing writes the codes, their feed item and the audit row in one transaction; the codes
reach every terminal through the updates feed like `posterm-central coupons issue`. Limits:
`coupons.ISSUE_COUNT_MAX` codes an issue, `CODES_SHOWN_MAX` and `DOUBLE_USES_SHOWN_MAX` rows shown.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from aiohttp import web

from central import console_db, coupons
from central.console_db import User
from central.server import log_line
from central.web.auth import Ctx, run, see_other, store_of
from central.web.render import page

CODES_SHOWN_MAX = 200
DOUBLE_USES_SHOWN_MAX = 500


def _day(ordinal: int) -> str | None:
    return None if ordinal < 0 else dt.date.fromordinal(ordinal).isoformat()


def _overview(store: Any) -> dict[str, Any]:
    try:
        series, problem = coupons.published_series(store), ""
    except coupons.CouponError as exc:
        series, problem = {}, str(exc)
    return {
        "series": [{"id": s.id, "single_use": s.single_use, "valid_from": _day(s.valid_from),
                    "valid_to": _day(s.valid_to)} for s in series.values()],
        "codes": coupons.listing(store, None, CODES_SHOWN_MAX),
        "double_uses": coupons.double_used(store, DOUBLE_USES_SHOWN_MAX),
        "problem": problem,
        "count_max": coupons.ISSUE_COUNT_MAX,
    }


async def index(request: web.Request, ctx: Ctx, message: str = "", status: int = 200) -> web.StreamResponse:
    found = await run(request, _overview, store_of(request))
    done = request.query.get("done", "")[:200]
    return page("coupons.html", status, user=ctx.user, csrf=ctx.csrf, title="Coupons",
                message=message or found.pop("problem"), done=done, **found)


def _issue(store: Any, series: str, count: int, valid_days: int | None, actor: User) -> list[str]:
    now_ms = int(time.time() * 1000)
    valid_to = coupons.check_issue(coupons.published_series(store), series, count, valid_days, now_ms)
    with store.transaction() as tx:
        made = coupons.issue_in_tx(tx, series, count, valid_to, now_ms)
        console_db.audit(tx, actor, "coupons_issued", series, f"{count} code(s), last day {valid_to or 'the series'}")
    return made


def _whole(text: str, name: str) -> int | None:
    if not text:
        return None
    if not text.isdigit():
        raise coupons.CouponError(f"{name}: {text[:20]!r} is not a whole number; nothing issued")
    return int(text)


async def issue(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    series = ctx.text("series", 64)
    try:
        count = _whole(ctx.text("count", 8), "count") or 0
        valid_days = _whole(ctx.text("valid_days", 8), "valid days")
        made = await run(request, _issue, store_of(request), series, count, valid_days, ctx.user)
    except coupons.CouponError as exc:
        return await index(request, ctx, str(exc), 400)
    log_line(logging.INFO, "console_coupons_issued", user=ctx.user.name, series=series, count=len(made))
    return see_other(f"/console/coupons?done=issued+{len(made)}+code(s)+of+{series}")
