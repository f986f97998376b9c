/* SPDX-License-Identifier: MIT */
/* Turning bytes into a request (see http_internal.h): the llhttp callbacks
 * that record the head as offsets into the read buffer and bound what llhttp
 * leaves unbounded (header fields, trailers, chunk lines and extensions),
 * and the checks of a complete head that llhttp leaves to its caller: sizes
 * of the request line and the head, the request line's spaces, the HTTP
 * version, Host, Transfer-Encoding (and HTTP/1.0 with it), Expect, CONNECT,
 * the target's form.
 *
 * llhttp runs in strict mode (CMakeLists.txt) and pauses twice per request:
 * when the head is complete (so the handler can run before the body is
 * read) and when the message is complete (so the next request starts from a
 * clean state).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/tchar.h"
#include "http/http_internal.h"

/* The bytes between two chunks' data: CRLF, size, extensions (at most
 * CHUNK_EXT_MAX of them), CRLF. */
#define CHUNK_EXT_MAX 1024
#define CHUNK_LINE_MAX (CHUNK_EXT_MAX + 64)

/* ---- llhttp callbacks ---------------------------------------------------------------------- */
/* ---- llhttp callbacks --------------------------------------------------------------------- */

static corio__hconn *conn_of(llhttp_t *p) {
    return p->data;
}

/* Offsets are relative to the start of the head, which is where the stream's
 * buffered bytes begin while the head is parsed. */
static int extend(corio__hconn *c, corio__span *s, const char *at, size_t len) {
    const char *base = corio__req_head(&c->req);
    if (s->len == 0) {
        s->off = (uint32_t)(at - base);
    } else if (at != base + s->off + s->len) {
        c->reject = 400; /* not contiguous: a folded (obs-fold) line */
        return -1;
    }
    s->len += (uint32_t)len;
    return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.method, at, len);
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.target, at, len);
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    return extend(c, &c->req.version, at, len);
}

/* Adds n to *count; past limit, the request is refused with `status`
 * (llhttp stops at the -1).  Everything a client sends outside the head's
 * own checks is counted so. */
static int count_within(corio__hconn *c, size_t *count, size_t n, size_t limit, int status) {
    *count += n;
    if (*count > limit) {
        c->reject = status;
        return -1;
    }
    return 0;
}

/* Trailer fields (after a chunked body) arrive through the header callbacks
 * too, long after the head: they are not part of the request's headers (and
 * their bytes are nowhere near the head), so they are only counted against
 * the header limit and dropped. */
static int trailer_bytes(corio__hconn *c, size_t len) {
    return count_within(c, &c->trailer_bytes, len, c->opts.max_header_bytes, 431);
}

/* More header fields than hdrs_inline holds go to hdrs_heap, kept across
 * requests and bounded by max_headers.  Not the arena: a head read in parts
 * must survive the arena's reset after each flush (see read_head). */
static int grow_hdrs(corio__hconn *c) {
    corio_req *r = &c->req;
    size_t cap = r->cap_hdrs * 2;
    if (cap > c->opts.max_headers)
        cap = c->opts.max_headers;
    bool on_heap = r->hdrs == c->hdrs_heap; /* before realloc moves it */
    if (cap > c->hdrs_heap_cap) {
        corio__hdr *h = realloc(c->hdrs_heap, cap * sizeof *h);
        if (!h)
            return CORIO_ENOMEM;
        c->hdrs_heap = h;
        c->hdrs_heap_cap = cap;
    }
    if (!on_heap)
        memcpy(c->hdrs_heap, r->hdrs, r->nhdrs * sizeof *r->hdrs);
    r->hdrs = c->hdrs_heap;
    r->cap_hdrs = cap;
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    corio_req *r = &c->req;
    if (c->head_done)
        return trailer_bytes(c, len);
    if (c->line_end == 0)
        c->line_end = (size_t)(at - corio__req_head(r));
    if (c->in_value || r->nhdrs == 0) {
        if (r->nhdrs >= c->opts.max_headers) {
            c->reject = 431;
            return -1;
        }
        if (r->nhdrs == 0) {
            r->hdrs = c->hdrs_inline;
            r->cap_hdrs = CORIO__HDRS_INLINE;
        } else if (r->nhdrs == r->cap_hdrs && grow_hdrs(c) != 0) {
            c->reject = 503;
            return -1;
        }
        r->hdrs[r->nhdrs++] = (corio__hdr){{0, 0}, {0, 0}};
        c->in_value = false;
    }
    return extend(c, &r->hdrs[r->nhdrs - 1].name, at, len);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    if (c->head_done)
        return trailer_bytes(c, len);
    c->in_value = true;
    return extend(c, &c->req.hdrs[c->req.nhdrs - 1].value, at, len);
}

