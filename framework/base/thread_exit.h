/* SPDX-License-Identifier: MIT */
/* Work at a thread's exit: the per-thread caches (arena chunks, read
 * buffers) of a thread that ran a loop are freed when it ends, not lost
 * with its thread-local storage.  One key for all of them. */
#ifndef CORIO_BASE_THREAD_EXIT_H
#define CORIO_BASE_THREAD_EXIT_H

#include <stdbool.h>

/* Has fn called at the calling thread's exit.  *armed is the caller's own
 * thread-local flag: set here, cleared once fn has run (a later call, from
 * another exit hook, arms it again).  Cheap once armed.  Returns false if
 * it cannot (no key, or too many hooks): the caller should then keep
 * nothing per thread. */
bool corio__thread_exit_arm_slow(void (*fn)(void), bool *armed);

static inline bool corio__thread_exit_arm(void (*fn)(void), bool *armed) {
    return *armed || corio__thread_exit_arm_slow(fn, armed); /* inline: on every cached free */
}

#endif
