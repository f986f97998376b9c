/* SPDX-License-Identifier: MIT */
/* Micro-benchmarks of corio's hot paths, in nanoseconds per operation.
 *
 *   raw switch        corio__ctx_switch ping-pong between two contexts
 *   coro switch       the same through corio__coro_switch (what tasks use)
 *   swapcontext       glibc's swapcontext ping-pong, for comparison
 *   function call     a plain non-inlined call, for scale
 *   spawn + join      corio_spawn a trivial task, corio_await it, release it
 *   future            task A resolves the future task B awaits and back:
 *                     one resolve -> resume (future allocation included)
 *   lock hand-off     two tasks pass a contended corio_lock back and forth:
 *                     release -> the waiter resumes owning it
 *   yield             corio_yield with one task: task -> loop -> task
 *
 * A switch counts one direction.  Each figure is the best of REPS runs timed
 * with CLOCK_MONOTONIC.  Run it through bench/run_micro.sh, which pins it to
 * one CPU.  Usage: bench_micro [scale], where scale (default 1) multiplies
 * every iteration count.
 */
#define _GNU_SOURCE
#include <corio/corio.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <ucontext.h>

#include "coro/coro.h"
#include "coro/ctx.h"
#include "coro/sanitizer.h"
#include "coro/stack.h"

#define REPS 5
#define STACK_SIZE (64 * 1024)

/* The project's targets. */
#define TARGET_SWITCH_VS_SWAPCONTEXT 20.0 /* switch <= swapcontext / 20 */
#define TARGET_SPAWN_JOIN_NS 150.0

static double scale = 1.0;

static long iters(long base) {
    long n = (long)((double)base * scale);
    return n > 0 ? n : 1;
}

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

__attribute__((noreturn)) static void fail(const char *what, int rc) {
    fprintf(stderr, "bench_micro: %s: %s\n", what, corio_strerror(rc));
    exit(1);
}

/* ---- context switches ----------------------------------------------------------- */

static corio__coro coro_main, coro_co;
static ucontext_t uc_main, uc_co;
static volatile bool co_stop;

#if !defined(CORIO_ASAN) /* raw switches hide stack changes from ASan */
static corio__ctx ctx_main, ctx_co;

static void ctx_entry(void *arg) {
    (void)arg;
    for (;;)
        corio__ctx_switch(&ctx_co, &ctx_main);
}
#endif

static void coro_entry(void *arg) {
    (void)arg;
    corio__coro_started();
    while (!co_stop)
        corio__coro_switch(&coro_co, &coro_main, false);
    corio__coro_switch(&coro_co, &coro_main, true);
}

static void uc_entry(void) {
    for (;;)
        swapcontext(&uc_co, &uc_main);
}

/* Each returns ns per switch, one direction: n round trips are 2n switches. */
#if !defined(CORIO_ASAN)
static double run_ctx(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++)
        corio__ctx_switch(&ctx_main, &ctx_co);
    return (now_ns() - t) / (2.0 * (double)n);
}
#endif

static double run_coro(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++)
        corio__coro_switch(&coro_main, &coro_co, false);
    return (now_ns() - t) / (2.0 * (double)n);
}

static double run_swapcontext(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++)
        swapcontext(&uc_main, &uc_co);
    return (now_ns() - t) / (2.0 * (double)n);
}

/* ---- a plain call ------------------------------------------------------------------ */

#if defined(__clang__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone)) /* no specialised copy either */
#endif

NOINLINE static long plain_call(long x) {
    __asm__ volatile("" : "+r"(x)); /* the body cannot be folded away */
    return x + 1;
}

static double run_call(long n) {
    long acc = 0;
    double t = now_ns();
    for (long i = 0; i < n; i++)
        acc = plain_call(acc);
    double ns = (now_ns() - t) / (double)n;
    __asm__ volatile("" : : "r"(acc)); /* the result is used */
    return ns;
}

/* ---- runtime benchmarks, inside corio_run ------------------------------------------ */

static int trivial(void *arg) {
    (void)arg;
    return 0;
}

static double run_spawn_join(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        corio_task *task;
        int rc = corio_spawn(&task, "trivial", trivial, NULL);
        if (rc < 0)
            fail("corio_spawn", rc);
        rc = corio_await(task);
        if (rc < 0)
            fail("corio_await", rc);
        corio_task_release(task);
    }
    return (now_ns() - t) / (double)n;
}

/* Future ping-pong: each side publishes the future it is about to await and
 * resolves the other side's. */
typedef struct pingpong {
    corio_future *slot[2];
    long rounds; /* side 0 stops after this many awaits */
    long resumes;
    bool stop;
} pingpong;

typedef struct side {
    pingpong *pp;
    int me;
} side;

