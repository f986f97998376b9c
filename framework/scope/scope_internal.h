/* SPDX-License-Identifier: MIT */
/* Private helpers of the scope layer, for itself and the layers above it.
 *
 * Dead-scope detection.  A task keeps its entered scopes as a chain of
 * CORIO_WITH variables that live in the frames of its own stack (the root
 * scope lives in the task).  longjmp out of a CORIO_WITH skips the scope's
 * cleanup, and the task keeps pointing at a frame that has returned.  Stacks
 * grow down and every entered scope lives in a frame of a function still
 * running, above the frame of any function it calls; so an innermost scope
 * below the checking function's own frame, on the task's stack, is dead.
 * Under ASan with detect_stack_use_after_return a scope may live on a fake
 * stack instead: there only a fake frame ASan has retired (poisoned) is
 * known dead, so such a longjmp is caught by the order check at the next
 * leave.  The check also misses a longjmp that stays within one function
 * (its scope's frame is still live) and one seen only from a frame deeper
 * than the dead scope was; the order check at the next leave, or the end of
 * the task, catches most of those.
 */
#ifndef CORIO_SCOPE_INTERNAL_H
#define CORIO_SCOPE_INTERNAL_H

#include "corio/scope.h"
#include "runtime/internal.h"

/* Aborts, with a message naming t and `what` (the operation that found it,
 * e.g. "corio_await"), if t's innermost scope lives in a stack frame that has
 * returned (longjmp out of a CORIO_WITH).  Costs a few compares; call it
 * from the task itself, at any await or scope operation. */
void corio__scope_check_live(corio_task *t, const char *what);

/* Cancels scope `s` of task t (a task group's scope, a stream's idle wait)
 * with `reason` (kept in s->cancelled; the first one wins); wakes t if
 * parked and the scope is visible to its current await. */
void corio__scope_cancel(corio_task *t, corio_scope *s, corio_cancel_reason reason);

#endif
