/* SPDX-License-Identifier: MIT */
/* Bounded queue (asyncio.Queue with maxsize): a ring buffer plus two waiter
 * queues.  An item goes straight to a waiting getter when there is one; a
 * waiting putter's item moves into the buffer as soon as room appears.  Both
 * hand-offs happen only if the waiter can still be woken, so an item is never
 * given to a getter whose wait already failed, and a putter whose wait failed
 * never has its item queued. */
#include <stdlib.h>

#include "sync/wait.h"

struct corio_queue {
    void **buf;
    size_t cap, head, count;
    corio__link getters, putters;
    bool closed;
};

int corio_queue_new(corio_queue **out, size_t capacity) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    if (capacity == 0 || capacity > SIZE_MAX / sizeof(void *))
        return CORIO_EINVAL;
    corio_queue *q = malloc(sizeof *q);
    if (!q)
        return CORIO_ENOMEM;
    q->buf = malloc(capacity * sizeof *q->buf);
    if (!q->buf) {
        free(q);
        return CORIO_ENOMEM;
    }
    q->cap = capacity;
    q->head = q->count = 0;
    corio__list_init(&q->getters);
    corio__list_init(&q->putters);
    q->closed = false;
    *out = q;
    return 0;
}

int corio_queue_free(corio_queue *q) {
    if (!q)
        return 0;
    if (!corio__list_empty(&q->getters) || !corio__list_empty(&q->putters)) {
        corio__report("corio_queue_free on a queue that tasks still wait on (close it first)");
        return CORIO_EBUSY;
    }
    free(q->buf);
    free(q);
    return 0;
}

static void push(corio_queue *q, void *item) {
    q->buf[(q->head + q->count) % q->cap] = item;
    q->count++;
}

static void *pop(corio_queue *q) {
    void *item = q->buf[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return item;
}

int corio_queue_try_put(corio_queue *q, void *item) {
    if (q->closed)
        return CORIO_ECLOSED;
    corio__waiter *g = corio__wake_first(&q->getters, 0);
    if (g) {
        g->item = item;
        return 0;
    }
    if (q->count == q->cap)
        return CORIO_EAGAIN;
    push(q, item);
    return 0;
}

int corio_queue_put(corio_queue *q, void *item) {
    int rc;
    corio_task *t = corio__await_begin("corio_queue_put", &rc);
    if (!t)
        return rc;
    rc = corio_queue_try_put(q, item);
    if (rc != CORIO_EAGAIN)
        return rc;
    corio__waiter w;
    w.item = item;
    return corio__wait_in(t, &q->putters, &w, "queue put");
}

int corio_queue_try_get(corio_queue *q, void **item) {
    if (q->count == 0)
        return q->closed ? CORIO_ECLOSED : CORIO_EAGAIN;
    *item = pop(q);
    /* Room appeared: the first putter that can still be woken gets its item
     * in. */
    corio__waiter *p = corio__wake_first(&q->putters, 0);
    if (p)
        push(q, p->item);
    return 0;
}

int corio_queue_get(corio_queue *q, void **item) {
    int rc;
    corio_task *t = corio__await_begin("corio_queue_get", &rc);
    if (!t)
        return rc;
    rc = corio_queue_try_get(q, item);
    if (rc != CORIO_EAGAIN)
        return rc;
    corio__waiter w;
    w.item = NULL;
    rc = corio__wait_in(t, &q->getters, &w, "queue get");
    if (rc == 0)
        *item = w.item;
    return rc;
}

void corio_queue_close(corio_queue *q) {
    if (q->closed)
        return;
    q->closed = true;
    corio__wake_all(&q->putters, CORIO_ECLOSED);
    corio__wake_all(&q->getters, CORIO_ECLOSED);
}

size_t corio_queue_size(const corio_queue *q) {
    return q->count;
}

size_t corio_queue_capacity(const corio_queue *q) {
    return q->cap;
}

bool corio_queue_closed(const corio_queue *q) {
    return q->closed;
}
