/* SPDX-License-Identifier: MIT */
/* A router served on loopback inside the caller's loop, with a client for
 * it: the test helper of corio/http_test.h.
 *
 * It only assembles public pieces — corio_server_start with
 * corio_http_serve, corio_http_client_new, corio_http_request, and the
 * runtime's check that an await runs in a task — which is why it sits in
 * app, the one layer that sees both http and the client.
 * The corio_http_server the server's connections read lives in the test
 * object, so it outlives every connection: corio_server_shutdown has waited
 * for the last one before the object is freed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/report.h"
#include "corio/http_test.h"
#include "corio/server.h"
#include "corio/task.h"
#include "runtime/internal.h"

struct corio_http_test {
    corio_http_server http; /* the arg of corio_http_serve */
    corio_server *srv;
    corio_http_client *client;
    int port;
    char base[32]; /* "http://127.0.0.1:65535" */
};

int corio_http_test_start(corio_http_test **out, corio_router *router,
                          const corio_http_opts *opts) {
    if (!out || !router)
        return CORIO_EINVAL;
    if (!corio_current()) {
        corio__report("corio_http_test_start called outside a corio task");
        return CORIO_ENOTASK;
    }
    corio_http_test *t = calloc(1, sizeof *t);
    if (!t)
        return CORIO_ENOMEM;
    corio_server_opts so = {.host = "127.0.0.1", .port = 0};
    t->http.router = router;
    if (opts)
        t->http.opts = *opts;
    /* The client first: a client never used holds nothing on the loop, so
     * freeing it when the server cannot start does not await. */
    int rc = corio_http_client_new(&t->client, NULL);
    if (rc)
        goto out_free_t;
    rc = corio_server_start(&t->srv, &so, corio_http_serve, &t->http);
    if (rc)
        goto out_free_client;
    t->port = corio_server_port(t->srv);
    snprintf(t->base, sizeof t->base, "http://127.0.0.1:%d", t->port);
    *out = t;
    return 0;

out_free_client:
    corio_http_client_free(t->client);
out_free_t:
    free(t);
    return rc;
}

const char *corio_http_test_base(const corio_http_test *t) {
    return t->base;
}

int corio_http_test_port(const corio_http_test *t) {
    return t->port;
}

corio_http_client *corio_http_test_client(corio_http_test *t) {
    return t->client;
}

int corio_http_test_call(corio_http_test *t, corio_http_response **out, const char *method,
                         const char *path, const corio_http_header *headers, size_t nheaders,
                         const void *body, size_t len) {
    if (!t || !out || !method || !path || path[0] != '/')
        return CORIO_EINVAL;
    if (!corio__task_require("corio_http_test_call"))
        return CORIO_ENOTASK;
    size_t nbase = strlen(t->base), npath = strlen(path);
    char *url = malloc(nbase + npath + 1);
    if (!url)
        return CORIO_ENOMEM;
    memcpy(url, t->base, nbase);
    memcpy(url + nbase, path, npath + 1);
    corio_future *f;
    int rc = corio_http_request(t->client, &f, method, url, headers, nheaders, body, len);
    free(url); /* copied by the request */
    if (rc)
        return rc;
    rc = corio_await(f);
    if (rc == 0) {
        *out = corio_future_value(f);
        corio_future_set_value_free(f, NULL); /* taken: the caller frees it */
    }
    corio_future_release(f);
    return rc;
}

int corio_http_test_get(corio_http_test *t, corio_http_response **out, const char *path) {
    return corio_http_test_call(t, out, "GET", path, NULL, 0, NULL, 0);
}

int corio_http_test_stop(corio_http_test *t) {
    if (!t)
        return 0;
    if (!corio__task_require("corio_http_test_stop"))
        return CORIO_ENOTASK;
    /* The client first: its idle keep-alive connections close, so their
     * server side ends at once rather than waiting out the drain. */
    corio_http_client_free(t->client);
    int rc = corio_server_shutdown(t->srv, CORIO_HTTP_TEST_DRAIN_MS);
    free(t);
    return rc;
}
