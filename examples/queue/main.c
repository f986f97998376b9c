/* SPDX-License-Identifier: MIT */
/* Producers and consumers through a bounded queue (asyncio.Queue(maxsize=4)).
 *
 * Two producers put numbered jobs; three consumers take them and "process"
 * each for a few ms.  The queue holds at most 4 items, so producers that get
 * ahead wait in corio_queue_put (backpressure).  When both producers are done
 * the queue is closed (asyncio has Queue.shutdown() since 3.13): consumers
 * drain what is left, then corio_queue_get returns CORIO_ECLOSED and they
 * exit.  Totals show that every job was delivered exactly once.
 */
#include <corio/corio.h>
#include <stdint.h>
#include <stdio.h>

#define CAPACITY 4
#define NPRODUCERS 2
#define NCONSUMERS 3
#define JOBS_PER_PRODUCER 12

typedef struct worker {
    corio_queue *q;
    int id;
    unsigned count;       /* jobs put or taken */
    unsigned long sum;    /* of the job numbers */
    unsigned waited_full; /* producer: puts that found the queue full */
} worker;

static int producer(void *arg) {
    worker *w = arg;
    for (int i = 0; i < JOBS_PER_PRODUCER; i++) {
        uintptr_t job = (uintptr_t)(w->id * 100 + i + 1); /* never 0 */
        if (corio_queue_size(w->q) == corio_queue_capacity(w->q))
            w->waited_full++; /* this put will wait for a consumer */
        int rc = corio_queue_put(w->q, (void *)job);
        if (rc < 0)
            return rc;
        w->count++;
        w->sum += job;
    }
    return 0;
}

static int consumer(void *arg) {
    worker *w = arg;
    for (;;) {
        void *item;
        int rc = corio_queue_get(w->q, &item);
        if (rc == CORIO_ECLOSED)
            return 0; /* closed and drained: the normal way out */
        if (rc < 0)
            return rc;
        rc = corio_sleep(2 + (unsigned)w->id); /* process the job */
        if (rc < 0)
            return rc;
        w->count++;
        w->sum += (uintptr_t)item;
    }
}

/* Spawns fn for each of ws[0..n), putting the tasks into ts. */
static int spawn_all(corio_task **ts, worker *ws, size_t n, const char *name, corio_task_fn fn) {
    for (size_t i = 0; i < n; i++) {
        int rc = corio_spawn(&ts[i], name, fn, &ws[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Joins every task of ts[0..n) (NULL entries skipped) and releases it;
 * returns the first failure. */
static int join_all(corio_task **ts, size_t n) {
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ts[i])
            continue;
        int rc = corio_await(ts[i]);
        if (rc < 0 && first == 0)
            first = rc;
        corio_task_release(ts[i]);
    }
    return first;
}

static int amain(void *arg) {
    (void)arg;
    corio_queue *q;
    int rc = corio_queue_new(&q, CAPACITY);
    if (rc < 0)
        return rc;
    worker prod[NPRODUCERS] = {{.q = q, .id = 1}, {.q = q, .id = 2}};
    worker cons[NCONSUMERS] = {{.q = q, .id = 1}, {.q = q, .id = 2}, {.q = q, .id = 3}};
    corio_task *pt[NPRODUCERS] = {0}, *ct[NCONSUMERS] = {0};

    rc = spawn_all(ct, cons, NCONSUMERS, "consumer", consumer);
    if (rc == 0)
        rc = spawn_all(pt, prod, NPRODUCERS, "producer", producer);
    int prc = join_all(pt, NPRODUCERS);
    /* All jobs are in (or producers failed): no more puts.  Consumers drain
     * the rest, then their gets return CORIO_ECLOSED. */
    corio_queue_close(q);
    int crc = join_all(ct, NCONSUMERS);
    int frc = corio_queue_free(q); /* CORIO_EBUSY if a task still waited on it */
    if (rc == 0)
        rc = prc ? prc : crc ? crc : frc;
    if (rc < 0)
        return rc;

    unsigned put = 0, got = 0;
    unsigned long put_sum = 0, got_sum = 0;
    for (int i = 0; i < NPRODUCERS; i++) {
        printf("producer %d: put %u jobs, found the queue full %u times\n", prod[i].id,
               prod[i].count, prod[i].waited_full);
        put += prod[i].count;
        put_sum += prod[i].sum;
    }
    for (int i = 0; i < NCONSUMERS; i++) {
        printf("consumer %d: processed %u jobs\n", cons[i].id, cons[i].count);
        got += cons[i].count;
        got_sum += cons[i].sum;
    }
    printf("total: %u put, %u processed, checksums %lu / %lu: %s\n", put, got, put_sum, got_sum,
           put == got && put_sum == got_sum ? "every job exactly once" : "MISMATCH");
    return put == got && put_sum == got_sum ? 0 : CORIO_EFAILED;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "queue: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
