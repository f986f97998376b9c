/* SPDX-License-Identifier: MIT */
/* Scoped resources: the engine behind CORIO_WITH (see scope.h).
 *
 * Entering pushes the scope on the task's scope stack before the enter hook
 * runs, so hooks of corio's own resources (timeouts, shields, task groups)
 * can set the scope's deadline or flags.  Leaving computes how the scope
 * ended, turns the scope into a shield with a deadline of its own (unless
 * the type runs unshielded), runs the exit hook and pops the scope.
 *
 * Failures follow control (scope.h's failure rule).  The macro records in
 * `left` whether the body ended normally, by `break`, or by `return`/`goto`
 * (neither loop step ran).  A scope left by return/goto with a failing `how`
 * stores it in the enclosing scope's `passed`; that scope sees it unless its
 * own body ends normally.  The state lives in the scopes themselves, so an
 * exit hook that enters scopes of its own (and fails them) cannot disturb
 * the failure travelling outward, and the normal path costs nothing but the
 * macro's stores.
 */
#include <stdlib.h>

#include "coro/sanitizer.h"
#include "scope/scope_internal.h"

#define DEFAULT_EXIT_TIMEOUT_MS 5000

/* ---- dead scopes (longjmp out of CORIO_WITH) ------------------------------------------ */

static __attribute__((noreturn, noinline, cold)) void scope_dead(corio_task *t, const char *what,
                                                                 const char *why) {
    corio__report("%s in task '%s' (id %llu): %s; the task left a CORIO_WITH without its "
                  "cleanup (longjmp out of a scope is not supported); aborting",
                  what, t->name, (unsigned long long)t->id, why);
    abort();
}

/* Whether scope s of t lives in a frame that has returned, seen from a
 * function whose frame is at `frame` (see scope_internal.h). */
static inline bool scope_is_dead(corio_task *t, const corio_scope *s, const void *frame) {
    if (s == &t->root || !t->stack)
        return false;
    uintptr_t a = (uintptr_t)s, lo = (uintptr_t)t->stack->lo;
#if defined(CORIO_ASAN)
    if (a - lo >= t->stack->size) {
        /* On ASan's fake stack (detect_stack_use_after_return): the real
         * address ASan records for a fake frame lies a few frames below its
         * function's, too rough to compare; only a retired (poisoned) fake
         * frame is known dead. */
        return __asan_region_is_poisoned((void *)s, sizeof *s) != NULL;
    }
#endif
    if (a - lo < t->stack->size)
        return a < (uintptr_t)frame;
    return false;
}

static inline void check_live_at(corio_task *t, const char *what, const void *frame) {
    if (scope_is_dead(t, t->scopes, frame))
        scope_dead(t, what, "its innermost scope is in a stack frame that has returned");
}

__attribute__((noinline)) void corio__scope_check_live(corio_task *t, const char *what) {
    if (t)
        check_live_at(t, what, __builtin_frame_address(0));
}

/* ---- enter and leave ------------------------------------------------------------------- */

/* noinline: the liveness check compares with this function's own frame,
 * which must lie below every frame holding a live scope. */
__attribute__((noinline)) corio_scope *corio__scope_enter(corio_scope *s, corio_resource res,
                                                          int *rc) {
    corio_task *t = corio__task_require("CORIO_WITH");
    if (!t) {
        if (rc)
            *rc = CORIO_ENOTASK;
        return NULL;
    }
    if (scope_is_dead(t, t->scopes, __builtin_frame_address(0)) || t->scopes == s)
        scope_dead(t, "CORIO_WITH",
                   t->scopes == s ? "the scope being entered is already the task's innermost"
                                  : "its innermost scope is in a stack frame that has returned");
    s->res = res;
    s->task = t;
    s->deadline = CORIO__NO_DEADLINE;
    s->error = 0;
    s->passed = 0;
    s->cancelled = s->shield = 0;
    s->left = 0;
    s->outer = t->scopes;
    t->scopes = s;
    int r = res.type && res.type->enter ? res.type->enter(res.self, res.arg) : 0;
    if (rc)
        *rc = r;
    if (r < 0) {
        t->scopes = s->outer;
        s->entered = 0;
        return NULL;
    }
    s->entered = 1;
    return s;
}

/* How the scope ended, as its exit hook is told (scope.h, rules 1-4). */
static int scope_how(corio_task *t, corio_scope *s) {
    uint64_t now = corio__now(t->fut.loop);
    int how = 0;
    for (corio_scope *e = s; e; e = e->outer) {
        if (e->cancelled)
            return CORIO_ECANCELED;
        if (e->deadline <= now)
            how = CORIO_ETIMEDOUT;
        if (e->shield)
            break;
    }
    if (how)
        return how;
    if (s->error)
        return s->error;
    /* A failure passed in is dropped by a normal end of this body. */
    return s->left & CORIO__LEFT_NORMAL ? 0 : s->passed;
}

void corio__scope_leave(corio_scope *s) {
    if (!s->entered)
        return;
    corio_task *t = s->task;
    if (t->scopes != s)
        scope_dead(t, "leaving a CORIO_WITH",
                   "the task's innermost scope is not this one (scopes left out of order)");
    const corio_resource_type *type = s->res.type;
    int how = scope_how(t, s);
    if (type && type->exit) {
        if (!(type->flags & CORIO_RESOURCE_UNSHIELDED)) {
            uint64_t ms = type->exit_timeout_ms ? type->exit_timeout_ms : DEFAULT_EXIT_TIMEOUT_MS;
            s->shield = 1;
            s->cancelled = 0;
            s->deadline = corio__deadline_after(t->fut.loop, ms);
        }
        type->exit(s->res.self, how);
    }
    t->scopes = s->outer;
    s->entered = 0;
    /* return/goto: the same jump leaves the enclosing scope too, unless it
     * lands in its body (which then ends normally, dropping it). */
    if (s->left == 0 && how < 0)
        s->outer->passed = how;
}

__attribute__((noinline)) int corio_scope_fail(int err) {
    corio_task *t = corio__current();
    if (!t || err >= 0 || t->scopes == &t->root)
        return err;
    check_live_at(t, "corio_scope_fail", __builtin_frame_address(0));
    if (t->scopes->error == 0)
        t->scopes->error = err;
    return err;
}

__attribute__((noinline)) int corio_scope_handled(void) {
    corio_task *t = corio__current();
    if (!t || t->scopes == &t->root)
        return 0;
    check_live_at(t, "corio_scope_handled", __builtin_frame_address(0));
    corio_scope *s = t->scopes;
    int rc = s->error ? s->error : s->passed;
    s->error = s->passed = 0;
    return rc;
}

void corio__scope_cancel(corio_task *t, corio_scope *s, corio_cancel_reason reason) {
    if (!s->cancelled)
        s->cancelled = (uint8_t)(reason ? reason : CORIO_CANCEL_USER);
    if (t->state == CORIO__PARKED && corio__scope_visible(t, s))
        corio__wake(t, CORIO_ECANCELED);
}
