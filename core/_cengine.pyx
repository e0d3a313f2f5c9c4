# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=False, overflowcheck=True
"""The compiled pricing engine: same API and results as `core.fallback`, built for speed.

The Program is converted once into C arrays (rules, groups, tiers, scope-index buckets). A quote
reads the cart into C structs, pairs lines with the rules of their scope through the index
(never lines × rules), and runs the group tree over dense per-line arrays. Python objects are
touched only at the edges: reading the cart, rule conditions that test sets of strings, and
building the result.

Inputs of an unusual shape (a Decimal quantity, a wrong type) are handed to the reference reader
in `core.inputs`, so both engines accept and refuse exactly the same carts with the same message.
All products go through 128-bit helpers (`_muldiv.h`); nothing can overflow within the limits.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF
from cpython.tuple cimport PyTuple_GET_ITEM
from libc.stdint cimport int64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy, memset

import datetime as _dt

cimport cython

from core import inputs as _inputs
from core.fallback import category_matches as _category_matches
from core.refund import compute_refund as _compute_refund
from core.vat import vat_summary as _vat_summary

IMPLEMENTATION = "compiled"

cdef extern from "_muldiv.h":
    int64_t pm_muldiv_floor(int64_t a, int64_t b, int64_t c) nogil
    int64_t pm_muldiv_half_up(int64_t a, int64_t b, int64_t c) nogil
    int64_t pm_muldivmod(int64_t a, int64_t b, int64_t c, int64_t *rem) nogil
    int pm_parse_iso(const char *s, long n, int64_t *epoch_us) nogil
    int pm_parse_iso_parts(const char *s, long n, int64_t *epoch_us, int64_t *local_days,
                           int64_t *local_minute) nogil
    int64_t pm_mul_clamp(int64_t a, int64_t b, int64_t limit) nogil
    int64_t pm_muldiv_floor_clamp(int64_t a, int64_t b, int64_t c, int64_t limit) nogil

cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object text, Py_ssize_t *size) except NULL
    int PyUnicode_Compare(object left, object right) noexcept  # both are str here: cannot fail
    long long PyLong_AsLongLongAndOverflow(object value, int *overflow) except? -1
    bint PyUnicode_IS_ASCII(object text) noexcept  # a str here: the macro reads its header
    object PyUnicode_DecodeASCII(const char *data, Py_ssize_t size, const char *errors)

cdef enum:
    K_DISCOUNT = 0
    K_ACCRUAL = 1
    K_MESSAGE = 2
    K_GIFT = 3
    K_REFERRAL = 4
    K_COUPON = 5

cdef enum:
    V_PERCENT = 0
    V_AMOUNT = 1
    V_PRICE = 2
    V_TIERS = 3
    V_PER = 4
    V_POINTS = 5
    V_BUY = 6

cdef enum:
    C_PRIORITY = 0
    C_MAX = 1
    C_MIN = 2
    C_SUM = 3
    C_MULTIPLY = 4

cdef int64_t BP_PER_UNIT = 10000
cdef int64_t MILLI = 1000
cdef int64_t PRICE_MAX = 10 ** 11
cdef int64_t QTY_UNITS_MAX = 10 ** 6
cdef int64_t AMOUNT_MAX = 10 ** 15
cdef int64_t POINTS_MAX = 10 ** 15  # core.inputs.POINTS_MAX: no receipt earns or holds more
cdef Py_ssize_t COUPONS_MAX = _inputs.COUPONS_MAX
cdef Py_ssize_t CATEGORY_CACHE_MAX = 65536  # distinct category strings remembered per engine
cdef int64_t LOT_POINTS_FAST_MAX = 10 ** 14  # Σ of ≤ 10 000 such lots fits in 64 bits
cdef object _MISSING = object()
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
_ONE_US = _dt.timedelta(microseconds=1)

_KINDS = {"discount": K_DISCOUNT, "accrual": K_ACCRUAL, "message": K_MESSAGE, "gift": K_GIFT,
          "referral": K_REFERRAL, "coupon": K_COUPON}
_VALUES = {"percent": V_PERCENT, "amount": V_AMOUNT, "price": V_PRICE, "tiers": V_TIERS,
           "per": V_PER, "points": V_POINTS, "buy": V_BUY, "": V_PERCENT}
_COMBINE = {"priority": C_PRIORITY, "max": C_MAX, "min": C_MIN, "sum": C_SUM, "multiply": C_MULTIPLY}


cdef struct RuleC:
    int kind
    int value
    int group
    int tier_start
    int tier_count
    bint tier_cumulative
    bint has_exclusions
    int card_cond
    bint has_card_types
    bint has_stores
    int weekdays_mask
    int time_from
    int time_to
    int activation_days
    int expiry_days
    int64_t bp
    int64_t amount
    int64_t per_points
    int64_t max_points
    int64_t date_from
    int64_t date_to
    int64_t receipt_min
    int64_t qty_min
    # v2 (§12–§14)
    int birthday_before   # −1: no birthday condition
    int birthday_after
    int64_t card_age_min  # −1: no card-age condition
    int64_t card_age_max
    bint has_tags
    bint has_exclude_tags
    int coupon            # series a presented coupon must be of, −1: none
    int coupon_issue      # a coupon rule: the series it issues
    int64_t buy_qty
    int64_t buy_free
    int card_types_set    # the rule's condition sets in Engine.cond_sets, −1: none
    int stores_set
    int tags_set
    int exclude_tags_set


cdef struct GroupC:
    int combine
    int member_start
    int member_count
    int64_t cap_bp
    int64_t cap_amount    # −1: no cap over the receipt


cdef struct LineC:
    int64_t price
    int64_t qty_milli
    int64_t amount
    int64_t min_price
    int64_t vat_bp        # VAT rate in basis points, −1 outside VAT
    bint no_discount
    bint no_bonus
    bint redeemable


cdef struct Remainder:
    int64_t rem
    int position


cdef struct Unit:
    int64_t price         # a line's unit price in a `buy` pool
    int position          # the line (cart order breaks ties)
    int64_t units


cdef struct Pair:
    int rule
    int line


cdef struct Work:
    # one quote's scratch space; every array is sized before use and freed by _free_work
    int n_lines
    char *block           # the per-line and per-rule arrays below, carved from one allocation
    LineC *lines
    int *rule_count       # scope lines per rule
    int *rule_start       # offset of a rule's lines in csr_lines
    int *rule_stamp       # last line + 1 that paired with the rule (dedupe)
    char *holds           # conditions hold (only meaningful where rule_count > 0)
    int64_t *scope_amount
    Pair *pairs           # (rule, line) as the scope index pairs them, line by line
    int n_pairs
    int cap_pairs
    int *csr_lines
    int *node_rule        # attribution lists: which rules gave a line its discount
    int *node_next
    int n_nodes
    int64_t *discount     # per line, from here on
    int64_t *after        # amount − discount
    int64_t *redeemed     # money paid with points
    int64_t *paid
    int *heads            # attribution list of the line's final discount
    int *tails
    char *earning         # the line can earn points (its paid money is the clawback basis)
    int64_t cumulative    # the card's cumulative before the receipt (0 without a card)
    char *presented       # per coupon series: a coupon of it is in the cart
    char *contributed     # per rule: its accrual points count after combining (marked on demand)
    char *set_memo        # per condition set: 0 not tested yet, 1 fails, 2 holds


# ------------------------------------------------------------------ arithmetic helpers


cdef inline int64_t div_floor(int64_t a, int64_t b) except? -1:
    return pm_muldiv_floor(a, 1, b)


cdef inline int64_t div_round_half_up(int64_t a, int64_t b) except? -1:
    return pm_muldiv_half_up(a, 1, b)


cdef inline int64_t percent_of(int64_t base, int64_t bp) noexcept:
    return pm_muldiv_half_up(base, bp, BP_PER_UNIT)


cdef inline int64_t price_times_qty(int64_t price, int64_t qty_milli) noexcept:
    return pm_muldiv_half_up(price, qty_milli, MILLI)


def _div_floor(int64_t a, int64_t b):
    """Exposed for tests: must equal core.arith.div_floor, negative amounts included."""
    if b <= 0:
        raise ValueError("divisor must be positive")
    return div_floor(a, b)


def _div_round_half_up(int64_t a, int64_t b):
    """Exposed for tests: must equal core.arith.div_round_half_up, negative amounts included."""
    if b <= 0:
        raise ValueError("divisor must be positive")
    return div_round_half_up(a, b)


cdef int _by_unit_price(const void *a, const void *b) noexcept nogil:
    cdef const Unit *x = <const Unit *>a
    cdef const Unit *y = <const Unit *>b
    if x.price != y.price:
        return -1 if x.price < y.price else 1
    return x.position - y.position


cdef int _by_remainder(const void *a, const void *b) noexcept nogil:
    cdef const Remainder *x = <const Remainder *>a
    cdef const Remainder *y = <const Remainder *>b
    if x.rem != y.rem:
        return -1 if x.rem > y.rem else 1
    return x.position - y.position


cdef tuple _EMPTY = ()


cdef inline void _set_item(list items, Py_ssize_t i, object value) noexcept:
    """Fill slot i of a list made by PyList_New (its slots start empty)."""
    Py_INCREF(value)
    PyList_SET_ITEM(items, i, value)


cdef inline void _sort_small(Remainder *order, int count) noexcept:
    """Insertion sort in `_by_remainder` order (a total order: positions are unique)."""
    cdef int i, j
    cdef Remainder item
    for i in range(1, count):
        item = order[i]
        j = i - 1
        while j >= 0 and _by_remainder(&item, &order[j]) < 0:
            order[j + 1] = order[j]
            j -= 1
        order[j + 1] = item


cdef enum:
    PRESENTED = 1     # w.presented flags per coupon series
    SERIES_USED = 2
    SERIES_SHOWN = 4  # a code of the series is already in the quote's coupons


cdef bint _seen_code(list pairs, object code) except -1:
    for pair in pairs:
        if (<tuple>pair)[0] == code:
            return True
    return False


cdef list _read_coupons(dict cart):
    """The cart's coupons as (code, series) pairs: canonical ones read here, anything else by the
    reference reader (which refuses it in its words)."""
    raw = cart["coupons"]
    if type(raw) is list and len(<list>raw) <= COUPONS_MAX:
        out = []
        for item in <list>raw:
            if type(item) is not dict or len(<dict>item) != 2:
                break
            code, series = (<dict>item).get("code"), (<dict>item).get("series")
            if (type(code) is not str or not 0 < len(<str>code) <= 64 or type(series) is not str
                    or not 0 < len(<str>series) <= 64 or _seen_code(out, code)):
                break
            out.append((code, series))
        else:
            return out
    return [(c.code, c.series) for c in _inputs.read_cart_coupons(cart)]


cdef enum:
    VAT_RATES_FAST = 8  # distinct VAT rates a quote sums in C (more go through core.vat)


cdef void _sort_rates(int64_t *rates, int64_t *paid, int64_t *vat, int count) noexcept:
    """Insertion sort of the (rate, paid, VAT) columns by rate, ascending (rates are distinct)."""
    cdef int i, j
    cdef int64_t r, p, v
    for i in range(1, count):
        r, p, v = rates[i], paid[i], vat[i]
        j = i - 1
        while j >= 0 and rates[j] > r:
            rates[j + 1], paid[j + 1], vat[j + 1] = rates[j], paid[j], vat[j]
            j -= 1
        rates[j + 1], paid[j + 1], vat[j + 1] = r, p, v


cdef int split_into(int64_t amount, int64_t *bases, int64_t *parts, int count) except -1:
    """Largest-remainder split of 0 ≤ amount ≤ Σ bases (Σ bases > 0); see core.arith."""
    cdef int64_t total = 0, given = 0, rem
    cdef int i
    cdef Remainder *order
    for i in range(count):
        total += bases[i]
    order = <Remainder *>PyMem_Malloc(count * sizeof(Remainder) + 1)
    if order == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            parts[i] = pm_muldivmod(amount, bases[i], total, &rem)
            given += parts[i]
            order[i].rem = rem
            order[i].position = i
        if amount > given:
            if count <= 32:  # a receipt's lines: insertion sort beats qsort's calls
                _sort_small(order, count)
            else:
                qsort(order, count, sizeof(Remainder), _by_remainder)
            for i in range(amount - given):
                parts[order[i].position] += 1
    finally:
        PyMem_Free(order)
    return 0


cdef inline bint _small_int(object value, int64_t lo, int64_t hi, int64_t *out) except -1:
    """An exact int (not bool) within [lo, hi], converted without risk of C overflow."""
    cdef int overflow = 0
    cdef long long v
    if type(value) is not int:
        return False
    v = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow or v < lo or v > hi:
        return False
    out[0] = v
    return True


cdef inline bint _iso_us(object text, int64_t *out) except -1:
    """Microseconds since the epoch of a canonical ISO-8601 string; False for anything else."""
    cdef Py_ssize_t size
    cdef const char *data
    if type(text) is not str or not PyUnicode_IS_ASCII(text):  # canonical ISO is ASCII; a lone surrogate
        return False                                  # would not even encode: the reference refuses it
    data = PyUnicode_AsUTF8AndSize(text, &size)
    return pm_parse_iso(data, size, out) == 0


cdef void *_alloc(Py_ssize_t count, size_t size) except NULL:
    cdef void *p = PyMem_Malloc(count * size + 8)
    if p == NULL:
        raise MemoryError()
    memset(p, 0, count * size + 8)
    return p


cdef inline size_t _span(Py_ssize_t count, size_t size) noexcept:
    """Bytes of an array carved from a block, rounded up to keep the next one 8-byte aligned."""
    return (count * size + 7) & ~(<size_t>7)


cdef inline void *_carve(char **cursor, Py_ssize_t count, size_t size) noexcept:
    cdef void *p = cursor[0]
    cursor[0] += _span(count, size)
    return p


cdef void _free_work(Work *w) noexcept:
    PyMem_Free(w.block)
    PyMem_Free(w.pairs)
    PyMem_Free(w.csr_lines)
    PyMem_Free(w.node_rule)
    PyMem_Free(w.node_next)
    PyMem_Free(w.presented)
    PyMem_Free(w.contributed)


cdef int _add_pair(Work *w, int rule, int line) except -1:
    cdef Pair *grown
    if w.n_pairs == w.cap_pairs:
        w.cap_pairs = w.cap_pairs * 2 + 8 * w.n_lines + 64
        grown = <Pair *>PyMem_Realloc(w.pairs, w.cap_pairs * sizeof(Pair))
        if grown == NULL:
            raise MemoryError()
        w.pairs = grown
    w.pairs[w.n_pairs].rule = rule
    w.pairs[w.n_pairs].line = line
    w.n_pairs += 1
    return 0


cdef enum:
    F_OTHER = 0
    F_SKU = 1
    F_PRICE = 2
    F_QTY = 3
    F_CATEGORIES = 4
    F_NO_DISCOUNT = 5
    F_NO_BONUS = 6
    F_MIN_PRICE = 7
    F_NAME = 8
    F_VAT = 9
    F_NUMBER = 10
    F_TYPE = 11
    F_CUMULATIVE = 12
    F_LOTS = 13
    F_REFERRERS = 14
    F_HOLDER = 15
    F_BIRTH_DATE = 16
    F_ISSUED_ON = 17
    F_TAGS = 18
    F_POINTS = 19
    F_AVAILABLE_FROM = 20
    F_EXPIRES_AT = 21

# Field names of cart lines, cards and lots. Keys written in Python source are these very
# objects (interned), so identity usually decides; JSON-decoded keys fall back to equality.
cdef tuple _FIELD_NAMES = (
    "", "sku", "price", "qty", "categories", "no_discount", "no_bonus", "min_price", "name", "vat",
    "number", "type", "cumulative", "lots", "referrers", "holder", "birth_date", "issued_on", "tags",
    "points", "available_from", "expires_at")


cdef object _ONE_UNIT = 1000  # qty_milli of one unit, the usual quantity


cdef inline int _field_in(object key, int first, int last) noexcept:
    """The code of `key` among the field names first..last, or F_OTHER."""
    cdef int f
    for f in range(first, last + 1):
        if key is <object>PyTuple_GET_ITEM(_FIELD_NAMES, f):
            return f
    if type(key) is not str:
        return F_OTHER
    for f in range(first, last + 1):
        if PyUnicode_Compare(key, <object>PyTuple_GET_ITEM(_FIELD_NAMES, f)) == 0:
            return f
    return F_OTHER


cdef bint _fields(object d, int first, int last, PyObject **out) noexcept:
    """One walk over an exact dict's own keys (a lookup per known field would cost more): out[i]
    is the borrowed value of field first + i, NULL when absent. False for anything but a dict, or
    a key outside first..last — the reference reader then decides."""
    cdef Py_ssize_t pos = 0
    cdef PyObject *key
    cdef PyObject *value
    cdef int field = first - 1
    memset(out, 0, (last - first + 1) * sizeof(PyObject *))
    if type(d) is not dict:
        return False
    while PyDict_Next(d, &pos, &key, &value):
        # dicts written in the fields' order (most are) match the next name at the first try
        if field + 1 <= last and <object>key is <object>PyTuple_GET_ITEM(_FIELD_NAMES, field + 1):
            field += 1
        else:
            field = _field_in(<object>key, first, last)
        if field == F_OTHER:
            return False
        out[field - first] = value
    return True


cdef inline object _got(PyObject *value):
    return _MISSING if value == NULL else <object>value


# The reference readers' limits, read once (a module attribute lookup per quote adds up).
cdef Py_ssize_t LINES_MAX = _inputs.LINES_MAX
cdef Py_ssize_t LOTS_MAX = _inputs.LOTS_MAX
cdef Py_ssize_t REFERRERS_MAX = _inputs.REFERRERS_MAX
cdef int64_t REDEEM_ALL = _inputs.REDEEM_ALL
cdef int64_t ORDINAL_1970 = 719163  # date(1970, 1, 1).toordinal()
cdef Py_ssize_t TAGS_MAX = _inputs.TAGS_MAX
cdef int64_t NO_BIRTHDAY = _inputs.NO_BIRTHDAY


@cython.freelist(8)
cdef class CardIn:
    """The card as a quote sees it: `core.inputs.Card`'s fields, readable from C."""
    cdef readonly str number
    cdef readonly str type
    cdef readonly int64_t cumulative
    cdef readonly int64_t available
    cdef readonly tuple referrers
    cdef readonly int birth_month  # 0: unknown
    cdef readonly int birth_day
    cdef readonly int64_t issued_on  # ordinal, −1: unknown
    cdef readonly tuple tags
    cdef int64_t birthday[3]  # today − the birthday of the previous, current and next year


