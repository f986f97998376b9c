/* SPDX-License-Identifier: MIT */
/* fuzz_chunked — chunked request bodies and body streaming under libFuzzer (issue 21 §1.3).
 *
 * Feeds: one POST with "Transfer-Encoding: chunked" (to /read, which reads it with
 * corio_req_read in sizes the input chooses, or to /body, corio_req_body), optionally with
 * "Expect: 100-continue" and a pipelined "GET /a" behind it, whose chunk sizes (spelled in
 * lower or upper case, with leading zeros, or wrong by a little), extensions (none, bare,
 * valued, quoted, several, over the 1 KiB bound, with spaces, raw bytes), data, line ends,
 * last-chunk extensions, trailers (normal, raw lines, over the header limit, framing names)
 * and ending come from the input; sent over the same real connection as fuzz_http_server
 * (this file includes fuzz_http_server.c for its loop thread, server, router, client and
 * response checks), split into writes where the input says.  Input layout:
 *   byte 0   bit 0 POST /body instead of /read, bit 1 Expect: 100-continue, bit 2 a pipelined
 *            GET /a after the body, bit 3 settle before the half-close, bits 4-7 k splits
 *   byte 1   bits 0-3 r read sizes, bits 4-7 c chunks
 *   2k bytes the splits (as in fuzz_http_server); r bytes the read sizes (each b + 1)
 *   then per chunk: L (data length; 0 writes a premature last chunk), F (bits 0-1 the size's
 *            spelling: hex, HEX, leading zeros, off by -1/+1/+2/+16 (bits 2-3); bits 4-6 the
 *            extension form; bit 7 a bare LF after the data), a raw extension's length and
 *            bytes when F asks, then L data bytes
 *   then T (bits 0-1 trailers, bits 2-3 the last chunk's extension, bits 4-5 the ending:
 *            CRLF, bare LF, none, CRLF + a stray byte; bits 6-7 the trailer form) and per
 *            trailer a length byte and its bytes.
 * An independent decoder in this file (RFC 9112 7.1 on the wire, with corio's bounds: the
 * body's max_body, 1 KiB of extensions per chunk, 1088 bytes per size line, max_header_bytes
 * of trailers) says whether the body is well-formed, malformed (and which status: 400, 413,
 * 431), cut short, or in a band it cannot call (a bound's exact edge, an llhttp 8.1 quirk).
 * Asserts, besides everything fuzz_http_server asserts on the responses:
 *   - well-formed: the handler received exactly the decoded bytes (and no read wrote past
 *     what it returned: canaries), the answer is 200 with the decoded length and CRC32, the
 *     connection stays, and the pipelined GET /a is the second request and is answered;
 *   - malformed: the answer is the expected 400 (413, 431), closing, and nothing after it:
 *     no second request reached a handler;
 *   - cut short: no answer, or an error that closes;
 *   - always: the bytes a handler received are a prefix of the body as the wire frames it.
 */
#define FUZZ_HTTP_NO_ENTRY 1
#include "fuzz_http_server.c"

#include <stddef.h>

/* ---- building the request from the input ------------------------------------------------------
 */

#define REQ_MAX (128 * 1024)

typedef struct cursor {
    const uint8_t *p, *end;
} cursor;

static bool cur_more(const cursor *c) {
    return c->p < c->end;
}

static uint8_t cur_byte(cursor *c) {
    return c->p < c->end ? *c->p++ : 0;
}

typedef struct builder {
    uint8_t buf[REQ_MAX];
    size_t len;
} builder;

static builder req;

static void put(const void *p, size_t n) {
    if (n > REQ_MAX - req.len)
        n = REQ_MAX - req.len;
    memcpy(req.buf + req.len, p, n);
    req.len += n;
}

static void puts_(const char *s) {
    put(s, strlen(s));
}

static void put_fill(char ch, size_t n) {
    while (n--)
        put(&ch, 1);
}

/* Bytes from the cursor (as many as are left). */
static void put_cur(cursor *c, size_t n) {
    size_t left = (size_t)(c->end - c->p);
    if (n > left)
        n = left;
    put(c->p, n);
    c->p += n;
}

