/* SPDX-License-Identifier: MIT */
/* Fuzzes the HTTP client's response parser (framework/client/response.c):
 * corio__client_parse_init, _feed, _eof, _take and _release, and
 * corio__response_append, driven as exchange.c drives them.
 *
 * Feeds: byte 0 chooses the options: bit 0 a response to HEAD, bits 1-2
 * max_header_bytes (64, 512, 4096, 16384), bits 3-4 max_headers (2, 8, 32,
 * 100), bits 5-7 the largest piece the bytes arrive in (1, 2, 3, 7, 16, 64,
 * 512 bytes, or all at once); byte 1 seeds the piece sizes (bits 2-7) and
 * chooses the buffered body's limit (bits 0-1: 16, 256, 4096 bytes, 1 MiB).
 * The rest is what the server sends; after its last byte the peer closes.
 * Each input is parsed twice: in pieces (each feed given the bytes received
 * and not yet consumed, zero bytes included, as exchange.c's step does),
 * and all at once.
 *
 * Asserts:
 *  - a feed returns 0 (an event) or CORIO_ERANGE, CORIO_ENOMEM,
 *    CORIO_EBADMSG; `used` never exceeds the bytes given, a MORE takes them
 *    all, a BODY piece lies inside the bytes used; HEAD comes once, before
 *    any BODY, and DONE after it; the feeds end within a bound (no
 *    livelock); eof returns 0 or CORIO_EBADMSG, and completes a response
 *    only after its head;
 *  - a final head's status is 101 or 200..599 (interim 1xx are skipped),
 *    with at most max_headers fields, each a token name and a value with no
 *    CR, LF or NUL, stored back to back in hbuf (the index matches the
 *    bytes), corio_http_response_header finding the first of a name;
 *  - the body handed out is bytes of the input, at most the input's length;
 *    corio__response_append keeps exactly those bytes, or refuses past its
 *    limit with CORIO_ERANGE;
 *  - the pieces change nothing: both parses give the same result, status,
 *    fields, body, completion and keep-alive (except that a head both over
 *    a limit and malformed may fail with either code, since pieces meet the
 *    limit sooner);
 *  - for responses a tiny reference decoder vouches for (strict status
 *    line, token names, plain values, one Content-Length or
 *    "Transfer-Encoding: chunked" without extensions or trailers, no
 *    Upgrade), the outcome is the reference's: the status, the fields,
 *    has_length and the length, CORIO_ERANGE exactly when a head passes the
 *    limits (counted as response.c documents: reason phrase, names, values,
 *    4 bytes per name and per value), CORIO_EBADMSG after 16 interim
 *    responses, the body the framing gives (Content-Length bytes, the sum
 *    of the chunks, none for HEAD/204/304, or the rest of the input when
 *    the close ends it: complete only at EOF), and CORIO_EBADMSG at EOF for
 *    a response cut short;
 *  - release (or take and free) leaves nothing allocated (ASan's leak
 *    check, valgrind). */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "base/tchar.h"
#include "client/client_internal.h"
#include "fuzz.h"

typedef struct outcome {
    int rc;         /* 0 or the first error */
    bool got_head;  /* the final head was reported */
    bool done;      /* the response is complete */
    bool by_eof;    /* ... because the peer closed */
    bool eof_clean; /* eof returned 0 without completing (nothing begun) */
    int status;     /* of the final head */
    char *fields;   /* "name\0value\0" ... copied, flen bytes */
    size_t flen, nfields;
    bool has_length;
    uint64_t length;
    char *body; /* every piece handed out, in order */
    size_t blen;
    int append_rc; /* of corio__response_append */
    bool keep_alive;
} outcome;

static void outcome_release(outcome *o) {
    free(o->fields);
    free(o->body);
}

/* ---- the checks on one parse ------------------------------------------------------------ */

