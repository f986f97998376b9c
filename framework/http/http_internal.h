/* SPDX-License-Identifier: MIT */
/* Private structures of the HTTP/1.1 server.
 *
 * The request head stays where it was read: in the stream's read buffer,
 * which is pinned (never moved) while a request holds slices of it.  Header
 * names and values are recorded as offsets from the start of the head, and
 * turned into pointers when asked for.  If the body is not all buffered
 * behind the head when the handler is called, the head is first copied into
 * the arena (every slice then points there), so the buffer can be consumed
 * from the front as the body streams.
 */
#ifndef CORIO_HTTP_INTERNAL_H
#define CORIO_HTTP_INTERNAL_H

#include <llhttp.h>
#include <sys/uio.h>

#include "base/arena.h"
#include "base/report.h"
#include "corio/http.h"
#include "corio/server.h"
#include "http/router.h"

typedef struct corio__span {
    uint32_t off, len;
} corio__span;

typedef struct corio__hdr {
    corio__span name, value;
} corio__hdr;

#define CORIO__HDRS_INLINE 32 /* header fields held in the connection itself */

struct corio_req {
    struct corio__hconn *c;
    corio__span method, target, version;
    corio__hdr *hdrs; /* c->hdrs_inline, or the arena for many fields */
    size_t nhdrs, cap_hdrs;
    size_t head_len;       /* bytes of the head (request line + fields + CRLF) */
    const char *head_copy; /* set once the head moved into the arena */
    /* The head's base, which spans are offsets from: the read buffer's
     * bytes or head_copy.  Set by read_head before each parse and by
     * relocate_head; the buffer does not move while the handler runs (it is
     * pinned) or between the parse and the handler (nothing waits there).
     * After the handler it may: corio__req_track_head before reading. */
    const char *head;
    corio_strv raw_path; /* the target's path undecoded (router.c matches on it) */
    corio_strv path, query;
    corio__param params[CORIO__MAX_PARAMS];
    size_t nparams;
    uint64_t content_length; /* when not chunked */
    bool chunked, has_body, body_done, expect_continue, continue_sent;
    bool keep_alive, head_method, finish_on_disconnect;
    bool upgrade; /* asked to switch protocols: Connection: upgrade, Upgrade (not CONNECT) */
    bool body_buffered; /* corio_req_body ran: `body` holds the whole body */
    uint8_t minor;
    uint32_t id_hdr; /* 1 + the index of the first X-Request-Id field, or 0 */
    size_t body_read;
    corio_strv body;
    /* body delivery during llhttp_execute */
    char *sink;
    size_t sink_len;
};

struct corio_res {
    struct corio__hconn *c;
    char *extra; /* extra header lines, "Name: value\r\n" ... (arena) */
    size_t extra_len, extra_cap;
    int status;          /* for the access log */
    uint64_t body_bytes; /* body bytes handed to the stream (access log) */
    char chunk_line[24]; /* the size line of the chunk being written */
    /* corio_res_start_length: the body bytes its Content-Length still owes
     * (counted for HEAD too, where none is sent) */
    uint64_t length_left;
    bool started, ended, chunked, close_delimited, length_framed;
    /* Ended without being completed (corio_res_abort, a corio_res_end short
     * of the Content-Length): the connection closes after what was sent,
     * and no answer of the server's follows (dispatch.c settles it). */
    bool cut;
    bool own_request_id; /* the handler set X-Request-Id: the server adds none */
    bool offers_upgrade; /* the handler set Upgrade: Connection names it */
    /* Compression (compress.c): the compressor of the middleware wrapping
     * this response, or NULL, the one test the response path makes when
     * compression is off; and the deflate stream of a compressed streamed
     * response, from its start to its end. */
    const struct corio_http_compress *gz;
    struct corio__gz *gzs;
};

