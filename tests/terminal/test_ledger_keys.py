import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal.ledger import keys
from terminal.ledger.errors import LedgerInputError


def test_u64_keys_sort_numerically():
    values = [0, 1, 255, 256, 2**32, 2**63]
    assert sorted(keys.u64(v) for v in values) == [keys.u64(v) for v in values]
    assert all(keys.read_u64(keys.u64(v)) == v for v in values)


def test_u64_refuses_out_of_range():
    with pytest.raises(LedgerInputError):
        keys.u64(-1)
    with pytest.raises(LedgerInputError):
        keys.u64(2**64)


def test_text_keys_are_fixed_width_and_round_trip():
    for value in ("1", "2000001", "карта-7", "x" * keys.TEXT_CHARS_MAX, "ж" * 32):
        key = keys.text(value)
        assert len(key) == keys.TEXT_KEY_BYTES
        assert keys.read_text(key) == value


@pytest.mark.parametrize("bad", ["", "x" * 65, "ж" * 33, "a\x00b", 7, None])
def test_text_keys_refuse_bad_values(bad):
    with pytest.raises(LedgerInputError, match="card number"):
        keys.text(bad, "card number")


def test_lot_keys_walk_one_card_soonest_expiring_first():
    a, b = keys.text("A"), keys.text("AB")
    lot_keys = [
        keys.lot(a, keys.NEVER_MS, 1),
        keys.lot(a, 2000, 2),
        keys.lot(a, 1000, 3),
        keys.lot(a, keys.DEBT_MS, 0),
        keys.lot(b, 5, 4),
    ]
    ordered = sorted(lot_keys)
    assert [keys.read_lot(k) for k in ordered] == [
        ("A", 0, 0),
        ("A", 1000, 3),
        ("A", 2000, 2),
        ("A", keys.NEVER_MS, 1),
        ("AB", 5, 4),
    ]
    # "A"'s prefix never matches "AB"'s lots: the length byte differs
    assert not keys.lot(b, 5, 4).startswith(a)


@given(st.text(max_size=70) | st.text(alphabet=st.characters(max_codepoint=127), max_size=70))
def test_the_ascii_fast_road_builds_the_keys_the_checked_road_builds(value):
    try:
        expected = keys._text_checked(value, "id")
    except LedgerInputError as exc:
        with pytest.raises(LedgerInputError, match=re.escape(str(exc))):
            keys.text(value, "id")
    else:
        assert keys.text(value, "id") == expected