static void check_head(const corio__client_parse *p, outcome *out) {
    const corio_http_response *r = p->resp;
    int st = corio_http_response_status(r);
    FUZZ_CHECK(p->head_done, "a HEAD event for a head not final (status %d)", st);
    FUZZ_CHECK(st == 101 || (st >= 200 && st <= 599), "final status %d", st);
    size_t n = corio_http_response_header_count(r);
    FUZZ_CHECK(n <= p->max_headers, "%zu fields, at most %zu", n, p->max_headers);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name, *value;
        FUZZ_CHECK(corio_http_response_header_at(r, i, &name, &value) == 0, "field %zu", i);
        FUZZ_CHECK(name == r->hbuf + at, "field %zu's name is not where the index says", i);
        size_t nl = strlen(name), vl = strlen(value);
        FUZZ_CHECK(value == name + nl + 1, "field %zu's value is not after its name", i);
        at += nl + vl + 2;
        FUZZ_CHECK(at <= r->hlen, "fields run past hbuf (%zu of %zu)", at, r->hlen);
        FUZZ_CHECK(nl > 0, "field %zu has an empty name", i);
        for (size_t k = 0; k < nl; k++)
            FUZZ_CHECK(corio__is_tchar((unsigned char)name[k]), "byte 0x%02x in a field name",
                       (unsigned char)name[k]);
        FUZZ_CHECK(!strpbrk(value, "\r\n"), "CR or LF in field '%s'", name);
        const char *first = corio_http_response_header(r, name);
        for (size_t k = 0; k < i; k++) {
            const char *kn, *kv;
            corio_http_response_header_at(r, k, &kn, &kv);
            if (strcasecmp(kn, name) == 0) {
                value = kv;
                break;
            }
        }
        FUZZ_CHECK(first == value, "corio_http_response_header('%s') is not the first", name);
    }
    FUZZ_CHECK(at == r->hlen, "the fields take %zu bytes of hbuf's %zu", at, r->hlen);
    FUZZ_CHECK(corio_http_response_header_at(r, n, NULL, NULL) == CORIO_ERANGE, "past the end");
    out->got_head = true;
    out->status = st;
    out->nfields = n;
    out->flen = at;
    out->fields = fuzz_strndup(r->hbuf ? r->hbuf : "", at);
    out->has_length = corio_http_response_length(r, &out->length);
}

typedef struct options {
    bool head_request;
    corio_http_client_opts o;
    size_t max_body;
    size_t max_piece; /* 0: all at once */
    unsigned seed;
} options;

static size_t next_piece(const options *op, unsigned *state) {
    if (!op->max_piece)
        return SIZE_MAX;
    *state = *state * 1103515245u + 12345u;
    return 1 + (*state >> 16) % op->max_piece;
}

/* Parses data (n bytes) as exchange.c does, into *out. */
static void parse(const options *op, const char *data, size_t n, outcome *out) {
    memset(out, 0, sizeof *out);
    out->body = malloc(n ? n : 1);
    if (!out->body)
        abort();
    corio__client_parse p;
    if (corio__client_parse_init(&p, &op->o, op->head_request) != 0) {
        out->rc = CORIO_ENOMEM;
        return;
    }
    unsigned state = op->seed;
    size_t pos = 0, avail = 0, piece = next_piece(op, &state);
    avail = piece > n ? n : piece;
    for (size_t iter = 0;; iter++) {
        FUZZ_CHECK(iter < 4 * n + 16, "no end after %zu feeds of %zu bytes", iter, n);
        size_t len = avail - pos, used = SIZE_MAX;
        int ev = -1;
        int rc = corio__client_parse_feed(&p, data + pos, len, &used, &ev);
        if (rc < 0) {
            FUZZ_CHECK(rc == CORIO_ERANGE || rc == CORIO_ENOMEM || rc == CORIO_EBADMSG,
                       "feed returned %d", rc);
            out->rc = rc;
            break;
        }
        FUZZ_CHECK(rc == 0 && used <= len, "feed: %d, used %zu of %zu", rc, used, len);
        const char *at = data + pos;
        pos += used;
        if (ev == CORIO__PARSE_MORE) {
            FUZZ_CHECK(used == len, "MORE after using %zu of %zu", used, len);
            if (avail < n) {
                piece = next_piece(op, &state);
                avail = piece > n - avail ? n : avail + piece;
                continue;
            }
            rc = corio__client_parse_eof(&p); /* the peer closed */
            FUZZ_CHECK(rc == 0 || rc == CORIO_EBADMSG, "eof returned %d", rc);
            out->rc = rc;
            if (rc == 0 && p.done) {
                FUZZ_CHECK(out->got_head, "eof completed a response whose head never came");
                out->done = out->by_eof = true;
            } else if (rc == 0) {
                out->eof_clean = true;
            }
            break;
        }
        if (ev == CORIO__PARSE_HEAD) {
            FUZZ_CHECK(!out->got_head, "a second HEAD");
            check_head(&p, out);
            if (p.done) { /* HEAD, 204, 304: no body */
                out->done = true;
                break;
            }
            continue;
        }
        FUZZ_CHECK(out->got_head, "event %d before the head", ev);
        if (ev == CORIO__PARSE_BODY) {
            FUZZ_CHECK(p.span && p.span_len > 0 && p.span >= at && p.span + p.span_len <= at + used,
                       "a body piece outside the bytes used");
            FUZZ_CHECK(out->blen + p.span_len <= n, "more body than input");
            memcpy(out->body + out->blen, p.span, p.span_len);
            out->blen += p.span_len;
            if (out->append_rc == 0)
                out->append_rc = corio__response_append(p.resp, p.span, p.span_len, op->max_body);
            continue;
        }
        FUZZ_CHECK(ev == CORIO__PARSE_DONE && p.done, "event %d, done %d", ev, p.done);
        out->done = true;
        break;
    }
    out->keep_alive = p.keep_alive;
    if (p.resp && out->got_head) {
        size_t kept;
        const char *b = corio_http_response_body(p.resp, &kept);
        FUZZ_CHECK(out->append_rc == 0 || out->append_rc == CORIO_ERANGE, "append: %d",
                   out->append_rc);
        if (out->append_rc == 0)
            FUZZ_CHECK(kept == out->blen && memcmp(b, out->body, kept) == 0,
                       "the buffered body is not the pieces (%zu, %zu bytes)", kept, out->blen);
        else
            FUZZ_CHECK(out->blen > op->max_body && kept <= op->max_body,
                       "append refused %zu bytes under its limit %zu", out->blen, op->max_body);
    }
    if (op->seed & 1) { /* the caller takes the response */
        corio_http_response *r = corio__client_parse_take(&p);
        FUZZ_CHECK(p.resp == NULL, "take left the response with the parser");
        corio__client_parse_release(&p);
        corio_http_response_free(r);
    } else {
        corio__client_parse_release(&p);
        FUZZ_CHECK(p.resp == NULL, "release left a response");
        corio__client_parse_release(&p);
    }
}

