"""Integer money arithmetic shared by the rules compiler, the pure engine and the refund code.

All amounts are integers (minor units, basis points, thousandths of a unit). Rounding is explicit:
`div_floor` for points, `div_round_half_up` (ties away from zero) for money shares, and
`split_largest_remainder` to spread an amount over lines so the parts add up exactly.
"""

from collections.abc import Sequence

BP_PER_UNIT = 10_000  # basis points in 100 %
MILLI = 1_000  # thousandths in one piece or kilogram


def div_floor(a: int, b: int) -> int:
    """floor(a / b) for b > 0 — Python's semantics, also for negative a."""
    if b <= 0:
        raise ValueError("divisor must be positive")
    return a // b


def div_round_half_up(a: int, b: int) -> int:
    """a / b rounded to the nearest integer, ties away from zero (b > 0)."""
    if b <= 0:
        raise ValueError("divisor must be positive")
    if a >= 0:
        return (2 * a + b) // (2 * b)
    return -((2 * -a + b) // (2 * b))


def percent_of(base: int, bp: int) -> int:
    """round_half_up(base × bp / 10000): a money share of a percentage held in basis points."""
    return div_round_half_up(base * bp, BP_PER_UNIT)


def price_times_qty(price: int, qty_milli: int) -> int:
    """round_half_up(price × qty): the amount of `qty_milli` thousandths at `price` per unit."""
    return div_round_half_up(price * qty_milli, MILLI)


def split_largest_remainder(amount: int, bases: Sequence[int]) -> list[int]:
    """Spread `amount` (≥ 0) over `bases` in proportion; parts sum to `amount` exactly.

    Each part gets floor(amount × base / Σ bases); the leftover units go one each to the parts
    with the largest remainders, earlier parts first on ties. With Σ bases = 0 every part
    counts as equal, so a non-zero amount is never lost.
    """
    if amount < 0:
        raise ValueError("cannot split a negative amount")
    if not bases:
        if amount:
            raise ValueError("cannot split a non-zero amount over no lines")
        return []
    total = sum(bases)
    if total == 0:
        bases = [1] * len(bases)
        total = len(bases)
    parts = []
    remainders = []
    for i, base in enumerate(bases):
        q, r = divmod(amount * base, total)
        parts.append(q)
        remainders.append((-r, i))
    leftover = amount - sum(parts)
    for _, i in sorted(remainders)[:leftover]:
        parts[i] += 1
    return parts
