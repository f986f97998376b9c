/* SPDX-License-Identifier: MIT */
/* Arena for per-request memory (see arena.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/arena.h"

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

/* A thread that ends (a loop run on a thread of its own) frees its cache:
 * the first chunk it keeps arms a key whose destructor runs at its exit.
 * Without the key (pthread_key_create failed) nothing is kept. */
static pthread_key_t cache_key;
static bool cache_key_ok;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static __thread bool cache_armed;

static void cache_at_thread_exit(void *unused) {
    (void)unused;
    corio__arena_cache_clear();
    cache_armed = false; /* a later free (another destructor) arms it again */
}

static void cache_key_create(void) {
    cache_key_ok = pthread_key_create(&cache_key, cache_at_thread_exit) == 0;
}

static bool cache_arm(void) {
    if (!cache_armed) {
        pthread_once(&cache_once, cache_key_create);
        cache_armed = cache_key_ok && pthread_setspecific(cache_key, &cache_armed) == 0;
    }
    return cache_armed;
}

static void chunk_put(corio__chunk *c) {
    if (c->size == CHUNK_SIZE - sizeof(corio__chunk) && cached < CACHE_MAX && cache_arm()) {
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
