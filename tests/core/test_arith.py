"""Integer money helpers: floor and half-up division (negative amounts too), largest-remainder
split, and the compiled module's copies of the division helpers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import arith

try:
    from core import _cengine
except ImportError:  # reported by test_engine_loaded.py
    _cengine = None

needs_compiled = pytest.mark.skipif(_cengine is None, reason="compiled engine not built")
INT64 = st.integers(min_value=-(2**62), max_value=2**62)
DIVISOR = st.integers(min_value=1, max_value=2**40)


@pytest.mark.parametrize(("a", "b", "expected"), [
    (7, 2, 3), (-7, 2, -4),  # floor(-3.5) = -4: toward −∞, not toward zero
    (6, 3, 2), (-6, 3, -2), (0, 5, 0), (-1, 100, -1), (99, 100, 0),
])
def test_div_floor(a: int, b: int, expected: int) -> None:
    assert arith.div_floor(a, b) == expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    (5, 2, 3), (-5, 2, -3),  # 2.5 → 3, -2.5 → -3: ties away from zero
    (7, 2, 4), (-7, 2, -4),  # 3.5 → 4, -3.5 → -4
    (4, 3, 1), (-4, 3, -1),  # 1.33 → 1
    (5, 3, 2), (-5, 3, -2),  # 1.67 → 2
    (149, 100, 1), (150, 100, 2), (-150, 100, -2), (-149, 100, -1), (0, 7, 0),
])
def test_div_round_half_up(a: int, b: int, expected: int) -> None:
    assert arith.div_round_half_up(a, b) == expected


@pytest.mark.parametrize("helper", [arith.div_floor, arith.div_round_half_up])
@pytest.mark.parametrize("divisor", [0, -3])
def test_division_refuses_non_positive_divisor(helper, divisor: int) -> None:
    with pytest.raises(ValueError, match="divisor must be positive"):
        helper(10, divisor)


def test_percent_of_and_price_times_qty_round_half_up() -> None:
    assert arith.percent_of(100_000, 1_700) == 17_000  # 17 % of 1000.00
    assert arith.percent_of(150, 3_333) == 50  # 150 × 33.33 % = 49.995 → 50
    assert arith.percent_of(149, 3_333) == 50  # 49.6617 → 50
    assert arith.percent_of(15, 1_000) == 2  # 1.5 → 2
    assert arith.price_times_qty(33_333, 350) == 11_667  # 11 666.55 → 11 667
    assert arith.price_times_qty(10, 250) == 3  # 2.5 → 3


@needs_compiled
@pytest.mark.parametrize(("a", "b"), [(5, 2), (-5, 2), (-7, 2), (7, 2), (-1, 3), (0, 9)])
def test_compiled_helpers_on_ties_and_negatives(a: int, b: int) -> None:
    assert _cengine._div_floor(a, b) == arith.div_floor(a, b)
    assert _cengine._div_round_half_up(a, b) == arith.div_round_half_up(a, b)


@needs_compiled
@pytest.mark.parametrize("helper", ["_div_floor", "_div_round_half_up"])
def test_compiled_helpers_refuse_non_positive_divisor(helper: str) -> None:
    with pytest.raises(ValueError, match="divisor must be positive"):
        getattr(_cengine, helper)(10, 0)


@needs_compiled
@settings(max_examples=200, deadline=None)
@given(a=INT64, b=DIVISOR)
def test_compiled_helpers_equal_the_python_ones(a: int, b: int) -> None:
    assert _cengine._div_floor(a, b) == arith.div_floor(a, b) == a // b
    assert _cengine._div_round_half_up(a, b) == arith.div_round_half_up(a, b)


@settings(max_examples=200, deadline=None)
@given(a=INT64, b=DIVISOR)
def test_half_up_is_symmetric_and_within_half(a: int, b: int) -> None:
    rounded = arith.div_round_half_up(a, b)
    assert arith.div_round_half_up(-a, b) == -rounded
    assert abs(2 * (a - rounded * b)) <= b  # |a/b − rounded| ≤ ½


@pytest.mark.parametrize(("amount", "bases", "expected"), [
    (100, [1, 1, 1], [34, 33, 33]),  # 33 each, the 1 left over → the earlier line (tie)
    (2, [1, 1, 1], [1, 1, 0]),
    (10, [3, 7], [3, 7]),
    (10, [1, 2], [3, 7]),  # 3.33 / 6.67: remainders 1 and 2 → the second gets the unit
    (5, [0, 4, 0], [0, 5, 0]),  # a zero base gets nothing while others have a base
    (3, [0, 0], [2, 1]),  # all zero: equal parts, leftover to the earlier line
    (0, [5, 5], [0, 0]),
    (0, [], []),
])
def test_split_largest_remainder(amount: int, bases: list[int], expected: list[int]) -> None:
    assert arith.split_largest_remainder(amount, bases) == expected


def test_split_refuses_negative_amount_and_amount_over_no_lines() -> None:
    with pytest.raises(ValueError, match="negative"):
        arith.split_largest_remainder(-1, [1])
    with pytest.raises(ValueError, match="no lines"):
        arith.split_largest_remainder(1, [])


@settings(max_examples=200, deadline=None)
@given(amount=st.integers(0, 10**12),
       bases=st.lists(st.integers(0, 10**9), min_size=1, max_size=20))
def test_split_parts_add_up_and_stay_within_one_of_the_exact_share(amount: int,
                                                                   bases: list[int]) -> None:
    parts = arith.split_largest_remainder(amount, bases)
    assert sum(parts) == amount
    total = sum(bases) or len(bases)
    weights = bases if sum(bases) else [1] * len(bases)
    for part, base in zip(parts, weights, strict=True):
        assert amount * base // total <= part <= amount * base // total + 1
