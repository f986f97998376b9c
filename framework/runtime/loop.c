/* SPDX-License-Identifier: MIT */
/* The loop: corio_run(), the bridge between libuv's phases and the ready
 * queue, and teardown.
 *
 * Ready tasks run from the loop's own stack in two places each iteration: in
 * the prepare phase (after timers, before poll) and in the check phase (right
 * after poll, so a task woken by I/O runs in the same iteration).  Each run
 * drains the queue in FIFO order up to a budget, so a task that yields in a
 * loop cannot starve I/O; while anything is left, an idle handle keeps poll
 * from blocking.
 */
#include <stdlib.h>
#include <string.h>

#include "coro/sanitizer.h"
#include "runtime/internal.h"
#include "runtime/stats.h"

__thread corio_loop *corio__tls_loop;

/* The process's counters until the metrics give it a slot (runtime/stats.h). */
static corio__stats local_stats;
corio__stats *corio__stats_sink = &local_stats;

#if defined(CORIO_ASAN)
#define DEFAULT_STACK_SIZE (256 * 1024)
#else
#define DEFAULT_STACK_SIZE (64 * 1024)
#endif

/* Resumptions per ready-queue run before libuv gets to poll again. */
#define READY_BUDGET 1024

static size_t default_stack_size = DEFAULT_STACK_SIZE;

size_t corio_stack_size_default(void) {
    return default_stack_size;
}

int corio_stack_size_set_default(size_t bytes) {
    if (bytes < 16 * 1024 || bytes > ((size_t)1 << 30))
        return CORIO_EINVAL;
    default_stack_size = corio__stack_round(bytes);
    return 0;
}

uint64_t corio_now(void) {
    corio_loop *L = corio__tls_loop;
    return L ? corio__now_fresh(L) : 0;
}

struct uv_loop_s *corio_uv_loop(void) {
    corio_loop *L = corio__tls_loop;
    return L ? &L->uv : NULL;
}

static void on_idle(uv_idle_t *h) {
    (void)h; /* its only job is to make poll non-blocking */
}

void corio__loop_kick(corio_loop *L) {
    if (!L->idle_active) {
        uv_idle_start(&L->idle, on_idle);
        L->idle_active = true;
    }
}

void corio__loop_run_ready(corio_loop *L) {
    for (int budget = READY_BUDGET; budget > 0; budget--) {
        if (!corio__list_empty(&L->soon))
            corio__run_soon(L);
        corio__link *n = corio__list_pop_front(&L->ready);
        if (!n)
            break;
        corio__task_resume(L, corio__container_of(n, corio_task, ready_link));
    }
    if (!corio__list_empty(&L->soon))
        corio__run_soon(L);
    /* Tasks that yielded run again after libuv has polled once, as in
     * asyncio: a yield lets I/O callbacks in, not just other tasks. */
    while (!corio__list_empty(&L->yielded))
        corio__list_push_back(&L->ready, corio__list_pop_front(&L->yielded));
    if (corio__list_empty(&L->ready) && corio__list_empty(&L->soon) && L->idle_active) {
        uv_idle_stop(&L->idle);
        L->idle_active = false;
    }
}

static void on_prepare(uv_prepare_t *h) {
    corio_loop *L = h->data;
    corio__loop_run_ready(L);
    L->polls++; /* the poll about to run (corio__wake_now's fairness) */
}

static void on_check(uv_check_t *h) {
    corio__loop_run_ready(h->data);
}

static void on_async(uv_async_t *h) {
    corio__run_threadsafe(h->data);
}

/* The pool's decay: every POOL_DECAY_MS while stacks are hot, the hot
 * stacks that none of that period's tasks needed give their pages back
 * (corio__stack_pool_decay), down to POOL_KEEP_HOT.  A burst of tasks (a
 * wave of connections) leaves its stacks resident for a second at most
 * after it ends, while a steady load keeps as many hot as it uses. */
#define POOL_DECAY_MS 500
#define POOL_KEEP_HOT 16