typedef struct corio__hconn {
    corio_stream *s;
    corio_task *task; /* the connection's task */
    const corio_http_server *srv;
    corio_http_opts opts;
    llhttp_t parser;
    corio__arena arena;
    corio_req req;
    corio_res res;
    size_t parsed;    /* bytes of the current request's head fed to llhttp */
    size_t line_end;  /* offset just past the request line, 0 until known */
    int reject;       /* status chosen while parsing (400, 431, 501, 505...) */
    bool in_value;    /* llhttp callbacks: last data was a header value */
    bool close;       /* close after the current response */
    bool can_park;    /* from a server: may wait between requests with no task */
    bool upgraded;    /* corio_res_upgrade: the stream is the handler's protocol's */
    int send_failed;  /* 0, or the error that cut a response short (nothing more is sent) */
    bool peer_failed; /* ... and it was the client's doing: gone, or stopped reading */
    bool head_done;   /* llhttp is past the head: header callbacks are trailers */
    size_t trailer_bytes, chunk_ext_bytes;
    bool in_chunk_line;      /* llhttp is inside a chunk's size line */
    size_t chunk_line_bytes; /* ... and has had this many bytes of it */
    uint8_t chunk_line_ext;  /* ... where in its extensions (parse.c, chunk_exts_ok) */
    bool last_chunk;         /* the size line of the last chunk (0) has been read */
    bool chunk_pause;        /* a chunk callback paused llhttp (not the message's end) */
    bool fed_cr;             /* the last body byte fed to llhttp was CR (corio__hconn_feed_body) */
    bool trailer_mid_line;   /* the trailer bytes fed so far end inside a line */
    uint64_t body_waited;    /* ms the body's reads have waited for the client */
    /* responses waiting for one write; `out` lives in the arena and is kept
     * across flushes until the arena is reset */
    struct iovec *out;
    size_t nout, cap_out, out_bytes;
    size_t requests;
    uint64_t started_ns; /* the current request's head completed (uv_hrtime) */
    /* The current request's route for the metrics: the route's id, or
     * CORIO__ROUTE_UNMATCHED / CORIO__ROUTE_REJECTED (metrics_internal.h) */
    uint16_t metrics_route;
    char peer[48]; /* the client's address ("" until asked: corio__hconn_peer) */
    /* The current request's id (corio_req_id), NUL-terminated: the
     * client's X-Request-Id when it is sane, else generated; "" between
     * requests. */
    uint8_t req_id_len;
    char req_id[CORIO__REQUEST_ID_MAX + 1];
    /* Header fields live here, not in the arena, so that the arena can be
     * reset while a head is only partly read (see read_head): the first
     * ones inline, more in hdrs_heap (up to max_headers, freed with the
     * connection's task). */
    corio__hdr *hdrs_heap;
    size_t hdrs_heap_cap;
    corio__hdr hdrs_inline[CORIO__HDRS_INLINE];
} corio__hconn;

/* Moves the request's head out of the read buffer into the arena (its
 * slices follow) and consumes it there, so that the buffer holds only what
 * came after it (request.c). */
int corio__req_own_head(corio__hconn *c);

/* Fills c->peer: the client's address without the port ("127.0.0.1",
 * "::1"), or "-" when it has none (a Unix socket) or is gone (request.c). */
void corio__hconn_peer(corio__hconn *c);

/* Formats the Date header value (29 bytes), cached per second per thread. */
const char *corio__http_date(void);

/* ---- output.c ---- */

/* Queues bytes (borrowed until the flush) for the next write. */
int corio__hconn_queue(corio__hconn *c, const void *p, size_t len);
/* Writes everything queued, then empties the queue. */
int corio__hconn_flush(corio__hconn *c);

/* Frees the arena, which nothing queued may point into any more. */
static inline void corio__hconn_arena_reset(corio__hconn *c) {
    corio__arena_reset(&c->arena);
    c->out = NULL;
    c->cap_out = 0;
}

/* ---- compress.c (compress_none.c without zlib) ---- */

/* What corio__gz_send made of a whole body. */
typedef enum corio__gz_how {
    CORIO__GZ_PLAIN, /* send it as it is (a Vary field may have been added) */
    CORIO__GZ_BODY,  /* send the compressed body of corio__gz_out, with its Content-Length */
    CORIO__GZ_HEAD,  /* HEAD: the head of a compressed answer, without Content-Length */
} corio__gz_how;

