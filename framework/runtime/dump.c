/* SPDX-License-Identifier: MIT */
/* Live task listing (like `python -m asyncio pstree`), for SIGUSR1 and for
 * debugging. */
#include <stdio.h>
#include <unistd.h>

#include "runtime/internal.h"

static const char *state_name(uint8_t state) {
    switch (state) {
    case CORIO__READY:
        return "ready";
    case CORIO__RUNNING:
        return "running";
    case CORIO__PARKED:
        return "waiting";
    case CORIO__DONE:
        return "done";
    }
    return "?";
}

int corio_tasks_dump(int fd) {
    corio_loop *L = corio__tls_loop;
    if (!L)
        return 0;
    uint64_t now = corio__now(L);
    int count = 0;
    dprintf(fd, "corio: %zu live task(s) on pid %d\n", L->live_tasks, (int)getpid());
    for (corio__link *n = L->tasks.next; n != &L->tasks; n = n->next) {
        corio_task *t = corio__container_of(n, corio_task, all_link);
        dprintf(fd, "  #%llu %-24s %-8s", (unsigned long long)t->id, t->name, state_name(t->state));
        if (t->state == CORIO__PARKED && t->waiting_on)
            dprintf(fd, " on %s for %llu ms", t->waiting_on,
                    (unsigned long long)(now - t->parked_since));
        else if (t->state == CORIO__READY && t->waiting_on)
            dprintf(fd, " after %s", t->waiting_on); /* a yield, a failed await: a spinner shows */
        for (corio_scope *s = t->scopes; s && s != &t->root; s = s->outer)
            dprintf(fd, " in %s", s->res.type && s->res.type->name ? s->res.type->name : "scope");
        if (t->root.cancelled)
            dprintf(fd, " (cancelled: %s)", corio_cancel_reason_name(t->cancel_reason));
        dprintf(fd, "\n");
        count++;
    }
    return count;
}