cdef CardIn _card_in(str number, str card_type, int64_t cumulative, int64_t available,
                     tuple referrers):
    cdef CardIn card = CardIn.__new__(CardIn)
    card.number = number
    card.type = card_type
    card.cumulative = cumulative
    card.available = available
    card.referrers = referrers
    card.issued_on = -1
    card.tags = _EMPTY
    return card


cdef inline bint _leap(int64_t y) noexcept:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


cdef inline int _month_days(int64_t y, int m) noexcept:
    if m == 2:
        return 29 if _leap(y) else 28
    return 30 if m == 4 or m == 6 or m == 9 or m == 11 else 31


cdef int64_t _days_from_civil(int64_t y, int m, int d) noexcept:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    cdef int64_t era, yoe, doy, doe
    if m <= 2:
        y -= 1
    era = y // 400  # floor division (cdivision off): right for years before 0 too
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


cdef void _civil_from_days(int64_t days, int64_t *year, int64_t *month, int64_t *day) noexcept:
    """The proleptic Gregorian date of a day counted from 1970-01-01 (inverse of _days_from_civil)."""
    cdef int64_t z = days + 719468, era, doe, yoe, doy, mp
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day[0] = doy - (153 * mp + 2) // 5 + 1
    month[0] = mp + 3 if mp < 10 else mp - 9
    year[0] = yoe + era * 400 + (1 if mp >= 10 else 0)


