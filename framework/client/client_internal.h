/* SPDX-License-Identifier: MIT */
/* The HTTP client's private pieces shared by its files:
 *   response.c  the response object and its llhttp parser;
 *   url.c       URLs and request heads;
 *   pool.c      the client, its origins and their connection pools;
 *   exchange.c  one request and response on a checked-out connection;
 *   request.c   requests as futures, and the helpers over several.
 * Private to framework/client/. */
#ifndef CORIO_CLIENT_INTERNAL_H
#define CORIO_CLIENT_INTERNAL_H
#include "corio/http_client.h"
#include "corio/stream.h"
#include "corio/sync.h"
#include <llhttp.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- responses (response.c) ---------------------------------------------------------------- */

struct corio_http_response {
    int status;
    bool has_length;
    uint64_t length;
    char *hbuf; /* "name\0value\0" for each field, in order */
    size_t hlen, hcap;
    const char **fields; /* 2 * nfields pointers into hbuf, built with the head */
    size_t nfields;
    char *body;
    size_t blen, bcap;
};

/* What one feed of the parser stopped at. */
enum {
    CORIO__PARSE_MORE, /* every byte taken: read more */
    CORIO__PARSE_HEAD, /* the final response's head is complete (fields indexed) */
    CORIO__PARSE_BODY, /* a piece of body: p->span, p->span_len */
    CORIO__PARSE_DONE, /* the response is complete */
};

/* One response being parsed from a connection. */
typedef struct corio__client_parse {
    llhttp_t parser;
    corio_http_response *resp;
    size_t max_header_bytes, max_headers;
    size_t head_bytes; /* status line + header (or trailer) bytes seen so far */
    unsigned interim;  /* 1xx responses so far */
    const char *span;  /* CORIO__PARSE_BODY's piece */
    size_t span_len;
    int error;         /* a limit's code when a callback stopped the parser */
    bool head_request; /* the response has no body, whatever it says */
    bool paused;       /* resume before the next feed */
    bool head_done;    /* the final response's head has been reported */
    bool done;         /* on_message_complete of the final response */
    bool keep_alive;   /* llhttp_should_keep_alive at its end */
} corio__client_parse;

/* Starts parsing a response (resp is created here).  Returns 0, CORIO_ENOMEM. */
int corio__client_parse_init(corio__client_parse *p, const corio_http_client_opts *o,
                             bool head_request);
/* Feeds n bytes (n may be 0: a paused parser may still have a step to
 * take).  Returns 0 and *ev (CORIO__PARSE_*) with *used, the bytes taken
 * (a BODY span lies inside them); or CORIO_ERANGE (a limit), CORIO_ENOMEM,
 * CORIO_EBADMSG. */
int corio__client_parse_feed(corio__client_parse *p, const char *data, size_t n, size_t *used,
                             int *ev);
/* The peer's input ended: completes a body delimited by the close.  Returns
 * 0 (p->done then tells whether the response is complete), or
 * CORIO_EBADMSG. */
int corio__client_parse_eof(corio__client_parse *p);
/* Takes the parsed response.  The parser forgets it. */
corio_http_response *corio__client_parse_take(corio__client_parse *p);
/* Appends a body piece to r (buffered responses), refusing beyond max:
 * 0, CORIO_ERANGE, CORIO_ENOMEM. */
int corio__response_append(corio_http_response *r, const char *data, size_t n, size_t max);
/* Frees whatever the parser still owns. */
void corio__client_parse_release(corio__client_parse *p);

/* ---- URLs and request heads (url.c) ---------------------------------------------------------- */

enum { CORIO__HTTP, CORIO__HTTPS, CORIO__UNIX };

typedef struct corio__url {
    int scheme;
    char host[256]; /* a name, an IP literal without brackets, or a socket path */
    uint16_t port;
    char *target; /* "/path?query" (owned) */
} corio__url;

/* Parses an absolute URL; `base` (may be NULL) resolves a Location that is
 * a path ("/x") or scheme-relative ("//h/x").  Returns 0, CORIO_EINVAL,
 * CORIO_ENOTSUP (another scheme), CORIO_ENOMEM.  Free with
 * corio__url_release. */
