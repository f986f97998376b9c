/* SPDX-License-Identifier: MIT */
/* Which statuses a final response may carry (framework/http/response.c),
 * without a socket: what would be written is read back from the
 * connection's iovec list.  A 1xx is interim: sent as the final response it
 * leaves the client waiting for the real one for ever, so corio_res_send,
 * the shorthands and corio_res_start refuse it, as any code outside
 * 200..599, and write nothing. */
#include "corio_test.h"

#include <string.h>

#include "http/http_internal.h"

static void setup_conn(corio__hconn *c) {
    memset(c, 0, sizeof *c);
    corio__arena_init(&c->arena);
    c->req.c = c;
    c->res.c = c;
    c->req.minor = 1;
}

static void test_interim_and_out_of_range_statuses_refused_as_final(void **state) {
    (void)state;
    static const int refused[] = {0, 99, 100, 101, 102, 103, 199, 600, 999, 1000, -200};
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        corio__hconn c;
        int st = refused[i];
        setup_conn(&c);
        assert_corio(corio_res_send(&c.res, st, "text/plain", "x", 1), CORIO_EINVAL);
        assert_corio(corio_res_text(&c.res, st, "x"), CORIO_EINVAL);
        assert_corio(corio_res_json(&c.res, st, "{}"), CORIO_EINVAL);
        assert_corio(corio_res_send(&c.res, st, NULL, NULL, 0), CORIO_EINVAL);
        assert_corio(corio_res_start(&c.res, st, "text/plain"), CORIO_EINVAL);
        assert_int_equal(c.nout, 0); /* nothing queued */
        assert_false(corio_res_started(&c.res));
        /* the handler can still answer properly */
        assert_corio(corio_res_text(&c.res, 200, "ok"), 0);
        assert_int_equal(corio_res_status(&c.res), 200);
        corio__arena_reset(&c.arena);
    }
}

static void test_final_statuses_200_to_599_accepted(void **state) {
    (void)state;
    static const int ok[] = {200, 204, 299, 304, 404, 500, 599};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        corio__hconn c;
        setup_conn(&c);
        assert_corio(corio_res_send(&c.res, ok[i], "text/plain", "x", 1), 0);
        assert_int_equal(corio_res_status(&c.res), ok[i]);
        assert_true(c.nout > 0);
        corio__arena_reset(&c.arena);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interim_and_out_of_range_statuses_refused_as_final),
        cmocka_unit_test(test_final_statuses_200_to_599_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
