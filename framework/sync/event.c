/* SPDX-License-Identifier: MIT */
/* Event (asyncio.Event): set wakes every waiter; waiters woken by a set
 * return 0 even if the event is cleared before they run. */
#include "sync/wait.h"

void corio_event_init(corio_event *e) {
    corio__list_init(&e->waiters);
    e->set = false;
}

void corio_event_set(corio_event *e) {
    e->set = true;
    corio__wake_all(&e->waiters, 0);
}

void corio_event_clear(corio_event *e) {
    e->set = false;
}

bool corio_event_is_set(const corio_event *e) {
    return e->set;
}

int corio_event_wait(corio_event *e) {
    int rc;
    corio_task *t = corio__await_begin("corio_event_wait", &rc);
    if (!t)
        return rc;
    if (e->set)
        return 0;
    corio__waiter w;
    return corio__wait_in(t, &e->waiters, &w, "event");
}
