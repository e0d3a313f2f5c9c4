"""The kiosk's customer screen, served by the daemon itself on 127.0.0.1 (the [api] tcp_port).

`static/` holds the whole UI — one HTML page, one script, one style sheet, no build step and no
CDN (the kiosk is offline); `routes.py` serves it and adds the routes the screen needs beyond
the checkout API: its settings and texts, the receipt's QR code (SVG by segno), the phone and
coupon entries, enrolment, and the attendant sessions. Limits: `ASSET_BYTES_MAX` per file,
`ASSETS_BYTES_MAX` for the whole UI (tested).
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = ("index.html", "app.js", "app.css")
ASSET_BYTES_MAX = 256 * 1024
ASSETS_BYTES_MAX = 500 * 1024
