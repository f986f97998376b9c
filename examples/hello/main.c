/* SPDX-License-Identifier: MIT */
/* TechEmpower-style hello server:
 *
 *     GET /plaintext  ->  Hello, World!               (text/plain)
 *     GET /json       ->  {"message":"Hello, World!"}  (application/json)
 *     GET /healthz, /readyz, /metrics  (corio/metrics.h: probes, Prometheus)
 *
 * Every flag of the standalone runner applies (--port, --workers, ...; see
 * --help).  `make run` starts it on 127.0.0.1:8080.
 */
#include <corio/corio.h>
#include <corio/metrics.h>
#include <stdio.h>

static int plaintext(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "Hello, World!");
}

static int json(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_json(res, 200, "{\"message\":\"Hello, World!\"}");
}

int main(int argc, char **argv) {
    corio_router *router;
    if (corio_router_new(&router) != 0 ||
        corio_router_add(router, "GET", "/plaintext", plaintext, NULL) != 0 ||
        corio_router_add(router, "GET", "/json", json, NULL) != 0 ||
        corio_health_mount(router, NULL, NULL) != 0 || corio_metrics_mount(router, NULL) != 0) {
        fprintf(stderr, "hello: cannot build the router\n");
        return 1;
    }
    corio_app app = {
        .name = "hello",
        .description = "TechEmpower-style hello server (/plaintext, /json)",
        .default_port = 8080,
    };
    return corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
}