/* A compressed body: slices of the arena, `len` bytes in all. */
typedef struct corio__gz_out {
    struct iovec *iov;
    size_t n;
    uint64_t len;
} corio__gz_out;

/* corio_res_send's decision, when res->gz is set and the head is about to
 * be queued: adds Vary, Content-Encoding (and weakens the ETag) as the
 * rules of corio/http.h say, and compresses the body into the arena.
 * Never fails the response: anything short of a whole compressed body is
 * CORIO__GZ_PLAIN.  body is borrowed for the call. */
corio__gz_how corio__gz_send(corio_res *res, int status, const char *ctype, const void *body,
                             size_t len, corio__gz_out *out);

/* A whole file of this type and length answered 200 on this route: sets
 * *compress when the compression middleware compresses it for this
 * request (file.c then sends it through the response calls rather than
 * sendfile); adds Vary when it would for another client.  Returns 0 or
 * corio_res_header's error. */
int corio__gz_file(corio_res *res, const char *ctype, uint64_t length, bool *compress);

/* corio_res_start's and corio_res_start_length's decision (`length` when
 * length_known), when res->gz is set: adds the fields as corio__gz_send,
 * and returns true when the body is to be compressed; then, but for HEAD,
 * res->gzs holds the deflate stream that corio__gz_write feeds.  A
 * declared length is compressed only on HTTP/1.1 (the caller frames it
 * chunked). */
bool corio__gz_start(corio_res *res, int status, const char *ctype, bool length_known,
                     uint64_t length);

/* Await: compresses len > 0 bytes (borrowed) into res->gzs and writes what
 * deflate gives, flushed (Z_SYNC_FLUSH), through corio__res_emit.  Returns
 * 0 or a write error. */
int corio__gz_write(corio_res *res, const void *data, size_t len);

/* Finishes res->gzs's gzip stream, queues its last bytes (framed) and frees
 * the stream.  Returns 0, a write error, CORIO_ENOMEM. */
int corio__gz_finish(corio_res *res);

/* Frees res->gzs, if any (a response cut short; the handler returned). */
void corio__gz_release(corio_res *res);

/* Bytes of deflate memory the calling thread holds (the tests' check that
 * streams are freed). */
size_t corio__gz_live_bytes(void);

/* ---- response.c ---- */

/* Writes len > 0 body bytes (borrowed) of a started response, framed as it
 * is (a chunk, or the bytes as they are), now: what corio_res_write does
 * once a response is known to be neither HEAD's nor compressed.  Counts
 * them as sent.  Returns 0 or a write error. */
int corio__res_emit(corio_res *res, const void *data, size_t len);

/* ---- dispatch.c ---- */

/* Await: routes the request whose head corio__hconn_prepare accepted and
 * runs the middleware chain and handler (or answers 404/405/503), with
 * the read buffer pinned and a client that leaves cancelling the handler
 * (reason "peer gone") unless it asked to finish.  Ends the response the
 * handler left open, or settles one cut short (see cut_short there).
 * Returns 0 (c->close says whether the connection goes on), a send error,
 * or CORIO_ECONNABORTED for a close that must not linger. */
int corio__hconn_dispatch(corio__hconn *c);

/* ---- parse.c ---- */

/* llhttp_init with the callbacks that fill in c->req. */
void corio__hconn_parser_init(corio__hconn *c);

/* The status (400, 431, 501, 505...) to answer a head llhttp refused with
 * err. */
int corio__hconn_status_for(corio__hconn *c, llhttp_errno_t err);

/* Validates what llhttp leaves to us of a complete head and fills in the
 * request.  Returns 0 or the status to answer with. */
int corio__hconn_prepare(corio__hconn *c);

/* llhttp_execute on body bytes, with chunked framing bounded (a size line
 * over its limit: HPE_USER, with reject 400). */
llhttp_errno_t corio__hconn_feed_body(corio__hconn *c, const char *data, size_t len);

/* Await: corio_stream_fill within ms (0: fails at once with
 * CORIO_ETIMEDOUT). */
int corio__hconn_fill_within(corio__hconn *c, uint64_t ms);

/* Before the handler: moves the head out of the read buffer if the body
 * must stream through it.  Returns 0 or CORIO_ENOMEM. */
