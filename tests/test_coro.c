/* SPDX-License-Identifier: MIT */
/* Layer 1: the raw context switch (coro/coro.h) and the stacks it runs on
 * (coro/stack.h), below any loop or task; and the stack overflow report.
 *
 * Register checks go through a small asm probe, because C code cannot pin
 * values in callee-saved registers across a call: the probe loads chosen
 * values into every callee-saved register, calls corio__coro_switch, and
 * stores what those registers hold when the switch returns.
 */
#define _GNU_SOURCE
#include "corio_test.h"

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coro/coro.h"
#include "coro/stack.h"
#include "runtime/internal.h" /* corio__tls_loop: the loop's stack pool */

#define KiB ((size_t)1024)

/* ---- the register probe ------------------------------------------------------------ */

#if defined(__x86_64__)
#define PROBE_NREGS 6 /* rbx, rbp, r12, r13, r14, r15 */
__asm__(".text\n"
        ".globl corio_test_probe_switch\n"
        ".type corio_test_probe_switch, @function\n"
        ".p2align 4\n"
        "corio_test_probe_switch:\n" /* rdi from, rsi to, rdx in, rcx out */
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    pushq %rcx\n" /* 7 pushes: rsp is 16-byte aligned for the call */
        "    movq 0(%rdx), %rbx\n"
        "    movq 8(%rdx), %rbp\n"
        "    movq 16(%rdx), %r12\n"
        "    movq 24(%rdx), %r13\n"
        "    movq 32(%rdx), %r14\n"
        "    movq 40(%rdx), %r15\n"
        "    xorl %edx, %edx\n" /* from_ends = false */
        "    call corio__coro_switch@PLT\n"
        "    popq %rax\n"
        "    movq %rbx, 0(%rax)\n"
        "    movq %rbp, 8(%rax)\n"
        "    movq %r12, 16(%rax)\n"
        "    movq %r13, 24(%rax)\n"
        "    movq %r14, 32(%rax)\n"
        "    movq %r15, 40(%rax)\n"
        "    popq %r15\n"
        "    popq %r14\n"
        "    popq %r13\n"
        "    popq %r12\n"
        "    popq %rbx\n"
        "    popq %rbp\n"
        "    ret\n"
        ".size corio_test_probe_switch, .-corio_test_probe_switch\n");
#define HAVE_PROBE 1
#elif defined(__aarch64__)
#define PROBE_NREGS 18 /* x19..x28, then the bit patterns of d8..d15 */
__asm__(".text\n"
        ".globl corio_test_probe_switch\n"
        ".type corio_test_probe_switch, %function\n"
        ".p2align 4\n"
        "corio_test_probe_switch:\n" /* x0 from, x1 to, x2 in, x3 out */
        "    stp x29, x30, [sp, #-176]!\n"
        "    mov x29, sp\n"
        "    stp x19, x20, [sp, #16]\n"
        "    stp x21, x22, [sp, #32]\n"
        "    stp x23, x24, [sp, #48]\n"
        "    stp x25, x26, [sp, #64]\n"
        "    stp x27, x28, [sp, #80]\n"
        "    stp d8, d9, [sp, #96]\n"
        "    stp d10, d11, [sp, #112]\n"
        "    stp d12, d13, [sp, #128]\n"
        "    stp d14, d15, [sp, #144]\n"
        "    str x3, [sp, #160]\n"
        "    ldp x19, x20, [x2, #0]\n"
        "    ldp x21, x22, [x2, #16]\n"
        "    ldp x23, x24, [x2, #32]\n"
        "    ldp x25, x26, [x2, #48]\n"
        "    ldp x27, x28, [x2, #64]\n"
        "    ldp d8, d9, [x2, #80]\n"
        "    ldp d10, d11, [x2, #96]\n"
        "    ldp d12, d13, [x2, #112]\n"
        "    ldp d14, d15, [x2, #128]\n"
        "    mov w2, #0\n" /* from_ends = false */
        "    bl corio__coro_switch\n"
        "    ldr x3, [sp, #160]\n"
        "    stp x19, x20, [x3, #0]\n"
        "    stp x21, x22, [x3, #16]\n"
        "    stp x23, x24, [x3, #32]\n"
        "    stp x25, x26, [x3, #48]\n"
        "    stp x27, x28, [x3, #64]\n"
        "    stp d8, d9, [x3, #80]\n"
        "    stp d10, d11, [x3, #96]\n"
        "    stp d12, d13, [x3, #112]\n"
        "    stp d14, d15, [x3, #128]\n"
        "    ldp x19, x20, [sp, #16]\n"
        "    ldp x21, x22, [sp, #32]\n"
        "    ldp x23, x24, [sp, #48]\n"
        "    ldp x25, x26, [sp, #64]\n"
        "    ldp x27, x28, [sp, #80]\n"
        "    ldp d8, d9, [sp, #96]\n"
        "    ldp d10, d11, [sp, #112]\n"
        "    ldp d12, d13, [sp, #128]\n"
        "    ldp d14, d15, [sp, #144]\n"
        "    ldp x29, x30, [sp], #176\n"
        "    ret\n"
        ".size corio_test_probe_switch, .-corio_test_probe_switch\n");
#define HAVE_PROBE 1
#endif

#if defined(HAVE_PROBE)
/* Loads in[] into the callee-saved registers, switches from `from` to `to`,
 * and once switched back stores those registers into out[]. */
