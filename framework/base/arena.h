/* SPDX-License-Identifier: MIT */
/* Arena: bump allocation in chunks, reset all at once.  HTTP keeps one per
 * connection, reset after the responses of a batch of requests are written.
 * Chunks come from a small per-thread cache (every loop runs on its own
 * thread), so a request allocates nothing from malloc on the hot path, and
 * an idle connection holds no chunk at all. */
#ifndef CORIO_BASE_ARENA_H
#define CORIO_BASE_ARENA_H

#include <stddef.h>

typedef struct corio__chunk corio__chunk;

typedef struct corio__arena {
    corio__chunk *head; /* newest chunk */
    char *ptr, *end;    /* free space in head */
} corio__arena;

void corio__arena_init(corio__arena *a);
/* Returns n bytes aligned to 16, or NULL when out of memory. */
void *corio__arena_alloc(corio__arena *a, size_t n);
/* Copies s[0..n) and a NUL into the arena. */
char *corio__arena_strndup(corio__arena *a, const char *s, size_t n);
/* Frees every allocation, giving the chunks back to the cache. */
void corio__arena_reset(corio__arena *a);
/* Frees the calling thread's cached chunks (a test's leak accounting
 * counts the blocks live before and after a run; the cache would blur it). */
void corio__arena_cache_clear(void);

#endif
