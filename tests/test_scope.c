/* SPDX-License-Identifier: MIT */
/* Layer 4: scoped resources, timeouts, shields and task groups
 * (include/corio/scope.h).
 *
 * Tasks are ordered with yields and events; results are recorded into structs
 * (or a text log) and asserted after corio_run() returned.  SOFT() records
 * incidental in-task failures the same way.  Timing is only ever checked from
 * below (a deadline never fires early).
 */
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#include "corio_test.h"

/* ---- helpers ----------------------------------------------------------------- */

static void settle(int n) {
    while (n-- > 0)
        SOFT(corio_yield() == 0);
}

typedef struct text_log {
    char buf[512];
} text_log;

static void logf_(text_log *l, const char *fmt, ...) {
    size_t len = strlen(l->buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->buf + len, sizeof l->buf - len, fmt, ap);
    va_end(ap);
}

static const char *how_name(int how) {
    return how ? corio_err_name(how) : "0";
}

/* ---- a custom resource type: logs its enter and exit ------------------------- */

typedef struct rec {
    const char *name;
    text_log *log;
    int enter_rc;              /* what enter returns */
    uint64_t exit_sleep_ms;    /* exit awaits this long when not 0 */
    corio_event *exit_entered; /* set when exit starts, if not NULL */
    corio_lock *watch;         /* logs whether this lock is held at exit */
    int exits, how, exit_sleep_rc;
    uint64_t exit_slept_ms;
} rec;

static int rec_enter(void *self, uint64_t arg) {
    rec *r = self;
    (void)arg;
    logf_(r->log, "+%s ", r->name);
    return r->enter_rc;
}

static void rec_exit(void *self, int how) {
    rec *r = self;
    r->exits++;
    r->how = how;
    if (r->exit_entered)
        corio_event_set(r->exit_entered);
    if (r->exit_sleep_ms) {
        uint64_t t0 = corio_now();
        r->exit_sleep_rc = corio_sleep(r->exit_sleep_ms);
        r->exit_slept_ms = corio_now() - t0;
    }
    logf_(r->log, "-%s:%s%s ", r->name, how_name(how),
          r->watch ? (corio_lock_locked(r->watch) ? "(locked)" : "(free)") : "");
}

static const corio_resource_type rec_type = {.name = "rec", .enter = rec_enter, .exit = rec_exit};
/* The same with a short exit deadline, and unshielded. */
static const corio_resource_type rec_quick_type = {
    .name = "rec-quick", .enter = rec_enter, .exit = rec_exit, .exit_timeout_ms = 30};
static const corio_resource_type rec_unshielded_type = {.name = "rec-unshielded",
                                                        .enter = rec_enter,
                                                        .exit = rec_exit,
                                                        .flags = CORIO_RESOURCE_UNSHIELDED};

static corio_resource rec_scope(rec *r) {
    return (corio_resource){.type = &rec_type, .self = r, .arg = 0};
}

/* ---- exit hooks on every way out ----------------------------------------------- */

enum way { NORMAL, RETURN, BREAK, CONTINUE, GOTO, ERROR, CANCEL, TIMEOUT, WAYS };
static const char *const way_names[WAYS] = {"normal", "return", "break",  "continue",
                                            "goto",   "error",  "cancel", "timeout"};

typedef struct ways_ctx {
    enum way way;
    text_log log;
    corio_lock lock;
    corio_event never;
    int await_rc, result, body_locked, locked_after;
} ways_ctx;

/* A (custom) > lock scope > B (custom), then leaves by c->way. */
static int ways_nested(ways_ctx *c) {
    rec a = {.name = "A", .log = &c->log, .watch = &c->lock};
    rec b = {.name = "B", .log = &c->log, .watch = &c->lock};
    CORIO_WITH(rec_scope(&a)) {
        CORIO_WITH(corio_lock_scope(&c->lock)) {
            CORIO_WITH(rec_scope(&b)) {
                c->body_locked = corio_lock_locked(&c->lock);
                if (c->way == RETURN)
                    return 7;
                if (c->way == BREAK)
                    break;
                if (c->way == CONTINUE)
                    continue;
                if (c->way == GOTO)
                    goto out;
                if (c->way == ERROR) {
                    corio_scope_fail(CORIO_EPIPE); /* marks B only */
                    break;
                }
                if (c->way == CANCEL)
                    return c->await_rc = corio_event_wait(&c->never);
                if (c->way == TIMEOUT)
                    return c->await_rc = corio_sleep(60000);
                logf_(&c->log, "body ");
            }
        }
        logf_(&c->log, "mid ");
        if (c->way == ERROR)
            return corio_scope_fail(CORIO_ECONNRESET); /* A's own code */
    }
out:
    logf_(&c->log, "end");
    return 0;
}

static int ways_task(void *arg) {
    ways_ctx *c = arg;
    if (c->way != TIMEOUT)
        return ways_nested(c);
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(20)) rc = ways_nested(c);
    return rc;
}

static int ways_main(void *arg) {
    ways_ctx *c = arg;
    corio_lock_init(&c->lock);
    corio_event_init(&c->never);
    corio_task *t = corio_test_spawn("ways", ways_task, c);
    if (c->way == CANCEL) {
        settle(2);
        SOFT(corio_cancel(t) == 0);
    }
    c->result = corio_test_join(t);
    c->locked_after = corio_lock_locked(&c->lock);
    return 0;
}

static void test_exit_hooks_lifo_on_every_way_out(void **state) {
    (void)state;
    static const char *const want[WAYS] = {
        [NORMAL] = "+A +B body -B:0(locked) mid -A:0(free) end",
        [RETURN] = "+A +B -B:0(locked) -A:0(free) ",
        [BREAK] = "+A +B -B:0(locked) mid -A:0(free) end",
        [CONTINUE] = "+A +B -B:0(locked) mid -A:0(free) end",
        [GOTO] = "+A +B -B:0(locked) -A:0(free) end",
        [ERROR] = "+A +B -B:EPIPE(locked) mid -A:ECONNRESET(free) ",
        [CANCEL] = "+A +B -B:ECANCELED(locked) -A:ECANCELED(free) ",
        [TIMEOUT] = "+A +B -B:ETIMEDOUT(locked) -A:ETIMEDOUT(free) ",
    };
    static const int want_result[WAYS] = {[RETURN] = 7,
                                          [ERROR] = CORIO_ECONNRESET,
                                          [CANCEL] = CORIO_ECANCELED,
                                          [TIMEOUT] = CORIO_ETIMEDOUT};
    for (int w = 0; w < WAYS; w++) {
        ways_ctx c = {.way = (enum way)w};
        corio_test_run_checked(ways_main, &c);
        if (strcmp(c.log.buf, want[w]) != 0)
            fail_msg("way '%s': log \"%s\", expected \"%s\"", way_names[w], c.log.buf, want[w]);
        assert_int_equal(c.result, want_result[w]);
        assert_true(c.body_locked);
        assert_false(c.locked_after); /* the lock scope released */
    }
}

/* ---- exit hooks that await --------------------------------------------------------- */