static int pingpong_side(void *arg) {
    side *s = arg;
    pingpong *pp = s->pp;
    for (long i = 0; !pp->stop; i++) {
        if (s->me == 0 && i == pp->rounds) {
            pp->stop = true; /* wake the other side one last time */
            corio_future *other = pp->slot[1];
            pp->slot[1] = NULL;
            if (other && corio_future_resolve(other, NULL) < 0)
                fail("corio_future_resolve", CORIO_EFAILED);
            break;
        }
        corio_future *mine;
        int rc = corio_future_new(&mine);
        if (rc < 0)
            fail("corio_future_new", rc);
        pp->slot[s->me] = mine;
        corio_future *other = pp->slot[!s->me];
        pp->slot[!s->me] = NULL;
        if (other && (rc = corio_future_resolve(other, NULL)) < 0)
            fail("corio_future_resolve", rc);
        rc = corio_await(mine);
        if (rc < 0)
            fail("corio_await(future)", rc);
        corio_future_release(mine);
        pp->resumes++;
    }
    return 0;
}

static double run_future(long n) {
    pingpong pp = {.slot = {NULL, NULL}, .rounds = n, .resumes = 0, .stop = false};
    side a = {&pp, 0}, b = {&pp, 1};
    corio_task *ta, *tb;
    double t = now_ns();
    int rc = corio_spawn(&ta, "ping", pingpong_side, &a);
    if (rc == 0)
        rc = corio_spawn(&tb, "pong", pingpong_side, &b);
    if (rc < 0)
        fail("corio_spawn", rc);
    corio_future *both[] = {corio_task_future(ta), corio_task_future(tb)};
    rc = corio_gather(both, 2);
    if (rc < 0)
        fail("corio_gather", rc);
    double ns = (now_ns() - t) / (double)pp.resumes;
    corio_task_release(ta);
    corio_task_release(tb);
    return ns;
}

/* Lock hand-off: after the first round both tasks always find the lock taken,
 * so every release hands it to the parked peer. */
typedef struct handoff {
    corio_lock lock;
    long target, handoffs;
} handoff;

static int locker(void *arg) {
    handoff *h = arg;
    int rc = corio_lock_acquire(&h->lock);
    if (rc == 0)
        rc = corio_yield(); /* let the peer queue up behind us */
    while (rc == 0 && h->handoffs < h->target) {
        if ((rc = corio_lock_release(&h->lock)) < 0) /* to the parked peer */
            break;
        if ((rc = corio_lock_acquire(&h->lock)) < 0) /* parks until handed back */
            break;
        h->handoffs++;
    }
    if (rc < 0)
        fail("lock hand-off", rc);
    return corio_lock_release(&h->lock);
}

static double run_lock(long n) {
    handoff h = {.target = n, .handoffs = 0};
    corio_lock_init(&h.lock);
    corio_task *ta, *tb;
    double t = now_ns();
    int rc = corio_spawn(&ta, "locker-a", locker, &h);
    if (rc == 0)
        rc = corio_spawn(&tb, "locker-b", locker, &h);
    if (rc < 0)
        fail("corio_spawn", rc);
    corio_future *both[] = {corio_task_future(ta), corio_task_future(tb)};
    rc = corio_gather(both, 2);
    if (rc < 0)
        fail("corio_gather", rc);
    double ns = (now_ns() - t) / (double)h.handoffs;
    corio_task_release(ta);
    corio_task_release(tb);
    return ns;
}

static double run_yield(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        int rc = corio_yield();
        if (rc < 0)
            fail("corio_yield", rc);
    }
    return (now_ns() - t) / (double)n;
}

/* An empty CORIO_WITH: what every scope costs on its normal path (enter,
 * the leave hook, the failure bookkeeping of issue 16's rule).  A timeout
 * scope adds reading the clock; a shield is the cheapest resource. */
static double run_scope(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        CORIO_WITH(corio_shield_scope()) {
            __asm__ volatile("" ::: "memory");
        }
    }
    return (now_ns() - t) / (double)n;
}

static double run_timeout_scope(long n) {
    double t = now_ns();
    for (long i = 0; i < n; i++) {
        CORIO_WITH(corio_timeout_scope(1000)) {
            __asm__ volatile("" ::: "memory");
        }
    }
    return (now_ns() - t) / (double)n;
}

/* ---- driver --------------------------------------------------------------------------- */

typedef struct bench {
    const char *name;
    double (*run)(long n);
    long base_iters;
    bool in_loop; /* runs inside corio_run */
    long n;
    double best;
} bench;

enum {
    B_CTX,
    B_CORO,
    B_SWAPCONTEXT,
    B_CALL,
    B_SPAWN,
    B_FUTURE,
    B_LOCK,
    B_YIELD,
    B_SCOPE,
    B_TIMEOUT_SCOPE,
    B_COUNT
};