/* ---- the reference ------------------------------------------------------------------ */

typedef struct ref {
    bool vouched;  /* a response this decoder understands */
    int rc;        /* expected: 0, CORIO_ERANGE, CORIO_EBADMSG */
    bool range_ok; /* a cut-short head: CORIO_ERANGE may come before CORIO_EBADMSG */
    bool got_head, done, by_eof, eof_clean;
    int status;
    char *fields; /* "name\0value\0"... */
    size_t flen, nfields;
    bool has_length;
    uint64_t length;
    char *body;
    size_t blen;
    bool connection; /* the last head has a Connection field */
} ref;

static bool is_name_char(int c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static const char *line_end(const char *s, const char *end) {
    for (const char *p = s; p + 1 < end; p++)
        if (p[0] == '\r' && p[1] == '\n')
            return p;
    return NULL;
}

enum { CUT = 1, BAD = 2, OK = 0 }; /* what a piece of the reference's parse met */

/* One head at *s: the status line and fields.  Fills r's head fields. */
static int ref_head(const char **s, const char *end, int *status, bool *one_one, ref *r,
                    size_t *head_bytes, int *cl_or_te, uint64_t *cl) {
    const char *le = line_end(*s, end);
    const char *p = *s;
    /* Cut short: a start llhttp takes as a response's (it skips a leading
     * CR, LF), and no bare LF (which llhttp may take as a line's end). */
    if (!le)
        return p[0] == 'H' && !memchr(p, '\n', (size_t)(end - p)) ? CUT : BAD;
    if (le - p < 14 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
        p[8] != ' ' || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || p[12] != ' ')
        return BAD;
    for (const char *c = p + 13; c < le; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || *c == ' '))
            return BAD;
    if (le[-1] == ' ')
        return BAD;
    *one_one = p[7] == '1';
    *status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    *head_bytes = (size_t)(le - (p + 13));
    *cl_or_te = 0;
    r->flen = r->nfields = 0;
    r->connection = false;
    p = le + 2;
    for (;;) {
        le = line_end(p, end);
        if (!le)
            return memchr(p, '\n', (size_t)(end - p)) ? BAD : CUT;
        if (le == p) {
            *s = le + 2;
            return OK;
        }
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p || colon + 2 >= le || colon[1] != ' ' || colon[2] == ' ' ||
            le[-1] == ' ')
            return BAD;
        for (const char *c = p; c < colon; c++)
            if (!is_name_char((unsigned char)*c))
                return BAD;
        for (const char *c = colon + 2; c < le; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
                return BAD;
        size_t nl = (size_t)(colon - p), vl = (size_t)(le - colon - 2);
        const char *v = colon + 2;
        if (nl == 7 && strncasecmp(p, "upgrade", 7) == 0)
            return BAD;
        if (nl == 10 && strncasecmp(p, "connection", 10) == 0)
            r->connection = true;
        if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
            if (*cl_or_te || vl > 15)
                return BAD;
            *cl = 0;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return BAD;
                *cl = *cl * 10 + (uint64_t)(v[k] - '0');
            }
            *cl_or_te = 1;
        }
        if (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
            if (*cl_or_te || vl != 7 || strncasecmp(v, "chunked", 7) != 0 || !*one_one)
                return BAD;
            *cl_or_te = 2;
        }
        memcpy(r->fields + r->flen, p, nl);
        r->fields[r->flen + nl] = '\0';
        memcpy(r->fields + r->flen + nl + 1, v, vl);
        r->fields[r->flen + nl + 1 + vl] = '\0';
        r->flen += nl + vl + 2;
        r->nfields++;
        *head_bytes += nl + vl + 8;
        p = le + 2;
    }
}