typedef struct exit_ctx {
    int mode; /* see exit_await_main */
    text_log log;
    corio_event never, in_body, in_exit;
    rec r;
    int body_rc, after_rc, cancel_rc;
} exit_ctx;

static int exit_await_task(void *arg) {
    exit_ctx *c = arg;
    corio_resource res = rec_scope(&c->r);
    if (c->mode >= 2)
        res.type = c->mode == 2 ? &rec_quick_type : &rec_unshielded_type;
    CORIO_WITH(res) {
        corio_event_set(&c->in_body);
        c->body_rc = corio_event_wait(&c->never);
    }
    c->after_rc = corio_yield(); /* the exit's shield is gone */
    return 0;
}

/* mode 0: cancelled in the body, exit sleeps 20 ms; 1: the cancel arrives
 * while the exit sleeps; 2: cancelled in the body, exit sleeps past its
 * 30 ms exit_timeout_ms; 3: like 0 with an unshielded exit. */
static int exit_await_main(void *arg) {
    exit_ctx *c = arg;
    corio_event_init(&c->never);
    corio_event_init(&c->in_body);
    corio_event_init(&c->in_exit);
    c->r.log = &c->log;
    c->r.exit_entered = &c->in_exit;
    corio_task *t = corio_test_spawn("exit awaits", exit_await_task, c);
    SOFT(corio_event_wait(&c->in_body) == 0);
    if (c->mode == 1) { /* let the body end normally, cancel during the exit */
        corio_event_set(&c->never);
        SOFT(corio_event_wait(&c->in_exit) == 0);
    }
    c->cancel_rc = corio_cancel(t);
    SOFT(corio_test_join(t) == 0);
    return 0;
}

static void test_exit_hook_awaits_shielded_and_bounded(void **state) {
    (void)state;
    /* Cancelled in the body: the exit's sleep still completes. */
    exit_ctx a = {.mode = 0, .r = {.name = "R", .exit_sleep_ms = 20}};
    corio_test_run_checked(exit_await_main, &a);
    assert_int_equal(a.body_rc, CORIO_ECANCELED);
    assert_int_equal(a.r.exits, 1);
    assert_int_equal(a.r.how, CORIO_ECANCELED);
    assert_int_equal(a.r.exit_sleep_rc, 0);
    assert_true(a.r.exit_slept_ms >= 20);
    assert_int_equal(a.after_rc, CORIO_ECANCELED);

    /* Cancelled while the exit sleeps: not interrupted, `how` stays 0, the
     * cancel shows after the scope. */
    exit_ctx b = {.mode = 1, .r = {.name = "R", .exit_sleep_ms = 20}};
    corio_test_run_checked(exit_await_main, &b);
    assert_int_equal(b.body_rc, 0);
    assert_int_equal(b.cancel_rc, 0);
    assert_int_equal(b.r.how, 0);
    assert_int_equal(b.r.exit_sleep_rc, 0);
    assert_true(b.r.exit_slept_ms >= 20);
    assert_int_equal(b.after_rc, CORIO_ECANCELED);

    /* An exit hook cannot hang: exit_timeout_ms bounds it. */
    exit_ctx c = {.mode = 2, .r = {.name = "R", .exit_sleep_ms = 60000}};
    corio_test_run_checked(exit_await_main, &c);
    assert_int_equal(c.r.how, CORIO_ECANCELED);
    assert_int_equal(c.r.exit_sleep_rc, CORIO_ETIMEDOUT);
    assert_true(c.r.exit_slept_ms >= 30);
    assert_int_equal(c.after_rc, CORIO_ECANCELED);
    assert_string_equal(c.log.buf, "+R -R:ECANCELED ");

    /* CORIO_RESOURCE_UNSHIELDED: the exit sees the cancellation. */
    exit_ctx d = {.mode = 3, .r = {.name = "R", .exit_sleep_ms = 60000}};
    corio_test_run_checked(exit_await_main, &d);
    assert_int_equal(d.r.how, CORIO_ECANCELED);
    assert_int_equal(d.r.exit_sleep_rc, CORIO_ECANCELED);
}

/* ---- enter failure ------------------------------------------------------------------ */

typedef struct enter_ctx {
    text_log log;
    int rc_outer, rc_inner, inner_body, outer_after, yield_after;
    int rc_notask, notask_body, fail_no_scope;
    rec a, b;
} enter_ctx;

static void with_outside_task(corio_future *f, void *data) {
    enter_ctx *c = data;
    (void)f;
    CORIO_WITH_RC(c->rc_notask, rec_scope(&c->a)) c->notask_body = 1;
}

static int enter_fail_main(void *arg) {
    enter_ctx *c = arg;
    c->a = (rec){.name = "A", .log = &c->log};
    c->b = (rec){.name = "B", .log = &c->log, .enter_rc = CORIO_EAGAIN};
    c->rc_outer = c->rc_inner = 12345;
    CORIO_WITH_RC(c->rc_outer, rec_scope(&c->a)) {
        CORIO_WITH_RC(c->rc_inner, rec_scope(&c->b)) {
            c->inner_body = 1;
        }
        c->outer_after = 1;
    }
    c->yield_after = corio_yield();
    c->fail_no_scope = corio_scope_fail(CORIO_EPIPE); /* no scope: only returns */
    corio_future *f = NULL;
    SOFT(corio_future_new(&f) == 0);
    SOFT(corio_future_add_done_cb(f, with_outside_task, c) == 0);
    SOFT(corio_future_resolve(f, NULL) == 0);
    SOFT(corio_await(f) == 0);
    corio_future_release(f); /* its callback ran before this task resumed */
    return 0;
}

static void test_enter_failure_skips_body_and_exit(void **state) {
    (void)state;
    enter_ctx c = {0};
    corio_test_run_checked(enter_fail_main, &c);
    assert_int_equal(c.rc_outer, 0);
    assert_int_equal(c.rc_inner, CORIO_EAGAIN);
    assert_int_equal(c.inner_body, 0);
    assert_int_equal(c.b.exits, 0);
    assert_int_equal(c.outer_after, 1);
    assert_int_equal(c.a.exits, 1);
    assert_int_equal(c.a.how, 0);
    assert_string_equal(c.log.buf, "+A +B -A:0 ");
    assert_int_equal(c.yield_after, 0);
    assert_int_equal(c.fail_no_scope, CORIO_EPIPE);
    assert_int_equal(c.rc_notask, CORIO_ENOTASK);
    assert_int_equal(c.notask_body, 0);
    assert_int_equal(c.a.exits, 1);
}

/* ---- lock / semaphore scope: cancelled or timed out while waiting to enter --------- */

typedef struct enter_wait_ctx {
    bool sem;            /* semaphore scope, else lock scope */
    uint64_t timeout_ms; /* time out while entering, else be cancelled */
    corio_lock lock;
    corio_semaphore permits;
    int rc, body_ran, locked_after, try_after;
    size_t value_after;
} enter_wait_ctx;

static int enter_wait_task(void *arg) {
    enter_wait_ctx *c = arg;
    corio_resource res = c->sem ? corio_semaphore_scope(&c->permits) : corio_lock_scope(&c->lock);
    CORIO_WITH(corio_timeout_scope(c->timeout_ms ? c->timeout_ms : 3600 * 1000))
    CORIO_WITH_RC(c->rc, res) c->body_ran = 1;
    return 0;
}

