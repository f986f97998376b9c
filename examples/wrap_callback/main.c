/* SPDX-License-Identifier: MIT */
/* Turning a callback API into something to await (loop.create_future() plus
 * a callback that calls fut.set_result()).
 *
 *     fut = loop.create_future()
 *     start_operation(..., callback=lambda r: fut.set_result(r))
 *     result = await fut
 *
 * The recipe: create a future, start the operation with the future as its
 * callback data (holding a reference), complete the future in the callback,
 * await it.  An on_cancel hook lets corio_future_cancel() stop the operation.
 *
 * Two callback APIs are wrapped: libuv's uv_getaddrinfo (resolving
 * "localhost", no network needed) and fetch_start(), a stand-in for a C
 * library's "call me back when the answer arrives" function, built on a
 * uv timer.
 */
#include <corio/corio.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---- 1. uv_getaddrinfo as a future ------------------------------------------------ */

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res) {
    corio_future *f = req->data;
    int rc = status < 0 ? corio_future_fail(f, status) : corio_future_resolve(f, res);
    if (rc != 0)
        uv_freeaddrinfo(res); /* already cancelled: nobody will take res */
    corio_future_release(f);  /* the callback's reference */
    free(req);
}

static void cancel_resolve(corio_future *f, void *data) {
    (void)f;
    /* Works only if the lookup has not started on the thread pool yet; either
     * way on_resolved runs once and cleans up. */
    (void)uv_cancel((uv_req_t *)data);
}

/* Starts resolving `host`; *out completes with a struct addrinfo * value
 * (free it with uv_freeaddrinfo) or fails with a libuv code. */
static int resolve_async(const char *host, corio_future **out) {
    uv_getaddrinfo_t *req = malloc(sizeof *req);
    if (!req)
        return CORIO_ENOMEM;
    int rc = corio_future_new(out);
    if (rc < 0) {
        free(req);
        return rc;
    }
    req->data = corio_future_retain(*out); /* the callback's reference */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    rc = uv_getaddrinfo(corio_uv_loop(), req, on_resolved, host, NULL, &hints);
    if (rc < 0) {
        corio_future_release(*out); /* both references: nothing will call back */
        corio_future_release(*out);
        *out = NULL;
        free(req);
        return rc;
    }
    corio_future_on_cancel(*out, cancel_resolve, req);
    return 0;
}

static int show_localhost(void) {
    corio_future *f = NULL;
    int rc = resolve_async("localhost", &f);
    if (rc == 0)
        rc = corio_await(f);
    if (rc < 0) {
        (void)corio_future_cancel(f); /* if still pending: stop the lookup */
        corio_future_release(f);
        printf("resolve localhost: %s\n", uv_strerror(rc));
        return rc;
    }
    struct addrinfo *res = corio_future_value(f);
    corio_future_release(f);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        char name[64];
        int nrc = UV_EAFNOSUPPORT;
        if (ai->ai_family == AF_INET)
            nrc = uv_ip4_name((const struct sockaddr_in *)ai->ai_addr, name, sizeof name);
        else if (ai->ai_family == AF_INET6)
            nrc = uv_ip6_name((const struct sockaddr_in6 *)ai->ai_addr, name, sizeof name);
        printf("localhost -> %s\n", nrc == 0 ? name : uv_strerror(nrc));
    }
    uv_freeaddrinfo(res);
    return 0;
}

/* ---- 2. a callback-style library function, and its wrapper ---------------------- */

/* The "library": fetch_start() calls cb(status, value, data) after `ms`;
 * fetch_abort() stops it (cb is then never called). */
typedef void (*fetch_cb)(int status, const char *value, void *data);
typedef struct fetch_op {
    uv_timer_t timer;
    fetch_cb cb;
    void *data;
    char key[32];
} fetch_op;

static void fetch_closed(uv_handle_t *h) {
    free(h->data);
}

