/* SPDX-License-Identifier: MIT */
/* Out-of-memory paths: this program is linked with -Wl,--wrap=malloc (and
 * calloc, realloc), so every allocation corio makes goes through a switch that
 * can make the Nth one fail.  A scenario touching every allocating call runs
 * once per N, from the first allocation to past the last: each call must
 * report CORIO_ENOMEM (or succeed), nothing may crash, and the loop must still
 * close cleanly.  Under ASan and valgrind the same runs prove nothing leaks on
 * those paths. */
#include "corio_test.h"

#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);

static long alloc_count;
static long fail_at = -1; /* fail the allocation with this number; -1: never */

static int should_fail(void) {
    return fail_at >= 0 && alloc_count++ == fail_at;
}

void *__wrap_malloc(size_t size) {
    return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size) {
    return should_fail() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size) {
    return should_fail() ? NULL : __real_realloc(p, size);
}

static int sleeper(void *arg) {
    return corio_sleep((uint64_t)(uintptr_t)arg);
}

static int blocking_fn(void *arg) {
    (void)arg;
    return 7;
}

/* What one run of the scenario saw.  The done-callback counter outlives the
 * scenario's task: a done callback runs soon after completion, possibly
 * after the task that registered it has ended. */
typedef struct oom_run {
    int enomem_seen;     /* calls that reported CORIO_ENOMEM */
    int callbacks_added; /* done callbacks registered */
    int callbacks_run;   /* done callbacks that ran */
} oom_run;

static void done_cb(corio_future *f, void *data) {
    (void)f;
    (*(int *)data)++;
}

/* Every allocating call of the runtime, each error tolerated but checked to be
 * CORIO_ENOMEM, every object released on every path. */
static int scenario(void *arg) {
    oom_run *run = arg;
    int rc, callbacks = 0;
#define TOLERATE(expr)                                                                             \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc == CORIO_ENOMEM)                                                                    \
            run->enomem_seen++;                                                                    \
        else if (rc != 0)                                                                          \
            return CORIO_EFAILED;                                                                  \
    } while (0)

    /* Tasks, timers (the heap grows past 64 entries), gather over > 8 futures
     * (its waiter array is allocated). */
    enum { N = 80 };
    corio_task *tasks[N];
    corio_future *futs[N];
    size_t n = 0;
    for (size_t i = 0; i < N; i++) {
        TOLERATE(corio_spawn(&tasks[n], "sleeper", sleeper, (void *)(uintptr_t)(1 + i % 3)));
        if (rc == 0) {
            futs[n] = corio_task_future(tasks[n]);
            n++;
        }
    }
    TOLERATE(corio_gather(futs, n));
    if (corio_wait_all(futs, n) != 0) /* gather returns at the first failure */
        return CORIO_EFAILED;
    for (size_t i = 0; i < n; i++) {
        int r = corio_future_result(futs[i]);
        if (r == CORIO_ENOMEM)
            run->enomem_seen++; /* a sleeper's own timer */
        else if (r != 0)
            return CORIO_EFAILED;
        corio_task_release(tasks[i]);
    }

    /* A future with a done callback. */
    corio_future *f = NULL;
    TOLERATE(corio_future_new(&f));
    if (f) {
        TOLERATE(corio_future_add_done_cb(f, done_cb, &run->callbacks_run));
        if (rc == 0)
            run->callbacks_added++;
        corio_future_resolve(f, NULL);
        TOLERATE(corio_await(f));
        corio_future_release(f);
    }

    /* A queue. */
    corio_queue *q = NULL;
    TOLERATE(corio_queue_new(&q, 8));
    if (q) {
        void *item = NULL;
        if (corio_queue_put(q, &callbacks) != 0 || corio_queue_get(q, &item) != 0 ||
            item != &callbacks)
            return CORIO_EFAILED;
        corio_queue_free(q);
    }

    /* Blocking work. */
    corio_future *b = NULL;
    TOLERATE(corio_run_blocking(&b, blocking_fn, NULL));
    if (b) {
        if (corio_await(b) != 7)
            return CORIO_EFAILED;
        corio_future_release(b);
    }
    return 0;
#undef TOLERATE
}

static void test_every_allocation_failure_is_reported_and_leaves_nothing_behind(void **state) {
    (void)state;
    /* Count the allocations of one clean run. */
    oom_run run = {0};
    fail_at = -1;
    alloc_count = 0;
    corio_test_run(scenario, &run);
    assert_int_equal(run.enomem_seen, 0);
    assert_int_equal(run.callbacks_added, 1);
    assert_int_equal(run.callbacks_run, 1);
    long clean_allocs = alloc_count;

    long runs = 0;
    for (long n = 0;; n++) {
        run = (oom_run){0};
        alloc_count = 0;
        fail_at = n;
        int rc = corio_run(scenario, &run);
        long made = alloc_count;
        fail_at = -1;
        runs++;
        if (made <= n)
            break; /* this run made fewer allocations than n: past the last one */
        /* Allocation #n failed.  corio_run itself may be the one that failed
         * to allocate; otherwise some call in the scenario must say so: an
         * allocation failure that nobody reports is a silent loss. */
        if (rc != 0 && rc != CORIO_ENOMEM)
            fail_msg("allocation #%ld failing: corio_run returned %s", n, corio_err_name(rc));
        if (rc == 0 && run.enomem_seen == 0)
            fail_msg("allocation #%ld failed and no call reported CORIO_ENOMEM", n);
        /* A registered done callback runs exactly once, whatever else failed. */
        if (run.callbacks_run != run.callbacks_added)
            fail_msg("allocation #%ld failing: %d done callback(s) registered, %d ran", n,
                     run.callbacks_added, run.callbacks_run);
    }
    assert_true(runs > clean_allocs); /* every allocation of the clean run was made to fail */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failure_is_reported_and_leaves_nothing_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
