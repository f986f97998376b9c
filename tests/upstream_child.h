/* SPDX-License-Identifier: MIT */
/* A Python upstream as a child process, for the HTTP client tests
 * (http_client_helpers.h runs tests/upstream.py, test_http_client_stream.c
 * tests/upstream_stream.py): python3 runs the script found beside this
 * header (__FILE__) with its stdin and stdout on pipes; the first line it
 * prints (its ports) is read back; closing its stdin stops it.
 * Header-only and static: every tests/test_*.c is a program of its own.
 */
#ifndef CORIO_UPSTREAM_CHILD_H
#define CORIO_UPSTREAM_CHILD_H

#include "corio_test.h"

#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct upstream_child {
    pid_t pid; /* 0: not running */
    int in;    /* its stdin: closing it stops it */
} upstream_child;

/* Starts `python3 <this directory>/<script>`; the first line it prints
 * into line (NUL-terminated, without its '\n'; at most size - 1 bytes). */
static inline void upstream_child_start(upstream_child *c, const char *script, char *line,
                                        size_t size) {
    char path[4096];
    const char *file = __FILE__;
    const char *slash = strrchr(file, '/');
    snprintf(path, sizeof path, "%.*s%s", slash ? (int)(slash - file + 1) : 0, file, script);
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execlp("python3", "python3", path, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    size_t n = 0;
    while (n < size - 1) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
}

/* Closes its stdin and waits for it to exit; nothing when not running. */
static inline void upstream_child_stop(upstream_child *c) {
    if (!c->pid)
        return;
    close(c->in);
    int status;
    assert_int_equal(waitpid(c->pid, &status, 0), c->pid);
    c->pid = 0;
}

#endif
