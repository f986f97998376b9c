/* SPDX-License-Identifier: MIT */
/* Coroutines: a machine context on a pooled stack, switched with the sanitizer
 * and valgrind told about every stack change.
 *
 * corio has exactly two kinds of switch: from the loop's own stack into a
 * task, and from a task back to the loop.  A task never switches to another
 * task directly, so every coroutine only ever needs to know the loop's
 * coroutine (`main`).
 */
#ifndef CORIO_CORO_CORO_H
#define CORIO_CORO_CORO_H

#include <stdbool.h>
#include <stddef.h>

#include "coro/ctx.h"
#include "coro/stack.h"

typedef struct corio__coro {
    corio__ctx ctx;
    const void *stack_lo; /* for ASan; the loop's own stack is learned */
    size_t stack_size;
    void *asan_fake; /* ASan fake-stack handle while switched out */
} corio__coro;

/* Makes `c` start entry(arg) on `stack` at its first resume. */
void corio__coro_make(corio__coro *c, corio__stack *stack, void (*entry)(void *), void *arg);

/* Switches from the running coroutine `from` to `to`.  `from_ends` says that
 * `from` will never be resumed again (its stack may be reused). */
void corio__coro_switch(corio__coro *from, corio__coro *to, bool from_ends);

/* Must be the first call of every coroutine entry function. */
void corio__coro_started(void);

#endif