void corio_test_probe_switch(corio__coro *from, corio__coro *to, const uint64_t *in, uint64_t *out);

typedef struct probe_state {
    corio__coro main, co;
    uint64_t main_in[PROBE_NREGS], main_out[PROBE_NREGS];
    uint64_t co_in[PROBE_NREGS], co_out[PROBE_NREGS];
} probe_state;

static void probe_entry(void *arg) {
    probe_state *st = arg;
    corio__coro_started();
    /* Leave with our own values in every callee-saved register. */
    corio_test_probe_switch(&st->co, &st->main, st->co_in, st->co_out);
    corio__coro_switch(&st->co, &st->main, true);
    abort();
}

static void test_switch_preserves_callee_saved_registers(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 4, 4);
    corio__stack *stack = corio__stack_get(&pool, 0);
    assert_non_null(stack);
    probe_state st;
    memset(&st, 0, sizeof st);
    for (int i = 0; i < PROBE_NREGS; i++) {
        st.main_in[i] = 0x1111000000000000ull * (uint64_t)(i % 15 + 1) + 0xa0a0u + (uint64_t)i;
        st.co_in[i] = 0x0000222200000000ull * (uint64_t)(i + 1) + 0x5b5bu + (uint64_t)i;
    }
    corio__coro_make(&st.co, stack, probe_entry, &st);
    /* Runs the coroutine until it switches back carrying its own values. */
    corio_test_probe_switch(&st.main, &st.co, st.main_in, st.main_out);
    /* Resumes it: its probe returns and records what it got back. */
    corio__coro_switch(&st.main, &st.co, false);
    for (int i = 0; i < PROBE_NREGS; i++) {
        assert_int_equal(st.main_out[i], st.main_in[i]);
        assert_int_equal(st.co_out[i], st.co_in[i]);
    }
    corio__stack_put(&pool, stack);
    corio__stack_pool_release(&pool);
}
#endif

/* ---- floating-point control state ----------------------------------------------- */

#if defined(__x86_64__)
#define MXCSR_RC_MASK 0x6000u
#define MXCSR_RC_DOWN 0x2000u
#define MXCSR_RC_UP 0x4000u
#define MXCSR_RC_ZERO 0x6000u
#define FPUCW_RC_MASK 0x0c00u
#define FPUCW_RC_DOWN 0x0400u
#define FPUCW_RC_ZERO 0x0c00u

static uint32_t get_mxcsr(void) {
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}
static void set_mxcsr(uint32_t v) {
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}
static uint16_t get_fpucw(void) {
    uint16_t v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}
static void set_fpucw(uint16_t v) {
    __asm__ volatile("fldcw %0" : : "m"(v));
}

typedef struct fp_state {
    corio__coro main, co;
    uint32_t mxcsr0, co_mxcsr_start, co_mxcsr_end;
    uint16_t fpucw0, co_fpucw_start, co_fpucw_end;
    double co_third;
} fp_state;

static double third(void) {
    volatile double one = 1.0, three = 3.0;
    return one / three; /* inexact: its last bit depends on the rounding mode */
}

static void fp_entry(void *arg) {
    fp_state *st = arg;
    corio__coro_started();
    st->co_mxcsr_start = get_mxcsr();
    st->co_fpucw_start = get_fpucw();
    set_mxcsr((st->mxcsr0 & ~MXCSR_RC_MASK) | MXCSR_RC_ZERO);
    set_fpucw((uint16_t)((st->fpucw0 & ~FPUCW_RC_MASK) | FPUCW_RC_DOWN));
    st->co_third = third();
    corio__coro_switch(&st->co, &st->main, false);
    st->co_mxcsr_end = get_mxcsr();
    st->co_fpucw_end = get_fpucw();
    corio__coro_switch(&st->co, &st->main, true);
    abort();
}

static void test_switch_preserves_fp_control_state(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 4, 4);
    corio__stack *stack = corio__stack_get(&pool, 0);
    assert_non_null(stack);
    fp_state st;
    memset(&st, 0, sizeof st);
    st.mxcsr0 = get_mxcsr();
    st.fpucw0 = get_fpucw();
    corio__coro_make(&st.co, stack, fp_entry, &st);

    /* Our modes: round up (SSE) and toward zero (x87); the coroutine picks
     * toward zero (SSE) and down (x87). */
    uint32_t main_mxcsr = (st.mxcsr0 & ~MXCSR_RC_MASK) | MXCSR_RC_UP;
    uint16_t main_fpucw = (uint16_t)((st.fpucw0 & ~FPUCW_RC_MASK) | FPUCW_RC_ZERO);
    set_mxcsr(main_mxcsr);
    set_fpucw(main_fpucw);
    corio__coro_switch(&st.main, &st.co, false);
    uint32_t mxcsr_back = get_mxcsr();
    uint16_t fpucw_back = get_fpucw();
    double main_third = third();
    corio__coro_switch(&st.main, &st.co, false);
    uint32_t mxcsr_end = get_mxcsr();
    uint16_t fpucw_end = get_fpucw();
    set_mxcsr(st.mxcsr0);
    set_fpucw(st.fpucw0);

    /* A new coroutine starts with the modes current when it was made. */
    assert_int_equal(st.co_mxcsr_start & MXCSR_RC_MASK, st.mxcsr0 & MXCSR_RC_MASK);
    assert_int_equal(st.co_fpucw_start & FPUCW_RC_MASK, st.fpucw0 & FPUCW_RC_MASK);
    /* Its changes stayed with it, and ours came back after each switch. */
    assert_int_equal(mxcsr_back & MXCSR_RC_MASK, MXCSR_RC_UP);
    assert_int_equal(fpucw_back & FPUCW_RC_MASK, FPUCW_RC_ZERO);
    assert_int_equal(mxcsr_end & MXCSR_RC_MASK, MXCSR_RC_UP);
    assert_int_equal(fpucw_end & FPUCW_RC_MASK, FPUCW_RC_ZERO);
    assert_int_equal(st.co_mxcsr_end & MXCSR_RC_MASK, MXCSR_RC_ZERO);
    assert_int_equal(st.co_fpucw_end & FPUCW_RC_MASK, FPUCW_RC_DOWN);
    /* And the modes were in effect: 1/3 rounded up exceeds 1/3 truncated.
     * (valgrind keeps the control bits but computes SSE in nearest mode.) */
    if (!corio_test_under_valgrind())
        assert_true(main_third > st.co_third);
    corio__stack_put(&pool, stack);
    corio__stack_pool_release(&pool);
}
#elif defined(__aarch64__)
/* On aarch64 the callee-saved FP state is d8..d15: the probe carries them. */
static void test_switch_preserves_fp_control_state(void **state) {
    test_switch_preserves_callee_saved_registers(state);
}
#endif

