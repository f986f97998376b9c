/* SPDX-License-Identifier: MIT */
/* Requests as futures: each runs an exchange (exchange.c) in a task of its
 * own and buffers the body; the future owns the response.  And the helpers
 * over several requests: the first good answer, and hedged requests. */
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "corio/scope.h"

typedef struct request {
    corio_http_client *c;
    corio__req q;
    corio_future *fut;
    corio_task *task;
} request;

static void response_free(void *r) {
    corio_http_response_free(r);
}

/* Await: the exchange, the body appended to the response.  Returns 0 and
 * *out, or an error. */
static int run(request *rq, corio_http_response **out) {
    int rc;
    corio_http_exchange *x;
    CORIO_WITH_RC(rc, corio__http_open_req(rq->c, &rq->q, &x)) {
        const corio_http_response *head;
        if ((rc = corio_http_response_head(x, &head)) < 0)
            return corio_scope_fail(rc);
        corio_http_response *r = corio__exchange_response(x);
        const char *d;
        int n;
        while ((n = corio_http_read(x, &d)) > 0)
            if ((rc = corio__response_append(r, d, (size_t)n, rq->c->o.max_body)) < 0)
                return corio_scope_fail(rc);
        if (n < 0)
            return corio_scope_fail(n);
        *out = corio__exchange_take(x);
    }
    return rc;
}

static int request_task(void *arg) {
    request *rq = arg;
    corio_http_response *resp = NULL;
    int rc = run(rq, &resp);
    if (rc == 0 && corio_future_resolve(rq->fut, resp) == 0)
        resp = NULL; /* the future owns it now */
    else if (rc < 0)
        corio_future_fail(rq->fut, rc); /* CORIO_EALREADY if cancelled: fine */
    corio_http_response_free(resp);
    corio__req_release(&rq->q);
    corio_future_release(rq->fut);
    corio_task_release(rq->task);
    corio__client_unref(rq->c);
    free(rq);
    return rc < 0 ? rc : 0;
}

static void on_cancel(corio_future *f, void *data) {
    (void)f;
    corio_cancel(((request *)data)->task);
}

int corio_http_request_ex(corio_http_client *c, corio_future **out, const corio_http_req *rq) {
    if (!c || !out || !rq || rq->body_stream || rq->upgrade)
        return CORIO_EINVAL; /* a stream or an upgrade needs an exchange */
    if (c->closed)
        return CORIO_ECLOSED;
    request *r = calloc(1, sizeof *r);
    if (!r)
        return CORIO_ENOMEM;
    int rc = corio__req_init(&r->q, rq, true);
    if (rc == 0 && (rc = corio_future_new(&r->fut)) == 0)
        corio_future_set_value_free(r->fut, response_free);
    if (rc) {
        corio__req_release(&r->q);
        corio_future_release(r->fut);
        free(r);
        return rc;
    }
    r->c = c;
    corio__client_ref(c);
    corio_spawn_opts so = {.name = "http-client", .run_if_cancelled = true};
    rc = corio_spawn_ex(&r->task, &so, request_task, r);
    if (rc) {
        corio__req_release(&r->q);
        corio_future_release(r->fut);
        corio__client_unref(c);
        free(r);
        return rc;
    }
    corio_future_on_cancel(r->fut, on_cancel, r);
    *out = corio_future_retain(r->fut);
    return 0;
}

int corio_http_request(corio_http_client *c, corio_future **out, const char *method,
                       const char *url, const corio_http_header *headers, size_t nheaders,
                       const void *body, size_t len) {
    if (!method || (len && !body))
        return CORIO_EINVAL;
    corio_http_req rq = {.method = method,
                         .url = url,
                         .headers = headers,
                         .nheaders = nheaders,
                         .body = len ? body : NULL,
                         .body_length = (int64_t)len};
    return corio_http_request_ex(c, out, &rq);
}

/* ---- several requests --------------------------------------------------------------------- */

/* A done future's answer is good: a response below 500. */
static bool good(corio_future *f) {
    const corio_http_response *r = corio_future_result(f) == 0 ? corio_future_value(f) : NULL;
    return r && r->status < 500;
}

/* Cancels every pending future of fs but `keep`. */
static void cancel_others(corio_future *const *fs, size_t n, const corio_future *keep) {
    for (size_t i = 0; i < n; i++)
        if (fs[i] != keep)
            corio_future_cancel(fs[i]); /* CORIO_EALREADY when done: fine */
}