/* With a body, pause here so the handler runs before the body is read;
 * without one, go on to on_message_complete, which pauses (and leaves the
 * parser ready for the next request). */
static int on_headers_complete(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    c->head_done = true;
    c->in_chunk_line = (p->flags & F_CHUNKED) != 0; /* the first size line comes next */
    bool body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    return body ? HPE_PAUSED : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
    corio__hconn *c = conn_of(p);
    corio_req *r = &c->req;
    if (r->sink) { /* streaming into the handler's buffer, which fits it */
        memcpy(r->sink, at, len);
        r->sink += len;
        r->sink_len -= len;
    }
    return count_within(c, &r->body_read, len, c->opts.max_body, 413);
}

static int on_message_complete(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    c->req.body_done = true;
    /* "Connection: close" among a chunked body's trailers: llhttp takes it
     * and would refuse whatever follows as data after a close, so the
     * connection closes after this response, as the client asked. */
    if (c->req.keep_alive && !llhttp_should_keep_alive(p))
        c->close = true;
    return HPE_PAUSED;
}

/* Chunk extensions are parsed and ignored: bounded per chunk, or a client
 * could stream them forever without sending a byte of body. */
static int on_chunk_extension(llhttp_t *p, const char *at, size_t len) {
    (void)at;
    corio__hconn *c = conn_of(p);
    return count_within(c, &c->chunk_ext_bytes, len, CHUNK_EXT_MAX, 400);
}

/* The size line is over: chunk data (or, for the last chunk, trailers)
 * follows.  Pauses (see corio__hconn_feed_body): the line ends here. */
static int on_chunk_header(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    /* A chunk that cannot fit in max_body is refused at once, as a
     * Content-Length that big is (corio__hconn_prepare), not once max_body
     * of its bytes have been read (or the body timeout has passed). */
    if (p->content_length > c->opts.max_body - c->req.body_read) {
        c->reject = 413;
        return -1;
    }
    c->chunk_ext_bytes = 0;
    c->in_chunk_line = false;
    c->last_chunk = p->content_length == 0;
    c->chunk_pause = true;
    return HPE_PAUSED;
}

/* A chunk's data and its CRLF are over: pauses, the next size line begins
 * here (after the last chunk, its trailers are over: no pause, the message
 * completes). */
static int on_chunk_complete(llhttp_t *p) {
    corio__hconn *c = conn_of(p);
    if (c->last_chunk)
        return 0;
    c->in_chunk_line = true;
    c->chunk_line_bytes = 0;
    c->chunk_line_ext = 0;
    c->chunk_pause = true;
    return HPE_PAUSED;
}

/* RFC 9112 7.1.1: every ';' of a size line starts an extension whose name
 * is a token.  llhttp 8.1 takes an empty one (";=v", ";;a", and after a
 * token value ";a=1;;b" and "5;a=1;" CRLF, those without a callback), so
 * the line's bytes are looked at here, across feeds: after a ';' (and BWS)
 * a tchar must come, ';' inside a quoted value excepted.  llhttp checks the
 * rest. */
enum { EXT_AFTER_SEMI = 1, EXT_QUOTED = 2, EXT_ESCAPED = 4 };

