/* SPDX-License-Identifier: MIT */
/* corio/scope.h — scoped resources (`async with`), timeouts, shields and task
 * groups.
 *
 *     CORIO_WITH(corio_lock_scope(&lock)) {
 *         ...                       // the lock is held here
 *     }                             // and released on every way out
 *
 * A resource is a type (enter and exit hooks) plus the object it acts on.
 * CORIO_WITH runs the enter hook; if it fails the body is skipped and the exit
 * hook is not run — silently: execution goes on after the block.  Where the
 * enter can fail (a lock acquire that is cancelled, a pool checkout), use
 * CORIO_WITH_RC and check the code (asyncio would raise).  Otherwise the exit hook runs on every
 * way out of the body: falling off its end, `return`, `break`, `continue`, `goto` out, a failed
 * await, a cancellation, a timeout.  Nested scopes exit in reverse order of
 * entry.  Both hooks may await.  The exit hook runs shielded from cancellation
 * under a deadline of its own (the type's exit_timeout_ms, default 5 s), so
 * cleanup that must talk to a peer can, but cannot hang.
 *
 * `break` and `continue` inside CORIO_WITH leave the scope (the macro is a
 * one-pass loop), not an enclosing loop: a `break` leaves exactly one
 * CORIO_WITH, `continue` is a normal end of the body.  The mechanism is
 * __attribute__((cleanup)): it needs GCC or Clang.  A `goto` (or a
 * switch's case label) into a CORIO_WITH body, past its entry, would skip
 * the scope's initialisation: Clang always refuses to compile it (the
 * hidden scope variable has a cleanup attribute); GCC refuses it only with
 * -Werror=jump-misses-init, which corio's own code is built with and which
 * your code should use too (tests/compile_fail checks both compilers).  A
 * `goto`, `break` or `return` out of a body is fine.
 *
 * HOW A SCOPE ENDED — the exit hook's `how`, in this order:
 *   1. CORIO_ECANCELED if the task (or an enclosing task group) is cancelled
 *      and no shield hides it from the scope;
 *   2. CORIO_ETIMEDOUT if a deadline covering the scope (its own or an
 *      enclosing timeout, up to the first shield) has passed;
 *   3. the scope's failure, if it has one (below);
 *   4. else 0: a normal end.
 * An exit hook therefore sees the cancellation or deadline that is in effect
 * for the body, whichever way control left it.
 *
 * THE FAILURE RULE.  A failure follows control: every scope that one failing
 * `return` or `goto` leaves sees the failure, and a scope whose body goes on
 * after an inner failure and ends normally sees a normal end.
 *   - corio_scope_fail(rc) marks the innermost scope as failed: it sees rc
 *     however it is left (the mark stays until the scope ends, or
 *     corio_scope_handled()).  It returns rc, for
 *         return corio_scope_fail(rc);
 *   - A scope left by `return` or `goto` while its `how` is a failure
 *     (rules 1-3) passes that failure to the enclosing scope, which sees it
 *     too if control leaves it by `return`, `goto` or `break` as well — and
 *     so on outward: `return corio_scope_fail(rc)` three scopes deep is a
 *     failure for all three, and for the caller's scopes the same return
 *     goes on to leave (`if (rc < 0) return rc;` in the caller keeps
 *     failing; a failure is never lost at a function boundary).  A deadline
 *     or cancellation in the middle of the chain is passed on the same way.
 *   - A failure passed in from an inner scope is dropped when the body it
 *     reached ends normally (falls off its end or `continue`): that body
 *     handled it.  To handle it and then leave early with success, call
 *     corio_scope_handled() before the `return`/`goto`/`break`.
 *   - `break` leaves one scope only: it fails that scope if it is failing,
 *     and passes nothing on (control goes on in the enclosing body).  To
 *     leave several scopes failing, use `return` or `goto`
 *     (`corio_scope_fail(rc); goto out;`).
 *   - A `return`, `goto` or `break` that leaves a scope without a failure is
 *     a normal end for it (unless a failure was passed to it and not handled:
 *     when in doubt a scope sees a failure, never a false success).
 * So a transaction scope (commit when `how` is 0, roll back otherwise) rolls
 * back on every failing way out, however deep the failure started:
 *
 *     CORIO_WITH(txn_scope(db)) {
 *         CORIO_WITH(corio_timeout_scope(1000)) {
 *             if ((rc = query(db)) < 0)
 *                 return corio_scope_fail(rc);   // timeout and txn see rc
 *         }
 *     }                                          // commits on a normal end
 * The cost on the normal path is two stores per scope.
 *
 * Where "when in doubt, a failure" shows: a helper that failed inside its
 * own scopes and was retried successfully leaves its failure passed to the
 * caller's innermost scope until that body ends normally.  A body that
 * retries and then returns early with success says so (below).  And a
 * deadline that passes after the body's last await (CPU work after it) is
 * rule 2 even if the body then returns 0: the body overran its time; keep
 * work that must commit out of the timeout scope.
 *
 *     CORIO_WITH(txn_scope(db)) {
 *         for (int i = 0; i < 3 && (rc = attempt(db)) < 0; i++) {}
 *         if (rc == 0) {
 *             corio_scope_handled();             // the retries' failures
 *             return 0;                          // commits
 *         }
 *     }
 *
 * longjmp out of a scope is not supported: the task would be left pointing
 * at a dead frame.  A scope operation (enter, leave, corio_scope_fail) that
 * finds the task's innermost scope in a frame that has returned reports it,
 * naming the task, and aborts (reliable when the longjmp crossed a function
 * boundary, as libpng's and Lua's do).
 */
#ifndef CORIO_SCOPE_H
#define CORIO_SCOPE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "link.h"
#include "resource.h"
#include "sync.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The resource types (corio_resource_type, corio_resource) and the frame of
 * an entered scope (corio_scope) are in resource.h. */

