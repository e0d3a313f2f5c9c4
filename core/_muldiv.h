/* Exact integer money arithmetic for the compiled engine: products are taken in 128 bits,
 * so a × b / c never overflows for |a|, |b|, |c| < 2^63 when the result fits in 64 bits.
 * Python semantics: floor division rounds toward −∞; half-up rounds ties away from zero.
 * When the product fits in 64 bits (nearly always) the division is done in 64 bits: a 128-bit
 * division is a library call many times slower. */
#ifndef POSTERM_MULDIV_H
#define POSTERM_MULDIV_H
#include <stdint.h>

static inline int64_t pm_muldiv_floor(int64_t a, int64_t b, int64_t c) {
    int64_t p64;
    if (!__builtin_mul_overflow(a, b, &p64) && c != -1) {  /* the usual case: 64-bit division */
        int64_t q = p64 / c;
        if ((p64 % c != 0) && ((p64 < 0) != (c < 0))) q -= 1;
        return q;
    }
    __int128 p = (__int128)a * b;
    __int128 q = p / c;
    if ((p % c != 0) && ((p < 0) != (c < 0))) q -= 1;
    return (int64_t)q;
}

/* c > 0 */
static inline int64_t pm_muldiv_half_up(int64_t a, int64_t b, int64_t c) {
    int64_t p64;
    if (!__builtin_mul_overflow(a, b, &p64) && p64 >= 0 && p64 <= INT64_MAX / 2 - c)
        return (2 * p64 + c) / (2 * c);
    __int128 p = (__int128)a * b;
    if (p >= 0) return (int64_t)((2 * p + c) / (2 * (__int128)c));
    return -(int64_t)((-2 * p + c) / (2 * (__int128)c));
}

/* a, b ≥ 0, c > 0: floor(a × b / c) and its remainder */
static inline int64_t pm_muldivmod(int64_t a, int64_t b, int64_t c, int64_t *rem) {
    int64_t p64;
    if (!__builtin_mul_overflow(a, b, &p64)) {
        *rem = p64 % c;
        return p64 / c;
    }
    __int128 p = (__int128)a * b;
    *rem = (int64_t)(p % c);
    return (int64_t)(p / c);
}

/* min(a × b, limit) for a, b ≥ 0, with the product in 128 bits */
static inline int64_t pm_mul_clamp(int64_t a, int64_t b, int64_t limit) {
    __int128 p = (__int128)a * b;
    return p > limit ? limit : (int64_t)p;
}

/* min(floor(a × b / c), limit) for a, b ≥ 0, c > 0, with the product in 128 bits */
static inline int64_t pm_muldiv_floor_clamp(int64_t a, int64_t b, int64_t c, int64_t limit) {
    __int128 q = (__int128)a * b / c;
    return q > limit ? limit : (int64_t)q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil). */
static inline int64_t pm_days_from_civil(int64_t y, int64_t m, int64_t d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Two ASCII digits as a number, or -1000 (which makes any field out of range). */
static inline int pm_two(const char *s) {
    unsigned a = (unsigned char)s[0] - '0', b = (unsigned char)s[1] - '0';
    return (a > 9 || b > 9) ? -1000 : (int)(a * 10 + b);
}

/* The canonical ISO-8601 forms our own code writes, "YYYY-MM-DDTHH:MM:SS+HH:MM" and
 * "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM", as microseconds since the epoch, plus the wall-clock
 * date (days since 1970-01-01) and minute of the day. Returns -1 for any other text or an
 * impossible moment: the caller then asks Python's datetime, which decides. */
static inline int pm_parse_iso_parts(const char *s, long n, int64_t *epoch_us, int64_t *local_days,
                                     int64_t *local_minute) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t frac = 0;
    const char *z;
    if (n == 25) z = s + 19;
    else if (n == 32 && s[19] == '.') {
        int f1 = pm_two(s + 20), f2 = pm_two(s + 22), f3 = pm_two(s + 24);
        if (f1 < 0 || f2 < 0 || f3 < 0) return -1;
        frac = f1 * 10000 + f2 * 100 + f3;
        z = s + 26;
    }
    else return -1;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    if ((z[0] != '+' && z[0] != '-') || z[3] != ':') return -1;
    int yh = pm_two(s), yl = pm_two(s + 2), mo = pm_two(s + 5), d = pm_two(s + 8);
    int h = pm_two(s + 11), mi = pm_two(s + 14), sec = pm_two(s + 17);
    int oh = pm_two(z + 1), om = pm_two(z + 4);
    if (yh < 0 || yl < 0) return -1;
    int y = yh * 100 + yl;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0
        || sec > 59 || oh < 0 || oh > 23 || om < 0 || om > 59)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[mo - 1] + (mo == 2 && leap)) return -1;
    int64_t offset = (oh * 3600 + om * 60) * (z[0] == '-' ? -1 : 1);
    int64_t days = pm_days_from_civil(y, mo, d);
    *epoch_us = (days * 86400 + h * 3600 + mi * 60 + sec - offset) * 1000000 + frac;
    *local_days = days;  /* the wall-clock date and minute, for weekday and time conditions */
    *local_minute = h * 60 + mi;
    return 0;
}

static inline int pm_parse_iso(const char *s, long n, int64_t *epoch_us) {
    int64_t days, minute;
    return pm_parse_iso_parts(s, n, epoch_us, &days, &minute);
}
#endif
