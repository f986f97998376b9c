/* SPDX-License-Identifier: MIT */
/* Health probes (see corio/metrics.h): /healthz answers from the loop, so
 * only a loop that turns answers it; /readyz says whether to send traffic. */
#include "corio/metrics.h"
#include "http/metrics_internal.h"

static bool (*health_ready)(void *arg);
static void *health_ready_arg;
static bool health_stopping; /* corio__health_stopping: the whole server drains */
static bool health_retired;  /* corio__health_retired: this process drains, not the server */

void corio__health_stopping(void) {
    health_stopping = true;
}

void corio__health_retired(void) {
    health_retired = true;
}

void corio_health_set_ready(bool (*ready)(void *arg), void *arg) {
    health_ready = ready;
    health_ready_arg = arg;
}

static int health_live(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "ok\n");
}

static int health_readiness(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    if (health_stopping || (!health_retired && corio_req_draining(req)))
        return corio_res_text(res, 503, "draining\n");
    if (health_ready && !health_ready(health_ready_arg))
        return corio_res_text(res, 503, "not ready\n");
    return corio_res_text(res, 200, "ready\n");
}

int corio_health_mount(corio_router *r, const char *healthz, const char *readyz) {
    int rc = corio_router_add(r, "GET", healthz ? healthz : "/healthz", health_live, NULL);
    if (rc == 0)
        rc = corio_router_add(r, "GET", readyz ? readyz : "/readyz", health_readiness, NULL);
    return rc;
}
