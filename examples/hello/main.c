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
#include <string.h>

static int plaintext(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "Hello, World!");
}

/* Writes s as a JSON string (quoted, escaped) at p, which has room for
 * 2 + 6 * len bytes; returns the end. */
static char *put_json_string(char *p, const char *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    *p++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    *p++ = '"';
    return p;
}

/* {"message":"Hello, World!"}, serialized on every request (TechEmpower's
 * rule: no cached body). */
static int json(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    static const char message[] = "Hello, World!";
    char body[16 + 2 + 6 * (sizeof message - 1)], *p = body;
    memcpy(p, "{\"message\":", 11);
    p = put_json_string(p + 11, message, sizeof message - 1);
    *p++ = '}';
    return corio_res_send(res, 200, "application/json", body, (size_t)(p - body));
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
