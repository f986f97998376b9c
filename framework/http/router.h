/* SPDX-License-Identifier: MIT */
/* Route matching (see corio/http.h for the pattern rules). */
#ifndef CORIO_HTTP_ROUTER_H
#define CORIO_HTTP_ROUTER_H

#include "corio/http.h"

#define CORIO__MAX_PARAMS 8

typedef struct corio__param {
    const char *name; /* owned by the router */
    corio_strv value; /* slice of the matched path */
} corio__param;

typedef struct corio__mw {
    corio_middleware fn;
    void *arg;
} corio__mw;

typedef struct corio__match {
    corio_http_handler fn;
    void *arg;
    const corio__mw *mws; /* the route's middleware */
    size_t nmws;
    uint16_t metrics_id; /* the route's id for the metrics (http/metrics_internal.h) */
    corio__param params[CORIO__MAX_PARAMS];
    size_t nparams;
    char allow[128]; /* for 405: the methods the path answers */
} corio__match;

/* Matches method and (decoded) path.  Returns 200 with m->fn set, 404, or
 * 405 with m->allow filled in. */
int corio__router_match(const corio_router *r, corio_strv method, corio_strv path, corio__match *m);

/* The same for a raw path (percent-encoded, as sent, known to decode):
 * segments are split first and decoded after, into `scratch` (raw_path.len
 * bytes, or NULL when raw_path holds no '%'), which parameters then point
 * into. */
int corio__router_match_raw(const corio_router *r, corio_strv method, corio_strv raw_path,
                            char *scratch, corio__match *m);

/* The router's global middleware. */
const corio__mw *corio__router_global(const corio_router *r, size_t *n);

#endif
