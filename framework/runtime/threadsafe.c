/* SPDX-License-Identifier: MIT */
/* Thread-safe completion (corio_future_*_threadsafe) and its lifetime against
 * the loop's.
 *
 * A future's memory belongs to its references, not to its loop: a foreign
 * thread holding one may outlive corio_run(), and then f->loop points at
 * freed memory (the mutex and the uv_async_t it used to touch).  So this path
 * never reaches a loop through f->loop.  Every open loop is in one
 * process-wide registry under an id that is never reused (an address is: a
 * later loop on the same thread often gets the old one's), and a future
 * records its loop's id.  A thread-safe completion looks the id up with the
 * registry's mutex held and, if the loop is there, queues the future and
 * signals the loop's async handle before letting go: the loop leaves the
 * registry (taking the same mutex) before it closes that handle, so the
 * signal cannot meet a closing handle.  If the loop is gone the call returns
 * CORIO_ECLOSED and touches nothing but the registry.
 *
 * When the loop closes (corio__ts_close, before its handles close) it leaves
 * the registry, then completes what was queued before that and runs their
 * done callbacks: a completion that returned 0 is always delivered.
 *
 * The registry mutex is taken once per thread-safe completion and twice per
 * corio_run; nothing on a loop's own hot path takes it.
 */
#include <pthread.h>

#include "runtime/internal.h"

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static corio_loop *registry_head; /* open loops, linked by ts_open_next */
static uint64_t registry_last_id;

void corio__ts_open(corio_loop *L) {
    uv_mutex_init(&L->ts_mutex);
    L->ts_head = NULL;
    pthread_mutex_lock(&registry_mutex);
    L->ts_id = ++registry_last_id;
    L->ts_open_next = registry_head;
    registry_head = L;
    pthread_mutex_unlock(&registry_mutex);
}

void corio__ts_close(corio_loop *L) {
    pthread_mutex_lock(&registry_mutex);
    for (corio_loop **p = &registry_head; *p; p = &(*p)->ts_open_next) {
        if (*p == L) {
            *p = L->ts_open_next;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mutex);
    /* From here no thread can queue on L; deliver what it queued before. */
    corio__run_threadsafe(L);
    corio__run_soon(L);
    uv_mutex_destroy(&L->ts_mutex);
}

/* The open loop with this id, or NULL; call with registry_mutex held. */
static corio_loop *registry_find(uint64_t id) {
    for (corio_loop *L = registry_head; L; L = L->ts_open_next)
        if (L->ts_id == id)
            return L;
    return NULL;
}

int corio_future_complete_threadsafe(corio_future *f, int result, void *value) {
    if (!f || f->is_task)
        return CORIO_EINVAL;
    pthread_mutex_lock(&registry_mutex);
    corio_loop *L = registry_find(f->ts_loop_id);
    if (!L) {
        pthread_mutex_unlock(&registry_mutex);
        return CORIO_ECLOSED;
    }
    if (atomic_exchange(&f->ts_claimed, true)) {
        pthread_mutex_unlock(&registry_mutex);
        return CORIO_EALREADY;
    }
    corio_future_retain(f); /* dropped by corio__run_threadsafe */
    f->ts_result = result;
    f->ts_value = value;
    uv_mutex_lock(&L->ts_mutex);
    f->ts_next = L->ts_head;
    L->ts_head = f;
    uv_mutex_unlock(&L->ts_mutex);
    uv_async_send(&L->async);
    pthread_mutex_unlock(&registry_mutex);
    return 0;
}

int corio_future_resolve_threadsafe(corio_future *f, void *value) {
    return corio_future_complete_threadsafe(f, 0, value);
}

int corio_future_fail_threadsafe(corio_future *f, int err) {
    if (err >= 0)
        return CORIO_EINVAL;
    return corio_future_complete_threadsafe(f, err, NULL);
}

void corio__run_threadsafe(corio_loop *L) {
    uv_mutex_lock(&L->ts_mutex);
    corio_future *list = L->ts_head;
    L->ts_head = NULL;
    uv_mutex_unlock(&L->ts_mutex);
    /* The list is newest first; reverse it so completions keep their order. */
    corio_future *ordered = NULL;
    while (list) {
        corio_future *next = list->ts_next;
        list->ts_next = ordered;
        ordered = list;
        list = next;
    }
    while (ordered) {
        corio_future *f = ordered;
        ordered = f->ts_next;
        f->ts_next = NULL;
        corio__future_finish(f, f->ts_result, f->ts_value);
        corio_future_release(f);
    }
}