static int enter_wait_main(void *arg) {
    enter_wait_ctx *c = arg;
    corio_lock_init(&c->lock);
    corio_semaphore_init(&c->permits, 1);
    SOFT(corio_lock_acquire(&c->lock) == 0);
    SOFT(corio_semaphore_acquire(&c->permits) == 0);
    corio_task *t = corio_test_spawn("enter", enter_wait_task, c);
    settle(2);
    if (!c->timeout_ms)
        SOFT(corio_cancel(t) == 0);
    SOFT(corio_test_join(t) == 0);
    SOFT(corio_lock_release(&c->lock) == 0);
    corio_semaphore_release(&c->permits);
    c->locked_after = corio_lock_locked(&c->lock);
    c->value_after = corio_semaphore_value(&c->permits);
    c->try_after = corio_lock_try_acquire(&c->lock);
    SOFT(corio_lock_release(&c->lock) == 0);
    return 0;
}

static void test_lock_and_semaphore_scope_cancel_or_timeout_while_entering(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        enter_wait_ctx c = {.sem = i & 1, .timeout_ms = i & 2 ? 20 : 0};
        corio_test_run_checked(enter_wait_main, &c);
        assert_int_equal(c.rc, c.timeout_ms ? CORIO_ETIMEDOUT : CORIO_ECANCELED);
        assert_int_equal(c.body_ran, 0);
        assert_false(c.locked_after); /* nothing left held */
        assert_int_equal(c.try_after, 0);
        assert_int_equal(c.value_after, 1); /* no permit lost */
    }
}

/* ---- timeout scopes -------------------------------------------------------------------- */

typedef struct timeout_ctx {
    corio_event never;
    int in[4], after[2], short_ok, zero;
    int nest_in, nest_outer, nest_after;
    int rev_in, rev_outer, shielded_in, shielded_after;
    uint64_t elapsed, nest_elapsed;
} timeout_ctx;

static int timeout_main(void *arg) {
    timeout_ctx *c = arg;
    corio_event_init(&c->never);

    /* A deadline that is not reached changes nothing. */
    CORIO_WITH(corio_timeout_scope(60000)) c->short_ok = corio_sleep(1);
    /* A zero timeout has expired on entry. */
    CORIO_WITH(corio_timeout_scope(0)) c->zero = corio_yield();

    uint64_t t0 = corio_now();
    CORIO_WITH(corio_timeout_scope(20)) {
        c->in[0] = corio_sleep(60000);
        c->elapsed = corio_now() - t0;
        c->in[1] = corio_yield(); /* every later await fails at once */
        c->in[2] = corio_event_wait(&c->never);
        c->in[3] = corio_sleep(1);
    }
    c->after[0] = corio_yield();
    c->after[1] = corio_sleep(1);

    /* Inner longer than outer: the outer deadline fires first. */
    t0 = corio_now();
    CORIO_WITH(corio_timeout_scope(20)) {
        CORIO_WITH(corio_timeout_scope(3600 * 1000)) c->nest_in = corio_sleep(600000);
        c->nest_elapsed = corio_now() - t0;
        c->nest_outer = corio_yield(); /* the outer one has expired */
    }
    c->nest_after = corio_yield();

    /* Inner shorter: it fires, the outer scope still runs normally. */
    CORIO_WITH(corio_timeout_scope(3600 * 1000)) {
        CORIO_WITH(corio_timeout_scope(20)) c->rev_in = corio_sleep(600000);
        c->rev_outer = corio_yield();
    }

    /* A shield hides the deadlines of enclosing scopes. */
    CORIO_WITH(corio_timeout_scope(5)) {
        CORIO_WITH(corio_shield_scope()) c->shielded_in = corio_sleep(20);
        c->shielded_after = corio_yield();
    }
    return 0;
}

static void test_timeout_scope_deadlines(void **state) {
    (void)state;
    timeout_ctx c = {0};
    corio_test_run_checked(timeout_main, &c);
    assert_int_equal(c.short_ok, 0);
    assert_int_equal(c.zero, CORIO_ETIMEDOUT);
    for (int i = 0; i < 4; i++)
        assert_int_equal(c.in[i], CORIO_ETIMEDOUT);
    assert_true(c.elapsed >= 20);
    for (int i = 0; i < 2; i++)
        assert_int_equal(c.after[i], 0);
    assert_int_equal(c.nest_in, CORIO_ETIMEDOUT);
    assert_true(c.nest_elapsed >= 20);
    assert_int_equal(c.nest_outer, CORIO_ETIMEDOUT);
    assert_int_equal(c.nest_after, 0);
    assert_int_equal(c.rev_in, CORIO_ETIMEDOUT);
    assert_int_equal(c.rev_outer, 0);
    assert_int_equal(c.shielded_in, 0);
    assert_int_equal(c.shielded_after, CORIO_ETIMEDOUT);
}

/* ---- cancel versus timeout, shields ---------------------------------------------------- */

typedef struct shield_ctx {
    bool shield_only; /* shield_cancel_task, else precedence_task */
    corio_event in_shield, go;
    text_log log;
    rec r;
    int in_rc[3], after_rc[2], inner_timeout_rc, inside_flag;
    int cancel_rc, done_before_go;
    uint64_t inner_elapsed;
} shield_ctx;

/* Past its deadline and cancelled, both hidden by a shield; after the
 * shield, the cancel wins. */
static int precedence_task(void *arg) {
    shield_ctx *c = arg;
    CORIO_WITH(rec_scope(&c->r)) {
        CORIO_WITH(corio_timeout_scope(5)) {
            CORIO_WITH(corio_shield_scope()) {
                corio_event_set(&c->in_shield);
                c->in_rc[0] = corio_event_wait(&c->go);
                c->in_rc[1] = corio_sleep(10); /* the 5 ms deadline has passed */
            }
            c->after_rc[0] = corio_yield();
            c->after_rc[1] = corio_sleep(1);
        }
    }
    return 0;
}

static int shield_cancel_task(void *arg) {
    shield_ctx *c = arg;
    CORIO_WITH(corio_shield_scope()) {
        corio_event_set(&c->in_shield);
        c->in_rc[0] = corio_event_wait(&c->go);
        c->in_rc[1] = corio_yield();
        /* The cancel is recorded, and not in effect behind the shield. */
        c->inside_flag =
            corio_task_cancel_reason(corio_current()) == CORIO_CANCEL_USER && !corio_cancelled();
        /* A timeout scope inside the shield still applies. */
        uint64_t t0 = corio_now();
        CORIO_WITH(corio_timeout_scope(20)) c->inner_timeout_rc = corio_sleep(60000);
        c->inner_elapsed = corio_now() - t0;
        c->in_rc[2] = corio_sleep(1);
    }
    c->after_rc[0] = corio_yield();
    c->after_rc[1] = corio_event_wait(&c->go); /* set, still cancelled */
    return 0;
}

