"""Customer facts: birthdays, card age, tags (spec §12, example §18.3) on both engines."""

from __future__ import annotations

import pytest

from core import compile_rules
from core.errors import CartError, RuleError
from tests.core.pricing_helpers import card, line, quote, rule, rules


def _discount(make_engine, when, holder, now="2026-12-01T10:00:00+03:00") -> int:
    tree = rules(rule("r", percent=10, when=when))
    return quote(make_engine, tree, [line("a", 10_000)], card=holder, now=now)["discount"]


@pytest.mark.parametrize(("day", "holds"), [("2026-11-29", False), ("2026-11-30", True),
                                            ("2026-12-01", True), ("2026-12-06", True),
                                            ("2026-12-07", False)])
def test_example_18_3_birthday_week(make_engine, day, holds) -> None:
    holder = card(birth_date="--12-03")
    assert _discount(make_engine, {"birthday": [3, 3]}, holder, f"{day}T12:00:00+03:00") == (1_000 if holds else 0)


def test_birthdays_across_the_new_year_and_on_29_february(make_engine) -> None:
    assert _discount(make_engine, {"birthday": [0, 3]}, card(birth_date="1990-12-30"),
                     "2027-01-02T09:00:00+03:00") == 1_000
    assert _discount(make_engine, {"birthday": [3, 0]}, card(birth_date="--01-02"),
                     "2026-12-31T09:00:00+03:00") == 1_000
    leap = card(birth_date="2000-02-29")
    assert _discount(make_engine, {"birthday": [0, 0]}, leap, "2027-02-28T09:00:00+03:00") == 1_000
    assert _discount(make_engine, {"birthday": [0, 0]}, leap, "2028-02-28T09:00:00+03:00") == 0
    assert _discount(make_engine, {"birthday": [0, 0]}, leap, "2028-02-29T09:00:00+03:00") == 1_000


def test_the_local_date_of_now_decides(make_engine) -> None:
    # 2026-12-06T23:30-05:00 is 12-07 in UTC; the local day is 12-06
    assert _discount(make_engine, {"birthday": [0, 3]}, card(birth_date="--12-03"),
                     "2026-12-06T23:30:00-05:00") == 1_000


def test_no_birth_date_or_no_card_does_not_match(make_engine) -> None:
    assert _discount(make_engine, {"birthday": [31, 31]}, card()) == 0
    assert _discount(make_engine, {"birthday": [31, 31]}, None) == 0


def test_card_age(make_engine) -> None:
    when = {"card_age_days": [0, 30]}  # the welcome month
    assert _discount(make_engine, when, card(issued_on="2026-11-01")) == 1_000  # 30 days
    assert _discount(make_engine, when, card(issued_on="2026-10-31")) == 0  # 31 days
    assert _discount(make_engine, when, card(issued_on="2026-12-02")) == 0  # issued tomorrow
    assert _discount(make_engine, when, card()) == 0


def test_tags_and_exclude_tags(make_engine) -> None:
    assert _discount(make_engine, {"tags": ["staff", "b2b"]}, card(tags=["b2b"])) == 1_000
    assert _discount(make_engine, {"tags": ["staff"]}, card(tags=["b2b"])) == 0
    assert _discount(make_engine, {"tags": ["staff"]}, card()) == 0
    assert _discount(make_engine, {"exclude_tags": ["staff"]}, card(tags=["b2b"])) == 1_000
    assert _discount(make_engine, {"exclude_tags": ["staff"]}, card()) == 1_000
    assert _discount(make_engine, {"exclude_tags": ["staff"]}, card(tags=["staff"])) == 0
    assert _discount(make_engine, {"exclude_tags": ["staff"]}, None) == 0  # implies a card


@pytest.mark.parametrize(("fields", "message"), [
    ({"birth_date": "12-03"}, "'birth_date' must be written YYYY-MM-DD or --MM-DD"),
    ({"birth_date": "--02-30"}, "no such day of the year"),
    ({"birth_date": "1990-02-29"}, "no such date"),
    ({"issued_on": "2026-1-1"}, "'issued_on' must be written YYYY-MM-DD"),
    ({"tags": ["t"] * 17}, "at most 16 tags"),
    ({"tags": [""]}, "'tags' must be a non-empty string"),
])
def test_bad_card_facts_are_refused(make_engine, fields, message) -> None:
    with pytest.raises(CartError, match=message):
        quote(make_engine, rules(), [line()], card=card(**fields))


@pytest.mark.parametrize(("when", "problem"), [
    ({"birthday": [3, 32]}, "between 0 and 31"),
    ({"birthday": [3]}, "two values"),
    ({"card_age_days": [30, 0]}, "minimum is above the maximum"),
    ({"tags": []}, "matches nothing"),
    ({"birthday": [1, 1], "card": False}, "contradicts card = false"),
    ({"exclude_tags": ["x"], "card": False}, "contradicts card = false"),
])
def test_bad_conditions_are_refused(when, problem) -> None:
    with pytest.raises(RuleError, match=problem):
        compile_rules(rules(rule("r", percent=5, when=when)), "c.toml")


def test_birthdays_at_the_end_of_the_calendar(make_engine) -> None:
    # the next year's birthday would be in year 10 000: it simply never matches
    assert _discount(make_engine, {"birthday": [3, 3]}, card(birth_date="--12-30"),
                     "9999-12-31T10:00:00+03:00") == 1_000
    assert _discount(make_engine, {"birthday": [3, 3]}, card(birth_date="--01-02"),
                     "9999-12-31T10:00:00+03:00") == 0