int corio_http_first(corio_future *const *fs, size_t n, size_t *winner) {
    if (!fs || !n || !winner)
        return CORIO_EINVAL;
    corio_future **pending = malloc(n * sizeof(corio_future *));
    size_t *index = malloc(n * sizeof *index);
    if (!pending || !index) {
        free(pending);
        free(index);
        return CORIO_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        pending[i] = fs[i];
        index[i] = i;
    }
    size_t left = n, first_5xx = n;
    int rc = 0, last = CORIO_EINVAL;
    while (left) {
        size_t k;
        if ((rc = corio_wait_any(pending, left, &k)) < 0)
            break; /* a cancel or deadline: wait_any cancelled the pending ones */
        corio_future *f = pending[k];
        if (good(f)) {
            *winner = index[k];
            cancel_others(fs, n, f);
            break;
        }
        if (corio_future_result(f) == 0 && first_5xx == n)
            first_5xx = index[k];
        else if (corio_future_result(f) < 0)
            last = corio_future_result(f);
        pending[k] = pending[--left];
        index[k] = index[left];
    }
    if (rc == 0 && left == 0) {
        if (first_5xx < n)
            *winner = first_5xx;
        else
            rc = last;
    }
    free(pending);
    free(index);
    return rc;
}

static int sleeper(void *arg) {
    return corio_sleep((uint64_t)(uintptr_t)arg);
}

int corio_http_hedged(corio_http_client *c, corio_future **out, const corio_http_req *rq,
                      const char *const *urls, size_t n, uint64_t delay_ms) {
    if (!c || !out || !rq || !urls || !n)
        return CORIO_EINVAL;
    /* started[0..m) are the requests; started[m] the hedge timer while one runs */
    corio_future **started = calloc(n + 1, sizeof(corio_future *));
    corio_future **wait = calloc(n + 1, sizeof(corio_future *));
    size_t *map = calloc(n + 1, sizeof *map);
    bool *seen = calloc(n, sizeof *seen); /* its answer has been looked at */
    if (!started || !wait || !map || !seen) {
        free(started);
        free(wait);
        free(map);
        free(seen);
        return CORIO_ENOMEM;
    }
    size_t m = 0, live = 0;
    int rc = 0, last = CORIO_EINVAL;
    corio_future *win = NULL, *first_5xx = NULL;
    corio_task *timer = NULL;
    while (!win) {
        if (!timer && m < n) { /* the next attempt, and a timer for the one after */
            corio_http_req one = *rq;
            one.url = urls[m];
            if ((rc = corio_http_request_ex(c, &started[m], &one)) < 0) {
                last = rc; /* a URL that cannot start: on to the next one */
                seen[m++] = true;
                rc = 0;
                continue;
            }
            m++;
            live++;
            if (m < n &&
                (rc = corio_spawn(&timer, "http-hedge", sleeper, (void *)(uintptr_t)delay_ms)) < 0)
                break;
        }
        if (!live && !timer)
            break;
        /* Wait for any live request or the timer: pack them. */
        size_t w = 0;
        for (size_t i = 0; i < m; i++)
            if (!seen[i]) { /* done ones too: each answer is looked at once */
                wait[w] = started[i];
                map[w++] = i;
            }
        if (timer) {
            wait[w] = corio_task_future(timer);
            map[w++] = n;
        }
        size_t k;
        if ((rc = corio_wait_any(wait, w, &k)) < 0)
            break;
        if (map[k] == n) { /* the hedge delay passed */
            corio_task_release(timer);
            timer = NULL;
            continue;
        }
        corio_future *f = started[map[k]];
        seen[map[k]] = true;
        live--;
        if (good(f)) {
            win = f;
        } else if (corio_future_result(f) == 0) {
            if (!first_5xx)
                first_5xx = f;
        } else {
            last = corio_future_result(f);
        }
        if (!live && timer) { /* nothing in flight: hedge at once */
            corio_cancel(timer);
            corio_task_release(timer);
            timer = NULL;
        }
    }
    if (timer) {
        corio_cancel(timer);
        corio_task_release(timer);
    }
    if (!win && rc == 0) {
        win = first_5xx;
        rc = win ? 0 : last;
    }
    for (size_t i = 0; i < m; i++) {
        if (started[i] && started[i] != win) {
            corio_future_cancel(started[i]);
            corio_future_release(started[i]);
        }
    }
    free(started);
    free(wait);
    free(map);
    free(seen);
    if (win)
        *out = win;
    return win ? 0 : rc;
}
