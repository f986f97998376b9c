/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
/* One format for every line corio writes on stderr (framework/base/log.c,
 * report.c, timefmt.h): corio's own diagnostics (corio__report, and so
 * every misuse of the API) are ERROR lines like corio_log's, whatever the
 * level, also when written from a signal handler (corio__report_raw); the
 * hand-made timestamp agrees with gmtime_r over the whole four-digit-year
 * range; and the access log's date has English month names in a French
 * locale (built with localedef into a temporary LOCPATH: Debian ships only
 * C.UTF-8; skipped, saying why, when that cannot be done).  JSON lines
 * (corio_log_set_format): the same fields as keys, hostile bytes escaped
 * into valid JSON, the request id last; the report from a signal handler in
 * the same shape. */
#include "corio_test.h"

#include <fcntl.h>
#include <locale.h>
#include <regex.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <corio/http_test.h>
#include <corio/log.h>

#include "base/report.h"
#include "base/timefmt.h"

#include "stderr_capture.h"

/* Asserts that out is exactly one line in corio_log's format, at `level`
 * ("ERROR", "WARN "...), from this process, with the message `msg`. */
static void assert_one_log_line(const char *out, const char *level, const char *msg) {
    char want[512];
    snprintf(want, sizeof want,
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z %s \\[%d\\] ",
             level, (int)getpid());
    regex_t re;
    assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
    int m = regexec(&re, out, 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        fail_msg("not a corio_log line at %s: '%s'", level, out);
    const char *text = strstr(out, "] ") + 2;
    size_t n = strlen(msg);
    if (strncmp(text, msg, n) != 0 || strcmp(text + n, "\n") != 0)
        fail_msg("message '%s', expected '%s'", text, msg);
}

static void test_report_is_an_error_line_in_the_log_format(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_INFO);
    capture c;
    capture_begin(&c);
    corio__report("task '%s' misbehaved (%d)", "t1", 7);
    char *out = capture_end(&c);
    assert_one_log_line(out, "ERROR", "task 't1' misbehaved (7)");
    free(out);
}

static void test_report_written_at_every_level(void **state) {
    (void)state;
    corio_log_set_level(CORIO_LOG_ERROR);
    capture c;
    capture_begin(&c);
    corio_log(CORIO_LOG_WARN, "dropped");
    corio__report("kept");
    char *out = capture_end(&c);
    corio_log_set_level(CORIO_LOG_INFO);
    assert_one_log_line(out, "ERROR", "kept");
    free(out);
}

static void test_report_raw_has_the_same_shape(void **state) {
    (void)state;
    capture c;
    capture_begin(&c);
    corio__report_raw("stack overflow in task 'x'\n\x1b[31m");
    char *out = capture_end(&c);
    assert_one_log_line(out, "ERROR", "stack overflow in task 'x'\\x0a\\x1b[31m");
    free(out);
}

/* ---- JSON lines and request ids ---- */

static void test_json_escape_makes_valid_json_of_hostile_bytes(void **state) {
    (void)state;
    static const char in[] = "q\"b\\s\n\x01\x1b\x7f"
                             "\xc3\xa9"         /* é: kept */
                             "\xf0\x9f\x98\x80" /* an emoji: kept */
                             "\xff"             /* never UTF-8 */
                             "\xc0\xaf"         /* overlong '/' */
                             "\xed\xa0\x80"     /* a surrogate */
                             "\xe2\x82";        /* cut short */
    char out[256];
    size_t n = corio_log_json_escape(out, sizeof out, in, sizeof in - 1);
    assert_string_equal(out, "q\\\"b\\\\s\\u000a\\u0001\\u001b\\u007f\xc3\xa9\xf0\x9f\x98\x80"
                             "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd");
    assert_int_equal(n, strlen(out));
    /* Cut at a whole escape: 7 bytes (with the NUL) hold "a" and no half
     * of \u0001. */
    char small[7];
    corio_log_json_escape(small, sizeof small, "a\x01", 2);
    assert_string_equal(small, "a");
}

/* Asserts that out is one JSON line of ours at `level` ("error"...) with the
 * message part `msg` (as escaped) and the tail `tail` ("" or
 * ,"request_id":"..."). */