/* ---- many switches ------------------------------------------------------------------- */

#define PINGPONG_SWITCHES 1000000

typedef struct pingpong {
    corio__coro main, co;
    long in_co, in_main;
    bool out_of_step;
    void *local_addr;
} pingpong;

static void pingpong_entry(void *arg) {
    pingpong *pp = arg;
    corio__coro_started();
    int here;
    pp->local_addr = &here;
    while (pp->in_co < PINGPONG_SWITCHES / 2) {
        if (pp->in_co != pp->in_main)
            pp->out_of_step = true;
        pp->in_co++;
        corio__coro_switch(&pp->co, &pp->main, false);
    }
    corio__coro_switch(&pp->co, &pp->main, true);
    abort();
}

static void test_million_switches_keep_count(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 4, 4);
    corio__stack *stack = corio__stack_get(&pool, 0);
    assert_non_null(stack);
    pingpong pp;
    memset(&pp, 0, sizeof pp);
    corio__coro_make(&pp.co, stack, pingpong_entry, &pp);
    for (long i = 0; i < PINGPONG_SWITCHES / 2; i++) {
        corio__coro_switch(&pp.main, &pp.co, false);
        if (pp.in_co != pp.in_main + 1)
            pp.out_of_step = true;
        pp.in_main++;
    }
    corio__coro_switch(&pp.main, &pp.co, false); /* lets it end */
    assert_false(pp.out_of_step);
    assert_int_equal(pp.in_co + pp.in_main, PINGPONG_SWITCHES);
    /* The coroutine ran on its own stack. */
    assert_true((char *)pp.local_addr >= (char *)stack->lo);
    assert_true((char *)pp.local_addr < (char *)stack->lo + stack->size);
    corio__stack_put(&pool, stack);
    corio__stack_pool_release(&pool);
}

/* ---- the stack pool -------------------------------------------------------------------- */

static bool mapped(void *addr, size_t len) {
    /* mincore fails with ENOMEM on a range that is not (entirely) mapped. */
    static unsigned char vec[1024];
    assert_true(len / corio__page_size() <= sizeof vec);
    return mincore(addr, len, vec) == 0 || errno != ENOMEM;
}

static void test_stack_pool_reuses_stacks(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 8, 8);
    corio__stack *a = corio__stack_get(&pool, 0);
    assert_non_null(a);
    void *a_map = a->map; /* the descriptor lives in the mapping */
    assert_true(a->size >= 64 * KiB - 256 && a->size <= 64 * KiB);
    assert_int_equal((uintptr_t)a->lo % corio__page_size(), 0);
    memset(a->lo, 0xab, a->size);
    corio__stack_put(&pool, a);
    corio__stack *b = corio__stack_get(&pool, 0);
    assert_ptr_equal(b, a);
    /* A hot stack keeps its pages. */
    assert_int_equal(((unsigned char *)b->lo)[0], 0xab);
    /* A request for the pool's size in bytes is the same request. */
    corio__stack_put(&pool, b);
    corio__stack *c = corio__stack_get(&pool, 64 * KiB);
    assert_ptr_equal(c, a);
    corio__stack_put(&pool, c);
    corio__stack_pool_release(&pool);
    assert_false(mapped(a_map, corio__page_size()));
}

