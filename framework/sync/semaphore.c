/* SPDX-License-Identifier: MIT */
/* Semaphore (asyncio.Semaphore): permits handed straight to the first waiter
 * that can still be woken, FIFO, no barging. */
#include "sync/wait.h"

void corio_semaphore_init(corio_semaphore *s, size_t value) {
    corio__list_init(&s->waiters);
    s->value = value;
}

int corio_semaphore_try_acquire(corio_semaphore *s) {
    if (s->value == 0 || !corio__list_empty(&s->waiters))
        return CORIO_EBUSY;
    s->value--;
    return 0;
}

int corio_semaphore_acquire(corio_semaphore *s) {
    int rc;
    corio_task *t = corio__await_begin("corio_semaphore_acquire", &rc);
    if (!t)
        return rc;
    if (corio_semaphore_try_acquire(s) == 0)
        return 0;
    corio__waiter w;
    return corio__wait_in(t, &s->waiters, &w, "semaphore");
}

void corio_semaphore_release(corio_semaphore *s) {
    if (!corio__wake_first(&s->waiters, 0))
        s->value++;
}

size_t corio_semaphore_value(const corio_semaphore *s) {
    return s->value;
}
