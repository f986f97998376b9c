/* SPDX-License-Identifier: MIT */
/* Blocking work on libuv's thread pool, returned as a future
 * (asyncio.to_thread). */
#include <stdlib.h>

#include "runtime/internal.h"

typedef struct blocking_work {
    uv_work_t req;
    corio_future *future; /* one reference, dropped after completion */
    corio_task_fn fn;
    void *arg;
    int result;
} blocking_work;

static void work_run(uv_work_t *req) {
    blocking_work *w = req->data;
    w->result = w->fn(w->arg);
}

static void work_done(uv_work_t *req, int status) {
    blocking_work *w = req->data;
    corio_loop *L = w->future->loop;
    L->blocking_pending--;
    corio__future_finish(w->future, status == UV_ECANCELED ? CORIO_ECANCELED : w->result, NULL);
    corio_future_release(w->future);
    free(w);
    if (L->stopping && L->live_tasks == 0 && L->blocking_pending == 0)
        uv_stop(&L->uv);
}

int corio_run_blocking(corio_future **out, corio_task_fn fn, void *arg) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    corio_loop *L = corio__tls_loop;
    if (!L) {
        corio__report("corio_run_blocking called outside corio_run()");
        return CORIO_ENOTASK;
    }
    if (!fn)
        return CORIO_EINVAL;
    blocking_work *w = malloc(sizeof *w);
    if (!w)
        return CORIO_ENOMEM;
    int rc = corio_future_new(&w->future);
    if (rc) {
        free(w);
        return rc;
    }
    w->fn = fn;
    w->arg = arg;
    w->result = 0;
    w->req.data = w;
    rc = uv_queue_work(&L->uv, &w->req, work_run, work_done);
    if (rc) {
        corio_future_release(w->future);
        free(w);
        return rc;
    }
    L->blocking_pending++;
    *out = corio_future_retain(w->future);
    return 0;
}
