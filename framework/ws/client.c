/* SPDX-License-Identifier: MIT */
/* The client's side of the opening handshake (RFC 6455 4.1, RFC 7692 5-7):
 * corio_ws_connect.  The request goes through the HTTP client (its DNS,
 * TLS with SNI and verification, timeouts) as an exchange asking for an
 * upgrade; a 101 that passes the checks hands its connection over
 * (corio_http_exchange_detach), out of the client's pool.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "corio/scope.h"
#include "ws/handshake.h"
#include "ws/ws_internal.h"

typedef struct connect_ctx {
    corio_ws *ws;
    corio_http_client *client; /* the caller's, or NULL */
    char *url;                 /* http(s):// for the HTTP client */
    corio_ws **out;
    int error; /* of corio_ws_connect's checks: the enter reports it */
} connect_ctx;

/* The offered subprotocols as one Sec-WebSocket-Protocol value, or NULL
 * (none offered, or out of memory: *rc says which). */
static char *protocols_value(const corio_ws_opts *o, int *rc) {
    *rc = 0;
    if (!o->nsubprotocols)
        return NULL;
    size_t n = 1;
    for (size_t i = 0; i < o->nsubprotocols; i++)
        n += strlen(o->subprotocols[i]) + 2;
    char *v = malloc(n), *p = v;
    if (!v) {
        *rc = CORIO_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < o->nsubprotocols; i++)
        p += sprintf(p, "%s%s", i ? ", " : "", o->subprotocols[i]);
    return v;
}

static corio__ws_pmd_config deflate_config(const corio_ws_opts *o) {
    return (corio__ws_pmd_config){
        .server_no_context_takeover = o->deflate_no_context_takeover,
        .client_no_context_takeover = o->deflate_no_context_takeover,
        .server_max_window_bits = o->deflate_window_bits,
        .client_max_window_bits = o->deflate_window_bits,
    };
}

/* Whether a response header holds token, on any of its lines. */
static bool response_has_token(const corio_http_response *r, const char *name, const char *token) {
    const char *n, *v;
    for (size_t i = 0, count = corio_http_response_header_count(r); i < count; i++)
        if (corio_http_response_header_at(r, i, &n, &v) == 0 && strcasecmp(n, name) == 0 &&
            corio__ws_has_token(v, strlen(v), token))
            return true;
    return false;
}

/* How many lines of header `name` the response has. */
static size_t response_lines(const corio_http_response *r, const char *name) {
    const char *n, *v;
    size_t k = 0;
    for (size_t i = 0, count = corio_http_response_header_count(r); i < count; i++)
        if (corio_http_response_header_at(r, i, &n, &v) == 0 && strcasecmp(n, name) == 0)
            k++;
    return k;
}

/* Checks the server's 101 against what was asked, and takes what it chose.
 * Each of the handshake's fields once at most: a second Accept, Protocol
 * or Extensions line is something the client did not ask for (RFC 6455
 * 4.1). */
static int check_answer(corio_ws *ws, const corio_http_response *r, const char *key) {
    if (corio_http_response_status(r) != 101 || !response_has_token(r, "Upgrade", "websocket") ||
        !response_has_token(r, "Connection", "upgrade") ||
        response_lines(r, "Sec-WebSocket-Accept") != 1 ||
        response_lines(r, "Sec-WebSocket-Protocol") > 1 ||
        response_lines(r, "Sec-WebSocket-Extensions") > 1)
        return CORIO_EBADMSG;
    const char *accept = corio_http_response_header(r, "Sec-WebSocket-Accept");
    if (!accept || corio__ws_accept_check(key, strlen(key), accept, strlen(accept)) != 0)
        return CORIO_EBADMSG;
    const char *proto = corio_http_response_header(r, "Sec-WebSocket-Protocol");
    if (proto) { /* one of ours, exactly */
        for (size_t i = 0; i < ws->o.nsubprotocols && !ws->subprotocol; i++)
            if (strcmp(proto, ws->o.subprotocols[i]) == 0)
                ws->subprotocol = ws->o.subprotocols[i];
        if (!ws->subprotocol)
            return CORIO_EBADMSG;
    }
    const char *ext = corio_http_response_header(r, "Sec-WebSocket-Extensions");
    if (!ext)
        return 0;
    if (!ws->o.deflate)
        return CORIO_EBADMSG; /* nothing was offered */
    corio__ws_pmd_config cfg = deflate_config(&ws->o);
    corio__ws_pmd_agreed ag;
    int rc = corio__ws_pmd_confirm(&cfg, ext, strlen(ext), &ag);
    if (rc == 0)
        rc = corio__ws_start_deflate(ws, ag.server_no_context_takeover,
                                     ag.client_no_context_takeover, ag.server_max_window_bits,
                                     ag.client_max_window_bits);
    return rc;
}