static void put_ext(cursor *c, unsigned form, size_t salt) {
    switch (form) {
    case 0:
        break;
    case 1:
        puts_(";e");
        break;
    case 2:
        puts_(";name=value");
        break;
    case 3:
        puts_(";a;b");
        break;
    case 4:
        puts_(";q=\"quoted v\"");
        break;
    case 5: /* around the 1 KiB bound on extension bytes */
        puts_(";x=");
        put_fill('v', 1000 + salt % 64);
        break;
    case 6:
        puts_(" ;a");
        break;
    default:
        put_cur(c, cur_byte(c));
        break;
    }
}

static void put_size(uint64_t size, unsigned form, unsigned arg) {
    char line[64];
    static const int deltas[4] = {-1, 1, 2, 16};
    switch (form) {
    case 0:
        snprintf(line, sizeof line, "%" PRIx64, size);
        break;
    case 1:
        snprintf(line, sizeof line, "%" PRIX64, size);
        break;
    case 2:
        snprintf(line, sizeof line, "%.*s%" PRIx64, (int)(arg + 1) * 4, "0000000000000000", size);
        break;
    default: {
        int64_t s = (int64_t)size + deltas[arg];
        snprintf(line, sizeof line, "%" PRIx64, (uint64_t)(s < 0 ? 0 : s));
        break;
    }
    }
    puts_(line);
}

static const char *const trailer_names[8] = {
    "Content-Length", "Transfer-Encoding", "Host", "Connection",
    "Upgrade",        "Trailer",           "X-A",  "Expect"};

typedef struct plan {
    bool body_route, expect, follow, settle;
    size_t body_start, body_end; /* the body's bytes in req.buf */
    size_t follow_start;
} plan;

static void build(cursor *c, unsigned nchunks, plan *pl) {
    req.len = 0;
    puts_(pl->body_route ? "POST /body HTTP/1.1\r\n" : "POST /read HTTP/1.1\r\n");
    puts_("Host: x\r\nTransfer-Encoding: chunked\r\n");
    if (pl->expect)
        puts_("Expect: 100-continue\r\n");
    puts_("\r\n");
    pl->body_start = req.len;
    for (unsigned i = 0; i < nchunks && cur_more(c); i++) {
        uint8_t L = cur_byte(c), F = cur_byte(c);
        put_size(L, F & 3, (F >> 2) & 3);
        put_ext(c, (F >> 4) & 7, L + i);
        puts_("\r\n");
        if (L == 0)
            break; /* a premature last chunk: what follows is read as trailers */
        put_cur(c, L);
        puts_(F & 0x80 ? "\n" : "\r\n");
    }
    uint8_t T = cur_byte(c);
    puts_("0");
    unsigned lext = (T >> 2) & 3;
    put_ext(c, lext == 3 ? 7 : lext, 0);
    puts_("\r\n");
    for (unsigned i = 0; i < (T & 3u); i++) {
        uint8_t n = cur_byte(c);
        switch (T >> 6) {
        case 0:
            puts_("X-T: ");
            put_cur(c, n);
            break;
        case 1: /* a raw line */
            put_cur(c, n);
            break;
        case 2: /* around the trailer bound */
            puts_("X-Long: ");
            put_fill('t', 480 + n % 64);
            break;
        default:
            puts_(trailer_names[n & 7]);
            puts_(": ");
            put_cur(c, n >> 3);
            break;
        }
        puts_("\r\n");
    }
    static const char *const endings[4] = {"\r\n", "\n", "", "\r\nX"};
    puts_(endings[(T >> 4) & 3]);
    pl->body_end = req.len;
    pl->follow_start = req.len;
    if (pl->follow)
        puts_("GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
}

/* ---- the independent decoder ---------------------------------------------------------------- */

enum dec_outcome {
    DEC_OK,         /* well-formed: `out` is the body, `end` where it ends */
    DEC_BAD,        /* malformed or over a bound: answered with one of `statuses` */
    DEC_INCOMPLETE, /* the input ends inside the body */
};

#define ST_400 1u
#define ST_413 2u
#define ST_431 4u

typedef struct dec {
    enum dec_outcome outcome;
    bool unsure;       /* OK or BAD may both be right (a bound's edge, an llhttp quirk) */
    unsigned statuses; /* BAD (and unsure): the statuses the server may answer */
    bool odd_trailer;  /* a trailer named for framing or the connection: the next request is
                        * not vouched for */
    bool line_may_413; /* a malformed size line llhttp takes: its size may be refused first */
    uint8_t out[REQ_MAX];
    size_t out_len;
    size_t end;
    const char *why;
} dec;

static dec D;

#define CHUNK_EXT_BOUND 1024 /* parse.c CHUNK_EXT_MAX */
#define SIZE_LINE_MAX 1088   /* parse.c CHUNK_LINE_MAX */
#define BOUND_SLACK 16       /* how far from a bound the decoder calls it */

static void dec_bad(dec *d, unsigned statuses, const char *why) {
    d->outcome = DEC_BAD;
    d->statuses |= statuses;
    d->why = why;
}

static void dec_unsure(dec *d, unsigned statuses, const char *why) {
    d->unsure = true;
    d->statuses |= statuses;
    if (!d->why)
        d->why = why;
}

/* 1 CRLF at *i, 0 the input ends first, -1 something else. */
static int crlf(const uint8_t *p, size_t n, size_t *i) {
    if (*i >= n || (p[*i] == '\r' && *i + 1 >= n))
        return 0;
    if (p[*i] == '\r' && p[*i + 1] == '\n') {
        *i += 2;
        return 1;
    }
    return -1;
}

static bool is_qdtext(uint8_t c) {
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c <= 0x7e);
}

