/* SPDX-License-Identifier: MIT */
/* An application that calls setlocale(LC_ALL, "") under a locale with other
 * day and month names (de_DE here) still gets an RFC 9110 Date header:
 * English names, 29 bytes, no NUL.  The locale is compiled into a
 * temporary directory with localedef (Debian's libc-bin, from the sources
 * in /usr/share/i18n/locales) and found through LOCPATH; without those
 * sources the test skips, saying why. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <corio/corio.h>
#include <corio/http_test.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char skip_why[256];

static int hello(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_send(res, 200, "text/plain", "hi", 2);
}

static bool is_one_of(const char *p, const char *names) {
    for (const char *n = names; *n; n += 3)
        if (strncmp(p, n, 3) == 0)
            return true;
    return false;
}

static int date_main(void *arg) {
    (void)arg;
    corio_router *router = NULL;
    assert_int_equal(corio_router_new(&router), 0);
    assert_int_equal(corio_router_add(router, "GET", "/", hello, NULL), 0);
    corio_http_test *t = NULL;
    assert_int_equal(corio_http_test_start(&t, router, NULL), 0);
    corio_http_response *r = NULL;
    assert_int_equal(corio_http_test_get(t, &r, "/"), 0);
    assert_int_equal(corio_http_response_status(r), 200);
    const char *date = corio_http_response_header(r, "Date");
    assert_non_null(date);
    fprintf(stderr, "test_http_locale: Date: %s\n", date);
    /* "Sun, 06 Dec 2026 08:49:37 GMT" */
    assert_int_equal(strlen(date), 29);
    assert_true(is_one_of(date, "SunMonTueWedThuFriSat"));
    assert_true(is_one_of(date + 8, "JanFebMarAprMayJunJulAugSepOctNovDec"));
    assert_string_equal(date + 25, " GMT");
    assert_memory_equal(date + 3, ", ", 2);
    corio_http_response_free(r);
    assert_int_equal(corio_http_test_stop(t), 0);
    corio_router_free(router);
    return 0;
}

static void test_date_header_is_english_under_a_german_locale(void **state) {
    (void)state;
    if (skip_why[0]) {
        fprintf(stderr, "test_http_locale: skipped: %s\n", skip_why);
        skip();
    }
    assert_int_equal(corio_run(date_main, NULL), 0);
}

static int setup(void **state) {
    (void)state;
    if (access("/usr/share/i18n/locales/de_DE", R_OK) != 0) {
        snprintf(skip_why, sizeof skip_why,
                 "no locale sources in /usr/share/i18n/locales (Debian package locales)");
        return 0;
    }
    snprintf(dir, sizeof dir, "/tmp/corio-locale-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "localedef -i de_DE -f UTF-8 '%s/de_DE.UTF-8' >/dev/null 2>&1", dir);
    if (system(cmd) != 0) { /* localedef exits 1 on warnings too: the check below decides */
    }
    setenv("LOCPATH", dir, 1);
    setenv("LC_ALL", "de_DE.UTF-8", 1);
    if (!setlocale(LC_ALL, "")) {
        snprintf(skip_why, sizeof skip_why, "localedef could not make de_DE.UTF-8 in %s", dir);
        return 0;
    }
    /* The locale is in effect: a Sunday is "So" to strftime now. */
    struct tm sunday = {.tm_year = 126, .tm_mon = 11, .tm_mday = 6, .tm_wday = 0};
    char day[16] = "";
    strftime(day, sizeof day, "%a", &sunday);
    if (strcmp(day, "So") != 0) {
        snprintf(skip_why, sizeof skip_why, "de_DE.UTF-8 is not in effect (%%a gave \"%s\")", day);
        return 0;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    setlocale(LC_ALL, "C");
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "test_http_locale: could not remove %s\n", dir);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_date_header_is_english_under_a_german_locale),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