static void test_stack_pool_unmaps_beyond_bound(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 2, 1); /* two pooled, one of them hot */
    corio__stack *s[3];
    void *maps[3];
    size_t sizes[3];
    for (int i = 0; i < 3; i++) {
        s[i] = corio__stack_get(&pool, 0);
        assert_non_null(s[i]);
        maps[i] = s[i]->map;
        sizes[i] = s[i]->map_size;
        memset(s[i]->lo, 0x5a, 4096);
    }
    for (int i = 0; i < 3; i++)
        corio__stack_put(&pool, s[i]);
    assert_int_equal(pool.nhot, 1);
    assert_int_equal(pool.ncold, 1);
    assert_true(mapped(maps[0], sizes[0]));
    assert_true(mapped(maps[1], sizes[1]));
    assert_false(mapped(maps[2], sizes[2])); /* the one beyond the bound */

    /* Hot first, then cold; a cold stack gave its pages back (reads zero). */
    corio__stack *hot = corio__stack_get(&pool, 0);
    corio__stack *cold = corio__stack_get(&pool, 0);
    assert_ptr_equal(hot, s[0]);
    assert_ptr_equal(cold, s[1]);
    assert_int_equal(((unsigned char *)hot->lo)[0], 0x5a);
    assert_int_equal(((unsigned char *)cold->lo)[0], 0);
    assert_int_equal(pool.nhot + pool.ncold, 0);

    /* A stack of another size is never pooled. */
    corio__stack *big = corio__stack_get(&pool, 128 * KiB);
    assert_non_null(big);
    assert_true(big->size > 64 * KiB);
    void *big_map = big->map;
    corio__stack_put(&pool, big);
    assert_false(mapped(big_map, corio__page_size()));

    corio__stack_put(&pool, hot);
    corio__stack_put(&pool, cold);
    corio__stack_pool_release(&pool);
    assert_false(mapped(maps[0], sizes[0]));
    assert_false(mapped(maps[1], sizes[1]));
}

/* Resident pages of [addr, addr + len), page-aligned; SIZE_MAX if mincore
 * fails (no cmocka assert inside a task). */
static size_t resident_in_task(void *addr, size_t len) {
    static unsigned char vec[1024];
    size_t pages = len / corio__page_size(), n = 0;
    if (pages > sizeof vec || mincore(addr, len, vec) != 0)
        return SIZE_MAX;
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n;
}

/* The same, asserted (not inside a task: cmocka's assert longjmps). */
static size_t resident_pages(void *addr, size_t len) {
    size_t n = resident_in_task(addr, len);
    assert_true(n != SIZE_MAX);
    return n;
}

/* How many of a stack's pages above its guard (the usable stack, and the top
 * page, which holds the descriptor) are resident. */
static size_t resident_above_guard(void *map, size_t map_size) {
    return resident_pages((char *)map + corio__guard_size(), map_size - corio__guard_size());
}

/* A cold stack gives back every page, the top one (its descriptor) included;
 * reused, it gets a descriptor again, the same as a fresh stack's. */
static void test_stack_pool_cold_stack_gives_back_its_top_page(void **state) {
    (void)state;
    size_t page = corio__page_size();
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 2, 1); /* two pooled, one of them hot */
    corio__stack *s[2];
    corio__stack saved[2]; /* the descriptors as they were: s[i] may not be read while cold */
    for (int i = 0; i < 2; i++) {
        s[i] = corio__stack_get(&pool, 0);
        assert_non_null(s[i]);
        memset(s[i]->lo, 0x77, s[i]->size); /* every page resident, up to the descriptor */
        saved[i] = *s[i];
        assert_int_equal(resident_above_guard(s[i]->map, s[i]->map_size),
                         (s[i]->map_size - corio__guard_size()) / page);
    }
    corio__stack_put(&pool, s[0]); /* hot */
    corio__stack_put(&pool, s[1]); /* cold */
    assert_int_equal(pool.nhot, 1);
    assert_int_equal(pool.ncold, 1);
    char *top1 = (char *)saved[1].map + saved[1].map_size - page;
    assert_true(mapped(saved[1].map, saved[1].map_size)); /* still mapped, */
    assert_int_equal(resident_pages(top1, page), 0);      /* the descriptor's page given back */
    assert_int_equal(resident_above_guard(saved[1].map, saved[1].map_size), 0);
    /* The hot one keeps all its pages. */
    assert_int_equal(resident_above_guard(saved[0].map, saved[0].map_size),
                     (saved[0].map_size - corio__guard_size()) / page);

    corio__stack *hot = corio__stack_get(&pool, 0);
    corio__stack *cold = corio__stack_get(&pool, 0);
    assert_ptr_equal(hot, s[0]);
    assert_ptr_equal(cold, s[1]); /* the descriptor is written at the same place again */
    assert_ptr_equal(cold->map, saved[1].map);
    assert_int_equal(cold->map_size, saved[1].map_size);
    assert_ptr_equal(cold->lo, saved[1].lo);
    assert_int_equal(cold->size, saved[1].size);
    assert_null(cold->next);
    /* The same as a fresh stack's (the pool is empty: this one is mapped). */
    corio__stack *fresh = corio__stack_get(&pool, 0);
    assert_non_null(fresh);
    assert_int_equal(cold->map_size, fresh->map_size);
    assert_int_equal(cold->size, fresh->size);
    assert_int_equal((char *)cold->lo - (char *)cold->map, (long)corio__guard_size());
    assert_int_equal((char *)fresh->lo - (char *)fresh->map, (long)corio__guard_size());
    assert_int_equal((char *)cold->map + cold->map_size - (char *)cold,
                     (char *)fresh->map + fresh->map_size - (char *)fresh);
    /* Usable: its pages read zero, and all of it is writable below the descriptor. */
    assert_int_equal(((unsigned char *)cold->lo)[0], 0);
    assert_int_equal(((unsigned char *)cold->lo)[cold->size - 1], 0);
    memset(cold->lo, 0x3c, cold->size);
    assert_ptr_equal(cold->map, saved[1].map); /* the descriptor above it survived */
    assert_int_equal(cold->size, saved[1].size);
    assert_int_equal(((unsigned char *)hot->lo)[hot->size - 1], 0x77);

    /* Cold again and reused again: the same once more. */
    corio__stack_put(&pool, hot);
    corio__stack_put(&pool, cold);
    assert_int_equal(resident_pages(top1, page), 0);
    void *fresh_map = fresh->map;
    corio__stack_put(&pool, fresh); /* beyond the bound: unmapped */
    assert_false(mapped(fresh_map, page));
    hot = corio__stack_get(&pool, 0);
    cold = corio__stack_get(&pool, 0);
    assert_ptr_equal(cold, s[1]);
    assert_int_equal(cold->size, saved[1].size);
    memset(cold->lo, 0x11, cold->size);
    corio__stack_put(&pool, cold);
    corio__stack_put(&pool, hot);
    corio__stack_pool_release(&pool);
    assert_false(mapped(saved[0].map, saved[0].map_size));
    assert_false(mapped(saved[1].map, saved[1].map_size));
}

