"""Returns (spec §9): money back, points restored and clawed back, cumulative decrease.

A return names quote lines and quantities and lists the earlier refunds of the same receipt.
Each line gives back round_half_up(share × its paid amount, its redeemed money, its value); the
return that empties a line gives that line's exact remainder instead, and the return that empties
the receipt gives the exact remainder of the receipt's points, so all returns of a receipt add up
to the sale. Shares never give back more than what is left (a series of rounded-up partial
returns is clamped).

Points restored follow the redeemed money given back: round_half_up(redeemed points × redeemed
money back / redeemed money). Points clawed back follow the money given back on lines that could
earn points (a quote line's `accrual_base`; a `no_bonus` line claws back nothing):
round_half_up(accrued points × accrual base back / Σ accrual base); when that sum is 0 (paid
entirely with points) the accrued points are clawed back with the return that empties the receipt.
A quote line without `accrual_base` counts its whole paid amount.

VAT (§17): a line gives back the VAT in the money it returns at the line's rate,
round_half_up(money × rate / (100 + rate)), and its last return the exact remainder of the line's
VAT, so a full return gives back exactly the VAT of the sale. Quotes and refunds made before VAT
(no `vat_amount`) count as outside VAT.

Limits: ≤ 1 000 lines in a return, ≤ 1 000 earlier refunds.
"""

from __future__ import annotations

from typing import Any

from core.arith import div_round_half_up, split_largest_remainder
from core.errors import CartError, RefundError
from core.inputs import qty_to_milli
from core.vat import VAT_NONE, vat_in, vat_summary

RETURN_LINES_MAX = 1_000
PREVIOUS_MAX = 1_000
_LINE_KEYS = ("qty_milli", "amount", "discount", "redeem_amount", "paid")
_RETURNED_KEYS = ("qty_milli", "money", "redeem_amount", "accrual_base", "cumulative_decrease",
                  "vat_amount")
_DEFAULT_ZERO = frozenset({"vat_amount"})  # refunds and quotes made before VAT (v1) carry none


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise RefundError(f"{where}: must be a whole number ≥ 0, got {value!r}")
    return value


def _quote_lines(quote: Any) -> list[dict[str, int]]:
    if not isinstance(quote, dict) or not isinstance(quote.get("lines"), list):
        raise RefundError("quote: must be a quote object with 'lines'")
    lines = []
    for i, line in enumerate(quote["lines"]):
        if not isinstance(line, dict):
            raise RefundError(f"quote line {i}: must be an object")
        lines.append({k: _int(line.get(k), f"quote line {i} field {k!r}") for k in _LINE_KEYS})
        lines[-1]["accrual_base"] = _int(line.get("accrual_base", lines[-1]["paid"]),
                                         f"quote line {i} field 'accrual_base'")
        lines[-1]["vat_amount"] = _int(line.get("vat_amount", 0), f"quote line {i} field 'vat_amount'")
        rate = line.get("vat_rate")
        lines[-1]["vat_rate"] = VAT_NONE if rate is None else _int(rate, f"quote line {i} field 'vat_rate'")
        if lines[-1]["qty_milli"] == 0:
            raise RefundError(f"quote line {i}: quantity 0 cannot be returned")
    return lines


def _receipt_points(quote: dict[str, Any]) -> dict[str, int]:
    try:
        return {
            "redeemed": _int(quote["redeem"]["points"], "quote redeem.points"),
            "redeemed_money": _int(quote["redeem"]["amount"], "quote redeem.amount"),
            "accrued": _int(quote["accrual"]["points"], "quote accrual.points"),
        }
    except (KeyError, TypeError):
        raise RefundError("quote: needs redeem.points, redeem.amount and accrual.points") from None


def _requested(ret: Any, line_count: int) -> list[tuple[int, int]]:
    if not isinstance(ret, dict) or not ret.keys() <= {"lines", "previous"}:
        raise RefundError("return: must be an object with 'lines' (and optionally 'previous')")
    raw = ret.get("lines")
    if not isinstance(raw, list) or not 0 < len(raw) <= RETURN_LINES_MAX:
        raise RefundError(f"return: 'lines' must list 1 to {RETURN_LINES_MAX} lines")
    seen: set[int] = set()
    out = []
    for i, item in enumerate(raw):
        where = f"return line {i}"
        if not isinstance(item, dict) or "line" not in item:
            raise RefundError(f"{where}: must be an object with 'line' and 'qty'")
        if not item.keys() <= {"line", "qty", "qty_milli"} or ("qty" in item) == ("qty_milli" in item):
            raise RefundError(f"{where}: give 'line' and one of 'qty' or 'qty_milli'")
        index = _int(item["line"], f"{where} field 'line'")
        if index >= line_count:
            raise RefundError(f"{where}: the receipt has no line {index}")
        if index in seen:
            raise RefundError(f"{where}: line {index} is named twice")
        seen.add(index)
        if "qty_milli" in item:
            qty = _int(item["qty_milli"], f"{where} field 'qty_milli'")
            if qty == 0:
                raise RefundError(f"{where}: field 'qty_milli' must be above 0")
        else:
            try:
                qty = qty_to_milli(item["qty"], where)
            except CartError as exc:
                raise RefundError(str(exc)) from None
        out.append((index, qty))
    return out


