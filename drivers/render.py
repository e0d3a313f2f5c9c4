"""Receipt layout as data: a `Receipt` becomes a list of `Op`s, which one executor plays on a
python-escpos printer and another turns into the text preview — so both always agree.

Limits: `columns_min`..`columns_max` characters per line.
"""

from __future__ import annotations

import contextlib
import io
import textwrap
from typing import Any, NamedTuple

from escpos.escpos import Escpos

from drivers.receipt import Receipt, ShiftReport, format_minor, format_qty, mask_card
from drivers.receipt_text import tr, tr_method

columns_min = 24
columns_max = 64
qr_size = 6


class Op(NamedTuple):
    """One printer action: style (kwargs for `Escpos.set`), line, qr, barcode or cut."""

    kind: str
    arg: Any = None


def _pair(left: str, right: str, columns: int) -> str:
    """Left text and right-aligned value on one line; the left side is cut, never the value."""
    room = columns - len(right) - 1
    if len(left) > room:
        left = left[: max(room - 1, 0)] + "…" if room > 1 else ""
    return f"{left:<{room}} {right}"


def receipt_ops(receipt: Receipt, columns: int, qr: bool = True) -> list[Op]:
    """The receipt laid out for a printer `columns` characters wide."""
    rule = Op("line", "-" * columns)
    ops = [Op("drawer")] if receipt.open_drawer else []
    ops += [*_header(receipt, columns), rule]
    for line in receipt.lines:
        ops += [Op("line", ln) for ln in textwrap.wrap(line.name, columns)[:2] or [""]]
        qty = f"  {format_qty(line.qty_milli)} x {format_minor(line.price)}"
        ops.append(Op("line", _pair(qty, format_minor(line.amount), columns)))
        if line.discount:
            ops.append(Op("line", _pair(tr(receipt.language, "  discount"), format_minor(-line.discount), columns)))
    ops += [rule, *_totals(receipt, columns), *_vat(receipt, columns), *_points(receipt, columns)]
    ops += _messages(receipt, columns)
    ops += _coupons(receipt, columns)
    ops += [Op("style", {"align": "center"})]
    ops.append(Op("qr" if qr else "barcode", receipt.receipt_id))
    ops += [Op("line", receipt.receipt_id), Op("style", {"align": "left"}), Op("cut")]
    return ops


def _header(receipt: Receipt, columns: int) -> list[Op]:
    """The store, then the seller as the tax office knows it (legal name, address, tax id), then
    this document: terminal and receipt numbers, shift and who took the money, time; a return,
    test or reprint (COPY) says so in bold before any line."""
    lang = receipt.language
    ops = [Op("style", {"align": "center", "bold": True, "double_height": True})]
    ops += [Op("line", ln) for ln in textwrap.wrap(receipt.store_name, columns)[:2]]
    ops.append(Op("style", {"align": "center", "bold": False, "normal_textsize": True}))
    ops += [Op("line", ln) for ln in textwrap.wrap(receipt.store_legal_name, columns)[:2]]
    ops += [Op("line", ln) for ln in textwrap.wrap(receipt.store_address, columns)[:3]]
    if receipt.store_tax_id:
        ops.append(Op("line", tr(lang, "Tax ID {tax_id}", tax_id=receipt.store_tax_id)))
    ident = tr(lang, "Terminal {terminal}  ", terminal=receipt.terminal_id) if receipt.terminal_id else ""
    ops.append(Op("line", ident + tr(lang, "Receipt {receipt}", receipt=receipt.receipt_id)))
    shift = tr(lang, "Shift {shift}", shift=receipt.shift) if receipt.shift else ""
    by = (tr(lang, "Cashier {name}", name=receipt.cashier) if receipt.cashier
          else tr(lang, receipt.checkout_by) if receipt.checkout_by else "")
    who = "  ".join(x for x in (shift, by) if x)
    if who:
        ops.append(Op("line", who[:columns]))
    ops.append(Op("line", receipt.time))
    kind = {"return": "RETURN", "test": "TEST RECEIPT - NOT A SALE"}.get(receipt.kind)
    banners = [tr(lang, text) for text in (kind, "COPY" if receipt.copy else None) if text]
    if banners:
        ops += [Op("style", {"bold": True}), *(Op("line", b) for b in banners), Op("style", {"bold": False})]
    ops.append(Op("style", {"align": "left"}))
    return ops


def _vat(receipt: Receipt, columns: int) -> list[Op]:
    """VAT is inside the prices: one line per rate with the VAT the paid money contains."""
    return [Op("line", _pair(tr(receipt.language, "incl. VAT {rate}% of {paid}", rate=format_rate(rate),
                                paid=format_minor(paid)), format_minor(amount), columns))
            for rate, paid, amount in receipt.vat]


