/* SPDX-License-Identifier: MIT */
/* Counters that layers below http keep for the metrics (http/metrics.c,
 * corio/metrics.h): what the server refuses or fails to accept, and its
 * open connections.
 *
 * Each process writes its counters through corio__stats_sink, which points
 * at a process-local block until the metrics give the process a slot of
 * their shared segment (then at that slot's block, summed with the other
 * workers' by whichever worker is scraped).  One writer per block: the
 * process's loop thread.  Updates are relaxed atomic loads and stores, not
 * read-modify-write instructions: no lock prefix on the hot path, and a
 * reader in another process never sees a torn value. */
#ifndef CORIO_RUNTIME_STATS_H
#define CORIO_RUNTIME_STATS_H

#include <stdint.h>

/* Why a connection could not be accepted (corio__stats.accept_errors). */
enum corio__accept_error {
    CORIO__ACCEPT_FD_LIMIT,  /* EMFILE, ENFILE: libuv shed it with its reserve fd */
    CORIO__ACCEPT_NO_MEMORY, /* no memory for the stream or connection */
    CORIO__ACCEPT_OTHER,     /* any other accept error */
    CORIO__ACCEPT_KINDS
};

typedef struct corio__stats {
    uint64_t conns_open;     /* gauge: accepted connections not closed yet */
    uint64_t conns_accepted; /* connections accepted */
    /* Times a server at max_conns left a connection in the kernel's backlog
     * (it is accepted when one ends) */
    uint64_t max_conns_waits;
    uint64_t accept_errors[CORIO__ACCEPT_KINDS];
} corio__stats;

/* Where this process's counters go; never NULL (runtime/loop.c). */
extern corio__stats *corio__stats_sink;

/* *p += n, for a counter with a single writer. */
static inline void corio__stat_add(uint64_t *p, uint64_t n) {
    __atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

/* *p -= n, for a gauge with a single writer (never below 0). */
static inline void corio__stat_sub(uint64_t *p, uint64_t n) {
    uint64_t v = __atomic_load_n(p, __ATOMIC_RELAXED);
    __atomic_store_n(p, v > n ? v - n : 0, __ATOMIC_RELAXED);
}

#endif
