/* SPDX-License-Identifier: MIT */
/* PostgreSQL connections (corio/pg.h): connect, close, and the one way a
 * call waits on the socket.
 *
 * Waiting is a corio future completed from a uv_poll_t callback: the task
 * awaits the future, so its deadlines and cancels apply as to any await
 * (task.h's table: the future's cancel hook stops the poll).  The poll is
 * one shot, started for each wait and stopped when it fires, so libpq may
 * close and replace the socket between waits (it does while connecting, one
 * socket per address) without libuv watching a dead descriptor.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/report.h"
#include "corio/loop.h"
#include "corio/scope.h"
#include "corio/task.h"
#include "pg_internal.h"

/* ---- errors ---------------------------------------------------------------------------- */

/* A failed connect has no connection to carry its message: kept per thread. */
static __thread char connect_message[512];
static __thread char connect_sqlstate[6];

static char *dup_trimmed(const char *s) {
    size_t n = s ? strlen(s) : 0;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
        n--;
    char *d = malloc(n + 1);
    if (d) {
        if (n)
            memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void corio__pg_clear_error(corio_pg_conn *c) {
    free(c->message);
    free(c->detail);
    c->message = NULL;
    c->detail = NULL;
    c->sqlstate[0] = '\0';
}

void corio__pg_set_error(corio_pg_conn *c, const char *sqlstate, const char *message,
                         const char *detail) {
    if (!c) {
        char *m = dup_trimmed(message);
        snprintf(connect_message, sizeof connect_message, "%s", m ? m : "out of memory");
        free(m);
        snprintf(connect_sqlstate, sizeof connect_sqlstate, "%s", sqlstate ? sqlstate : "");
        return;
    }
    corio__pg_clear_error(c);
    c->message = dup_trimmed(message);
    c->detail = detail && *detail ? dup_trimmed(detail) : NULL;
    snprintf(c->sqlstate, sizeof c->sqlstate, "%s", sqlstate ? sqlstate : "");
}

void corio__pg_set_libpq_error(corio_pg_conn *c) {
    corio__pg_set_error(c, NULL, PQerrorMessage(c->pg), NULL);
}

const char *corio_pg_error(const corio_pg_conn *c) {
    if (!c)
        return connect_message;
    return c->message ? c->message : "";
}

const char *corio_pg_sqlstate(const corio_pg_conn *c) {
    return c ? c->sqlstate : connect_sqlstate;
}

const char *corio_pg_error_detail(const corio_pg_conn *c) {
    return c && c->detail ? c->detail : "";
}

/* ---- the socket watcher ------------------------------------------------------------------ */

static void on_watch_closed(uv_handle_t *h) {
    free(h->data);
}

static void watch_close(corio__pg_watch *w) {
    w->f = NULL; /* a wait in progress was completed or given up by now */
    uv_close((uv_handle_t *)&w->poll, on_watch_closed); /* stops the poll at once */
}

static void on_poll(uv_poll_t *h, int status, int events) {
    corio__pg_watch *w = h->data;
    uv_poll_stop(h);
    corio_future *f = w->f;
    w->f = NULL;
    /* A socket error (libuv reports POLLERR as a failed status) is for
     * libpq to find and describe: it reads or writes next and fails. */
    if (f)
        corio_future_complete(f, status < 0 ? UV_READABLE | UV_WRITABLE : events, NULL);
}

/* The await was cut short (a deadline, a cancel): stop watching. */
static void on_wait_cancel(corio_future *f, void *data) {
    corio__pg_watch *w = data;
    if (w->f == f) {
        uv_poll_stop(&w->poll);
        w->f = NULL;
    }
}

int corio__pg_wait(corio_pg_conn *c, int events) {
    if (c->closing)
        return CORIO_ECLOSED;
    uv_loop_t *loop = corio_uv_loop();
    if (!loop)
        return CORIO_ENOTASK;
    int fd = PQsocket(c->pg);
    if (fd < 0)
        return CORIO_ECLOSED;
    if (c->watch && c->watch->fd != fd) {
        watch_close(c->watch);
        c->watch = NULL;
    }
    if (!c->watch) {
        corio__pg_watch *w = calloc(1, sizeof *w);
        if (!w)
            return CORIO_ENOMEM;
        int rc = uv_poll_init(loop, &w->poll, fd);
        if (rc) {
            free(w);
            return rc;
        }
        w->poll.data = w;
        w->fd = fd;
        c->watch = w;
    }
    corio__pg_watch *w = c->watch;
    corio_future *f;
    int rc = corio_future_new(&f);
    if (rc)
        return rc;
    w->f = f;
    corio_future_on_cancel(f, on_wait_cancel, w);
    rc = uv_poll_start(&w->poll, events, on_poll);
    if (rc == 0)
        rc = corio_future_await(f);
    if (w->f == f) { /* not fired: a failed start, a deadline, a cancel */
        uv_poll_stop(&w->poll);
        w->f = NULL;
    }
    corio_future_release(f);
    return c->closing ? CORIO_ECLOSED : rc;
}

/* ---- connect and close ------------------------------------------------------------------- */

void corio__pg_conn_free(corio_pg_conn *c) {
    if (c->watch) /* before PQfinish closes the socket under it */
        watch_close(c->watch);
    if (c->pg)
        PQfinish(c->pg);
    corio__pg_clear_error(c);
    corio__pg_stmts_free(c);
    free(c);
}

/* A failed connect's code, its message recorded if none was. */
static int connect_failed(int rc) {
    if (!connect_message[0])
        corio__pg_set_error(NULL, NULL, corio_strerror(rc), NULL);
    return rc;
}

/* What a failed PQconnectPoll means, by libpq's message (recorded, naming
 * the server when libpq does not). */
static int connect_failure(corio_pg_conn *c) {
    const char *m = PQerrorMessage(c->pg);
    if (strncmp(m, "connection to server", 20) == 0 || !PQhost(c->pg) || !*PQhost(c->pg)) {
        corio__pg_set_error(NULL, NULL, m, NULL);
    } else {
        size_t cap = strlen(m) + 600;
        char *full = malloc(cap);
        if (full)
            snprintf(full, cap, "connection to server at \"%.256s\", port %.16s failed: %s",
                     PQhost(c->pg), PQport(c->pg) ? PQport(c->pg) : "", m);
        corio__pg_set_error(NULL, NULL, full ? full : m, NULL);
        free(full);
    }
    if (strstr(m, "Connection refused"))
        return CORIO_ECONNREFUSED;
    if (strstr(m, "timeout expired"))
        return CORIO_ETIMEDOUT;
    return CORIO_EFAILED;
}

static int poll_connect(corio_pg_conn *c) {
    PostgresPollingStatusType st = PGRES_POLLING_WRITING; /* as libpq's docs say */
    for (;;) {
        int rc = 0;
        switch (st) {
        case PGRES_POLLING_OK:
            return 0;
        case PGRES_POLLING_FAILED:
            return connect_failure(c);
        case PGRES_POLLING_READING:
            rc = corio__pg_wait(c, UV_READABLE);
            break;
        case PGRES_POLLING_WRITING:
            rc = corio__pg_wait(c, UV_WRITABLE);
            break;
        default: /* PGRES_POLLING_ACTIVE: unused since libpq 7.4, poll again */
            break;
        }
        if (rc < 0)
            return rc;
        st = PQconnectPoll(c->pg);
    }
}

/* conninfo's connect_timeout in ms (libpq's non-blocking connect ignores
 * it), 0 if none.  libpq treats values below 2 s as 2 s. */
static uint64_t connect_timeout_ms(PGconn *pg) {
    PQconninfoOption *opts = PQconninfo(pg);
    uint64_t ms = 0;
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val && *o->val) {
            /* libpq's reading: whole seconds, at least 2, at most INT_MAX
             * (a bigger one must not wrap round to a short timeout) */
            long long s = strtoll(o->val, NULL, 10);
            if (s > 0)
                ms = (uint64_t)(s < 2 ? 2 : s > INT_MAX ? INT_MAX : s) * 1000;
        }
    }
    PQconninfoFree(opts);
    return ms;
}

