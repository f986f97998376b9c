/* SPDX-License-Identifier: MIT */
/* Task groups (asyncio.TaskGroup, trio's nursery).
 *
 * The group's scope is a cancel scope: the first member failure cancels the
 * scope (the body's awaits fail with CORIO_ECANCELED until it ends) and the
 * other members.  Leaving the scope waits for every member; if that wait is
 * itself cancelled or times out, the members are cancelled and waited for
 * again under a shield, for a bounded time.
 */
#include "runtime/internal.h"
#include "scope/scope_internal.h"

#define GROUP_CANCEL_GRACE_MS 5000

/* g->closed: whether members may still be spawned.  While the exit waits for
 * them they may (a worker spawning follow-up work into its own group, as
 * asyncio's TaskGroup allows), until the group aborts (a failure, a cancel,
 * a deadline) or ends. */
enum { GROUP_OPEN = 0, GROUP_EXITING, GROUP_CLOSED };

static void cancel_members(corio_task_group *g, corio_cancel_reason reason) {
    g->closed = GROUP_CLOSED; /* aborting: no new members */
    for (corio__link *n = g->tasks.next; n != &g->tasks; n = n->next)
        corio_cancel_with(corio__container_of(n, corio_task, member_link), reason);
}

/* Whether the group's own deadline has passed.  Members run under it
 * (root.deadline) and see it themselves: their awaits fail with
 * CORIO_ETIMEDOUT.  Cancelling them on top of that would turn their timeout
 * into CORIO_ECANCELED (a cancel wins over a timeout) depending on who runs
 * first, so the group's own deadline neither cancels the members nor counts
 * as a sibling failure; only deadlines they do not see (an enclosing timeout
 * scope, the grace period) cancel them. */
static bool own_deadline_passed(const corio_task_group *g, corio_task *t) {
    return g->deadline != CORIO__NO_DEADLINE && g->deadline <= corio__now(t->fut.loop);
}

static int group_enter(void *self, uint64_t ms) {
    corio_task_group *g = self;
    corio_task *t = corio__current();
    corio__list_init(&g->tasks);
    g->scope = t->scopes; /* pushed by scope.c before enter */
    g->error = 0;
    g->live = 0;
    g->waiter = NULL;
    g->closed = GROUP_OPEN;
    g->deadline = CORIO__NO_DEADLINE;
    if (ms != CORIO__NO_DEADLINE) {
        uint64_t now = corio__now_fresh(t->fut.loop);
        g->deadline = ms >= CORIO__NO_DEADLINE - now ? CORIO__NO_DEADLINE - 1 : now + ms;
        g->scope->deadline = g->deadline;
    }
    return 0;
}

static void detach_members(corio_task_group *g) {
    corio__report("task group: %zu member(s) did not end within %d ms of being cancelled; they "
                  "go on detached from the group",
                  g->live, GROUP_CANCEL_GRACE_MS);
    corio__link *n;
    while ((n = corio__list_pop_front(&g->tasks))) {
        corio_task *t = corio__container_of(n, corio_task, member_link);
        t->on_done = NULL;
        t->on_done_data = NULL;
    }
    g->live = 0;
}

static void group_exit(void *self, int how) {
    corio_task_group *g = self;
    corio_scope *s = g->scope;
    corio_task *t = s->task;
    if (g->closed == GROUP_OPEN)
        g->closed = GROUP_EXITING;
    s->cancelled = 0; /* that stopped the body; the wait below must go on */
    if (how < 0 && !(how == CORIO_ETIMEDOUT && own_deadline_passed(g, t)))
        cancel_members(g, how == CORIO_ETIMEDOUT ? CORIO_CANCEL_TIMEOUT
                          : t->root.cancelled    ? (corio_cancel_reason)t->cancel_reason
                                                 : CORIO_CANCEL_SIBLING);
    bool shielded = false;
    while (g->live > 0) {
        int rc = corio__await_check(t);
        if (rc == 0) {
            rc = corio__park_in_slot(t, &g->waiter, CORIO__NO_DEADLINE, "task group");
        }
        if (rc == 0 || g->live == 0)
            continue;
        if (shielded) {
            detach_members(g);
            break;
        }
        /* Our wait was cancelled or timed out: stop the members, then wait
         * for them shielded, for a bounded time. */
        if (how == 0)
            how = rc;
        if (!(rc == CORIO_ETIMEDOUT && own_deadline_passed(g, t)))
            cancel_members(g, rc == CORIO_ETIMEDOUT ? CORIO_CANCEL_TIMEOUT
                                                    : (corio_cancel_reason)t->cancel_reason);
        s->shield = 1;
        s->deadline = corio__deadline_after(t->fut.loop, GROUP_CANCEL_GRACE_MS);
        shielded = true;
    }
    if (g->error == 0 && how < 0)
        g->error = how;
    g->closed = GROUP_CLOSED;
    g->scope = NULL;
}

static const corio_resource_type group_type = {.name = "task group",
                                               .enter = group_enter,
                                               .exit = group_exit,
                                               .flags = CORIO_RESOURCE_UNSHIELDED};

corio_resource corio_task_group_scope(corio_task_group *g) {
    return (corio_resource){.type = &group_type, .self = g, .arg = CORIO__NO_DEADLINE};
}

corio_resource corio_task_group_scope_timeout(corio_task_group *g, uint64_t ms) {
    if (ms >= CORIO__NO_DEADLINE)
        ms = CORIO__NO_DEADLINE - 1;
    return (corio_resource){.type = &group_type, .self = g, .arg = ms};
}

static void member_done(corio_task *t);

int corio_task_group_spawn(corio_task_group *g, corio_task **out, const char *name,
                           corio_task_fn fn, void *arg) {
    if (out)
        *out = NULL;
    if (!g || !g->scope || g->closed == GROUP_CLOSED)
        return CORIO_ECLOSED;
    corio_task *child;
    int rc = corio_spawn(&child, name, fn, arg);
    if (rc)
        return rc;
    child->on_done = member_done;
    child->on_done_data = g;
    corio__list_push_back(&g->tasks, &child->member_link);
    g->live++;
    child->root.deadline = g->deadline;
    if (g->scope->cancelled)
        corio_cancel_with(child, CORIO_CANCEL_SIBLING);
    if (out)
        *out = child;
    else
        corio_task_release(child);
    return 0;
}

/* A member ended: the task's done hook, registered by the spawn above. */
static void member_done(corio_task *t) {
    corio_task_group *g = t->on_done_data;
    corio__list_remove(&t->member_link);
    t->on_done = NULL;
    t->on_done_data = NULL;
    g->live--;
    int rc = t->fut.result;
    if (rc < 0 && rc != CORIO_ECANCELED && g->error == 0) {
        g->error = rc;
        /* A member passing on the group's own timeout is not a failure of
         * its own: the others time out by themselves (own_deadline_passed). */
        if (!(rc == CORIO_ETIMEDOUT && own_deadline_passed(g, t))) {
            bool body_runs = g->closed == GROUP_OPEN; /* not in its exit yet */
            cancel_members(g, CORIO_CANCEL_SIBLING);
            if (body_runs)
                corio__scope_cancel(g->scope->task, g->scope, CORIO_CANCEL_SIBLING);
        }
    }
    if (g->live == 0 && g->waiter)
        corio__wake(g->waiter, 0);
}

int corio_task_group_result(const corio_task_group *g) {
    return g->error;
}