static void on_pool_decay(corio__timer *t) {
    corio_loop *L = corio__container_of(t, corio_loop, pool_timer);
    if (corio__stack_pool_decay(&L->pool, POOL_KEEP_HOT) > POOL_KEEP_HOT)
        (void)corio__timer_start(L, t, corio__deadline_after(L, POOL_DECAY_MS));
}

void corio__loop_stack_put(corio_loop *L, corio__stack *s) {
    corio__stack_put(&L->pool, s);
    if (L->pool.nhot > POOL_KEEP_HOT && !corio__timer_armed(&L->pool_timer))
        (void)corio__timer_start(L, &L->pool_timer, corio__deadline_after(L, POOL_DECAY_MS));
}

static int loop_open(corio_loop *L, const corio_run_opts *opts) {
    int rc = uv_loop_init(&L->uv);
    if (rc)
        return rc;
    corio__list_init(&L->ready);
    corio__list_init(&L->yielded);
    corio__list_init(&L->soon);
    corio__list_init(&L->tasks);
    L->timer_armed_at = CORIO__NO_DEADLINE;
    L->stack_size =
        opts && opts->stack_size ? corio__stack_round(opts->stack_size) : default_stack_size;
    corio__stack_pool_init(&L->pool, L->stack_size,
                           opts && opts->stack_pool_max ? opts->stack_pool_max : 1024,
                           opts && opts->stack_pool_hot ? opts->stack_pool_hot : 256);
    corio__timer_init(&L->pool_timer, on_pool_decay);
    uv_prepare_init(&L->uv, &L->prepare);
    uv_check_init(&L->uv, &L->check);
    uv_idle_init(&L->uv, &L->idle);
    uv_timer_init(&L->uv, &L->timer);
    uv_async_init(&L->uv, &L->async, on_async);
    L->prepare.data = L->check.data = L->idle.data = L->timer.data = L->async.data = L;
    corio__ts_open(L); /* foreign threads may signal the async handle from now on */
    uv_prepare_start(&L->prepare, on_prepare);
    uv_check_start(&L->check, on_check);
    /* Only the async handle keeps uv_run going: the loop runs until the main
     * task ends and calls uv_stop(). */
    uv_unref((uv_handle_t *)&L->prepare);
    uv_unref((uv_handle_t *)&L->check);
    uv_unref((uv_handle_t *)&L->idle);
    uv_unref((uv_handle_t *)&L->timer);
    return 0;
}

static void on_grace_timer(uv_timer_t *h) {
    uv_stop(h->loop);
}

/* Cancels what is still alive when main ends and waits for it, up to the
 * grace period.  Returns the number of tasks (and blocking calls) that would
 * not end within it. */
static size_t shutdown_tasks(corio_loop *L, uint64_t grace_ms) {
    L->stopping = true;
    /* A thread-safe completion queued after the loop's last poll (main ended
     * in the check phase, right after a thread completed a future) would
     * otherwise never be read from the async handle, closed when no task is
     * left: its future's reference would leak and its done callbacks never
     * run.  Deliver it now, before deciding whether anything is still live
     * (a done callback may spawn). */
    corio__run_threadsafe(L);
    corio__run_soon(L);
    if (L->live_tasks == 0 && L->blocking_pending == 0) {
        L->closed = true; /* corio__ts_close may still run done callbacks */
        return 0;
    }
    for (corio__link *n = L->tasks.next; n != &L->tasks; n = n->next)
        corio_cancel_with(corio__container_of(n, corio_task, all_link), CORIO_CANCEL_SHUTDOWN);
    uv_timer_t grace;
    uv_timer_init(&L->uv, &grace);
    uv_update_time(&L->uv);
    uint64_t deadline = uv_now(&L->uv) + grace_ms;
    uv_timer_start(&grace, on_grace_timer, grace_ms, 0);
    while ((L->live_tasks > 0 || L->blocking_pending > 0) && uv_now(&L->uv) < deadline)
        uv_run(&L->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&grace, NULL);
    uv_run(&L->uv, UV_RUN_NOWAIT); /* let the grace timer close */
    size_t stuck = 0;
    for (corio__link *n = L->tasks.next; n != &L->tasks; n = n->next)
        corio__task_detach(L, corio__container_of(n, corio_task, all_link));
    while (!corio__list_empty(&L->tasks)) {
        corio_task *t = corio__container_of(L->tasks.next, corio_task, all_link);
        corio__report("task '%s' (id %llu) did not end within %llu ms of its cancellation "
                      "(waiting on %s); its stack is reclaimed without running its cleanup",
                      t->name, (unsigned long long)t->id, (unsigned long long)grace_ms,
                      t->waiting_on ? t->waiting_on : "nothing");
        corio__task_abandon(L, t);
        stuck++;
    }
    if (L->blocking_pending) {
        corio__report("%zu blocking call(s) still running on the thread pool at shutdown; "
                      "waiting for them to end",
                      L->blocking_pending);
        /* The pool will still post their completions to this loop: freeing it
         * before they end would be a use after free in libuv.  Threads cannot
         * be interrupted, so wait (and report the run as not clean). */
        stuck += L->blocking_pending;
        while (L->blocking_pending > 0)
            uv_run(&L->uv, UV_RUN_ONCE);
    }
    /* Abandoned tasks' futures completed above: run their done callbacks
     * (each holds a reference until it has run).  No task runs from here
     * on: a spawn from a callback is refused. */
    L->closed = true;
    corio__run_soon(L);
    return stuck;
}