#define DECAY_N 8

/* Hot stacks no corio__stack_get needed since the last decay turn cold,
 * least recently used first, down to `keep`. */
static void test_stack_pool_decay_turns_unused_hot_stacks_cold(void **state) {
    (void)state;
    size_t page = corio__page_size();
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 16, 16);
    corio__stack *s[DECAY_N];
    void *maps[DECAY_N];
    size_t sizes[DECAY_N];
    for (int i = 0; i < DECAY_N; i++) {
        s[i] = corio__stack_get(&pool, 0);
        assert_non_null(s[i]);
        maps[i] = s[i]->map;
        sizes[i] = s[i]->map_size;
        memset(s[i]->lo, 0x10 + i, s[i]->size);
    }
    for (int i = 0; i < DECAY_N; i++)
        corio__stack_put(&pool, s[i]); /* hot, s[7] on top */
    assert_int_equal(pool.nhot, DECAY_N);
    assert_int_equal(pool.ncold, 0);

    /* Since the pool began it held none: every hot stack was needed. */
    assert_int_equal(corio__stack_pool_decay(&pool, 2), DECAY_N);
    assert_int_equal(pool.nhot, DECAY_N);
    assert_int_equal(pool.ncold, 0);

    /* Three are needed (the most recently used: s[7], s[6], s[5]) and come
     * back: the fewest hot since the last decay is 5, and those 5 turn cold. */
    corio__stack *got[3];
    for (int i = 0; i < 3; i++) {
        got[i] = corio__stack_get(&pool, 0);
        assert_ptr_equal(got[i], s[DECAY_N - 1 - i]);
    }
    for (int i = 2; i >= 0; i--)
        corio__stack_put(&pool, got[i]); /* s[7] on top again */
    assert_int_equal(corio__stack_pool_decay(&pool, 2), 3);
    assert_int_equal(pool.nhot, 3);
    assert_int_equal(pool.ncold, DECAY_N - 3);
    /* The least recently used gave every page back (and stay mapped); the
     * ones reused are hot, their pages kept. */
    for (int i = 0; i < DECAY_N; i++) {
        size_t above = sizes[i] - corio__guard_size();
        assert_true(mapped(maps[i], sizes[i]));
        assert_int_equal(resident_above_guard(maps[i], sizes[i]),
                         i < DECAY_N - 3 ? 0 : above / page);
    }
    for (int i = DECAY_N - 3; i < DECAY_N; i++) {
        assert_ptr_equal(s[i]->map, maps[i]);
        assert_int_equal(((unsigned char *)s[i]->lo)[0], 0x10 + i);
        assert_int_equal(((unsigned char *)s[i]->lo)[s[i]->size - 1], 0x10 + i);
    }

    /* No get since: all 3 went unused, but 2 are kept; the least recently
     * used of the 3 (s[5], at the bottom) turns cold. */
    assert_int_equal(corio__stack_pool_decay(&pool, 2), 2);
    assert_int_equal(pool.nhot, 2);
    assert_int_equal(pool.ncold, DECAY_N - 2);
    assert_int_equal(resident_above_guard(maps[5], sizes[5]), 0);
    assert_int_equal(resident_above_guard(maps[6], sizes[6]),
                     (sizes[6] - corio__guard_size()) / page);
    assert_int_equal(resident_above_guard(maps[7], sizes[7]),
                     (sizes[7] - corio__guard_size()) / page);
    /* keep is honoured: nothing more turns cold. */
    assert_int_equal(corio__stack_pool_decay(&pool, 2), 2);
    assert_int_equal(pool.nhot, 2);
    assert_int_equal(pool.ncold, DECAY_N - 2);

    /* Hot first (their bytes kept), then the cold, each with a valid
     * descriptor; the last turned cold comes first. */
    corio__stack *h7 = corio__stack_get(&pool, 0);
    corio__stack *h6 = corio__stack_get(&pool, 0);
    corio__stack *c5 = corio__stack_get(&pool, 0);
    assert_ptr_equal(h7, s[7]);
    assert_ptr_equal(h6, s[6]);
    assert_ptr_equal(c5, s[5]);
    assert_int_equal(((unsigned char *)h6->lo)[0], 0x16);
    assert_ptr_equal(c5->map, maps[5]);
    assert_int_equal(c5->map_size, sizes[5]);
    assert_int_equal(c5->size, h6->size);
    assert_ptr_equal(c5->lo, (char *)maps[5] + corio__guard_size());
    assert_int_equal(((unsigned char *)c5->lo)[0], 0);
    memset(c5->lo, 0x55, c5->size);
    corio__stack_put(&pool, c5);
    corio__stack_put(&pool, h6);
    corio__stack_put(&pool, h7);
    assert_int_equal(pool.nhot, 3);
    assert_int_equal(pool.ncold, DECAY_N - 3);

    /* All three were needed since the last decay (the hot ones ran out):
     * none turns cold; with no get before the next, all of them do (keep 0). */
    assert_int_equal(corio__stack_pool_decay(&pool, 0), 3);
    assert_int_equal(pool.nhot, 3);
    assert_int_equal(corio__stack_pool_decay(&pool, 0), 0);
    assert_int_equal(pool.nhot, 0);
    assert_int_equal(pool.ncold, DECAY_N);
    for (int i = 0; i < DECAY_N; i++)
        assert_int_equal(resident_above_guard(maps[i], sizes[i]), 0);

    /* Release unmaps every stack, cold ones included. */
    corio__stack_pool_release(&pool);
    assert_int_equal(pool.nhot + pool.ncold, 0);
    for (int i = 0; i < DECAY_N; i++)
        assert_false(mapped(maps[i], sizes[i]));
}