static int shield_main(void *arg) {
    shield_ctx *c = arg;
    corio_event_init(&c->in_shield);
    corio_event_init(&c->go);
    c->r.log = &c->log;
    c->r.name = "R";
    corio_task *t =
        corio_test_spawn("shielded", c->shield_only ? shield_cancel_task : precedence_task, c);
    SOFT(corio_event_wait(&c->in_shield) == 0);
    c->cancel_rc = corio_cancel(t);
    settle(3);
    c->done_before_go = corio_task_done(t);
    corio_event_set(&c->go);
    SOFT(corio_test_join(t) == 0);
    return 0;
}

static void test_cancel_wins_over_timeout(void **state) {
    (void)state;
    shield_ctx c = {0};
    corio_test_run_checked(shield_main, &c);
    assert_int_equal(c.in_rc[0], 0);
    assert_int_equal(c.in_rc[1], 0);
    assert_int_equal(c.after_rc[0], CORIO_ECANCELED);
    assert_int_equal(c.after_rc[1], CORIO_ECANCELED);
    assert_int_equal(c.r.how, CORIO_ECANCELED);
}

static void test_shield_defers_cancel_but_not_inner_timeout(void **state) {
    (void)state;
    shield_ctx c = {.shield_only = true};
    corio_test_run_checked(shield_main, &c);
    assert_int_equal(c.cancel_rc, 0);
    assert_false(c.done_before_go); /* the cancel did not interrupt */
    assert_int_equal(c.in_rc[0], 0);
    assert_int_equal(c.in_rc[1], 0);
    assert_true(c.inside_flag);
    assert_int_equal(c.inner_timeout_rc, CORIO_ETIMEDOUT);
    assert_true(c.inner_elapsed >= 20);
    assert_int_equal(c.in_rc[2], 0);
    assert_int_equal(c.after_rc[0], CORIO_ECANCELED);
    assert_int_equal(c.after_rc[1], CORIO_ECANCELED);
}

/* ---- task groups ------------------------------------------------------------------------- */

typedef struct group_ctx {
    corio_task_group g;
    corio_event never, parent_go;
    corio_task *member[3];
    int started, finished;
    int member_rc[3], reason[3];
    int body_rc[2], after_rc[2], result, cancel_rc;
    int finished_at_exit, spawn_after, spawn_late, spawn_never;
    bool out_null;
    bool member_returns_rc; /* member_wait returns its await's code, else 0 */
    bool body_fails;        /* group_outer_main: the body fails, else times out */
    uint64_t member_sleep;
} group_ctx;

typedef struct member_arg {
    group_ctx *c;
    int i;
} member_arg;

/* Finishes after i+1 yields with result 10+i. */
static int member_ok(void *arg) {
    member_arg *m = arg;
    m->c->started++;
    for (int y = 0; y <= m->i; y++)
        SOFT(corio_yield() == 0);
    m->c->finished++;
    return 10 + m->i;
}

/* Waits forever (or sleeps); records how that ended, cleans up shielded. */
static int member_wait(void *arg) {
    member_arg *m = arg;
    group_ctx *c = m->c;
    c->started++;
    c->member_rc[m->i] =
        c->member_sleep ? corio_sleep(c->member_sleep) : corio_event_wait(&c->never);
    c->reason[m->i] = corio_task_cancel_reason(corio_current());
    if (m->i == 0) /* member 0 cleans up slowly, shielded */
        CORIO_WITH(corio_shield_scope()) SOFT(corio_sleep(2) == 0);
    c->finished++;
    return c->member_returns_rc ? c->member_rc[m->i] : 0;
}

/* Fails once the others have started. */
static int member_fail(void *arg) {
    member_arg *m = arg;
    while (m->c->started < 2)
        SOFT(corio_yield() == 0);
    return CORIO_EPIPE;
}

/* A member that spawns into its group once the body is done: the group's
 * exit is waiting for its members, and takes the newcomer too (asyncio's
 * TaskGroup does, until it aborts). */
static int member_spawns_late(void *arg) {
    member_arg *m = arg;
    SOFT(corio_event_wait(&m->c->parent_go) == 0);
    m->c->spawn_late = corio_task_group_spawn(&m->c->g, NULL, "late", member_ok, m);
    return 0;
}

static int group_ok_main(void *arg) {
    group_ctx *c = arg;
    member_arg m[4] = {{c, 0}, {c, 1}, {c, 2}, {c, 3}};
    corio_event_init(&c->parent_go);
    CORIO_WITH(corio_task_group_scope(&c->g)) {
        for (int i = 0; i < 3; i++)
            SOFT(corio_task_group_spawn(&c->g, &c->member[i], "member", member_ok, &m[i]) == 0);
        SOFT(corio_task_group_spawn(&c->g, NULL, "spawner", member_spawns_late, &m[3]) == 0);
        corio_event_set(&c->parent_go); /* the spawner runs once the exit waits */
    }
    c->finished_at_exit = c->finished;
    c->result = corio_task_group_result(&c->g);
    for (int i = 0; i < 3; i++) {
        SOFT(corio_task_done(c->member[i]));
        c->member_rc[i] = corio_future_result(corio_task_future(c->member[i]));
        corio_task_release(c->member[i]);
    }
    corio_task *t = (corio_task *)&c->g; /* must be reset to NULL */
    c->spawn_after = corio_task_group_spawn(&c->g, &t, "late", member_ok, &m[0]);
    c->out_null = t == NULL;
    corio_task_group never_entered = {0};
    c->spawn_never = corio_task_group_spawn(&never_entered, NULL, "x", member_ok, &m[0]);
    return 0;
}

static void test_group_waits_for_all_members_and_closes(void **state) {
    (void)state;
    group_ctx c = {0};
    corio_test_run_checked(group_ok_main, &c);
    assert_int_equal(c.finished_at_exit, 4); /* the exit waited for the late one */
    assert_int_equal(c.spawn_late, 0);       /* spawned while the exit waits */
    assert_int_equal(c.started, 4);
    assert_int_equal(c.result, 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(c.member_rc[i], 10 + i);
    assert_int_equal(c.spawn_after, CORIO_ECLOSED);
    assert_true(c.out_null);
    assert_int_equal(c.spawn_never, CORIO_ECLOSED);
}

static int group_fail_main(void *arg) {
    group_ctx *c = arg;
    member_arg m[3] = {{c, 0}, {c, 1}, {c, 2}};
    corio_event_init(&c->never);
    CORIO_WITH(corio_task_group_scope(&c->g)) {
        SOFT(corio_task_group_spawn(&c->g, NULL, "waits", member_wait, &m[0]) == 0);
        SOFT(corio_task_group_spawn(&c->g, NULL, "waits", member_wait, &m[1]) == 0);
        SOFT(corio_task_group_spawn(&c->g, NULL, "fails", member_fail, &m[2]) == 0);
        c->body_rc[0] = corio_event_wait(&c->never);
        c->body_rc[1] = corio_yield();
    }
    c->finished_at_exit = c->finished;
    c->after_rc[0] = corio_yield();
    c->after_rc[1] = corio_sleep(1);
    c->result = corio_task_group_result(&c->g);
    return 0;
}

static void test_group_failing_member_cancels_siblings_and_body(void **state) {
    (void)state;
    group_ctx c = {0};
    corio_test_run_checked(group_fail_main, &c);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c.member_rc[i], CORIO_ECANCELED);
        assert_int_equal(c.reason[i], CORIO_CANCEL_SIBLING);
    }
    assert_int_equal(c.finished_at_exit, 2);
    assert_int_equal(c.body_rc[0], CORIO_ECANCELED);
    assert_int_equal(c.body_rc[1], CORIO_ECANCELED);
    assert_int_equal(c.after_rc[0], 0);
    assert_int_equal(c.after_rc[1], 0);
    assert_int_equal(c.result, CORIO_EPIPE);
}