def format_rate(rate_bp: int) -> str:
    """2000 → "20", 750 → "7.5"."""
    whole, part = divmod(rate_bp, 100)
    return str(whole) if not part else f"{whole}.{part:02d}".rstrip("0")


def _payments(receipt: Receipt, columns: int) -> list[Op]:
    ops = [Op("line", _pair(label, format_minor(amount), columns)) for label, amount in receipt.payments]
    if receipt.change:
        ops.append(Op("line", _pair(tr(receipt.language, "Change"), format_minor(receipt.change), columns)))
    return ops


def _totals(receipt: Receipt, columns: int) -> list[Op]:
    lang = receipt.language
    ops = [Op("line", _pair(tr(lang, "Subtotal"), format_minor(receipt.subtotal), columns))]
    if receipt.discount:
        ops.append(Op("line", _pair(tr(lang, "Discount"), format_minor(-receipt.discount), columns)))
    ops += [Op("style", {"bold": True}),
            Op("line", _pair(tr(lang, "Total"), format_minor(receipt.total), columns)),
            Op("style", {"bold": False})]
    if receipt.points_paid:
        label = tr(lang, "Paid with {points} points", points=receipt.points_paid)
        ops.append(Op("line", _pair(label, format_minor(-receipt.points_paid_amount), columns)))
    # a return pays money out: the customer must not read it as an amount still owed
    due = tr(lang, "REFUND" if receipt.kind == "return" else "TO PAY")
    ops += [Op("style", {"bold": True}),
            Op("line", _pair(due, format_minor(receipt.to_pay), columns)),
            Op("style", {"bold": False})]
    if receipt.payments:
        ops += _payments(receipt, columns)
    elif receipt.payment_method:
        ops.append(Op("line", _pair(tr(lang, "Payment"), tr_method(lang, receipt.payment_method), columns)))
    return ops


def _points(receipt: Receipt, columns: int) -> list[Op]:
    if not receipt.card_number:
        return []
    lang = receipt.language
    rows = [("Card", mask_card(receipt.card_number))]
    if receipt.points_before is not None:
        rows.append(("Points before", str(receipt.points_before)))
    if receipt.points_paid:
        rows.append(("Points paid", f"-{receipt.points_paid}"))
    if receipt.points_earned:
        rows.append(("Points earned", f"+{receipt.points_earned}"))
    if receipt.points_after is not None:
        rows.append(("Points after", str(receipt.points_after)))
    ops = [Op("line", "-" * columns)] + [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows]
    if receipt.points_earned and receipt.points_available_from:
        ops += [Op("line", ln) for ln in textwrap.wrap(tr(
            lang, "Earned points usable from {date}", date=receipt.points_available_from), columns)]
    if receipt.points_expiring:
        ops += [Op("line", ln) for ln in textwrap.wrap(tr(
            lang, "{points} points expire on {date}", points=receipt.points_expiring,
            date=receipt.points_expiring_date), columns)]
    return ops


def _messages(receipt: Receipt, columns: int) -> list[Op]:
    texts = list(receipt.messages) + [tr(receipt.language, "Gift: {name} x {qty}", name=g.name, qty=g.qty)
                                      for g in receipt.gifts]
    if not texts:
        return []
    ops = [Op("line", "-" * columns)]
    for text in texts:
        ops += [Op("line", ln) for ln in textwrap.wrap(text, columns)]
    return ops


def _coupons(receipt: Receipt, columns: int) -> list[Op]:
    """Each coupon the sale issued: a title, its last day, and its code as a CODE128 barcode
    (the same `barcode` op as the receipt id; a scanner reads it back at the next visit)."""
    ops: list[Op] = []
    for code, valid_to in receipt.coupons:
        ops += [Op("line", "-" * columns), Op("style", {"align": "center", "bold": True}),
                Op("line", tr(receipt.language, "COUPON")), Op("style", {"bold": False})]
        ops += [Op("line", ln) for ln in textwrap.wrap(tr(receipt.language, "Valid until {date}", date=valid_to),
                                                     columns)]
        ops += [Op("barcode", code), Op("line", code), Op("style", {"align": "left"})]
    return ops


def document_ops(document: Receipt | ShiftReport, columns: int) -> list[Op]:
    """A receipt or a shift report, laid out for a printer `columns` characters wide."""
    if isinstance(document, ShiftReport):
        return report_ops(document, columns)
    return receipt_ops(document, columns)


