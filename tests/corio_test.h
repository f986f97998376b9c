/* SPDX-License-Identifier: MIT */
/* Shared helpers for corio's cmocka tests.
 *
 * Every test body runs inside corio_run() through corio_test_run(), whose
 * return value is checked: corio_run() returns CORIO_EBUSY when a task would
 * not end or a libuv handle was left open, so each test's teardown asserts
 * that the loop closed cleanly.
 */
#ifndef CORIO_TEST_H
#define CORIO_TEST_H

#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <corio/corio.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs fn(arg) as the main task of a fresh loop and asserts that corio_run
 * returned `expect` (normally 0: the main task's own result), which also
 * proves the loop closed with no handle left and no task stuck. */
#define corio_test_run_expect(fn, arg, expect)                                                     \
    do {                                                                                           \
        int corio_test_rc_ = corio_run((fn), (arg));                                               \
        assert_int_equal(corio_test_rc_, (expect));                                                \
    } while (0)

#define corio_test_run(fn, arg) corio_test_run_expect((fn), (arg), 0)

/* Inside a task: asserts an expression's CORIO_E* result, printing names. */
#define assert_corio(expr, expect)                                                                 \
    do {                                                                                           \
        int corio_test_got_ = (expr);                                                              \
        if (corio_test_got_ != (expect))                                                           \
            fail_msg("%s: got %s (%d), expected %s (%d)", #expr, corio_err_name(corio_test_got_),  \
                     corio_test_got_, corio_err_name(expect), (int)(expect));                      \
    } while (0)

/* Skipped tests are visible.  cmocka's skip() prints "[  SKIPPED ]" but its
 * group runner counts only failures, so a program whose every test skipped
 * would exit 0, indistinguishable from a pass.  Here skip() also counts, and
 * cmocka_run_group_tests() (redefined below, so every test program gets it)
 * returns the code named by CORIO_TEST_SKIP_CODE when nothing failed and
 * something skipped.  tests/CMakeLists.txt sets that variable to 77 along
 * with ctest's SKIP_RETURN_CODE 77, so ctest reports the program as Skipped
 * (and `make test` lists it); run by hand or under `make valgrind` (no
 * variable) the program exits 0 after printing its skips. */
static int corio_test_skipped;

static inline void corio_test_skip_at(const char *file, int line) {
    corio_test_skipped++;
    _skip(file, line); /* does not return: cmocka ends the test */
}

#undef skip
#define skip() corio_test_skip_at(__FILE__, __LINE__)

static inline int corio_test_group_result(int failed) {
    const char *code = getenv("CORIO_TEST_SKIP_CODE");
    if (failed != 0) /* cmocka's count of failures; as an exit status 256 would be 0, 77 a skip */
        return 1;
    if (corio_test_skipped == 0)
        return 0;
    fprintf(stderr, "%d test(s) skipped\n", corio_test_skipped);
    return code && *code ? atoi(code) : 0;
}

#undef cmocka_run_group_tests
#define cmocka_run_group_tests(tests, setup, teardown)                                             \
    corio_test_group_result(_cmocka_run_group_tests(                                               \
        #tests, (tests), sizeof(tests) / sizeof((tests)[0]), (setup), (teardown)))

/* Whether the tests run under valgrind (set by `make valgrind`); tests that
 * cannot work there (a deliberate stack overflow) skip themselves. */
static inline int corio_test_under_valgrind(void) {
    const char *v = getenv("CORIO_TEST_UNDER_VALGRIND");
    return v && *v && *v != '0';
}

/* Checks inside tasks, without cmocka's longjmp out of a coroutine stack:
 * SOFT(cond) remembers the first failing condition; corio_test_run_checked
 * runs fn as the main task, asserts the loop closed cleanly with result 0,
 * then fails the test with the remembered condition, if any. */
static char corio_test_soft_failure[256];

#define SOFT(cond)                                                                                 \
    do {                                                                                           \
        if (!(cond) && !corio_test_soft_failure[0])                                                \
            snprintf(corio_test_soft_failure, sizeof corio_test_soft_failure, "line %d: %s",       \
                     __LINE__, #cond);                                                             \
    } while (0)

static inline void corio_test_run_checked(corio_task_fn fn, void *arg) {
    corio_test_soft_failure[0] = '\0';
    corio_test_run(fn, arg);
    if (corio_test_soft_failure[0])
        fail_msg("in-task check failed: %s", corio_test_soft_failure);
}

/* Spawns a task the caller joins with corio_test_join (SOFT-checked). */
static inline corio_task *corio_test_spawn(const char *name, corio_task_fn fn, void *arg) {
    corio_task *t = NULL;
    SOFT(corio_spawn(&t, name, fn, arg) == 0);
    return t;
}

/* Awaits t, drops the reference, returns its result. */
static inline int corio_test_join(corio_task *t) {
    if (!t)
        return CORIO_EINVAL;
    int rc = corio_await(t);
    SOFT(rc == corio_future_result(corio_task_future(t)));
    corio_task_release(t);
    return rc;
}

#endif
