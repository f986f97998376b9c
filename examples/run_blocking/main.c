/* SPDX-License-Identifier: MIT */
/* CPU-heavy work off the loop (asyncio.to_thread).
 *
 *     key = await asyncio.to_thread(hashlib.pbkdf2_hmac, "sha256", pw, salt, 600_000)
 *
 * Deriving a password hash with PBKDF2-HMAC-SHA256 at 600 000 iterations
 * takes a good fraction of a second of CPU.  Called directly in a task it
 * freezes the loop: no other task runs, as the ticker shows.  Through
 * corio_run_blocking it runs on libuv's thread pool and the task awaits a
 * future, so the ticker keeps ticking (and the hashes run in parallel).
 */
#include <corio/corio.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define TICK_MS 10
#define ITERATIONS 600000
#define NPASSWORDS 4

static const char *const passwords[NPASSWORDS] = {"hunter2", "correct horse", "letmein",
                                                  "tr0ub4dor&3"};

/* ---- the blocking function: plain C, no corio calls ----------------------------- */

typedef struct derive_job {
    const char *password;
    unsigned char key[32];
} derive_job;

static int derive_key(void *arg) {
    derive_job *j = arg;
    static const unsigned char salt[] = "corio-example-salt";
    int ok = PKCS5_PBKDF2_HMAC(j->password, (int)strlen(j->password), salt, sizeof salt - 1,
                               ITERATIONS, EVP_sha256(), sizeof j->key, j->key);
    return ok == 1 ? 0 : CORIO_EFAILED;
}

/* ---- a task that wants to run every TICK_MS ------------------------------------ */

typedef struct tick_stats {
    unsigned ticks;
    uint64_t last, max_gap;
} tick_stats;

static int ticker(void *arg) {
    tick_stats *s = arg;
    for (;;) {
        int rc = corio_sleep(TICK_MS);
        if (rc == CORIO_ECANCELED)
            return 0; /* told to stop */
        if (rc < 0)
            return rc;
        uint64_t now = corio_now();
        if (now - s->last > s->max_gap)
            s->max_gap = now - s->last;
        s->last = now;
        s->ticks++;
    }
}

typedef int (*phase_fn)(derive_job *jobs);

/* Blocking the loop: the derivations run one after another in this task. */
static int derive_inline(derive_job *jobs) {
    for (int i = 0; i < NPASSWORDS; i++) {
        int rc = derive_key(&jobs[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Off the loop: one thread-pool job per password, awaited together. */
static int derive_offloaded(derive_job *jobs) {
    corio_future *fs[NPASSWORDS] = {0};
    int rc = 0;
    for (int i = 0; i < NPASSWORDS && rc == 0; i++)
        rc = corio_run_blocking(&fs[i], derive_key, &jobs[i]);
    if (rc == 0)
        rc = corio_gather(fs, NPASSWORDS);
    if (rc < 0) {
        /* Cancelled, say.  Threads cannot be interrupted, and the jobs write
         * into `jobs`: wait for those already started, shielded. */
        size_t started = 0;
        while (started < NPASSWORDS && fs[started])
            started++;
        CORIO_WITH(corio_shield_scope()) {
            (void)corio_wait_all(fs, started); /* returns 0: nothing interrupts it */
        }
    }
    for (int i = 0; i < NPASSWORDS; i++)
        corio_future_release(fs[i]);
    return rc;
}

static double wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run_phase(const char *title, phase_fn fn, derive_job *jobs, tick_stats *s) {
    s->ticks = 0;
    s->max_gap = 0;
    s->last = corio_now();
    double start = wall_ms();
    int rc = fn(jobs);
    double took = wall_ms() - start;
    if (rc < 0)
        return rc;
    /* Give the ticker its next turn, so a freeze shows in its longest gap. */
    rc = corio_sleep(2 * TICK_MS);
    if (rc < 0)
        return rc;
    printf("%-30s %d keys in %4.0f ms; ticks meanwhile: %2u, longest gap: %3llu ms\n", title,
           NPASSWORDS, took, s->ticks, (unsigned long long)s->max_gap);
    return 0;
}

static int amain(void *arg) {
    (void)arg;
    tick_stats stats = {0};
    corio_task *tick;
    int rc = corio_spawn(&tick, "ticker", ticker, &stats);
    if (rc < 0)
        return rc;
    derive_job inline_jobs[NPASSWORDS], pool_jobs[NPASSWORDS];
    for (int i = 0; i < NPASSWORDS; i++)
        inline_jobs[i].password = pool_jobs[i].password = passwords[i];
    printf("PBKDF2-HMAC-SHA256, %d iterations, ticker every %d ms\n", ITERATIONS, TICK_MS);
    rc = run_phase("in the task (blocks the loop):", derive_inline, inline_jobs, &stats);
    if (rc == 0)
        rc = run_phase("corio_run_blocking:", derive_offloaded, pool_jobs, &stats);
    for (int i = 0; i < NPASSWORDS && rc == 0; i++) {
        const unsigned char *k = pool_jobs[i].key;
        bool same = memcmp(k, inline_jobs[i].key, sizeof pool_jobs[i].key) == 0;
        printf("  %-14s -> %02x%02x%02x%02x... (%s)\n", passwords[i], k[0], k[1], k[2], k[3],
               same ? "same key both ways" : "KEYS DIFFER");
        if (!same)
            rc = CORIO_EFAILED;
    }
    (void)corio_cancel(tick);
    int trc = corio_await(tick);
    corio_task_release(tick);
    return rc < 0 ? rc : trc;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = corio_run(amain, NULL);
    if (rc < 0) {
        fprintf(stderr, "run_blocking: %s\n", corio_strerror(rc));
        return 1;
    }
    return 0;
}
