/* SPDX-License-Identifier: MIT */
/* The resources that come with corio: lock, semaphore, timeout, shield. */
#include "corio/scope.h"
#include "runtime/internal.h"

static int lock_enter(void *self, uint64_t arg) {
    (void)arg;
    return corio_lock_acquire(self);
}

static void lock_exit(void *self, int how) {
    (void)how;
    corio_lock_release(self);
}

static const corio_resource_type lock_type = {
    .name = "lock", .enter = lock_enter, .exit = lock_exit, .flags = CORIO_RESOURCE_UNSHIELDED};

corio_resource corio_lock_scope(corio_lock *l) {
    return (corio_resource){.type = &lock_type, .self = l, .arg = 0};
}

static int sem_enter(void *self, uint64_t arg) {
    (void)arg;
    return corio_semaphore_acquire(self);
}

static void sem_exit(void *self, int how) {
    (void)how;
    corio_semaphore_release(self);
}

static const corio_resource_type semaphore_type = {
    .name = "semaphore", .enter = sem_enter, .exit = sem_exit, .flags = CORIO_RESOURCE_UNSHIELDED};

corio_resource corio_semaphore_scope(corio_semaphore *s) {
    return (corio_resource){.type = &semaphore_type, .self = s, .arg = 0};
}

/* Timeout and shield act on the scope itself, which scope.c pushed before
 * calling enter: it is the task's innermost scope. */
static int timeout_enter(void *self, uint64_t ms) {
    (void)self;
    corio_task *t = corio__current();
    uint64_t now = corio__now_fresh(t->fut.loop);
    t->scopes->deadline = ms >= CORIO__NO_DEADLINE - now ? CORIO__NO_DEADLINE - 1 : now + ms;
    return 0;
}

static const corio_resource_type timeout_type = {
    .name = "timeout", .enter = timeout_enter, .flags = CORIO_RESOURCE_UNSHIELDED};

corio_resource corio_timeout_scope(uint64_t ms) {
    return (corio_resource){.type = &timeout_type, .self = NULL, .arg = ms};
}

static int shield_enter(void *self, uint64_t arg) {
    (void)self;
    (void)arg;
    corio__current()->scopes->shield = 1;
    return 0;
}

static const corio_resource_type shield_type = {
    .name = "shield", .enter = shield_enter, .flags = CORIO_RESOURCE_UNSHIELDED};

corio_resource corio_shield_scope(void) {
    return (corio_resource){.type = &shield_type, .self = NULL, .arg = 0};
}
