# cython: language_level=3, boundscheck=False, wraparound=False
"""The cost floor of a quote's *result*, for the W1 ratio: building a quote-shaped dict (its line
dicts, rule lists and small dicts) from values already in C, with no reading and no pricing.

Both engines must hand back spec §8 dicts, so this cost is in every quote either engine makes;
`test_core_bench.py::test_quote_result_floor` measures it in the same run as the quotes.
"""

from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

cdef enum:
    FIELDS = 8
_NUMBERS = ("qty_milli", "price", "amount", "discount", "redeem_amount", "paid", "accrual_base",
            "vat_amount")


cdef class ResultFloor:
    cdef int64_t *values
    cdef int n_lines
    cdef list skus
    cdef list rules
    cdef list vat_rates
    cdef object quote

    def __cinit__(self, quote):
        self.values = NULL

    def __init__(self, quote):
        cdef int i, j
        lines = quote["lines"]
        self.quote = quote
        self.n_lines = len(lines)
        self.values = <int64_t *>malloc(self.n_lines * FIELDS * sizeof(int64_t) + 8)
        if self.values == NULL:
            raise MemoryError()
        self.skus = [line["sku"] for line in lines]
        self.rules = [list(line["rules"]) for line in lines]
        self.vat_rates = [line["vat_rate"] for line in lines]
        for i, line in enumerate(lines):
            for j, name in enumerate(_NUMBERS):
                self.values[i * FIELDS + j] = line[name]

    def __dealloc__(self):
        free(self.values)

    def build(self):
        cdef int i
        cdef int64_t *v
        q = self.quote
        out = []
        for i in range(self.n_lines):
            v = &self.values[i * FIELDS]
            out.append({"sku": self.skus[i], "qty_milli": v[0], "price": v[1], "amount": v[2],
                        "discount": v[3], "redeem_amount": v[4], "paid": v[5], "accrual_base": v[6],
                        "rules": list(self.rules[i]), "vat_rate": self.vat_rates[i], "vat_amount": v[7]})
        return {
            "subtotal": q["subtotal"], "discount": q["discount"], "total": q["total"],
            "redeem": dict(q["redeem"]), "to_pay": q["to_pay"], "accrual": dict(q["accrual"]),
            "lines": out, "messages": [dict(m) for m in q["messages"]],
            "gifts": [dict(g) for g in q["gifts"]], "referral": [dict(r) for r in q["referral"]],
            "card_type_after": q["card_type_after"], "cumulative_after": q["cumulative_after"],
            "vat": [dict(rate) for rate in q["vat"]],
            "level": None if q["level"] is None else dict(q["level"]),
            "coupons": [dict(c) for c in q["coupons"]],
            "issued_coupons": [dict(c) for c in q["issued_coupons"]],
        }
