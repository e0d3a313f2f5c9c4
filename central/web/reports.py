"""The console's report pages (viewer and up): each report of `central/reports.py` for a range
of days, its plot inline as SVG (`central/plots.py`, drawn by pygal, no script) above its table,
and its CSV for download. Limits are the reports' own (`reports.RANGE_DAYS_MAX`, `TOP_MAX`);
the default range is the last `DEFAULT_DAYS` days."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from markupsafe import Markup

from central import plots, reports
from central.web.auth import Ctx, refusal, run, store_of
from central.web.render import CSP_PLOTS, HEADERS, page

DEFAULT_DAYS = 30
QUERY_CHARS_MAX = 16


def _range(request: web.Request) -> tuple[dt.date, dt.date, int]:
    """The page's range and top from its query (today and the `DEFAULT_DAYS` before by default)."""
    today = dt.datetime.now(dt.UTC).date()
    start = request.query.get("from", "")[:QUERY_CHARS_MAX] or (today - dt.timedelta(days=DEFAULT_DAYS - 1)).isoformat()
    end = request.query.get("to", "")[:QUERY_CHARS_MAX] or today.isoformat()
    top_text = request.query.get("top", "")[:QUERY_CHARS_MAX] or str(reports.TOP_DEFAULT)
    if not top_text.isdigit():
        raise reports.ReportError(f"top: {top_text!r} is not a whole number")
    first, last = reports.parse_range(start, end)
    return first, last, reports.check_top(int(top_text))


def _query(start: dt.date, end: dt.date, top: int) -> str:
    return urlencode({"from": start.isoformat(), "to": end.isoformat(), "top": top})


async def index(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    try:
        start, end, top = _range(request)
    except reports.ReportError as exc:
        return refusal(request, 400, str(exc), ctx.user)
    return page("reports.html", user=ctx.user, csrf=ctx.csrf, title="Reports", specs=list(reports.REPORTS.values()),
                start=start, end=end, top=top, query=_query(start, end, top), report=None)


def _report(store: Any, name: str, start: dt.date, end: dt.date, top: int) -> tuple[reports.Report, str]:
    found = reports.run(store, name, start, end, top)
    return found, plots.render(found)


async def show(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        start, end, top = _range(request)
        found, svg = await run(request, _report, store_of(request), name, start, end, top)
    except reports.ReportError as exc:
        return refusal(request, 400, str(exc), ctx.user)
    # pygal's SVG: text escaped by its XML writer, scripts removed (central/plots.py)
    return page("reports.html", csp=CSP_PLOTS, user=ctx.user, csrf=ctx.csrf, title=found.title,
                specs=list(reports.REPORTS.values()), start=start, end=end, top=top,
                query=_query(start, end, top), report=found, plot=Markup(svg))


async def csv(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name = request.match_info["name"]
    try:
        start, end, top = _range(request)
        found = await run(request, reports.run, store_of(request), name, start, end, top)
    except reports.ReportError as exc:
        return refusal(request, 400, str(exc), ctx.user)
    filename = f"{found.name}-{start.isoformat()}-{end.isoformat()}.csv"
    return web.Response(text=reports.to_csv(found), content_type="text/csv", charset="utf-8",
                        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'})
