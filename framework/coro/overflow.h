/* SPDX-License-Identifier: MIT */
/* Stack overflow reports.
 *
 * A task that runs into its guard page gets SIGSEGV.  The handler runs on an
 * alternate signal stack (the task's own is exhausted), checks whether the
 * faulting address lies in or just below the running task's stack, and if so
 * writes one line naming the task and its stack size to stderr and aborts.
 * Any other fault goes on to the handler that was installed before ours (or
 * the default action).
 */
#ifndef CORIO_CORO_OVERFLOW_H
#define CORIO_CORO_OVERFLOW_H

#include <stdint.h>

#include "coro/stack.h"

typedef struct corio__overflow_info {
    const char *name;
    uint64_t id;
    const corio__stack *stack;
} corio__overflow_info;

/* What runs now on this thread (NULL on the loop's own stack). */
extern __thread const corio__overflow_info *corio__overflow_current;

/* Installs the process-wide SIGSEGV/SIGBUS handler (once) and an alternate
 * signal stack for the calling thread.  Returns 0 or a CORIO_E* code. */
int corio__overflow_thread_init(void);
/* Removes this thread's alternate signal stack again. */
void corio__overflow_thread_release(void);

#endif
