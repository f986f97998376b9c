/* SPDX-License-Identifier: MIT */
/* A deadline over several concurrent calls: asyncio.timeout around
 * asyncio.gather, then the same with a TaskGroup.
 *
 *     async with asyncio.timeout(0.5):
 *         await asyncio.gather(call(100), call(200), call(900))
 *
 * Three "backend calls" take 100, 200 and 900 ms.  With a 500 ms deadline the
 * first two finish and the gather fails with CORIO_ETIMEDOUT.  Unlike
 * asyncio.gather, which cancels its children when it is cancelled,
 * corio_gather only stops waiting: the slow call is still running afterwards
 * and the caller cancels it.  A task group with a deadline
 * (corio_task_group_scope_timeout) needs no such cleanup: its members run
 * under the deadline too, so the slow call's sleep fails with
 * CORIO_ETIMEDOUT, and the scope does not end before every member has.
 */
#include <corio/corio.h>
#include <stdint.h>
#include <stdio.h>

#define DEADLINE_MS 500

static const uint64_t call_ms[] = {100, 200, 900};
#define NCALLS (sizeof call_ms / sizeof call_ms[0])

static uint64_t t0; /* loop time at the start of each variant */

/* A backend call: takes *arg ms, returns how long it took. */
static int backend_call(void *arg) {
    uint64_t ms = *(const uint64_t *)arg;
    int rc = corio_sleep(ms);
    if (rc < 0) {
        printf("  call(%3llu ms) stopped at %3llu ms: %s\n", (unsigned long long)ms,
               (unsigned long long)(corio_now() - t0), corio_err_name(rc));
        return rc;
    }
    printf("  call(%3llu ms) finished\n", (unsigned long long)ms);
    return (int)ms;
}

/* Variant 1: CORIO_WITH(corio_timeout_scope) around corio_gather. */
static int gather_under_timeout(void) {
    printf("gather under a %d ms timeout:\n", DEADLINE_MS);
    t0 = corio_now();
    corio_task *tasks[NCALLS] = {0};
    corio_future *fs[NCALLS];
    int rc = 0;
    for (size_t i = 0; i < NCALLS && rc == 0; i++) {
        rc = corio_spawn(&tasks[i], "backend", backend_call, (void *)&call_ms[i]);
        fs[i] = corio_task_future(tasks[i]);
    }
    if (rc == 0) {
        CORIO_WITH(corio_timeout_scope(DEADLINE_MS)) {
            rc = corio_gather(fs, NCALLS);
        }
        printf("  gather returned %s after %llu ms\n", corio_err_name(rc),
               (unsigned long long)(corio_now() - t0));
        for (size_t i = 0; i < NCALLS; i++)
            printf("  call(%3llu ms): %s\n", (unsigned long long)call_ms[i],
                   corio_task_done(tasks[i]) ? "done" : "still running");
    }
    /* The gather gave up waiting, not the calls: stop the slow one and join
     * it (outside the timeout scope, whose deadline has passed). */
    for (size_t i = 0; i < NCALLS; i++) {
        if (tasks[i] && !corio_task_done(tasks[i])) {
            (void)corio_cancel(tasks[i]); /* 0: it is still running */
            int joined = corio_await(tasks[i]);
            if (joined != CORIO_ECANCELED)
                printf("  unexpected: joined with %s\n", corio_err_name(joined));
        }
        corio_task_release(tasks[i]);
    }
    return rc == CORIO_ETIMEDOUT ? 0 : CORIO_EFAILED;
}

/* Variant 2: a task group with a deadline over its body and members. */
static int group_with_timeout(void) {
    printf("task group with a %d ms deadline:\n", DEADLINE_MS);
    t0 = corio_now();
    corio_task_group g;
    int rc = 0;
    CORIO_WITH(corio_task_group_scope_timeout(&g, DEADLINE_MS)) {
        for (size_t i = 0; i < NCALLS && rc == 0; i++)
            rc = corio_task_group_spawn(&g, NULL, "backend", backend_call, (void *)&call_ms[i]);
        if (rc < 0)
            (void)corio_scope_fail(rc); /* the group cancels what was spawned */
    } /* leaving the scope waits for every member, or stops them at the deadline */
    if (rc < 0)
        return rc;
    rc = corio_task_group_result(&g);
    printf("  group result %s after %llu ms, no member left running\n", corio_err_name(rc),
           (unsigned long long)(corio_now() - t0));
    return rc == CORIO_ETIMEDOUT ? 0 : CORIO_EFAILED;
}

static int amain(void *arg) {
    (void)arg;
    int rc = gather_under_timeout();
    if (rc < 0)
        return rc;
    return group_with_timeout();
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "gather_timeout: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