def report_ops(report: ShiftReport, columns: int) -> list[Op]:
    """An X or Z report: the shift's sales, money per payment method, returns and points."""
    lang = report.language
    title = tr(lang, "{kind} REPORT - SHIFT {shift}", kind=report.kind, shift=report.shift)
    ops = [Op("style", {"align": "center", "bold": True, "double_height": True})]
    ops += [Op("line", ln) for ln in textwrap.wrap(report.store_name, columns)[:2]]
    ops.append(Op("style", {"align": "center", "bold": False, "normal_textsize": True}))
    if report.terminal_id:
        ops.append(Op("line", tr(lang, "Terminal {terminal}", terminal=report.terminal_id)))
    ops += [Op("style", {"bold": True}), Op("line", title), Op("style", {"bold": False})]
    ops += [Op("style", {"align": "left"}), Op("line", "-" * columns)]
    rows = [("Shift opened", report.opened_at or "-"),
            ("Closed" if report.kind == "Z" else "Printed", report.time)]
    ops += [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows]
    ops.append(Op("line", "-" * columns))
    rows = [("Sales", str(report.sales)), ("Total", format_minor(report.total)),
            ("Discounts given", format_minor(report.discount)),
            ("Paid with points", format_minor(report.redeemed_money))]
    ops += [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows]
    ops += [Op("style", {"bold": True}),
            Op("line", _pair(tr(lang, "Taken"), format_minor(report.to_pay), columns)),
            Op("style", {"bold": False})]
    ops += [Op("line", _pair(f"  {tr_method(lang, method)}", format_minor(amount), columns))
            for method, amount in report.tenders]
    ops += _report_vat("VAT in sales", report.vat_sales, columns)
    rows = [("Returns", str(report.returns)), ("Refunded", format_minor(-report.returned_money))]
    ops += [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows]
    ops += [Op("line", _pair(f"  {tr_method(lang, method)}", format_minor(-amount), columns))
            for method, amount in report.refunds]
    ops += _report_vat("VAT in returns", report.vat_returns, columns)
    ops += [Op("style", {"bold": True}),
            Op("line", _pair(tr(lang, "Net"), format_minor(report.to_pay - report.returned_money), columns)),
            Op("style", {"bold": False}), Op("line", "-" * columns)]
    if report.cash_in or report.cash_out:
        rows = [("Cash in", format_minor(report.cash_in)), ("Cash out", format_minor(-report.cash_out))]
        ops += [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows] + [Op("line", "-" * columns)]
    rows = [("Points earned", str(report.accrued)), ("Points paid", str(report.redeemed))]
    ops += [Op("line", _pair(tr(lang, k), v, columns)) for k, v in rows]
    if report.kind == "Z":
        ops += [Op("style", {"align": "center", "bold": True}), Op("line", tr(lang, "SHIFT CLOSED")),
                Op("style", {"align": "left", "bold": False})]
    ops.append(Op("cut"))
    return ops


def printable(text: str, printer: Escpos) -> str:
    """`?` for each character none of the profile's code pages has (python-escpos would send
    any text with a CJK character as GB18030, which other printers print as garbage)."""
    if text.isascii():
        return text
    find = printer.magic.encoder.find_suitable_encoding
    return "".join(ch if ch.isascii() or find(ch) else "?" for ch in text)


def _report_vat(title: str, rows: tuple[tuple[int, int, int], ...], columns: int) -> list[Op]:
    ops = [Op("line", title)] if rows else []
    return ops + [Op("line", _pair(f"  {format_rate(rate)}% of {format_minor(base)}", format_minor(amount), columns))
                  for rate, base, amount in rows]


def play(ops: list[Op], printer: Escpos) -> None:
    """Issue the ops as python-escpos calls; codes the profile cannot print are left out."""
    for op in ops:
        if op.kind == "style":
            printer.set(**op.arg)
        elif op.kind == "line":
            printer.textln(printable(op.arg, printer))
        elif op.kind == "drawer":
            printer.cashdraw(2)  # pin 2: the usual drawer kick connector
        elif op.kind == "qr" and printer.profile.supports("qrCode"):
            printer.qr(op.arg, native=True, size=qr_size)
        elif op.kind in ("qr", "barcode") and printer.profile.supports("barcodeB"):
            # barcode() reports its renderer choice with print(); keep stdout for the CLI.
            with contextlib.redirect_stdout(io.StringIO()):
                printer.barcode("{B" + op.arg, "CODE128", function_type="B")
        elif op.kind == "cut":
            printer.cut()


def preview(ops: list[Op], columns: int) -> str:
    """The same ops as plain text: what the receipt says, for screens, logs and tests."""
    out: list[str] = []
    align = "left"
    for op in ops:
        if op.kind == "style":
            align = op.arg.get("align", align)
        elif op.kind == "line":
            out.append(op.arg.center(columns).rstrip() if align == "center" else op.arg)
        elif op.kind in ("qr", "barcode"):
            out.append(f"[{op.kind.upper()} {op.arg}]".center(columns).rstrip())
        elif op.kind == "cut":
            out.append("=" * columns)
    return "\n".join(out) + "\n"
