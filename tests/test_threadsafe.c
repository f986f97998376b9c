/* SPDX-License-Identifier: MIT */
/* Thread-safe completion against the loop's lifetime: a foreign thread that
 * completes a future after corio_run() returned gets CORIO_ECLOSED and
 * touches nothing of the loop (it was a use after free of the loop's mutex
 * and async handle), a completion is never delivered into a later loop that
 * happens to reuse the memory, and a completion racing the loop's end is
 * either delivered (0: its done callbacks ran before corio_run returned) or
 * refused (CORIO_ECLOSED: they never run), never both, never neither.  The
 * foreign thread drops the last reference itself. */
#include <pthread.h>
#include <semaphore.h>
#include <string.h>

#include "corio_test.h"

typedef struct ts_late {
    corio_future *f; /* the thread's reference */
    sem_t go;        /* posted once the loop has ended */
    pthread_t tid;
    int resolve_rc, fail_rc, complete_rc, bad_rc;
    int hits; /* done callbacks run */
    bool done_seen;
} ts_late;

static void count_hit(corio_future *f, void *data) {
    (void)f;
    (*(int *)data)++;
}

static void *late_completer(void *arg) {
    ts_late *st = arg;
    while (sem_wait(&st->go) != 0)
        ;
    int value = 1;
    st->resolve_rc = corio_future_resolve_threadsafe(st->f, &value);
    st->fail_rc = corio_future_fail_threadsafe(st->f, CORIO_EPIPE);
    st->complete_rc = corio_future_complete_threadsafe(st->f, 3, NULL);
    st->bad_rc = corio_future_fail_threadsafe(st->f, 1); /* bad arguments still say so */
    corio_future_release(st->f); /* the last reference: freed here, on this thread */
    st->f = NULL;
    return NULL;
}

/* Hands a future with a done callback to a thread that waits for `go`,
 * keeping no reference of its own. */
static int late_main(void *arg) {
    ts_late *st = arg;
    corio_future *f;
    assert_corio(corio_future_new(&f), 0);
    assert_corio(corio_future_add_done_cb(f, count_hit, &st->hits), 0);
    st->f = f; /* corio_future_new's reference goes to the thread */
    if (pthread_create(&st->tid, NULL, late_completer, st))
        abort();
    return 0;
}

static void test_threadsafe_completion_after_loop_end_is_refused(void **state) {
    (void)state;
    ts_late st;
    memset(&st, 0, sizeof st);
    sem_init(&st.go, 0, 0);
    corio_test_run(late_main, &st);
    sem_post(&st.go); /* the loop's memory is gone now */
    pthread_join(st.tid, NULL);
    sem_destroy(&st.go);
    assert_int_equal(st.resolve_rc, CORIO_ECLOSED);
    assert_int_equal(st.fail_rc, CORIO_ECLOSED);
    assert_int_equal(st.complete_rc, CORIO_ECLOSED);
    assert_int_equal(st.bad_rc, CORIO_EINVAL);
    assert_int_equal(st.hits, 0);
}

/* ---- a later loop on the same thread does not receive it ------------------------------- */

static int release_and_join(void *arg) {
    ts_late *st = arg;
    sem_post(&st->go);
    pthread_join(st->tid, NULL);
    return 0;
}

static int next_loop_main(void *arg) {
    ts_late *st = arg;
    /* Futures of this loop, possibly where the old loop's memory was. */
    corio_future *mine;
    assert_corio(corio_future_new(&mine), 0);
    assert_corio(corio_future_add_done_cb(mine, count_hit, &st->hits), 0);
    corio_future *joined;
    assert_corio(corio_run_blocking(&joined, release_and_join, st), 0);
    assert_corio(corio_await(joined), 0);
    corio_future_release(joined);
    assert_false(corio_future_done(mine));
    assert_corio(corio_future_resolve(mine, NULL), 0);
    corio_yield(); /* its done callback runs */
    corio_future_release(mine);
    return 0;
}

static void test_threadsafe_completion_not_delivered_to_a_later_loop(void **state) {
    (void)state;
    ts_late st;
    memset(&st, 0, sizeof st);
    sem_init(&st.go, 0, 0);
    corio_test_run(late_main, &st);
    /* The thread completes while a new loop runs on this thread. */
    corio_test_run(next_loop_main, &st);
    sem_destroy(&st.go);
    assert_int_equal(st.resolve_rc, CORIO_ECLOSED);
    assert_int_equal(st.fail_rc, CORIO_ECLOSED);
    assert_int_equal(st.complete_rc, CORIO_ECLOSED);
    assert_int_equal(st.hits, 1); /* the new loop's own future only */
}

/* ---- racing the loop's end ------------------------------------------------------------- */

#define RACE_ROUNDS 300

typedef struct ts_race {
    corio_future *f; /* the thread's reference */
    pthread_barrier_t start;
    pthread_t tid;
    int rc;
    int hits;
    int spin; /* how long main lingers after the barrier */
} ts_race;

static void *racing_completer(void *arg) {
    ts_race *st = arg;
    pthread_barrier_wait(&st->start);
    st->rc = corio_future_resolve_threadsafe(st->f, st);
    corio_future_release(st->f);
    return NULL;
}

static int race_main(void *arg) {
    ts_race *st = arg;
    corio_future *f;
    assert_corio(corio_future_new(&f), 0);
    assert_corio(corio_future_add_done_cb(f, count_hit, &st->hits), 0);
    st->f = corio_future_retain(f);
    if (pthread_create(&st->tid, NULL, racing_completer, st))
        abort();
    pthread_barrier_wait(&st->start);
    for (int i = 0; i < st->spin; i++)
        corio_yield();
    corio_future_release(f);
    return 0;
}

static void test_threadsafe_completion_racing_loop_end_is_delivered_or_refused(void **state) {
    (void)state;
    int delivered = 0, refused = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        ts_race st;
        memset(&st, 0, sizeof st);
        st.spin = round % 3;
        pthread_barrier_init(&st.start, NULL, 2);
        corio_test_run(race_main, &st);
        pthread_join(st.tid, NULL);
        pthread_barrier_destroy(&st.start);
        if (st.rc == 0) {
            assert_int_equal(st.hits, 1); /* delivered before corio_run returned */
            delivered++;
        } else {
            assert_int_equal(st.rc, CORIO_ECLOSED);
            assert_int_equal(st.hits, 0);
            refused++;
        }
    }
    print_message("racing the loop's end: %d delivered, %d refused\n", delivered, refused);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threadsafe_completion_after_loop_end_is_refused),
        cmocka_unit_test(test_threadsafe_completion_not_delivered_to_a_later_loop),
        cmocka_unit_test(test_threadsafe_completion_racing_loop_end_is_delivered_or_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