/* A size line's extensions at *i: *( ";" name [ "=" ( token / quoted-string ) ] ).  Returns 1,
 * 0 if the input ends inside them, -1 if malformed (the caller's CRLF check reports). */
static int dec_exts(dec *d, const uint8_t *p, size_t n, size_t *i, size_t *bytes) {
    bool token_valued = false;
    while (*i < n && p[*i] == ';') {
        (*i)++;
        /* After a token value and ';', llhttp 8.1 refuses a name (";a=1;b", which RFC 9112
         * allows) and takes a CRLF or another ';' (";a=1;" CRLF, ";a=1;;b", which it does not);
         * corio refuses those at the line's end, once llhttp has seen the size (413 first for
         * a chunk too large). */
        if (token_valued) {
            d->line_may_413 = true;
            return -1;
        }
        token_valued = false;
        size_t t = *i;
        while (*i < n && is_tchar(p[*i]))
            (*i)++;
        /* An empty name: llhttp 8.1 refuses one before the CRLF ("5;"), takes one before
         * '=' or ';' (";=v", ";;a"), which corio refuses once llhttp has the line (413
         * first for a chunk too large). */
        if (*i == t && *i < n) {
            d->line_may_413 = true;
            return -1;
        }
        *bytes += *i - t;
        if (*i < n && p[*i] == '=') {
            (*i)++;
            size_t t0 = *i;
            while (*i < n && is_tchar(p[*i]))
                (*i)++;
            if (*i > t0 && *i < n && p[*i] == '"') /* llhttp 8.1 takes a"b" */
                dec_unsure(d, ST_400, "a token value running into a quoted string");
            else
                *i = t0;
            if (*i < n && p[*i] == '"') {
                (*i)++;
                while (*i < n && p[*i] != '"') {
                    if (p[*i] == '\\') {
                        dec_unsure(d, ST_400, "llhttp 8.1 refuses a quoted-pair");
                        if (++*i >= n)
                            return 0;
                    } else if (p[*i] >= 0x80) {
                        dec_unsure(d, ST_400, "obs-text in a quoted extension");
                    } else if (!is_qdtext(p[*i])) {
                        return -1;
                    }
                    (*i)++;
                }
                if (*i >= n)
                    return 0;
                (*i)++;
                *bytes += *i - t0;
            } else {
                t = *i;
                while (*i < n && is_tchar(p[*i]))
                    (*i)++;
                if (*i == t)
                    dec_unsure(d, ST_400, "llhttp 8.1 takes an empty extension value");
                *bytes += *i - t;
                token_valued = true;
            }
        }
    }
    return 1;
}

