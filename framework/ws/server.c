/* SPDX-License-Identifier: MIT */
/* The server's side of the opening handshake (RFC 6455 4.2, RFC 7692 5-7)
 * and the scope a handler holds its WebSocket in: corio_ws_accept.
 *
 * The enter checks the request, answers a bad one itself (400, or 426
 * with the version we speak), and switches the connection over with
 * corio_res_upgrade; the exit closes the WebSocket on every way out of the
 * scope.  A header that may come on several lines (Connection, Upgrade,
 * Sec-WebSocket-Protocol, Sec-WebSocket-Extensions) is read on all of
 * them.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corio/scope.h"
#include "ws/handshake.h"
#include "ws/ws_internal.h"

typedef struct accept_ctx {
    corio_ws *ws;
    corio_req *req;
    corio_res *res;
    corio_ws **out;
    int error; /* of corio_ws_accept's checks: the enter reports it */
    bool entered;
} accept_ctx;

static bool name_is(corio_strv n, const char *want) {
    return n.len == strlen(want) && strncasecmp(n.ptr, want, n.len) == 0;
}

/* Whether any line of header `name` holds token (a comma-separated list). */
static bool any_has_token(const corio_req *req, const char *name, const char *token) {
    corio_strv n, v;
    for (size_t i = 0, count = corio_req_header_count(req); i < count; i++)
        if (corio_req_header_at(req, i, &n, &v) && name_is(n, name) &&
            corio__ws_has_token(v.ptr, v.len, token))
            return true;
    return false;
}

/* The only line of header `name`: false if absent or repeated. */
static bool single(const corio_req *req, const char *name, corio_strv *out) {
    corio_strv n, v;
    int found = 0;
    for (size_t i = 0, count = corio_req_header_count(req); i < count; i++)
        if (corio_req_header_at(req, i, &n, &v) && name_is(n, name)) {
            *out = v;
            found++;
        }
    return found == 1;
}

/* Answers a request that is no valid handshake; CORIO_EINVAL. */
static int refuse(corio_res *res, int status, const char *why) {
    if (status == 426) {
        (void)corio_res_header(res, "Sec-WebSocket-Version", "13");
        (void)corio_res_header(res, "Upgrade", "websocket");
    }
    int rc = corio_res_text(res, status, why);
    return rc ? rc : CORIO_EINVAL;
}

/* The subprotocol: the server's first preference the client offers. */
static void choose_subprotocol(corio_ws *ws, const corio_req *req) {
    corio_strv n, v;
    int best = -1;
    for (size_t i = 0, count = corio_req_header_count(req); i < count; i++) {
        if (!corio_req_header_at(req, i, &n, &v) || !name_is(n, "Sec-WebSocket-Protocol"))
            continue;
        int k = corio__ws_subprotocol_select(v.ptr, v.len, ws->o.subprotocols,
                                             ws->o.nsubprotocols);
        if (k >= 0 && (best < 0 || k < best))
            best = k;
    }
    ws->subprotocol = best >= 0 ? ws->o.subprotocols[best] : NULL;
}

/* permessage-deflate: the first acceptable offer, on any line.  Writes the
 * response's value into resp ("" for none). */
static int choose_deflate(corio_ws *ws, const corio_req *req, char *resp, size_t cap) {
    resp[0] = 0;
    if (!ws->o.deflate)
        return 0;
    corio__ws_pmd_config cfg = {
        .server_no_context_takeover = ws->o.deflate_no_context_takeover,
        .client_no_context_takeover = ws->o.deflate_no_context_takeover,
        .server_max_window_bits = ws->o.deflate_window_bits,
        .client_max_window_bits = ws->o.deflate_window_bits,
    };
    corio_strv n, v;
    for (size_t i = 0, count = corio_req_header_count(req); i < count; i++) {
        if (!corio_req_header_at(req, i, &n, &v) || !name_is(n, "Sec-WebSocket-Extensions"))
            continue;
        corio__ws_pmd_agreed ag;
        int len = corio__ws_pmd_accept(&cfg, v.ptr, v.len, &ag, resp, cap);
        if (len < 0)
            return len;
        if (len > 0)
            return corio__ws_start_deflate(ws, ag.server_no_context_takeover,
                                           ag.client_no_context_takeover,
                                           ag.server_max_window_bits, ag.client_max_window_bits);
    }
    return 0;
}

