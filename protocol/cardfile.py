"""The chain's card file: one CSV format read by `posterm-central publish cards` and by
`posterm ledger import-cards`, so both accept and refuse exactly the same rows (docs/ledger.md
"The card file").

    number,type,holder,cumulative,balance,expires_at,referrers,blocked,birth_date,issued_on,tags

Every column is required, in any order (the header names them); empty cells are "none".

- cumulative: lifetime spend in minor units, 0..`CUMULATIVE_MAX`;
- balance: opening points, 0..`BALANCE_MAX` (empty = 0); expires_at: when they expire
  (ISO-8601 with an offset, after `now`), empty = never;
- referrers: the referral chain, level 1 first, card numbers separated by `|` (≤ `REFERRERS_MAX`,
  none twice, not the card itself); blocked: 1/0, true/false, yes/no, empty = no;
- birth_date `YYYY-MM-DD` or `--MM-DD` (year unknown), issued_on `YYYY-MM-DD`, tags: ids separated
  by `|` (≤ `TAGS_MAX`) — the customer facts of spec §12.

Pure: bytes in, rows and problems out; no I/O, no clock (`now_ms` is the caller's). A problem is
(row, field, text) with rows numbered as in a spreadsheet (the header is row 1). Limits are the
pricing core's, so nothing a file gives can be refused later by a quote or a terminal's feed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass

from protocol.wire import DELTA_POINTS_MAX, card_number_ok

COLUMNS = (
    "number",
    "type",
    "holder",
    "cumulative",
    "balance",
    "expires_at",
    "referrers",
    "blocked",
    "birth_date",
    "issued_on",
    "tags",
)
FILE_BYTES_MAX = 64 * 1024 * 1024
ROWS_MAX = 1_000_000
FIELD_CHARS_MAX = 256
# The pricing core's limits (core/inputs.py; a test keeps them equal — protocol imports no core):
REFERRERS_MAX = 8
NUMBER_BYTES_MAX = 64
CUMULATIVE_MAX = 10**15
TYPE_CHARS_MAX = 64
HOLDER_CHARS_MAX = 128
BALANCE_MAX = DELTA_POINTS_MAX
TAGS_MAX = 16
TAG_CHARS_MAX = 64
ISO_CHARS_MAX = 64
YEAR_MIN, YEAR_MAX = 1900, 9999
_TAG = re.compile(r"[A-Za-z0-9_.:-]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_YEARLESS = re.compile(r"--([0-9]{2})-([0-9]{2})")
_FLAGS = {"": False, "0": False, "1": True, "false": False, "true": True, "no": False, "yes": True}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

Problem = tuple[int, str, str]


class CardFileError(ValueError):
    """The file as a whole is unusable (not UTF-8, wrong header, too big): nothing is read."""


@dataclass(frozen=True)
class CardRow:
    number: str
    type: str
    holder: str
    cumulative: int
    balance: int
    expires_at: str | None
    expires_ms: int | None
    referrers: tuple[str, ...]
    blocked: bool
    birth_date: str | None
    issued_on: str | None
    tags: tuple[str, ...]

    def facts(self) -> dict[str, object]:
        """The §12 customer facts that are set (a card record's `birth_date`, `issued_on`, `tags`)."""
        out: dict[str, object] = {}
        if self.birth_date is not None:
            out["birth_date"] = self.birth_date
        if self.issued_on is not None:
            out["issued_on"] = self.issued_on
        if self.tags:
            out["tags"] = list(self.tags)
        return out


class _Bad(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(problem)
        self.field = field


def read(data: bytes, now_ms: int, where: str = "card file") -> tuple[list[tuple[int, CardRow]], list[Problem]]:
    """The good rows (row number, row) and the problems of the bad ones. Raises CardFileError
    when the file itself is unusable."""
    if len(data) > FILE_BYTES_MAX:
        raise CardFileError(f"{where}: larger than {FILE_BYTES_MAX} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CardFileError(f"{where}: not UTF-8 (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        order = _header(header, where)
        good: list[tuple[int, CardRow]] = []
        problems: list[Problem] = []
        seen: set[str] = set()
        for number, cells in enumerate(reader, start=2):
            if number - 1 > ROWS_MAX:
                raise CardFileError(f"{where}: more than {ROWS_MAX} rows")
            if not cells or all(not c.strip() for c in cells):
                continue
            try:
                row = _row(cells, order, now_ms)
                if row.number in seen:
                    raise _Bad("number", f"card {row.number} appears twice in the file")
            except _Bad as exc:
                problems.append((number, exc.field, str(exc)))
                continue
            seen.add(row.number)
            good.append((number, row))
    except csv.Error as exc:
        raise CardFileError(f"{where}: not CSV: {exc}") from None
    return good, problems


def refusal(where: str, problems: list[Problem]) -> str:
    """The one-line refusal both sides print for a file with bad rows."""
    row, field, problem = problems[0]
    return (
        f"{where}: {len(problems)} bad row(s), nothing imported (use --force to import the good "
        f"rows); first: row {row} field {field!r}: {problem}"
    )


def _header(header: list[str] | None, where: str) -> tuple[str, ...]:
    names = tuple(h.strip().lower() for h in header or [])
    missing = [c for c in COLUMNS if c not in names]
    unknown = [n for n in names if n not in COLUMNS]
    if missing or unknown or len(set(names)) != len(names):
        wrong = "; ".join(
            part for part in (
                f"missing {', '.join(missing)}" if missing else "",
                f"unknown {', '.join(n[:40] for n in unknown[:5])}" if unknown else "",
                "a column twice" if len(set(names)) != len(names) else "",
            ) if part
        )
        raise CardFileError(f"{where}: row 1 must be the header {','.join(COLUMNS)} (any order): {wrong}")
    return names


def _row(cells: list[str], order: tuple[str, ...], now_ms: int) -> CardRow:
    if len(cells) != len(order):
        raise _Bad("*", f"expected {len(order)} fields, got {len(cells)}")
    row = dict(zip(order, (c.strip() for c in cells), strict=True))
    for name, value in row.items():
        if len(value) > FIELD_CHARS_MAX:
            raise _Bad(name, f"longer than {FIELD_CHARS_MAX} characters")
    number = _number(row["number"], "number")
    referrers = tuple(_number(r.strip(), "referrers") for r in row["referrers"].split("|") if r.strip())
    if len(referrers) > REFERRERS_MAX:
        raise _Bad("referrers", f"more than {REFERRERS_MAX} referrers")
    if len(set(referrers)) != len(referrers) or number in referrers:
        raise _Bad("referrers", "a card appears twice in the chain (or refers to itself)")
    balance = _whole(row["balance"], "balance", BALANCE_MAX)
    expires_at, expires_ms = _expiry(row["expires_at"], now_ms)
    return CardRow(
        number=number,
        type=_text(row["type"], "type", TYPE_CHARS_MAX),
        holder=_text(row["holder"], "holder", HOLDER_CHARS_MAX),
        cumulative=_whole(row["cumulative"], "cumulative", CUMULATIVE_MAX),
        balance=balance,
        expires_at=expires_at,
        expires_ms=expires_ms,
        referrers=referrers,
        blocked=_flag(row["blocked"]),
        birth_date=_birth_date(row["birth_date"]),
        issued_on=_date(row["issued_on"], "issued_on") if row["issued_on"] else None,
        tags=_tags(row["tags"]),
    )


def fact_ok(name: str, value: str) -> bool:
    """A §12 fact as a feed or a ledger hands it (`tags` joined by `|`) passes the file's check."""
    check = {"birth_date": _birth_date, "issued_on": lambda v: _date(v, "issued_on"), "tags": _tags}[name]
    try:
        check(value)
    except _Bad:
        return False
    return True


def _flag(value: str) -> bool:
    if value.lower() not in _FLAGS:
        raise _Bad("blocked", f"expected 1/0, true/false, yes/no or empty, got {value[:80]!r}")
    return _FLAGS[value.lower()]


def _number(value: str, field: str) -> str:
    if not card_number_ok(value) or len(value.encode()) > NUMBER_BYTES_MAX:
        raise _Bad(field, f"card number {value[:80]!r} is not 1..{NUMBER_BYTES_MAX} printable characters")
    return value


def _text(value: str, field: str, chars_max: int) -> str:
    if len(value) > chars_max or not value.isprintable():
        raise _Bad(field, f"must be at most {chars_max} printable characters")
    return value


def _whole(value: str, field: str, high: int) -> int:
    if value == "":
        return 0
    if not value.isdigit() or not value.isascii():
        raise _Bad(field, f"expected a whole number 0..{high}, got {value[:80]!r}")
    if int(value) > high:
        raise _Bad(field, f"{value[:80]} is above the limit {high}")
    return int(value)


def _expiry(value: str, now_ms: int) -> tuple[str | None, int | None]:
    if value == "":
        return None, None
    try:
        moment = dt.datetime.fromisoformat(value) if len(value) <= ISO_CHARS_MAX else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Bad("expires_at", f"expected an ISO-8601 time with an offset, got {value[:80]!r}")
    ms = (moment - _EPOCH) // dt.timedelta(milliseconds=1)
    if ms <= now_ms:
        raise _Bad("expires_at", f"{value} is already past: these points would be expired at once")
    return value, ms


def _date(value: str, field: str) -> str:
    try:
        day = dt.date.fromisoformat(value) if _DATE.fullmatch(value) else None
    except ValueError:
        day = None
    if day is None or not YEAR_MIN <= day.year <= YEAR_MAX:
        raise _Bad(field, f"expected a date YYYY-MM-DD ({YEAR_MIN}..{YEAR_MAX}), got {value[:80]!r}")
    return value


def _birth_date(value: str) -> str | None:
    if value == "":
        return None
    yearless = _YEARLESS.fullmatch(value)
    if yearless is None:
        return _date(value, "birth_date")
    try:
        dt.date(2000, int(yearless[1]), int(yearless[2]))  # a leap year: --02-29 is a birthday
    except ValueError:
        raise _Bad("birth_date", f"{value!r} is not a day of the year (--MM-DD)") from None
    return value


def _tags(value: str) -> tuple[str, ...]:
    tags = tuple(t.strip() for t in value.split("|") if t.strip())
    if len(tags) > TAGS_MAX:
        raise _Bad("tags", f"more than {TAGS_MAX} tags")
    for tag in tags:
        if len(tag) > TAG_CHARS_MAX or not _TAG.fullmatch(tag):
            raise _Bad("tags", f"tag {tag[:80]!r} is not 1..{TAG_CHARS_MAX} letters, digits or _.:-")
    if len(set(tags)) != len(tags):
        raise _Bad("tags", "a tag appears twice")
    return tags
