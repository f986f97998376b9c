/* SPDX-License-Identifier: MIT */
/* The HTTP client's URLs (framework/client/url.c): absolute URLs of the
 * three schemes, and a redirect's Location resolved against the URL it
 * answers as RFC 3986 5.2 says (paths, queries, dot segments, scheme-relative
 * and empty references).  Pure functions: no loop. */
#include "corio_test.h"

#include <string.h>

#include "client/client_internal.h"

/* Resolves ref against base (NULL: ref is absolute) and checks the target
 * (and host, port when given). */
static void check(const char *base, const char *ref, const char *target, const char *host,
                  int port) {
    corio__url b, u;
    if (base)
        assert_int_equal(corio__url_parse(base, NULL, &b), 0);
    int rc = corio__url_parse(ref, base ? &b : NULL, &u);
    if (rc != 0)
        fail_msg("\"%s\" against \"%s\": %s", ref, base ? base : "-", corio_err_name(rc));
    if (strcmp(u.target, target) != 0)
        fail_msg("\"%s\" against \"%s\": target \"%s\", expected \"%s\"", ref, base ? base : "-",
                 u.target, target);
    if (host)
        assert_string_equal(u.host, host);
    if (port)
        assert_int_equal(u.port, port);
    corio__url_release(&u);
    if (base)
        corio__url_release(&b);
}

static void test_url_absolute_forms(void **state) {
    (void)state;
    check(NULL, "http://h", "/", "h", 80);
    check(NULL, "https://h:8443/a?b#frag", "/a?b", "h", 8443);
    check(NULL, "HTTPS://h?q", "/?q", "h", 443);
    check(NULL, "http://[::1]:81/x", "/x", "::1", 81);
    check(NULL, "http+unix://%2Ftmp%2Fa%20b.sock/p", "/p", "/tmp/a b.sock", 0);
    corio__url u;
    assert_int_equal(corio__url_parse("ftp://h/", NULL, &u), CORIO_ENOTSUP);
    assert_int_equal(corio__url_parse("h/x", NULL, &u), CORIO_EINVAL);
    assert_int_equal(corio__url_parse("http://u@h/", NULL, &u), CORIO_EINVAL);
    assert_int_equal(corio__url_parse("http://h:0/", NULL, &u), CORIO_EINVAL);
    assert_int_equal(corio__url_parse("http://h/a b", NULL, &u), CORIO_EINVAL);
    assert_int_equal(corio__url_parse("http+unix://%2/x", NULL, &u), CORIO_EINVAL);
}

/* RFC 3986 5.4.1's normal examples that an HTTP client meets (base
 * http://a/b/c/d;p?q), and the abnormal ones of 5.4.2 for "..". */
static void test_url_relative_references_rfc3986(void **state) {
    (void)state;
    const char *base = "http://a/b/c/d;p?q";
    check(base, "g", "/b/c/g", "a", 80);
    check(base, "./g", "/b/c/g", NULL, 0);
    check(base, "g/", "/b/c/g/", NULL, 0);
    check(base, "/g", "/g", NULL, 0);
    check(base, "//g", "/", "g", 80);
    check(base, "?y", "/b/c/d;p?y", NULL, 0);
    check(base, "g?y", "/b/c/g?y", NULL, 0);
    check(base, "#s", "/b/c/d;p?q", NULL, 0);
    check(base, "g#s", "/b/c/g", NULL, 0);
    check(base, ";x", "/b/c/;x", NULL, 0);
    check(base, "", "/b/c/d;p?q", NULL, 0);
    check(base, ".", "/b/c/", NULL, 0);
    check(base, "./", "/b/c/", NULL, 0);
    check(base, "..", "/b/", NULL, 0);
    check(base, "../", "/b/", NULL, 0);
    check(base, "../g", "/b/g", NULL, 0);
    check(base, "../..", "/", NULL, 0);
    check(base, "../../g", "/g", NULL, 0);
    check(base, "../../../g", "/g", NULL, 0);
    check(base, "/./g", "/g", NULL, 0);
    check(base, "/../g", "/g", NULL, 0);
    check(base, "g.", "/b/c/g.", NULL, 0);
    check(base, "..g", "/b/c/..g", NULL, 0);
    check(base, "./../g", "/b/g", NULL, 0);
    check(base, "g/./h", "/b/c/g/h", NULL, 0);
    check(base, "g/../h", "/b/c/h", NULL, 0);
    check(base, "g?y/./x", "/b/c/g?y/./x", NULL, 0); /* the query keeps its dots */
    check(base, "https://other/x", "/x", "other", 443);
    /* A '/' in the base's query is not its directory. */
    check("http://a/dir/page?next=/x/y", "other", "/dir/other", NULL, 0);
    /* A Unix-socket base keeps its socket for a path. */
    check("http+unix://%2Frun%2Fs/a/b", "c", "/a/c", "/run/s", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_absolute_forms),
        cmocka_unit_test(test_url_relative_references_rfc3986),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
