/* SPDX-License-Identifier: MIT */
/* Dates in the fixed formats corio writes: the log line's timestamp, the
 * access log's common-log-format date and HTTP's IMF-fixdate.
 *
 * None of it looks at the locale (strftime's %a and %b follow LC_TIME: a
 * German application would send "Mär" in a Date header) or at the time
 * zone, and none of it calls gmtime_r (glibc takes its time-zone lock even
 * for UTC): the calendar is computed here, so every function is
 * async-signal-safe and fit for a log line written from a signal handler.
 * Each writes a NUL-terminated string into a caller's buffer of the size
 * its comment names and returns its length. */
#ifndef CORIO_BASE_TIMEFMT_H
#define CORIO_BASE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* A UTC time broken down: what struct tm holds, in plain numbers. */
typedef struct corio__civil {
    int64_t year; /* e.g. 2026 */
    int month;    /* 1..12 */
    int day;      /* 1..31 */
    int hour, min, sec;
    int wday; /* 0 = Sunday */
} corio__civil;

/* English names, three letters each, whatever the locale: month 1..12,
 * weekday 0 (Sunday)..6.  Not NUL-terminated: print with "%.3s". */
static inline const char *corio__timefmt_month(int month) {
    return &"JanFebMarAprMayJunJulAugSepOctNovDec"[3 * (month - 1)];
}

static inline const char *corio__timefmt_wday(int wday) {
    return &"SunMonTueWedThuFriSat"[3 * wday];
}

/* Breaks t (seconds since the epoch, UTC) down by the proleptic Gregorian
 * calendar (H. Hinnant's days-to-civil algorithm: exact for any int64 day
 * count that fits, negative too). */
static inline corio__civil corio__timefmt_civil(int64_t t) {
    corio__civil c;
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    c.hour = (int)(secs / 3600);
    c.min = (int)(secs / 60 % 60);
    c.sec = (int)(secs % 60);
    c.wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;                                      /* [0, 146096] */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    int64_t mp = (5 * doy + 2) / 153;                                    /* [0, 11], from March */
    c.day = (int)(doy - (153 * mp + 2) / 5 + 1);
    c.month = (int)(mp < 10 ? mp + 3 : mp - 9);
    c.year = yoe + era * 400 + (c.month <= 2);
    return c;
}

/* Writes v as exactly `width` decimal digits (the low ones; v >= 0). */
static inline char *corio__timefmt_digits(char *p, int64_t v, int width) {
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

static inline char *corio__timefmt_name(char *p, const char *name) {
    p[0] = name[0];
    p[1] = name[1];
    p[2] = name[2];
    return p + 3;
}

/* Years 0..9999 as four digits; outside that range (no clock says so) the
 * year is clamped rather than overflowing a fixed-width field. */
static inline int64_t corio__timefmt_year(int64_t y) {
    return y < 0 ? 0 : y > 9999 ? 9999 : y;
}

/* "2026-11-25T13:30:00.123Z" (ISO 8601, the log line's timestamp) for ms
 * milliseconds since the epoch; buf has room for 25 bytes. */
#define CORIO__TIMEFMT_ISO_MS_SIZE 25
static inline size_t corio__timefmt_iso_ms(char *buf, int64_t ms) {
    int64_t s = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
        s--;
    }
    corio__civil c = corio__timefmt_civil(s);
    char *p = corio__timefmt_digits(buf, corio__timefmt_year(c.year), 4);
    *p++ = '-';
    p = corio__timefmt_digits(p, c.month, 2);
    *p++ = '-';
    p = corio__timefmt_digits(p, c.day, 2);
    *p++ = 'T';
    p = corio__timefmt_digits(p, c.hour, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.min, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.sec, 2);
    *p++ = '.';
    p = corio__timefmt_digits(p, frac, 3);
    *p++ = 'Z';
    *p = '\0';
    return (size_t)(p - buf);
}

/* "25/Nov/2026:14:17:21 +0000" (the common log format's date, UTC) for t;
 * buf has room for 27 bytes. */
#define CORIO__TIMEFMT_CLF_SIZE 27
static inline size_t corio__timefmt_clf(char *buf, time_t t) {
    corio__civil c = corio__timefmt_civil((int64_t)t);
    char *p = corio__timefmt_digits(buf, c.day, 2);
    *p++ = '/';
    p = corio__timefmt_name(p, corio__timefmt_month(c.month));
    *p++ = '/';
    p = corio__timefmt_digits(p, corio__timefmt_year(c.year), 4);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.hour, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.min, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.sec, 2);
    const char *zone = " +0000";
    while (*zone)
        *p++ = *zone++;
    *p = '\0';
    return (size_t)(p - buf);
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (HTTP's IMF-fixdate, RFC 9110 5.6.7:
 * always 29 bytes) for t; buf has room for 30 bytes. */
#define CORIO__TIMEFMT_HTTP_SIZE 30
static inline size_t corio__timefmt_http(char *buf, time_t t) {
    corio__civil c = corio__timefmt_civil((int64_t)t);
    char *p = corio__timefmt_name(buf, corio__timefmt_wday(c.wday));
    *p++ = ',';
    *p++ = ' ';
    p = corio__timefmt_digits(p, c.day, 2);
    *p++ = ' ';
    p = corio__timefmt_name(p, corio__timefmt_month(c.month));
    *p++ = ' ';
    p = corio__timefmt_digits(p, corio__timefmt_year(c.year), 4);
    *p++ = ' ';
    p = corio__timefmt_digits(p, c.hour, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.min, 2);
    *p++ = ':';
    p = corio__timefmt_digits(p, c.sec, 2);
    const char *zone = " GMT";
    while (*zone)
        *p++ = *zone++;
    *p = '\0';
    return (size_t)(p - buf);
}

#endif