/* Enter / leave, used by the macros; not for direct use. */
corio_scope *corio__scope_enter(corio_scope *s, corio_resource res, int *rc);
void corio__scope_leave(corio_scope *s);

#define CORIO__CAT2(a, b) a##b
#define CORIO__CAT(a, b) CORIO__CAT2(a, b)
/* Two one-pass loops, so the scope learns how its body was left without a
 * cost: the inner loop's step runs on a normal end or `continue`, the outer
 * one's also on `break`, neither on `return` or `goto`. */
#define CORIO__WITH(rcp, res, id)                                                                  \
    for (corio_scope CORIO__CAT(corio__scope_, id)                                                 \
             __attribute__((cleanup(corio__scope_leave))) = {0},                                   \
             *CORIO__CAT(corio__scope_p_, id) =                                                    \
                 corio__scope_enter(&CORIO__CAT(corio__scope_, id), (res), (rcp));                 \
         CORIO__CAT(corio__scope_p_, id) != NULL;                                                  \
         CORIO__CAT(corio__scope_, id).left |= CORIO__LEFT_BREAK,                                  \
             CORIO__CAT(corio__scope_p_, id) = NULL)                                               \
        for (; CORIO__CAT(corio__scope_p_, id) != NULL;                                            \
             CORIO__CAT(corio__scope_, id).left = CORIO__LEFT_NORMAL,                              \
                                       CORIO__CAT(corio__scope_p_, id) = NULL)

/* CORIO_WITH(res) { body }: enters `res`, runs body if that succeeded, exits
 * `res` on every way out.  Must be used inside a task. */
#define CORIO_WITH(res) CORIO__WITH(NULL, res, __COUNTER__)

/* CORIO_WITH_RC(rc, res) { body }: like CORIO_WITH, and stores the enter
 * hook's result (0 or a CORIO_E* code) into the int lvalue `rc`. */
#define CORIO_WITH_RC(rc, res) CORIO__WITH(&(rc), res, __COUNTER__)

/* Marks the innermost scope of the current task as failed with `err` (< 0):
 * its exit hook sees err in `how` however the scope is left, and a `return`
 * or `goto` out of it passes err on to every scope it leaves (the failure
 * rule above).  The first mark wins.  Returns err, for
 * `return corio_scope_fail(rc);`.  Outside a scope (or with err >= 0) it
 * only returns err. */
int corio_scope_fail(int err);

/* The failure that reached the innermost scope is handled: its own mark
 * (corio_scope_fail) and any failure passed in from an inner scope are
 * dropped, so a `return`, `goto` or `break` out of it from now on is a
 * normal end (unless it fails again).  A cancellation or a passed deadline
 * is not a mark and stays in effect.  Returns the failure dropped, or 0. */
int corio_scope_handled(void);

/* ---- resources that come with corio ------------------------------------------ */

/* The lock is taken on enter (an await) and released on exit. */
corio_resource corio_lock_scope(corio_lock *l);

/* One permit is taken on enter and given back on exit. */
corio_resource corio_semaphore_scope(corio_semaphore *s);

/* Timeout scope (asyncio.timeout): every await in the body fails with
 * CORIO_ETIMEDOUT once `ms` have passed since entry.  Nested timeouts take
 * the earliest deadline.  The enter hook never fails. */
corio_resource corio_timeout_scope(uint64_t ms);

/* Shield scope: inside it, the task's cancellation and the deadlines of
 * enclosing scopes do not interrupt awaits (a timeout scope inside the
 * shield still applies).  A cancel that arrives inside is not lost: awaits
 * after the shield fail with CORIO_ECANCELED. */
corio_resource corio_shield_scope(void);

/* ---- task groups (asyncio.TaskGroup, structured concurrency) ---------------- */

typedef struct corio_task_group {
    corio__link tasks;  /* private: member tasks still running */
    corio_scope *scope; /* private */
    uint64_t deadline;  /* private */
    int error;          /* private: first failure */
    size_t live;        /* private */
    corio_task *waiter; /* private */
    uint8_t closed;     /* private */
} corio_task_group;

/* A task group as a scope.  Leaving the scope awaits every task spawned into
 * the group.  The first member that fails (returns < 0) cancels the others
 * (reason CORIO_CANCEL_SIBLING) and the group's own body (its awaits return
 * CORIO_ECANCELED until the scope ends).  If the body ends by an error,
 * cancellation or timeout, the members are cancelled too.  `g` is
 * caller storage, initialised by the enter hook. */
corio_resource corio_task_group_scope(corio_task_group *g);

/* The same, with a deadline `ms` from entry over the body and every member:
 * their awaits fail with CORIO_ETIMEDOUT once it passes. */
corio_resource corio_task_group_scope_timeout(corio_task_group *g, uint64_t ms);

/* Spawns a member task (see corio_spawn).  While the group's exit waits
 * for its members, members may still spawn follow-up work into it (as into
 * asyncio's TaskGroup), and the exit waits for that too.  Returns
 * CORIO_ECLOSED once the group is aborting (a member failed, the body was
 * cancelled or timed out) or has ended, besides corio_spawn's codes. */
int corio_task_group_spawn(corio_task_group *g, corio_task **out, const char *name,
                           corio_task_fn fn, void *arg);

/* After the scope: the first member failure; else how the body ended
 * (CORIO_ETIMEDOUT when the group's deadline passed, CORIO_ECANCELED when the
 * task running the body was cancelled, the code given to corio_scope_fail()
 * in the body); else 0.  A member that ends with CORIO_ECANCELED is not a
 * failure. */
int corio_task_group_result(const corio_task_group *g);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_SCOPE_H */
