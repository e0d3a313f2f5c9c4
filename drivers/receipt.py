"""The receipt as the printer driver sees it: a frozen dataclass of display values.

Money is integer minor units (kopecks) printed as "1234.56"; quantities are integer thousandths
printed as "2" or "0.350"; no floats anywhere. `Receipt.from_quote` fills one from a pricing
quote (core's dict) plus the names and card details the terminal knows.
Limits: `lines_max`, `text_chars_max`, `messages_max`, `receipt_id_chars_max`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from drivers.errors import ReceiptError

Kind = Literal["sale", "return", "test"]
lines_max = 500
messages_max = 20
text_chars_max = 500
receipt_id_chars_max = 32
coupons_max = 16  # issued coupons printed on one receipt (each a CODE128 barcode)
amount_minor_max = 10**15


def format_minor(amount_minor: int) -> str:
    """1234 → "12.34", -5 → "-0.05"; integer arithmetic only."""
    sign = "-" if amount_minor < 0 else ""
    whole, cents = divmod(abs(amount_minor), 100)
    return f"{sign}{whole}.{cents:02d}"


def format_qty(qty_milli: int) -> str:
    """2000 → "2", 350 → "0.350" (weighed goods keep all three decimals)."""
    sign = "-" if qty_milli < 0 else ""
    whole, milli = divmod(abs(qty_milli), 1000)
    return f"{sign}{whole}" if milli == 0 else f"{sign}{whole}.{milli:03d}"


def mask_card(number: str) -> str:
    """Keep the last four characters: the receipt is a public piece of paper."""
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    name: str
    qty_milli: int
    price: int
    amount: int
    discount: int = 0


@dataclass(frozen=True, slots=True)
class Gift:
    name: str
    qty: int


@dataclass(frozen=True, slots=True)
class Receipt:
    receipt_id: str
    time: str
    store_name: str
    kind: Kind = "sale"
    store_address: str = ""
    terminal_id: str = ""
    lines: tuple[ReceiptLine, ...] = ()
    subtotal: int = 0
    discount: int = 0
    total: int = 0
    points_paid: int = 0
    points_paid_amount: int = 0
    to_pay: int = 0
    payment_method: str = ""
    card_number: str = ""
    points_before: int | None = None
    points_earned: int = 0
    points_available_from: str = ""
    points_after: int | None = None
    points_expiring: int = 0
    points_expiring_date: str = ""
    messages: tuple[str, ...] = ()
    gifts: tuple[Gift, ...] = field(default=())
    language: str = "en"  # of the printed words (drivers.receipt_text); names print as they are
    # the seller as the tax office knows it, and who took the money
    store_legal_name: str = ""
    store_tax_id: str = ""
    shift: int | None = None
    checkout_by: str = ""  # "Self-checkout" when no attendant took the money (printed translated)
    cashier: str = ""  # the attendant who did: printed "Cashier NAME"
    copy: bool = False  # a reprint: marked COPY on paper
    payments: tuple[tuple[str, int], ...] = ()  # (label, amount) per tender, points included
    change: int = 0
    vat: tuple[tuple[int, int, int], ...] = ()  # (rate in basis points, paid, VAT amount) per rate
    open_drawer: bool = False  # cash moved: the job kicks the cash drawer first
    coupons: tuple[tuple[str, str], ...] = ()  # (code, last day) issued by the sale: printed as barcodes

    def __post_init__(self) -> None:
        _check_language(self.language)
        _check_text(self.receipt_id, "receipt_id", receipt_id_chars_max)
        if not (self.receipt_id.isascii() and self.receipt_id.isprintable() and self.receipt_id):
            raise ReceiptError("receipt_id must be 1..32 printable ASCII characters")
        if self.kind not in ("sale", "return", "test"):
            raise ReceiptError(f"receipt kind must be sale, return or test, got {self.kind!r}")
        if len(self.lines) > lines_max:
            raise ReceiptError(f"receipt {self.receipt_id}: more than {lines_max} lines")
        if len(self.messages) + len(self.gifts) > messages_max:
            raise ReceiptError(f"receipt {self.receipt_id}: more than {messages_max} messages")
        for name in ("time", "store_name", "store_address", "terminal_id", "payment_method",
                     "card_number", "points_available_from", "points_expiring_date",
                     "store_legal_name", "store_tax_id", "checkout_by", "cashier"):
            _check_text(getattr(self, name), name, text_chars_max)
        for text in self.messages:
            _check_text(text, "message", text_chars_max)
        for line in self.lines:
            _check_text(line.name, "line name", text_chars_max)
            for value in (line.qty_milli, line.price, line.amount, line.discount):
                _check_int(value, f"line {line.name!r}")
        for name in ("subtotal", "discount", "total", "points_paid", "points_paid_amount",
                     "to_pay", "points_earned", "points_expiring", "change"):
            _check_int(getattr(self, name), name)
        if len(self.coupons) > coupons_max:
            raise ReceiptError(f"receipt {self.receipt_id}: more than {coupons_max} coupons")
        for code, valid_to in self.coupons:
            if not (code.isascii() and code.isprintable() and 0 < len(code) <= receipt_id_chars_max):
                raise ReceiptError(f"coupon code {code[:40]!r} must be 1..{receipt_id_chars_max} printable ASCII")
            _check_text(valid_to, "coupon valid_to", text_chars_max)
        if len(self.payments) > tenders_max or len(self.vat) > tenders_max:
            raise ReceiptError(f"receipt {self.receipt_id}: more than {tenders_max} payments or VAT rates")
        for label, amount in self.payments:
            _check_text(label, "payment", text_chars_max)
            _check_int(amount, f"payment {label!r}")
        for row in self.vat:
            for value in row:
                _check_int(value, "vat")

    @classmethod
    def from_quote(
        cls,
        quote: Mapping[str, Any],
        names: Mapping[str, str],
        *,
        receipt_id: str,
        time: str,
        store_name: str,
        kind: Kind = "sale",
        store_address: str = "",
        terminal_id: str = "",
        payment_method: str = "",
        card_number: str = "",
        points_before: int | None = None,
        points_expiring: int = 0,
        points_expiring_date: str = "",
        language: str = "en",
    ) -> Receipt:
        """A receipt from core's quote; `names` maps sku → printed name (the sku if missing)."""
        try:
            return _from_quote(cls, quote, names, locals())
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiptError(f"receipt {receipt_id}: the quote is incomplete: {exc!r}") from None


