/* SPDX-License-Identifier: MIT */
/* Lock (asyncio.Lock): FIFO hand-off.  Releasing with waiters gives the lock
 * straight to the first waiter that can still be woken, so no task barges in
 * between and a cancelled waiter is never made owner. */
#include "sync/wait.h"

void corio_lock_init(corio_lock *l) {
    corio__list_init(&l->waiters);
    l->owner = NULL;
}

int corio_lock_try_acquire(corio_lock *l) {
    corio_task *t = corio__task_require("corio_lock_try_acquire");
    if (!t)
        return CORIO_ENOTASK;
    if (l->owner || !corio__list_empty(&l->waiters))
        return CORIO_EBUSY;
    l->owner = t;
    return 0;
}

int corio_lock_acquire(corio_lock *l) {
    corio_task *t = corio__task_require("corio_lock_acquire");
    if (!t)
        return CORIO_ENOTASK;
    if (l->owner == t) {
        corio__report("task '%s' called corio_lock_acquire on a lock it holds", t->name);
        return CORIO_EBUSY;
    }
    int rc = corio__await_check(t);
    if (rc)
        return rc;
    if (!l->owner && corio__list_empty(&l->waiters)) {
        l->owner = t;
        return 0;
    }
    corio__waiter w;
    return corio__wait_in(t, &l->waiters, &w, "lock");
}

int corio_lock_release(corio_lock *l) {
    corio_task *t = corio__current();
    if (!t || l->owner != t) {
        corio__report("corio_lock_release by %s '%s', which does not hold the lock",
                      t ? "task" : "code outside a task", t ? t->name : "-");
        return CORIO_EPERM;
    }
    corio__waiter *next = corio__wake_first(&l->waiters, 0);
    l->owner = next ? next->task : NULL;
    return 0;
}

bool corio_lock_locked(const corio_lock *l) {
    return l->owner != NULL;
}
