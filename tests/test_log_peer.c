/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
/* Leveled logging (framework/base/log.c): stderr is a pipe the test reads
 * back.  Control characters never reach a line raw, corio_log_escape makes
 * a quoted field safe and cuts only at whole escapes, and corio_log_peer is
 * silent above the level and rate-limited with a count of what it dropped. */
#include "corio_test.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <corio/log.h>

#include "stderr_capture.h"

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void test_log_line_never_carries_control_characters(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_INFO);
    capture c;
    capture_begin(&c);
    corio_log(CORIO_LOG_INFO, "path %s end", "/a\nFORGED\x1b[31m\x7f\r\tz");
    char *out = capture_end(&c);
    assert_int_equal(count(out, "\n"), 1); /* one line, its own newline */
    assert_non_null(strstr(out, "path /a\\x0aFORGED\\x1b[31m\\x7f\\x0d\\x09z end\n"));
    free(out);
}

static void test_log_escape_quotes_and_cuts_at_whole_escapes(void **state) {
    (void)state;
    char buf[64];
    assert_int_equal(corio_log_escape(buf, sizeof buf, "a\"b\\c\x01\xff", 7), 19);
    assert_string_equal(buf, "a\\x22b\\x5cc\\x01\\xff");
    assert_int_equal(corio_log_escape(buf, 6, "ab\ncd", 5), 2); /* "\x0a" would not fit */
    assert_string_equal(buf, "ab");
    assert_int_equal(corio_log_escape(buf, 1, "abc", 3), 0);
    assert_string_equal(buf, "");
}

static void test_peer_lines_silent_above_the_level(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_ERROR);
    capture c;
    capture_begin(&c);
    for (int i = 0; i < 100; i++)
        corio_log_peer(CORIO_LOG_WARN, "tls: peer %d misbehaved", i);
    char *out = capture_end(&c);
    assert_string_equal(out, "");
    free(out);
    corio_log_set_level(CORIO_LOG_INFO);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The sum of N over the "N similar messages suppressed" lines in out. */
static unsigned long suppressed_sum(const char *out) {
    unsigned long sum = 0;
    for (const char *p = out; (p = strstr(p, " similar messages suppressed")) != NULL; p++) {
        const char *d = p;
        while (d > out && d[-1] >= '0' && d[-1] <= '9')
            d--;
        sum += strtoul(d, NULL, 10);
    }
    return sum;
}

static void test_peer_lines_rate_limited_and_counted(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_INFO);
    capture c;
    capture_begin(&c);
    double t0 = now_s();
    const unsigned long flood = 5000;
    for (unsigned long i = 0; i < flood; i++)
        corio_log_peer(CORIO_LOG_WARN, "flood %lu", i);
    double elapsed = now_s() - t0;
    char *out = capture_end(&c);
    unsigned long logged = (unsigned long)count(out, "flood ");
    unsigned long noted = suppressed_sum(out);
    free(out);
    /* At most the burst plus the refill over the time the flood took. */
    unsigned long bound =
        CORIO_LOG_PEER_BURST + CORIO_LOG_PEER_RATE * ((unsigned long)elapsed + 1) + 1;
    if (logged > bound)
        fail_msg("%lu lines for %lu calls in %.3f s (bound %lu)", logged, flood, elapsed, bound);
    /* The next line that gets through (a token comes back every 1000 / RATE
     * ms) is preceded by the count of all those that did not. */
    unsigned long attempts = 0;
    double deadline = now_s() + 10;
    for (;;) {
        capture_begin(&c);
        corio_log_peer(CORIO_LOG_WARN, "after the flood");
        attempts++;
        out = capture_end(&c);
        if (strstr(out, "after the flood")) {
            noted += suppressed_sum(out);
            free(out);
            break;
        }
        assert_string_equal(out, "");
        free(out);
        assert_true(now_s() < deadline);
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
    /* Every call was written or counted, exactly once. */
    assert_int_equal(logged + 1 + noted, flood + attempts);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_line_never_carries_control_characters),
        cmocka_unit_test(test_log_escape_quotes_and_cuts_at_whole_escapes),
        cmocka_unit_test(test_peer_lines_silent_above_the_level),
        cmocka_unit_test(test_peer_lines_rate_limited_and_counted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