static bool chunk_exts_ok(corio__hconn *c, const char *from, const char *to) {
    unsigned st = c->chunk_line_ext;
    for (const unsigned char *q = (const unsigned char *)from; q < (const unsigned char *)to; q++) {
        if (st & EXT_ESCAPED)
            st &= ~(unsigned)EXT_ESCAPED;
        else if (st & EXT_QUOTED)
            st = *q == '\\' ? st | EXT_ESCAPED : *q == '"' ? st & ~(unsigned)EXT_QUOTED : st;
        else if (st & EXT_AFTER_SEMI) {
            if (*q == ' ' || *q == '\t')
                continue;
            if (!corio__is_tchar(*q))
                return false;
            st &= ~(unsigned)EXT_AFTER_SEMI;
        } else if (*q == ';')
            st |= EXT_AFTER_SEMI;
        else if (*q == '"')
            st |= EXT_QUOTED;
    }
    c->chunk_line_ext = (uint8_t)st;
    return true;
}

/* Counts the size line's bytes from `from` to `to` and checks its
 * extensions' names; false past the bound or for a name missing. */
static bool chunk_line_add(corio__hconn *c, const char *from, const char *to) {
    if (!from)
        return false; /* cannot happen: a size line begins where llhttp pauses */
    c->chunk_line_bytes += (size_t)(to - from);
    return c->chunk_line_bytes <= CHUNK_LINE_MAX && chunk_exts_ok(c, from, to);
}

/* RFC 9112 5.2 and 5.1: no trailer line begins with whitespace (obs-fold,
 * which llhttp joins to the line before) or with the colon of an empty
 * field name (which llhttp takes); as in the head (lines_ok), both are
 * refused.  The trailer section's bytes from `from` to `to`, in order
 * across feeds. */
static bool trailer_lines_ok(corio__hconn *c, const char *from, const char *to) {
    for (const char *q = from; q < to; q++) {
        if (!c->trailer_mid_line && (*q == ' ' || *q == '\t' || *q == ':'))
            return false;
        c->trailer_mid_line = *q != '\n';
    }
    return true;
}

/* llhttp has no callback for a chunk's size digits, and counts leading
 * zeros without end: without a bound, a client could send megabytes of
 * "000..." and hold the request open far below max_body.  llhttp pauses
 * where a size line begins (on_chunk_complete) and ends (on_chunk_header),
 * so its bytes are counted exactly, across feeds, however the client
 * splits them.  Returns what llhttp_execute returns, with the pauses of the
 * chunk callbacks resumed here: HPE_PAUSED means the message is complete. */
llhttp_errno_t corio__hconn_feed_body(corio__hconn *c, const char *data, size_t len) {
    const char *p = data, *end = data + len;
    bool ends_cr = len && end[-1] == '\r';
    for (;;) {
        const char *line = c->in_chunk_line ? p : NULL;  /* the size line's bytes from here */
        const char *trailers = c->last_chunk ? p : NULL; /* the trailer section's from here */
        c->chunk_pause = false;
        llhttp_errno_t err = llhttp_execute(&c->parser, p, (size_t)(end - p));
        if (err == HPE_PAUSED && c->chunk_pause) {
            const char *at = llhttp_get_error_pos(&c->parser);
            llhttp_resume(&c->parser);
            if (line && !c->in_chunk_line && !chunk_line_add(c, line, at))
                break; /* the line ended, too long */
            p = at;
            if (p == end) {
                c->fed_cr = ends_cr;
                return HPE_OK;
            }
            continue;
        }
        /* Still in a size line: it began before this execute (a line
         * beginning inside it pauses, and is looped round with `line` set). */
        if (err == HPE_OK && c->in_chunk_line && !chunk_line_add(c, line, end))
            break;
        if (err == HPE_OK)
            c->fed_cr = ends_cr;
        if (trailers && (err == HPE_OK || err == HPE_PAUSED) &&
            !trailer_lines_ok(c, trailers,
                              err == HPE_OK ? end : llhttp_get_error_pos(&c->parser))) {
            c->req.body_done = false; /* refused, not complete */
            break;
        }
        /* The message is complete.  The empty line ending a chunked body's
         * trailer section must be CRLF, as every line of a head must be
         * (corio__hconn_prepare): llhttp's strict mode takes a bare LF
         * there, so "0\r\n\nGET /x ..." would end the body where a front
         * end that reads "\nGET /x ..." as a trailer line does not.  The
         * byte before the final LF is this feed's, or ended the last one. */
        if (err == HPE_PAUSED && c->req.chunked) {
            const char *at = llhttp_get_error_pos(&c->parser);
            if (at - data >= 2 ? at[-2] != '\r' : !c->fed_cr) {
                c->req.body_done = false; /* not complete: a later read fails too */
                break;
            }
        }
        return err;
    }
    c->reject = 400;
    return HPE_USER;
}

