/* SPDX-License-Identifier: MIT */
/* Layer 2: futures (future.h): completion and await, done callbacks, cancel
 * hooks, gather/wait, thread-safe completion and run_blocking.
 *
 * Tasks record what they saw into state structs; assertions run after
 * corio_run() returned, and every test checks corio_run()'s own result.
 */
#define _GNU_SOURCE
#include "corio_test.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "runtime/internal.h"

#define ARG(i) ((void *)(intptr_t)(i))

/* ---- helpers ------------------------------------------------------------------------ */

static corio_future *fnew(void) {
    corio_future *f = NULL;
    if (corio_future_new(&f) != 0)
        abort(); /* out of memory in a test */
    return f;
}

/* Spawns fn(arg); returns the task as a future (a reference to drop). */
static corio_future *spawn_f(const char *name, corio_task_fn fn, void *arg) {
    corio_task *t;
    if (corio_spawn(&t, name, fn, arg) != 0)
        abort();
    return corio_task_future(t);
}

/* Awaits f and drops a reference to it. */
static int join_f(corio_future *f) {
    int rc = corio_await(f);
    corio_future_release(f);
    return rc;
}

static void release_all(corio_future **fs, size_t n) {
    for (size_t i = 0; i < n; i++)
        corio_future_release(fs[i]);
}

static bool no_waiters(const corio_future *f) {
    return corio__list_empty(&f->waiters);
}

static int return_arg(void *arg) {
    return (int)(intptr_t)arg;
}

static int await_arg(void *arg) {
    return corio_await((corio_future *)arg);
}

/* A completion for a task to make after one yield (the awaiting side parks
 * first). */
typedef struct completion {
    corio_future *f;
    int result;
} completion;

static int complete_after_yield(void *arg) {
    completion *c = arg;
    corio_yield();
    return corio_future_complete(c->f, c->result, NULL);
}