def vat_rows(summary: Any) -> tuple[tuple[int, int, int], ...]:
    """Core's `vat` list (spec §17: rate in basis points, paid or money, amount) → receipt rows."""
    return tuple((_int(v["rate"]), _int(v.get("paid", v.get("money", 0))), _int(v["amount"]))
                 for v in summary or ())


def _from_quote(cls: type[Receipt], quote: Mapping[str, Any], names: Mapping[str, str],
                given: dict[str, Any]) -> Receipt:
    totals = quote.get("totals", quote)
    redeem = totals.get("redeem") or {}
    accrual = quote.get("accrual") or {}
    lines = tuple(
        ReceiptLine(
            name=str(names.get(line["sku"], line["sku"])),
            qty_milli=_int(line["qty_milli"]),
            price=_int(line["price"]),
            amount=_int(line["amount"]),
            discount=_int(line.get("discount", 0)),
        )
        for line in quote.get("lines", ())
    )
    points_paid = _int(redeem.get("points", 0))
    earned = _int(accrual.get("points", 0))
    before = given["points_before"]
    return cls(
        receipt_id=given["receipt_id"], time=given["time"], store_name=given["store_name"],
        kind=given["kind"], store_address=given["store_address"],
        terminal_id=given["terminal_id"], lines=lines,
        subtotal=_int(totals["subtotal"]), discount=_int(totals.get("discount", 0)),
        total=_int(totals["total"]), points_paid=points_paid,
        points_paid_amount=_int(redeem.get("amount", 0)), to_pay=_int(totals["to_pay"]),
        payment_method=given["payment_method"], card_number=given["card_number"],
        points_before=before, points_earned=earned,
        points_available_from=_moment(accrual.get("available_from")),
        points_after=None if before is None else before - points_paid + earned,
        points_expiring=given["points_expiring"],
        points_expiring_date=given["points_expiring_date"],
        messages=tuple(str(m["text"]) for m in quote.get("messages", ()) if m.get("text")),
        gifts=tuple(Gift(str(g.get("name") or g["sku"]), _int(g.get("qty", 1)))
                    for g in quote.get("gifts", ())),
        language=given["language"],
        vat=vat_rows(quote.get("vat")),
    )


ReportKind = Literal["X", "Z"]
tenders_max = 32
shift_max = 10**12
# The ledger's shift totals a report prints: counts, money in minor units, points.
REPORT_TOTALS = ("sales", "total", "discount", "redeemed_money", "to_pay", "returns",
                 "returned_money", "accrued", "redeemed")


