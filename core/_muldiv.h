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

static inline int pm_digits(const char *s, int n, int64_t *out) {
    int64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* The canonical ISO-8601 forms our own code writes, "YYYY-MM-DDTHH:MM:SS+HH:MM" and
 * "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM", as microseconds since the epoch. Returns -1 for any other
 * text or an impossible moment: the caller then asks Python's datetime, which decides. */
static inline int pm_parse_iso_parts(const char *s, long n, int64_t *epoch_us, int64_t *local_days,
                                     int64_t *local_minute) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t y, mo, d, h, mi, sec, frac = 0, oh, om;
    const char *z;
    if (n == 25) z = s + 19;
    else if (n == 32 && s[19] == '.') { if (pm_digits(s + 20, 6, &frac)) return -1; z = s + 26; }
    else return -1;
    if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return -1;
    if (pm_digits(s, 4, &y) || pm_digits(s + 5, 2, &mo) || pm_digits(s + 8, 2, &d)
        || pm_digits(s + 11, 2, &h) || pm_digits(s + 14, 2, &mi) || pm_digits(s + 17, 2, &sec))
        return -1;
    if ((z[0] != '+' && z[0] != '-') || z[3] != ':') return -1;
    if (pm_digits(z + 1, 2, &oh) || pm_digits(z + 4, 2, &om)) return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 || oh > 23 || om > 59)
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
