"""Every event a terminal sends, field by field: the one machine-readable list of the contract.

`EVENTS` maps each event type to its fields (`COMMON` ones first): type, unit, range, required
or not. The server refuses an event that breaks it (`check_event`, through
`wire.check_batch`): an unknown type or key, a missing required field, a value of the wrong
type or out of range, `at` and `at_ms` that disagree, a sale or return that moves points
without naming its card. Tests check that every event a real ledger writes validates, and that
docs/protocol.md lists exactly these types and fields (`field_rows`).

The checkers are compiled once per type into closures over plain tuples (no generic walker on
the hot path: ingest checks ~20 000 events/s): whole numbers and strings of a record are checked
in one inline loop each, nested records and lists by their own compiled checker.

Times: ISO-8601 text with a UTC offset, or ms since 1970-01-01 UTC, within
[`TIME_MIN_ISO`, `TIME_MAX_ISO`] (`TIME_MS_MIN`..`TIME_MS_MAX`) on both sides — the terminal's
ledger refuses the same range (`terminal.ledger.moments`).

Imports nothing of the project: `protocol.wire` builds on it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

TIME_MIN_ISO = "2000-01-01T00:00:00+00:00"
TIME_MAX_ISO = "9999-12-31T23:59:59.999000+00:00"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MS = dt.timedelta(milliseconds=1)
TIME_MS_MIN = (dt.datetime.fromisoformat(TIME_MIN_ISO) - _EPOCH) // _MS  # 946 684 800 000
TIME_MS_MAX = (dt.datetime.fromisoformat(TIME_MAX_ISO) - _EPOCH) // _MS  # 253 402 300 799 999
ISO_CHARS_MAX = 64

AMOUNT_MAX = 10**15  # money, minor units (the pricing core's and the ledger's limit)
POINTS_MAX = 10**15  # points in a quote or on a card
DELTA_POINTS_MAX = 10**12  # points one event moves on one card
ADJUST_POINTS_MAX = 10**9  # one technician's adjustment (terminal or central)
GIFT_QTY_MAX = 1_000
COUNT_MAX = 2**63 - 1
ID_CHARS_MAX = 64  # receipt, return, checkout, rule ids and skus (the ledger's text keys)
CARD_TYPE_CHARS_MAX = 64
TEXT_CHARS_MAX = 256
LINES_MAX = 1_000
LINE_RULES_MAX = 1_000
GIFTS_MAX = 1_000
TENDERS_MAX = 16
REFERRALS_MAX = 8
LOT_ENTRIES_MAX = 500  # entries per card in an event's `lots` field
CARDS_PER_EVENT_MAX = 1_000  # cards in `deltas` and in `lots`
TOTALS_MAX = 64
DETAIL_FIELDS_MAX = 16  # an attendant action's detail (terminal/ledger/staff.py)
ATTENDANT_ACTIONS = ("age_approved", "line_removed", "cancelled", "return", "reprint", "adjust",
                     "shift_print", "shift_close", "cash_move")


def card_number_ok(number: Any) -> bool:
    """1..64 printable characters (the ledger's keys allow 64 bytes; it refuses longer ones)."""
    return type(number) is str and 0 < len(number) <= 64 and number.isprintable()


def iso_ms(value: Any) -> int | None:
    """ms since 1970 of an ISO-8601 time with an offset inside the supported range, else None."""
    if type(value) is not str or len(value) > ISO_CHARS_MAX:
        return None
    try:
        ms: int = (dt.datetime.fromisoformat(value) - _EPOCH) // _MS
    except (ValueError, TypeError, OverflowError):  # TypeError: a naive time (no offset)
        return None
    return ms if TIME_MS_MIN <= ms <= TIME_MS_MAX else None


class Invalid(Exception):
    """A value broke its schema: `path` (e.g. `lines[2].qty_milli`) and why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.path, self.reason = path, reason


Checker = Callable[[Any], None]


def _fail(reason: str) -> Invalid:
    return Invalid("", reason)


def _within(path: str, exc: Invalid) -> Invalid:
    inner = exc.path
    sep = "" if not inner or inner.startswith("[") else "."
    return Invalid(f"{path}{sep}{inner}" if inner else path, exc.reason)


# ---------------------------------------------------------------- value types


@dataclass(frozen=True)
class Int:
    low: int
    high: int
    unit: str

    def doc(self) -> tuple[str, str, str]:
        return "int", self.unit, f"{_n(self.low)}..{_n(self.high)}"

    def compile(self) -> Checker:
        low, high = self.low, self.high

        def check(v: Any) -> None:
            if type(v) is not int or v < low or v > high:
                raise _fail(f"must be an integer {low}..{high}, got {v!r:.40}")

        return check


@dataclass(frozen=True)
class Text:
    chars_max: int
    chars_min: int = 1
    choices: tuple[str, ...] = ()

    def doc(self) -> tuple[str, str, str]:
        if self.choices:
            return "str", "", " \\| ".join(f"`{c}`" for c in self.choices)
        return "str", "chars", f"{self.chars_min}..{self.chars_max}"

    def compile(self) -> Checker:
        low, high, choices = self.chars_min, self.chars_max, frozenset(self.choices)

        def check(v: Any) -> None:
            if type(v) is not str or not low <= len(v) <= high or (choices and v not in choices):
                wanted = f"one of {sorted(choices)}" if choices else f"a string of {low}..{high} chars"
                raise _fail(f"must be {wanted}, got {v!r:.40}")

        return check


@dataclass(frozen=True)
class CardNumber:
    def doc(self) -> tuple[str, str, str]:
        return "str", "card number", "1..64 printable chars"

    def compile(self) -> Checker:
        def check(v: Any) -> None:
            if not card_number_ok(v):
                raise _fail(f"card number must be 1..64 printable chars, got {v!r:.70}")

        return check


@dataclass(frozen=True)
class Bool:
    def doc(self) -> tuple[str, str, str]:
        return "bool", "", "true \\| false"

    def compile(self) -> Checker:
        def check(v: Any) -> None:
            if type(v) is not bool:
                raise _fail(f"must be true or false, got {v!r:.40}")

        return check


@dataclass(frozen=True)
class Time:
    def doc(self) -> tuple[str, str, str]:
        return "str", "ISO-8601 with offset", f"{TIME_MIN_ISO[:10]}..{TIME_MAX_ISO[:10]} (UTC)"

    def compile(self) -> Checker:
        def check(v: Any) -> None:
            if iso_ms(v) is None:
                raise _fail(
                    f"must be an ISO-8601 time with offset within {TIME_MIN_ISO}..{TIME_MAX_ISO}, got {v!r:.70}"
                )

        return check


@dataclass(frozen=True)
class Nullable:
    inner: Any

    def doc(self) -> tuple[str, str, str]:
        kind, unit, rng = self.inner.doc()
        return f"{kind} \\| null", unit, rng

    def compile(self) -> Checker:
        inner = self.inner.compile()

        def check(v: Any) -> None:
            if v is not None:
                inner(v)

        return check


@dataclass(frozen=True)
class Scalar:
    """A detail value: an integer within ±`high`, text of at most `chars_max`, or null."""

    high: int
    chars_max: int

    def doc(self) -> tuple[str, str, str]:
        return "int \\| str \\| null", "", f"int ±{_n(self.high)}; str ≤ {self.chars_max} chars"

    def compile(self) -> Checker:
        high, chars_max = self.high, self.chars_max

        def check(v: Any) -> None:
            if v is None or (type(v) is int and -high <= v <= high) or (type(v) is str and len(v) <= chars_max):
                return
            raise _fail(f"must be an integer within ±{high}, a string of ≤ {chars_max} chars or null, got {v!r:.40}")

        return check


@dataclass(frozen=True)
class ListOf:
    item: Any
    items_max: int

    def doc(self) -> tuple[str, str, str]:
        kind = self.item.doc()[0] if not isinstance(self.item, Record) else "map"
        return f"array of {kind}", "", f"0..{self.items_max} items"

    def compile(self) -> Checker:
        """Items all checked at once when they are surely valid (`_many`: a few C-level passes
        over the whole list); item by item, naming the first bad one, otherwise."""
        item, items_max = self.item.compile(), self.items_max
        many = _many(self.item)

        def check(v: Any) -> None:
            if type(v) is not list or len(v) > items_max:
                raise _fail(f"must be an array of at most {items_max} items")
            if not v or many(v):
                return
            for i, x in enumerate(v):
                try:
                    item(x)
                except Invalid as exc:
                    raise _within(f"[{i}]", exc) from None

        return check


def _many(item: Any) -> Callable[[list[Any]], bool]:
    """A check of a non-empty list's items at once: True only when every one is valid."""
    if type(item) is Record:
        return item.compile_many()
    if type(item) is Text and not item.choices:
        low, high = item.chars_min, item.chars_max

        def texts(v: list[Any]) -> bool:
            return set(map(type, v)) == {str} and min(map(len, v)) >= low and max(map(len, v)) <= high

        return texts
    return lambda v: False


@dataclass(frozen=True)
class MapOf:
    key: Any
    value: Any
    items_max: int
    key_name: str = "card number"

    def doc(self) -> tuple[str, str, str]:
        kind, unit, rng = self.value.doc()
        if isinstance(self.value, ListOf):
            return f"map {self.key_name} → {kind}", unit, f"≤ {self.items_max} keys; {rng}"
        return f"map {self.key_name} → {kind}", unit, f"≤ {self.items_max} keys; {rng}"

    def compile(self) -> Checker:
        key, value, items_max = self.key.compile(), self.value.compile(), self.items_max

        def check(v: Any) -> None:
            if type(v) is not dict or len(v) > items_max:
                raise _fail(f"must be a map of at most {items_max} entries")
            for k, x in v.items():
                try:
                    key(k)
                    value(x)
                except Invalid as exc:
                    raise _within(f"[{k!r:.70}]", exc) from None

        return check


@dataclass(frozen=True)
class Field:
    name: str
    spec: Any
    required: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Record:
    fields: tuple[Field, ...]

    def doc(self) -> tuple[str, str, str]:
        return "map", "", ", ".join(f.name for f in self.fields)

    def _parts(self, skip: frozenset[str]) -> tuple[Any, ...]:
        allowed = frozenset(f.name for f in self.fields)
        required = frozenset(f.name for f in self.fields if f.required)
        int_groups: dict[tuple[int, int], list[str]] = {}
        text_groups: dict[tuple[int, int], list[str]] = {}
        loose_names = []
        for f in self.fields:
            spec = f.spec
            if type(spec) is Int and f.required:
                int_groups.setdefault((spec.low, spec.high), []).append(f.name)
            elif type(spec) is Text and not spec.choices and f.required:
                text_groups.setdefault((spec.chars_min, spec.chars_max), []).append(f.name)
            elif f.name not in skip:
                loose_names.append(f.name)
        specs = {f.name: f.spec for f in self.fields}
        int_checks = tuple((_getter(names), low, high, tuple(names)) for (low, high), names in int_groups.items())
        text_checks = tuple((_getter(names), low, high, tuple(names)) for (low, high), names in text_groups.items())
        others = tuple((name, specs[name].compile()) for name in loose_names)
        return allowed, required, int_checks, text_checks, others, specs

    def compile(self, skip: frozenset[str] = frozenset()) -> Checker:
        """One closure: key set checks; the required whole numbers of one range, and the
        required plain strings of one length range, each checked as a group by a few C-level
        calls (`itemgetter`, `set(map(type, …))`, `min`, `max`); then the optional ones and the
        other fields by their own checkers. `skip`: allowed fields the caller checks itself."""
        allowed, required, int_checks, text_checks, others, specs = self._parts(skip)
        missing = object()
        only_int, only_str = {int}, {str}

        def check(v: Any) -> None:
            if type(v) is not dict:
                raise _fail(f"must be a map, got {type(v).__name__}")
            keys = v.keys()
            if not keys <= allowed:
                raise _fail(f"unknown field(s) {sorted(map(str, keys - allowed))[:5]}")
            if not required <= keys:
                raise _fail(f"missing field(s) {sorted(required - keys)[:5]}")
            for values, low, high, names in int_checks:
                got = values(v)
                if set(map(type, got)) != only_int or min(got) < low or max(got) > high:
                    _bad_member(v, names, specs)
            for values, low, high, names in text_checks:
                got = values(v)
                if set(map(type, got)) != only_str or min(map(len, got)) < low or max(map(len, got)) > high:
                    _bad_member(v, names, specs)
            get = v.get
            for name, sub in others:
                x = get(name, missing)
                if x is not missing:
                    try:
                        sub(x)
                    except Invalid as exc:
                        raise _within(name, exc) from None

        return check

    def compile_many(self) -> Callable[[list[Any]], bool]:
        """True when every item of a non-empty list is valid, checked field group by field group
        over all items at once (a sale's lines); False sends the caller item by item."""
        allowed, required, int_checks, text_checks, others, _ = self._parts(frozenset())
        missing = object()
        only_int, only_str, only_dict = {int}, {str}, {dict}
        chain = itertools.chain.from_iterable

        def many(items: list[Any]) -> bool:
            if set(map(type, items)) != only_dict:
                return False
            for keys in set(map(frozenset, items)):
                if not (keys <= allowed and required <= keys):
                    return False
            for values, low, high, _names in int_checks:
                got = list(chain(map(values, items)))
                if set(map(type, got)) != only_int or min(got) < low or max(got) > high:
                    return False
            for values, low, high, _names in text_checks:
                got = list(chain(map(values, items)))
                if set(map(type, got)) != only_str or min(map(len, got)) < low or max(map(len, got)) > high:
                    return False
            for item in items if others else ():
                for name, sub in others:
                    x = item.get(name, missing)
                    if x is not missing:
                        try:
                            sub(x)
                        except Invalid:
                            return False
            return True

        return many


def _getter(names: list[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """The values of `names` as a tuple (itemgetter gives a bare value for one name)."""
    if len(names) == 1:
        name = names[0]
        return lambda v: (v[name],)
    return itemgetter(*names)


def _bad_member(v: dict[str, Any], names: tuple[str, ...], specs: dict[str, Any]) -> None:
    """A group check failed: raise for its first bad field (the refusal path only)."""
    for name in names:
        try:
            specs[name].compile()(v[name])
        except Invalid as exc:
            raise _within(name, exc) from None
    raise AssertionError(f"no bad field among {names}")


def _n(value: int) -> str:
    """A limit as the doc shows it: 10^15, −10^12, 2^63−1, or the number."""
    sign = "−" if value < 0 else ""
    a = abs(value)
    if a == 2**63 - 1:
        return f"{sign}2^63−1"
    for base in (10,):
        power = 0
        while a and a % base == 0:
            a //= base
            power += 1
        if a == 1 and power >= 6:
            return f"{sign}10^{power}"
    return f"{value}"


# ---------------------------------------------------------------- the events

MONEY = Int(0, AMOUNT_MAX, "minor units")
POINTS = Int(0, POINTS_MAX, "points")
COUNT = Int(0, COUNT_MAX, "count")
ID = Text(ID_CHARS_MAX)
CARD = CardNumber()
LOT_ENTRY = Record(
    (
        Field("points", Int(-DELTA_POINTS_MAX, DELTA_POINTS_MAX, "points"), doc="> 0 credit, < 0 debit, never 0"),
        Field("available_from", Nullable(Time()), doc="null: available at once"),
        Field("expires_at", Nullable(Time()), doc="null: never expires"),
    )
)

COMMON = (
    Field("id", Text(32, 32), doc="32 lowercase hex digits, unique"),
    Field("epoch", Int(1, COUNT_MAX, "ms since 1970"), doc="the ledger's epoch, the batch's"),
    Field("seq", Int(1, COUNT_MAX, "count"), doc="gap-free per (terminal, epoch)"),
    Field("type", Text(32), doc="one of the types below"),
    Field("at", Time(), doc="when it happened; the same instant as `at_ms`"),
    Field("at_ms", Int(TIME_MS_MIN, TIME_MS_MAX, "ms since 1970"), doc="`at` in ms since 1970 UTC"),
    Field("shift", Int(1, COUNT_MAX, "count"), doc="the terminal's open shift"),
    Field("deltas", MapOf(CARD, Int(-DELTA_POINTS_MAX, DELTA_POINTS_MAX, "points"), CARDS_PER_EVENT_MAX),
          doc="points the event moved on each card"),
    Field("lots", MapOf(CARD, ListOf(LOT_ENTRY, LOT_ENTRIES_MAX), CARDS_PER_EVENT_MAX), required=False,
          doc="the lots moved (`points`, `available_from`, `expires_at`); a card's entries add up to its delta"),
)

SALE_LINE = Record(
    (
        Field("sku", ID),
        # The ledger's limits (the pricing core's are tighter: qty ≤ 10^9, price ≤ 10^11).
        Field("qty_milli", Int(0, AMOUNT_MAX, "1/1000 unit")),
        Field("price", MONEY, doc="unit price"),
        Field("amount", MONEY, doc="price × qty before discounts"),
        Field("discount", MONEY),
        Field("redeem_amount", MONEY, doc="money paid with points on this line"),
        Field("paid", MONEY, doc="amount − discount − redeem_amount"),
        Field("rules", ListOf(ID, LINE_RULES_MAX), doc="ids of the rules that discounted the line"),
        Field("vat_amount", MONEY, required=False, doc="VAT inside `paid` (when the quote has it)"),
        Field("vat_rate", Int(0, 10_000, "basis points"), required=False,
              doc="the line's VAT rate (absent: outside VAT)"),
        Field("accrual_base", MONEY, required=False,
              doc="the part of `paid` that earned points (a return at another terminal claws back by it)"),
    )
)
GIFT = Record((Field("rule", ID), Field("sku", ID), Field("qty", Int(1, GIFT_QTY_MAX, "count"))))
TENDER = Record(
    (
        Field("method", Text(32)),
        Field("amount", MONEY),
        Field("reference", Text(128), required=False),
        Field("tendered", MONEY, required=False, doc="cash handed over (= amount + change)"),
        Field("change", MONEY, required=False, doc="cash given back"),
        Field("op", Text(128), required=False, doc="the payment terminal's operation id"),
        Field("card", Text(128), required=False, doc="the bank card as the payment terminal masks it"),
    )
)
VAT_RATE = Int(0, 10_000, "basis points")


def _vat(base: str) -> Record:
    return Record((Field("rate", VAT_RATE), Field(base, MONEY), Field("amount", MONEY, doc="VAT inside")))
REFERRAL = Record(
    (
        Field("card", CARD, doc="the referrer"),
        Field("level", Int(1, 8, "count"), doc="1 = the direct referrer"),
        Field("points", POINTS),
        Field("cumulative", MONEY, doc="cumulative credit"),
        Field("local", Bool(), doc="true: the selling terminal holds the card and credited it (in `deltas`)"),
        Field("available_from", Nullable(Time()), required=False,
              doc="the dates of the lot the server opens when not `local` (older terminals omit them: dateless)"),
        Field("expires_at", Nullable(Time()), required=False),
    )
)

VAT_RATE = Int(0, 10_000, "basis points")
SALE_VAT = Record((Field("rate", VAT_RATE), Field("paid", MONEY), Field("amount", MONEY, doc="VAT inside `paid`")))
RETURN_VAT = Record((Field("rate", VAT_RATE), Field("money", MONEY), Field("amount", MONEY, doc="VAT inside `money`")))
REFUND_TENDER = Record(
    (
        Field("tender", Int(-1, TENDERS_MAX, "count"), doc="index of the sale's tender (-1: cash from the drawer)"),
        Field("method", Text(32)),
        Field("amount", MONEY),
        Field("original", Text(128), required=False, doc="the card operation refunded"),
        Field("reference", Text(128), required=False),
    )
)
CASH_MOVE = (
    Field("amount", Int(1, AMOUNT_MAX, "minor units")),
    Field("reason", Text(TEXT_CHARS_MAX)),
)

RETURN_LINE = Record(
    (
        Field("line", Int(0, LINES_MAX - 1, "count"), doc="index of the sale's line"),
        Field("qty_milli", Int(0, AMOUNT_MAX, "1/1000 unit")),
        Field("money", MONEY),
        Field("redeem_amount", MONEY),
        Field("accrual_base", MONEY),
        Field("cumulative_decrease", MONEY),
        Field("vat_amount", MONEY),
    )
)

REFERRAL_BACK = Record(
    (
        Field("card", CARD, doc="the referrer"),
        Field("points", POINTS, doc="points taken back"),
        Field("cumulative", MONEY, doc="cumulative credit taken back"),
        Field("local", Bool(), doc="true: this terminal holds the card and took them (in `deltas`)"),
    )
)

COUPONS_MAX = 16  # codes presented with one cart (the pricing core's limit, spec §13)
ISSUED_COUPONS_MAX = 1_000  # codes one sale issues (one per applying coupon rule)
COUPON_CODE = Text(32, 3)
USED_COUPON = Record(
    (
        Field("code", COUPON_CODE, doc="as presented, upper-cased"),
        Field("series", ID),
        Field("single_use", Bool(), doc="true: the sale spent it (central marks it spent)"),
    )
)
ISSUED_COUPON = Record(
    (
        Field("code", COUPON_CODE, doc="made by the terminal: CP-<terminal>-<seq>-<rand><check> (§4)"),
        Field("series", ID),
        Field("rule", ID, doc="the coupon rule that issued it"),
        Field("valid_to", Nullable(Text(10, 10)), doc="its last day, YYYY-MM-DD (sale's local date + valid_days)"),
    )
)

EVENTS: dict[str, tuple[Field, ...]] = {
    "sale": (
        Field("receipt", ID, doc="the sale's id, also the receipt barcode"),
        Field("card", Nullable(CARD), doc="null: no card (then no points may move)"),
        Field("card_type", Nullable(Text(CARD_TYPE_CHARS_MAX, 0)), doc="the card's type before the sale"),
        Field("card_type_after", Nullable(Text(CARD_TYPE_CHARS_MAX)),
              doc="an upgrade or the level reached (§11), or null"),
        Field("subtotal", MONEY),
        Field("discount", MONEY),
        Field("total", MONEY, doc="subtotal − discount; adds to the card's cumulative"),
        Field("to_pay", MONEY, doc="total − redeemed_money"),
        Field("tenders", ListOf(TENDER, TENDERS_MAX)),
        Field("redeemed", POINTS),
        Field("redeemed_money", MONEY),
        Field("accrued", POINTS),
        Field("referral", ListOf(REFERRAL, REFERRALS_MAX)),
        Field("lines", ListOf(SALE_LINE, LINES_MAX), required=False,
              doc="the committed quote's lines in cart order (terminals before it omit it)"),
        Field("gifts", ListOf(GIFT, GIFTS_MAX), required=False, doc="gifts given (terminals before it omit it)"),
        Field("vat", ListOf(SALE_VAT, LINES_MAX), required=False, doc="VAT per rate (spec §17)"),
        Field("coupons", ListOf(USED_COUPON, COUPONS_MAX), required=False,
              doc="the presented coupons the sale used (spec §13; unused ones are not listed)"),
        Field("issued_coupons", ListOf(ISSUED_COUPON, ISSUED_COUPONS_MAX), required=False,
              doc="the codes the sale issued, printed on its receipt"),
    ),
    "return": (
        Field("return", ID, doc="the return's id"),
        Field("receipt", ID, doc="the sale returned against"),
        Field("card", Nullable(CARD)),
        Field("card_type", Nullable(Text(CARD_TYPE_CHARS_MAX, 0))),
        Field("money", MONEY, doc="refunded money"),
        Field("redeem_amount", MONEY, doc="money that had been paid with points"),
        Field("cumulative_decrease", MONEY),
        Field("restored", POINTS, doc="redeemed points given back"),
        Field("annulled", POINTS, doc="accrued points taken back"),
        Field("clawed", POINTS, doc="accrued points already spent, taken from other lots"),
        Field("debt", POINTS, doc="what could not be taken: booked as debt"),
        Field("referral", ListOf(REFERRAL_BACK, REFERRALS_MAX), required=False,
              doc="the sale's referral credits taken back, in proportion to the money returned"),
        Field("tenders", ListOf(REFUND_TENDER, TENDERS_MAX), required=False, doc="where the money went back"),
        Field("vat", ListOf(RETURN_VAT, LINES_MAX), required=False, doc="VAT per rate of the money back"),
        Field("lines", ListOf(RETURN_LINE, LINES_MAX), required=False,
              doc="what each returned line gave back (a later return at another terminal counts it)"),
        Field("card_type_after", Nullable(Text(CARD_TYPE_CHARS_MAX)), required=False,
              doc="the lower level the return set (spec §11 level_downgrade), or null"),
        Field("coupons_restored", ListOf(COUPON_CODE, COUPONS_MAX), required=False,
              doc="the return emptied the receipt: its spent single-use codes are unspent again"),
        Field("coupons_voided", ListOf(COUPON_CODE, ISSUED_COUPONS_MAX), required=False,
              doc="the return emptied the receipt: the codes it issued, still unspent, are void"),
    ),
    "expiry": (
        Field("card", CARD),
        Field("points", POINTS, doc="expired points (the lots are in `lots`)"),
    ),
    "adjustment": (
        Field("card", CARD),
        Field("points", Int(-ADJUST_POINTS_MAX, ADJUST_POINTS_MAX, "points"), doc="never 0"),
        Field("reason", Text(TEXT_CHARS_MAX)),
        Field("technician", Text(64)),
    ),
    "hold": (
        Field("card", CARD),
        Field("checkout", ID),
        Field("points", POINTS),
        Field("expires_at", Time()),
    ),
    "hold_void": (
        Field("card", CARD),
        Field("checkout", ID),
        Field("points", POINTS),
    ),
    "import": (
        Field("what", Text(16, choices=("cards", "catalog"))),
        Field("rows", COUNT, doc="rows imported"),
    ),
    "update_applied": (
        Field("batch", Text(128), doc="the update batch id (`central-<cursor>-<digest>`)"),
        Field("products", COUNT),
        Field("cards_applied", COUNT),
        Field("cards_stale", COUNT),
        Field("refused_count", COUNT, required=False, doc="items of the page refused alone (`update_refused`)"),
    ),
    "update_refused": (
        Field("batch", Text(128), doc="the update batch id"),
        Field("item", Text(300), doc="card | product | balance | version | rules"),
        Field("key", Text(300, 0), doc="the item's card number, sku or name"),
        Field("reason", Text(300, 0), doc="why the terminal could not apply it"),
    ),
    "cash_in": CASH_MOVE,
    "cash_out": CASH_MOVE,
    "attendant_action": (
        Field("attendant", Text(64), doc="the attendant's name"),
        Field("role", Text(32), doc="the attendant's role"),
        Field("action", Text(32, choices=ATTENDANT_ACTIONS)),
        Field("detail", MapOf(Text(32), Scalar(AMOUNT_MAX, TEXT_CHARS_MAX), DETAIL_FIELDS_MAX, "name"),
              doc="what the action was about (receipt, line, shift, amount, …)"),
    ),
    "card_registered": (
        Field("card", CARD),
        Field("card_type", Text(CARD_TYPE_CHARS_MAX)),
        Field("phone", Text(15, 10), doc="digits only: the registration (personal data, never logged)"),
        Field("phone_masked", Text(32)),
        Field("consent", Record((Field("terms_version", Text(TEXT_CHARS_MAX)),
                                 Field("terms_sha256", Text(64, 64)), Field("at", Time()))),
              doc="the program's terms the customer accepted, and when"),
        Field("store", Text(32)),
    ),
    "shift_close": (
        Field("closed_shift", Int(1, COUNT_MAX, "count")),
        Field("totals", MapOf(Text(32), Int(0, COUNT_MAX, "count or minor units"), TOTALS_MAX, "name"),
              doc="the Z report's totals by name"),
    ),
}

# Sales and returns that move points must name their card (central counts cumulative by it).
CARD_FOR_POINTS = {"sale": ("redeemed", "accrued"), "return": ("restored", "annulled", "clawed", "debt")}


def _compile_event(kind: str, fields: tuple[Field, ...]) -> Checker:
    record = Record(COMMON + fields).compile(skip=frozenset({"at"}))
    points_fields = CARD_FOR_POINTS.get(kind, ())
    sale = kind == "sale"

    def check(event: Any) -> None:
        record(event)
        at_ms = iso_ms(event["at"])
        if at_ms is None:
            raise Invalid("at", f"must be an ISO-8601 time with offset within {TIME_MIN_ISO}..{TIME_MAX_ISO}, "
                                f"got {event['at']!r:.70}")
        if at_ms != event["at_ms"]:
            raise Invalid("at_ms", f"{event['at_ms']} is not `at` {event['at']!r:.64} ({at_ms})")
        moved = points_fields and (event["deltas"] or any(event[name] for name in points_fields))
        if moved and event["card"] is None:
            raise Invalid("card", f"a {kind} that moves points must name its card")
        if sale and "lines" in event and sum(line["paid"] for line in event["lines"]) != event["to_pay"]:
            raise Invalid("lines", f"the lines' paid amounts do not add up to to_pay {event['to_pay']}")

    return check


CHECKERS: dict[str, Checker] = {kind: _compile_event(kind, fields) for kind, fields in EVENTS.items()}


def check_event(event: Any) -> None:
    """Raise `Invalid` naming the field when `event` (a decoded map) breaks its type's schema."""
    kind = event.get("type") if type(event) is dict else None
    checker = CHECKERS.get(kind) if type(kind) is str else None
    if checker is None:
        raise Invalid("type", f"unknown event type {kind!r:.40}; known: {', '.join(EVENTS)}")
    checker(event)


def field_rows(kind: str) -> list[tuple[str, str, str, str, str, str]]:
    """(field, type, unit, range, required, meaning) of an event type (`"*"`: the fields common
    to every type), nested records' fields as `lines[].sku` — what docs/protocol.md's tables list."""
    rows = []
    for f in COMMON if kind == "*" else EVENTS[kind]:
        rows.extend(_rows(f.name, f))
    return rows


def _rows(path: str, f: Field) -> list[tuple[str, str, str, str, str, str]]:
    kind, unit, rng = f.spec.doc()
    out = [(path, kind, unit, rng, "yes" if f.required else "no", f.doc)]
    inner = f.spec
    while isinstance(inner, (ListOf, MapOf, Nullable)):
        inner = inner.item if isinstance(inner, ListOf) else inner.value if isinstance(inner, MapOf) else inner.inner
        suffix = "[]"
        if isinstance(inner, Record):
            for sub in inner.fields:
                out.extend(_rows(f"{path}{suffix}.{sub.name}", sub))
            break
    return out


# ---------------------------------------------------------------- catalog items (central → terminal)


@dataclass(frozen=True)
class Key:
    """A ledger text key: 1..64 UTF-8 bytes, no NUL (`terminal.ledger.keys.text`)."""

    def doc(self) -> tuple[str, str, str]:
        return "str", "UTF-8 bytes", f"1..{KEY_BYTES_MAX}, no NUL"

    def compile(self) -> Checker:
        def check(v: Any) -> None:
            if type(v) is not str or not v or "\x00" in v or len(v.encode("utf-8", "replace")) > KEY_BYTES_MAX:
                raise _fail(f"must be 1..{KEY_BYTES_MAX} UTF-8 bytes without NUL, got {v!r:.70}")

        return check


KEY_BYTES_MAX = 64
PRODUCT_PRICE_MAX = 10**11
PRODUCT = Record(
    (
        Field("sku", Key()),
        Field("barcodes", ListOf(Key(), 16), required=False),
        Field("name", Text(TEXT_CHARS_MAX)),
        Field("price", Int(0, PRODUCT_PRICE_MAX, "minor units")),
        Field("categories", ListOf(Text(128), 16), required=False),
        Field("no_discount", Bool(), required=False),
        Field("no_bonus", Bool(), required=False),
        Field("min_price", Int(0, PRODUCT_PRICE_MAX, "minor units"), required=False, doc="≤ price"),
        Field("vat", Text(6), required=False, doc="VAT rate in percent, ≤ 2 decimals (\"20\", \"7.5\")"),
    )
)
DELETED_PRODUCT = Record((Field("sku", Key()), Field("deleted", Bool())))
_check_product = PRODUCT.compile()
_check_deleted = DELETED_PRODUCT.compile()


def check_product(item: Any) -> None:
    """A catalog entry of the feed as a terminal's ledger accepts it (`terminal.ledger.catalog.
    check_product`): a product, or `{"sku", "deleted": true}`. Raises `Invalid`."""
    if type(item) is dict and item.get("deleted"):
        _check_deleted(item)
        return
    _check_product(item)
    if item.get("min_price", 0) > item["price"]:
        raise Invalid("min_price", f"{item['min_price']} is above price {item['price']}")


def doc_markdown() -> str:
    """The event tables of docs/protocol.md §3.1 (`python -m protocol.schemas` prints them)."""
    out = []
    for kind in ("*", *EVENTS):
        title = "every event (these fields, then its type's)" if kind == "*" else f"event `{kind}`"
        out += [f"#### {title}", "", "| field | type | unit | range | required | meaning |", "|" + "---|" * 6]
        out += [f"| `{row[0]}` | " + " | ".join(row[1:]) + " |" for row in field_rows(kind)]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(doc_markdown())
