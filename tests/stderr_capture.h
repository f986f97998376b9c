/* SPDX-License-Identifier: MIT */
/* Captures what a test's code writes to stderr (the log's lines): stderr
 * goes to a pipe of 1 MiB (so no write of a test blocks) between
 * capture_begin and capture_end.  For cmocka tests: include after
 * corio_test.h (or cmocka.h), in a file that defines _GNU_SOURCE before
 * any include. */
#ifndef CORIO_TEST_STDERR_CAPTURE_H
#define CORIO_TEST_STDERR_CAPTURE_H

#include <fcntl.h> /* F_SETPIPE_SZ: the test file defines _GNU_SOURCE first */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct capture {
    int saved, rd;
} capture;

static void capture_begin(capture *c) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    fcntl(p[1], F_SETPIPE_SZ, 1 << 20);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    close(p[1]);
    c->rd = p[0];
}

/* Restores stderr; returns what was written (malloc'd, NUL-terminated). */
static char *capture_end(capture *c) {
    fflush(stderr);
    assert_int_equal(dup2(c->saved, STDERR_FILENO), STDERR_FILENO);
    close(c->saved);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t n = read(c->rd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(c->rd);
    buf[len] = '\0';
    return buf;
}

#endif
