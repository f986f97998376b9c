/* SPDX-License-Identifier: MIT */
/* A program built outside corio's tree, against an installed corio:
 *
 *     GET /  ->  Hello from outside corio's tree (corio 0.2.0: postgresql redis)
 *
 * The features named are the clients the installed corio was built with
 * (CORIO_HAVE_PG, CORIO_HAVE_REDIS, passed on by its CMake package and by
 * corio.pc).  Build it either way (README, "Install and use it from your
 * project"):
 *
 *     cmake -S . -B build -DCMAKE_PREFIX_PATH=/usr/local && cmake --build build
 *     cc main.c $(pkg-config --cflags --libs corio) -o out-of-tree
 *
 * Every flag of the standalone runner applies (--port, --workers, ...; see
 * --help).  Not built by corio's own build: tests/test_install.sh builds it.
 */
#include <corio/corio.h>
#include <stdio.h>

#ifdef CORIO_HAVE_PG
#define FEATURE_PG " postgresql"
#else
#define FEATURE_PG ""
#endif
#ifdef CORIO_HAVE_REDIS
#define FEATURE_REDIS " redis"
#else
#define FEATURE_REDIS ""
#endif

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200,
                          "Hello from outside corio's tree (corio " CORIO_VERSION_STRING
                          ":" FEATURE_PG FEATURE_REDIS ")\n");
}

int main(int argc, char **argv) {
    corio_router *router;
    if (corio_router_new(&router) != 0 || corio_router_add(router, "GET", "/", hello, NULL) != 0) {
        fprintf(stderr, "out-of-tree: cannot build the router\n");
        return 1;
    }
    corio_app app = {
        .name = "out-of-tree",
        .description = "a server built against an installed corio",
        .default_port = 8080,
    };
    return corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
}
