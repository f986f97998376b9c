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

/* Whether the tests run under valgrind (set by `make valgrind`); tests that
 * cannot work there (a deliberate stack overflow) skip themselves. */
static inline int corio_test_under_valgrind(void) {
    const char *v = getenv("CORIO_TEST_UNDER_VALGRIND");
    return v && *v && *v != '0';
}

#endif
