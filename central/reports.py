"""Reports read from the central store (SQLite and PostgreSQL alike): what the chain's people
look at — points per day, sales per day per store, sales by card level, top products, and the
points liability.

API (stable; the web console (`central/web…`), the admin API (`central/admin_api.py`), the CLI
(`posterm-central report`) and `central/plots.py` use only this):

    REPORTS: dict[name, ReportSpec]           # name → (function, title, what it means)
    run(store, name, start, end, top=TOP_DEFAULT, now_ms=None) -> Report
    parse_range(start_text, end_text) -> (date, date)   # ISO dates, checked (ReportError)
    points_daily(store, start, end) -> Report
    sales_daily(store, start, end) -> Report
    sales_by_level(store, start, end) -> Report
    top_products(store, start, end, top=TOP_DEFAULT) -> Report
    liability(store, start, end, now_ms=None) -> Report
    to_csv(report) -> str                     # a header row of column names, then the rows

`start` and `end` are `datetime.date`s, both included, days in UTC (an event's `at_ms`). A
`Report` is `name`, `title`, `columns` (each a `Column(name, kind)`, kind one of `day`, `month`,
`text`, `count`, `money`, `points`) and `rows` (tuples of int and str, in column order);
`Report.as_dict()` is its JSON form. Money is integer minor units, points integer points — in
JSON and CSV alike (12345 is 123.45 in a currency of two decimals; the reader formats it).

What each report counts (every event is read as its terminal signed it):
- `points_daily`: per day (every day of the range, zeros included) `earned` (sales' `accrued`
  plus their referral credits), `redeemed` (sales' `redeemed`), `expired` (what the server's
  expiry sweep annulled that day: its `expiries` rows, the chain's authority on expiry),
  `expired_terminal` (points of terminals' own `expiry` events — the server takes from them
  only what its sweep had not annulled yet, so this may overlap `expired`), `restored` and
  `annulled` (returns: redeemed points given back; accrued points taken back, clawed included).
- `sales_daily`: per day and store (the terminal id) with any sale or return: `receipts`,
  `subtotal`, `discount`, `total` (subtotal − discount), `redeemed_money` (paid with points),
  `returned` (money refunded by returns that day at that terminal).
- `sales_by_level`: per card level (the sale's `card_type` before it; `(no card)` when no card,
  `(none)` for a card without a type): `receipts`, `total`, `discount`, `redeemed`, `accrued`.
- `top_products`: the `top` (≤ `TOP_MAX`) SKUs by money paid, from sale lines (sales of
  terminals that predate `lines` carry none): `sku`, `name` (the published catalog's),
  `qty_milli`, `amount`, `discount`, `paid`, `receipts`.
- `liability`: outstanding points now (the stored lots, `now_ms` default the clock) by when
  they expire: `expired` (past their date, not swept yet), `before <start>` (from now to the
  range's start), one row per month `YYYY-MM` of the range, `after <end>`, `never` (dateless
  lots) and `debt` (negative: shortfalls not yet covered). Columns `bucket`, `points`, `lots`.

Limits: a range of at most `RANGE_DAYS_MAX` days, `top` at most `TOP_MAX`, at most
`EVENTS_SCANNED_MAX` events read for one report (more: a `ReportError` asking for a shorter
range). Events are read in pages of `PAGE_ROWS` in primary-key order (no index on time: ingest
stays as fast as it was; a report scans the events table once).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from central import lots
from central.store import Store
from protocol import wire

RANGE_DAYS_MAX = 366
TOP_DEFAULT = 20
TOP_MAX = 100
PAGE_ROWS = 5_000
EVENTS_SCANNED_MAX = 20_000_000
EVENT_BYTES_MAX = wire.BATCH_BYTES_MAX
DATE_CHARS_MAX = 10
DAY_MS = 86_400_000
NO_CARD = "(no card)"
NO_TYPE = "(none)"
CSV_FORMULA_STARTS = ("=", "+", "-", "@")
KINDS = ("day", "month", "text", "count", "money", "points")
_EPOCH_DAY = dt.date(1970, 1, 1)

Value = int | str


class ReportError(Exception):
    """A report request central refuses (bad dates, range too long, unknown report); one line."""


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS: how to show and plot it (money: integer minor units)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    start: dt.date
    end: dt.date
    columns: tuple[Column, ...]
    rows: list[tuple[Value, ...]] = field(default_factory=list)

    def column(self, name: str) -> list[Value]:
        """One column's values, in row order."""
        i = [c.name for c in self.columns].index(name)
        return [row[i] for row in self.rows]

    def as_dict(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "columns": [{"name": c.name, "kind": c.kind} for c in self.columns],
            "rows": [list(row) for row in self.rows],
        }