/* keep bounds the decay from below whatever went unused; an empty pool, or
 * one whose stacks are all out, has nothing to decay. */
static void test_stack_pool_decay_keeps_keep_and_ignores_an_empty_pool(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 16, 16);
    assert_int_equal(corio__stack_pool_decay(&pool, 0), 0);
    assert_int_equal(corio__stack_pool_decay(&pool, 16), 0);
    assert_int_equal(pool.nhot + pool.ncold, 0);

    corio__stack *s[DECAY_N];
    void *maps[DECAY_N];
    size_t sizes[DECAY_N];
    for (int i = 0; i < DECAY_N; i++) {
        s[i] = corio__stack_get(&pool, 0);
        assert_non_null(s[i]);
        maps[i] = s[i]->map;
        sizes[i] = s[i]->map_size;
        memset(s[i]->lo, 0x20 + i, 4096);
    }
    /* All out: nothing pooled, nothing to decay. */
    assert_int_equal(corio__stack_pool_decay(&pool, 0), 0);
    assert_int_equal(pool.nhot + pool.ncold, 0);
    for (int i = 0; i < DECAY_N; i++)
        corio__stack_put(&pool, s[i]); /* hot, s[7] on top */
    assert_int_equal(pool.nhot, DECAY_N);
    /* The pool held none since the last decay: every one was needed. */
    assert_int_equal(corio__stack_pool_decay(&pool, 0), DECAY_N);
    /* All unused now, but more kept than are hot: all stay. */
    assert_int_equal(corio__stack_pool_decay(&pool, DECAY_N + 1), DECAY_N);
    assert_int_equal(corio__stack_pool_decay(&pool, DECAY_N), DECAY_N);
    assert_int_equal(pool.nhot, DECAY_N);
    assert_int_equal(pool.ncold, 0);
    /* Down to keep, not below. */
    assert_int_equal(corio__stack_pool_decay(&pool, 6), 6);
    assert_int_equal(pool.nhot, 6);
    assert_int_equal(pool.ncold, DECAY_N - 6);
    assert_int_equal(corio__stack_pool_decay(&pool, 6), 6);
    assert_int_equal(pool.nhot, 6);
    assert_int_equal(pool.ncold, DECAY_N - 6);
    /* The 6 kept are the most recently used, with their bytes. */
    for (int i = DECAY_N - 1; i >= DECAY_N - 6; i--) {
        corio__stack *h = corio__stack_get(&pool, 0);
        assert_ptr_equal(h, s[i]);
        assert_int_equal(((unsigned char *)h->lo)[0], 0x20 + i);
    }
    for (int i = DECAY_N - 6; i < DECAY_N; i++)
        corio__stack_put(&pool, s[i]);
    corio__stack_pool_release(&pool);
    for (int i = 0; i < DECAY_N; i++)
        assert_false(mapped(maps[i], sizes[i]));
    /* Released, the pool decays as an empty one. */
    assert_int_equal(corio__stack_pool_decay(&pool, 0), 0);
    corio__stack_pool_release(&pool);
}

/* ---- a long-waiting task's dead stack pages ------------------------------------------------ */

#define DEEP (48 * KiB)

/* Touches DEEP bytes of the stack below the caller; true if they read back. */
static __attribute__((noinline)) bool go_deep(unsigned char fill) {
    volatile unsigned char buf[DEEP];
    memset((unsigned char *)buf, fill, sizeof buf);
    return buf[0] == fill && buf[DEEP - 1] == fill;
}

typedef struct trim_state {
    size_t deep_resident, trimmed_resident, given_back;
    bool deep_again_ok;
} trim_state;

static int trim_main(void *arg) {
    trim_state *st = arg;
    corio__stack *s = corio__tls_loop->current->stack;
    uintptr_t top_page = (uintptr_t)s & ~(uintptr_t)(corio__page_size() - 1);
    size_t usable = (size_t)(top_page - (uintptr_t)s->lo); /* below the descriptor's page */
    if (!go_deep(0x5a))
        return CORIO_EFAILED;
    st->deep_resident = resident_in_task(s->lo, usable);
    st->given_back = corio__trim_stack();
    st->trimmed_resident = resident_in_task(s->lo, usable);
    st->deep_again_ok = go_deep(0xa5); /* the pages come back, zeroed, on the next deep call */
    return 0;
}

