/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
/* Failed TLS handshakes in the log (framework/net/tls.c, hs_log): a client
 * speaking plain HTTP to a TLS server on 127.0.0.1, 200 times, writes the
 * first HS_LOG_FULL failures in full and one "N similar messages
 * suppressed" line for the rest, with the right N and the last peer and
 * reason; the next interval starts afresh; the loop timer writes the count
 * without a further failure; at --log-level error nothing is written.
 *
 * Deterministic: the interval is a test hook, set to an hour where a count
 * must not be split, and corio__tls_hs_log_flush ends it when the test says
 * (as the timer would).  Each client waits for the server's close, so the
 * server has logged its failure before the next client connects. */
#include "tls_helpers.h"

#include <regex.h>

#include <corio/log.h>

/* framework/net/tls.c's test hooks. */
extern uint64_t corio__tls_hs_log_interval_ms;
void corio__tls_hs_log_flush(void);

#define FULL 5 /* HS_LOG_FULL */
#define HOUR_MS (3600 * 1000)

#include "stderr_capture.h"

/* What the log says about handshakes: lines written in full, summary lines
 * and the sum of their counts, and the last summary line. */
typedef struct tally {
    unsigned full, summaries, other;
    unsigned long counted;
    char last_summary[1024];
} tally;

static tally count_lines(const char *out) {
    tally t = {0};
    regex_t full, sum;
    assert_int_equal(
        regcomp(&full, " WARN  \\[[0-9]+\\] tls: handshake with 127\\.0\\.0\\.1:[0-9]+ failed: ",
                REG_EXTENDED | REG_NOSUB),
        0);
    assert_int_equal(
        regcomp(&sum,
                " WARN  \\[[0-9]+\\] tls: handshake failures: ([0-9]+) similar messages "
                "suppressed in the last [0-9]+ s \\(the last with 127\\.0\\.0\\.1:[0-9]+: .+\\)$",
                REG_EXTENDED),
        0);
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        regmatch_t m[2];
        if (regexec(&full, line, 0, NULL, 0) == 0) {
            t.full++;
        } else if (regexec(&sum, line, 2, m, 0) == 0) {
            t.summaries++;
            t.counted += strtoul(line + m[1].rm_so, NULL, 10);
            snprintf(t.last_summary, sizeof t.last_summary, "%s", line);
        } else {
            t.other++;
        }
        p += n + (nl != NULL);
    }
    regfree(&full);
    regfree(&sum);
    return t;
}

/* n clients in turn send plain HTTP to the TLS port and wait for the close. */
static int fail_handshakes(int port, int n) {
    for (int i = 0; i < n; i++) {
        corio_stream *s;
        int rc = corio_connect(&s, "127.0.0.1", (uint16_t)port, 5000);
        if (rc)
            return rc;
        rc = corio_stream_write(s, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
        char buf[256];
        while (rc >= 0)
            rc = corio_stream_read(s, buf, sizeof buf);
        corio_stream_close(s);
        if (rc != CORIO_EOF && rc != CORIO_ECONNRESET && rc != CORIO_EPIPE)
            return rc;
    }
    return 0;
}

typedef struct flood {
    int n;             /* failed handshakes */
    uint64_t sleep_ms; /* then sleep this long (loop time) */
    bool flush;        /* then end the interval */
} flood;

static int flood_main(void *arg) {
    const flood *f = arg;
    tls_test t;
    int rc = tls_test_start(&t, (srv_cfg){.mode = SRV_LINES, .handshake_ms = 5000});
    if (rc)
        return rc;
    CHECK_RC(fail_handshakes(t.v.port, f->n), 0);
    if (f->sleep_ms)
        CHECK_RC(corio_sleep(f->sleep_ms), 0);
    if (f->flush)
        corio__tls_hs_log_flush();
out:
    return tls_test_end_expect(&t, rc, 0, SRV_ANY);
}

/* Runs one flood in a fresh loop with stderr captured. */
static tally run_flood(flood f, char **out) {
    capture c;
    capture_begin(&c);
    int rc = corio_run(flood_main, &f);
    *out = capture_end(&c);
    if (rc != 0)
        fail_msg("corio_run: %s; stderr:\n%s", corio_err_name(rc), *out);
    return count_lines(*out);
}

static void test_handshake_flood_logs_few_lines_and_the_right_count(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_INFO);
    corio__tls_hs_log_interval_ms = HOUR_MS;
    char *out;
    tally t = run_flood((flood){.n = 200, .flush = true}, &out);
    if (t.full != FULL || t.summaries != 1 || t.counted != 200 - FULL || t.other != 0)
        fail_msg("%u full, %u summaries counting %lu, %u other lines:\n%s", t.full, t.summaries,
                 t.counted, t.other, out);
    if (!strstr(t.last_summary, "195 similar messages suppressed") ||
        !strstr(t.last_summary, "http request") /* OpenSSL's reason for plain HTTP */)
        fail_msg("summary: %s", t.last_summary);
    free(out);
    /* The next interval (a new loop on this thread: the count starts afresh). */
    t = run_flood((flood){.n = FULL + 2, .flush = true}, &out);
    if (t.full != FULL || t.summaries != 1 || t.counted != 2)
        fail_msg("second interval: %u full, %u summaries counting %lu:\n%s", t.full, t.summaries,
                 t.counted, out);
    free(out);
}

/* Without a flush: the interval's timer writes the count once it ends, with
 * no further failure to carry it.  However slow the machine (the interval
 * may end mid-flood), every failure is written or counted exactly once, and
 * at most FULL lines per interval are written in full. */
static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_handshake_count_written_when_the_interval_ends(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_INFO);
    corio__tls_hs_log_interval_ms = 200;
    char *out;
    const int n = 40;
    uint64_t t0 = now_ns();
    tally t = run_flood((flood){.n = n, .sleep_ms = 3 * 200}, &out);
    uint64_t intervals = (now_ns() - t0) / (200 * 1000000ull) + 1;
    corio__tls_hs_log_interval_ms = HOUR_MS;
    if (t.full + t.counted != (unsigned long)n || t.full > FULL * intervals || t.other != 0)
        fail_msg("%d failures: %u full, %lu counted, %u other lines (%llu intervals):\n%s", n,
                 t.full, t.counted, t.other, (unsigned long long)intervals, out);
    free(out);
}

static void test_handshake_failures_silent_at_log_level_error(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_ERROR);
    corio__tls_hs_log_interval_ms = HOUR_MS;
    char *out;
    tally t = run_flood((flood){.n = 20, .flush = true}, &out);
    corio_log_set_level(CORIO_LOG_INFO);
    if (out[0] != '\0')
        fail_msg("written at --log-level error:\n%s", out);
    (void)t;
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_flood_logs_few_lines_and_the_right_count),
        cmocka_unit_test(test_handshake_count_written_when_the_interval_ends),
        cmocka_unit_test(test_handshake_failures_silent_at_log_level_error),
    };
    return cmocka_run_group_tests(tests, tls_group_setup, tls_group_teardown);
}