/* Trailer lines at *i up to the blank line. */
static void dec_trailers(dec *d, const uint8_t *p, size_t n, size_t i, size_t max_hdr) {
    size_t bytes = 0;
    for (;;) {
        if (i >= n) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        if (p[i] == '\n') {
            /* llhttp 8.1 takes a bare LF as the blank line (see the report) */
            dec_unsure(d, ST_400, "a bare LF ends the trailers");
            d->end = i + 1;
            return;
        }
        int r = crlf(p, n, &i);
        if (r == 1) {
            d->end = i;
            return;
        }
        if (r == 0) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        size_t t = i;
        /* obs-fold: llhttp 8.1 takes it in trailers, corio refuses it as in a head */
        if (p[i] == ' ' || p[i] == '\t')
            return dec_bad(d, ST_400, "an obs-fold line in the trailers");
        while (i < n && is_tchar(p[i]))
            i++;
        size_t name = i - t;
        /* the bound may trip on the name alone, before anything malformed after it */
        unsigned limit = bytes + name > max_hdr ? ST_431 : 0;
        if (i >= n) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        if (p[i] != ':')
            return dec_bad(d, ST_400 | limit, "a malformed trailer name");
        if (name == 0) /* llhttp 8.1 takes ": v", corio refuses it */
            return dec_bad(d, ST_400 | limit, "an empty trailer name");
        /* llhttp checks these as if in a head: it refuses a Transfer-Encoding trailer
         * naming a coding, takes an empty one, and checks a Content-Length's digits */
        if (bytes_ieq(p + t, name, "transfer-encoding") || bytes_ieq(p + t, name, "content-length"))
            dec_unsure(d, ST_400 | limit, "a framing field as a trailer");
        for (size_t k = 0; k < 8; k++)
            if (bytes_ieq(p + t, name, trailer_names[k]) && k != 6)
                d->odd_trailer = true;
        i++;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        size_t v = i;
        while (i < n && (p[i] == '\t' || (p[i] >= 0x20 && p[i] != 0x7f))) {
            if (p[i] >= 0x80)
                dec_unsure(d, ST_400, "obs-text in a trailer");
            i++;
        }
        bytes += name + (i - v);
        if (bytes > max_hdr)
            limit = ST_431;
        r = crlf(p, n, &i);
        if (r == 0) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        if (r < 0)
            return dec_bad(d, ST_400 | limit, "a malformed trailer line");
        if (bytes > max_hdr + BOUND_SLACK)
            return dec_bad(d, ST_431, "trailers over max_header_bytes");
        if (bytes + BOUND_SLACK > max_hdr)
            dec_unsure(d, ST_431, "trailers at max_header_bytes");
    }
}