static int group_deadline_main(void *arg) {
    group_ctx *c = arg;
    member_arg m[2] = {{c, 0}, {c, 1}};
    corio_event_init(&c->never);
    c->member_sleep = 60000;
    CORIO_WITH(corio_task_group_scope_timeout(&c->g, 20)) {
        for (int i = 0; i < 2; i++)
            SOFT(corio_task_group_spawn(&c->g, NULL, "sleeps", member_wait, &m[i]) == 0);
        c->body_rc[0] = corio_event_wait(&c->never);
    }
    c->finished_at_exit = c->finished;
    c->after_rc[0] = corio_yield();
    c->result = corio_task_group_result(&c->g);
    return 0;
}

/* Members either absorb the timeout (return 0) or pass it on (return
 * CORIO_ETIMEDOUT): neither way is a sibling failure that turns the others'
 * or the body's timeout into a cancel. */
static void test_group_deadline_times_out_members(void **state) {
    (void)state;
    for (int returns_rc = 0; returns_rc <= 1; returns_rc++) {
        group_ctx c = {.member_returns_rc = returns_rc};
        corio_test_run_checked(group_deadline_main, &c);
        assert_int_equal(c.member_rc[0], CORIO_ETIMEDOUT);
        assert_int_equal(c.member_rc[1], CORIO_ETIMEDOUT);
        assert_int_equal(c.body_rc[0], CORIO_ETIMEDOUT);
        assert_int_equal(c.finished_at_exit, 2);
        assert_int_equal(c.after_rc[0], 0);
        assert_int_equal(c.result, CORIO_ETIMEDOUT);
    }
}

/* The body ends by a deadline the members do not see (an enclosing timeout
 * scope) or by an error: the members are cancelled and awaited. */
static int group_outer_main(void *arg) {
    group_ctx *c = arg;
    member_arg m[2] = {{c, 0}, {c, 1}};
    corio_event_init(&c->never);
    CORIO_WITH(corio_timeout_scope(c->body_fails ? 3600 * 1000 : 20)) {
        CORIO_WITH(corio_task_group_scope(&c->g)) {
            for (int i = 0; i < 2; i++)
                SOFT(corio_task_group_spawn(&c->g, NULL, "waits", member_wait, &m[i]) == 0);
            settle(2);
            if (c->body_fails) {
                corio_scope_fail(CORIO_EPIPE);
                break;
            }
            c->body_rc[0] = corio_event_wait(&c->never);
        }
        c->finished_at_exit = c->finished;
    }
    c->result = corio_task_group_result(&c->g);
    return 0;
}

static void test_group_body_timeout_or_error_cancels_members(void **state) {
    (void)state;
    for (int fails = 0; fails <= 1; fails++) {
        group_ctx c = {.body_fails = fails};
        corio_test_run_checked(group_outer_main, &c);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(c.member_rc[i], CORIO_ECANCELED);
            assert_int_equal(c.reason[i], fails ? CORIO_CANCEL_SIBLING : CORIO_CANCEL_TIMEOUT);
        }
        assert_int_equal(c.body_rc[0], fails ? 0 : CORIO_ETIMEDOUT);
        assert_int_equal(c.finished_at_exit, 2);
        assert_int_equal(c.result, fails ? CORIO_EPIPE : CORIO_ETIMEDOUT);
    }
}

/* The parent is cancelled while its body waits inside the group. */
static int group_parent_task(void *arg) {
    group_ctx *c = arg;
    member_arg m[2] = {{c, 0}, {c, 1}};
    CORIO_WITH(corio_task_group_scope(&c->g)) {
        for (int i = 0; i < 2; i++)
            SOFT(corio_task_group_spawn(&c->g, NULL, "waits", member_wait, &m[i]) == 0);
        corio_event_set(&c->parent_go);
        c->body_rc[0] = corio_event_wait(&c->never);
    }
    c->finished_at_exit = c->finished;
    c->after_rc[0] = corio_yield();
    return 0;
}

static int group_parent_cancel_main(void *arg) {
    group_ctx *c = arg;
    corio_event_init(&c->never);
    corio_event_init(&c->parent_go);
    corio_task *p = corio_test_spawn("parent", group_parent_task, c);
    SOFT(corio_event_wait(&c->parent_go) == 0);
    while (c->started < 2)
        SOFT(corio_yield() == 0);
    c->cancel_rc = corio_cancel(p);
    SOFT(corio_test_join(p) == 0);
    return 0;
}

static void test_group_parent_cancel_cancels_and_awaits_members(void **state) {
    (void)state;
    group_ctx c = {0};
    corio_test_run_checked(group_parent_cancel_main, &c);
    assert_int_equal(c.cancel_rc, 0);
    assert_int_equal(c.body_rc[0], CORIO_ECANCELED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c.member_rc[i], CORIO_ECANCELED);
        assert_int_equal(c.reason[i], CORIO_CANCEL_USER); /* the parent's reason */
    }
    assert_int_equal(c.finished_at_exit, 2); /* waited for their cleanup */
    assert_int_equal(c.after_rc[0], CORIO_ECANCELED);
}

/* ---- a failure reaches every scope the return leaves --------------------------------- */

/* A transaction-like resource is a rec: its log says "-T:0" (commit) or
 * "-T:<code>" (roll back). */

enum mid { MID_TIMEOUT, MID_LOCK, MID_SEM, MID_SHIELD, MID_ALL, MIDS };
static const char *const mid_names[MIDS] = {"timeout", "lock", "semaphore", "shield", "all four"};

/* How the failure starts: `return corio_scope_fail(rc)` in the innermost
 * scope; in a helper with a scope of its own, the caller passing the code on
 * with a plain `return rc`; in a helper without a scope (it marks the
 * caller's innermost scope), the same plain return. */
enum origin { ORIGIN_DIRECT, ORIGIN_HELPER_SCOPE, ORIGIN_HELPER_PLAIN, ORIGINS };

typedef struct chain_ctx {
    enum mid mid;
    enum origin origin;
    text_log log;
    corio_lock lock;
    corio_semaphore sem;
    int result, locked_after;
    size_t sem_after;
} chain_ctx;

static int helper_with_scope(text_log *log) {
    rec in = {.name = "I", .log = log};
    CORIO_WITH(rec_scope(&in)) {
        return corio_scope_fail(CORIO_EPIPE);
    }
    return 0;
}

static int helper_plain(void) {
    return corio_scope_fail(CORIO_EPIPE);
}

