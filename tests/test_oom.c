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

/* Outlives the scenario's task: a done callback runs soon after completion,
 * possibly after the task that registered it has ended. */
static int callbacks_run;

static void done_cb(corio_future *f, void *data) {
    (void)f;
    (*(int *)data)++;
}

/* Every allocating call of the runtime, each error tolerated but checked to be
 * CORIO_ENOMEM, every object released on every path. */
static int scenario(void *arg) {
    int *enomem_seen = arg;
    int rc, callbacks = 0;
#define TOLERATE(expr)                                                                             \
    do {                                                                                           \
        rc = (expr);                                                                               \
        if (rc == CORIO_ENOMEM)                                                                    \
            (*enomem_seen)++;                                                                      \
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
        if (r != 0 && r != CORIO_ENOMEM)
            return CORIO_EFAILED;
        corio_task_release(tasks[i]);
    }

    /* A future with a done callback. */
    corio_future *f = NULL;
    TOLERATE(corio_future_new(&f));
    if (f) {
        TOLERATE(corio_future_add_done_cb(f, done_cb, &callbacks_run));
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
    int enomem_seen = 0;
    fail_at = -1;
    alloc_count = 0;
    corio_test_run(scenario, &enomem_seen);
    assert_int_equal(enomem_seen, 0);

    long failures_reported = 0, runs = 0;
    for (long n = 0;; n++) {
        enomem_seen = 0;
        alloc_count = 0;
        fail_at = n;
        int rc = corio_run(scenario, &enomem_seen);
        long made = alloc_count;
        fail_at = -1;
        runs++;
        /* corio_run itself may be the one that failed to allocate. */
        if (rc != 0 && rc != CORIO_ENOMEM)
            fail_msg("allocation #%ld failing: corio_run returned %s", n, corio_err_name(rc));
        if (rc == CORIO_ENOMEM || enomem_seen)
            failures_reported++;
        if (made <= n)
            break; /* this run made fewer allocations than n: past the last one */
    }
    assert_true(runs > 10);
    assert_true(failures_reported > 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failure_is_reported_and_leaves_nothing_behind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