static void count_hit(corio_future *f, void *data) {
    (void)f;
    (*(int *)data)++;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* ---- completion and await ------------------------------------------------------------- */

typedef struct timer_state {
    uv_timer_t timer; /* outlives main: its close completes after main ends */
    corio_future *f;
    int value, await_rc;
    void *got;
    bool done_before;
} timer_state;

static void resolve_on_timer(uv_timer_t *h) {
    timer_state *st = h->data;
    corio_future_resolve(st->f, &st->value);
    uv_close((uv_handle_t *)h, NULL);
}

static int timer_main(void *arg) {
    timer_state *st = arg;
    st->f = fnew();
    uv_timer_init(corio_uv_loop(), &st->timer);
    st->timer.data = st;
    uv_timer_start(&st->timer, resolve_on_timer, 5, 0);
    st->done_before = corio_future_done(st->f);
    st->await_rc = corio_await(st->f);
    st->got = corio_future_value(st->f);
    corio_future_release(st->f);
    return 0;
}

static void test_resolve_from_uv_timer_wakes_awaiting_task_with_value(void **state) {
    (void)state;
    timer_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(timer_main, &st);
    assert_false(st.done_before);
    assert_int_equal(st.await_rc, 0);
    assert_ptr_equal(st.got, &st.value);
}

typedef struct complete_state {
    int pending_result, await_rc, again_rc, again_fail_rc, result_after, bad_fail_rc;
    int on_task_rc, ts_on_task_rc, immediate_rc;
    void *pending_value, *value_after;
    bool sibling_ran_during_await, sibling_ran;
} complete_state;

static int set_flag(void *arg) {
    *(bool *)arg = true;
    return 0;
}

static int complete_main(void *arg) {
    complete_state *st = arg;
    corio_future *f = fnew(), *g = fnew();
    st->pending_result = corio_future_result(f);
    st->pending_value = corio_future_value(f);
    completion c = {f, CORIO_ECONNRESET};
    corio_future *failer = spawn_f("failer", complete_after_yield, &c);
    st->await_rc = corio_await(f); /* failed from another task */
    st->again_rc = corio_future_resolve(f, &st);
    st->again_fail_rc = corio_future_fail(f, CORIO_EPIPE);
    st->result_after = corio_future_result(f);
    st->value_after = corio_future_value(f);
    st->bad_fail_rc = corio_future_fail(g, 5); /* a failure must be negative */
    st->on_task_rc = corio_future_resolve(failer, NULL);
    st->ts_on_task_rc = corio_future_resolve_threadsafe(failer, NULL);
    join_f(failer);
    /* Awaiting a done future does not yield: a ready sibling does not run. */
    corio_future_resolve(g, NULL);
    corio_future *sibling = spawn_f("sibling", set_flag, &st->sibling_ran);
    st->immediate_rc = corio_await(g);
    st->sibling_ran_during_await = st->sibling_ran;
    join_f(sibling);
    corio_future_release(f);
    corio_future_release(g);
    corio_future_release(fnew()); /* the last reference of a pending future */
    return 0;
}

static void test_fail_complete_twice_and_await_of_done_future(void **state) {
    (void)state;
    complete_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(complete_main, &st);
    assert_int_equal(st.pending_result, CORIO_EAGAIN);
    assert_null(st.pending_value);
    assert_int_equal(st.await_rc, CORIO_ECONNRESET);
    assert_int_equal(st.again_rc, CORIO_EALREADY);
    assert_int_equal(st.again_fail_rc, CORIO_EALREADY);
    assert_int_equal(st.result_after, CORIO_ECONNRESET); /* unchanged */
    assert_null(st.value_after);
    assert_int_equal(st.bad_fail_rc, CORIO_EINVAL);
    assert_int_equal(st.on_task_rc, CORIO_EINVAL);
    assert_int_equal(st.ts_on_task_rc, CORIO_EINVAL);
    assert_int_equal(st.immediate_rc, 0);
    assert_false(st.sibling_ran_during_await);
    assert_true(st.sibling_ran);
}

/* ---- done callbacks ------------------------------------------------------------------- */

typedef struct cb_state {
    int order[8], seen_result[8], n;
    int after_complete, after_late_add, after_yield, task_cb_result;
    bool wrong_future;
    corio_future *f;
} cb_state;

typedef struct cb_arg {
    cb_state *st;
    int tag;
} cb_arg;

static void record_cb(corio_future *f, void *data) {
    cb_arg *a = data;
    a->st->wrong_future |= f != a->st->f;
    a->st->seen_result[a->st->n] = corio_future_result(f);
    a->st->order[a->st->n++] = a->tag;
}

static void task_cb(corio_future *f, void *data) {
    ((cb_state *)data)->task_cb_result = corio_future_result(f);
}

static int cb_main(void *arg) {
    cb_state *st = arg;
    cb_arg args[4] = {{st, 1}, {st, 2}, {st, 3}, {st, 4}};
    st->f = fnew();
    corio_future_add_done_cb(st->f, record_cb, &args[0]);
    corio_future_add_done_cb(st->f, record_cb, &args[1]);
    corio_future_complete(st->f, 17, NULL);
    st->after_complete = st->n; /* not run synchronously inside complete */
    corio_future_add_done_cb(st->f, record_cb, &args[2]);
    st->after_late_add = st->n; /* nor inside add, once done */
    corio_yield();
    st->after_yield = st->n;
    corio_future_add_done_cb(st->f, record_cb, &args[3]);
    corio_yield();
    corio_future_release(st->f);
    /* A task's future gets its result. */
    corio_future *t = spawn_f("nine", return_arg, ARG(9));
    corio_future_add_done_cb(t, task_cb, st);
    join_f(t);
    return corio_yield();
}

static void test_done_callbacks_run_soon_in_order_also_after_completion(void **state) {
    (void)state;
    cb_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(cb_main, &st);
    assert_int_equal(st.after_complete, 0);
    assert_int_equal(st.after_late_add, 0);
    assert_int_equal(st.after_yield, 3);
    assert_int_equal(st.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(st.order[i], i + 1);
        assert_int_equal(st.seen_result[i], 17);
    }
    assert_false(st.wrong_future);
    assert_int_equal(st.task_cb_result, 9);
}

/* ---- cancel hooks, cancelled waiters ----------------------------------------------------- */

typedef struct hook_state {
    int first_hook, second_hook, resolving_hook, cancel_rc, waiter_rc, cancel_again_rc, result;
    int resolving_cancel_rc, resolved_result, task_cancel_rc, task_rc;
    bool done_in_hook;
    void *hook_data;
} hook_state;

static void first_hook(corio_future *f, void *data) {
    (void)f;
    ((hook_state *)data)->first_hook++;
}

static void second_hook(corio_future *f, void *data) {
    hook_state *st = data;
    st->second_hook++;
    st->hook_data = data;
    st->done_in_hook = corio_future_done(f);
}

static void resolving_hook(corio_future *f, void *data) {
    ((hook_state *)data)->resolving_hook++;
    corio_future_resolve(f, NULL); /* the operation finished after all */
}

static int hook_main(void *arg) {
    hook_state *st = arg;
    corio_future *f = fnew(), *g = fnew(), *h = fnew();
    corio_future_on_cancel(f, first_hook, st);
    corio_future_on_cancel(f, second_hook, st); /* replaces the first */
    corio_future *waiter = spawn_f("waiter", await_arg, f);
    corio_yield();
    st->cancel_rc = corio_future_cancel(f);
    st->waiter_rc = join_f(waiter);
    st->cancel_again_rc = corio_future_cancel(f);
    st->result = corio_future_result(f);
    corio_future_on_cancel(g, resolving_hook, st);
    st->resolving_cancel_rc = corio_future_cancel(g);
    st->resolved_result = corio_future_result(g);
    /* On a task, corio_future_cancel is corio_cancel. */
    corio_future *t = spawn_f("task-waiter", await_arg, h);
    corio_yield();
    st->task_cancel_rc = corio_future_cancel(t);
    st->task_rc = join_f(t);
    corio_future *all[] = {f, g, h};
    release_all(all, 3);
    return 0;
}

static void test_future_cancel_runs_hook_and_fails_with_ecanceled(void **state) {
    (void)state;
    hook_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(hook_main, &st);
    assert_int_equal(st.first_hook, 0);
    assert_int_equal(st.second_hook, 1);
    assert_ptr_equal(st.hook_data, &st);
    assert_false(st.done_in_hook); /* the hook runs first, then the failure */
    assert_int_equal(st.cancel_rc, 0);
    assert_int_equal(st.waiter_rc, CORIO_ECANCELED);
    assert_int_equal(st.cancel_again_rc, CORIO_EALREADY);
    assert_int_equal(st.result, CORIO_ECANCELED);
    assert_int_equal(st.resolving_hook, 1);
    assert_int_equal(st.resolving_cancel_rc, 0);
    assert_int_equal(st.resolved_result, 0);
    assert_int_equal(st.task_cancel_rc, 0);
    assert_int_equal(st.task_rc, CORIO_ECANCELED);
}

typedef struct owned_state {
    int frees, last_freed, task_rc, set_rc, frees_before_last, frees_at_last;
} owned_state;

static int returns_zero(void *arg) {
    (void)arg;
    return 0;
}

static owned_state *owned_st;

static void free_value(void *v) {
    owned_st->frees++;
    owned_st->last_freed = (int)(intptr_t)v;
}

static int owned_main(void *arg) {
    owned_state *st = owned_st = arg;
    /* Owned: freed at the last release, not before. */
    corio_future *f = fnew();
    st->set_rc = corio_future_set_value_free(f, free_value);
    corio_future_retain(f);
    corio_future_resolve(f, ARG(7));
    corio_future_release(f);
    st->frees_before_last = st->frees; /* one reference left */
    corio_future_release(f);
    st->frees_at_last = st->frees;
    /* Taken out (set back to NULL): not freed; failed or pending: nothing to free. */
    f = fnew();
    corio_future_set_value_free(f, free_value);
    corio_future_resolve(f, ARG(8));
    corio_future_set_value_free(f, NULL);
    corio_future_release(f);
    f = fnew();
    corio_future_set_value_free(f, free_value);
    corio_future_fail(f, CORIO_EINVAL);
    corio_future_release(f);
    f = fnew();
    corio_future_set_value_free(f, free_value);
    corio_future_release(f); /* released pending */
    /* Not for tasks. */
    corio_future *t = spawn_f("t", returns_zero, NULL);
    st->task_rc = corio_future_set_value_free(t, free_value);
    join_f(t);
    return 0;
}

static void test_future_set_value_free_frees_at_last_release_only_if_owned(void **state) {
    (void)state;
    owned_state st = {0};
    corio_test_run(owned_main, &st);
    assert_int_equal(st.set_rc, 0);
    assert_int_equal(st.frees_before_last, 0);
    assert_int_equal(st.frees_at_last, 1);
    assert_int_equal(st.last_freed, 7);
    assert_int_equal(st.frees, 1); /* taken, failed and pending ones: not freed */
    assert_int_equal(st.task_rc, CORIO_EINVAL);
}

typedef struct abandon_state {
    int waiter_rc, resolve_rc;
    bool pending_after, unlinked, done_at_end;
} abandon_state;

static int abandon_main(void *arg) {
    abandon_state *st = arg;
    corio_future *f = fnew();
    corio_future *waiter = spawn_f("waiter", await_arg, f);
    corio_yield();                  /* parked on f */
    corio_future_cancel(waiter);    /* on a task: corio_cancel */
    st->waiter_rc = join_f(waiter); /* its stack goes back to the pool */
    st->pending_after = !corio_future_done(f);
    st->unlinked = no_waiters(f);
    /* Would write into the dead waiter's frame if it were still linked. */
    st->resolve_rc = corio_future_resolve(f, NULL);
    st->done_at_end = corio_future_done(f);
    corio_future_release(f);
    return 0;
}

static void test_cancelled_waiter_leaves_future_pending_and_unlinked(void **state) {
    (void)state;
    abandon_state st = {0};
    corio_test_run(abandon_main, &st);
    assert_int_equal(st.waiter_rc, CORIO_ECANCELED);
    assert_true(st.pending_after);
    assert_true(st.unlinked);
    assert_int_equal(st.resolve_rc, 0);
    assert_true(st.done_at_end);
}

/* ---- gather and wait ---------------------------------------------------------------------- */

typedef struct gather_state {
    int rc, results[3], slow_rc, first_rc, empty, self, null;
    bool slow_done;
} gather_state;

static int gather_ok_main(void *arg) {
    gather_state *st = arg;
    corio_future *fs[3];
    for (int i = 0; i < 3; i++)
        fs[i] = spawn_f("ok", return_arg, ARG(i + 1));
    st->rc = corio_gather(fs, 3);
    for (int i = 0; i < 3; i++)
        st->results[i] = corio_future_result(fs[i]);
    release_all(fs, 3);
    /* Edges: nothing to wait for; the current task; a NULL entry. */
    st->empty = corio_gather(NULL, 0);
    corio_future *self[] = {corio_task_future(corio_current())}, *null[] = {NULL};
    st->self = corio_gather(self, 1);
    st->null = corio_gather(null, 1);
    return 0;
}

static void test_gather_all_succeed_results_readable(void **state) {
    (void)state;
    gather_state st = {0};
    corio_test_run(gather_ok_main, &st);
    assert_int_equal(st.rc, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(st.results[i], i + 1);
    assert_int_equal(st.empty, 0);
    assert_int_equal(st.self, CORIO_EINVAL);
    assert_int_equal(st.null, CORIO_EINVAL);
}

static int complete_two_after_yield(void *arg) {
    completion *c = arg;
    corio_yield();
    corio_future_complete(c[0].f, c[0].result, NULL);
    return corio_future_complete(c[1].f, c[1].result, NULL);
}

static int gather_fail_main(void *arg) {
    gather_state *st = arg;
    /* One fails: gather returns early while the slow sibling still runs. */
    corio_future *gate = fnew();
    completion fail = {fnew(), CORIO_EPIPE};
    corio_future *two[] = {spawn_f("slow", await_arg, gate), fail.f};
    corio_future *failer = spawn_f("failer", complete_after_yield, &fail);
    st->rc = corio_gather(two, 2);
    st->slow_done = corio_future_done(two[0]);
    corio_future_resolve(gate, NULL);
    st->slow_rc = corio_await(two[0]);
    corio_future *all[] = {two[0], two[1], gate, failer};
    release_all(all, 4);
    /* Two fail before gather runs again: the first to fail is reported. */
    corio_future *fs[] = {fnew(), fnew()};
    completion both[] = {{fs[1], CORIO_EPIPE}, {fs[0], CORIO_ECONNRESET}};
    failer = spawn_f("fails-two", complete_two_after_yield, both);
    st->first_rc = corio_gather(fs, 2);
    corio_future *rest[] = {fs[0], fs[1], failer};
    release_all(rest, 3);
    return 0;
}

static void test_gather_returns_first_failure_early_while_siblings_run(void **state) {
    (void)state;
    gather_state st = {0};
    corio_test_run(gather_fail_main, &st);
    assert_int_equal(st.rc, CORIO_EPIPE);
    assert_false(st.slow_done);
    assert_int_equal(st.slow_rc, 0);
    assert_int_equal(st.first_rc, CORIO_EPIPE);
}

typedef struct wait_state {
    int any_rc, all_rc, empty_any, empty_all, results[3];
    size_t index, index_again;
    bool others_pending, all_done;
} wait_state;

static int wait_main(void *arg) {
    wait_state *st = arg;
    corio_future *w[3] = {fnew(), fnew(), fnew()};
    /* wait_any: the lowest index of a done future. */
    completion c2 = {w[2], CORIO_EPIPE}, c0 = {w[0], 0};
    corio_future *completer = spawn_f("completer", complete_after_yield, &c2);
    st->any_rc = corio_wait_any(w, 3, &st->index);
    st->others_pending = !corio_future_done(w[0]) && !corio_future_done(w[1]);
    corio_future_resolve(w[1], NULL);
    corio_wait_any(w, 3, &st->index_again);
    join_f(completer);
    /* wait_all: every one, whatever the results. */
    completer = spawn_f("completer", complete_after_yield, &c0);
    st->all_rc = corio_wait_all(w, 3);
    st->all_done = corio_future_done(w[0]) && corio_future_done(w[1]) && corio_future_done(w[2]);
    for (int i = 0; i < 3; i++)
        st->results[i] = corio_future_result(w[i]);
    join_f(completer);
    st->empty_any = corio_wait_any(w, 0, NULL);
    st->empty_all = corio_wait_all(NULL, 0);
    release_all(w, 3);
    return 0;
}

static void test_wait_any_returns_first_done_and_wait_all_waits_for_all(void **state) {
    (void)state;
    wait_state st;
    memset(&st, 0, sizeof st);
    corio_test_run(wait_main, &st);
    assert_int_equal(st.any_rc, 0);
    assert_int_equal(st.index, 2);
    assert_true(st.others_pending);
    assert_int_equal(st.index_again, 1);
    assert_int_equal(st.all_rc, 0);
    assert_true(st.all_done);
    assert_int_equal(st.results[0], 0);
    assert_int_equal(st.results[1], 0);
    assert_int_equal(st.results[2], CORIO_EPIPE);
    assert_int_equal(st.empty_any, CORIO_EINVAL);
    assert_int_equal(st.empty_all, 0);
}

#define THOUSAND 1000

static int yield_then_return(void *arg) {
    corio_yield();
    return (int)(intptr_t)arg;
}

static int thousand_main(void *arg) {
    int *bad = arg;
    corio_future *fs[THOUSAND];
    for (int i = 0; i < THOUSAND; i++)
        fs[i] = spawn_f(NULL, yield_then_return, ARG(i));
    int rc = corio_gather(fs, THOUSAND);
    for (int i = 0; i < THOUSAND; i++)
        *bad += corio_future_result(fs[i]) != i;
    release_all(fs, THOUSAND);
    return rc;
}

static void test_gather_of_thousand_tasks(void **state) {
    (void)state;
    int bad = 0;
    corio_test_run(thousand_main, &bad);
    assert_int_equal(bad, 0);
}

typedef struct deadline_state {
    int gather_rc, any_rc, all_rc;
    uint64_t gather_ms;
    bool pending, unlinked;
} deadline_state;

static int deadline_main(void *arg) {
    deadline_state *st = arg;
    corio_future *fs[2] = {fnew(), fnew()};
    uint64_t t0 = corio_now();
    CORIO_WITH(corio_timeout_scope(20)) {
        st->gather_rc = corio_gather(fs, 2);
    }
    st->gather_ms = corio_now() - t0;
    CORIO_WITH(corio_timeout_scope(1)) {
        st->any_rc = corio_wait_any(fs, 2, NULL);
    }
    CORIO_WITH(corio_timeout_scope(1)) {
        st->all_rc = corio_wait_all(fs, 2);
    }
    st->pending = !corio_future_done(fs[0]) && !corio_future_done(fs[1]);
    st->unlinked = no_waiters(fs[0]) && no_waiters(fs[1]);
    release_all(fs, 2);
    return 0;
}

static void test_gather_and_wait_time_out_in_timeout_scope(void **state) {
    (void)state;
    deadline_state st = {0};
    corio_test_run(deadline_main, &st);
    assert_int_equal(st.gather_rc, CORIO_ETIMEDOUT);
    assert_true(st.gather_ms >= 20);
    assert_int_equal(st.any_rc, CORIO_ETIMEDOUT);
    assert_int_equal(st.all_rc, CORIO_ETIMEDOUT);
    assert_true(st.pending);
    assert_true(st.unlinked);
}

/* ---- thread-safe completion -------------------------------------------------------------- */

#define TS_THREADS 8
#define TS_PER_THREAD 1000
#define TS_TOTAL (TS_THREADS * TS_PER_THREAD)

typedef struct ts_state {
    corio_future *fs[TS_TOTAL];
    int slot[TS_TOTAL]; /* the value each future is resolved with points here */
    int hits[TS_TOTAL]; /* done callbacks seen per future */
    int first_rc[TS_THREADS], second_bad[TS_THREADS], bad_fail_rc[TS_THREADS];
    int wait_rc, wrong;
    pthread_barrier_t start;
} ts_state;

typedef struct ts_thread {
    ts_state *st;
    int index;
    pthread_t tid;
} ts_thread;

static void *ts_resolver(void *arg) {
    ts_thread *th = arg;
    ts_state *st = th->st;
    pthread_barrier_wait(&st->start);
    for (int i = th->index * TS_PER_THREAD; i < (th->index + 1) * TS_PER_THREAD; i++) {
        st->first_rc[th->index] |= corio_future_resolve_threadsafe(st->fs[i], &st->slot[i]);
        /* A second thread-safe completion is refused. */
        st->second_bad[th->index] +=
            corio_future_fail_threadsafe(st->fs[i], CORIO_EPIPE) != CORIO_EALREADY;
    }
    st->bad_fail_rc[th->index] = corio_future_fail_threadsafe(st->fs[0], 1);
    return NULL;
}

static int ts_main(void *arg) {
    ts_state *st = arg;
    for (int i = 0; i < TS_TOTAL; i++) {
        st->fs[i] = fnew();
        corio_future_add_done_cb(st->fs[i], count_hit, &st->hits[i]);
    }
    ts_thread th[TS_THREADS];
    pthread_barrier_init(&st->start, NULL, TS_THREADS);
    for (int i = 0; i < TS_THREADS; i++) {
        th[i] = (ts_thread){st, i, 0};
        if (pthread_create(&th[i].tid, NULL, ts_resolver, &th[i]))
            abort();
    }
    st->wait_rc = corio_wait_all(st->fs, TS_TOTAL);
    /* Every future is done, so every thread is past its last call. */
    for (int i = 0; i < TS_THREADS; i++)
        pthread_join(th[i].tid, NULL);
    pthread_barrier_destroy(&st->start);
    corio_yield(); /* the done callbacks have run */
    for (int i = 0; i < TS_TOTAL; i++)
        st->wrong +=
            corio_future_value(st->fs[i]) != &st->slot[i] || corio_future_result(st->fs[i]) != 0;
    release_all(st->fs, TS_TOTAL);
    return 0;
}

static void test_threadsafe_resolve_from_eight_threads_arrives_once(void **state) {
    (void)state;
    ts_state *st = calloc(1, sizeof *st);
    assert_non_null(st);
    corio_test_run(ts_main, st);
    assert_int_equal(st->wait_rc, 0);
    assert_int_equal(st->wrong, 0);
    for (int i = 0; i < TS_THREADS; i++) {
        assert_int_equal(st->first_rc[i], 0);
        assert_int_equal(st->second_bad[i], 0);
        assert_int_equal(st->bad_fail_rc[i], CORIO_EINVAL);
    }
    for (int i = 0; i < TS_TOTAL; i++)
        assert_int_equal(st->hits[i], 1);
    free(st);
}

/* A thread-safe completion still queued when main returns is delivered. */
typedef struct late_ts_state {
    corio_future *f;
    int value, hits, rc;
} late_ts_state;

static void *resolve_late(void *arg) {
    late_ts_state *st = arg;
    st->rc = corio_future_resolve_threadsafe(st->f, &st->value);
    return NULL;
}

static int late_ts_main(void *arg) {
    late_ts_state *st = arg;
    corio_future *b;
    /* Resumed from I/O (the thread pool's completion), main runs after the
     * loop's last poll of this iteration: nothing reads the async handle
     * again before corio_run tears the loop down. */
    if (corio_run_blocking(&b, return_arg, NULL) || join_f(b))
        return -1;
    st->f = fnew();
    corio_future_add_done_cb(st->f, count_hit, &st->hits);
    pthread_t tid;
    if (pthread_create(&tid, NULL, resolve_late, st))
        return -1;
    pthread_join(tid, NULL);
    corio_future_release(st->f);
    return 0;
}

static void test_threadsafe_completion_queued_at_shutdown_is_delivered(void **state) {
    (void)state;
    late_ts_state st = {0};
    corio_test_run(late_ts_main, &st);
    assert_int_equal(st.rc, 0);
    assert_int_equal(st.hits, 1);
}

/* ---- run_blocking ------------------------------------------------------------------------ */

typedef struct blocking_state {
    pthread_t loop_thread, work_thread;
    int rc, waiter_rc;
    void *value;
    long ticks;
    bool stop, finished;
    sem_t go;
} blocking_state;

static int which_thread(void *arg) {
    ((blocking_state *)arg)->work_thread = pthread_self();
    return 123;
}

/* The blocking call itself: it returns only once a task on the loop has
 * ticked, which it can only do if the loop runs meanwhile (10 s: a stuck
 * loop fails the test instead of hanging it). */
static int wait_for_tick(void *arg) {
    blocking_state *st = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    while (sem_timedwait(&st->go, &until) != 0)
        if (errno == ETIMEDOUT)
            return CORIO_ETIMEDOUT;
    return 0;
}

static int ticker(void *arg) {
    blocking_state *st = arg;
    while (!st->stop && corio_sleep(5) == 0)
        if (st->ticks++ == 0)
            sem_post(&st->go);
    return 0;
}

static int blocking_main(void *arg) {
    blocking_state *st = arg;
    st->loop_thread = pthread_self();
    corio_future *f;
    if (corio_run_blocking(&f, which_thread, st))
        return -1;
    st->rc = corio_await(f);
    st->value = corio_future_value(f);
    corio_future_release(f);
    /* Other tasks progress during a blocking call. */
    corio_future *t = spawn_f("ticker", ticker, st);
    if (corio_run_blocking(&f, wait_for_tick, st))
        return -1;
    int rc = join_f(f);
    st->stop = true;
    return rc | join_f(t);
}

static void test_run_blocking_runs_elsewhere_while_tasks_progress(void **state) {
    (void)state;
    blocking_state st;
    memset(&st, 0, sizeof st);
    sem_init(&st.go, 0, 0);
    corio_test_run(blocking_main, &st);
    sem_destroy(&st.go);
    assert_int_equal(st.rc, 123);
    assert_null(st.value);
    assert_false(pthread_equal(st.loop_thread, st.work_thread));
    assert_true(st.ticks > 0);
}

static int wait_for_go(void *arg) {
    blocking_state *st = arg;
    while (sem_wait(&st->go) != 0) {
    }
    st->finished = true;
    return 7;
}

static int blocking_waiter(void *arg) {
    blocking_state *st = arg;
    corio_future *f;
    int rc = corio_run_blocking(&f, wait_for_go, st);
    if (rc)
        return rc;
    st->waiter_rc = join_f(f); /* the work still holds its own reference */
    return st->waiter_rc;
}

static int cancel_blocking_main(void *arg) {
    blocking_state *st = arg;
    corio_future *t = spawn_f("blocking-waiter", blocking_waiter, st);
    corio_yield(); /* it parks on the blocking call */
    corio_future_cancel(t);
    st->rc = join_f(t);
    sem_post(&st->go); /* the call ends after main; shutdown waits for it */
    return 0;
}

static void test_cancelled_run_blocking_await_closes_cleanly(void **state) {
    (void)state;
    blocking_state st;
    memset(&st, 0, sizeof st);
    sem_init(&st.go, 0, 0);
    corio_test_run(cancel_blocking_main, &st);
    sem_destroy(&st.go);
    assert_int_equal(st.waiter_rc, CORIO_ECANCELED);
    assert_int_equal(st.rc, CORIO_ECANCELED);
    assert_true(st.finished);
}

/* Blocking calls that outlive the shutdown grace period, one awaited by a
 * task that ignores its cancellation: corio_run reports both, abandons the
 * task (its await undone: no dangling waiter, no leaked reference), waits for
 * the calls (freeing the loop under a running work item would be a use after
 * free) and says the loop did not close cleanly. */
#define OVERDUE_CALLS 2

typedef struct overdue_state {
    sem_t go;
    atomic_int finished;
    int pipe_r;
    corio_future *stuck_f; /* released by the test: the stuck task never will */
    char text[8192];
    bool seen_report, await_returned;
} overdue_state;

static int overdue_call(void *arg) {
    overdue_state *st = arg;
    while (sem_wait(&st->go) != 0) {
    }
    atomic_fetch_add(&st->finished, 1);
    return 0;
}

/* Reads the redirected stderr; lets the calls end once they are reported. */
static void *release_on_report(void *arg) {
    overdue_state *st = arg;
    size_t len = 0;
    ssize_t n;
    while (len < sizeof st->text - 1 &&
           (n = read(st->pipe_r, st->text + len, sizeof st->text - 1 - len)) > 0) {
        len += (size_t)n;
        st->text[len] = '\0';
        if (!st->seen_report && strstr(st->text, "blocking call(s) still running")) {
            st->seen_report = true;
            for (int i = 0; i < OVERDUE_CALLS; i++)
                sem_post(&st->go);
        }
    }
    if (!st->seen_report) /* corio_run returned without waiting: unblock anyway */
        for (int i = 0; i < OVERDUE_CALLS; i++)
            sem_post(&st->go);
    return NULL;
}

static int stuck_on_blocking(void *arg) {
    overdue_state *st = arg;
    CORIO_WITH(corio_shield_scope()) {
        if (corio_run_blocking(&st->stuck_f, overdue_call, st) == 0) {
            (void)corio_await(st->stuck_f); /* never returns: abandoned */
            st->await_returned = true;
        }
    }
    return 0;
}

static int overdue_main(void *arg) {
    corio_future *f;
    int rc = corio_run_blocking(&f, overdue_call, arg);
    corio_future_release(f); /* nobody awaits this one */
    if (rc == 0)
        rc = corio_spawn(NULL, "stuck-on-blocking", stuck_on_blocking, arg);
    corio_yield();
    return rc;
}

static void test_blocking_calls_outliving_grace_are_reported_and_waited_for(void **state) {
    (void)state;
    overdue_state st;
    memset(&st, 0, sizeof st);
    sem_init(&st.go, 0, 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    st.pipe_r = fds[0];
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[1]);
    pthread_t reader;
    assert_int_equal(pthread_create(&reader, NULL, release_on_report, &st), 0);
    corio_run_opts opts = {.shutdown_grace_ms = 50};
    int rc = corio_run_ex(&opts, overdue_main, &st);
    int finished_in_run = atomic_load(&st.finished);
    fflush(stderr);
    dup2(saved, STDERR_FILENO); /* closes the pipe's last write end */
    close(saved);
    pthread_join(reader, NULL);
    close(fds[0]);
    while (atomic_load(&st.finished) < OVERDUE_CALLS)
        sleep_ms(1); /* only if corio_run did not wait (the bug this tests) */
    sem_destroy(&st.go);
    corio_future_release(st.stuck_f); /* done: the last reference */
    assert_int_equal(rc, CORIO_EBUSY);
    assert_true(st.seen_report);
    assert_int_equal(finished_in_run, OVERDUE_CALLS);
    assert_false(st.await_returned); /* the await did not return, with any result */
    if (!strstr(st.text, "task 'stuck-on-blocking'") ||
        !strstr(st.text, "2 blocking call(s) still running"))
        fail_msg("reports missing in:\n%s", st.text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve_from_uv_timer_wakes_awaiting_task_with_value),
        cmocka_unit_test(test_fail_complete_twice_and_await_of_done_future),
        cmocka_unit_test(test_done_callbacks_run_soon_in_order_also_after_completion),
        cmocka_unit_test(test_future_cancel_runs_hook_and_fails_with_ecanceled),
        cmocka_unit_test(test_future_set_value_free_frees_at_last_release_only_if_owned),
        cmocka_unit_test(test_cancelled_waiter_leaves_future_pending_and_unlinked),
        cmocka_unit_test(test_gather_all_succeed_results_readable),
        cmocka_unit_test(test_gather_returns_first_failure_early_while_siblings_run),
        cmocka_unit_test(test_wait_any_returns_first_done_and_wait_all_waits_for_all),
        cmocka_unit_test(test_gather_of_thousand_tasks),
        cmocka_unit_test(test_gather_and_wait_time_out_in_timeout_scope),
        cmocka_unit_test(test_threadsafe_resolve_from_eight_threads_arrives_once),
        cmocka_unit_test(test_threadsafe_completion_queued_at_shutdown_is_delivered),
        cmocka_unit_test(test_run_blocking_runs_elsewhere_while_tasks_progress),
        cmocka_unit_test(test_cancelled_run_blocking_await_closes_cleanly),
        cmocka_unit_test(test_blocking_calls_outliving_grace_are_reported_and_waited_for),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