static bench benches[B_COUNT] = {
#if !defined(CORIO_ASAN)
    [B_CTX] = {"raw switch (corio__ctx_switch)", run_ctx, 10000000, false, 0, 0},
#else
    [B_CTX] = {"raw switch (corio__ctx_switch)", NULL, 0, false, 0, 0},
#endif
    [B_CORO] = {"coro switch (corio__coro_switch)", run_coro, 10000000, false, 0, 0},
    [B_SWAPCONTEXT] = {"glibc swapcontext", run_swapcontext, 1000000, false, 0, 0},
    [B_CALL] = {"plain function call (noinline)", run_call, 100000000, false, 0, 0},
    [B_SPAWN] = {"spawn + join (pooled stack)", run_spawn_join, 1000000, true, 0, 0},
    [B_FUTURE] = {"future resolve -> resume", run_future, 1000000, true, 0, 0},
    [B_LOCK] = {"lock hand-off", run_lock, 1000000, true, 0, 0},
    [B_YIELD] = {"yield (task -> loop -> task)", run_yield, 2000000, true, 0, 0},
    [B_SCOPE] = {"scope enter + leave (shield)", run_scope, 10000000, true, 0, 0},
    [B_TIMEOUT_SCOPE] = {"scope enter + leave (timeout)", run_timeout_scope, 10000000, true, 0, 0},
};

static void measure(bench *b) {
    b->n = iters(b->base_iters);
    b->best = 0;
    for (int rep = 0; rep < REPS; rep++) {
        double ns = b->run(b->n);
        if (rep == 0 || ns < b->best)
            b->best = ns;
    }
}

static int loop_benches(void *arg) {
    (void)arg;
    for (int i = 0; i < B_COUNT; i++)
        if (benches[i].in_loop)
            measure(&benches[i]);
    return 0;
}

static void measure_switches(void) {
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, STACK_SIZE, 4, 4);
    corio__stack *s1 = corio__stack_get(&pool, 0), *s2 = corio__stack_get(&pool, 0);
    void *uc_stack = malloc(STACK_SIZE);
    if (!s1 || !s2 || !uc_stack)
        fail("stack", CORIO_ENOMEM);

#if !defined(CORIO_ASAN)
    corio__ctx_make(&ctx_co, s1->lo, s1->size, ctx_entry, NULL);
    measure(&benches[B_CTX]);
#endif

    corio__coro_make(&coro_co, s2, coro_entry, NULL);
    measure(&benches[B_CORO]);
    co_stop = true;
    corio__coro_switch(&coro_main, &coro_co, false); /* let it end */

    if (getcontext(&uc_co) != 0)
        fail("getcontext", CORIO_EFAILED);
    uc_co.uc_stack.ss_sp = uc_stack;
    uc_co.uc_stack.ss_size = STACK_SIZE;
    uc_co.uc_link = NULL;
    makecontext(&uc_co, uc_entry, 0);
    measure(&benches[B_SWAPCONTEXT]);

    /* The parked contexts are never resumed: drop their stacks. */
    free(uc_stack);
    corio__stack_put(&pool, s1);
    corio__stack_put(&pool, s2);
    corio__stack_pool_release(&pool);
}

static void print_row(const bench *b) {
    if (b->n == 0)
        printf("  %-36s %11s  %9s\n", b->name, "-", "skipped");
    else
        printf("  %-36s %11ld  %9.2f\n", b->name, b->n, b->best);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        scale = strtod(argv[1], NULL);
        if (!(scale > 0)) {
            fprintf(stderr, "usage: %s [scale > 0]\n", argv[0]);
            return 2;
        }
    }
    cpu_set_t set;
    int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;

    measure_switches();
    measure(&benches[B_CALL]);
    int rc = corio_run(loop_benches, NULL);
    if (rc < 0)
        fail("corio_run", rc);

    printf("corio micro-benchmarks: best of %d, ns per operation", REPS);
    if (ncpu == 1)
        printf(", pinned to CPU %d\n", sched_getcpu());
    else
        printf(", NOT pinned (%d CPUs allowed: use bench/run_micro.sh)\n", ncpu);
#if !defined(__OPTIMIZE__)
    printf("WARNING: built without optimisation: configure with -DCMAKE_BUILD_TYPE=Release\n");
#endif
    printf("  %-36s %11s  %9s\n", "operation", "iterations", "ns/op");
    for (int i = 0; i < B_COUNT; i++)
        print_row(&benches[i]);

    double sw = benches[B_CORO].best, swap = benches[B_SWAPCONTEXT].best;
    double spawn = benches[B_SPAWN].best;
    printf("\n");
    printf("  coro switch / function call:     %6.1fx\n", sw / benches[B_CALL].best);
    printf("  swapcontext / coro switch:       %6.1fx   target >= %.0fx (switch <= 1/%.0f of "
           "swapcontext): %s\n",
           swap / sw, TARGET_SWITCH_VS_SWAPCONTEXT, TARGET_SWITCH_VS_SWAPCONTEXT,
           swap / sw >= TARGET_SWITCH_VS_SWAPCONTEXT ? "PASS" : "MISS");
    printf("  spawn + join:                    %6.1f ns target <= %.0f ns: %s\n", spawn,
           TARGET_SPAWN_JOIN_NS, spawn <= TARGET_SPAWN_JOIN_NS ? "PASS" : "MISS");
    return 0;
}