/* Await: the handshake on client c. */
static int handshake(connect_ctx *a, corio_http_client *c) {
    corio_ws *ws = a->ws;
    uint8_t nonce[16];
    char key[CORIO__WS_KEY_LEN + 1], ext[CORIO__WS_PMD_HEADER_MAX];
    if (RAND_bytes(nonce, sizeof nonce) != 1)
        return CORIO_EFAILED;
    corio__ws_client_key(key, nonce);
    int rc;
    char *protos = protocols_value(&ws->o, &rc);
    if (rc)
        return rc;
    corio_http_header h[4] = {{"Sec-WebSocket-Key", key}, {"Sec-WebSocket-Version", "13"}};
    size_t nh = 2;
    if (protos)
        h[nh++] = (corio_http_header){"Sec-WebSocket-Protocol", protos};
    if (ws->o.deflate) {
        corio__ws_pmd_config cfg = deflate_config(&ws->o);
        if ((rc = corio__ws_pmd_offer(&cfg, ext, sizeof ext)) < 0) {
            free(protos);
            return rc;
        }
        h[nh++] = (corio_http_header){"Sec-WebSocket-Extensions", ext};
    }
    corio_http_req rq = {
        .method = "GET", .url = a->url, .headers = h, .nheaders = nh, .upgrade = "websocket"};
    corio_http_exchange *x;
    CORIO_WITH_RC(rc, corio_http_open(c, &rq, &x)) {
        const corio_http_response *r;
        rc = corio_http_response_head(x, &r);
        if (rc == 0)
            rc = check_answer(ws, r, key);
        if (rc == 0)
            rc = corio_http_exchange_detach(x, &ws->s);
    }
    free(protos);
    return rc;
}

static void ctx_free(connect_ctx *a) {
    if (a->ws && a->ws->pmd_on)
        corio__ws_pmd_release(&a->ws->pmd);
    free(a->ws);
    free(a->url);
    free(a);
}

static int connect_enter(void *self, uint64_t arg) {
    connect_ctx *a = self;
    if (!a)
        return (int)(int64_t)arg; /* corio_ws_connect could not allocate */
    int rc = a->error;
    if (rc == 0) {
        corio_http_client *c = a->client, *own = NULL;
        if (!c && (rc = corio_http_client_new(&own, NULL)) == 0)
            c = own;
        if (rc == 0)
            rc = handshake(a, c);
        corio_http_client_free(own); /* the stream keeps what it needs (its TLS) */
    }
    if (rc) {
        if (a->ws->s)
            corio_stream_close(a->ws->s);
        ctx_free(a);
        return rc;
    }
    corio__ws_open(a->ws);
    *a->out = a->ws;
    return 0;
}

/* Await: after the close handshake, the server closes the TCP connection
 * first (RFC 6455 7.1.1): wait for that, bounded, then close ours. */
static void await_server_close(corio_ws *ws) {
    if (!ws->reset) /* not given up on (a dead peer, a close never answered) */
        corio__ws_drop_input(ws, ws->o.close_timeout_ms, false);
    corio_stream_close(ws->s);
}

static void connect_exit(void *self, int how) {
    connect_ctx *a = self;
    corio__ws_finish(a->ws, how == 0 ? 1000 : 1011);
    await_server_close(a->ws);
    *a->out = NULL;
    ctx_free(a);
}

static const corio_resource_type connect_type = {
    .name = "websocket client",
    .enter = connect_enter,
    .exit = connect_exit,
    .exit_timeout_ms = 65000, /* two close_timeout_ms waits at most */
};

/* ws:// and wss:// as the HTTP client's http:// and https://; NULL for
 * another scheme (*rc CORIO_ENOTSUP) or out of memory. */
static char *http_url(const char *url, int *rc) {
    const char *rest = NULL, *scheme = NULL;
    if (strncasecmp(url, "ws://", 5) == 0) {
        rest = url + 5;
        scheme = "http://";
    } else if (strncasecmp(url, "wss://", 6) == 0) {
        rest = url + 6;
        scheme = "https://";
    } else {
        *rc = CORIO_ENOTSUP;
        return NULL;
    }
    char *u = malloc(strlen(scheme) + strlen(rest) + 1);
    if (!u) {
        *rc = CORIO_ENOMEM;
        return NULL;
    }
    strcpy(stpcpy(u, scheme), rest);
    return u;
}

corio_resource corio_ws_connect(corio_http_client *client, const char *url, corio_ws **out,
                                const corio_ws_opts *opts) {
    corio_resource r = {.type = &connect_type};
    connect_ctx *a = calloc(1, sizeof *a);
    corio_ws *ws = a ? calloc(1, sizeof *ws) : NULL;
    if (!ws) {
        free(a);
        r.arg = (uint64_t)(int64_t)CORIO_ENOMEM;
        return r;
    }
    r.self = a;
    a->ws = ws;
    a->client = client;
    a->out = out;
    ws->role = CORIO__WS_CLIENT;
    if (!url || !out)
        a->error = CORIO_EINVAL;
    else if ((a->error = corio__ws_init(ws, opts)) == 0)
        a->url = http_url(url, &a->error);
    return r;
}