def _cols(*spec: str) -> tuple[Column, ...]:
    """'name:kind' → Column."""
    out = []
    for item in spec:
        name, kind = item.split(":")
        assert kind in KINDS, kind
        out.append(Column(name, kind))
    return tuple(out)


# ------------------------------------------------------------------ the range


def parse_date(text: str, what: str) -> dt.date:
    if not isinstance(text, str) or len(text) != DATE_CHARS_MAX:
        raise ReportError(f"{what}: give a date as YYYY-MM-DD, got {str(text)[:40]!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{what}: {text!r} is not a date YYYY-MM-DD") from None


def check_range(start: dt.date, end: dt.date) -> None:
    if end < start:
        raise ReportError(f"the range ends ({end}) before it starts ({start})")
    days = (end - start).days + 1
    if days > RANGE_DAYS_MAX:
        raise ReportError(f"the range is {days} days; at most {RANGE_DAYS_MAX}")


def parse_range(start_text: str, end_text: str) -> tuple[dt.date, dt.date]:
    start, end = parse_date(start_text, "from"), parse_date(end_text, "to")
    check_range(start, end)
    return start, end


def check_top(top: int) -> int:
    if type(top) is not int or not 1 <= top <= TOP_MAX:
        raise ReportError(f"top must be a whole number 1..{TOP_MAX}, got {str(top)[:20]!r}")
    return top


def day_ms(day: dt.date) -> int:
    return (day - _EPOCH_DAY).days * DAY_MS