/* The handshake: 0 with the connection switched over, or an error (a bad
 * request is answered first). */
static int handshake(accept_ctx *a) {
    corio_ws *ws = a->ws;
    corio_req *req = a->req;
    corio_strv method = corio_req_method(req), key, version;
    if (method.len != 3 || memcmp(method.ptr, "GET", 3) != 0 ||
        corio_req_version_minor(req) < 1)
        return refuse(a->res, 400, "a WebSocket handshake is an HTTP/1.1 GET\n");
    if (!any_has_token(req, "Upgrade", "websocket"))
        return refuse(a->res, 426, "this resource speaks WebSocket\n");
    if (!any_has_token(req, "Connection", "upgrade"))
        return refuse(a->res, 400, "Connection: Upgrade expected\n");
    if (!single(req, "Sec-WebSocket-Version", &version) || version.len != 2 ||
        memcmp(version.ptr, "13", 2) != 0)
        return refuse(a->res, 426, "WebSocket version 13 expected\n");
    if (!single(req, "Sec-WebSocket-Key", &key) || !corio__ws_key_valid(key.ptr, key.len))
        return refuse(a->res, 400, "bad Sec-WebSocket-Key\n");
    corio_strv te, cl;
    if (corio_req_header(req, "Transfer-Encoding", &te) ||
        (corio_req_header(req, "Content-Length", &cl) && !(cl.len == 1 && cl.ptr[0] == '0')))
        return refuse(a->res, 400, "a WebSocket handshake has no body\n");
    char accept[CORIO__WS_ACCEPT_LEN + 1], ext[CORIO__WS_PMD_HEADER_MAX];
    int rc = corio__ws_accept_key(key.ptr, key.len, accept);
    if (rc == 0)
        rc = choose_deflate(ws, req, ext, sizeof ext);
    if (rc)
        return rc;
    choose_subprotocol(ws, req);
    rc = corio_res_header(a->res, "Sec-WebSocket-Accept", accept);
    if (rc == 0 && ws->subprotocol)
        rc = corio_res_header(a->res, "Sec-WebSocket-Protocol", ws->subprotocol);
    if (rc == 0 && ext[0])
        rc = corio_res_header(a->res, "Sec-WebSocket-Extensions", ext);
    if (rc == 0)
        rc = corio_res_upgrade(a->res, "websocket", &ws->s);
    if (rc)
        return rc;
    corio__ws_open(ws);
    return 0;
}

static void ctx_free(accept_ctx *a) {
    if (a->ws && a->ws->pmd_on)
        corio__ws_pmd_release(&a->ws->pmd);
    free(a->ws);
    free(a);
}

static int accept_enter(void *self, uint64_t arg) {
    accept_ctx *a = self;
    if (!a)
        return (int)(int64_t)arg; /* corio_ws_accept could not allocate */
    int rc = a->error ? a->error : handshake(a);
    if (rc) {
        ctx_free(a);
        return rc;
    }
    a->entered = true;
    *a->out = a->ws;
    return 0;
}

static void accept_exit(void *self, int how) {
    accept_ctx *a = self;
    corio__ws_finish(a->ws, how == 0 ? 1000 : 1011);
    *a->out = NULL;
    ctx_free(a);
}

static const corio_resource_type accept_type = {
    .name = "websocket",
    .enter = accept_enter,
    .exit = accept_exit,
    .exit_timeout_ms = 35000, /* close_timeout_ms is at most 30 s */
};

corio_resource corio_ws_accept(corio_req *req, corio_res *res, corio_ws **out,
                               const corio_ws_opts *opts) {
    corio_resource r = {.type = &accept_type};
    accept_ctx *a = calloc(1, sizeof *a);
    corio_ws *ws = a ? calloc(1, sizeof *ws) : NULL;
    if (!ws) {
        free(a);
        r.arg = (uint64_t)(int64_t)CORIO_ENOMEM;
        return r;
    }
    r.self = a;
    a->ws = ws;
    a->req = req;
    a->res = res;
    a->out = out;
    ws->role = CORIO__WS_SERVER;
    if (!req || !res || !out)
        a->error = CORIO_EINVAL;
    else
        a->error = corio__ws_init(ws, opts);
    return r;
}