static int hexval(int c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* A chunked body at s: its bytes into r->body. */
static int ref_chunked(const char *s, const char *end, ref *r) {
    for (;;) {
        const char *le = line_end(s, end);
        if (!le) {
            for (const char *c = s; c < end; c++)
                if (hexval((unsigned char)*c) < 0 && !(*c == '\r' && c + 1 == end))
                    return BAD;
            return (size_t)(end - s) > 8 ? BAD : CUT;
        }
        if (le == s || le - s > 8)
            return BAD;
        uint64_t size = 0;
        for (const char *c = s; c < le; c++) {
            if (hexval((unsigned char)*c) < 0)
                return BAD;
            size = size * 16 + (uint64_t)hexval((unsigned char)*c);
        }
        s = le + 2;
        if (size == 0) {
            if (end - s < 2)
                return end - s == 1 && s[0] != '\r' ? BAD : CUT;
            return s[0] == '\r' && s[1] == '\n' ? OK : BAD;
        }
        if ((uint64_t)(end - s) < size) {
            memcpy(r->body + r->blen, s, (size_t)(end - s));
            r->blen += (size_t)(end - s);
            return CUT;
        }
        memcpy(r->body + r->blen, s, size);
        r->blen += size;
        s += size;
        if (end - s < 2)
            return end - s == 1 && s[0] != '\r' ? BAD : CUT;
        if (s[0] != '\r' || s[1] != '\n')
            return BAD;
        s += 2;
    }
}

static void reference(const options *op, const char *data, size_t n, ref *r) {
    memset(r, 0, sizeof *r);
    r->fields = malloc(n + 1);
    r->body = malloc(n + 1);
    if (!r->fields || !r->body)
        abort();
    const char *s = data, *end = data + n;
    unsigned interim = 0;
    for (;;) {
        int status = 0, framing;
        bool one_one;
        size_t hb;
        uint64_t cl = 0;
        if (s == end) { /* nothing of a response: a clean end */
            r->vouched = true;
            r->eof_clean = true;
            return;
        }
        int k = ref_head(&s, end, &status, &one_one, r, &hb, &framing, &cl);
        if (k == BAD)
            return;
        if (k == CUT) { /* a head cut short: llhttp refuses it at EOF, or a limit first */
            r->vouched = true;
            r->rc = CORIO_EBADMSG;
            r->range_ok = true;
            return;
        }
        if (hb > op->o.max_header_bytes || r->nfields > op->o.max_headers) {
            r->vouched = true;
            r->rc = CORIO_ERANGE;
            return;
        }
        if (status == 101)
            return;         /* an upgrade: not this decoder's */
        if (status < 200) { /* no body, whatever a Content-Length says (RFC 9110 15.2) */
            /* Not this decoder's: a chunked 1xx; one that may end the
             * connection (HTTP/1.0 has no 1xx, and llhttp takes nothing
             * after a message that does not keep the connection alive). */
            if (framing == 2 || !one_one || r->connection)
                return;
            if (++interim > 16) {
                r->vouched = true;
                r->rc = CORIO_EBADMSG;
                return;
            }
            continue;
        }
        r->vouched = true;
        r->got_head = true;
        r->status = status;
        r->has_length = framing == 1 && status != 204 && status != 304;
        r->length = r->has_length ? cl : 0;
        if (op->head_request || status == 204 || status == 304) {
            r->done = true;
            return;
        }
        if (framing == 2) {
            k = ref_chunked(s, end, r);
            if (k == BAD)
                r->vouched = false;
            else if (k == CUT)
                r->rc = CORIO_EBADMSG;
            else
                r->done = true;
            return;
        }
        if (framing == 1) {
            size_t have = (size_t)(end - s);
            r->blen = cl < have ? (size_t)cl : have;
            memcpy(r->body, s, r->blen);
            if (cl > have)
                r->rc = CORIO_EBADMSG;
            else
                r->done = true;
            return;
        }
        r->blen = (size_t)(end - s); /* until the close */
        memcpy(r->body, s, r->blen);
        r->done = r->by_eof = true;
        return;
    }
}

static void compare_ref(const ref *r, const outcome *o) {
    if (r->range_ok && o->rc == CORIO_ERANGE)
        return;
    FUZZ_CHECK(o->rc == r->rc, "result %d, the reference %d", o->rc, r->rc);
    if (r->rc)
        return;
    FUZZ_CHECK(o->got_head == r->got_head && o->done == r->done && o->by_eof == r->by_eof &&
                   o->eof_clean == r->eof_clean,
               "head %d done %d by eof %d clean %d, the reference %d %d %d %d", o->got_head,
               o->done, o->by_eof, o->eof_clean, r->got_head, r->done, r->by_eof, r->eof_clean);
    if (!r->got_head)
        return;
    FUZZ_CHECK(o->status == r->status, "status %d, the reference %d", o->status, r->status);
    FUZZ_CHECK(o->nfields == r->nfields && o->flen == r->flen &&
                   memcmp(o->fields, r->fields, r->flen) == 0,
               "fields differ from the reference's (%zu, %zu)", o->nfields, r->nfields);
    FUZZ_CHECK(o->has_length == r->has_length && (!r->has_length || o->length == r->length),
               "length %d %llu, the reference %d %llu", o->has_length,
               (unsigned long long)o->length, r->has_length, (unsigned long long)r->length);
    FUZZ_CHECK(o->blen == r->blen && memcmp(o->body, r->body, r->blen) == 0,
               "body of %zu bytes, the reference %zu", o->blen, r->blen);
}

static void compare(const outcome *a, const outcome *b) {
    /* A head both over a limit and malformed fails either way: a span is
     * counted at the end of each feed, so pieces meet the limit sooner. */
    bool either = a->rc < 0 && b->rc < 0 && (a->rc == CORIO_ERANGE || b->rc == CORIO_ERANGE);
    FUZZ_CHECK((a->rc == b->rc || either) && a->got_head == b->got_head && a->done == b->done &&
                   a->by_eof == b->by_eof && a->eof_clean == b->eof_clean,
               "in pieces: %d head %d done %d eof %d; at once: %d head %d done %d eof %d", a->rc,
               a->got_head, a->done, a->by_eof, b->rc, b->got_head, b->done, b->by_eof);
    FUZZ_CHECK(a->blen == b->blen && memcmp(a->body, b->body, a->blen) == 0,
               "in pieces %zu body bytes, at once %zu", a->blen, b->blen);
    FUZZ_CHECK(a->append_rc == b->append_rc, "append %d, at once %d", a->append_rc, b->append_rc);
    if (a->got_head)
        FUZZ_CHECK(a->status == b->status && a->nfields == b->nfields && a->flen == b->flen &&
                       memcmp(a->fields, b->fields, a->flen) == 0 &&
                       a->has_length == b->has_length && a->length == b->length,
                   "the heads differ");
    if (a->done)
        FUZZ_CHECK(a->keep_alive == b->keep_alive, "keep-alive %d, at once %d", a->keep_alive,
                   b->keep_alive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const size_t header_bytes[] = {64, 512, 4096, 16384}, headers[] = {2, 8, 32, 100},
                        pieces[] = {1, 2, 3, 7, 16, 64, 512, 0},
                        bodies[] = {16, 256, 4096, 1 << 20};
    fuzz_in in = {data, size};
    uint8_t f = fuzz_u8(&in), g = fuzz_u8(&in);
    options op = {
        .head_request = f & 1,
        .o = {.max_header_bytes = header_bytes[(f >> 1) & 3], .max_headers = headers[(f >> 3) & 3]},
        .max_body = bodies[g & 3],
        .max_piece = pieces[f >> 5],
        .seed = g >> 2};
    /* The bytes alone, in a buffer of their size: a read past them is caught. */
    char *bytes = malloc(in.n ? in.n : 1);
    if (!bytes)
        abort();
    memcpy(bytes, in.p, in.n);

    outcome split, whole;
    parse(&op, bytes, in.n, &split);
    options at_once = op;
    at_once.max_piece = 0;
    parse(&at_once, bytes, in.n, &whole);
    compare(&split, &whole);

    ref r;
    reference(&op, bytes, in.n, &r);
    if (r.vouched)
        compare_ref(&r, &whole);
    free(r.fields);
    free(r.body);
    outcome_release(&split);
    outcome_release(&whole);
    free(bytes);
    return 0;
}
