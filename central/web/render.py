"""Pages from Jinja2 templates (`central/web/templates/`, autoescaped, undefined names an
error) and the headers every console reply carries: no caching, no framing, no script at all
(the console has no JavaScript: the Content-Security-Policy forbids every script)."""

from __future__ import annotations

from typing import Any

import jinja2
from aiohttp import web

CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
# Report plots are inline SVG whose drawing library styles them with a <style> element.
CSP_PLOTS = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}

ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("central.web", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def mask_name(holder: str) -> str:
    """'Anna Petrova' → 'A••• P•••': a holder is personal data, shown masked."""
    return " ".join(f"{word[0]}•••" for word in holder.split()[:4]) or "—"


def money(minor: Any) -> str:
    """Minor units as a decimal amount ('1 140.00', grouped by no-break spaces)."""
    if not isinstance(minor, int):
        return "—"
    sign, value = ("−" if minor < 0 else ""), abs(minor)
    return f"{sign}{value // 100:,}.{value % 100:02d}".replace(",", "\u00a0")


ENV.filters["mask_name"] = mask_name
ENV.filters["money"] = money


def page(template: str, status: int = 200, csp: str = CSP, **context: Any) -> web.Response:
    body = ENV.get_template(template).render(**context)
    return web.Response(text=body, status=status, content_type="text/html", charset="utf-8",
                        headers={**HEADERS, "Content-Security-Policy": csp})
