import datetime as dt

import pytest

from terminal.ledger import moments
from terminal.ledger.errors import LedgerInputError


def test_iso_text_and_datetimes_give_the_same_moment():
    text = "2026-11-23T10:00:00+03:00"
    parsed = moments.moment(text, "now")
    assert parsed == moments.moment(dt.datetime.fromisoformat(text), "now")
    assert parsed.ms == 1_795_417_200_000 and parsed.iso == text
    assert moments.moment(text, "now") is parsed  # the second reading comes from the cache


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2026-11-23T10:00:00", "no UTC offset"),
        ("yesterday", "not an ISO-8601 time"),
        ("1969-12-31T23:59:59+00:00", "outside the supported range"),
        ("1999-12-31T23:59:59+00:00", "outside the supported range"),
        ("9999-12-31T23:59:59-01:00", "outside the supported range"),
        (17, "must be an ISO-8601 time"),
    ],
)
def test_bad_times_are_refused_every_time_they_come(value, message):
    for _ in range(2):  # a refusal is not cached as a moment
        with pytest.raises(LedgerInputError, match=message):
            moments.moment(value, "now")


def test_the_cache_of_parsed_texts_stays_bounded():
    for minute in range(moments.PARSED_KEPT_MAX * 2):
        moments.moment(f"2026-11-23T{minute // 60 % 24:02d}:{minute % 60:02d}:00+03:00", "now")
        assert len(moments._parsed) <= moments.PARSED_KEPT_MAX