static const llhttp_settings_t settings = {
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
    .on_method = on_method,
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void corio__hconn_parser_init(corio__hconn *c) {
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    /* Any version number, not only 1.0, 1.1 and 2.0: RFC 9110 2.5 has
     * HTTP/1.2 served as 1.1 (corio__hconn_prepare refuses every other
     * major version with 505).  llhttp 8 has no setter for this flag. */
    c->parser.lenient_flags |= LENIENT_VERSION;
}

/* The status to answer a head llhttp refused with. */
int corio__hconn_status_for(corio__hconn *c, llhttp_errno_t err) {
    if (c->reject)
        return c->reject;
    switch (err) {
    case HPE_INVALID_TRANSFER_ENCODING:
        return 501;
    case HPE_INVALID_VERSION:
        return 505;
    case HPE_INVALID_METHOD: {
        /* A well-formed token llhttp does not know is a method we do not
         * implement; anything else is not HTTP. */
        size_t len;
        const char *buf = corio_stream_buffered(c->s, &len);
        size_t i = 0;
        while (i < len && i < 32 && corio__is_tchar((unsigned char)buf[i]))
            i++;
        return i > 0 && i < len && buf[i] == ' ' ? 501 : 400;
    }
    default:
        return 400;
    }
}

/* ---- checking a head ------------------------------------------------------------------------ */

/* RFC 9112 2.2 and 5.2: every line of the head ends in CRLF, and no field
 * line begins with whitespace (obs-fold).  llhttp's strict mode refuses a
 * bare LF after a field value, but takes one after the request line and as
 * the empty line that ends the head, and skips a fold that comes before a
 * field's value ("Transfer-Encoding:\r\n chunked"): a front end reading
 * these bytes as RFC 9112 lets it would frame the message otherwise.  The
 * head from the request line on (empty lines before it are skipped, RFC
 * 9112 2.2) up to `end`; fields hold no CR or LF, so each LF ends a line. */
static bool lines_ok(const char *head, size_t from, size_t end) {
    const char *p = head + from, *e = head + end;
    while ((p = memchr(p, '\n', (size_t)(e - p)))) {
        if (p == head + from || p[-1] != '\r')
            return false;
        if (++p < e && (*p == ' ' || *p == '\t'))
            return false;
    }
    return true;
}

/* Whether s is a uri-host with an optional port (RFC 9112 3.2, RFC 3986
 * 3.2.2): a reg-name or IPv4 address (unreserved, pct-encoded and sub-delims
 * characters) or an IP literal in brackets, then ":" and digits.  No
 * userinfo, path, whitespace or control: RFC 9112 3.2 has a Host that is not
 * one refused with 400, and the authority of an absolute target stands for
 * Host (RFC 9112 3.2.2), so it must be one too.  Bytes, not the locale's
 * classes. */
/* Whether a field value holds no control byte but HTAB (RFC 9110 5.5: no
 * CR, LF, NUL, DEL...).  Eight bytes at a time while each word has no byte
 * below 0x20 and none equal to 0x7f; from the first word with one (a tab,
 * most likely) on, byte by byte.  Bytes from 0x80 up (obs-text) pass. */
static bool value_ok(const char *v, size_t n) {
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, v + i, 8);
        uint64_t del = x ^ (ones * 0x7f);
        if (((x - ones * 0x20) & ~x & highs) | ((del - ones) & ~del & highs))
            break;
    }
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)v[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static bool host_ok(const char *s, size_t n) {
    /* Letters, digits and -._~%!$&'()*+,;= : a bit per ASCII character */
    static const uint64_t reg[2] = {0x2bff7ff200000000u, 0x47fffffe87fffffeu};
    size_t i = 0;
    if (n && s[0] == '[') { /* an IP literal: colons inside */
        for (i = 1; i < n && s[i] != ']'; i++)
            if (s[i] != ':' && !corio__ascii_in(reg, (unsigned char)s[i]))
                return false;
        if (i++ == n)
            return false; /* no closing bracket */
    } else {
        while (i < n && corio__ascii_in(reg, (unsigned char)s[i]))
            i++;
    }
    if (i < n && s[i++] != ':')
        return false; /* a byte that is neither the host's nor the port's colon */
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* Whether the span is `want` (lower case) in any case: ASCII only, inline
 * (every field name of every request goes through here). */
static inline bool span_ieq(const corio_req *r, corio__span s, const char *want) {
    size_t n = strlen(want);
    if (s.len != n)
        return false;
    const char *p = corio__req_head(r) + s.off;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if ((ch >= 'A' && ch <= 'Z' ? ch | 0x20 : ch) != (unsigned char)want[i])
            return false;
    }
    return true;
}

/* The origin-form part of a target: "/p?q" as is; for the absolute form
 * "http://host:port/p?q" the part from the path on ("/" when it has none).
 * Anything else is returned unchanged (and refused by the caller). */
corio_strv corio__origin_target(corio_strv t) {
    if (t.len && t.ptr[0] == '/')
        return t; /* origin-form, nearly every request */
    size_t skip = t.len >= 7 && strncasecmp(t.ptr, "http://", 7) == 0    ? 7
                  : t.len >= 8 && strncasecmp(t.ptr, "https://", 8) == 0 ? 8
                                                                         : 0;
    if (!skip)
        return t;
    const char *p = t.ptr + skip, *end = t.ptr + t.len;
    while (p < end && *p != '/' && *p != '?')
        p++;
    if (p == t.ptr + skip)
        return (corio_strv){"", 0}; /* no authority: not a target */
    if (p == end || *p == '?') {
        static const char root[] = "/";
        return p == end ? (corio_strv){root, 1} : (corio_strv){"", 0};
    }
    return (corio_strv){p, (size_t)(end - p)};
}

int corio__hconn_prepare(corio__hconn *c) {
    corio_req *r = &c->req;
    llhttp_t *p = &c->parser;
    if (llhttp_get_http_major(p) != 1)
        return 505;
    r->minor = llhttp_get_http_minor(p);
    if (llhttp_get_method(p) == HTTP_CONNECT)
        return 501;
    /* RFC 9112 3: one SP on each side of the target.  llhttp, strict mode
     * or not, skips a run of spaces before and after it. */
    if (r->target.off != r->method.off + r->method.len + 1 ||
        r->version.off != r->target.off + r->target.len + sizeof " HTTP/" - 1)
        return 400;
    size_t line_len = r->version.off + r->version.len;
    if (line_len > c->opts.max_request_line)
        return 414;
    if (c->parsed - line_len > c->opts.max_header_bytes)
        return 431;
    const char *head = corio__req_head(r);
    if (!lines_ok(head, r->method.off, c->parsed))
        return 400;
    size_t hosts = 0, tes = 0, host = 0;
    for (size_t i = 0; i < r->nhdrs; i++) {
        corio__hdr *h = &r->hdrs[i];
        if (h->name.len == 0)
            return 400; /* ": value": llhttp takes an empty name */
        for (uint32_t k = 0; k < h->name.len; k++)
            if (!corio__is_tchar((unsigned char)head[h->name.off + k]))
                return 400;
        /* RFC 9110 5.5: whitespace after a value is not part of it
         * (llhttp leaves it there; "chunked " is chunked). */
        while (h->value.len && (head[h->value.off + h->value.len - 1] == ' ' ||
                                head[h->value.off + h->value.len - 1] == '\t'))
            h->value.len--;
        if (!value_ok(head + h->value.off, h->value.len))
            return 400; /* CR, LF, NUL and other controls */
    }
    for (size_t i = 0; i < r->nhdrs; i++) {
        if (span_ieq(r, r->hdrs[i].name, "host")) {
            if (!host_ok(head + r->hdrs[i].value.off, r->hdrs[i].value.len))
                return 400;
            host = i + 1;
            hosts++;
        } else if (span_ieq(r, r->hdrs[i].name, "transfer-encoding")) {
            tes++;
            if (!span_ieq(r, r->hdrs[i].value, "chunked"))
                return 501;
        } else if (!r->id_hdr && span_ieq(r, r->hdrs[i].name, "x-request-id")) {
            r->id_hdr = (uint32_t)i + 1;
        } else if (span_ieq(r, r->hdrs[i].name, "expect")) {
            if (!span_ieq(r, r->hdrs[i].value, "100-continue"))
                return 417;
            r->expect_continue = true;
        }
    }
    if (hosts > 1 || (r->minor >= 1 && hosts == 0) || tes > 1)
        return 400;
    /* RFC 9112 6.1: HTTP/1.0 has no Transfer-Encoding, so its framing is
     * faulty; a front end that ignores the field would see the "body" as
     * the next request.  Refused and closed, as nginx does. */
    if (r->minor == 0 && tes)
        return 400;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = r->chunked ? 0 : p->content_length;
    r->has_body = r->chunked || r->content_length > 0;
    if (!r->chunked && r->content_length > c->opts.max_body)
        return 413;
    r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
    r->upgrade = p->upgrade && llhttp_get_method(p) != HTTP_CONNECT;
    r->head_method = llhttp_get_method(p) == HTTP_HEAD;
    r->head_len = c->parsed;
    /* Target: origin-form, absolute-form (RFC 9112 3.2.2: a server must
     * accept it; its path is used) or "*" for OPTIONS only (3.2.4). */
    corio_strv full = corio_req_target(r), target = corio__origin_target(full);
    bool star = target.len == 1 && target.ptr[0] == '*';
    if (target.len == 0 || (target.ptr[0] != '/' && !star) ||
        (star && llhttp_get_method(p) != HTTP_OPTIONS))
        return 400;
    if (full.ptr[0] != '/' && !star) {
        /* Absolute-form ("http://" or "https://", corio__origin_target
         * says).  RFC 9112 3.2.2: its authority replaces Host, which is
         * ignored: the Host field reads as the authority (both are slices
         * of the head), for the handler and for whatever it forwards the
         * request to. */
        const char *auth = (const char *)memchr(full.ptr, ':', full.len) + 3, *e = auth;
        while (e < full.ptr + full.len && *e != '/' && *e != '?')
            e++;
        if (!host_ok(auth, (size_t)(e - auth)))
            return 400;
        if (host)
            r->hdrs[host - 1].value = (corio__span){(uint32_t)(auth - head), (uint32_t)(e - auth)};
    }
    const char *q = memchr(target.ptr, '?', target.len);
    corio_strv raw_path = {target.ptr, q ? (size_t)(q - target.ptr) : target.len};
    r->query = q ? (corio_strv){q + 1, target.len - raw_path.len - 1} : (corio_strv){"", 0};
    r->raw_path = raw_path;
    if (memchr(raw_path.ptr, '%', raw_path.len)) {
        char *dec = corio__arena_alloc(&c->arena, raw_path.len + 1);
        if (!dec)
            return 503;
        long n = corio__pct_decode(raw_path, dec, false);
        if (n < 0)
            return 400;
        r->path = (corio_strv){dec, (size_t)n};
    } else {
        r->path = raw_path;
    }
    return 0;
}
