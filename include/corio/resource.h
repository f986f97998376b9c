/* SPDX-License-Identifier: MIT */
/* corio/resource.h — the types behind scopes (scope.h): a resource type
 * (its enter and exit hooks), a resource value, and the frame of an entered
 * scope, which a task keeps on a stack.  The runtime reads those frames
 * (deadline, cancellation, shield) at every await and names them in task
 * dumps; CORIO_WITH and the resources that come with corio are in scope.h.
 */
#ifndef CORIO_RESOURCE_H
#define CORIO_RESOURCE_H

#include <stdint.h>

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
    /* May await; `how` as scope.h describes (0: a normal end, else a
     * CORIO_E* code: cancelled, timed out or failed).  Errors of its own are
     * reported by the object itself (there is nobody to return them to). */
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
    int error;         /* corio_scope_fail() on this scope */
    int passed;        /* a failure passed in by an inner scope's return/goto */
    uint8_t entered, cancelled, shield;
    uint8_t left; /* how control left the body: CORIO__LEFT_*, set by the macro */
} corio_scope;

/* corio_scope.left: 0 until the body is left; a `return` or `goto` leaves it
 * 0; a `break` runs only the outer loop's step (BREAK); falling off the end
 * or `continue` runs both steps (NORMAL | BREAK). */
#define CORIO__LEFT_BREAK 2
#define CORIO__LEFT_NORMAL 1

#ifdef __cplusplus
}
#endif
#endif /* CORIO_RESOURCE_H */
