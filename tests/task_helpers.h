/* SPDX-License-Identifier: MIT */
/* Helpers shared by the task and loop tests (test_task.c, test_loop.c,
 * test_task_cancel.c): spawn and join, an ordered log written by tasks,
 * a monotonic clock, and stderr captured while a test provokes reports.
 * Header-only and static: every tests/test_*.c is a program of its own.
 * Needs _GNU_SOURCE (memfd_create) defined before the first include.
 */
#ifndef CORIO_TASK_HELPERS_H
#define CORIO_TASK_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "corio_test.h"

#define KiB ((size_t)1024)
#define ARG(i) ((void *)(intptr_t)(i))

/* Sends this process's stderr into a memfd while a test provokes reports. */
typedef struct capture {
    int saved, fd;
    char text[8192];
} capture;

static inline void capture_begin(capture *c) {
    fflush(stderr);
    c->fd = memfd_create("corio-test-stderr", 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->fd >= 0 && c->saved >= 0);
    dup2(c->fd, STDERR_FILENO);
}

static inline const char *capture_end(capture *c) {
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    ssize_t n = pread(c->fd, c->text, sizeof c->text - 1, 0);
    c->text[n > 0 ? n : 0] = '\0';
    close(c->fd);
    return c->text;
}

static inline int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static inline uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Spawns a task and returns the caller's reference (NULL on failure). */
static inline corio_task *spawn(const char *name, corio_task_fn fn, void *arg) {
    corio_task *t = NULL;
    corio_spawn(&t, name, fn, arg);
    return t;
}

/* Awaits t and drops the reference; CORIO_ENOMEM if spawning had failed. */
static inline int join(corio_task *t) {
    if (!t)
        return CORIO_ENOMEM;
    int rc = corio_await(t);
    corio_task_release(t);
    return rc;
}

static inline int return_arg(void *arg) {
    return (int)(intptr_t)arg;
}

/* An ordered log written by tasks. */
typedef struct order_log {
    int items[128], len;
} order_log;

static inline void log_put(order_log *l, int v) {
    if (l->len < (int)(sizeof l->items / sizeof l->items[0]))
        l->items[l->len++] = v;
}

#endif
