/* SPDX-License-Identifier: MIT */
/* Arena for per-request memory (see arena.h). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"
#include "base/thread_exit.h"

#define CHUNK_SIZE 4096
#define CACHE_MAX 256

struct corio__chunk {
    corio__chunk *next;
    size_t size;
    _Alignas(16) char data[];
};

static __thread corio__chunk *cache;
static __thread size_t cached;

static corio__chunk *chunk_get(size_t need) {
    size_t size =
        need > CHUNK_SIZE - sizeof(corio__chunk) ? need : CHUNK_SIZE - sizeof(corio__chunk);
    if (size == CHUNK_SIZE - sizeof(corio__chunk) && cache) {
        corio__chunk *c = cache;
        cache = c->next;
        cached--;
        return c;
    }
    corio__chunk *c = malloc(sizeof *c + size);
    if (c)
        c->size = size;
    return c;
}

/* A thread that ends (a loop run on a thread of its own) frees its cache
 * (base/thread_exit.h); without that, nothing is kept. */
static __thread bool cache_armed;

static void chunk_put(corio__chunk *c) {
    if (c->size == CHUNK_SIZE - sizeof(corio__chunk) && cached < CACHE_MAX &&
        corio__thread_exit_arm(corio__arena_cache_clear, &cache_armed)) {
        c->next = cache;
        cache = c;
        cached++;
        return;
    }
    free(c);
}

void corio__arena_init(corio__arena *a) {
    a->head = NULL;
    a->ptr = a->end = NULL;
}

void *corio__arena_alloc(corio__arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if ((size_t)(a->end - a->ptr) < n) {
        corio__chunk *c = chunk_get(n);
        if (!c)
            return NULL;
        c->next = a->head;
        a->head = c;
        a->ptr = c->data;
        a->end = c->data + c->size;
    }
    void *p = a->ptr;
    a->ptr += n;
    return p;
}

char *corio__arena_strndup(corio__arena *a, const char *s, size_t n) {
    char *p = corio__arena_alloc(a, n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

void corio__arena_reset(corio__arena *a) {
    while (a->head) {
        corio__chunk *c = a->head;
        a->head = c->next;
        chunk_put(c);
    }
    a->ptr = a->end = NULL;
}

void corio__arena_cache_clear(void) {
    while (cache) {
        corio__chunk *c = cache;
        cache = c->next;
        free(c);
    }
    cached = 0;
}