static int connect_in(corio_pg_conn *c) {
    uint64_t ms = connect_timeout_ms(c->pg);
    if (ms == 0)
        return poll_connect(c);
    int rc = 0;
    CORIO_WITH(corio_timeout_scope(ms)) {
        rc = poll_connect(c);
    }
    return rc;
}

int corio_pg_connect(corio_pg_conn **out, const char *conninfo) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    if (!conninfo) {
        corio__pg_set_error(NULL, NULL, "corio_pg_connect: conninfo is NULL", NULL);
        return CORIO_EINVAL;
    }
    if (!corio_current()) {
        corio__report("corio_pg_connect called outside a task");
        return CORIO_ENOTASK;
    }
    connect_message[0] = '\0';
    connect_sqlstate[0] = '\0';
    char **keys, **vals;
    int rc = corio__pg_params(conninfo, &keys, &vals);
    if (rc < 0)
        return connect_failed(rc);
    corio_pg_conn *c = calloc(1, sizeof *c);
    if (!c) {
        corio__pg_params_free(keys, vals);
        return connect_failed(CORIO_ENOMEM);
    }
    c->pg = PQconnectStartParams((const char *const *)keys, (const char *const *)vals, 0);
    corio__pg_params_free(keys, vals);
    if (!c->pg)
        rc = CORIO_ENOMEM;
    else if (PQstatus(c->pg) == CONNECTION_BAD || PQsetnonblocking(c->pg, 1) != 0)
        rc = connect_failure(c);
    else
        rc = connect_in(c);
    if (rc < 0) {
        corio__pg_conn_free(c);
        return connect_failed(rc);
    }
    *out = c;
    return 0;
}

void corio_pg_close(corio_pg_conn *c) {
    if (!c)
        return;
    if (c->closing) {
        corio__report("corio_pg_close called twice on one connection");
        return;
    }
    if (!c->busy) {
        corio__pg_conn_free(c);
        return;
    }
    /* A task is inside a call: fail its wait; the call frees c on its way out. */
    c->closing = true;
    if (c->cancel_wait) /* the call waits on its cancel job: it ends now */
        corio_future_complete(c->cancel_wait, CORIO_ECLOSED, NULL);
    corio__pg_watch *w = c->watch;
    if (w && w->f) {
        corio_future *f = w->f;
        w->f = NULL;
        uv_poll_stop(&w->poll);
        corio_future_complete(f, CORIO_ECLOSED, NULL);
    }
}
