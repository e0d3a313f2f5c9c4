"""VAT inside prices (spec §17): the VAT part of a paid amount, per line and per rate.

Prices include VAT, so the VAT in `paid` minor units at rate r is round_half_up(paid × r / (100 + r)).
Rates are held in basis points (2000 = 20 %); VAT_NONE marks a line outside VAT. Both engines build
the per-rate summary with `vat_summary`, so the quote's `vat` list is the same by construction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from core.arith import BP_PER_UNIT, div_round_half_up

VAT_NONE = -1


def vat_in(paid: int, rate_bp: int) -> int:
    """The VAT contained in `paid` (a VAT-inclusive amount) at `rate_bp`; 0 outside VAT."""
    if rate_bp < 0:
        return 0
    return div_round_half_up(paid * rate_bp, BP_PER_UNIT + rate_bp)


def vat_summary(items: Iterable[tuple[int, int, int]], base: str = "paid") -> list[dict[str, Any]]:
    """[(rate_bp, paid, vat_amount)] of lines → one entry per rate, rates ascending, the paid sum
    under the key `base` ("money" in a refund); lines outside VAT are left out.
    A rate's amount is Σ of its lines' VAT (not the VAT of the summed paid), so lines add up."""
    by_rate: dict[int, list[int]] = {}
    for rate, paid, amount in items:
        if rate < 0:
            continue
        entry = by_rate.setdefault(rate, [0, 0])
        entry[0] += paid
        entry[1] += amount
    return [{"rate": rate, base: by_rate[rate][0], "amount": by_rate[rate][1]}
            for rate in sorted(by_rate)]