int corio__url_parse(const char *s, const corio__url *base, corio__url *u);
void corio__url_release(corio__url *u);

/* A request's copied description: what a retry or redirect sends again. */
typedef struct corio__req {
    const char *method;
    corio_http_header *headers; /* one block with `strings`, which follow it */
    size_t nheaders;
    char *strings;
    corio__url url;
    int body_kind;    /* CORIO__BODY_* */
    const void *body; /* BYTES: borrowed, or owned when body_owned */
    bool body_owned;
    int body_fd;         /* FILE */
    int64_t body_length; /* BYTES, FILE, STREAM (CORIO_HTTP_CHUNKED) */
    unsigned max_redirects;
    const char *upgrade; /* in `strings`, or NULL */
    bool idempotent, head;
} corio__req;

enum { CORIO__BODY_NONE, CORIO__BODY_BYTES, CORIO__BODY_FILE, CORIO__BODY_STREAM };

/* Validates and copies rq into q (opening a body file).  copy_body: own a
 * copy of the body bytes.  Returns 0, CORIO_EINVAL, CORIO_ENOTSUP, -errno
 * of the file, CORIO_ENOMEM; on failure q holds nothing. */
int corio__req_init(corio__req *q, const corio_http_req *rq, bool copy_body);
void corio__req_release(corio__req *q);
/* The request head for q (malloc'd, *len bytes).  Returns NULL on ENOMEM. */
char *corio__req_head(const corio__req *q, size_t *len);

/* ---- the pool (pool.c) ----------------------------------------------------------------------- */

/* A connection of a pool: allocated when it opens, freed when it closes;
 * in its origin's idle list while pooled, held by an exchange otherwise. */
typedef struct corio__pconn {
    struct corio__pconn *next;
    corio_stream *s;
    uint64_t idle_since;
} corio__pconn;

typedef struct corio__origin {
    struct corio__origin *next;
    int scheme;
    char *host; /* or socket path */
    uint16_t port;
    corio_semaphore permits; /* max_conns_per_origin - connections in use */
    corio__pconn *idle;      /* most recently used first */
    corio_addr addrs[8];     /* the DNS cache */
    size_t naddrs;
    uint64_t addrs_until;
} corio__origin;

struct corio_http_client {
    corio_http_client_opts o;
    size_t refs;
    bool closed;
    corio__origin *origins;
    corio_semaphore permits; /* max_conns - connections in use */
    size_t open;             /* connections open, in use or idle */
    corio_tls_ctx *tls;      /* made at the first https:// request, or the caller's */
    char *tls_ca_file;
    corio_task *keeper; /* closes idle connections as they expire, and at loop end */
    corio_event pooled; /* set when a connection is pooled */
};

void corio__client_ref(corio_http_client *c);
void corio__client_unref(corio_http_client *c);
/* The origin of u (created on first use), or NULL on ENOMEM. */
corio__origin *corio__origin_get(corio_http_client *c, const corio__url *u);
/* Await: a connection to o, checked out (a permit of o and of the client
 * held).  fresh: never an idle one.  *reused tells which it is. */
int corio__checkout(corio_http_client *c, corio__origin *o, bool fresh, corio__pconn **out,
                    bool *reused);
/* Await: gives a checked-out connection back (pooled if reusable, else
 * closed) and its permits. */
void corio__checkin(corio_http_client *c, corio__origin *o, corio__pconn *pc, bool reusable);

/* Takes a checked-out connection out of the client for good (an upgraded
 * one: corio_http_exchange_detach): it no longer counts against the
 * client's limits, and its stream is the caller's to close. */
void corio__detach(corio_http_client *c, corio__origin *o, corio__pconn *pc);

/* ---- exchanges (exchange.c) ------------------------------------------------------------------ */

/* corio_http_open for a request already checked and copied: takes q over
 * (q is left empty, whatever happens). */
corio_resource corio__http_open_req(corio_http_client *c, corio__req *q, corio_http_exchange **out);
/* The exchange's response (head, and whatever body was appended to it):
 * the exchange forgets it. */
corio_http_response *corio__exchange_take(corio_http_exchange *x);
/* The exchange's response while it is read (for appending a body). */
corio_http_response *corio__exchange_response(corio_http_exchange *x);

#endif