cdef int64_t _year_of(int64_t days) noexcept:
    """The year of a day counted from 1970-01-01."""
    cdef int64_t year, month, day
    _civil_from_days(days, &year, &month, &day)
    return year


cdef int _birthday_offsets(int month, int day, int64_t today, int64_t *out) except -1:
    """core.inputs.birthday_offsets in C: today − the birthday of the previous, current, next year."""
    cdef int64_t year = _year_of(today - ORDINAL_1970), y
    cdef int k, d
    for k in range(3):
        y = year - 1 + k
        if y < 1 or y > 9999:
            out[k] = NO_BIRTHDAY
            continue
        d = 28 if month == 2 and day == 29 and not _leap(y) else day
        out[k] = today - (_days_from_civil(y, month, d) + ORDINAL_1970)
    return 0


cdef inline int _digits(const char *s, int n) noexcept:
    """The number written by n ASCII digits, −1 if any is not a digit."""
    cdef int i, v = 0
    for i in range(n):
        if s[i] < 48 or s[i] > 57:
            return -1
        v = v * 10 + (s[i] - 48)
    return v


cdef bint _iso_date(object text, int *y, int *m, int *d) except -1:
    """A valid YYYY-MM-DD (year ≥ 1) read in C; False for anything else."""
    cdef Py_ssize_t size
    cdef const char *s
    if type(text) is not str:
        return False
    s = PyUnicode_AsUTF8AndSize(text, &size)
    if size != 10 or s[4] != 45 or s[7] != 45:
        return False
    y[0], m[0], d[0] = _digits(s, 4), _digits(s + 5, 2), _digits(s + 8, 2)
    return y[0] >= 1 and 1 <= m[0] <= 12 and 1 <= d[0] <= _month_days(y[0], m[0])


cdef bint _birth_date(object text, int *month, int *day) except -1:
    """A valid YYYY-MM-DD or --MM-DD (29 February allowed) read in C; False for anything else."""
    cdef Py_ssize_t size
    cdef const char *s
    cdef int y
    if type(text) is not str:
        return False
    if len(<str>text) == 10:
        return _iso_date(text, &y, month, day)
    s = PyUnicode_AsUTF8AndSize(text, &size)
    if size != 7 or s[0] != 45 or s[1] != 45 or s[4] != 45:
        return False
    month[0], day[0] = _digits(s + 2, 2), _digits(s + 5, 2)
    return 1 <= month[0] <= 12 and 1 <= day[0] <= _month_days(2000, month[0])


cdef bint _plain_tags(object tags) except -1:
    if type(tags) is not list or len(<list>tags) > TAGS_MAX:
        return False
    for t in <list>tags:
        if type(t) is not str or not 0 < len(<str>t) <= 64:
            return False
    return True


cdef int _card_customer(CardIn card, int month, int day, int64_t issued_on, tuple tags,
                        int64_t today) except -1:
    """§12: the card's birthday (as offsets from today), issue date and tags."""
    card.birth_month = month
    card.birth_day = day
    card.issued_on = issued_on
    card.tags = tags
    if month:
        _birthday_offsets(month, day, today, card.birthday)
    return 0


cdef bint _iso_parts(object text, int64_t *epoch_us, int64_t *local_days,
                     int64_t *local_minute) except -1:
    """A canonical ISO-8601 moment read in C; False sends it to the reference reader."""
    cdef Py_ssize_t size
    cdef const char *data
    if type(text) is not str or not PyUnicode_IS_ASCII(text):  # canonical ISO is ASCII; a lone surrogate
        return False                                  # would not even encode: the reference refuses it
    data = PyUnicode_AsUTF8AndSize(text, &size)
    return pm_parse_iso_parts(data, size, epoch_us, local_days, local_minute) == 0


cdef inline int _isoweekday(int64_t days_since_1970) noexcept:
    return <int>(((days_since_1970 % 7) + 7 + 3) % 7) + 1  # 1970-01-01 was a Thursday (4)


cdef inline void _put_digits(char *out, int64_t value, int width) noexcept:
    cdef int i
    for i in range(width - 1, -1, -1):
        out[i] = <char>(48 + value % 10)
        value //= 10


cdef object _iso_days_later(str now, int64_t local_days, int64_t days):
    """`now` (canonical: it passed _iso_parts) `days` days later, as datetime.isoformat writes it
    (core.inputs.lot_dates: same wall-clock time, same fixed offset); None past year 9999, where
    the reference reader refuses it."""
    cdef Py_ssize_t size, n = 19, z
    cdef const char *s = PyUnicode_AsUTF8AndSize(now, &size)
    cdef char out[32]
    cdef int64_t year, month, day
    _civil_from_days(local_days + days, &year, &month, &day)
    if year > 9999:
        return None
    z = 19 if size == 25 else 26
    _put_digits(out, year, 4)
    out[4] = 45
    _put_digits(out + 5, month, 2)
    out[7] = 45
    _put_digits(out + 8, day, 2)
    memcpy(out + 10, s + 10, 9)  # "THH:MM:SS"
    if size == 32 and memcmp(s + 20, b"000000", 6) != 0:  # isoformat drops zero microseconds
        memcpy(out + 19, s + 19, 7)
        n = 26
    if memcmp(s + z + 1, b"00:00", 5) == 0:  # "-00:00" is UTC, written "+00:00"
        memcpy(out + n, b"+00:00", 6)
    else:
        memcpy(out + n, s + z, 6)
    return PyUnicode_DecodeASCII(out, n + 6, NULL)


cdef object _moment(object moment, object now):
    """The quote's moment as a datetime; `now` already passed the canonical C reader."""
    return moment if moment is not None else _inputs.read_moment(now, "now")


cdef int64_t _read_redeem(object redeem) except? -2:
    cdef int64_t points
    if redeem is None:
        return 0
    if type(redeem) is str and redeem == "max":
        return REDEEM_ALL
    if _small_int(redeem, 0, POINTS_MAX, &points):
        return points
    return _inputs.read_redeem(redeem)  # refuses it, in the reference's words


cdef enum:
    SET_MEMBER = 0  # the card type or store is in the set
    SET_TAGS = 1    # the card's tags are disjoint from the set


cdef int _intern_set(dict interned, list sets, str test, object members) except -2:
    """The index of (test, members) among the distinct condition sets, −1 for no condition."""
    if members is None:
        return -1
    key = (test, members)
    index = interned.get(key)
    if index is None:
        index = interned[key] = len(sets)
        sets.append(members)
    return index


cdef class CategoryEntry:
    """What a line category means to one engine: the index buckets of its prefixes, and whether
    points may pay for it. Memoised per distinct category string."""
    cdef int *buckets
    cdef int count
    cdef bint redeemable

    def __cinit__(self):
        self.buckets = NULL

    def __dealloc__(self):
        PyMem_Free(self.buckets)


