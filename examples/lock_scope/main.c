/* SPDX-License-Identifier: MIT */
/* A lock held for a scope (async with asyncio.Lock()).
 *
 *     async with lock:
 *         value = counter
 *         await asyncio.sleep(0)    # another task runs here
 *         counter = value + 1
 *
 * Five tasks increment a shared counter with an await between the read and
 * the write.  Without the lock the tasks interleave and updates are lost;
 * with CORIO_WITH(corio_lock_scope(&lock)) the count is exact.  The scope
 * releases the lock on every way out, including a cancellation of the task
 * that holds it, so the next waiter gets it.
 */
#include <corio/corio.h>
#include <stdbool.h>
#include <stdio.h>

#define NTASKS 5
#define INCREMENTS 1000

typedef struct shared {
    corio_lock lock;
    bool use_lock;
    long counter;
} shared;

/* counter += 1, with a suspension point in the middle. */
static int increment(shared *s) {
    long value = s->counter;
    int rc = corio_yield();
    if (rc < 0)
        return rc;
    s->counter = value + 1;
    return 0;
}

static int incrementer(void *arg) {
    shared *s = arg;
    for (int i = 0; i < INCREMENTS; i++) {
        int rc = 0;
        if (!s->use_lock) {
            rc = increment(s);
        } else {
            int enter_rc = 0;
            CORIO_WITH_RC(enter_rc, corio_lock_scope(&s->lock)) {
                rc = increment(s);
            }
            if (enter_rc < 0)
                rc = enter_rc; /* never got the lock */
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int count_with(shared *s, bool use_lock) {
    s->use_lock = use_lock;
    s->counter = 0;
    corio_task *ts[NTASKS] = {0};
    corio_future *fs[NTASKS];
    int rc = 0;
    for (int i = 0; i < NTASKS && rc == 0; i++) {
        rc = corio_spawn(&ts[i], "incrementer", incrementer, s);
        fs[i] = corio_task_future(ts[i]);
    }
    if (rc == 0)
        rc = corio_gather(fs, NTASKS);
    for (int i = 0; i < NTASKS; i++) {
        if (ts[i] && !corio_task_done(ts[i])) {
            /* Only after a failure: do not leave it running. */
            (void)corio_cancel(ts[i]);
            (void)corio_await(ts[i]); /* CORIO_ECANCELED */
        }
        corio_task_release(ts[i]);
    }
    if (rc < 0)
        return rc;
    printf("%-12s %d tasks x %d increments: counter = %ld%s\n",
           use_lock ? "with lock:" : "without lock:", NTASKS, INCREMENTS, s->counter,
           s->counter == NTASKS * INCREMENTS ? " (exact)" : " (updates lost)");
    return 0;
}

/* Takes the lock and keeps it "forever": cancelled while holding it. */
static int holder(void *arg) {
    shared *s = arg;
    int enter_rc = 0, rc = 0;
    CORIO_WITH_RC(enter_rc, corio_lock_scope(&s->lock)) {
        printf("holder: got the lock, sleeping with it\n");
        rc = corio_sleep(60 * 1000);
        printf("holder: sleep ended with %s, leaving the scope\n", corio_err_name(rc));
    } /* the lock is released here, whatever ended the body */
    return enter_rc < 0 ? enter_rc : rc;
}

static int waiter(void *arg) {
    shared *s = arg;
    int enter_rc = 0;
    CORIO_WITH_RC(enter_rc, corio_lock_scope(&s->lock)) {
        printf("waiter: got the lock\n");
    }
    return enter_rc;
}

static int cancel_holder(shared *s) {
    corio_task *h, *w;
    int rc = corio_spawn(&h, "holder", holder, s);
    if (rc < 0)
        return rc;
    rc = corio_spawn(&w, "waiter", waiter, s);
    if (rc < 0) {
        (void)corio_cancel(h);
        (void)corio_await(h); /* CORIO_ECANCELED */
        corio_task_release(h);
        return rc;
    }
    rc = corio_sleep(50); /* holder has the lock, waiter is queued for it */
    if (rc == 0) {
        printf("main: locked=%d, cancelling the holder\n", corio_lock_locked(&s->lock));
        rc = corio_cancel(h);
    }
    int hrc = corio_await(h); /* CORIO_ECANCELED: what its sleep returned */
    int wrc = corio_await(w);
    corio_task_release(h);
    corio_task_release(w);
    if (rc < 0)
        return rc;
    printf("main: holder ended with %s, waiter with %s, locked=%d\n", corio_err_name(hrc),
           corio_err_name(wrc), corio_lock_locked(&s->lock));
    return hrc == CORIO_ECANCELED && wrc == 0 && !corio_lock_locked(&s->lock) ? 0 : CORIO_EFAILED;
}

static int amain(void *arg) {
    (void)arg;
    shared s;
    corio_lock_init(&s.lock);
    int rc = count_with(&s, false);
    if (rc == 0)
        rc = count_with(&s, true);
    if (rc == 0)
        rc = cancel_holder(&s);
    return rc;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "lock_scope: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