static void report_handle(uv_handle_t *h, void *arg) {
    int *count = arg;
    if (uv_is_closing(h))
        return;
    corio__report("a libuv handle (%s) was left open at the end of corio_run; close it before "
                  "main returns",
                  uv_handle_type_name(uv_handle_get_type(h)));
    uv_close(h, NULL);
    (*count)++;
}

/* Closes corio's handles and the loop.  Returns the number of foreign handles
 * that had been left open. */
static int loop_close(corio_loop *L) {
    /* First, while every handle is open: refuse thread-safe completions from
     * now on and deliver those accepted before (threadsafe.c). */
    corio__ts_close(L);
    uv_close((uv_handle_t *)&L->prepare, NULL);
    uv_close((uv_handle_t *)&L->check, NULL);
    uv_close((uv_handle_t *)&L->idle, NULL);
    uv_close((uv_handle_t *)&L->timer, NULL);
    uv_close((uv_handle_t *)&L->async, NULL);
    uv_run(&L->uv, UV_RUN_NOWAIT);
    int leftover = 0;
    if (uv_loop_close(&L->uv) == UV_EBUSY) {
        uv_walk(&L->uv, report_handle, &leftover);
        uv_run(&L->uv, UV_RUN_NOWAIT);
        uv_loop_close(&L->uv);
    }
    corio__stack_pool_release(&L->pool);
    free(L->heap.items);
    return leftover;
}

int corio_run_ex(const corio_run_opts *opts, corio_task_fn main, void *arg) {
    if (!main)
        return CORIO_EINVAL;
    if (corio__tls_loop) {
        corio__report("corio_run called while a corio loop runs on this thread");
        return CORIO_EBUSY;
    }
    int rc = corio__overflow_thread_init();
    if (rc)
        return rc;
    corio_loop *L = calloc(1, sizeof *L);
    if (!L)
        return CORIO_ENOMEM;
    rc = loop_open(L, opts);
    if (rc) {
        free(L);
        return rc;
    }
    corio__tls_loop = L;
    corio_spawn_opts so = {.name = "main", .stack_size = 0};
    rc = corio_spawn_ex(&L->main_task, &so, main, arg);
    if (rc == 0) {
        uv_run(&L->uv, UV_RUN_DEFAULT);
        rc = L->main_task->fut.done ? L->main_task->fut.result : CORIO_EBUSY;
        corio_task_release(L->main_task);
    }
    uint64_t grace = opts && opts->shutdown_grace_ms ? opts->shutdown_grace_ms : 5000;
    size_t stuck = shutdown_tasks(L, grace);
    int leftover = loop_close(L);
    corio__tls_loop = NULL;
    free(L);
    corio__overflow_thread_release();
    if (stuck || leftover)
        return CORIO_EBUSY;
    return rc;
}

int corio_run(corio_task_fn main, void *arg) {
    return corio_run_ex(NULL, main, arg);
}
