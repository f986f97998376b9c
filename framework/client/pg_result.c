/* SPDX-License-Identifier: MIT */
/* Results of PostgreSQL queries (corio/pg.h): a PGresult behind accessors
 * that read PostgreSQL's text output as the common C types. */
#define _GNU_SOURCE /* strtod_l */
#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pg_internal.h"

void corio_pg_result_free(corio_pg_result *r) {
    PQclear(corio__pg_res(r)); /* NULL: nothing */
}

size_t corio_pg_result_rows(const corio_pg_result *r) {
    return r ? (size_t)PQntuples(corio__pg_res(r)) : 0;
}

size_t corio_pg_result_cols(const corio_pg_result *r) {
    return r ? (size_t)PQnfields(corio__pg_res(r)) : 0;
}

const char *corio_pg_result_col_name(const corio_pg_result *r, size_t col) {
    if (!r || col >= (size_t)PQnfields(corio__pg_res(r)))
        return NULL;
    return PQfname(corio__pg_res(r), (int)col);
}

uint64_t corio_pg_result_affected(const corio_pg_result *r) {
    const char *n = r ? PQcmdTuples(corio__pg_res(r)) : "";
    return *n ? strtoull(n, NULL, 10) : 0;
}

static bool in_range(const corio_pg_result *r, size_t row, size_t col) {
    return r && row < (size_t)PQntuples(corio__pg_res(r)) &&
           col < (size_t)PQnfields(corio__pg_res(r));
}

bool corio_pg_is_null(const corio_pg_result *r, size_t row, size_t col) {
    return !in_range(r, row, col) || PQgetisnull(corio__pg_res(r), (int)row, (int)col);
}

const char *corio_pg_text(const corio_pg_result *r, size_t row, size_t col) {
    if (corio_pg_is_null(r, row, col))
        return NULL;
    return PQgetvalue(corio__pg_res(r), (int)row, (int)col);
}

size_t corio_pg_len(const corio_pg_result *r, size_t row, size_t col) {
    if (corio_pg_is_null(r, row, col))
        return 0;
    return (size_t)PQgetlength(corio__pg_res(r), (int)row, (int)col);
}

/* The text at (row, col) for a typed read: 0 with *s, or the error. */
static int typed_text(const corio_pg_result *r, size_t row, size_t col, const void *out,
                      const char **s) {
    if (!out || !in_range(r, row, col))
        return CORIO_EINVAL;
    if (PQgetisnull(corio__pg_res(r), (int)row, (int)col))
        return CORIO_ENOENT;
    *s = PQgetvalue(corio__pg_res(r), (int)row, (int)col);
    return **s ? 0 : CORIO_EINVAL;
}

int corio_pg_int64(const corio_pg_result *r, size_t row, size_t col, int64_t *out) {
    const char *s;
    int rc = typed_text(r, row, col, out, &s);
    if (rc < 0)
        return rc;
    /* PostgreSQL's text: -?[0-9]+ (strtoll would also take blanks and '+') */
    if (*s != '-' && !(*s >= '0' && *s <= '9'))
        return CORIO_EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s)
        return CORIO_EINVAL;
    if (*end == '.') { /* a numeric: only zeros may follow the point */
        const char *z = end + 1;
        while (*z == '0')
            z++;
        if (z == end + 1 || *z)
            return CORIO_EINVAL;
        end = (char *)z;
    }
    if (*end)
        return CORIO_EINVAL;
    if (errno == ERANGE)
        return CORIO_ERANGE;
    *out = (int64_t)v;
    return 0;
}

/* The C locale's numbers, made once (newlocale is not free). */
static locale_t c_numeric_locale;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void c_numeric_make(void) {
    c_numeric_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static locale_t c_numeric(void) {
    pthread_once(&c_numeric_once, c_numeric_make);
    return c_numeric_locale;
}

int corio_pg_double(const corio_pg_result *r, size_t row, size_t col, double *out) {
    const char *s;
    int rc = typed_text(r, row, col, out, &s);
    if (rc < 0)
        return rc;
    /* What PostgreSQL writes: -?digits[.digits][e[+-]digits], "NaN",
     * "Infinity", "-Infinity", read in the C locale whatever the
     * application's setlocale (a decimal comma would refuse "1.5");
     * strtod's blanks, '+', hex floats and "inf" are refused. */
    const char *t = s + (*s == '-');
    bool word = strcmp(t, "Infinity") == 0 || (t == s && strcmp(s, "NaN") == 0);
    if (!word) {
        for (const char *q = t; *q; q++)
            if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'e' || *q == 'E' ||
                  ((*q == '-' || *q == '+') && q > t && (q[-1] == 'e' || q[-1] == 'E'))))
                return CORIO_EINVAL;
        if (!((*t >= '0' && *t <= '9') || (*t == '.' && t[1] >= '0' && t[1] <= '9')))
            return CORIO_EINVAL;
    }
    char *end;
    locale_t c = c_numeric();
    double v = c ? strtod_l(s, &end, c) : strtod(s, &end);
    if (end == s || *end)
        return CORIO_EINVAL;
    *out = v; /* a numeric beyond double's range: ±HUGE_VAL, as PostgreSQL's cast */
    return 0;
}

int corio_pg_bool(const corio_pg_result *r, size_t row, size_t col, bool *out) {
    const char *s;
    int rc = typed_text(r, row, col, out, &s);
    if (rc < 0)
        return rc;
    if (strcmp(s, "t") == 0)
        *out = true;
    else if (strcmp(s, "f") == 0)
        *out = false;
    else
        return CORIO_EINVAL;
    return 0;
}