static void assert_one_json_line(const char *out, const char *level, const char *msg,
                                 const char *tail) {
    char want[512];
    snprintf(want, sizeof want,
             "^\\{\"time\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z\","
             "\"level\":\"%s\",\"pid\":%d,\"msg\":\"",
             level, (int)getpid());
    regex_t re;
    assert_int_equal(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
    int m = regexec(&re, out, 0, NULL, 0);
    regfree(&re);
    if (m != 0)
        fail_msg("not a JSON log line at %s: '%s'", level, out);
    char rest[512];
    snprintf(rest, sizeof rest, "\"msg\":\"%s\"%s}\n", msg, tail);
    const char *at = strstr(out, "\"msg\":\"");
    if (strcmp(at, rest) != 0)
        fail_msg("line '%s', expected it to end '%s'", out, rest);
}

static void test_json_lines_have_the_fields_as_keys(void **state) {
    (void)state;
    corio_log_set_format(CORIO_LOG_JSON);
    capture c;
    capture_begin(&c);
    corio_log(CORIO_LOG_WARN, "say \"%s\"", "hi\n");
    char *out = capture_end(&c);
    assert_one_json_line(out, "warn", "say \\\"hi\\u000a\\\"", "");
    free(out);
    capture_begin(&c);
    corio__report_raw("stack overflow in task 'x'\n\x1b[31m"); /* the fault handler's path */
    out = capture_end(&c);
    corio_log_set_format(CORIO_LOG_TEXT);
    assert_one_json_line(out, "error", "stack overflow in task 'x'\\u000a\\u001b[31m", "");
    free(out);
}

static void test_a_request_id_ends_the_line(void **state) {
    (void)state;
    corio__log_request_id = "r-1\"x"; /* what the runtime sets for a request's task */
    capture c;
    capture_begin(&c);
    corio_log(CORIO_LOG_INFO, "handled");
    char *text = capture_end(&c);
    corio_log_set_format(CORIO_LOG_JSON);
    capture_begin(&c);
    corio_log(CORIO_LOG_INFO, "handled");
    char *json = capture_end(&c);
    corio_log_set_format(CORIO_LOG_TEXT);
    corio__log_request_id = NULL;
    assert_one_log_line(text, "INFO ", "handled req=r-1\\x22x");
    assert_one_json_line(json, "info", "handled", ",\"request_id\":\"r-1\\\"x\"");
    free(text);
    free(json);
}

/* A real misuse: the line comes from the library's own report, formatted as
 * corio_log's (it was "corio: ..." without time, level or pid). */
static void test_library_misuse_is_reported_in_the_log_format(void **state) {
    (void)state;
    capture c;
    capture_begin(&c);
    corio_future *f = NULL;
    int rc = corio_future_new(&f);
    char *out = capture_end(&c);
    assert_int_not_equal(rc, 0);
    assert_one_log_line(out, "ERROR", "corio_future_new called outside corio_run()");
    free(out);
}

/* One time t: corio__timefmt_* against gmtime_r, with strftime's names in
 * the C locale (the test's: nobody called setlocale). */
static void check_timefmt(int64_t t) {
    char got[64], want[64], wday[8], mon[8];
    time_t tt = (time_t)t;
    struct tm tm;
    assert_non_null(gmtime_r(&tt, &tm));
    strftime(wday, sizeof wday, "%a", &tm);
    strftime(mon, sizeof mon, "%b", &tm);
    corio__timefmt_iso_ms(got, t * 1000 + 123);
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02d.123Z", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    assert_string_equal(got, want);
    assert_int_equal(corio__timefmt_clf(got, tt), 26);
    snprintf(want, sizeof want, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, mon,
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    assert_string_equal(got, want);
    assert_int_equal(corio__timefmt_http(got, tt), 29);
    snprintf(want, sizeof want, "%s, %02d %s %04d %02d:%02d:%02d GMT", wday, tm.tm_mday, mon,
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    assert_string_equal(got, want);
}

/* At a step that is no whole number of days, so that it lands on every
 * month, weekday and hour, from year 1 to 9999; and at the edges: around
 * the epoch, leap days, century years. */
static void test_timefmt_agrees_with_gmtime(void **state) {
    (void)state;
    const int64_t first = -62135596800, last = 253402300799; /* 0001-01-01 .. 9999-12-31 */
    unsigned checked = 0;
    for (int64_t t = first; t <= last; t += 86400 * 29 + 3607, checked++)
        check_timefmt(t);
    assert_true(checked > 100000);
    const int64_t edges[] = {-86401,     -86400,     -1,         0,          1,
                             86399,      86400,      951782399,  951782400,  951868800,
                             4107456000, 4107542399, 4107542400, 1795620441, last};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_timefmt(edges[i]);
}

/* ---- the access log's date, whatever the locale ---------------------------------------- */

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_text(res, 200, "hi");
}

static int access_log_main(void *arg) {
    corio_http_test *t;
    corio_http_response *r = NULL;
    corio_http_opts opts = {.access_log = true};
    assert_int_equal(corio_http_test_start(&t, arg, &opts), 0);
    assert_int_equal(corio_http_test_get(t, &r, "/hello"), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    corio_http_response_free(r);
    return corio_http_test_stop(t); /* the last connection ends: its line is written */
}

/* Makes fr_FR.UTF-8 in dir (LOCPATH) and switches to it.  Returns false,
 * after printing why, when it cannot. */
static bool enter_french_locale(const char *dir) {
    if (access("/usr/share/i18n/locales/fr_FR", R_OK) != 0) {
        print_message("no /usr/share/i18n/locales/fr_FR to build a French locale from\n");
        return false;
    }
    char cmd[512], built[256];
    snprintf(cmd, sizeof cmd, "localedef -i fr_FR -f UTF-8 '%s/fr_FR.UTF-8' >/dev/null 2>&1", dir);
    int st = system(cmd); /* it exits 1 for mere warnings: what counts is the result */
    snprintf(built, sizeof built, "%s/fr_FR.UTF-8/LC_TIME", dir);
    if (access(built, R_OK) != 0) {
        print_message("localedef could not build fr_FR.UTF-8 (status %d)\n", st);
        return false;
    }
    setenv("LOCPATH", dir, 1);
    if (!setlocale(LC_ALL, "fr_FR.UTF-8")) {
        print_message("setlocale(fr_FR.UTF-8) failed with LOCPATH=%s\n", dir);
        return false;
    }
    return true;
}

static void test_access_log_date_is_english_whatever_the_locale(void **state) {
    (void)state;
    char dir[] = "/tmp/corio-locale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bool french = enter_french_locale(dir);
    char rm[64];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (!french) {
        setlocale(LC_ALL, "C");
        unsetenv("LOCPATH");
        if (system(rm) != 0)
            print_message("could not remove %s\n", dir);
        skip();
    }
    /* The locale took: this month's name is not the English one. */
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char local[16];
    strftime(local, sizeof local, "%b", &tm);
    char english[4];
    snprintf(english, sizeof english, "%.3s", corio__timefmt_month(tm.tm_mon + 1));
    assert_string_not_equal(local, english);
    corio_router *router;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/hello", hello, NULL), 0);
    capture c;
    capture_begin(&c);
    int rc = corio_run(access_log_main, router);
    char *out = capture_end(&c);
    corio_router_free(router);
    setlocale(LC_ALL, "C");
    unsetenv("LOCPATH");
    if (system(rm) != 0)
        print_message("could not remove %s\n", dir);
    assert_int_equal(rc, 0);
    /* The month of the line's date, which may be a second past `now`. */
    const char *date = strstr(out, " - - [");
    if (!date)
        fail_msg("no access log line in:\n%s", out);
    char month[8] = "";
    sscanf(date + 6, "%*2d/%7[^/]/", month);
    if (strcmp(month, "Jan") && strcmp(month, "Feb") && strcmp(month, "Mar") &&
        strcmp(month, "Apr") && strcmp(month, "May") && strcmp(month, "Jun") &&
        strcmp(month, "Jul") && strcmp(month, "Aug") && strcmp(month, "Sep") &&
        strcmp(month, "Oct") && strcmp(month, "Nov") && strcmp(month, "Dec"))
        fail_msg("month '%s' (the locale says '%s') in:\n%s", month, local, out);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_is_an_error_line_in_the_log_format),
        cmocka_unit_test(test_report_written_at_every_level),
        cmocka_unit_test(test_report_raw_has_the_same_shape),
        cmocka_unit_test(test_library_misuse_is_reported_in_the_log_format),
        cmocka_unit_test(test_timefmt_agrees_with_gmtime),
        cmocka_unit_test(test_json_escape_makes_valid_json_of_hostile_bytes),
        cmocka_unit_test(test_json_lines_have_the_fields_as_keys),
        cmocka_unit_test(test_a_request_id_ends_the_line),
        cmocka_unit_test(test_access_log_date_is_english_whatever_the_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