def _already_returned(previous: Any, line_count: int) -> tuple[list[dict[str, int]], dict[str, int]]:
    """Per line and per receipt, what earlier refunds of this receipt gave back."""
    if not isinstance(previous, list) or len(previous) > PREVIOUS_MAX:
        raise RefundError(f"return: 'previous' must be a list of at most {PREVIOUS_MAX} refunds")
    per_line = [dict.fromkeys(_RETURNED_KEYS, 0) for _ in range(line_count)]
    totals = {"points_restored": 0, "points_clawed": 0}
    for p, refund in enumerate(previous):
        where = f"previous refund {p}"
        if not isinstance(refund, dict) or not isinstance(refund.get("lines"), list):
            raise RefundError(f"{where}: must be a refund object with 'lines'")
        for key in totals:
            totals[key] += _int(refund.get(key), f"{where} field {key!r}")
        for line in refund["lines"]:
            if not isinstance(line, dict):
                raise RefundError(f"{where}: lines must be objects")
            index = _int(line.get("line"), f"{where} field 'line'")
            if index >= line_count:
                raise RefundError(f"{where}: the receipt has no line {index}")
            for key in per_line[index]:
                value = line.get(key, 0) if key in _DEFAULT_ZERO else line.get(key)
                per_line[index][key] += _int(value, f"{where} line {index} field {key!r}")
    return per_line, totals


def _share(whole: int, part: int, of: int, left: int, last: bool) -> int:
    """round_half_up(whole × part / of), or exactly what is left when this is the last part."""
    if last:
        return left
    if of == 0:
        return 0
    return min(left, div_round_half_up(whole * part, of))


def compute_refund(quote: Any, ret: Any) -> dict[str, Any]:
    lines = _quote_lines(quote)
    receipt = _receipt_points(quote)
    asked = _requested(ret, len(lines))
    before, before_totals = _already_returned(ret.get("previous", []), len(lines))

    for i, (line, done) in enumerate(zip(lines, before, strict=True)):
        value = line["amount"] - line["discount"]
        if (done["money"] > line["paid"] or done["redeem_amount"] > line["redeem_amount"]
                or done["accrual_base"] > line["accrual_base"]
                or done["cumulative_decrease"] > value or done["qty_milli"] > line["qty_milli"]
                or done["vat_amount"] > line["vat_amount"]):
            raise RefundError(f"return: earlier refunds gave back more than line {i} holds")
    if (before_totals["points_restored"] > receipt["redeemed"]
            or before_totals["points_clawed"] > receipt["accrued"]):
        raise RefundError("return: earlier refunds moved more points than the receipt holds")

    out_lines: list[dict[str, Any]] = []
    for index, qty in asked:
        line, done = lines[index], before[index]
        if done["qty_milli"] + qty > line["qty_milli"]:
            left = line["qty_milli"] - done["qty_milli"]
            raise RefundError(f"return: line {index} has {left / 1000:g} left to return, asked {qty / 1000:g}")
        last = done["qty_milli"] + qty == line["qty_milli"]
        value = line["amount"] - line["discount"]
        money = _share(line["paid"], qty, line["qty_milli"], line["paid"] - done["money"], last)
        vat_left = line["vat_amount"] - done["vat_amount"]
        out_lines.append({
            "line": index,
            "qty_milli": qty,
            "money": money,
            # the VAT in the money given back; the line's last return takes the exact remainder
            "vat_rate": None if line["vat_rate"] == VAT_NONE else line["vat_rate"],
            "vat_amount": vat_left if last else min(vat_left, vat_in(money, line["vat_rate"])),
            "redeem_amount": _share(line["redeem_amount"], qty, line["qty_milli"],
                                    line["redeem_amount"] - done["redeem_amount"], last),
            "accrual_base": _share(line["accrual_base"], qty, line["qty_milli"],
                                   line["accrual_base"] - done["accrual_base"], last),
            "cumulative_decrease": _share(value, qty, line["qty_milli"],
                                          value - done["cumulative_decrease"], last),
        })

    returned_qty = {index: qty for index, qty in asked}
    receipt_done = all(
        before[i]["qty_milli"] + returned_qty.get(i, 0) == line["qty_milli"]
        for i, line in enumerate(lines)
    )
    money = sum(item["money"] for item in out_lines)
    redeem_money = sum(item["redeem_amount"] for item in out_lines)
    restored = _share(receipt["redeemed"], redeem_money, receipt["redeemed_money"],
                      receipt["redeemed"] - before_totals["points_restored"], receipt_done)
    base_back = sum(item["accrual_base"] for item in out_lines)
    clawed = _share(receipt["accrued"], base_back, sum(line["accrual_base"] for line in lines),
                    receipt["accrued"] - before_totals["points_clawed"], receipt_done)
    restored_parts = split_largest_remainder(restored, [i["redeem_amount"] for i in out_lines])
    clawed_parts = split_largest_remainder(clawed, [i["accrual_base"] for i in out_lines])
    for item, r, c in zip(out_lines, restored_parts, clawed_parts, strict=True):
        item["points_restored"], item["points_clawed"] = r, c
    return {
        "lines": out_lines,
        "money": money,
        "redeem_amount": redeem_money,
        "points_restored": restored,
        "points_clawed": clawed,
        "cumulative_decrease": sum(item["cumulative_decrease"] for item in out_lines),
        "vat_amount": sum(item["vat_amount"] for item in out_lines),
        "vat": vat_summary(
            ((VAT_NONE if i["vat_rate"] is None else i["vat_rate"], i["money"], i["vat_amount"])
             for i in out_lines), base="money"),
    }
