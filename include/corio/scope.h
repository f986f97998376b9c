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
 * one-pass loop), not an enclosing loop.  The mechanism is
 * __attribute__((cleanup)): it needs GCC or Clang.  longjmp out of a scope is
 * not supported.
 *
 * The exit hook learns how the scope ended through `how`: CORIO_ECANCELED if
 * the task (or an enclosing task group) was cancelled, CORIO_ETIMEDOUT if a
 * deadline covering the scope passed, else the code given to
 * corio_scope_fail() inside the scope, else 0.
 */
#ifndef CORIO_SCOPE_H
#define CORIO_SCOPE_H

#include <stdbool.h>
#include <stdint.h>

#include "errno.h"
#include "sync.h"
#include "task.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of a resource type. */
enum {
    /* Run the exit hook without a shield and deadline of its own (it sees the
     * task's cancellation); for hooks that handle that themselves. */
    CORIO_RESOURCE_UNSHIELDED = 1u << 0,
};

/* A resource type: define one static const per kind of resource. */
typedef struct corio_resource_type {
    const char *name; /* shown in task dumps */
    /* May await.  Returns 0 to run the body, < 0 to skip it (that code is
     * what CORIO_WITH_RC reports).  `arg` is the resource's argument. */
    int (*enter)(void *self, uint64_t arg);
    /* May await; `how` as described above.  Its return value is ignored
     * except for logging; errors are reported by the enter hook or by the
     * object itself. */
    void (*exit)(void *self, int how);
    uint64_t exit_timeout_ms; /* 0: 5000 */
    unsigned flags;           /* CORIO_RESOURCE_* */
} corio_resource_type;

/* A resource value: what CORIO_WITH takes.  Built by helpers such as
 * corio_lock_scope(). */
typedef struct corio_resource {
    const corio_resource_type *type;
    void *self;
    uint64_t arg;
} corio_resource;

/* The state of one entered scope: lives in CORIO_WITH's hidden variable.
 * Private fields; the task keeps entered scopes on a stack. */
typedef struct corio_scope {
    corio_resource res;
    struct corio_scope *outer;
    corio_task *task;
    uint64_t deadline; /* UINT64_MAX: none */
    int error;         /* corio_scope_fail() */
    uint8_t entered, cancelled, shield, pad_;
} corio_scope;

/* Enter / leave, used by the macros; not for direct use. */
corio_scope *corio__scope_enter(corio_scope *s, corio_resource res, int *rc);
void corio__scope_leave(corio_scope *s);

#define CORIO__CAT2(a, b) a##b
#define CORIO__CAT(a, b) CORIO__CAT2(a, b)
#define CORIO__WITH(rcp, res, id)                                                                  \
    for (corio_scope CORIO__CAT(corio__scope_, id)                                                 \
             __attribute__((cleanup(corio__scope_leave))) = {0},                                   \
             *CORIO__CAT(corio__scope_p_, id) =                                                    \
                 corio__scope_enter(&CORIO__CAT(corio__scope_, id), (res), (rcp));                 \
         CORIO__CAT(corio__scope_p_, id) != NULL; CORIO__CAT(corio__scope_p_, id) = NULL)

/* CORIO_WITH(res) { body }: enters `res`, runs body if that succeeded, exits
 * `res` on every way out.  Must be used inside a task. */
#define CORIO_WITH(res) CORIO__WITH(NULL, res, __COUNTER__)

/* CORIO_WITH_RC(rc, res) { body }: like CORIO_WITH, and stores the enter
 * hook's result (0 or a CORIO_E* code) into the int lvalue `rc`. */
#define CORIO_WITH_RC(rc, res) CORIO__WITH(&(rc), res, __COUNTER__)

/* Marks the innermost scope of the current task as failing with `err`, so its
 * exit hook sees it in `how` (a transaction rolls back, say).  Returns err,
 * for `return corio_scope_fail(rc);`.  Without a scope, does nothing. */
int corio_scope_fail(int err);

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

/* Spawns a member task (see corio_spawn).  Returns CORIO_ECLOSED once the
 * group's scope is exiting, besides corio_spawn's codes. */
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