static void fetch_fire(uv_timer_t *t) {
    fetch_op *op = t->data;
    char value[64];
    snprintf(value, sizeof value, "value-of-%s", op->key);
    op->cb(0, value, op->data);
    uv_close((uv_handle_t *)&op->timer, fetch_closed);
}

static fetch_op *fetch_start(uv_loop_t *loop, const char *key, uint64_t ms, fetch_cb cb,
                             void *data) {
    fetch_op *op = malloc(sizeof *op);
    if (!op)
        return NULL;
    op->cb = cb;
    op->data = data;
    snprintf(op->key, sizeof op->key, "%s", key);
    if (uv_timer_init(loop, &op->timer) != 0) {
        free(op);
        return NULL;
    }
    op->timer.data = op;
    if (uv_timer_start(&op->timer, fetch_fire, ms, 0) != 0) {
        uv_close((uv_handle_t *)&op->timer, fetch_closed);
        return NULL;
    }
    return op;
}

static void fetch_abort(fetch_op *op) {
    uv_close((uv_handle_t *)&op->timer, fetch_closed); /* stops the timer too */
}

/* The wrapper.  The future is the callback's data, and the callback (or the
 * cancel hook, when the callback will never come) drops that reference. */
static void on_fetched(int status, const char *value, void *data) {
    corio_future *f = data;
    char *copy = status == 0 ? strdup(value) : NULL;
    int rc = copy     ? corio_future_resolve(f, copy)
             : status ? corio_future_fail(f, status)
                      : corio_future_fail(f, CORIO_ENOMEM);
    if (rc != 0)
        free(copy); /* already cancelled: nobody will take it */
    corio_future_release(f);
}

static void cancel_fetch(corio_future *f, void *data) {
    fetch_abort(data);
    printf("  cancel hook: fetch_abort() called, the callback will not run\n");
    corio_future_release(f); /* the reference on_fetched would have dropped */
}

/* Starts a fetch; *out resolves with a malloc'd string (the awaiter frees
 * it). */
static int fetch_async(const char *key, uint64_t ms, corio_future **out) {
    int rc = corio_future_new(out);
    if (rc < 0)
        return rc;
    fetch_op *op = fetch_start(corio_uv_loop(), key, ms, on_fetched, corio_future_retain(*out));
    if (!op) {
        corio_future_release(*out);
        corio_future_release(*out);
        *out = NULL;
        return CORIO_ENOMEM;
    }
    corio_future_on_cancel(*out, cancel_fetch, op);
    return 0;
}

/* Awaits a fetch under a timeout; on timeout cancels it, which stops it. */
static int fetch_with_timeout(const char *key, uint64_t ms, uint64_t timeout_ms) {
    corio_future *f = NULL;
    int rc = fetch_async(key, ms, &f);
    if (rc < 0)
        return rc;
    printf("fetch(%s) taking %llu ms, timeout %llu ms\n", key, (unsigned long long)ms,
           (unsigned long long)timeout_ms);
    CORIO_WITH(corio_timeout_scope(timeout_ms)) {
        rc = corio_await(f);
    }
    if (rc == 0) {
        char *value = corio_future_value(f);
        printf("  got \"%s\"\n", value);
        free(value);
    } else {
        /* The await gave up; the operation is still pending.  Cancelling
         * the future runs the hook, which stops it. */
        printf("  await: %s\n", corio_err_name(rc));
        (void)corio_future_cancel(f);
        printf("  future now done with %s\n", corio_err_name(corio_future_result(f)));
    }
    corio_future_release(f);
    return rc;
}

static int amain(void *arg) {
    (void)arg;
    int rc = show_localhost();
    if (rc < 0)
        return rc;
    rc = fetch_with_timeout("user:42", 50, 500);
    if (rc < 0)
        return rc;
    rc = fetch_with_timeout("user:43", 5000, 100);
    return rc == CORIO_ETIMEDOUT ? 0 : CORIO_EFAILED;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "wrap_callback: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
