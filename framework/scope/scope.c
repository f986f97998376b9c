/* Scoped resources: the engine behind CORIO_WITH (see scope.h).
 *
 * Entering pushes the scope on the task's scope stack before the enter hook
 * runs, so hooks of corio's own resources (timeouts, shields, task groups)
 * can set the scope's deadline or flags.  Leaving computes how the scope
 * ended, turns the scope into a shield with a deadline of its own (unless
 * the type runs unshielded), runs the exit hook and pops the scope.
 */
#include "runtime/internal.h"

#define DEFAULT_EXIT_TIMEOUT_MS 5000

corio_scope *corio__scope_enter(corio_scope *s, corio_resource res, int *rc) {
    corio_task *t = corio__task_require("CORIO_WITH");
    if (!t) {
        if (rc)
            *rc = CORIO_ENOTASK;
        return NULL;
    }
    s->res = res;
    s->task = t;
    s->deadline = CORIO__NO_DEADLINE;
    s->error = 0;
    s->cancelled = s->shield = 0;
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

/* How the scope ended, as its exit hook is told. */
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
    return how ? how : s->error;
}

void corio__scope_leave(corio_scope *s) {
    if (!s->entered)
        return;
    corio_task *t = s->task;
    if (t->scopes != s) {
        corio__report("scope '%s' left out of order in task '%s' (longjmp out of CORIO_WITH?)",
                      s->res.type && s->res.type->name ? s->res.type->name : "?", t->name);
        return;
    }
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
}

int corio_scope_fail(int err) {
    corio_task *t = corio__current();
    if (t && t->scopes != &t->root && err < 0 && t->scopes->error == 0)
        t->scopes->error = err;
    return err;
}