/* M is the innermost scope of the function: T > mid scope(s) > M. */
static int chain_inner(chain_ctx *c) {
    rec m = {.name = "M", .log = &c->log};
    CORIO_WITH(rec_scope(&m)) {
        if (c->origin == ORIGIN_DIRECT)
            return corio_scope_fail(CORIO_EPIPE);
        int rc = c->origin == ORIGIN_HELPER_SCOPE ? helper_with_scope(&c->log) : helper_plain();
        if (rc < 0)
            return rc; /* plain return: the failure goes on */
    }
    return 0;
}

static int chain_task(void *arg) {
    chain_ctx *c = arg;
    rec txn = {.name = "T", .log = &c->log};
    CORIO_WITH(rec_scope(&txn)) {
        switch (c->mid) {
        case MID_TIMEOUT:
            CORIO_WITH(corio_timeout_scope(60000)) return chain_inner(c);
            break;
        case MID_LOCK:
            CORIO_WITH(corio_lock_scope(&c->lock)) return chain_inner(c);
            break;
        case MID_SEM:
            CORIO_WITH(corio_semaphore_scope(&c->sem)) return chain_inner(c);
            break;
        case MID_SHIELD:
            CORIO_WITH(corio_shield_scope()) return chain_inner(c);
            break;
        default:
            CORIO_WITH(corio_timeout_scope(60000))
            CORIO_WITH(corio_lock_scope(&c->lock))
            CORIO_WITH(corio_semaphore_scope(&c->sem))
            CORIO_WITH(corio_shield_scope()) return chain_inner(c);
        }
        logf_(&c->log, "not reached ");
    }
    return 0;
}

static int chain_main(void *arg) {
    chain_ctx *c = arg;
    corio_lock_init(&c->lock);
    corio_semaphore_init(&c->sem, 1);
    c->result = corio_test_join(corio_test_spawn("chain", chain_task, c));
    c->locked_after = corio_lock_locked(&c->lock);
    c->sem_after = corio_semaphore_value(&c->sem);
    return 0;
}

static void test_failing_return_fails_every_scope_it_leaves(void **state) {
    (void)state;
    static const char *const want[ORIGINS] = {
        [ORIGIN_DIRECT] = "+T +M -M:EPIPE -T:EPIPE ",
        [ORIGIN_HELPER_SCOPE] = "+T +M +I -I:EPIPE -M:EPIPE -T:EPIPE ",
        [ORIGIN_HELPER_PLAIN] = "+T +M -M:EPIPE -T:EPIPE ",
    };
    for (int m = 0; m < MIDS; m++) {
        for (int o = 0; o < ORIGINS; o++) {
            chain_ctx c = {.mid = (enum mid)m, .origin = (enum origin)o};
            corio_test_run_checked(chain_main, &c);
            if (strcmp(c.log.buf, want[o]) != 0)
                fail_msg("%s between, origin %d: log \"%s\", expected \"%s\"", mid_names[m], o,
                         c.log.buf, want[o]);
            assert_int_equal(c.result, CORIO_EPIPE);
            assert_false(c.locked_after);
            assert_int_equal(c.sem_after, 1);
        }
    }
}

/* ---- a failure handled inside: the outer scope ends normally ---------------------------- */

enum handled { H_BREAK, H_TIMEOUT, H_HELPER, H_HANDLED_RETURN, H_MARK_HANDLED, H_MARK_STAYS, HS };

typedef struct handled_ctx {
    enum handled how;
    text_log log;
    int rc, dropped, result;
} handled_ctx;

static int handled_task(void *arg) {
    handled_ctx *c = arg;
    rec txn = {.name = "T", .log = &c->log};
    rec sp = {.name = "S", .log = &c->log};
    CORIO_WITH(rec_scope(&txn)) {
        switch (c->how) {
        case H_BREAK: /* a savepoint rolls back, the transaction goes on */
            CORIO_WITH(rec_scope(&sp)) {
                corio_scope_fail(CORIO_EPIPE);
                break;
            }
            break;
        case H_TIMEOUT: /* an inner deadline, handled */
            CORIO_WITH(corio_timeout_scope(10)) c->rc = corio_sleep(60000);
            break;
        case H_HELPER: /* a helper's failing return, handled by going on */
            c->rc = helper_with_scope(&c->log);
            break;
        case H_HANDLED_RETURN: /* handled, then an early successful return */
            c->rc = helper_with_scope(&c->log);
            if (c->rc < 0) {
                c->dropped = corio_scope_handled();
                return 0;
            }
            break;
        case H_MARK_HANDLED:
            c->rc = corio_scope_fail(CORIO_EPIPE);
            c->dropped = corio_scope_handled();
            break;
        default: /* corio_scope_fail's mark stays to the end of its scope */
            c->rc = corio_scope_fail(CORIO_EPIPE);
        }
        logf_(&c->log, "on ");
    }
    return 0;
}

static int handled_main(void *arg) {
    handled_ctx *c = arg;
    c->result = corio_test_join(corio_test_spawn("handled", handled_task, c));
    return 0;
}

static void test_failure_handled_inside_outer_scope_ends_normally(void **state) {
    (void)state;
    static const char *const want[HS] = {
        [H_BREAK] = "+T +S -S:EPIPE on -T:0 ",  [H_TIMEOUT] = "+T on -T:0 ",
        [H_HELPER] = "+T +I -I:EPIPE on -T:0 ", [H_HANDLED_RETURN] = "+T +I -I:EPIPE -T:0 ",
        [H_MARK_HANDLED] = "+T on -T:0 ",       [H_MARK_STAYS] = "+T on -T:EPIPE ",
    };
    static const int want_rc[HS] = {[H_TIMEOUT] = CORIO_ETIMEDOUT,
                                    [H_HELPER] = CORIO_EPIPE,
                                    [H_HANDLED_RETURN] = CORIO_EPIPE,
                                    [H_MARK_HANDLED] = CORIO_EPIPE,
                                    [H_MARK_STAYS] = CORIO_EPIPE};
    static const int want_dropped[HS] = {
        [H_HANDLED_RETURN] = CORIO_EPIPE, [H_MARK_HANDLED] = CORIO_EPIPE};
    for (int h = 0; h < HS; h++) {
        handled_ctx c = {.how = (enum handled)h};
        corio_test_run_checked(handled_main, &c);
        if (strcmp(c.log.buf, want[h]) != 0)
            fail_msg("case %d: log \"%s\", expected \"%s\"", h, c.log.buf, want[h]);
        assert_int_equal(c.rc, want_rc[h]);
        assert_int_equal(c.dropped, want_dropped[h]);
        assert_int_equal(c.result, 0);
    }
}

/* ---- break, continue and goto out of two scopes ---------------------------------------- */

enum jump {
    J_GOTO_FAIL,       /* corio_scope_fail; goto past both: both fail */
    J_GOTO_OK,         /* goto past both without a failure: both normal */
    J_GOTO_INTO_OUTER, /* goto a label in the outer body: only the inner fails */
    J_CONTINUE_LOOP,   /* a user loop's `continue` out of both, by goto */
    J_BREAK_ONE,       /* break leaves one scope: the outer body ends normally */
    J_BREAK_BOTH,      /* failing both with a break each */
    J_BREAK_PASSED,    /* break after a helper's failing return: the outer fails */
    J_CONTINUE_INNER,  /* continue is the inner body's normal end */
    JUMPS
};