/* corio__trim_stack gives back what a task's deeper calls touched, and
 * nothing its live frames use: the task goes on, and deep again. */
static void test_trim_stack_gives_back_dead_pages_only(void **state) {
    (void)state;
    assert_int_equal(corio__trim_stack(), 0); /* outside a task: nothing */
    trim_state st = {0};
    corio_test_run(trim_main, &st);
    size_t page = corio__page_size();
    print_message("stack pages resident: %zu after a %zu KiB call, %zu after the trim\n",
                  st.deep_resident, DEEP / KiB, st.trimmed_resident);
    assert_true(st.deep_resident != SIZE_MAX && st.trimmed_resident != SIZE_MAX);
    assert_true(st.deep_resident >= DEEP / page);
    assert_true(st.given_back >= DEEP - page);
    assert_true(st.trimmed_resident <= st.deep_resident - (DEEP / page - 1));
    assert_true(st.deep_again_ok);
}

/* ---- the loop's pool decay ----------------------------------------------------------------- */

#define BURST 200
#define POOL_KEEP_HOT 16 /* runtime/loop.c */

static int burst_task(void *arg) {
    (void)arg;
    volatile char buf[8192]; /* a few KiB of the stack touched */
    memset((char *)buf, 0x42, sizeof buf);
    corio_yield();
    return buf[100] == 0x42 ? 0 : -1;
}

typedef struct burst_state {
    size_t hot_after_burst, hot_at_end;
    uint64_t waited_ms;
} burst_state;

static int burst_main(void *arg) {
    burst_state *st = arg;
    corio_task *t[BURST];
    int rc = 0;
    for (int i = 0; i < BURST; i++)
        if (corio_spawn(&t[i], "burst", burst_task, NULL) != 0)
            return CORIO_EFAILED;
    for (int i = 0; i < BURST; i++) {
        if (corio_await(t[i]) != 0)
            rc = CORIO_EFAILED;
        corio_task_release(t[i]);
    }
    corio__stack_pool *pool = &corio__tls_loop->pool;
    st->hot_after_burst = pool->nhot;
    /* No task needs a stack now: the hot ones turn cold, down to 16. */
    uint64_t t0 = corio_now();
    while (pool->nhot > POOL_KEEP_HOT && corio_now() - t0 < 5000)
        corio_sleep(50);
    st->waited_ms = corio_now() - t0;
    st->hot_at_end = pool->nhot;
    return rc;
}

static void test_loop_pool_hot_stacks_turn_cold_after_a_burst(void **state) {
    (void)state;
    burst_state st = {0};
    corio_test_run(burst_main, &st);
    print_message("hot stacks: %zu after the burst, %zu after %llu ms\n", st.hot_after_burst,
                  st.hot_at_end, (unsigned long long)st.waited_ms);
    assert_true(st.hot_after_burst >= BURST);
    assert_true(st.hot_at_end <= POOL_KEEP_HOT);
}

/* ---- guard page and overflow report ------------------------------------------------------ */

/* Forks; the child runs fn(arg) with its stderr going into a pipe whose
 * contents the parent collects into buf.  Returns the child's wait status. */
static int run_in_child(void (*fn)(void *), void *arg, char *buf, size_t cap) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        close(fds[1]);
        /* cmocka's own handlers would turn a fault into a test failure and
         * carry on running tests in the child. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fds[0], buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || len + (size_t)n >= cap - 1) {
            if (n > 0)
                len += (size_t)n;
            break;
        }
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        assert_int_equal(errno, EINTR);
    return status;
}

static void touch_below_lo(void *arg) {
    corio__stack *s = arg;
    ((volatile char *)s->lo)[0] = 1;  /* the lowest usable byte is writable */
    ((volatile char *)s->lo)[-1] = 1; /* the byte below it is the guard */
    _exit(3);
}

static void test_stack_guard_page_is_prot_none(void **state) {
    (void)state;
    corio__stack_pool pool;
    corio__stack_pool_init(&pool, 64 * KiB, 4, 4);
    corio__stack *s = corio__stack_get(&pool, 0);
    assert_non_null(s);
    assert_int_equal((char *)s->lo - (char *)s->map, (long)corio__guard_size());
    char out[4096];
    int status = run_in_child(touch_below_lo, s, out, sizeof out);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    corio__stack_put(&pool, s);
    corio__stack_pool_release(&pool);
}

#define OVERFLOW_STACK (64 * KiB)

static int __attribute__((noinline)) recurse(int depth) {
    volatile char frame[1024]; /* < a page per frame: the guard page is hit */
    for (size_t i = sizeof frame; i-- > 0;)
        frame[i] = (char)depth;
    if (depth >= 1000000)
        return frame[0];
    return recurse(depth + 1) + frame[depth % sizeof frame];
}

static int deep_task(void *arg) {
    (void)arg;
    return recurse(0);
}

static int overflow_main(void *arg) {
    (void)arg;
    corio_task *t;
    corio_spawn_opts opts = {.name = "deep-recursion", .stack_size = OVERFLOW_STACK};
    int rc = corio_spawn_ex(&t, &opts, deep_task, NULL);
    if (rc == 0)
        rc = corio_await(t);
    corio_task_release(t);
    return rc;
}

static void run_overflow(void *arg) {
    (void)arg;
    int rc = corio_run(overflow_main, NULL);
    fprintf(stderr, "corio_run returned %d without an overflow\n", rc);
    _exit(4);
}