def ms_day(ms: int) -> dt.date:
    return _EPOCH_DAY + dt.timedelta(days=ms // DAY_MS)


def _days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


# ------------------------------------------------------------------ reading events


def events_in(
    store: Store, start: dt.date, end: dt.date, types: tuple[str, ...]
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(terminal, event) of the given types whose `at_ms` falls in the range, page by page in
    primary-key order; refuses (ReportError) past `EVENTS_SCANNED_MAX` matching events."""
    low, high = day_ms(start), day_ms(end) + DAY_MS
    marks = ",".join("?" * len(types))
    after: tuple[str, int, int] = ("", -1, -1)
    seen = 0
    while True:
        rows = store._query(
            f"SELECT terminal, epoch, seq, body FROM events WHERE (terminal, epoch, seq) > (?, ?, ?) "
            f"AND at_ms >= ? AND at_ms < ? AND type IN ({marks}) ORDER BY terminal, epoch, seq LIMIT ?",
            (*after, low, high, *types, PAGE_ROWS),
        )
        for terminal, _, _, body in rows:
            seen += 1
            if seen > EVENTS_SCANNED_MAX:
                raise ReportError(f"more than {EVENTS_SCANNED_MAX} events in {start}..{end}: give a shorter range")
            yield str(terminal), wire.unpack(bytes(body), EVENT_BYTES_MAX)
        if len(rows) < PAGE_ROWS:
            return
        last = rows[-1]
        after = (str(last[0]), int(last[1]), int(last[2]))


def _int(value: Any) -> int:
    """A stored event's number field (central validated it at ingest; old rows may lack it)."""
    return value if type(value) is int else 0


def _day_of(event: dict[str, Any]) -> dt.date:
    return ms_day(_int(event.get("at_ms")))


# ------------------------------------------------------------------ the reports

POINTS_COLUMNS = _cols(
    "day:day", "earned:points", "redeemed:points", "expired:points", "expired_terminal:points",
    "restored:points", "annulled:points",
)


def points_daily(store: Store, start: dt.date, end: dt.date) -> Report:
    check_range(start, end)
    days = {day: [0] * 6 for day in _days(start, end)}
    for _, event in events_in(store, start, end, ("sale", "return", "expiry")):
        sums = days[_day_of(event)]
        kind = event["type"]
        if kind == "sale":
            referral = event.get("referral") or []
            sums[0] += _int(event.get("accrued")) + sum(_int(r.get("points")) for r in referral if isinstance(r, dict))
            sums[1] += _int(event.get("redeemed"))
        elif kind == "expiry":
            sums[3] += _int(event.get("points"))
        else:
            sums[4] += _int(event.get("restored"))
            sums[5] += _int(event.get("annulled")) + _int(event.get("clawed"))
    low, high = day_ms(start), day_ms(end) + DAY_MS
    for at_ms, points in store._query(
        "SELECT at_ms, points FROM expiries WHERE at_ms >= ? AND at_ms < ?", (low, high)
    ):
        days[ms_day(int(at_ms))][2] += int(points)
    rows: list[tuple[Value, ...]] = [(day.isoformat(), *sums) for day, sums in days.items()]
    return Report("points_daily", "Points earned, redeemed and expired per day", start, end, POINTS_COLUMNS, rows)


SALES_COLUMNS = _cols(
    "day:day", "store:text", "receipts:count", "subtotal:money", "discount:money", "total:money",
    "redeemed_money:money", "returned:money",
)


def sales_daily(store: Store, start: dt.date, end: dt.date) -> Report:
    check_range(start, end)
    sums: dict[tuple[str, str], list[int]] = {}
    for terminal, event in events_in(store, start, end, ("sale", "return")):
        row = sums.setdefault((_day_of(event).isoformat(), terminal), [0] * 6)
        if event["type"] == "sale":
            row[0] += 1
            row[1] += _int(event.get("subtotal"))
            row[2] += _int(event.get("discount"))
            row[3] += _int(event.get("total"))
            row[4] += _int(event.get("redeemed_money"))
        else:
            row[5] += _int(event.get("money"))
    rows: list[tuple[Value, ...]] = [(day, terminal, *values) for (day, terminal), values in sorted(sums.items())]
    return Report("sales_daily", "Sales and discounts per day per store", start, end, SALES_COLUMNS, rows)


LEVEL_COLUMNS = _cols("level:text", "receipts:count", "total:money", "discount:money", "redeemed:points",
                      "accrued:points")


def sales_by_level(store: Store, start: dt.date, end: dt.date) -> Report:
    check_range(start, end)
    sums: dict[str, list[int]] = {}
    for _, event in events_in(store, start, end, ("sale",)):
        kind = event.get("card_type")
        level = NO_CARD if event.get("card") is None else (kind if isinstance(kind, str) and kind else NO_TYPE)
        row = sums.setdefault(level, [0] * 5)
        row[0] += 1
        row[1] += _int(event.get("total"))
        row[2] += _int(event.get("discount"))
        row[3] += _int(event.get("redeemed"))
        row[4] += _int(event.get("accrued"))
    ordered = sorted(sums.items(), key=lambda item: (-item[1][1], item[0]))  # biggest spend first
    rows: list[tuple[Value, ...]] = [(level, *values) for level, values in ordered]
    return Report("sales_by_level", "Sales by card level", start, end, LEVEL_COLUMNS, rows)


TOP_COLUMNS = _cols("sku:text", "name:text", "qty_milli:count", "amount:money", "discount:money", "paid:money",
                    "receipts:count")


def top_products(store: Store, start: dt.date, end: dt.date, top: int = TOP_DEFAULT) -> Report:
    check_range(start, end)
    check_top(top)
    sums: dict[str, list[int]] = {}
    for _, event in events_in(store, start, end, ("sale",)):
        lines = event.get("lines")
        skus_here: set[str] = set()
        for line in lines if isinstance(lines, list) else []:
            if not isinstance(line, dict) or not isinstance(line.get("sku"), str):
                continue
            row = sums.setdefault(line["sku"], [0] * 5)
            row[0] += _int(line.get("qty_milli"))
            row[1] += _int(line.get("amount"))
            row[2] += _int(line.get("discount"))
            row[3] += _int(line.get("paid"))
            if line["sku"] not in skus_here:  # a receipt with two lines of a sku counts once
                skus_here.add(line["sku"])
                row[4] += 1
    best = sorted(sums.items(), key=lambda item: (-item[1][3], item[0]))[:top]
    names = product_names(store, [sku for sku, _ in best])
    rows: list[tuple[Value, ...]] = [(sku, names.get(sku, sku), *values) for sku, values in best]
    return Report("top_products", f"Top {top} products by money paid", start, end, TOP_COLUMNS, rows)


def product_names(store: Store, skus: list[str]) -> dict[str, str]:
    """The published catalog's names of these SKUs (deleted or unknown ones absent)."""
    if not skus:
        return {}
    marks = ",".join("?" * len(skus))
    out = {}
    for key, body in store._query(f"SELECT key, body FROM feed WHERE kind = 'product' AND key IN ({marks})",
                                  tuple(skus)):
        item = wire.unpack(bytes(body), EVENT_BYTES_MAX)
        if isinstance(item.get("name"), str):
            out[str(key)] = item["name"]
    return out


LIABILITY_COLUMNS = _cols("bucket:text", "points:points", "lots:count")


def _months(start: dt.date, end: dt.date) -> list[str]:
    out, year, month = [], start.year, start.month
    while (year, month) <= (end.year, end.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def liability(store: Store, start: dt.date, end: dt.date, now_ms: int | None = None) -> Report:
    check_range(start, end)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    first, last = "before " + start.isoformat(), "after " + end.isoformat()
    buckets: dict[str, list[int]] = {name: [0, 0] for name in ["expired", first, *_months(start, end), last,
                                                                "never", "debt"]}
    low, high = day_ms(start), day_ms(end) + DAY_MS
    for expires_ms, points, count in store._query(
        # A lot is a card's points of one (expires, from): its stored rows summed (central/lots.py).
        "SELECT expires_ms, CAST(SUM(points) AS BIGINT), COUNT(*) FROM (SELECT number, expires_ms, from_ms, "
        "SUM(points) AS points FROM lots GROUP BY number, expires_ms, from_ms) x GROUP BY expires_ms"
    ):
        expires_ms = int(expires_ms)
        if expires_ms == lots.DEBT_KEY[0]:
            name = "debt"
        elif expires_ms == lots.NEVER_MS:
            name = "never"
        elif expires_ms <= now:
            name = "expired"
        elif expires_ms < low:
            name = first
        elif expires_ms >= high:
            name = last
        else:
            name = ms_day(expires_ms).isoformat()[:7]
        buckets[name][0] += int(points)
        buckets[name][1] += int(count)
    rows: list[tuple[Value, ...]] = [(name, points, count) for name, (points, count) in buckets.items()]
    return Report("liability", "Points liability: outstanding points by when they expire", start, end,
                  LIABILITY_COLUMNS, rows)


# ------------------------------------------------------------------ the registry


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    meaning: str
    run: Callable[..., Report]


REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in (
        ReportSpec("points_daily", "Points per day", "points earned, redeemed, expired per day", points_daily),
        ReportSpec("sales_daily", "Sales per day per store", "receipts, sales and discounts per day and terminal",
                   sales_daily),
        ReportSpec("sales_by_level", "Sales by card level", "sales by the card's level at the sale", sales_by_level),
        ReportSpec("top_products", "Top products", "SKUs by money paid, from sale lines", top_products),
        ReportSpec("liability", "Points liability", "outstanding points by the month they expire", liability),
    )
}


def run(store: Store, name: str, start: dt.date, end: dt.date, top: int = TOP_DEFAULT,
        now_ms: int | None = None) -> Report:
    """The report `name` (a key of REPORTS); ReportError for an unknown name or a bad range."""
    spec = REPORTS.get(name)
    if spec is None:
        raise ReportError(f"no report {name[:40]!r}; reports: {', '.join(REPORTS)}")
    check_range(start, end)
    if name == "top_products":
        return top_products(store, start, end, top)
    if name == "liability":
        return liability(store, start, end, now_ms)
    return spec.run(store, start, end)


def to_csv(report: Report) -> str:
    """The report as CSV (RFC 4180, `\r\n` line ends): the column names, then one line a row;
    money as integer minor units, points as integers, days as YYYY-MM-DD. A text cell starting
    with = + - @ (a SKU or a name from a catalog file) gets a leading ' so a spreadsheet shows it
    rather than running it as a formula."""
    texts = [c.kind == "text" for c in report.columns]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.name for c in report.columns])
    for row in report.rows:
        writer.writerow([_cell(v) if text else v for v, text in zip(row, texts, strict=True)])
    return out.getvalue()


def _cell(value: Value) -> Value:
    return "'" + value if isinstance(value, str) and value[:1] in CSV_FORMULA_STARTS else value