typedef struct jump_ctx {
    enum jump jump;
    text_log log;
    int result;
} jump_ctx;

static int jump_task(void *arg) {
    jump_ctx *c = arg;
    rec a = {.name = "A", .log = &c->log}, b = {.name = "B", .log = &c->log};
    if (c->jump == J_CONTINUE_LOOP) {
        for (int i = 0; i < 2; i++) {
            CORIO_WITH(rec_scope(&a)) {
                CORIO_WITH(rec_scope(&b)) {
                    if (i == 0) {
                        corio_scope_fail(CORIO_EPIPE);
                        goto next; /* continue the for loop, leaving both */
                    }
                }
            }
        next:
            logf_(&c->log, "| ");
        }
        return 0;
    }
    CORIO_WITH(rec_scope(&a)) {
        int rc = 0;
        CORIO_WITH(rec_scope(&b)) {
            switch (c->jump) {
            case J_GOTO_FAIL:
                corio_scope_fail(CORIO_EPIPE);
                goto out;
            case J_GOTO_OK:
                goto out;
            case J_GOTO_INTO_OUTER:
                corio_scope_fail(CORIO_EPIPE);
                goto in_outer;
            case J_BREAK_ONE:
            case J_BREAK_BOTH:
                rc = corio_scope_fail(CORIO_EPIPE);
                break;
            case J_BREAK_PASSED:
                break;
            default:
                corio_scope_fail(CORIO_EPIPE);
                continue;
            }
        }
        if (c->jump == J_BREAK_PASSED && helper_with_scope(&c->log) < 0)
            break;
        if (c->jump == J_BREAK_BOTH && rc < 0) {
            corio_scope_fail(rc);
            break;
        }
    in_outer:
        logf_(&c->log, "in A ");
    }
out:
    logf_(&c->log, "out");
    return 0;
}

static int jump_main(void *arg) {
    jump_ctx *c = arg;
    c->result = corio_test_join(corio_test_spawn("jumps", jump_task, c));
    return 0;
}

static void test_break_continue_goto_out_of_two_scopes(void **state) {
    (void)state;
    static const char *const want[JUMPS] = {
        [J_GOTO_FAIL] = "+A +B -B:EPIPE -A:EPIPE out",
        [J_GOTO_OK] = "+A +B -B:0 -A:0 out",
        [J_GOTO_INTO_OUTER] = "+A +B -B:EPIPE in A -A:0 out",
        [J_CONTINUE_LOOP] = "+A +B -B:EPIPE -A:EPIPE | +A +B -B:0 -A:0 | ",
        [J_BREAK_ONE] = "+A +B -B:EPIPE in A -A:0 out",
        [J_BREAK_BOTH] = "+A +B -B:EPIPE -A:EPIPE out",
        [J_BREAK_PASSED] = "+A +B -B:0 +I -I:EPIPE -A:EPIPE out",
        [J_CONTINUE_INNER] = "+A +B -B:EPIPE in A -A:0 out",
    };
    for (int j = 0; j < JUMPS; j++) {
        jump_ctx c = {.jump = (enum jump)j};
        corio_test_run_checked(jump_main, &c);
        if (strcmp(c.log.buf, want[j]) != 0)
            fail_msg("case %d: log \"%s\", expected \"%s\"", j, c.log.buf, want[j]);
        assert_int_equal(c.result, 0);
    }
}

/* ---- cancellation and deadlines in the middle of the chain ---------------------------- */

enum middle {
    MD_DEADLINE_FAIL,     /* T > timeout > lock > M: return corio_scope_fail(ETIMEDOUT) */
    MD_DEADLINE_PLAIN,    /* the same with a plain `return rc` */
    MD_DEADLINE_SHIELDED, /* T > shield > timeout > M */
    MD_GROUP_FAIL,        /* T > task group (a member fails) > M: ECANCELED */
    MD_DEADLINE_HANDLED,  /* the deadline's failure handled: T commits */
    MD_GROUP_HANDLED,     /* the group's cancellation handled: T commits */
    MD_TASK_CANCELLED,    /* the task cancelled: every scope sees ECANCELED */
    MDS
};

typedef struct middle_ctx {
    enum middle what;
    text_log log;
    corio_lock lock;
    corio_event never, waiting;
    corio_task_group g;
    int rc, result, group_result, locked_after;
} middle_ctx;

static int fails_soon(void *arg) {
    (void)arg;
    SOFT(corio_yield() == 0);
    return CORIO_EPIPE;
}

static int middle_inner(middle_ctx *c) {
    rec m = {.name = "M", .log = &c->log};
    CORIO_WITH(rec_scope(&m)) {
        switch (c->what) {
        case MD_GROUP_FAIL:
        case MD_GROUP_HANDLED:
        case MD_TASK_CANCELLED:
            corio_event_set(&c->waiting);
            c->rc = corio_event_wait(&c->never);
            break;
        default:
            c->rc = corio_sleep(60000);
        }
        if (c->what == MD_DEADLINE_HANDLED || c->what == MD_GROUP_HANDLED)
            return 0; /* handled: M itself still sees the deadline/cancel */
        if (c->what == MD_DEADLINE_PLAIN)
            return c->rc;
        return corio_scope_fail(c->rc);
    }
    return 0;
}

static int middle_task(void *arg) {
    middle_ctx *c = arg;
    rec txn = {.name = "T", .log = &c->log};
    int rc = 0;
    CORIO_WITH(rec_scope(&txn)) {
        switch (c->what) {
        case MD_DEADLINE_SHIELDED:
            CORIO_WITH(corio_shield_scope())
            CORIO_WITH(corio_timeout_scope(20)) return middle_inner(c);
            break;
        case MD_GROUP_FAIL:
        case MD_GROUP_HANDLED:
            CORIO_WITH(corio_task_group_scope(&c->g)) {
                SOFT(corio_task_group_spawn(&c->g, NULL, "fails", fails_soon, NULL) == 0);
                rc = middle_inner(c);
                if (rc < 0)
                    return rc;
            }
            c->group_result = corio_task_group_result(&c->g);
            break;
        case MD_TASK_CANCELLED:
            return middle_inner(c);
        default:
            CORIO_WITH(corio_timeout_scope(20)) CORIO_WITH(corio_lock_scope(&c->lock)) {
                rc = middle_inner(c);
                if (rc < 0)
                    return rc;
            }
        }
        logf_(&c->log, "on ");
    }
    return rc;
}

static int middle_main(void *arg) {
    middle_ctx *c = arg;
    corio_lock_init(&c->lock);
    corio_event_init(&c->never);
    corio_event_init(&c->waiting);
    corio_task *t = corio_test_spawn("middle", middle_task, c);
    if (c->what == MD_TASK_CANCELLED) {
        SOFT(corio_event_wait(&c->waiting) == 0);
        SOFT(corio_cancel(t) == 0);
    }
    c->result = corio_test_join(t);
    c->locked_after = corio_lock_locked(&c->lock);
    if (c->what == MD_GROUP_FAIL)
        c->group_result = corio_task_group_result(&c->g);
    return 0;
}