static void test_stack_overflow_is_reported_and_aborts(void **state) {
    (void)state;
    if (corio_test_under_valgrind())
        skip(); /* valgrind cannot deliver a fault on a guard page of its own stacks */
    char out[8192];
    int status = run_in_child(run_overflow, NULL, out, sizeof out);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("child status %#x, stderr:\n%s", status, out);
    assert_non_null(strstr(out, "stack overflow in task 'deep-recursion'"));
    char size[64];
    snprintf(size, sizeof size, "stack size %zu bytes", OVERFLOW_STACK);
    if (!strstr(out, size))
        fail_msg("no '%s' in:\n%s", size, out);
}

/* A frame larger than a page (a big local buffer) steps over a one-page
 * guard; pooled stacks are mapped next to each other, so without a guard
 * that covers such frames the write lands silently in the neighbouring
 * stack instead of faulting. */
static int __attribute__((noinline)) big_frame(void) {
    volatile char buf[128 * 1024];
    for (size_t i = 0; i < 4096; i++) /* as a short read(2) into it would */
        buf[i] = 1;
    return buf[4095];
}

static int big_frame_task(void *arg) {
    (void)arg;
    return big_frame();
}

static int park_forever(void *arg) {
    return corio_await((corio_future *)arg);
}

static int big_frame_main(void *arg) {
    (void)arg;
    corio_future *never;
    corio_task *neighbour, *t;
    corio_spawn_opts opts = {.name = "big-frame", .stack_size = OVERFLOW_STACK};
    /* The big-frame task's stack is mapped first; the neighbour's, mapped
     * next, lies just below it. */
    if (corio_future_new(&never) || corio_spawn_ex(&t, &opts, big_frame_task, NULL))
        return -1;
    opts.name = "neighbour";
    if (corio_spawn_ex(&neighbour, &opts, park_forever, never))
        return -1;
    int rc = corio_await(t);
    corio_cancel(neighbour);
    corio_await(neighbour);
    corio_task_release(t);
    corio_task_release(neighbour);
    corio_future_release(never);
    return rc;
}

static void run_big_frame(void *arg) {
    (void)arg;
    int rc = corio_run(big_frame_main, NULL);
    fprintf(stderr, "corio_run returned %d: the big frame went unnoticed\n", rc);
    _exit(4);
}

static void test_frame_larger_than_a_page_is_caught_by_the_guard(void **state) {
    (void)state;
    if (corio_test_under_valgrind())
        skip();
    char out[8192];
    int status = run_in_child(run_big_frame, NULL, out, sizeof out);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        fail_msg("child status %#x, stderr:\n%s", status, out);
    assert_non_null(strstr(out, "stack overflow in task 'big-frame'"));
}

/* Sizes no mapping can have (rounding wraps SIZE_MAX to 0; size + guard
 * wraps near it) fail as out of memory instead of mapping a bare guard. */
static int return_zero(void *arg) {
    (void)arg;
    return 0;
}

typedef struct absurd_state {
    int rc[3];
} absurd_state;

static int absurd_main(void *arg) {
    absurd_state *st = arg;
    const size_t sizes[3] = {SIZE_MAX, SIZE_MAX - 8 * KiB, (size_t)1 << 62};
    for (int i = 0; i < 3; i++) {
        corio_spawn_opts opts = {.name = "absurd", .stack_size = sizes[i]};
        corio_task *t = (corio_task *)st; /* must be reset to NULL */
        st->rc[i] = corio_spawn_ex(&t, &opts, return_zero, NULL);
        if (t)
            st->rc[i] = 1;
    }
    return 0;
}

static void test_absurd_stack_sizes_fail_with_enomem(void **state) {
    (void)state;
    absurd_state st = {0};
    corio_test_run(absurd_main, &st);
    for (int i = 0; i < 3; i++)
        assert_int_equal(st.rc[i], CORIO_ENOMEM);
    corio_run_opts opts = {.stack_size = SIZE_MAX};
    assert_int_equal(corio_run_ex(&opts, return_zero, NULL), CORIO_ENOMEM);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#if defined(HAVE_PROBE)
        cmocka_unit_test(test_switch_preserves_callee_saved_registers),
#endif
#if defined(__x86_64__) || defined(__aarch64__)
        cmocka_unit_test(test_switch_preserves_fp_control_state),
#endif
        cmocka_unit_test(test_million_switches_keep_count),
        cmocka_unit_test(test_stack_pool_reuses_stacks),
        cmocka_unit_test(test_stack_pool_unmaps_beyond_bound),
        cmocka_unit_test(test_stack_pool_cold_stack_gives_back_its_top_page),
        cmocka_unit_test(test_stack_pool_decay_turns_unused_hot_stacks_cold),
        cmocka_unit_test(test_stack_pool_decay_keeps_keep_and_ignores_an_empty_pool),
        cmocka_unit_test(test_stack_guard_page_is_prot_none),
        cmocka_unit_test(test_stack_overflow_is_reported_and_aborts),
        cmocka_unit_test(test_frame_larger_than_a_page_is_caught_by_the_guard),
        cmocka_unit_test(test_absurd_stack_sizes_fail_with_enomem),
        /* After the overflow tests: a loop run in this process installs corio's fault
         * handler once, and their children (which reset SIGSEGV for cmocka) would not
         * install it again. */
        cmocka_unit_test(test_loop_pool_hot_stacks_turn_cold_after_a_burst),
        cmocka_unit_test(test_trim_stack_gives_back_dead_pages_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
