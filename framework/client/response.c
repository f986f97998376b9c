/* SPDX-License-Identifier: MIT */
/* The HTTP client's responses: parsed by llhttp (HTTP_RESPONSE, strict mode)
 * into a response object that owns copies of its header fields, under the
 * client's limits (header section bytes, field count).  Header bytes are
 * copied because a response outlives the read buffer it came from; a field
 * split across reads is appended to in place.
 *
 * The parser pauses at every event its reader acts on: the end of the final
 * head, each piece of body (handed out in place, as a span of the bytes fed:
 * no copy), the end of the message.  The reader resumes it with the next
 * feed, which may be of zero bytes (llhttp takes its remaining steps). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "client_internal.h"

enum { MAX_INTERIM = 16 }; /* 1xx responses before the final one */

static corio__client_parse *of(llhttp_t *h) {
    return (corio__client_parse *)h->data;
}

/* Appends n bytes to *buf (len, cap); 0 or CORIO_ENOMEM. */
static int grow_append(char **buf, size_t *len, size_t *cap, const char *at, size_t n) {
    if (!*buf || *len + n + 1 > *cap) {
        size_t want = *cap ? *cap : 512; /* most response heads fit at once */
        while (want < *len + n + 1)
            want *= 2;
        char *b = realloc(*buf, want);
        if (!b)
            return CORIO_ENOMEM;
        *buf = b;
        *cap = want;
    }
    memcpy(*buf + *len, at, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* Stops the parser with err: the feed reports it. */
static int stop(corio__client_parse *p, int err) {
    p->error = err;
    return HPE_USER;
}

static int head_bytes(corio__client_parse *p, size_t n) {
    p->head_bytes += n;
    return p->head_bytes > p->max_header_bytes ? stop(p, CORIO_ERANGE) : 0;
}

static int on_status(llhttp_t *h, const char *at, size_t n) {
    (void)at;
    return head_bytes(of(h), n);
}

static int on_field_bytes(llhttp_t *h, const char *at, size_t n) {
    corio__client_parse *p = of(h);
    corio_http_response *r = p->resp;
    if (head_bytes(p, n))
        return HPE_USER;
    if (p->head_done) /* trailers: counted, not kept (the fields are indexed) */
        return 0;
    return grow_append(&r->hbuf, &r->hlen, &r->hcap, at, n) ? stop(p, CORIO_ENOMEM) : 0;
}

/* The end of a name or a value: a NUL separates it from the next. */
static int on_field_end(llhttp_t *h) {
    corio__client_parse *p = of(h);
    corio_http_response *r = p->resp;
    if (head_bytes(p, 4)) /* ": " and CRLF, roughly */
        return HPE_USER;
    if (p->head_done)
        return 0;
    /* "" is one NUL byte: append it as the separator. */
    return grow_append(&r->hbuf, &r->hlen, &r->hcap, "", 1) ? stop(p, CORIO_ENOMEM) : 0;
}

static int on_value_end(llhttp_t *h) {
    corio__client_parse *p = of(h);
    if (!p->head_done && ++p->resp->nfields > p->max_headers)
        return stop(p, CORIO_ERANGE);
    return on_field_end(h);
}

/* An empty value never calls on_header_value: give it its NUL anyway.
 * An empty name is refused: llhttp takes ": value" as a field, but a name
 * is a token (RFC 9110 5.1), and a proxy would pass on a broken line.  The
 * name is empty when nothing was appended since the last separator. */
static int on_name_end(llhttp_t *h) {
    corio__client_parse *p = of(h);
    const corio_http_response *r = p->resp;
    if (!p->head_done && (r->hlen == 0 || r->hbuf[r->hlen - 1] == '\0'))
        return stop(p, CORIO_EBADMSG);
    return on_field_end(h);
}

/* Points fields[] into hbuf: once the head is complete (hbuf no longer
 * grows). */
static int index_fields(corio_http_response *r) {
    if (!r->nfields)
        return 0;
    r->fields = malloc(2 * r->nfields * sizeof *r->fields);
    if (!r->fields)
        return CORIO_ENOMEM;
    const char *at = r->hbuf;
    for (size_t i = 0; i < 2 * r->nfields; i++) {
        r->fields[i] = at;
        at += strlen(at) + 1;
    }
    return 0;
}

static int on_headers_complete(llhttp_t *h) {
    corio__client_parse *p = of(h);
    corio_http_response *r = p->resp;
    r->status = h->status_code;
    if (h->status_code < 100 || h->status_code > 599) /* llhttp takes any three digits */
        return stop(p, CORIO_EBADMSG);                /* RFC 9110 15: 1xx to 5xx */
    /* Informational: on_message_complete forgets it.  It ends with its
     * head (RFC 9110 15.2), whatever framing it names: 1 tells llhttp,
     * which would read a 103's Content-Length body and hand it out as the
     * final response's. */
    if (h->status_code < 200 && h->status_code != 101) /* 100..199, checked above */
        return 1;
    if (index_fields(r))
        return stop(p, CORIO_ENOMEM);
    p->head_done = true;
    p->head_bytes = 0; /* from now on: trailer bytes */
    /* To HEAD: the length the body would have (a proxy passes it on). */
    r->has_length = (h->flags & F_CONTENT_LENGTH) && h->status_code != 204 && h->status_code != 304;
    r->length = r->has_length ? h->content_length : 0;
    /* A response to HEAD, a 204 and a 304 have no body whatever their
     * Content-Length says (RFC 9110 6.4.1; llhttp 8 would wait for one):
     * 1 tells llhttp so; the message completes at once and pauses there. */
    if (p->head_request || h->status_code == 204 || h->status_code == 304)
        return 1;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *h, const char *at, size_t n) {
    corio__client_parse *p = of(h);
    if (n == 0) /* llhttp flushes an open body span at the end of each feed */
        return 0;
    p->span = at;
    p->span_len = n;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *h) {
    corio__client_parse *p = of(h);
    corio_http_response *r = p->resp;
    if (!p->head_done) { /* informational: the final one follows */
        r->hlen = r->nfields = 0;
        p->head_bytes = 0;
        /* ... but not for ever: each resets the head's limits */
        return ++p->interim > MAX_INTERIM ? stop(p, CORIO_EBADMSG) : 0;
    }
    p->done = true;
    p->keep_alive = llhttp_should_keep_alive(h) && h->status_code != 101;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_status = on_status,
    .on_header_field = on_field_bytes,
    .on_header_value = on_field_bytes,
    .on_header_field_complete = on_name_end,
    .on_header_value_complete = on_value_end,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int corio__client_parse_init(corio__client_parse *p, const corio_http_client_opts *o,
                             bool head_request) {
    memset(p, 0, sizeof *p);
    p->resp = calloc(1, sizeof *p->resp);
    if (!p->resp)
        return CORIO_ENOMEM;
    p->max_header_bytes = o->max_header_bytes;
    p->max_headers = o->max_headers;
    p->head_request = head_request;
    llhttp_init(&p->parser, HTTP_RESPONSE, &settings);
    p->parser.data = p;
    return 0;
}

int corio__client_parse_feed(corio__client_parse *p, const char *data, size_t n, size_t *used,
                             int *ev) {
    if (p->paused) {
        llhttp_resume(&p->parser);
        p->paused = false;
    }
    bool had_head = p->head_done;
    p->span = NULL;
    if (!data) /* llhttp keeps an open span's start as the data pointer: NULL would close it */
        data = "";
    llhttp_errno_t e = llhttp_execute(&p->parser, data, n);
    *used = n;
    *ev = CORIO__PARSE_MORE;
    if (e == HPE_OK)
        return 0;
    if (e == HPE_PAUSED) {
        p->paused = true;
        *used = (size_t)(llhttp_get_error_pos(&p->parser) - data);
        if (!had_head) /* a HEAD's response may be done too: p->done says */
            *ev = CORIO__PARSE_HEAD;
        else if (p->span)
            *ev = CORIO__PARSE_BODY;
        else
            *ev = CORIO__PARSE_DONE;
        return 0;
    }
    if (p->error) /* a callback's stop(): HPE_USER from a data callback, but
                   * HPE_CB_* from a notification one (value_complete...) */
        return p->error;
    return CORIO_EBADMSG;
}

int corio__client_parse_eof(corio__client_parse *p) {
    if (p->done)
        return 0;
    llhttp_errno_t e = llhttp_finish(&p->parser);
    if (e == HPE_OK || (e == HPE_PAUSED && p->done))
        return 0;
    return CORIO_EBADMSG;
}

corio_http_response *corio__client_parse_take(corio__client_parse *p) {
    corio_http_response *r = p->resp;
    p->resp = NULL;
    return r;
}

int corio__response_append(corio_http_response *r, const char *data, size_t n, size_t max) {
    if (r->blen + n > max)
        return CORIO_ERANGE;
    if (!r->body && r->has_length && r->length <= max) { /* one allocation */
        if (!(r->body = malloc(r->length + 1)))
            return CORIO_ENOMEM;
        r->bcap = r->length + 1;
    }
    return grow_append(&r->body, &r->blen, &r->bcap, data, n);
}

void corio__client_parse_release(corio__client_parse *p) {
    corio_http_response_free(p->resp);
    p->resp = NULL;
}

/* ---- the public accessors ---------------------------------------------------------------- */

int corio_http_response_status(const corio_http_response *r) {
    return r->status;
}

const char *corio_http_response_header(const corio_http_response *r, const char *name) {
    for (size_t i = 0; i < r->nfields; i++)
        if (strcasecmp(r->fields[2 * i], name) == 0)
            return r->fields[2 * i + 1];
    return NULL;
}

size_t corio_http_response_header_count(const corio_http_response *r) {
    return r->nfields;
}

int corio_http_response_header_at(const corio_http_response *r, size_t i, const char **name,
                                  const char **value) {
    if (i >= r->nfields)
        return CORIO_ERANGE;
    if (name)
        *name = r->fields[2 * i];
    if (value)
        *value = r->fields[2 * i + 1];
    return 0;
}

const char *corio_http_response_body(const corio_http_response *r, size_t *len) {
    if (len)
        *len = r->blen;
    return r->body ? r->body : "";
}

bool corio_http_response_length(const corio_http_response *r, uint64_t *len) {
    if (r->has_length && len)
        *len = r->length;
    return r->has_length;
}

void corio_http_response_free(corio_http_response *r) {
    if (!r)
        return;
    free(r->hbuf);
    free(r->fields);
    free(r->body);
    free(r);
}