/* Decodes the chunked body at p (n bytes to the end of the input), as the wire frames it. */
static void decode(dec *d, const uint8_t *p, size_t n, size_t max_body, size_t max_hdr) {
    memset(d, 0, offsetof(dec, out));
    d->out_len = 0;
    d->outcome = DEC_OK;
    size_t i = 0;
    for (;;) {
        size_t line = i;
        uint64_t size = 0;
        bool overflow = false;
        while (i < n && is_hex(p[i])) {
            if (size >> 60)
                overflow = true;
            size = size * 16 + (uint64_t)hex_val(p[i]);
            i++;
        }
        if (i == line) {
            if (i >= n)
                d->outcome = DEC_INCOMPLETE;
            else
                dec_bad(d, ST_400, "no chunk size");
            return;
        }
        if (overflow)
            return dec_bad(d, ST_400, "a chunk size over 64 bits");
        size_t ext = 0;
        int e = dec_exts(d, p, n, &i, &ext);
        size_t line_len = i - line + 2;
        if (ext > CHUNK_EXT_BOUND + BOUND_SLACK || line_len > SIZE_LINE_MAX + BOUND_SLACK)
            return dec_bad(d, ST_400, "a size line over its bounds");
        if (ext + BOUND_SLACK > CHUNK_EXT_BOUND || line_len + BOUND_SLACK > SIZE_LINE_MAX)
            dec_unsure(d, ST_400, "a size line at its bounds");
        if (e == 0) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        int r = e < 0 ? -1 : crlf(p, n, &i);
        if (r == 0) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        /* llhttp 8.1 may take the line and refuse a chunk too large before corio finds it
         * malformed (after a token value and ';', see dec_exts) */
        if (r < 0)
            return dec_bad(d,
                           ST_400 | (d->line_may_413 && size > max_body - d->out_len ? ST_413 : 0),
                           "a malformed size line");
        if (size == 0)
            return dec_trailers(d, p, n, i, max_hdr);
        if (size > max_body - d->out_len) /* refused once its size is known */
            return dec_bad(d, ST_413, "a chunk over what is left of max_body");
        size_t avail = n - i < size ? n - i : (size_t)size;
        size_t room = max_body + 1 - d->out_len; /* the server counts one byte past the bound */
        memcpy(d->out + d->out_len, p + i, avail < room ? avail : room);
        d->out_len += avail < room ? avail : room;
        if (d->out_len > max_body)
            return dec_bad(d, ST_413, "a body over max_body");
        if (avail < size) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        i += size;
        r = crlf(p, n, &i);
        if (r == 0) {
            d->outcome = DEC_INCOMPLETE;
            return;
        }
        if (r < 0)
            return dec_bad(d, ST_400, "chunk data not followed by CRLF");
    }
}

/* ---- the checks ---------------------------------------------------------------------------------
 */

static const corio_http_opts chunked_opts = {
    .max_request_line = 256,
    .max_header_bytes = 512,
    .max_headers = 16,
    .max_body = 2048,
    .header_timeout_ms = 2000,
    .body_timeout_ms = 2000,
    .keepalive_timeout_ms = 2000,
    .send_timeout_ms = 2000,
};

static bool status_in(int status, unsigned set) {
    return (status == 400 && (set & ST_400)) || (status == 413 && (set & ST_413)) ||
           (status == 431 && (set & ST_431));
}

static bool outcome_ok(const plan *pl) {
    if (nresps < 1 || resps[0].status != 200 || H.nlog < 1)
        return false;
    const resp *r = &resps[0];
    const log_entry *e = &H.log[0];
    CHECK(e->body_rc == 0, "a 200 for a body its handler did not read whole (%d)", e->body_rc);
    CHECK(e->body_len == D.out_len && H.body_kept == D.out_len &&
              memcmp(H.body, D.out, D.out_len) == 0,
          "the handler received %zu bytes, not the %zu decoded ones", e->body_len, D.out_len);
    char want[96];
    int wn = snprintf(want, sizeof want, "n=1 len=%zu crc=%08" PRIx32 "\n", D.out_len,
                      crc32_update(0, D.out, D.out_len));
    CHECK(r->body_len == (size_t)wn && memcmp(r->body, want, (size_t)wn) == 0,
          "the answer's body is not the decoded body's length and CRC (%s)", want);
    CHECK(r->n100 == 0 || pl->expect, "a 100 Continue nobody asked for");
    /* a Connection trailer may say close (llhttp takes it; corio then closes) */
    CHECK(!r->close || D.odd_trailer, "a well-formed chunked body, yet the connection closes");
    if (pl->follow && D.end == pl->follow_start - pl->body_start && !D.odd_trailer) {
        CHECK(nresps == 2 && H.nlog == 2, "the pipelined GET after the body: %zu responses",
              nresps);
        static const char get[] = "n=2 m=GET t=/a\n";
        CHECK(resps[1].status == 200 && resps[1].body_len == sizeof get - 1 &&
                  memcmp(resps[1].body, get, sizeof get - 1) == 0,
              "the pipelined GET /a was not answered as the second request");
    }
    return true;
}

