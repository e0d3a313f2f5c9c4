"""SVG plots of the reports (`central/reports.py`), drawn by pygal (a maintained pure-Python SVG
chart library; no numpy, no browser).

API (stable; the web console and the CLI use it):

    render(report, width=PLOT_WIDTH, height=PLOT_HEIGHT) -> str   # one SVG document, UTF-8 text

The SVG has no XML declaration (it can be inlined in an HTML page or served as
`image/svg+xml`), no script and nothing fetched from elsewhere: pygal's tooltip script, which it
would load from a CDN, is left out, and so is the inline script with its config (removed by a
pygal XML filter), so a console page under a strict Content-Security-Policy shows it as is.
Every series is named in the legend. What is drawn:
- `points_daily`: lines of earned, redeemed, expired (sweep + terminals) per day;
- `sales_daily`: per day, stacked bars of each store's total and its discount (their sum: the
  store's subtotal);
- `sales_by_level`: bars of total and discount per level;
- `top_products`: horizontal bars of money paid per product;
- `liability`: bars of outstanding points per expiry bucket.
Money is plotted in integer minor units, like the reports (the axis title says so). Text from
the data (store ids, SKUs, product names) is escaped by pygal's XML writer.
"""

from __future__ import annotations

import datetime as dt
import sys
from typing import Any

import pygal
from pygal.style import DefaultStyle

from central.reports import Report, ReportError

# pygal appends a `sys.meta_path` finder for its map plugins (`pygal.maps.*`, unused here) that
# has no `find_spec`: every later import that misses the other finders then raises an
# ImportWarning (an error under the tests' filterwarnings). Without map plugins it does nothing.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

PLOT_WIDTH = 900
PLOT_HEIGHT = 420
X_LABELS_MAJOR_MAX = 16  # past this many days only every n-th day is labelled
LABEL_CHARS_MAX = 24


def _config(report: Report, width: int, height: int, y_title: str) -> dict[str, object]:
    return {
        "title": report.title,
        "width": width,
        "height": height,
        "js": [],  # pygal would fetch its tooltip script from a CDN; the console loads nothing
        "disable_xml_declaration": True,
        "style": DefaultStyle,
        "y_title": y_title,
        "legend_at_bottom": True,
        "truncate_label": LABEL_CHARS_MAX,
        "truncate_legend": LABEL_CHARS_MAX,
        "x_label_rotation": 30,
        "show_minor_x_labels": False,
        "no_data_text": "no data in this range",
    }


def _day_labels(report: Report) -> list[str]:
    days = (report.end - report.start).days + 1
    return [(report.start + dt.timedelta(days=i)).isoformat() for i in range(days)]


def _major_every(labels: list[str]) -> dict[str, object]:
    every = max(1, len(labels) // X_LABELS_MAJOR_MAX)
    return {"x_labels": labels, "x_labels_major_every": every}


def _points(report: Report, width: int, height: int) -> str:
    labels = report.column("day")
    chart = pygal.Line(**_config(report, width, height, "points"), **_major_every([str(x) for x in labels]),
                       show_dots=len(labels) <= 62)
    chart.add("earned", report.column("earned"))
    chart.add("redeemed", report.column("redeemed"))
    sweep, terminals = report.column("expired"), report.column("expired_terminal")
    chart.add("expired", [int(a) + int(b) for a, b in zip(sweep, terminals, strict=True)])
    return _svg(chart)


def _sales(report: Report, width: int, height: int) -> str:
    labels = _day_labels(report)
    where = {label: i for i, label in enumerate(labels)}
    stores = sorted({str(s) for s in report.column("store")})
    totals = {s: [0] * len(labels) for s in stores}
    discounts = {s: [0] * len(labels) for s in stores}
    for row in report.rows:
        day, store = str(row[0]), str(row[1])
        totals[store][where[day]] += int(row[5])
        discounts[store][where[day]] += int(row[4])
    chart = pygal.StackedBar(**_config(report, width, height, "minor units of money"), **_major_every(labels))
    for store in stores:
        chart.add(f"{store} sales", totals[store])
        chart.add(f"{store} discount", discounts[store])
    return _svg(chart)


def _levels(report: Report, width: int, height: int) -> str:
    chart = pygal.Bar(**_config(report, width, height, "minor units of money"),
                      x_labels=[str(x) for x in report.column("level")])
    chart.add("total", report.column("total"))
    chart.add("discount", report.column("discount"))
    return _svg(chart)


def _top(report: Report, width: int, height: int) -> str:
    names = [f"{sku} {name}" if name != sku else str(sku) for sku, name in
             zip(report.column("sku"), report.column("name"), strict=True)]
    config = {**_config(report, width, height, "minor units of money"), "x_label_rotation": 0}
    chart = pygal.HorizontalBar(**config, x_labels=names)
    chart.add("paid", report.column("paid"))
    return _svg(chart)


def _liability(report: Report, width: int, height: int) -> str:
    chart = pygal.Bar(**_config(report, width, height, "points"), x_labels=[str(x) for x in report.column("bucket")])
    chart.add("outstanding points", report.column("points"))
    return _svg(chart)


def _without_scripts(root: Any) -> Any:
    """pygal's XML filter: drop the inline <script> pygal always writes (its config for the
    tooltip script we do not load)."""
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag == "script" or str(child.tag).endswith("}script"):
                parent.remove(child)
    return root


def _svg(chart: Any) -> str:
    chart.add_xml_filter(_without_scripts)
    return str(chart.render(is_unicode=True))


DRAW = {
    "points_daily": _points,
    "sales_daily": _sales,
    "sales_by_level": _levels,
    "top_products": _top,
    "liability": _liability,
}


def render(report: Report, width: int = PLOT_WIDTH, height: int = PLOT_HEIGHT) -> str:
    """The report's plot as one SVG document (text)."""
    draw = DRAW.get(report.name)
    if draw is None:
        raise ReportError(f"no plot for report {report.name[:40]!r}")
    return draw(report, width, height)
