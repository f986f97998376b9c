/* SPDX-License-Identifier: MIT */
/* File responses: validators, preconditions and ranges (see
 * file_internal.h, corio/http_file.h).
 *
 * A file's validators are a weak ETag built from its size and modification
 * time and a Last-Modified no later than now.  They decide 304 for
 * If-None-Match and If-Modified-Since, and whether If-Range lets a Range
 * apply; the Range itself is honoured only when it asks for a single byte
 * range (RFC 9110 allows ignoring the rest).  Everything here is pure
 * parsing and comparing: no I/O, nothing that waits.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "corio/http.h"
#include "http/file_internal.h"

static const char day_names[] = "SunMonTueWedThuFriSat";
static const char month_names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";

void corio__file_meta_init(corio__file_meta *m, const struct stat *st) {
    m->size = (uint64_t)st->st_size;
    m->now = time(NULL);
    m->mtime = st->st_mtim.tv_sec < m->now ? st->st_mtim.tv_sec : m->now;
    uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u + (uint64_t)st->st_mtim.tv_nsec;
    snprintf(m->etag, sizeof m->etag, "W/\"%" PRIx64 "-%" PRIx64 "\"", m->size, ns);
    struct tm tm;
    gmtime_r(&m->mtime, &tm);
    snprintf(m->lastmod, sizeof m->lastmod, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
             day_names + 3 * tm.tm_wday, tm.tm_mday, month_names + 3 * tm.tm_mon, tm.tm_year + 1900,
             tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* v without the spaces and tabs around it. */
static corio_strv trim_ows(corio_strv v) {
    while (v.len && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++;
        v.len--;
    }
    while (v.len && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t'))
        v.len--;
    return v;
}

static bool take_char(const char **p, const char *end, char ch) {
    if (*p >= end || **p != ch)
        return false;
    (*p)++;
    return true;
}

static bool take_digits(const char **p, const char *end, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (*p >= end || **p < '0' || **p > '9')
            return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

static bool take_month(const char **p, const char *end, int *mon) {
    if (end - *p < 3)
        return false;
    for (int i = 0; i < 12; i++) {
        if (memcmp(month_names + 3 * i, *p, 3) == 0) {
            *mon = i;
            *p += 3;
            return true;
        }
    }
    return false;
}

static bool take_time(const char **p, const char *end, struct tm *tm) {
    return take_digits(p, end, 2, &tm->tm_hour) && take_char(p, end, ':') &&
           take_digits(p, end, 2, &tm->tm_min) && take_char(p, end, ':') &&
           take_digits(p, end, 2, &tm->tm_sec);
}

/* Parses an HTTP-date in any of its three forms (RFC 9110 5.6.7):
 * "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
 * "Sun Nov  6 08:49:37 1994". */
static bool parse_http_date(corio_strv v, time_t *out) {
    v = trim_ows(v);
    const char *p = v.ptr, *end = v.ptr + v.len;
    while (p < end && ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
        p++; /* the day's name */
    struct tm tm = {0};
    int year;
    if (take_char(&p, end, ',')) {
        char sep = (char)(end - p > 3 ? p[3] : 0); /* ' ' IMF-fixdate, '-' RFC 850 */
        if (!take_char(&p, end, ' ') || !take_digits(&p, end, 2, &tm.tm_mday) ||
            (sep != ' ' && sep != '-') || !take_char(&p, end, sep) ||
            !take_month(&p, end, &tm.tm_mon) || !take_char(&p, end, sep))
            return false;
        if (sep == ' ' ? !take_digits(&p, end, 4, &year) : !take_digits(&p, end, 2, &year))
            return false;
        if (sep == '-')
            year += year < 70 ? 2000 : 1900;
        if (!take_char(&p, end, ' ') || !take_time(&p, end, &tm) || !take_char(&p, end, ' ') ||
            end - p != 3 || memcmp(p, "GMT", 3) != 0)
            return false;
    } else { /* asctime */
        if (!take_char(&p, end, ' ') || !take_month(&p, end, &tm.tm_mon) ||
            !take_char(&p, end, ' '))
            return false;
        if (take_char(&p, end, ' ') ? !take_digits(&p, end, 1, &tm.tm_mday)
                                    : !take_digits(&p, end, 2, &tm.tm_mday))
            return false;
        if (!take_char(&p, end, ' ') || !take_time(&p, end, &tm) || !take_char(&p, end, ' ') ||
            !take_digits(&p, end, 4, &year) || p != end)
            return false;
    }
    if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return false;
    tm.tm_year = year - 1900;
    *out = timegm(&tm);
    return *out != (time_t)-1;
}

/* If-None-Match: whether the list holds "*" or our tag (weak comparison:
 * the W/ prefixes are ignored). */
static bool etag_listed(corio_strv v, const char *etag) {
    const char *tag = etag + 2; /* past our W/ */
    size_t tlen = strlen(tag);
    size_t i = 0;
    for (;;) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ','))
            i++;
        if (i >= v.len)
            return false;
        if (v.ptr[i] == '*')
            return true;
        if (v.len - i >= 2 && v.ptr[i] == 'W' && v.ptr[i + 1] == '/')
            i += 2;
        if (i >= v.len || v.ptr[i] != '"')
            return false; /* malformed: no match */
        const char *close = memchr(v.ptr + i + 1, '"', v.len - i - 1);
        if (!close)
            return false;
        size_t n = (size_t)(close - (v.ptr + i)) + 1;
        if (n == tlen && memcmp(v.ptr + i, tag, n) == 0)
            return true;
        i += n;
    }
}

