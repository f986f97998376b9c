/* SPDX-License-Identifier: MIT */
/* Dispatch: a request whose head is read goes to its route (router.c,
 * on the raw path) through the middleware chain (global, then the
 * route's) to its handler or the 404/405 answer, with the read buffer
 * pinned and the client's disconnect watched while they run; what a
 * handler leaves unanswered or half sent is settled here (conn.c then reads
 * on). */
#include <inttypes.h>
#include <string.h>

#include "corio/log.h"
#include "http/http_internal.h"
#include "http/metrics_internal.h"
#include "net/proto.h"

static void log_request_error(corio__hconn *c, int rc) {
    corio_strv m = corio_req_method(&c->req), t = corio_req_target(&c->req);
    corio_log(CORIO_LOG_ERROR, "handler for \"%.*s %.*s\" failed: %s", (int)m.len, m.ptr,
              (int)(t.len > 200 ? 200 : t.len), t.ptr, corio_strerror(rc));
}

/* The client closed or reset while its handler ran. */
static void on_peer_gone(corio_stream *s, int err, void *data) {
    (void)s;
    (void)err;
    corio__hconn *c = data;
    c->close = true;
    if (!c->req.finish_on_disconnect)
        corio_cancel_with(c->task, CORIO_CANCEL_PEER_GONE);
}

void corio_req_finish_on_disconnect(corio_req *req) {
    if (req)
        req->finish_on_disconnect = true;
}

struct corio_next {
    corio__hconn *c;
    corio__match *m;
    int found;
    const corio__mw *global;
    size_t nglobal, i;
};

/* The end of the chain: the route's handler, or the 404/405 answer. */
static int run_endpoint(corio__hconn *c, corio__match *m, int found) {
    corio_req *r = &c->req;
    corio_res *res = &c->res;
    if (found != 200 && r->has_body) {
        /* Read the body first: it keeps the connection in step, and a
         * malformed one is answered 400 rather than 404/405. */
        int rc = corio__req_skip_body(c);
        if (rc < 0 || c->reject)
            return corio__http_send_error(c, c->reject ? c->reject : 400, true);
    }
    /* Not corio__http_send_error: that drops the headers set so far, and
     * the middleware around us set them for this answer too. */
    if (found == 404)
        return corio_res_text(res, 404, "Not Found\n");
    if (found == 405) {
        corio_res_header(res, "Allow", m->allow);
        return corio_res_text(res, 405, "Method Not Allowed\n");
    }
    return m->fn(r, res, m->arg);
}

int corio_next_call(corio_next *n) {
    if (!n)
        return CORIO_EINVAL;
    size_t i = n->i++;
    corio_req *r = &n->c->req;
    corio_res *res = &n->c->res;
    if (i < n->nglobal)
        return n->global[i].fn(r, res, n, n->global[i].arg);
    i -= n->nglobal;
    if (n->found == 200 && i < n->m->nmws)
        return n->m->mws[i].fn(r, res, n, n->m->mws[i].arg);
    if (n->i > n->nglobal + (n->found == 200 ? n->m->nmws : 0) + 1)
        return CORIO_EALREADY; /* the handler already ran */
    return run_endpoint(n->c, n->m, n->found);
}

/* The response will not be completed (corio_res_abort, corio_res_end short
 * of the Content-Length, a handler that failed in mid-body): nothing more of
 * it goes out, and the connection ends after what did, with no answer of
 * the server's.  Chunks or a Content-Length tell the client it was cut
 * short; a close-delimited body (HTTP/1.0) ends where the connection does,
 * so there a reset (and no TLS close_notify) says so, and the close must
 * not linger (its FIN would end the body as if whole): CORIO_ECONNABORTED
 * makes the connection loop close at once.  Returns 0 otherwise. */
static int cut_short(corio__hconn *c) {
    corio_res *res = &c->res;
    corio_res_abort(res);
    if (c->send_failed)
        return c->send_failed;
    if (res->close_delimited && !c->req.head_method) {
        corio_stream_set_reset_on_close(c->s);
        return CORIO_ECONNABORTED;
    }
    return 0;
}