cdef class Engine:
    """Prices carts under one compiled Program. Stateless between calls but for a bounded
    memo of category strings → index buckets, which never changes a result."""

    cdef readonly object program
    cdef readonly str implementation
    cdef int n_rules
    cdef int n_groups
    cdef RuleC *rules
    cdef GroupC *groups
    cdef int *members          # ≥ 0: a rule; < 0: group −(index + 1)
    cdef int64_t *tier_threshold
    cdef int64_t *tier_bp
    cdef int *bucket_rules
    cdef int *bucket_start
    cdef int *bucket_count
    cdef int all_bucket
    cdef dict sku_buckets      # sku → bucket
    cdef dict category_buckets  # rule category → bucket
    cdef dict category_cache   # line category → CategoryEntry
    cdef list rule_ids
    cdef list rule_objects
    cdef tuple message_rules     # (id, text, upgrade_to) in file order
    cdef int *message_rule_index
    cdef tuple gift_items        # (index, id, sku, name, qty) in file order
    cdef list cond_sets          # distinct (test, frozenset) of the rules' set conditions
    cdef int *cond_tests         # SET_MEMBER or SET_TAGS per entry of cond_sets
    cdef tuple referral_rules  # by (priority, file order)
    cdef int64_t point_value
    cdef int64_t max_discount_bp
    cdef int activation_days
    cdef int expiry_days
    cdef bint has_redeem
    cdef int64_t redeem_max_bp
    cdef int64_t redeem_min_receipt
    cdef int64_t redeem_min_points
    cdef int64_t redeem_max_points       # −1: none
    cdef int64_t redeem_min_redeem_points
    cdef tuple redeem_categories
    cdef int64_t accrual_max_points      # −1: none
    cdef int n_series
    cdef dict series_ids                 # coupon series id → index
    cdef tuple coupon_rules              # issuing rules, file order
    cdef bint coupon_accruals            # some accrual rule needs a coupon
    cdef int n_levels
    cdef tuple level_types               # §11 level types, in rank order
    cdef int64_t *level_min              # their cumulative_min

    def __cinit__(self):
        self.rules = NULL
        self.groups = NULL
        self.members = NULL
        self.tier_threshold = NULL
        self.tier_bp = NULL
        self.bucket_rules = NULL
        self.bucket_start = NULL
        self.bucket_count = NULL
        self.message_rule_index = NULL
        self.level_min = NULL
        self.cond_tests = NULL

    def __dealloc__(self):
        PyMem_Free(self.rules)
        PyMem_Free(self.groups)
        PyMem_Free(self.members)
        PyMem_Free(self.tier_threshold)
        PyMem_Free(self.tier_bp)
        PyMem_Free(self.bucket_rules)
        PyMem_Free(self.bucket_start)
        PyMem_Free(self.bucket_count)
        PyMem_Free(self.message_rule_index)
        PyMem_Free(self.level_min)
        PyMem_Free(self.cond_tests)

    def __init__(self, program):
        cdef int i
        self.program = program
        self.implementation = IMPLEMENTATION
        self.point_value = program.point_value
        self.max_discount_bp = program.max_discount_bp
        self.activation_days = program.activation_days
        self.expiry_days = program.expiry_days
        redeem = program.redeem
        self.has_redeem = redeem is not None
        if redeem is not None:
            self.redeem_max_bp = redeem.max_bp
            self.redeem_min_receipt = redeem.min_receipt
            self.redeem_min_points = redeem.min_points
            self.redeem_max_points = redeem.max_points
            self.redeem_min_redeem_points = redeem.min_redeem_points
            self.redeem_categories = redeem.categories
        else:
            self.redeem_categories = ()
        self.accrual_max_points = program.accrual_max_points
        self.n_series = len(program.coupon_series)
        self.series_ids = program.series_ids
        self.n_levels = len(program.levels)
        self.level_types = tuple(level.type for level in program.levels)
        self.level_min = <int64_t *>_alloc(self.n_levels, sizeof(int64_t))
        for i, level in enumerate(program.levels):
            self.level_min[i] = level.cumulative_min
        self._load_rules(program)
        self._load_groups(program)
        self._load_index(program)
        self.category_cache = {}

    cdef _load_rules(self, program):
        cdef int i, t, n_tiers = 0
        cdef RuleC *c
        rules = program.rules
        self.n_rules = len(rules)
        self.rules = <RuleC *>_alloc(self.n_rules, sizeof(RuleC))
        for rule in rules:
            n_tiers += len(rule.tiers)
        self.tier_threshold = <int64_t *>_alloc(n_tiers, sizeof(int64_t))
        self.tier_bp = <int64_t *>_alloc(n_tiers, sizeof(int64_t))
        self.rule_ids = [rule.id for rule in rules]
        self.rule_objects = list(rules)
        t = 0
        for i, rule in enumerate(rules):
            c = &self.rules[i]
            c.kind = _KINDS[rule.kind]
            c.value = _VALUES[rule.value]
            c.group = rule.group
            c.bp, c.amount, c.per_points, c.max_points = rule.bp, rule.amount, rule.per_points, rule.max_points
            c.tier_cumulative = rule.tier_basis == "cumulative"
            c.tier_start, c.tier_count = t, len(rule.tiers)
            for threshold, bp in rule.tiers:
                self.tier_threshold[t], self.tier_bp[t] = threshold, bp
                t += 1
            c.activation_days, c.expiry_days = rule.activation_days, rule.expiry_days
            scope = rule.scope
            c.has_exclusions = bool(scope.exclude_skus or scope.exclude_categories)
            when = rule.when
            c.card_cond = when.card
            c.has_card_types = when.card_types is not None
            c.has_stores = when.stores is not None
            c.weekdays_mask = when.weekdays_mask
            c.time_from, c.time_to = when.time_from_min, when.time_to_min
            c.date_from, c.date_to = when.date_from, when.date_to
            c.receipt_min, c.qty_min = when.receipt_min, when.qty_min_milli
            c.birthday_before, c.birthday_after = when.birthday_before, when.birthday_after
            c.card_age_min, c.card_age_max = when.card_age_min, when.card_age_max
            c.has_tags = when.tags is not None
            c.has_exclude_tags = when.exclude_tags is not None
            c.coupon = when.coupon
            c.coupon_issue = rule.series
            c.buy_qty, c.buy_free = rule.buy_qty, rule.buy_free
        messages = [r for r in rules if r.kind == "message"]
        self.message_rules = tuple((r.id, r.text, r.upgrade_to) for r in messages)
        self.message_rule_index = <int *>_alloc(len(messages), sizeof(int))
        for i, rule in enumerate(messages):
            self.message_rule_index[i] = rule.index
        self.gift_items = tuple((r.index, r.id, r.gift_sku, r.gift_name, r.gift_qty)
                                for r in rules if r.kind == "gift")
        interned = {}
        self.cond_sets = []
        for i, rule in enumerate(rules):
            c = &self.rules[i]
            when = rule.when
            c.card_types_set = _intern_set(interned, self.cond_sets, "card_types", when.card_types)
            c.stores_set = _intern_set(interned, self.cond_sets, "stores", when.stores)
            c.tags_set = _intern_set(interned, self.cond_sets, "tags", when.tags)
            c.exclude_tags_set = _intern_set(interned, self.cond_sets, "tags", when.exclude_tags)
        self.cond_tests = <int *>_alloc(len(self.cond_sets), sizeof(int))
        for key, index in interned.items():
            self.cond_tests[<int>index] = SET_TAGS if key[0] == "tags" else SET_MEMBER
        self.coupon_rules = tuple(r.index for r in rules if r.kind == "coupon")
        self.coupon_accruals = any(r.kind == "accrual" and r.when.coupon >= 0 for r in rules)
        self.referral_rules = tuple(
            r.index for r in sorted((r for r in rules if r.kind == "referral"),
                                    key=lambda r: (r.priority, r.index)))

    cdef _load_groups(self, program):
        cdef int i, m = 0
        groups = program.groups
        self.n_groups = len(groups)
        self.groups = <GroupC *>_alloc(self.n_groups, sizeof(GroupC))
        self.members = <int *>_alloc(sum(len(g.members) for g in groups), sizeof(int))
        for i, group in enumerate(groups):
            self.groups[i].combine = _COMBINE[group.combine]
            self.groups[i].cap_bp = group.cap_bp
            self.groups[i].cap_amount = group.cap_amount
            self.groups[i].member_start = m
            self.groups[i].member_count = len(group.members)
            for is_group, index in group.members:
                self.members[m] = -(index + 1) if is_group else index
                m += 1

    cdef _load_index(self, program):
        cdef int b = 0, k = 0
        buckets = [program.rules_for_all]
        self.category_buckets = {}
        self.sku_buckets = {}
        for category, indices in program.rules_by_category.items():
            self.category_buckets[category] = len(buckets)
            buckets.append(indices)
        for sku, indices in program.rules_by_sku.items():
            self.sku_buckets[sku] = len(buckets)
            buckets.append(indices)
        self.all_bucket = 0
        self.bucket_start = <int *>_alloc(len(buckets), sizeof(int))
        self.bucket_count = <int *>_alloc(len(buckets), sizeof(int))
        self.bucket_rules = <int *>_alloc(sum(len(x) for x in buckets), sizeof(int))
        for b, indices in enumerate(buckets):
            self.bucket_start[b] = k
            self.bucket_count[b] = len(indices)
            for index in indices:
                # the low bit says the rule has exclusions: no RuleC read while pairing
                self.bucket_rules[k] = index * 2 + (1 if self.rules[<int>index].has_exclusions else 0)
                k += 1

    # -------------------------------------------------------------- reading the cart

    cdef CategoryEntry _category_entry(self, str category):
        """The index buckets of every prefix of `category` and whether it is in the redeem scope."""
        cdef PyObject *found = PyDict_GetItem(self.category_cache, category)
        cdef CategoryEntry entry
        cdef int k
        if found != NULL:
            return <CategoryEntry>found
        buckets = []
        pos = category.find("/")
        while True:
            prefix = category if pos < 0 else category[:pos]
            bucket = self.category_buckets.get(prefix)
            if bucket is not None:
                buckets.append(bucket)
            if pos < 0:
                break
            pos = category.find("/", pos + 1)
        entry = CategoryEntry.__new__(CategoryEntry)
        entry.buckets = <int *>_alloc(len(buckets), sizeof(int))
        for k, bucket in enumerate(buckets):
            entry.buckets[k] = bucket
        entry.count = len(buckets)
        entry.redeemable = any(_category_matches(category, p) for p in self.redeem_categories)
        if len(self.category_cache) < CATEGORY_CACHE_MAX:
            self.category_cache[category] = entry
        return entry

    cdef int _read_lines(self, Work *w, list raw_lines, list skus, list categories) except -1:
        cdef Py_ssize_t i, n = len(raw_lines)
        cdef PyObject *f[F_VAT - F_SKU + 1]
        cdef LineC *line
        cdef int64_t subtotal = 0, price = 0, qty = 0, vat_percent = 0
        cdef bint plain
        for i in range(n):
            raw = raw_lines[i]
            line = &w.lines[i]
            plain = _fields(raw, F_SKU, F_VAT, f)  # when not, the checks below are not reached
            sku, price_o, qty_o = _got(f[F_SKU - F_SKU]), _got(f[F_PRICE - F_SKU]), _got(f[F_QTY - F_SKU])
            cats, name = _got(f[F_CATEGORIES - F_SKU]), _got(f[F_NAME - F_SKU])
            no_discount, no_bonus = _got(f[F_NO_DISCOUNT - F_SKU]), _got(f[F_NO_BONUS - F_SKU])
            min_price = _got(f[F_MIN_PRICE - F_SKU])
            vat = _got(f[F_VAT - F_SKU])
            if (not plain or type(sku) is not str or not 0 < len(<str>sku) <= 64
                    or not _small_int(price_o, 0, PRICE_MAX, &price)
                    or not _small_int(qty_o, 1, QTY_UNITS_MAX, &qty)
                    or (min_price is not _MISSING
                        and not _small_int(min_price, 0, PRICE_MAX, &line.min_price))
                    or (no_discount is not _MISSING and type(no_discount) is not bool)
                    or (no_bonus is not _MISSING and type(no_bonus) is not bool)
                    or (name is not _MISSING
                        and (type(name) is not str or not 0 < len(<str>name) <= 256))
                    or (cats is not _MISSING and not self._plain_categories(cats))
                    or not (vat is _MISSING or vat is None or _small_int(vat, 0, 100, &vat_percent))
                    or price * qty > AMOUNT_MAX):
                self._read_line_slowly(raw, i, line, skus, categories)
                subtotal += line.amount
                continue
            line.price = price
            line.qty_milli = qty * MILLI
            line.amount = price * qty
            line.no_discount = no_discount is True
            line.no_bonus = no_bonus is True
            line.vat_bp = -1 if vat is _MISSING or vat is None else vat_percent * 100
            _set_item(skus, i, sku)
            _set_item(categories, i, _EMPTY if cats is _MISSING else cats)
            subtotal += line.amount
        if subtotal > AMOUNT_MAX:
            _inputs.read_cart({"lines": raw_lines})  # raises the reference refusal
        return 0

    cdef bint _plain_categories(self, object cats) except -1:
        if type(cats) is not list or len(<list>cats) > 16:
            return False
        for c in <list>cats:
            if type(c) is not str or not 0 < len(<str>c) <= 256:
                return False
        return True

    cdef int _read_line_slowly(self, object raw, Py_ssize_t i, LineC *line, list skus,
                               list categories) except -1:
        """The reference reader for anything the fast path does not take as it is."""
        ref = _inputs.read_line(raw, f"cart line {i}")
        line.price = ref.price
        line.qty_milli = ref.qty_milli
        line.amount = ref.amount
        line.min_price = ref.min_price
        line.no_discount = ref.no_discount
        line.no_bonus = ref.no_bonus
        line.vat_bp = ref.vat_bp
        _set_item(skus, i, ref.sku)
        _set_item(categories, i, ref.categories)
        return 0

    # -------------------------------------------------------------- reading the card

    cdef CardIn _read_card(self, object card, object moment, object now, int64_t now_us,
                           int64_t today):
        """The reference `read_card` result, computed in C for canonical input; any other
        shape (or a fault) is handed to the reference reader, which decides."""
        cdef int64_t cumulative = 0, points = 0, start_us = 0, end_us = 0, available = 0
        cdef PyObject *f[F_TAGS - F_NUMBER + 1]
        cdef PyObject *g[F_EXPIRES_AT - F_POINTS + 1]
        cdef CardIn result
        cdef PyObject *birth
        cdef PyObject *issued
        cdef PyObject *tags
        if card is None:
            return None
        if not _fields(card, F_NUMBER, F_TAGS, f):
            return self._read_card_slowly(card, moment, now, today)
        number, card_type = _got(f[F_NUMBER - F_NUMBER]), _got(f[F_TYPE - F_NUMBER])
        cumulative_o, lots = _got(f[F_CUMULATIVE - F_NUMBER]), _got(f[F_LOTS - F_NUMBER])
        referrers, holder = _got(f[F_REFERRERS - F_NUMBER]), _got(f[F_HOLDER - F_NUMBER])
        if card_type is _MISSING:
            card_type = ""
        if (type(number) is not str or not 0 < len(<str>number) <= 64
                or type(card_type) is not str or len(<str>card_type) > 64
                or (cumulative_o is not _MISSING
                    and not _small_int(cumulative_o, 0, AMOUNT_MAX, &cumulative))
                or type(lots) is not list or len(<list>lots) > LOTS_MAX
                or not self._plain_referrers(referrers)
                or not (holder is _MISSING or holder is None
                        or (type(holder) is str and 0 < len(<str>holder) <= 256))):
            return self._read_card_slowly(card, moment, now, today)
        for lot in <list>lots:
            if not _fields(lot, F_POINTS, F_EXPIRES_AT, g):
                return self._read_card_slowly(card, moment, now, today)
            start, end = _got(g[F_AVAILABLE_FROM - F_POINTS]), _got(g[F_EXPIRES_AT - F_POINTS])
            if (start is _MISSING or end is _MISSING
                    or not _small_int(_got(g[F_POINTS - F_POINTS]), -LOT_POINTS_FAST_MAX,
                                      LOT_POINTS_FAST_MAX, &points)
                    or (start is not None and not _iso_us(start, &start_us))
                    or (end is not None and not _iso_us(end, &end_us))):
                return self._read_card_slowly(card, moment, now, today)
            if (start is None or start_us <= now_us) and (end is None or now_us < end_us):
                available += points
        if available > POINTS_MAX:
            return self._read_card_slowly(card, moment, now, today)  # refuses it, in the reference's words
        result = _card_in(number, card_type, cumulative, available if available > 0 else 0,
                          () if referrers is _MISSING else tuple(referrers))
        birth = f[F_BIRTH_DATE - F_NUMBER]
        issued = f[F_ISSUED_ON - F_NUMBER]
        tags = f[F_TAGS - F_NUMBER]
        if birth != NULL or issued != NULL or tags != NULL:
            self._card_facts(result, birth, issued, tags, today)
        return result

    cdef int _card_facts(self, CardIn card, PyObject *birth, PyObject *issued, PyObject *tags,
                         int64_t today) except -1:
        """§12 facts: canonical ones read in C, anything else by the reference readers in its
        order (they accept None and refuse the rest in its words)."""
        cdef int month = 0, day = 0, y = 0, m = 0, d = 0
        cdef int64_t issued_on = -1
        if ((birth == NULL or _birth_date(<object>birth, &month, &day))
                and (issued == NULL or _iso_date(<object>issued, &y, &m, &d))
                and (tags == NULL or _plain_tags(<object>tags))):
            if issued != NULL:
                issued_on = _days_from_civil(y, m, d) + ORDINAL_1970
            _card_customer(card, 0, 0, issued_on, _EMPTY if tags == NULL else tuple(<list>tags), today)
            card.birth_month, card.birth_day = month, day
            if month:
                _birthday_offsets(month, day, today, card.birthday)
            return 0
        month, day = _inputs.read_birth_date(None if birth == NULL else <object>birth)
        _card_customer(card, month, day, _inputs.read_issued_on(None if issued == NULL else <object>issued),
                       _inputs.read_tags(None if tags == NULL else <object>tags), today)
        return 0

    cdef CardIn _read_card_slowly(self, object card, object moment, object now, int64_t today):
        ref = _inputs.read_card(card, _moment(moment, now))
        result = _card_in(ref.number, ref.type, ref.cumulative, ref.available, ref.referrers)
        _card_customer(result, ref.birth_month, ref.birth_day, ref.issued_on, ref.tags, today)
        return result

    cdef bint _plain_referrers(self, object referrers) except -1:
        if referrers is _MISSING:
            return True
        if type(referrers) is not list or len(<list>referrers) > REFERRERS_MAX:
            return False
        for r in <list>referrers:
            if type(r) is not str or not 0 < len(<str>r) <= 64:
                return False
        return True

    # -------------------------------------------------------------- scope and conditions

    cdef int _pair_bucket(self, Work *w, int bucket, int line, str sku, object cats) except -1:
        cdef int k, r
        cdef int start = self.bucket_start[bucket]
        cdef int end = start + self.bucket_count[bucket]
        for k in range(start, end):
            r = self.bucket_rules[k] >> 1
            if w.rule_stamp[r] == line + 1:
                continue
            w.rule_stamp[r] = line + 1
            if self.bucket_rules[k] & 1 and self._excluded(r, sku, cats):
                continue
            _add_pair(w, r, line)
        return 0

    cdef bint _excluded(self, int r, str sku, object cats) except -1:
        scope = self.rule_objects[r].scope
        if sku in scope.exclude_skus:
            return True
        for category in cats:
            for excluded in scope.exclude_categories:
                if _category_matches(category, excluded):
                    return True
        return False

    cdef int _find_scopes(self, Work *w, list skus, list categories) except -1:
        cdef int line, r, k, total
        cdef LineC *c
        cdef CategoryEntry entry
        cdef PyObject *found
        for line in range(w.n_lines):
            sku = <str>skus[line]
            cats = categories[line]
            c = &w.lines[line]
            c.redeemable = self.has_redeem and not c.no_bonus and not self.redeem_categories
            self._pair_bucket(w, self.all_bucket, line, sku, cats)
            found = PyDict_GetItem(self.sku_buckets, sku)
            if found != NULL:
                self._pair_bucket(w, <int><object>found, line, sku, cats)
            for category in cats:
                entry = self._category_entry(category)
                if entry.redeemable and self.has_redeem and not c.no_bonus:
                    c.redeemable = True
                for k in range(entry.count):
                    self._pair_bucket(w, entry.buckets[k], line, sku, cats)
        # counting sort of the pairs by rule, keeping line order inside each rule
        for k in range(w.n_pairs):
            w.rule_count[w.pairs[k].rule] += 1
        total = 0
        for r in range(self.n_rules):
            w.rule_start[r] = total
            total += w.rule_count[r]
        w.csr_lines = <int *>_alloc(w.n_pairs, sizeof(int))
        memset(w.rule_stamp, 0, self.n_rules * sizeof(int))  # reused as fill positions
        for k in range(w.n_pairs):
            r = w.pairs[k].rule
            w.csr_lines[w.rule_start[r] + w.rule_stamp[r]] = w.pairs[k].line
            w.rule_stamp[r] += 1
        return 0

    cdef int _decide(self, Work *w, str store, CardIn card, str card_type, int weekday,
                     int minute, int64_t ordinal) except -1:
        cdef int r, k
        cdef int64_t amount, qty
        cdef RuleC *c
        cdef bint ok
        for r in range(self.n_rules):
            if w.rule_count[r] == 0:
                continue
            c = &self.rules[r]
            ok = True
            if c.card_cond == 1 and card is None:
                ok = False
            elif c.card_cond == 0 and card is not None:
                ok = False
            elif c.has_card_types and (card is None
                                       or not self._set_holds(w, c.card_types_set, card_type)):
                ok = False
            elif c.has_stores and not self._set_holds(w, c.stores_set, store):
                ok = False
            elif c.weekdays_mask and not (c.weekdays_mask >> (weekday - 1)) & 1:
                ok = False
            elif c.time_from >= 0:
                if c.time_from < c.time_to:
                    ok = c.time_from <= minute < c.time_to
                else:
                    ok = minute >= c.time_from or minute < c.time_to
            if ok and c.date_from >= 0:
                ok = c.date_from <= ordinal <= c.date_to
            if ok and (c.coupon >= 0 or c.birthday_before >= 0 or c.card_age_min >= 0 or c.has_tags
                       or c.has_exclude_tags):
                ok = self._customer_holds(w, r, card, ordinal)
            amount = 0
            qty = 0
            for k in range(w.rule_start[r], w.rule_start[r] + w.rule_count[r]):
                amount += w.lines[w.csr_lines[k]].amount
                qty += w.lines[w.csr_lines[k]].qty_milli
            w.scope_amount[r] = amount
            if ok and (amount < c.receipt_min or qty < c.qty_min):
                ok = False
            w.holds[r] = ok
        return 0

    cdef bint _customer_holds(self, Work *w, int r, CardIn card, int64_t today) except -1:
        """§12–§13: coupon, birthday, card age, tags (see core.fallback._customer_holds)."""
        cdef RuleC *c = &self.rules[r]
        cdef int k
        cdef bint found = False
        if c.coupon >= 0 and not w.presented[c.coupon]:
            return False
        if c.birthday_before >= 0:
            if card is None or card.birth_month == 0:
                return False
            for k in range(3):
                if -c.birthday_before <= card.birthday[k] <= c.birthday_after:
                    found = True
            if not found:
                return False
        if c.card_age_min >= 0 and (card is None or card.issued_on < 0
                                    or not c.card_age_min <= today - card.issued_on <= c.card_age_max):
            return False
        if c.has_tags and (card is None or self._set_holds(w, c.tags_set, card.tags)):
            return False
        if c.has_exclude_tags and (card is None
                                   or not self._set_holds(w, c.exclude_tags_set, card.tags)):
            return False
        return True

    cdef bint _set_holds(self, Work *w, int k, object item) except -1:
        """Condition set k's test (membership of the card type or store; for tags, being
        disjoint from the card's tags), made once per quote: the set's rules share it."""
        cdef int test = self.cond_tests[k]
        if w.set_memo[k] == 0:
            cond = self.cond_sets[k]
            if test == SET_TAGS:
                w.set_memo[k] = 2 if (<frozenset>cond).isdisjoint(<tuple>item) else 1
            else:
                w.set_memo[k] = 2 if item in <frozenset>cond else 1
        return w.set_memo[k] == 2

    cdef inline bint _applies(self, Work *w, int r) noexcept:
        return w.rule_count[r] > 0 and w.holds[r]

    # -------------------------------------------------------------- discounts

    cdef int64_t _tier_bp(self, Work *w, int r, bint has_card, int64_t cumulative) noexcept:
        cdef RuleC *c = &self.rules[r]
        cdef int64_t value, bp = 0
        cdef int t
        if c.tier_cumulative:
            if not has_card:
                return 0
            value = cumulative
        else:
            value = w.scope_amount[r]
        for t in range(c.tier_start, c.tier_start + c.tier_count):
            if self.tier_threshold[t] <= value:
                bp = self.tier_bp[t]
        return bp

    cdef int _merge(self, Work *w, int combine, int line, int64_t d, int head, int tail,
                    int64_t *out, int *heads, int *tails, int64_t *remaining) except -1:
        """Combine one member's discount `d` on `line` into the group's result.
        head/tail: the member's attribution list; head < 0 means "the rule −(head + 1)"."""
        cdef bint replace
        if combine == C_PRIORITY:
            replace = out[line] == 0
        elif combine == C_MAX:
            replace = d > out[line]
        elif combine == C_MIN:
            replace = out[line] == 0 or d < out[line]
        else:
            replace = False
        if head < 0:  # a rule: its attribution node is made only when it is kept
            if not replace and combine != C_SUM and combine != C_MULTIPLY:
                return 0
            w.node_rule[w.n_nodes] = -(head + 1)
            w.node_next[w.n_nodes] = -1
            head = tail = w.n_nodes
            w.n_nodes += 1
        if replace:
            out[line] = d
            heads[line] = head
            tails[line] = tail
        elif combine == C_SUM or combine == C_MULTIPLY:
            out[line] += d
            if heads[line] < 0:
                heads[line] = head
            else:
                w.node_next[tails[line]] = head
            tails[line] = tail
            if combine == C_MULTIPLY:
                remaining[line] -= d
        return 0

    cdef int _rule_discount(self, Work *w, int r, int combine, int64_t *base, bint has_card,
                            int64_t cumulative, int64_t *out, int *heads, int *tails,
                            int64_t *remaining) except -1:
        cdef RuleC *c = &self.rules[r]
        cdef int k, line, count = 0, start = w.rule_start[r], end = start + w.rule_count[r]
        cdef int64_t d, bp, total = 0
        cdef int64_t *bases
        cdef int64_t *parts
        cdef int *targets
        if c.value == V_AMOUNT:
            bases = <int64_t *>_alloc(w.rule_count[r], 2 * sizeof(int64_t) + sizeof(int))
            parts = bases + w.rule_count[r]
            targets = <int *>(parts + w.rule_count[r])
            try:
                for k in range(start, end):
                    line = w.csr_lines[k]
                    if not w.lines[line].no_discount:
                        targets[count] = line
                        bases[count] = base[line]
                        total += base[line]
                        count += 1
                if total > 0:
                    split_into(c.amount if c.amount < total else total, bases, parts, count)
                    for k in range(count):
                        if parts[k]:
                            self._merge(w, combine, targets[k], parts[k], -(r + 1), 0,
                                        out, heads, tails, remaining)
            finally:
                PyMem_Free(bases)
            return 0
        if c.value == V_BUY:
            return self._buy_discount(w, r, combine, base, out, heads, tails, remaining)
        bp = self._tier_bp(w, r, has_card, cumulative) if c.value == V_TIERS else c.bp
        for k in range(start, end):
            line = w.csr_lines[k]
            if w.lines[line].no_discount:
                continue
            if c.value == V_PRICE:
                d = base[line] - price_times_qty(c.amount, w.lines[line].qty_milli)
            else:
                d = percent_of(base[line], bp)
            if d > 0:
                self._merge(w, combine, line, d, -(r + 1), 0, out, heads, tails, remaining)
        return 0

    cdef int _buy_discount(self, Work *w, int r, int combine, int64_t *base, int64_t *out, int *heads,
                           int *tails, int64_t *remaining) except -1:
        """§14 (see core.fallback._buy_discount): the k cheapest pooled whole units get the percent."""
        cdef RuleC *c = &self.rules[r]
        cdef int k, line, count = 0, start = w.rule_start[r], end = start + w.rule_count[r]
        cdef int64_t pooled = 0, free, chosen, d
        cdef Unit *pool = <Unit *>_alloc(w.rule_count[r], sizeof(Unit))
        try:
            for k in range(start, end):
                line = w.csr_lines[k]
                if w.lines[line].no_discount or w.lines[line].qty_milli % MILLI != 0:
                    continue
                pool[count].price = w.lines[line].price
                pool[count].position = line
                pool[count].units = w.lines[line].qty_milli // MILLI
                pooled += pool[count].units
                count += 1
            free = pooled // (c.buy_qty + c.buy_free) * c.buy_free
            if free > 0:
                qsort(pool, count, sizeof(Unit), _by_unit_price)
            for k in range(count):
                if free == 0:
                    break
                chosen = pool[k].units if pool[k].units < free else free
                free -= chosen
                line = pool[k].position
                d = percent_of(pool[k].price * chosen, c.bp)
                if d > base[line]:
                    d = base[line]
                if d > 0:
                    self._merge(w, combine, line, d, -(r + 1), 0, out, heads, tails, remaining)
        finally:
            PyMem_Free(pool)
        return 0

    cdef int _group_discount(self, Work *w, int g, int64_t *base, bint has_card,
                             int64_t cumulative, int64_t *out, int *heads, int *tails) except -1:
        cdef GroupC *group = &self.groups[g]
        cdef int n = w.n_lines, m, member, line
        cdef int64_t limit
        cdef int64_t *remaining = <int64_t *>_alloc(n, sizeof(int64_t))
        cdef int64_t *child_out = NULL
        cdef int *child_heads = NULL
        cdef int *child_tails = NULL
        cdef int64_t *member_base = remaining if group.combine == C_MULTIPLY else base
        try:
            memcpy(remaining, base, n * sizeof(int64_t))
            for line in range(n):
                out[line] = 0
                heads[line] = -1
                tails[line] = -1
            for m in range(group.member_start, group.member_start + group.member_count):
                member = self.members[m]
                if member >= 0:
                    if self._applies(w, member):
                        self._rule_discount(w, member, group.combine, member_base, has_card,
                                            cumulative, out, heads, tails, remaining)
                    continue
                if child_out == NULL:
                    child_out = <int64_t *>_alloc(n, sizeof(int64_t) + 2 * sizeof(int))
                    child_heads = <int *>(child_out + n)
                    child_tails = child_heads + n
                self._group_discount(w, -member - 1, member_base, has_card, cumulative,
                                     child_out, child_heads, child_tails)
                for line in range(n):
                    if child_out[line]:
                        self._merge(w, group.combine, line, child_out[line], child_heads[line],
                                    child_tails[line], out, heads, tails, remaining)
            for line in range(n):
                limit = base[line]
                if group.cap_bp >= 0 and percent_of(base[line], group.cap_bp) < limit:
                    limit = percent_of(base[line], group.cap_bp)
                if out[line] > limit:
                    out[line] = limit
            if group.cap_amount >= 0:
                self._cap_amount(n, group.cap_amount, out)
        finally:
            PyMem_Free(remaining)
            PyMem_Free(child_out)  # and the heads and tails after it
        return 0

    cdef int _cap_amount(self, int n, int64_t cap, int64_t *out) except -1:
        """§15: a group's receipt discount above `cap` becomes `cap`, split by the lines' shares."""
        cdef int line
        cdef int64_t total = 0
        cdef int64_t *parts
        for line in range(n):
            total += out[line]
        if total <= cap:
            return 0
        parts = <int64_t *>_alloc(n, sizeof(int64_t))
        try:
            split_into(cap, out, parts, n)
            memcpy(out, parts, n * sizeof(int64_t))
        finally:
            PyMem_Free(parts)
        return 0

    # -------------------------------------------------------------- accrual

    cdef int64_t _rule_points(self, Work *w, int r, int64_t *paid) except -1:
        cdef RuleC *c = &self.rules[r]
        cdef int k, line, targets = 0
        cdef int64_t base = 0, points
        for k in range(w.rule_start[r], w.rule_start[r] + w.rule_count[r]):
            line = w.csr_lines[k]
            if not w.lines[line].no_bonus:
                targets += 1
                base += paid[line]
        if targets == 0:
            return 0
        if c.value == V_PERCENT:
            points = pm_muldiv_floor_clamp(base, c.bp, BP_PER_UNIT * self.point_value, POINTS_MAX)
        elif c.value == V_TIERS:
            points = pm_muldiv_floor_clamp(base, self._tier_bp(w, r, True, w.cumulative),
                                           BP_PER_UNIT * self.point_value, POINTS_MAX)
        elif c.value == V_PER:
            points = pm_mul_clamp(c.per_points, base // c.amount, POINTS_MAX)
        else:
            points = c.amount if c.amount < POINTS_MAX else POINTS_MAX
        if c.max_points >= 0 and points > c.max_points:
            points = c.max_points
        return points

    cdef int64_t _group_points(self, Work *w, int g, int64_t *paid, int *override,
                               char *mark) except -1:
        """A group's points; *override: the first contributing rule that sets lot days, or −1.
        With `mark`, the rules whose points count (core.fallback's given_by) are marked there."""
        cdef GroupC *group = &self.groups[g]
        cdef int m, member, member_override, winner = -1
        cdef int64_t total = 0, points
        override[0] = -1
        for m in range(group.member_start, group.member_start + group.member_count):
            member = self.members[m]
            if member >= 0:
                if not self._applies(w, member):
                    continue
                points = self._rule_points(w, member, paid)
                member_override = member if (self.rules[member].activation_days >= 0
                                             or self.rules[member].expiry_days >= 0) else -1
            else:
                points = self._group_points(w, -member - 1, paid, &member_override, NULL)
            if points == 0:
                continue
            if ((group.combine == C_PRIORITY and total == 0)
                    or (group.combine == C_MAX and points > total)
                    or (group.combine == C_MIN and (total == 0 or points < total))):
                total = points
                override[0] = member_override
                winner = m
            elif group.combine == C_SUM:
                total = total + points if total + points < POINTS_MAX else POINTS_MAX
                if override[0] < 0:
                    override[0] = member_override
                if mark != NULL:
                    self._mark_member(w, m, paid, mark)
        if mark != NULL and winner >= 0:
            self._mark_member(w, winner, paid, mark)
        return total

    cdef int _mark_member(self, Work *w, int m, int64_t *paid, char *mark) except -1:
        cdef int member = self.members[m], ignored
        if member >= 0:
            mark[member] = 1
        else:
            self._group_points(w, -member - 1, paid, &ignored, mark)
        return 0

    # -------------------------------------------------------------- the quote

    def quote(self, cart, card=None, now=None, redeem=None):
        cdef Work w
        cdef int n, r, override, referral_rule = -1
        cdef int64_t subtotal = 0, discount_total, redeem_total = 0, max_points = 0, points
        cdef int64_t asked, cumulative = 0, to_pay, accrued = 0
        cdef char *mark = NULL

        cdef int64_t now_us, local_days, local_minute
        cdef CardIn card_in
        if _iso_parts(now, &now_us, &local_days, &local_minute):
            moment = None  # made only if something needs the datetime itself
        else:
            moment = _inputs.read_moment(now, "now")
            now_us = (moment - _EPOCH) // _ONE_US
            local_days = moment.toordinal() - ORDINAL_1970
            local_minute = moment.hour * 60 + moment.minute
        store = raw_lines = _MISSING
        if type(cart) is dict and len(<dict>cart) <= 3:
            store = (<dict>cart).get("store", "")
            raw_lines = (<dict>cart).get("lines", _MISSING)
        if (type(store) is not str or len(<str>store) > 64 or type(raw_lines) is not list
                or len(<list>raw_lines) > LINES_MAX
                or len(<dict>cart) != 1 + ("store" in cart) + ("coupons" in cart)):
            _inputs.read_cart(cart)  # raises the reference refusal
        memset(&w, 0, sizeof(Work))
        n = len(<list>raw_lines)
        w.n_lines = n
        skus = PyList_New(n)  # filled by _read_lines; a quote ends if it cannot fill them
        categories = PyList_New(n)
        try:
            self._allocate(&w)
            self._read_lines(&w, <list>raw_lines, skus, categories)
            coupons = _read_coupons(cart) if "coupons" in cart else []
            self._present(&w, coupons)
            card_in = self._read_card(card, moment, now, now_us, local_days + ORDINAL_1970)
            asked = _read_redeem(redeem)
            card_type = ""
            if card_in is not None:
                card_type = card_in.type
                cumulative = card_in.cumulative
            w.cumulative = cumulative
            self._find_scopes(&w, skus, categories)
            self._decide(&w, store, card_in, card_type, _isoweekday(local_days), local_minute,
                         local_days + ORDINAL_1970)
            w.node_rule = <int *>_alloc(w.n_pairs, sizeof(int))
            w.node_next = <int *>_alloc(w.n_pairs, sizeof(int))
            discount_total = self._discounts(&w, card_in is not None, cumulative)
            points = self._redemption(&w, card_in, asked, &max_points)
            for line in range(n):
                subtotal += w.lines[line].amount
                w.paid[line] = w.after[line] - w.redeemed[line]
                redeem_total += w.redeemed[line]
            to_pay = subtotal - discount_total - redeem_total
            accrual = {"points": 0, "available_from": None, "expires_at": None}
            if card_in is not None:
                if coupons and self.coupon_accruals:
                    w.contributed = <char *>_alloc(self.n_rules, sizeof(char))
                    mark = w.contributed
                accrued = self._group_points(&w, 1, w.paid, &override, mark)
                if 0 <= self.accrual_max_points < accrued:
                    accrued = self.accrual_max_points
                if accrued:
                    accrual = self._lot(moment, now, local_days, accrued, override)
                self._mark_earning(&w)
            vat_out = []
            lines_out = self._lines_out(&w, skus, vat_out)
            messages, upgrade = self._messages(&w)
            gifts = [{"rule": rule_id, "sku": sku, "name": name, "qty": qty}
                     for r, rule_id, sku, name, qty in self.gift_items if self._applies(&w, r)]
            referral = self._referral(&w, card_in, to_pay, &referral_rule)
            issued = [{"rule": self.rule_ids[r], "series": self.program.coupon_series[self.rules[r].coupon_issue].id,
                       "valid_days": self.rule_objects[r].valid_days}
                      for r in self.coupon_rules if self._applies(&w, r)]
            card_type_after = level = None
            if card_in is not None:
                card_type_after, level = self._type_and_level(card_in.type, upgrade,
                                                              cumulative + subtotal - discount_total)
            coupons_out = []
            if coupons:
                self._mark_used(&w, accrued > 0 and mark != NULL, referral_rule)
                coupons_out = self._coupons_out(&w, coupons)
        finally:
            _free_work(&w)
        return {
            "subtotal": subtotal,
            "discount": discount_total,
            "total": subtotal - discount_total,
            "redeem": {"points": points, "amount": redeem_total, "max_points": max_points},
            "to_pay": to_pay,
            "accrual": accrual,
            "lines": lines_out,
            "vat": vat_out,
            "messages": messages,
            "gifts": gifts,
            "referral": referral,
            "card_type_after": card_type_after,
            "cumulative_after": None if card_in is None else cumulative + subtotal - discount_total,
            "level": level,
            "coupons": coupons_out,
            "issued_coupons": issued,
        }

    cdef int _present(self, Work *w, list coupons) except -1:
        """Which coupon series the cart presents a code of (PRESENTED in w.presented)."""
        w.presented = <char *>_alloc(self.n_series, sizeof(char))
        for _code, series in coupons:
            index = self.series_ids.get(series)
            if index is not None:
                w.presented[<int>index] = PRESENTED
        return 0

    cdef list _coupons_out(self, Work *w, list coupons):
        """§13 (core.fallback.coupons_out): only the first code of a used series is used."""
        cdef int k
        cdef bint used
        out = []
        for code, series in coupons:
            index = self.series_ids.get(series)
            used = False
            if index is not None:
                k = index
                used = (w.presented[k] & SERIES_USED) != 0 and (w.presented[k] & SERIES_SHOWN) == 0
                w.presented[k] |= SERIES_SHOWN
            out.append({"code": code, "series": series, "used": used})
        return out

    cdef int _mark_used(self, Work *w, bint accrual_counts, int referral_rule) except -1:
        """§13: SERIES_USED for the series of the rules that contributed (core.fallback: used_series)."""
        cdef int line, node, r
        for line in range(w.n_lines):
            if w.discount[line] > 0:
                node = w.heads[line]
                while node >= 0:
                    if self.rules[w.node_rule[node]].coupon >= 0:
                        w.presented[self.rules[w.node_rule[node]].coupon] |= SERIES_USED
                    node = w.node_next[node]
        for r in range(self.n_rules):
            if self.rules[r].coupon < 0:
                continue
            if ((self.rules[r].kind == K_ACCRUAL and accrual_counts and w.contributed[r])
                    or ((self.rules[r].kind == K_MESSAGE or self.rules[r].kind == K_GIFT
                         or self.rules[r].kind == K_COUPON) and self._applies(w, r))
                    or r == referral_rule):
                w.presented[self.rules[r].coupon] |= SERIES_USED
        return 0

    cdef int _allocate(self, Work *w) except -1:
        """The per-line and per-rule arrays, zeroed, in one allocation (one malloc, one memset)."""
        cdef int n = w.n_lines, r = self.n_rules
        cdef char *cursor
        w.block = <char *>_alloc(_span(n, sizeof(LineC)) + 3 * _span(r, sizeof(int)) + _span(r, sizeof(char))
                                 + _span(r, sizeof(int64_t)) + 4 * _span(n, sizeof(int64_t))
                                 + 2 * _span(n, sizeof(int)) + _span(n, sizeof(char))
                                 + _span(len(self.cond_sets), sizeof(char)), 1)
        cursor = w.block
        w.lines = <LineC *>_carve(&cursor, n, sizeof(LineC))
        w.rule_count = <int *>_carve(&cursor, r, sizeof(int))
        w.rule_start = <int *>_carve(&cursor, r, sizeof(int))
        w.rule_stamp = <int *>_carve(&cursor, r, sizeof(int))
        w.holds = <char *>_carve(&cursor, r, sizeof(char))
        w.scope_amount = <int64_t *>_carve(&cursor, r, sizeof(int64_t))
        w.discount = <int64_t *>_carve(&cursor, n, sizeof(int64_t))
        w.after = <int64_t *>_carve(&cursor, n, sizeof(int64_t))
        w.redeemed = <int64_t *>_carve(&cursor, n, sizeof(int64_t))
        w.paid = <int64_t *>_carve(&cursor, n, sizeof(int64_t))
        w.heads = <int *>_carve(&cursor, n, sizeof(int))
        w.tails = <int *>_carve(&cursor, n, sizeof(int))
        w.earning = <char *>_carve(&cursor, n, sizeof(char))
        w.set_memo = <char *>_carve(&cursor, len(self.cond_sets), sizeof(char))
        return 0

    cdef int64_t _discounts(self, Work *w, bint has_card, int64_t cumulative) except -1:
        """Final discount per line (§4): the root group, then the program's and the line's
        limits. Fills w.discount and w.after; returns the receipt's discount."""
        cdef int line
        cdef int64_t ceiling, floor_amount, total = 0
        cdef LineC *c
        for line in range(w.n_lines):
            w.after[line] = w.lines[line].amount
        self._group_discount(w, 0, w.after, has_card, cumulative, w.discount, w.heads, w.tails)
        for line in range(w.n_lines):
            c = &w.lines[line]
            if c.no_discount:
                w.discount[line] = 0
            ceiling = percent_of(c.amount, self.max_discount_bp)
            floor_amount = c.amount - price_times_qty(c.min_price, c.qty_milli)
            if floor_amount < 0:
                floor_amount = 0
            if w.discount[line] > ceiling:
                w.discount[line] = ceiling
            if w.discount[line] > floor_amount:
                w.discount[line] = floor_amount
            w.after[line] = c.amount - w.discount[line]
            total += w.discount[line]
        return total

    cdef int64_t _redemption(self, Work *w, CardIn card_in, int64_t asked,
                             int64_t *max_points) except -1:
        """Points paid (§5); fills w.redeemed with the money split over eligible lines."""
        cdef int line, k, count = 0
        cdef int64_t total = 0, points, by_percent, available
        cdef int64_t *bases = <int64_t *>_alloc(w.n_lines, 2 * sizeof(int64_t) + sizeof(int))
        cdef int64_t *parts = bases + w.n_lines
        cdef int *eligible = <int *>(parts + w.n_lines)
        try:
            for line in range(w.n_lines):
                if w.lines[line].redeemable:
                    eligible[count] = line
                    bases[count] = w.after[line]
                    total += w.after[line]
                    count += 1
            max_points[0] = 0
            if self.has_redeem and card_in is not None:
                available = card_in.available
                if total >= self.redeem_min_receipt and available >= self.redeem_min_points:
                    by_percent = pm_muldiv_floor(total, self.redeem_max_bp,
                                                 BP_PER_UNIT * self.point_value)
                    max_points[0] = available if available < by_percent else by_percent
                    if 0 <= self.redeem_max_points < max_points[0]:
                        max_points[0] = self.redeem_max_points
                    if max_points[0] < self.redeem_min_redeem_points:
                        max_points[0] = 0
            points = max_points[0] if asked == REDEEM_ALL or asked > max_points[0] else asked
            if self.has_redeem and points < self.redeem_min_redeem_points:
                points = 0
            if points > 0:
                split_into(points * self.point_value, bases, parts, count)
                for k in range(count):
                    w.redeemed[eligible[k]] = parts[k]
        finally:
            PyMem_Free(bases)
        return points

    cdef int _mark_earning(self, Work *w) except -1:
        """Lines in the scope of an applying accrual rule and not no_bonus can earn points."""
        cdef int r, k, line
        for r in range(self.n_rules):
            if self.rules[r].kind != K_ACCRUAL or not self._applies(w, r):
                continue
            for k in range(w.rule_start[r], w.rule_start[r] + w.rule_count[r]):
                line = w.csr_lines[k]
                if not w.lines[line].no_bonus:
                    w.earning[line] = 1
        return 0

    cdef list _lines_out(self, Work *w, list skus, list vat_out):
        """The quote's lines; the per-rate VAT summary (core.vat.vat_summary) goes to `vat_out`,
        summed in C for up to VAT_RATES_FAST distinct rates, by the shared function beyond."""
        cdef int line, node, k, count, n_rates = 0
        cdef int64_t vat_amount
        cdef int64_t rates[VAT_RATES_FAST]
        cdef int64_t rate_paid[VAT_RATES_FAST]
        cdef int64_t rate_vat[VAT_RATES_FAST]
        cdef bint many_rates = False
        cdef LineC *c
        cdef list rate_objects = [None] * VAT_RATES_FAST
        out = []
        for line in range(w.n_lines):
            c = &w.lines[line]
            count = 0
            if w.discount[line] > 0:
                node = w.heads[line]
                while node >= 0:
                    count += 1
                    node = w.node_next[node]
            given_by = PyList_New(count)  # sized once: no appends
            node = w.heads[line]
            for k in range(count):
                _set_item(given_by, k, self.rule_ids[w.node_rule[node]])
                node = w.node_next[node]
            # equal numbers share one int object: fewer allocations, the same values
            price = c.price
            amount = price if c.amount == c.price else c.amount
            paid = amount if w.paid[line] == c.amount else w.paid[line]
            if c.vat_bp >= 0:
                vat_amount = pm_muldiv_half_up(w.paid[line], c.vat_bp, BP_PER_UNIT + c.vat_bp)
                rate = c.vat_bp
                for k in range(n_rates + 1):
                    if k == n_rates:
                        if n_rates == VAT_RATES_FAST:
                            many_rates = True
                            break
                        rates[k], rate_paid[k], rate_vat[k] = c.vat_bp, 0, 0
                        rate_objects[k] = rate
                        n_rates += 1
                    if rates[k] == c.vat_bp:
                        rate = rate_objects[k]  # the lines of a rate share its int
                        rate_paid[k] += w.paid[line]
                        rate_vat[k] += vat_amount
                        break
            else:
                vat_amount = 0
                rate = None
            out.append({"sku": skus[line], "qty_milli": _ONE_UNIT if c.qty_milli == MILLI else c.qty_milli,
                        "price": price, "amount": amount, "discount": w.discount[line],
                        "redeem_amount": w.redeemed[line], "paid": paid,
                        "accrual_base": paid if w.earning[line] else 0, "rules": given_by,
                        "vat_rate": rate, "vat_amount": vat_amount})
        if many_rates:
            vat_out.extend(_vat_summary((-1 if x["vat_rate"] is None else x["vat_rate"], x["paid"],
                                         x["vat_amount"]) for x in out))
        elif n_rates:
            _sort_rates(rates, rate_paid, rate_vat, n_rates)
            for k in range(n_rates):
                vat_out.append({"rate": rates[k], "paid": rate_paid[k], "amount": rate_vat[k]})
        return out

    cdef dict _lot(self, object moment, object now, int64_t local_days, int64_t points, int override):
        """The new lot (core.inputs.lot_dates): written in C when `now` was canonical ISO text."""
        cdef int activation = self.activation_days, expiry = self.expiry_days
        if override >= 0:
            if self.rules[override].activation_days >= 0:
                activation = self.rules[override].activation_days
            if self.rules[override].expiry_days >= 0:
                expiry = self.rules[override].expiry_days
        if moment is None:
            start = _iso_days_later(now, local_days, activation)
            end = None if expiry == 0 else _iso_days_later(now, local_days, activation + expiry)
            if start is not None and (expiry == 0 or end is not None):
                return {"points": points, "available_from": start, "expires_at": end}
        start, end = _inputs.lot_dates(_moment(moment, now), activation, expiry)
        return {"points": points, "available_from": start, "expires_at": end}

    cdef int _level_rank(self, str card_type) noexcept:
        """Program.level_rank: the rank of a level type, −1 for a type that is no level."""
        cdef int rank
        for rank in range(self.n_levels):
            if <str>self.level_types[rank] == card_type:
                return rank
        return -1

    cdef tuple _type_and_level(self, str card_type, object upgrade, int64_t cumulative_after):
        """core.fallback.type_and_level over the level table held in C."""
        cdef int rank = self._level_rank(card_type), after, i
        if rank < 0:
            return (upgrade if upgrade and upgrade != card_type else None), None
        after = rank
        for i in range(self.n_levels):
            if self.level_min[i] <= cumulative_after and i > after:
                after = i
        if upgrade and self._level_rank(upgrade) > after:
            after = self._level_rank(upgrade)
        result = self.level_types[after]
        if after + 1 < self.n_levels:
            level = {"type": result, "next": self.level_types[after + 1],
                     "to_next": self.level_min[after + 1] - cumulative_after}
        else:
            level = {"type": result, "next": None, "to_next": None}
        return (None if result == card_type else result), level

    cdef tuple _messages(self, Work *w):
        """The applying messages and the first `upgrade_to` among them (None when none has one)."""
        messages = []
        upgrade = None
        cdef int k
        for k in range(len(self.message_rules)):
            if self._applies(w, self.message_rule_index[k]):
                rule_id, text, upgrade_to = <tuple>self.message_rules[k]
                messages.append({"rule": rule_id, "text": text})
                if upgrade is None and upgrade_to:
                    upgrade = upgrade_to
        return messages, upgrade

    cdef list _referral(self, Work *w, CardIn card_in, int64_t to_pay, int *used):
        """The upline credits; *used = the rule that gave some, else it stays −1."""
        cdef int64_t money
        if card_in is None:
            return []
        for r in self.referral_rules:
            if not self._applies(w, r):
                continue
            rule = self.rule_objects[r]
            out = []
            for level, (referrer, bp) in enumerate(zip(card_in.referrers, rule.levels_bp), 1):
                money = pm_muldiv_floor(to_pay, bp, BP_PER_UNIT)
                out.append({"card": referrer, "level": level,
                            "points": money // self.point_value if rule.credit == "points" else 0,
                            "cumulative": money if rule.credit == "cumulative" else 0})
            if out:
                used[0] = r
            return out
        return []

    def refund(self, quote, ret):
        return _compute_refund(quote, ret)
