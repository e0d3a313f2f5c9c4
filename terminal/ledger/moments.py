"""Times handed to the ledger: aware datetimes or ISO-8601 strings with an offset.

The ledger keeps the caller's ISO text (so the card dict round-trips exactly) and the
milliseconds since the Unix epoch (for ordering and comparisons). There is no clock in here.
Times outside the protocol's range (2000-01-01..9999-12-31 UTC, `protocol.schemas`) are refused:
the central server would refuse the events that carry them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

from protocol.schemas import TIME_MAX_ISO, TIME_MIN_ISO, TIME_MS_MAX, TIME_MS_MIN
from terminal.ledger.errors import LedgerInputError

ISO_CHARS_MAX = 64
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)  # built once: every write converts up to three times


class Moment(NamedTuple):
    iso: str
    ms: int


# Parsed ISO strings: a sale reads up to three (now, its accrual lot's dates), and consecutive
# sales mostly repeat them. Bounded: emptied whole when full (only valid texts are kept).
_parsed: dict[str, Moment] = {}
PARSED_KEPT_MAX = 512


def moment(value: Any, what: str) -> Moment:
    if type(value) is str:
        found = _parsed.get(value)
        if found is not None:
            return found
        if len(_parsed) >= PARSED_KEPT_MAX:
            _parsed.clear()
        _parsed[value] = parsed = _moment(value, what)
        return parsed
    return _moment(value, what)


def _moment(value: Any, what: str) -> Moment:
    if isinstance(value, str):
        if len(value) > ISO_CHARS_MAX:
            raise LedgerInputError(f"{what}: not an ISO-8601 time")
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise LedgerInputError(f"{what}: not an ISO-8601 time: {value!r}") from None
    elif isinstance(value, dt.datetime):
        parsed = value
    else:
        raise LedgerInputError(f"{what}: must be an ISO-8601 time with offset, got {value!r}")
    if parsed.utcoffset() is None:
        raise LedgerInputError(f"{what}: the time {parsed.isoformat()} has no UTC offset")
    ms: int = (parsed - _EPOCH) // _MS
    if not TIME_MS_MIN <= ms <= TIME_MS_MAX:  # the protocol's range: central refuses the same
        raise LedgerInputError(
            f"{what}: {parsed.isoformat()} is outside the supported range {TIME_MIN_ISO}..{TIME_MAX_ISO}"
        )
    return Moment(parsed.isoformat(), ms)


def optional(value: Any, what: str) -> Moment | None:
    return None if value is None else moment(value, what)


def iso_from_ms(ms: int) -> str:
    return (_EPOCH + dt.timedelta(milliseconds=ms)).isoformat()
