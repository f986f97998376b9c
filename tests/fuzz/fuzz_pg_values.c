/* SPDX-License-Identifier: MIT */
/* Fuzzes the PostgreSQL result accessors (framework/client/pg_result.c):
 * corio's own reading of the server's text output as C types.
 *
 * Feeds: a PGresult built with libpq's own constructors
 * (PQmakeEmptyPGresult, PQsetResultAttrs, PQsetvalue: the object a query
 * returns, without a server).  Input layout: byte 0 gives the columns
 * (1 + (b & 3)) and rows ((b >> 2) & 7); the rest is split at NUL bytes
 * into words (a text value never holds a NUL): first the column names,
 * then the cells row by row; a word starting with 0x01 is SQL NULL, a
 * missing word too.
 *
 * Asserts, for every cell and for indexes out of range (the row and column
 * counts, SIZE_MAX, INT_MAX + 1 which an int cast would wrap):
 *  - rows, cols, col_name, is_null, text and len say what was stored (the
 *    bytes, NUL-terminated; NULL and 0 for SQL NULL and out of range);
 *  - each typed getter returns a code from its documented set (0,
 *    CORIO_ENOENT exactly for SQL NULL, CORIO_EINVAL, CORIO_ERANGE for
 *    int64 only) and leaves *out untouched on failure;
 *  - corio_pg_int64 against a reference: the text PostgreSQL writes for an
 *    integer or a numeric without fraction (-?[0-9]+, or with ".0+") is
 *    read exactly, or refused with CORIO_ERANGE beyond int64 (an
 *    overflow-checked accumulation, no strtoll);
 *  - corio_pg_double: every number PostgreSQL writes (-?digits[.digits]
 *    [e[+-]digits], NaN, Infinity, -Infinity) is read as strtod_l in the C
 *    locale reads it (bit for bit; NaN as NaN), and whatever else it
 *    accepts is a full strtod_l("C") number with that value; when a locale
 *    with a decimal comma is available (FUZZ_PG_LOCALE, default
 *    de_DE.UTF-8, e.g. built with localedef and found through LOCPATH), the
 *    same answers under it (uselocale): a server's "1.5" does not depend on
 *    the application's setlocale;
 *  - corio_pg_bool: exactly "t" and "f";
 *  - the documented grammar exactly: int64 and double refuse
 *    (CORIO_EINVAL) text outside what PostgreSQL writes (leading blanks,
 *    '+', hex floats, "inf" ...: strtoll's and strtod's leniency, fixed
 *    after this harness found it).  FUZZ_PG_STRICT=0 tolerates that
 *    leniency again, bounded: int64 accepts nothing but blanks and a sign
 *    in front of the strict form;
 *  - PQclear frees all (ASan's leak check, valgrind). */
#define _GNU_SOURCE /* strtod_l, newlocale, uselocale */
#include <ctype.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "client/pg_internal.h"
#include "fuzz.h"

#define MAX_COLS 4
#define MAX_ROWS 7

static bool strict;
static locale_t c_locale, comma_locale;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *s = getenv("FUZZ_PG_STRICT");
    strict = !(s && *s == '0'); /* the contract; FUZZ_*_STRICT=0: the old leniency */
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (!c_locale)
        abort();
    const char *loc = getenv("FUZZ_PG_LOCALE");
    comma_locale = newlocale(LC_NUMERIC_MASK, loc && *loc ? loc : "de_DE.UTF-8", (locale_t)0);
    if (comma_locale) {
        char buf[16];
        locale_t old = uselocale(comma_locale);
        snprintf(buf, sizeof buf, "%.1f", 1.5);
        uselocale(old);
        if (strcmp(buf, "1,5") != 0) { /* not a decimal comma: no use */
            freelocale(comma_locale);
            comma_locale = (locale_t)0;
        }
    }
    return 0;
}

/* ---- references -------------------------------------------------------------------------- */

/* What PostgreSQL writes for an integer or a numeric without fraction:
 * -?[0-9]+(\.0+)?  Returns 0 with *v, CORIO_ERANGE, or CORIO_EINVAL. */
