/* SPDX-License-Identifier: MIT */
/* The failing allocator of the out-of-memory sweeps (test_oom_http.c,
 * test_oom_backends.c): wrappers for malloc, calloc, realloc, free, strdup
 * and strndup (the program is linked with -Wl,--wrap for each:
 * tests/CMakeLists.txt) that count allocations, fail allocation #fail_at
 * (and every one after it with fail_from), and track every live block in a
 * set that allocates nothing, with its run and, when asked, its call stack.
 * Header-only: every tests/test_*.c is a program of its own, and one
 * program includes this once.
 */
#ifndef CORIO_FAILING_ALLOC_H
#define CORIO_FAILING_ALLOC_H

#include <execinfo.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

static pthread_mutex_t alloc_mu = PTHREAD_MUTEX_INITIALIZER;
static long alloc_count;     /* allocations attempted since the counter was reset */
static long fail_at = -1;    /* the first allocation made to fail; -1: none */
static bool fail_from;       /* also every allocation after fail_at */
static void *fail_stack[24]; /* the call stack of allocation #fail_at */
static int fail_stack_depth;
static bool capture_stack; /* record it (backtrace: only when asked) */

/* The live blocks the wrappers handed out: an open-addressing set (static:
 * it must not allocate), linear probing with backward-shift deletion.  Each
 * entry says which run made the block, and which allocation of it; with
 * block_stacks (the program's VERBOSE variable), its call stack too, for the
 * leak report. */
#define LIVE_CAP ((size_t)1 << 17)
#define STACK_DEPTH 12
typedef struct live_block {
    void *p;
    long run, seq;
    int depth;
    void *stack[STACK_DEPTH];
} live_block;
static live_block live[LIVE_CAP];
static size_t live_count;
static long run_id; /* the run being made */
static bool block_stacks;

static size_t live_slot(const void *p) {
    uintptr_t h = (uintptr_t)p;
    h ^= h >> 17;
    h *= 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 40) & (LIVE_CAP - 1);
}

static void live_add(void *p, long seq) {
    if (live_count >= LIVE_CAP / 2)
        abort(); /* the set is full: raise LIVE_CAP */
    size_t i = live_slot(p);
    while (live[i].p)
        i = (i + 1) & (LIVE_CAP - 1);
    live[i] = (live_block){.p = p, .run = run_id, .seq = seq};
    if (block_stacks)
        live[i].depth = backtrace(live[i].stack, STACK_DEPTH);
    live_count++;
}

static void live_del(const void *p) {
    size_t i = live_slot(p);
    while (live[i].p && live[i].p != p)
        i = (i + 1) & (LIVE_CAP - 1);
    if (!live[i].p)
        return; /* not one of ours: libc's strdup, getaddrinfo... */
    live[i].p = NULL;
    live_count--;
    for (size_t j = (i + 1) & (LIVE_CAP - 1); live[j].p; j = (j + 1) & (LIVE_CAP - 1)) {
        size_t home = live_slot(live[j].p);
        /* live[j] may move to the hole at i if its home is not in (i, j]. */
        if (((j - home) & (LIVE_CAP - 1)) >= ((j - i) & (LIVE_CAP - 1))) {
            live[i] = live[j];
            live[j].p = NULL;
            i = j;
        }
    }
}

/* Prints the blocks the current run made and left behind. */
static void live_report(void) {
    pthread_mutex_lock(&alloc_mu);
    for (size_t i = 0; i < LIVE_CAP; i++) {
        if (!live[i].p || live[i].run != run_id)
            continue;
        fprintf(stderr, "  left behind: allocation #%ld of the run, at\n", live[i].seq);
        backtrace_symbols_fd(live[i].stack, live[i].depth, STDERR_FILENO);
    }
    pthread_mutex_unlock(&alloc_mu);
}

static size_t live_now(void) {
    pthread_mutex_lock(&alloc_mu);
    size_t n = live_count;
    pthread_mutex_unlock(&alloc_mu);
    return n;
}

/* Whether this allocation fails; called with alloc_mu held. */
static bool should_fail(void) {
    long n = alloc_count++;
    bool fail = fail_at >= 0 && (n == fail_at || (fail_from && n > fail_at));
    if (fail && n == fail_at && capture_stack)
        fail_stack_depth = backtrace(fail_stack, 24);
    return fail;
}

void *__wrap_malloc(size_t size) {
    pthread_mutex_lock(&alloc_mu);
    long seq = alloc_count;
    void *p = should_fail() ? NULL : __real_malloc(size);
    if (p)
        live_add(p, seq);
    pthread_mutex_unlock(&alloc_mu);
    return p;
}

void *__wrap_calloc(size_t n, size_t size) {
    pthread_mutex_lock(&alloc_mu);
    long seq = alloc_count;
    void *p = should_fail() ? NULL : __real_calloc(n, size);
    if (p)
        live_add(p, seq);
    pthread_mutex_unlock(&alloc_mu);
    return p;
}

void *__wrap_realloc(void *old, size_t size) {
    pthread_mutex_lock(&alloc_mu);
    long seq = alloc_count;
    void *p = should_fail() ? NULL : __real_realloc(old, size);
    if (p) {
        if (old)
            live_del(old);
        live_add(p, seq);
    }
    pthread_mutex_unlock(&alloc_mu);
    return p;
}

void __wrap_free(void *p) {
    if (!p)
        return;
    pthread_mutex_lock(&alloc_mu);
    live_del(p);
    __real_free(p);
    pthread_mutex_unlock(&alloc_mu);
}

char *__wrap_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    char *p = __wrap_malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

char *__wrap_strdup(const char *s) {
    return __wrap_strndup(s, strlen(s));
}

#endif