bool corio__file_not_modified(const corio_req *req, const corio__file_meta *m) {
    corio_strv v;
    if (corio_req_header(req, "If-None-Match", &v))
        return etag_listed(v, m->etag);
    time_t since;
    if (corio_req_header(req, "If-Modified-Since", &v) && parse_http_date(v, &since))
        return m->mtime <= since;
    return false;
}

bool corio__file_if_range_holds(const corio_req *req, const corio__file_meta *m) {
    corio_strv v;
    if (!corio_req_header(req, "If-Range", &v))
        return true;
    time_t t;
    return parse_http_date(v, &t) && t == m->mtime && m->mtime < m->now;
}

/* Decimal digits, saturating at UINT64_MAX.  Returns false if there are none. */
static bool take_u64(const char **p, const char *end, uint64_t *out) {
    const char *start = *p;
    uint64_t v = 0;
    for (; *p < end && **p >= '0' && **p <= '9'; (*p)++) {
        unsigned d = (unsigned)(**p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *out = v;
    return *p > start;
}

corio__range corio__file_parse_range(corio_strv v, uint64_t size, uint64_t *start, uint64_t *len) {
    v = trim_ows(v);
    if (v.len < 6 || strncasecmp(v.ptr, "bytes=", 6) != 0 || memchr(v.ptr, ',', v.len))
        return CORIO__RANGE_NONE;
    const char *p = v.ptr, *end = v.ptr + v.len;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    uint64_t a, b;
    if (take_char(&p, end, '-')) { /* the last b bytes */
        if (!take_u64(&p, end, &b) || p != end)
            return CORIO__RANGE_NONE;
        if (b == 0)
            return CORIO__RANGE_UNSATISFIABLE;
        if (size == 0)
            return CORIO__RANGE_NONE;
        *start = b >= size ? 0 : size - b;
        *len = size - *start;
        return CORIO__RANGE_ONE;
    }
    if (!take_u64(&p, end, &a) || !take_char(&p, end, '-'))
        return CORIO__RANGE_NONE;
    bool open_end = !take_u64(&p, end, &b);
    if (p != end || (!open_end && b < a))
        return CORIO__RANGE_NONE;
    if (a >= size)
        return CORIO__RANGE_UNSATISFIABLE;
    if (open_end || b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return CORIO__RANGE_ONE;
}
