/* Exact integer money arithmetic for the compiled engine: products are taken in 128 bits,
 * so a × b / c never overflows for |a|, |b|, |c| < 2^63 when the result fits in 64 bits.
 * Python semantics: floor division rounds toward −∞; half-up rounds ties away from zero. */
#ifndef POSTERM_MULDIV_H
#define POSTERM_MULDIV_H
#include <stdint.h>

static inline int64_t pm_muldiv_floor(int64_t a, int64_t b, int64_t c) {
    __int128 p = (__int128)a * b;
    __int128 q = p / c;
    if ((p % c != 0) && ((p < 0) != (c < 0))) q -= 1;
    return (int64_t)q;
}

/* c > 0 */
static inline int64_t pm_muldiv_half_up(int64_t a, int64_t b, int64_t c) {
    __int128 p = (__int128)a * b;
    if (p >= 0) return (int64_t)((2 * p + c) / (2 * (__int128)c));
    return -(int64_t)((-2 * p + c) / (2 * (__int128)c));
}

/* a, b ≥ 0, c > 0: floor(a × b / c) and its remainder */
static inline int64_t pm_muldivmod(int64_t a, int64_t b, int64_t c, int64_t *rem) {
    __int128 p = (__int128)a * b;
    *rem = (int64_t)(p % c);
    return (int64_t)(p / c);
}
#endif