static void outcome_bad(void) {
    CHECK(nresps == 1, "a malformed body: %zu responses, one expected", nresps);
    const resp *r = &resps[0];
    CHECK(status_in(r->status, D.statuses), "a malformed body (%s) answered %d", D.why, r->status);
    CHECK(r->close && !r->has_seq, "the refusal of a malformed body does not close");
    CHECK(H.nlog == 1, "%zu requests reached a handler, the first one's body malformed", H.nlog);
}

static void check_chunked(const plan *pl) {
    /* Always: what a handler received is a prefix of the body the wire frames. */
    if (H.nlog >= 1) {
        const log_entry *e = &H.log[0];
        CHECK(e->body_len <= D.out_len && H.body_kept == e->body_len &&
                  memcmp(H.body, D.out, e->body_len) == 0,
              "the handler received %zu bytes that are not the body's first ones (%zu decoded)",
              e->body_len, D.out_len);
    }
    switch (D.outcome) {
    case DEC_OK:
        if (!outcome_ok(pl)) {
            CHECK(D.unsure, "a well-formed body answered %d (%zu responses)",
                  nresps ? resps[0].status : 0, nresps);
            outcome_bad();
        }
        break;
    case DEC_BAD:
        if (D.unsure && nresps >= 1 && resps[0].status == 200)
            CHECK(outcome_ok(pl), "a 200 that is not the body's answer");
        else
            outcome_bad();
        break;
    case DEC_INCOMPLETE:
        CHECK(nresps <= 1 && H.nlog <= 1, "a body cut short: %zu responses", nresps);
        if (nresps)
            CHECK(resps[0].status >= 400 && resps[0].close, "a body cut short answered %d%s",
                  resps[0].status, resps[0].close ? "" : " keeping the connection");
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2)
        return 0;
    cursor c = {data, data + size};
    uint8_t flags = cur_byte(&c), counts = cur_byte(&c);
    size_t k = flags >> 4, nreads = counts & 15, nchunks = counts >> 4;
    if ((size_t)(c.end - c.p) < 2 * k + nreads)
        return 0;
    plan pl = {.body_route = flags & 1,
               .expect = (flags & 2) != 0,
               .follow = (flags & 4) != 0,
               .settle = (flags & 8) != 0};
    fuzz_piece pieces[16];
    for (size_t i = 0; i < k; i++) {
        uint8_t step = cur_byte(&c), ctl = cur_byte(&c);
        pieces[i] = (fuzz_piece){.len = (size_t)step + 1, .yields = ctl & 7};
    }
    uint16_t reads[16];
    for (size_t i = 0; i < nreads; i++)
        reads[i] = (uint16_t)(cur_byte(&c) + 1);
    build(&c, (unsigned)nchunks, &pl);
    fuzz_job j = {.data = req.buf,
                  .len = req.len,
                  .pieces = pieces,
                  .npieces = k,
                  .opts = chunked_opts,
                  .settle = pl.settle,
                  .read_plan = nreads ? reads : NULL,
                  .read_plan_n = nreads};
    fuzz_run(&j);
    decode(&D, req.buf + pl.body_start, req.len - pl.body_start, chunked_opts.max_body,
           chunked_opts.max_header_bytes);
    ref_limits lim = limits_of(&chunked_opts);
    ref_parse(req.buf, req.len, &lim, &the_ref);
    parse_responses(ref_sent_head, &the_ref);
    check_sequence();
    check_against_ref(&the_ref, req.buf, req.len);
    check_chunked(&pl);
    if (getenv("FUZZ_HTTP_DUMP")) {
        fprintf(stderr, "decoder: outcome %d%s (%s), %zu bytes; %zu responses, %zu dispatched\n",
                (int)D.outcome, D.unsure ? " unsure" : "", D.why ? D.why : "-", D.out_len, nresps,
                H.nlog);
        dump_escaped("sent", req.buf, req.len);
        dump_escaped("received", rx.buf, rx.len);
    }
    return 0;
}