static void test_cancel_and_deadline_in_the_middle_of_the_chain(void **state) {
    (void)state;
    static const char *const want[MDS] = {
        [MD_DEADLINE_FAIL] = "+T +M -M:ETIMEDOUT -T:ETIMEDOUT ",
        [MD_DEADLINE_PLAIN] = "+T +M -M:ETIMEDOUT -T:ETIMEDOUT ",
        [MD_DEADLINE_SHIELDED] = "+T +M -M:ETIMEDOUT -T:ETIMEDOUT ",
        [MD_GROUP_FAIL] = "+T +M -M:ECANCELED -T:ECANCELED ",
        [MD_DEADLINE_HANDLED] = "+T +M -M:ETIMEDOUT on -T:0 ",
        [MD_GROUP_HANDLED] = "+T +M -M:ECANCELED on -T:0 ",
        [MD_TASK_CANCELLED] = "+T +M -M:ECANCELED -T:ECANCELED ",
    };
    static const int want_rc[MDS] = {
        [MD_DEADLINE_FAIL] = CORIO_ETIMEDOUT,     [MD_DEADLINE_PLAIN] = CORIO_ETIMEDOUT,
        [MD_DEADLINE_SHIELDED] = CORIO_ETIMEDOUT, [MD_GROUP_FAIL] = CORIO_ECANCELED,
        [MD_DEADLINE_HANDLED] = CORIO_ETIMEDOUT,  [MD_GROUP_HANDLED] = CORIO_ECANCELED,
        [MD_TASK_CANCELLED] = CORIO_ECANCELED,
    };
    for (int w = 0; w < MDS; w++) {
        middle_ctx c = {.what = (enum middle)w};
        corio_test_run_checked(middle_main, &c);
        if (strcmp(c.log.buf, want[w]) != 0)
            fail_msg("case %d: log \"%s\", expected \"%s\"", w, c.log.buf, want[w]);
        assert_int_equal(c.rc, want_rc[w]);
        bool handled = w == MD_DEADLINE_HANDLED || w == MD_GROUP_HANDLED;
        assert_int_equal(c.result, handled ? 0 : want_rc[w]);
        if (w == MD_GROUP_FAIL || w == MD_GROUP_HANDLED)
            assert_int_equal(c.group_result, CORIO_EPIPE);
        assert_false(c.locked_after);
    }
}

/* ---- longjmp out of a scope: the next scope operation aborts, naming the task ---------- */

enum ljmp { LJ_ENTER, LJ_LEAVE, LJ_FAIL, LJS };

static jmp_buf ljmp_buf;
static enum ljmp ljmp_mode;
static rec ljmp_rec;
static text_log ljmp_log;

static __attribute__((noinline)) void jump_out_of_scope(void) {
    CORIO_WITH(rec_scope(&ljmp_rec)) longjmp(ljmp_buf, 1);
}

static int jumper_task(void *arg) {
    (void)arg;
    if (ljmp_mode == LJ_LEAVE) {
        CORIO_WITH(corio_shield_scope()) {
            if (setjmp(ljmp_buf) == 0)
                jump_out_of_scope();
        } /* leaving this scope finds the dead one innermost: abort */
        return 0;
    }
    if (setjmp(ljmp_buf) == 0)
        jump_out_of_scope();
    if (ljmp_mode == LJ_FAIL)
        return corio_scope_fail(CORIO_EPIPE);
    CORIO_WITH(corio_shield_scope()) SOFT(corio_yield() == 0);
    return 0;
}

static int jumper_main(void *arg) {
    (void)arg;
    corio_task *t;
    if (corio_spawn(&t, "jumper", jumper_task, NULL) < 0)
        return CORIO_EFAILED;
    (void)corio_await(t);
    corio_task_release(t);
    return 0;
}

/* Runs jumper_main in a child; returns its wait status, its stderr in err. */
static int run_jumper_child(enum ljmp mode, char *err, size_t cap) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit no_core = {0, 0};
        (void)setrlimit(RLIMIT_CORE, &no_core);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        alarm(30); /* never hang the test */
        ljmp_mode = mode;
        ljmp_rec = (rec){.name = "J", .log = &ljmp_log};
        corio_run(jumper_main, NULL);
        fprintf(stderr, "child: corio_run returned\n");
        _exit(3);
    }
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], err + len, cap - 1 - len)) > 0)
        len += (size_t)n;
    err[len] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

/* Whether locals live on ASan's fake stack (detect_stack_use_after_return):
 * there the frame check is off and only the leave-order check applies. */
static bool fake_stack_locals(void) {
#if defined(__SANITIZE_ADDRESS__)
    return __asan_get_current_fake_stack() != NULL;
#else
    return false;
#endif
}

static void test_longjmp_out_of_scope_aborts_naming_the_task(void **state) {
    (void)state;
    bool fake = fake_stack_locals();
    static const char *const what[LJS] = {"CORIO_WITH in task 'jumper'",
                                          "leaving a CORIO_WITH in task 'jumper'",
                                          "corio_scope_fail in task 'jumper'"};
    for (int m = 0; m < LJS; m++) {
        if (fake && m != LJ_LEAVE)
            continue;
        char err[8192];
        int status = run_jumper_child((enum ljmp)m, err, sizeof err);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
            fail_msg("mode %d: child status 0x%x, not SIGABRT; stderr:\n%s", m, status, err);
        if (!strstr(err, what[m]) || !strstr(err, "longjmp out of a scope is not supported"))
            fail_msg("mode %d: stderr lacks \"%s\":\n%s", m, what[m], err);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_hooks_lifo_on_every_way_out),
        cmocka_unit_test(test_exit_hook_awaits_shielded_and_bounded),
        cmocka_unit_test(test_enter_failure_skips_body_and_exit),
        cmocka_unit_test(test_lock_and_semaphore_scope_cancel_or_timeout_while_entering),
        cmocka_unit_test(test_timeout_scope_deadlines),
        cmocka_unit_test(test_cancel_wins_over_timeout),
        cmocka_unit_test(test_shield_defers_cancel_but_not_inner_timeout),
        cmocka_unit_test(test_group_waits_for_all_members_and_closes),
        cmocka_unit_test(test_group_failing_member_cancels_siblings_and_body),
        cmocka_unit_test(test_group_deadline_times_out_members),
        cmocka_unit_test(test_group_body_timeout_or_error_cancels_members),
        cmocka_unit_test(test_group_parent_cancel_cancels_and_awaits_members),
        cmocka_unit_test(test_failing_return_fails_every_scope_it_leaves),
        cmocka_unit_test(test_failure_handled_inside_outer_scope_ends_normally),
        cmocka_unit_test(test_break_continue_goto_out_of_two_scopes),
        cmocka_unit_test(test_cancel_and_deadline_in_the_middle_of_the_chain),
        cmocka_unit_test(test_longjmp_out_of_scope_aborts_naming_the_task),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