@dataclass(frozen=True, slots=True)
class ShiftReport:
    """A shift's totals on paper: X (the shift is still open) or Z (printed when it closes).

    Money in minor units, points as integers, as the ledger's shift report gives them;
    `tenders` is (method, money taken) per payment method. `receipt_id` names the print job."""

    kind: ReportKind
    shift: int
    time: str
    opened_at: str
    store_name: str
    terminal_id: str = ""
    sales: int = 0
    total: int = 0
    discount: int = 0
    redeemed_money: int = 0
    to_pay: int = 0
    tenders: tuple[tuple[str, int], ...] = ()
    returns: int = 0
    returned_money: int = 0
    accrued: int = 0
    redeemed: int = 0
    language: str = "en"
    refunds: tuple[tuple[str, int], ...] = ()  # money given back per method
    cash_in: int = 0
    cash_out: int = 0
    vat_sales: tuple[tuple[int, int, int], ...] = ()  # (rate bp, paid, VAT) of the sales
    vat_returns: tuple[tuple[int, int, int], ...] = ()  # the same of the returns

    def __post_init__(self) -> None:
        _check_language(self.language)
        if self.kind not in ("X", "Z"):
            raise ReceiptError(f"shift report kind must be X or Z, got {self.kind!r}")
        _check_int(self.shift, "shift")
        if not 1 <= self.shift <= shift_max:
            raise ReceiptError(f"shift report: shift {self.shift} is outside 1..{shift_max}")
        for name in ("time", "opened_at", "store_name", "terminal_id"):
            _check_text(getattr(self, name), name, text_chars_max)
        for name in REPORT_TOTALS:
            _check_int(getattr(self, name), name)
            if getattr(self, name) < 0:
                raise ReceiptError(f"shift report field {name} is negative")
        if len(self.tenders) > tenders_max:
            raise ReceiptError(f"shift report: more than {tenders_max} payment methods")
        for method, amount in (*self.tenders, *self.refunds):
            _check_text(method, "payment method", text_chars_max)
            _check_int(amount, f"payment method {method!r}")
        if len(self.refunds) > tenders_max or len(self.vat_sales) + len(self.vat_returns) > tenders_max:
            raise ReceiptError(f"shift report: more than {tenders_max} refund methods or VAT rates")
        for value in (self.cash_in, self.cash_out, *(v for row in (*self.vat_sales, *self.vat_returns) for v in row)):
            _check_int(value, "shift report amount")

    @property
    def receipt_id(self) -> str:
        return f"{self.kind}-{self.shift}"

    @classmethod
    def from_ledger(cls, kind: ReportKind, report: Mapping[str, Any], *, time: str,
                    store_name: str, terminal_id: str = "", language: str = "en") -> ShiftReport:
        """From the ledger's shift report ({shift, opened_at, totals, tenders})."""
        try:
            totals = report["totals"]
            return cls(
                kind=kind, shift=report["shift"], time=time, opened_at=_moment(report["opened_at"]),
                store_name=store_name, terminal_id=terminal_id, language=language,
                tenders=tuple((str(m), _int(a)) for m, a in report["tenders"].items()),
                **{name: _int(totals[name]) for name in REPORT_TOTALS},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReceiptError(f"shift report: the ledger's report is incomplete: {exc!r}") from None


def shift_extras(report: Mapping[str, Any]) -> dict[str, Any]:
    """The tender-and-tax part of the ledger's shift report, as ShiftReport fields."""
    try:
        totals, vat = report.get("totals", {}), report.get("vat") or {}
        return {"refunds": tuple((str(m), _int(a)) for m, a in (report.get("refunds") or {}).items()),
                "cash_in": _int(totals.get("cash_in", 0)), "cash_out": _int(totals.get("cash_out", 0)),
                "vat_sales": vat_rows(vat.get("sales")), "vat_returns": vat_rows(vat.get("returns"))}
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ReceiptError(f"shift report: the ledger's report is incomplete: {exc!r}") from None


def _int(value: Any) -> int:
    # JSON decoded with exact decimals gives Decimal("12") for 12; a fraction is a bug upstream.
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, Decimal) and value != value.to_integral_value():
        raise ValueError(f"expected an integer, got {value}")
    return int(value)


def _moment(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _check_language(language: Any) -> None:
    from drivers.receipt_text import LANGUAGES

    if language not in LANGUAGES:
        raise ReceiptError(f"receipt language must be one of {', '.join(LANGUAGES)}, got {language!r}")


def _check_text(value: Any, name: str, chars_max: int) -> None:
    if not isinstance(value, str):
        raise ReceiptError(f"receipt field {name} must be text, got {type(value).__name__}")
    if len(value) > chars_max:
        raise ReceiptError(f"receipt field {name} is longer than {chars_max} characters")


def _check_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ReceiptError(f"receipt field {name} must be an integer, got {value!r}")
    if abs(value) > amount_minor_max:
        raise ReceiptError(f"receipt field {name} is out of range")