static int ref_int64(const char *s, int64_t *v) {
    bool neg = s[0] == '-';
    const char *d = s + neg;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0)
        return CORIO_EINVAL;
    const char *rest = d + nd;
    if (*rest == '.') {
        size_t z = strspn(rest + 1, "0");
        if (z == 0 || rest[1 + z])
            return CORIO_EINVAL;
    } else if (*rest) {
        return CORIO_EINVAL;
    }
    uint64_t mag = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (size_t i = 0; i < nd; i++) {
        uint64_t digit = (uint64_t)(d[i] - '0');
        if (mag > (limit - digit) / 10)
            return CORIO_ERANGE;
        mag = mag * 10 + digit;
    }
    *v = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    return 0;
}

/* What PostgreSQL writes for a float4, float8 or numeric. */
static bool pg_number_text(const char *s) {
    if (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity"))
        return true;
    s += *s == '-';
    size_t ip = strspn(s, "0123456789");
    s += ip;
    size_t fp = 0;
    if (*s == '.') {
        fp = strspn(s + 1, "0123456789");
        s += 1 + fp;
    }
    if (ip == 0 && fp == 0)
        return false;
    if (*s == 'e' || *s == 'E') {
        s++;
        s += *s == '+' || *s == '-';
        size_t ep = strspn(s, "0123456789");
        if (ep == 0)
            return false;
        s += ep;
    }
    return *s == '\0';
}

static bool same_double(double a, double b) {
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return memcmp(&a, &b, sizeof a) == 0;
}

/* ---- the checks ---------------------------------------------------------------------------- */

typedef struct cell {
    const char *s; /* NULL: SQL NULL */
    size_t len;
} cell;

static const int64_t I_CANARY = 0x5a5a5a5a5a5a5a5a;
static const double D_CANARY = -12345.678;

static void check_int64(const corio_pg_result *r, size_t row, size_t col, const cell *c) {
    int64_t v = I_CANARY;
    int rc = corio_pg_int64(r, row, col, &v);
    FUZZ_CHECK(rc == 0 || rc == CORIO_ENOENT || rc == CORIO_EINVAL || rc == CORIO_ERANGE,
               "int64 (%zu,%zu): %d", row, col, rc);
    if (rc != 0)
        FUZZ_CHECK(v == I_CANARY, "int64 (%zu,%zu) failed (%d) and wrote %lld", row, col, rc,
                   (long long)v);
    if (!c) {
        FUZZ_CHECK(rc == CORIO_EINVAL, "int64 out of range (%zu,%zu): %d", row, col, rc);
        return;
    }
    if (!c->s) {
        FUZZ_CHECK(rc == CORIO_ENOENT, "int64 of NULL: %d", rc);
        return;
    }
    int64_t want = 0;
    int ref = ref_int64(c->s, &want);
    if (ref != CORIO_EINVAL) {
        FUZZ_CHECK(rc == ref, "int64 '%s': %d, expected %d", c->s, rc, ref);
        FUZZ_CHECK(rc != 0 || v == want, "int64 '%s': %lld, expected %lld", c->s, (long long)v,
                   (long long)want);
        return;
    }
    if (strict) {
        FUZZ_CHECK(rc == CORIO_EINVAL, "int64 '%s' (not an integer's text): %d", c->s, rc);
        return;
    }
    /* Tolerated: strtoll's blanks and sign in front of the strict form. */
    if (rc != CORIO_EINVAL) {
        const char *t = c->s;
        while (isspace((unsigned char)*t))
            t++;
        bool neg = *t == '-';
        t += *t == '+' || *t == '-';
        char *strict_form = malloc(strlen(t) + 2);
        if (!strict_form)
            abort();
        sprintf(strict_form, "%s%s", neg ? "-" : "", t);
        int ref2 = ref_int64(strict_form, &want);
        FUZZ_CHECK(ref2 != CORIO_EINVAL && rc == ref2 && (rc != 0 || v == want),
                   "int64 '%s': %d (%lld), which no lenient reading gives (%d, %lld)", c->s, rc,
                   (long long)v, ref2, (long long)want);
        free(strict_form);
    }
}

static int double_in(const corio_pg_result *r, size_t row, size_t col, double *v) {
    *v = D_CANARY;
    int rc = corio_pg_double(r, row, col, v);
    FUZZ_CHECK(rc == 0 || rc == CORIO_ENOENT || rc == CORIO_EINVAL, "double (%zu,%zu): %d", row,
               col, rc);
    if (rc != 0)
        FUZZ_CHECK(same_double(*v, D_CANARY), "double (%zu,%zu) failed (%d) and wrote %g", row, col,
                   rc, *v);
    return rc;
}

static void check_double(const corio_pg_result *r, size_t row, size_t col, const cell *c) {
    double v;
    int rc = double_in(r, row, col, &v);
    if (!c) {
        FUZZ_CHECK(rc == CORIO_EINVAL, "double out of range (%zu,%zu): %d", row, col, rc);
        return;
    }
    if (!c->s) {
        FUZZ_CHECK(rc == CORIO_ENOENT, "double of NULL: %d", rc);
        return;
    }
    char *end;
    double want = strtod_l(c->s, &end, c_locale);
    bool full = end != c->s && *end == '\0';
    if (pg_number_text(c->s)) {
        FUZZ_CHECK(full, "the reference refuses '%s'", c->s);
        FUZZ_CHECK(rc == 0 && same_double(v, want), "double '%s': %d (%.17g), expected %.17g", c->s,
                   rc, v, want);
    } else if (strict) {
        FUZZ_CHECK(rc == CORIO_EINVAL, "double '%s' (not a number's text): %d (%.17g)", c->s, rc,
                   v);
    } else if (rc == 0) {
        FUZZ_CHECK(full && same_double(v, want), "double '%s': %.17g, strtod_l(C) says %s %.17g",
                   c->s, v, full ? "" : "not a number", want);
    }
    if (comma_locale) {
        locale_t old = uselocale(comma_locale);
        double w;
        int rc2 = double_in(r, row, col, &w);
        uselocale(old);
        FUZZ_CHECK(rc2 == rc && (rc != 0 || same_double(v, w)),
                   "double '%s': %d (%.17g) in the C locale, %d (%.17g) with a decimal comma", c->s,
                   rc, v, rc2, w);
    }
}

static void check_bool(const corio_pg_result *r, size_t row, size_t col, const cell *c) {
    bool v = true, v2 = false;
    int rc = corio_pg_bool(r, row, col, &v);
    int rc2 = corio_pg_bool(r, row, col, &v2);
    FUZZ_CHECK(rc == rc2, "bool (%zu,%zu): %d then %d", row, col, rc, rc2);
    if (rc != 0)
        FUZZ_CHECK(v == true && v2 == false, "bool (%zu,%zu) failed (%d) and wrote", row, col, rc);
    int want = !c                                           ? CORIO_EINVAL
               : !c->s                                      ? CORIO_ENOENT
               : (!strcmp(c->s, "t") || !strcmp(c->s, "f")) ? 0
                                                            : CORIO_EINVAL;
    FUZZ_CHECK(rc == want, "bool '%s': %d, expected %d", c && c->s ? c->s : "(none)", rc, want);
    if (rc == 0)
        FUZZ_CHECK(v == (c->s[0] == 't') && v2 == v, "bool '%s': %d", c->s, v);
}

static void check_cell(const corio_pg_result *r, size_t row, size_t col, const cell *c) {
    bool null = !c || !c->s;
    FUZZ_CHECK(corio_pg_is_null(r, row, col) == null, "is_null (%zu,%zu)", row, col);
    const char *t = corio_pg_text(r, row, col);
    size_t n = corio_pg_len(r, row, col);
    if (null) {
        FUZZ_CHECK(t == NULL && n == 0, "text/len of NULL or out of range (%zu,%zu): %p %zu", row,
                   col, (const void *)t, n);
    } else {
        FUZZ_CHECK(t && n == c->len && memcmp(t, c->s, n) == 0 && t[n] == '\0',
                   "text (%zu,%zu): %zu bytes, stored %zu", row, col, n, c->len);
    }
    check_int64(r, row, col, c);
    check_double(r, row, col, c);
    check_bool(r, row, col, c);
    /* NULL out pointers: refused, not written through. */
    FUZZ_CHECK(corio_pg_int64(r, row, col, NULL) == CORIO_EINVAL, "int64 to NULL");
    FUZZ_CHECK(corio_pg_double(r, row, col, NULL) == CORIO_EINVAL, "double to NULL");
    FUZZ_CHECK(corio_pg_bool(r, row, col, NULL) == CORIO_EINVAL, "bool to NULL");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_in in = {data, size};
    uint8_t b = fuzz_u8(&in);
    size_t ncols = 1 + (b & 3), nrows = (b >> 2) & 7;

    /* The words: names, then cells row by row (pointers into a copy). */
    char *text = fuzz_strndup(in.p, in.n);
    const char *words[MAX_COLS + MAX_COLS * MAX_ROWS];
    size_t lens[MAX_COLS + MAX_COLS * MAX_ROWS], nw = 0;
    for (size_t off = 0; off <= in.n && nw < ncols + ncols * nrows;) {
        size_t len = strnlen(text + off, in.n - off);
        words[nw] = text + off;
        lens[nw++] = len;
        off += len + 1;
    }
    char empty[] = "";
    PGresAttDesc attrs[MAX_COLS];
    memset(attrs, 0, sizeof attrs);
    for (size_t i = 0; i < ncols; i++) {
        attrs[i].name = i < nw ? (char *)words[i] : empty;
        attrs[i].format = 0;
        attrs[i].typid = 25; /* text */
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    cell cells[MAX_ROWS][MAX_COLS];
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    if (!res || !PQsetResultAttrs(res, (int)ncols, attrs))
        abort();
    for (size_t row = 0; row < nrows; row++) {
        for (size_t col = 0; col < ncols; col++) {
            size_t w = ncols + row * ncols + col;
            cell *c = &cells[row][col];
            c->s = NULL;
            c->len = 0;
            if (w < nw && !(lens[w] > 0 && words[w][0] == '\x01')) {
                c->s = words[w];
                c->len = lens[w];
            }
            if (!PQsetvalue(res, (int)row, (int)col, (char *)c->s, c->s ? (int)c->len : -1))
                abort();
        }
    }
    corio_pg_result *r = (corio_pg_result *)res;

    FUZZ_CHECK(corio_pg_result_rows(r) == nrows && corio_pg_result_cols(r) == ncols,
               "%zu x %zu, stored %zu x %zu", corio_pg_result_rows(r), corio_pg_result_cols(r),
               nrows, ncols);
    FUZZ_CHECK(corio_pg_result_affected(r) == 0, "a result without a command tag affected rows");
    for (size_t col = 0; col < ncols; col++) {
        const char *name = corio_pg_result_col_name(r, col);
        FUZZ_CHECK(name && strcmp(name, attrs[col].name) == 0, "column %zu's name", col);
    }
    FUZZ_CHECK(corio_pg_result_col_name(r, ncols) == NULL, "a name past the columns");
    FUZZ_CHECK(corio_pg_result_col_name(r, SIZE_MAX) == NULL, "column SIZE_MAX's name");
    for (size_t row = 0; row < nrows; row++)
        for (size_t col = 0; col < ncols; col++)
            check_cell(r, row, col, &cells[row][col]);
    const size_t far[] = {(size_t)INT_MAX + 1, (size_t)UINT_MAX + 1, SIZE_MAX};
    check_cell(r, nrows, 0, NULL);
    check_cell(r, 0, ncols, NULL);
    for (size_t i = 0; i < sizeof far / sizeof *far; i++) {
        check_cell(r, far[i], 0, NULL);
        check_cell(r, 0, far[i], NULL);
    }
    /* A NULL result: nothing, and no crash. */
    FUZZ_CHECK(corio_pg_result_rows(NULL) == 0 && corio_pg_result_cols(NULL) == 0 &&
                   corio_pg_result_affected(NULL) == 0 && corio_pg_result_col_name(NULL, 0) == NULL,
               "a NULL result");
    check_cell(NULL, 0, 0, NULL);
    corio_pg_result_free(r);
    corio_pg_result_free(NULL);
    free(text);
    return 0;
}
