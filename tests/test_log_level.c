/* SPDX-License-Identifier: MIT */
/* The process-wide log level (framework/base/log.c, corio/log.h): what
 * corio_log_get_level reads back, and that it decides which lines reach
 * stderr.  (test_log.c covers escaping and corio_log_peer.) */
#include "corio_test.h"

#include <string.h>
#include <unistd.h>

/* stderr redirected into a pipe while a test logs. */
typedef struct capture {
    int saved, pipe_r;
    char text[4096];
} capture;

static void capture_begin(capture *c) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    close(fds[1]);
    c->pipe_r = fds[0];
}

/* Restores stderr and returns what was written (a few short lines: far
 * below the pipe's buffer, so no write blocked). */
static const char *capture_end(capture *c) {
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO); /* closes the pipe's last write end */
    close(c->saved);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof c->text - 1 &&
           (n = read(c->pipe_r, c->text + len, sizeof c->text - 1 - len)) > 0)
        len += (size_t)n;
    c->text[len] = '\0';
    close(c->pipe_r);
    return c->text;
}

static void test_log_level_defaults_to_info_and_reads_back_what_was_set(void **state) {
    (void)state;
    assert_int_equal(corio_log_get_level(), CORIO_LOG_INFO); /* the documented default */
    const corio_log_level levels[] = {CORIO_LOG_DEBUG, CORIO_LOG_ERROR, CORIO_LOG_WARN,
                                      CORIO_LOG_INFO};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        corio_log_set_level(levels[i]);
        assert_int_equal(corio_log_get_level(), levels[i]);
    }
}

/* At each level, exactly the lines at it or more severe are written. */
static void test_log_level_filters_lines(void **state) {
    (void)state;
    static const char *const words[] = {"err-line", "warn-line", "info-line", "debug-line"};
    for (int level = CORIO_LOG_ERROR; level <= CORIO_LOG_DEBUG; level++) {
        corio_log_set_level((corio_log_level)level);
        assert_int_equal(corio_log_get_level(), level);
        capture c;
        capture_begin(&c);
        for (int at = CORIO_LOG_ERROR; at <= CORIO_LOG_DEBUG; at++)
            corio_log((corio_log_level)at, "%s", words[at]);
        const char *out = capture_end(&c);
        for (int at = CORIO_LOG_ERROR; at <= CORIO_LOG_DEBUG; at++) {
            bool written = strstr(out, words[at]) != NULL;
            if (written != (at <= level))
                fail_msg("level %d: '%s' %s:\n%s", level, words[at],
                         written ? "written" : "dropped", out);
        }
    }
    corio_log_set_level(CORIO_LOG_INFO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level_defaults_to_info_and_reads_back_what_was_set),
        cmocka_unit_test(test_log_level_filters_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