/* Routes on the raw path (see router.c), so parameters are decoded one
 * segment at a time. */
static int route(corio__hconn *c, corio__match *m) {
    corio_req *r = &c->req;
    corio_strv raw = r->raw_path; /* corio__hconn_prepare's */
    char *scratch = NULL;
    if (memchr(raw.ptr, '%', raw.len)) {
        scratch = corio__arena_alloc(&c->arena, raw.len);
        if (!scratch)
            return CORIO_ENOMEM;
    }
    int found = corio__router_match_raw(c->srv->router, corio_req_method(r), raw, scratch, m);
    c->metrics_route = found == 200 ? m->metrics_id : CORIO__ROUTE_UNMATCHED;
    if (found == 200) {
        memcpy(r->params, m->params, m->nparams * sizeof m->params[0]);
        r->nparams = m->nparams;
    }
    return found;
}

/* corio__hconn_dispatch's work, inlined into it (its only caller): the
 * compressed stream's release after it costs one test, not a call. */
static inline __attribute__((always_inline)) int dispatch(corio__hconn *c) {
    corio_res *res = &c->res;
    corio__match m;
    int found = route(c, &m);
    if (found < 0 || corio__req_prepare_body(c) != 0)
        return corio__http_send_error(c, 503, true);
    corio_next next = {.c = c, .m = &m, .found = found};
    next.global = corio__router_global(c->srv->router, &next.nglobal);
    /* While the handler runs, the slices it holds stay put (where the head
     * is still in the read buffer), and a client that goes away cancels it
     * (reason "peer gone") unless it asked to finish. */
    corio__stream_pin(c->s, !c->req.head_copy);
    corio__stream_on_input_end(c->s, on_peer_gone, c);
    int rc = corio_next_call(&next);
    corio__stream_on_input_end(c->s, NULL, NULL);
    corio__stream_pin(c->s, false);
    /* A client that left, did not read its response within the send
     * timeout, or sent a bad body, is no handler failure (and must not be
     * able to flood the log with ERROR lines); nor is a handler the drain
     * deadline cut short (the runner logs that once, not per request). */
    bool client_left =
        rc == CORIO_EOF || rc == CORIO_ECONNRESET || rc == CORIO_EPIPE || c->peer_failed;
    corio_cancel_reason why = corio_task_cancel_reason(c->task);
    if (rc < 0 && !c->reject && !client_left && why != CORIO_CANCEL_PEER_GONE &&
        why != CORIO_CANCEL_SHUTDOWN)
        log_request_error(c, rc);
    if (rc < 0 && client_left)
        c->close = true;
    if (!res->started && !res->cut) {
        if (rc >= 0)
            corio_log(CORIO_LOG_ERROR, "a handler returned without a response");
        /* The body's own failure (400, 408, 413) if that is why. */
        return corio__http_send_error(c, c->reject ? c->reject : 500, c->reject != 0);
    }
    int erc = 0;
    if (!res->ended && !res->cut && rc >= 0) {
        if (res->length_left && !c->req.head_method)
            corio_log(CORIO_LOG_ERROR,
                      "a handler returned %" PRIu64 " bytes short of its response's Content-Length",
                      res->length_left);
        erc = corio_res_end(res);
    }
    /* Aborted, ended short, or left open by a failing handler: a stream
     * cut short cannot be repaired. */
    if (res->cut || !res->ended)
        return cut_short(c);
    /* A response cut short by a failed write ends the connection, whatever
     * the handler returned (one that ignored the error would have the next
     * response follow a truncated body). */
    return c->send_failed ? c->send_failed : erc;
}

int corio__hconn_dispatch(corio__hconn *c) {
    int rc = dispatch(c);
    /* A compressed stream the response did not end (cut short, given up)
     * holds its deflate memory until here, and no longer. */
    if (c->res.gzs)
        corio__gz_release(&c->res);
    return rc;
}
