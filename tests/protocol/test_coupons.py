"""The coupon code format both sides make and read (protocol/coupons.py) and the feed entry check."""

from __future__ import annotations

import pytest

from protocol import coupons as codes


def test_terminal_codes_carry_terminal_and_sequence_and_a_check_character() -> None:
    made = {codes.terminal_code("T01", n) for n in range(1, 200)}
    assert len(made) == 199 and all(codes.is_coupon_code(c) for c in made)
    code = codes.terminal_code("t_9", 42)
    assert code.startswith("CP-T_9-42-") and len(code) == len("CP-T_9-42-") + 5
    assert codes.is_coupon_code(code.lower())  # typed in lower case: the same code
    longest = codes.terminal_code("ABCDEFGH", codes.SEQ_MAX)
    assert len(longest) <= codes.CODE_CHARS_MAX
    with pytest.raises(codes.CouponCodeError):
        codes.terminal_code("T01", codes.SEQ_MAX + 1)


def test_one_changed_or_swapped_character_is_caught() -> None:
    code = codes.terminal_code("T01", 7)
    body, check = code[:-1], code[-1]
    for i, ch in enumerate(body):
        if not ch.isalnum():
            continue
        for other in "0A7Z":
            if other != ch:
                assert not codes.is_coupon_code(body[:i] + other + body[i + 1:] + check)
    swapped = body[:-3] + body[-2] + body[-3] + body[-1] + check
    assert swapped == code or not codes.is_coupon_code(swapped)


def test_central_codes_have_another_shape() -> None:
    code = codes.central_code()
    assert code.startswith("CP-C-") and code.count("-") == 2 and codes.is_coupon_code(code)
    assert codes.terminal_code("C", 1).count("-") == 3  # a terminal named C cannot collide


@pytest.mark.parametrize(("raw", "message"), [
    ("ab", "3..32"), ("x" * 33, "3..32"), ("SPR 1", "3..32"), (17, "3..32"),
    ("CP-T01-1-ABCDE", "check character"),
])
def test_presented_text_is_refused_with_the_reason(raw: object, message: str) -> None:
    with pytest.raises(codes.CouponCodeError, match=message):
        codes.checked_text(raw)


@pytest.mark.parametrize(("item", "message"), [
    ({"code": "SPR-1"}, "an object with"),
    ({"code": "SPR-1", "series": "", "state": "unspent"}, "series"),
    ({"code": "SPR-1", "series": "s", "valid_to": "2026-13-01"}, "not a date"),
    ({"code": "SPR-1", "series": "s", "valid_to": 20260101}, "YYYY-MM-DD"),
    ({"code": "SPR-1", "series": "s", "state": "lost"}, "state"),
    ({"code": "SPR-1", "series": "s", "colour": "red"}, "an object with"),
])
def test_feed_entries_are_checked_field_by_field(item: dict[str, object], message: str) -> None:
    with pytest.raises(codes.CouponCodeError, match=message):
        codes.check_item(item)


def test_a_good_feed_entry_is_normalised() -> None:
    assert codes.check_item({"code": "spr-1", "series": "spring"}) == {
        "code": "SPR-1", "series": "spring", "valid_to": None, "state": "unspent"}
