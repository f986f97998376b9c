/* SPDX-License-Identifier: MIT */
/* A loop run on a thread of its own leaves nothing behind when the thread
 * ends: the per-thread caches (the streams' read buffers, the arenas'
 * chunks) are freed by the thread's exit, not lost with its TLS.
 *
 * corio's allocations are counted (malloc, calloc, realloc, strdup, strndup and
 * free are wrapped for corio's code and this file: tests/CMakeLists.txt).  A thread
 * serves and requests over loopback (corio_http_test: the server's stream,
 * arena and parser, the client's) so that both caches fill, and ends; the
 * blocks live before a thread and after its join must be as many.  The first
 * run is not counted: it makes what a process keeps for good (a log
 * setting, a metrics table).  Under ASan and valgrind the same run is also a
 * leak check.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "corio_test.h"

#include <corio/http.h>
#include <corio/http_client.h>
#include <corio/http_test.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static atomic_long live; /* blocks from the wrapped functions, not yet freed */

void *__wrap_malloc(size_t n) {
    void *p = __real_malloc(n);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_calloc(size_t n, size_t size) {
    void *p = __real_calloc(n, size);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_realloc(void *p, size_t n) {
    void *q = __real_realloc(p, n);
    if (!p && q)
        atomic_fetch_add(&live, 1);
    else if (p && !n && !q)
        atomic_fetch_sub(&live, 1); /* glibc: realloc(p, 0) frees p */
    return q;
}

char *__wrap_strdup(const char *s) {
    char *p = __real_strdup(s);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

char *__wrap_strndup(const char *s, size_t n) {
    char *p = __real_strndup(s, n);
    if (p)
        atomic_fetch_add(&live, 1);
    return p;
}

void __wrap_free(void *p) {
    if (p)
        atomic_fetch_sub(&live, 1);
    __real_free(p);
}

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "hello\n");
}

static int exchange(void *arg) {
    corio_router *router = arg;
    corio_http_test *t;
    SOFT(corio_http_test_start(&t, router, NULL) == 0);
    for (int i = 0; i < 20; i++) {
        corio_http_response *r;
        SOFT(corio_http_test_get(t, &r, "/") == 0);
        SOFT(corio_http_response_status(r) == 200);
        corio_http_response_free(r);
    }
    SOFT(corio_http_test_stop(t) == 0);
    return 0;
}

static void *thread_main(void *arg) {
    corio_test_run_checked(exchange, arg);
    return NULL;
}

static void run_on_a_thread(corio_router *router) {
    pthread_t tid;
    assert_int_equal(pthread_create(&tid, NULL, thread_main, router), 0);
    assert_int_equal(pthread_join(tid, NULL), 0);
}

static void test_a_loop_thread_that_ends_frees_its_caches(void **state) {
    (void)state;
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/", hello, NULL), 0);

    run_on_a_thread(router); /* what stays for good is made here */
    for (int i = 0; i < 3; i++) {
        long before = atomic_load(&live);
        run_on_a_thread(router);
        long after = atomic_load(&live);
        if (after != before)
            fail_msg("run %d: %ld blocks live before the thread, %ld after its exit", i + 2, before,
                     after);
    }
    corio_router_free(router);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_loop_thread_that_ends_frees_its_caches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
