/* SPDX-License-Identifier: MIT */
/* corio_http_app_main's contract: it takes the router on every path (also
 * when it refuses its arguments, which ASan and valgrind would show as a
 * leak otherwise), refuses a NULL app or router and an app that brings its
 * own handler or arg with exit code 2, and runs the runner's command line
 * (--help: 0 without serving). */
#include <unistd.h>

#include "corio_test.h"

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "hi");
}

static corio_router *a_router(void) {
    corio_router *r = NULL;
    assert_int_equal(corio_router_new(&r), 0);
    assert_int_equal(corio_router_add(r, "GET", "/", hello, NULL), 0);
    return r;
}

/* Runs corio_http_app_main with stderr sent to /dev/null (its refusals print). */
static int app_main_quiet(const corio_app *app, corio_router *r, int argc, char **argv) {
    fflush(stderr);
    int saved = dup(2);
    FILE *null = fopen("/dev/null", "w");
    assert_non_null(null);
    dup2(fileno(null), 2);
    int rc = corio_http_app_main(app, r, NULL, argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    fclose(null);
    return rc;
}

static void test_http_app_main_refuses_bad_arguments_and_takes_the_router(void **state) {
    (void)state;
    char *argv[] = {"t", NULL};
    corio_app plain = {.name = "t"};
    assert_int_equal(app_main_quiet(&plain, NULL, 1, argv), 2);
    assert_int_equal(app_main_quiet(NULL, a_router(), 1, argv), 2);
    corio_app with_handler = {.name = "t", .handler = corio_http_serve};
    assert_int_equal(app_main_quiet(&with_handler, a_router(), 1, argv), 2);
    int x;
    corio_app with_arg = {.name = "t", .arg = &x};
    assert_int_equal(app_main_quiet(&with_arg, a_router(), 1, argv), 2);
}

static void test_http_app_main_runs_the_command_line(void **state) {
    (void)state;
    char *help[] = {"t", "--help", NULL};
    corio_app app = {.name = "t"};
    fflush(stdout);
    int saved = dup(1);
    FILE *null = fopen("/dev/null", "w");
    assert_non_null(null);
    dup2(fileno(null), 1);
    int rc = corio_http_app_main(&app, a_router(), NULL, 2, help);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    fclose(null);
    assert_int_equal(rc, 0);
    char *bad[] = {"t", "--no-such-flag", NULL};
    assert_int_equal(app_main_quiet(&app, a_router(), 2, bad), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_app_main_refuses_bad_arguments_and_takes_the_router),
        cmocka_unit_test(test_http_app_main_runs_the_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