int corio__req_prepare_body(corio__hconn *c);

/* After the handler: reads and drops what is left of the request's body if
 * it is small, else marks the connection to close (see corio__req_drain).
 * Returns 0 or a read error. */
int corio__req_skip_body(corio__hconn *c);

/* The origin-form part of a request target (absolute form accepted). */
corio_strv corio__origin_target(corio_strv target);

/* The head's base pointer: the read buffer or the arena copy. */
static inline const char *corio__req_head(const corio_req *r) {
    return r->head;
}

/* Sets the request's head base again from the stream (after awaits with the
 * read buffer unpinned: it may have moved). */
void corio__req_track_head(corio__hconn *c);

/* Gives the current request its id (see corio_req_id): the client's
 * X-Request-Id when `use_header` and it has a sane one (c->req.id_hdr, set
 * by corio__hconn_prepare), else a new one; and makes it the connection
 * task's (its log lines, its backend calls).  No allocation, no system
 * call (but once per thread, to seed the generator). */
void corio__hconn_set_request_id(corio__hconn *c, bool use_header);

/* A reason phrase for a status code. */
const char *corio__http_reason(int status);

/* A write of a response failed with rc: the connection ends after it (with
 * a reset when the client is gone or stopped reading, see
 * corio_stream_set_reset_on_close) and nothing more is sent on it. */
void corio__hconn_send_failed(corio__hconn *c, int rc);

/* Queues the head of a response whose body of `len` bytes the caller sends
 * itself (a file): corio_res_send without the body.  The response counts as
 * ended; for HEAD the caller sends nothing more. */
int corio__res_send_head(corio_res *res, int status, const char *content_type, uint64_t len);

/* Sends a complete error response for a request rejected by the server. */
int corio__http_send_error(corio__hconn *c, int status, bool close);

/* Percent-decodes s into dst (capacity >= s.len); '+' becomes ' ' if
 * plus_is_space.  Returns the decoded length, or -1 for a bad escape or a
 * NUL byte. */
long corio__pct_decode(corio_strv s, char *dst, bool plus_is_space);

/* The drain rule: what becomes of the current request's body when the
 * handler leaves some of it unread.  A response says "Connection: close"
 * beforehand unless the rest is known to be read (DRAIN_NONE, DRAIN_READ);
 * corio__req_skip_body does what the rule says after the handler. */
/* Unread body bytes worth reading to keep a connection. */
#define CORIO__DRAIN_BODY_MAX (64 * 1024)

typedef enum corio__drain {
    CORIO__DRAIN_NONE, /* nothing left */
    CORIO__DRAIN_READ, /* at most CORIO__DRAIN_BODY_MAX left: read and dropped */
    CORIO__DRAIN_SOME, /* chunked, size unknown: read and dropped up to the limit, closed past it */
    CORIO__DRAIN_CLOSE, /* more than the limit, or a 100 Continue the client still awaits: closed */
} corio__drain;

static inline corio__drain corio__req_drain(const corio_req *r) {
    if (!r->has_body || r->body_done)
        return CORIO__DRAIN_NONE;
    if (r->expect_continue && !r->continue_sent)
        return CORIO__DRAIN_CLOSE; /* the client may be waiting for a 100 that will not come */
    if (r->chunked)
        return CORIO__DRAIN_SOME;
    return r->content_length - r->body_read > CORIO__DRAIN_BODY_MAX ? CORIO__DRAIN_CLOSE
                                                                    : CORIO__DRAIN_READ;
}

/* Access log (access_log.c): appends the line of the response just completed
 * on c to this thread's buffer.  begin/end bracket every connection served
 * with the log on: begin notes the client's address, and the thread's last
 * connection to end writes what is buffered. */
void corio__access_log(corio__hconn *c);
void corio__access_log_conn_begin(corio__hconn *c);
void corio__access_log_conn_end(void);
/* Whether a connection of a server with opts.access_log == opt logs: opt,
 * unless the process's setting (corio_http_access_log_set, CORIO_ACCESS_LOG)
 * overrides it. */
bool corio__access_log_wanted(bool opt);

#endif
