/* SPDX-License-Identifier: MIT */
/* Servers: listening sockets, accepting, one task per connection inside a
 * connection scope (see corio/server.h).
 *
 * TLS.  With opts.tls, the connection's task completes the handshake before
 * the handler runs, rather than lazily on the handler's first read or
 * write: the handler then sees a finished handshake (the ALPN protocol is
 * known before it writes a byte), the handshake deadline covers exactly the
 * handshake, and a failure ends the connection without the handler ever
 * running.  The task's stack is the connection's anyway, so an eager
 * handshake costs nothing extra.
 *
 * The listening socket is created here rather than by libuv so that
 * SO_REUSEPORT can be set before bind (libuv 1.44 has no flag for it); libuv
 * then adopts it (uv_tcp_open).  At the connection cap the connection
 * callback does not accept: libuv then stops polling the socket until
 * uv_accept() is called, which the server does as a connection ends.
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#if defined(__GLIBC__)
#include <malloc.h> /* malloc_trim */
#endif
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "corio/server.h"
#include "net/listen.h"
#include "net/stream_internal.h"
#include "runtime/stats.h"
#include "scope/scope_internal.h"

#define DEFAULT_BACKLOG 511
#define CANCEL_GRACE_MS 10000

typedef struct conn {
    corio__link link;
    corio_server *srv;
    corio_stream *stream;
    corio_task *task;        /* NULL while parked idle (no task, no stack) */
    corio__timer idle_timer; /* armed at state.idle_until while parked */
    corio_conn_state state;  /* the protocol's, kept across parking */
    bool tls_done;           /* handshake made (a resumed task must not redo it) */
    bool park;               /* corio_conn_park asked; then: conn_main parks it */
    bool resumed;            /* the task runs after parking */
} conn;

struct corio_server {
    corio_loop *loop;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } lis;
    uint8_t kind;
    corio_server_opts opts;
    corio_conn_fn fn;
    void *arg;
    corio__link conns;
    size_t nconns;
    int port;
    /* Where a connection libuv accepted is taken and closed when no stream
     * can be allocated for it (shed_one): embedded, so that shedding costs
     * no allocation. */
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } shed;
    corio_task *waiter;      /* corio_server_shutdown, waiting */
    bool shedding;           /* shed is closing: reusable from its close callback */
    bool open;               /* the listening handle exists and is not closing */
    bool closed;             /* its close callback ran */
    bool backlogged;         /* a connection waits for uv_accept() */
    bool draining;           /* corio_server_shutdown has begun */
    size_t peak;             /* connections at most since the last trim */
    corio__timer trim_timer; /* armed: the heap is trimmed when it fires */
};

/* ---- connections ---------------------------------------------------------------------- */

bool corio_stream_draining(const corio_stream *s) {
    /* Set for streams a server accepted: the server's flag itself, read
     * per request without touching the connection's own record. */
    return s && s->server_draining && *s->server_draining;
}

/* Whether scope sc is entered by t (a scope recorded by set_idle may have
 * been left since: only pointers are compared). */
static bool scope_entered(corio_task *t, const corio_scope *sc) {
    for (corio_scope *x = t->scopes; x; x = x->outer)
        if (x == sc)
            return true;
    return false;
}

/* Drain: an idle connection's wait ends.  Its protocol marked the stream
 * idle inside a scope of its own (its wait for the next request): that
 * scope is cancelled and the task goes on, to look at input that came
 * meanwhile and to close (see corio_stream_set_idle).  Marked at the task's
 * top, or in a scope since left, the task itself is cancelled. */
static void end_idle(conn *c) {
    corio_scope *sc = c->stream->idle_scope;
    if (sc && sc != &c->task->root && scope_entered(c->task, sc))
        corio__scope_cancel(c->task, sc, CORIO_CANCEL_SHUTDOWN);
    else
        corio_cancel_with(c->task, CORIO_CANCEL_SHUTDOWN);
}

static void accept_one(corio_server *srv);

/* After a burst of connections (a flood, a slowloris wave, a peak of
 * clients), the memory they held is free but glibc keeps it: thousands of
 * read buffers scattered over the heap leave RSS tens of MiB above what is
 * in use, for good.  Once the connections fall to a quarter of a peak of at
 * least TRIM_PEAK_MIN, the heap is trimmed a second later (the closes of a
 * burst come over several turns of the loop, and their buffers are freed
 * in close callbacks): one malloc_trim per burst, never per connection. */
#define TRIM_PEAK_MIN 256
#define TRIM_DELAY_MS 1000

static void on_trim(corio__timer *t) {
    corio_server *srv = corio__container_of(t, corio_server, trim_timer);
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
    srv->peak = srv->nconns;
}

/* A connection is gone: its accounting, and the backlog it may unblock. */
static void conn_gone(conn *c) {
    corio_server *srv = c->srv;
    corio__list_remove(&c->link);
    srv->nconns--;
    if (srv->peak >= TRIM_PEAK_MIN && srv->nconns <= srv->peak / 4 &&
        !corio__timer_armed(&srv->trim_timer))
        (void)corio__timer_start(srv->loop, &srv->trim_timer,
                                 corio__deadline_after(srv->loop, TRIM_DELAY_MS));
    corio__stat_sub(&corio__stats_sink->conns_open, 1);
    if (srv->backlogged && srv->open)
        accept_one(srv);
    if (srv->waiter && srv->nconns == 0)
        corio__wake(srv->waiter, 1);
}

corio_conn_state *corio_conn_state_of(corio_stream *s) {
    conn *c = s ? s->owner : NULL; /* set for streams a server accepted */
    return c ? &c->state : NULL;
}

bool corio_conn_resumed(const corio_stream *s) {
    const conn *c = s ? s->owner : NULL;
    return c && c->resumed;
}

int corio_conn_park(corio_stream *s, uint64_t idle_until) {
    conn *c = s ? s->owner : NULL;
    if (!c || c->task != corio__current())
        return CORIO_EINVAL; /* a connection a server accepted, asked by its own handler */
    c->state.idle_until = idle_until;
    c->park = true; /* conn_main decides once the handler has returned */
    return 0;
}

static int conn_main(void *arg);

/* Gives c a task running conn_main, which runs even if the task is
 * cancelled before it starts: it owns the connection's close. */
static int spawn_conn(conn *c) {
    corio_spawn_opts so = {
        .name = "conn", .stack_size = c->srv->opts.conn_stack_size, .run_if_cancelled = true};
    return corio_spawn_ex(&c->task, &so, conn_main, c);
}

static void close_parked(conn *c);

/* Whether all that came for a parked connection is the end of its input (or
 * a socket error): no byte to give a handler. */
static bool only_input_end(const corio_stream *s) {
    if (s->rlen)
        return false;
    if (!s->tls)
        return s->rerr != 0;
    /* TLS: no ciphertext waiting, and the socket's input closed (with the
     * ciphertext buffer empty, that is what a closed input means) */
    return corio__tls_buffered(s) == 0 && !corio__tls_input_open(s);
}

/* Bytes (or the end of input) arrived for a parked connection: give it a
 * task again.  Runs on the loop's stack, from the stream's read callback.
 * A peer that closed without sending anything gets no task: the connection
 * is closed here, as at its idle timeout.  (A burst of clients leaving
 * would otherwise spawn a task, and map a stack, for each.) */
static void on_parked_input(corio_stream *s, void *data) {
    conn *c = data;
    if (only_input_end(s)) {
        close_parked(c);
        return;
    }
    s->on_input = NULL;
    s->idle = false;
    corio__timer_stop(c->srv->loop, &c->idle_timer);
    c->resumed = true;
    if (spawn_conn(c) != 0) {
        corio__stream_close_nowait(s);
        conn_gone(c);
        free(c);
    }
}

/* Closes a parked connection (idle timeout, server shutdown). */
static void close_parked(conn *c) {
    c->stream->on_input = NULL;
    corio__timer_stop(c->srv->loop, &c->idle_timer);
    corio__stream_close_nowait(c->stream);
    conn_gone(c);
    free(c);
}

static void on_idle_timeout(corio__timer *timer) {
    close_parked(corio__container_of(timer, conn, idle_timer));
}

/* Keeps the connection open with no task: the stream reads on (into no
 * buffer until bytes come) and calls on_parked_input; the idle timer closes
 * it at state.idle_until. */
static void park(conn *c) {
    corio_stream *s = c->stream;
    c->task = NULL;
    s->idle = true;
    s->on_input = on_parked_input;
    s->on_input_data = c;
    if (corio__stream_has_input(s)) { /* something came while we were leaving */
        on_parked_input(s, c);
        return;
    }
    corio__stream_start_reading(s);
    if (c->state.idle_until &&
        corio__timer_start(c->srv->loop, &c->idle_timer, c->state.idle_until) != 0)
        close_parked(c);
}

static void conn_exit(void *self, int how) {
    (void)how;
    conn *c = self;
    if (c->park)
        return; /* conn_main parks it once its task is done with it */
    corio_stream *s = c->stream;
    c->stream = NULL;      /* freed during the close below: nobody may look at it */
    s->owner = NULL;       /* the server's own close, not a handler's */
    s->server_draining = NULL;
    corio_stream_close(s); /* shielded, bounded: we are an exit hook */
    conn_gone(c);
}

static const corio_resource_type conn_type = {.name = "connection", .exit = conn_exit};

static int conn_main(void *arg) {
    conn *c = arg;
    int rc = 0;
    c->park = false;
    CORIO_WITH(((corio_resource){.type = &conn_type, .self = c})) {
        if (c->srv->opts.tls && !c->tls_done) {
            rc = corio__tls_accept(c->stream, c->srv->opts.tls); /* logs a failure */
            c->tls_done = true;
        }
        if (rc == 0)
            rc = c->srv->fn(c->stream, c->srv->arg);
        c->park =
            c->park && rc == 0 && !corio_cancelled() && !c->srv->draining && !c->stream->closing;
    }
    corio_task_release(c->task);
    if (c->park)
        park(c);
    else
        free(c);
    return rc;
}

static void adopt(corio_server *srv, corio_stream *s);

/* Counts a connection that could not be accepted (runtime/stats.h). */
static void accept_failed(int err) {
    enum corio__accept_error kind = err == UV_EMFILE || err == UV_ENFILE ? CORIO__ACCEPT_FD_LIMIT
                                    : err == UV_ENOMEM || err == UV_ENOBUFS
                                        ? CORIO__ACCEPT_NO_MEMORY
                                        : CORIO__ACCEPT_OTHER;
    corio__stat_add(&corio__stats_sink->accept_errors[kind], 1);
}

static void on_shed_closed(uv_handle_t *h) {
    corio_server *srv = h->data;
    srv->shedding = false;
    if (srv->backlogged && srv->open)
        accept_one(srv); /* a connection came while shed was closing */
    if (srv->waiter && !srv->open)
        corio__wake(srv->waiter, 1); /* corio_server_shutdown waits for this */
}

/* No memory for a connection libuv has accepted: it is taken into the
 * embedded shed handle and closed, so its client learns at once.  Left in
 * the backlog it would wait for an open connection to end (libuv polls the
 * listener again only after uv_accept), for ever when none is open, and
 * every later client with it.  While shed is closing (a second failure in
 * the same turn of the loop), the connection waits, backlogged: shed's close
 * callback takes it. */
static void shed_one(corio_server *srv) {
    srv->backlogged = true;
    if (srv->shedding)
        return;
    int rc = srv->kind == CORIO__STREAM_TCP ? uv_tcp_init(&srv->loop->uv, &srv->shed.tcp)
                                            : uv_pipe_init(&srv->loop->uv, &srv->shed.pipe, 0);
    if (rc)
        return; /* cannot happen (no socket is created): wait for a connection to end */
    srv->backlogged = false;
    srv->shedding = true;
    srv->shed.handle.data = srv;
    uv_accept(&srv->lis.stream, &srv->shed.stream); /* on failure libuv closed the socket */
    uv_close(&srv->shed.handle, on_shed_closed);
}

static void accept_one(corio_server *srv) {
    srv->backlogged = false;
    int rc;
    corio_stream *s = corio__stream_new(srv->loop, srv->kind, &rc);
    if (!s) {
        accept_failed(UV_ENOMEM);
        shed_one(srv);
        return;
    }
    rc = uv_accept(&srv->lis.stream, &s->h.stream);
    if (rc) {
        accept_failed(rc);
        corio__stream_close_nowait(s);
        return;
    }
    adopt(srv, s);
}

/* Drain: the connections the kernel has queued on the listening socket
 * would be reset when it closes, though their clients may have sent a
 * request already.  Accepted here instead (whatever max_conns says: the
 * backlog bounds them) and served like any other.  libuv accepts only from
 * its own I/O callback, so these are taken with accept4() directly. */
static void accept_queued(corio_server *srv) {
    if (srv->backlogged)
        accept_one(srv); /* the one libuv holds for uv_accept() */
    uv_os_fd_t lfd;
    if (uv_fileno(&srv->lis.handle, &lfd) != 0)
        return;
    /* At most a backlog's worth: what was queued when the drain began.  The
     * socket keeps receiving connections until it closes (with SO_REUSEPORT
     * the kernel still hashes new clients to it), and a flood must not keep
     * this loop, max_conns aside, accepting for ever. */
    int backlog = srv->opts.backlog > 0 ? srv->opts.backlog : DEFAULT_BACKLOG;
    for (int taken = 0; taken <= backlog; taken++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR)
            continue;
        if (fd < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            accept_failed(-errno);
        if (fd < 0)
            return; /* EAGAIN: the queue is empty; anything else: give up */
        int rc;
        corio_stream *s = corio__stream_new(srv->loop, srv->kind, &rc);
        if (s)
            rc = srv->kind == CORIO__STREAM_TCP ? uv_tcp_open(&s->h.tcp, fd)
                                                : uv_pipe_open(&s->h.pipe, fd);
        if (!s || rc) {
            accept_failed(s ? rc : UV_ENOMEM);
            close(fd);
            if (s)
                corio__stream_close_nowait(s);
            continue;
        }
        adopt(srv, s);
    }
}

/* Makes an accepted stream a connection with a task of its own. */
static void adopt(corio_server *srv, corio_stream *s) {
    corio_stream_configure(s, &srv->opts.stream);
    s->server_draining = &srv->draining;
    if (srv->kind == CORIO__STREAM_TCP)
        uv_tcp_nodelay(&s->h.tcp, 1);
    conn *c = malloc(sizeof *c);
    if (!c) {
        accept_failed(UV_ENOMEM);
        corio__stream_close_nowait(s);
        return;
    }
    c->srv = srv;
    c->stream = s;
    c->state = (corio_conn_state){0};
    c->tls_done = false;
    c->park = false;
    c->resumed = false;
    corio__timer_init(&c->idle_timer, on_idle_timeout);
    s->owner = c;
    if (spawn_conn(c) != 0) {
        accept_failed(UV_ENOMEM);
        corio__stream_close_nowait(s);
        free(c);
        return;
    }
    corio__list_push_back(&srv->conns, &c->link);
    if (++srv->nconns > srv->peak)
        srv->peak = srv->nconns;
    corio__stat_add(&corio__stats_sink->conns_open, 1);
    corio__stat_add(&corio__stats_sink->conns_accepted, 1);
}

static void on_connection(uv_stream_t *lis, int status) {
    corio_server *srv = lis->data;
    if (status < 0) {
        /* EMFILE/ENFILE: libuv has shed the connection with its reserve fd;
         * nothing to do but go on. */
        accept_failed(status);
        return;
    }
    if (srv->opts.max_conns && srv->nconns >= srv->opts.max_conns) {
        corio__stat_add(&corio__stats_sink->max_conns_waits, 1);
        srv->backlogged = true; /* libuv stops polling until uv_accept() */
        return;
    }
    accept_one(srv);
}

/* ---- listening ---------------------------------------------------------------------- */

static int open_listener(corio_server *srv) {
    const corio_server_opts *o = &srv->opts;
    int rc;
    if (o->inherited_fd >= 3) {
        struct sockaddr_storage ss = {0}; /* filled by getsockname */
        socklen_t len = sizeof ss;
        if (getsockname(o->inherited_fd, (struct sockaddr *)&ss, &len) != 0)
            return -errno;
        srv->kind = ss.ss_family == AF_UNIX ? CORIO__STREAM_PIPE : CORIO__STREAM_TCP;
        rc = srv->kind == CORIO__STREAM_PIPE ? uv_pipe_init(&srv->loop->uv, &srv->lis.pipe, 0)
                                             : uv_tcp_init(&srv->loop->uv, &srv->lis.tcp);
        if (rc)
            return rc;
        srv->open = true;
        rc = srv->kind == CORIO__STREAM_PIPE ? uv_pipe_open(&srv->lis.pipe, o->inherited_fd)
                                             : uv_tcp_open(&srv->lis.tcp, o->inherited_fd);
        if (rc == 0 && srv->kind == CORIO__STREAM_TCP)
            srv->port = corio__sockaddr_port(&ss);
        return rc;
    }
    if (o->unix_path) {
        if (strlen(o->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            return CORIO_EINVAL; /* libuv would bind a path cut short */
        srv->kind = CORIO__STREAM_PIPE;
        rc = uv_pipe_init(&srv->loop->uv, &srv->lis.pipe, 0);
        if (rc)
            return rc;
        srv->open = true;
        srv->port = CORIO_ENOTSUP;
        return uv_pipe_bind(&srv->lis.pipe, o->unix_path);
    }
    srv->kind = CORIO__STREAM_TCP;
    uint16_t port = 0;
    int fd = corio__tcp_listen_socket(o->host ? o->host : "127.0.0.1", o->port, o->reuseport,
                                      o->backlog, &port);
    if (fd < 0)
        return fd;
    srv->port = port;
    rc = uv_tcp_init(&srv->loop->uv, &srv->lis.tcp);
    if (rc) {
        close(fd);
        return rc;
    }
    srv->open = true;
    rc = uv_tcp_open(&srv->lis.tcp, fd);
    if (rc)
        close(fd);
    return rc;
}

static void on_listener_closed(uv_handle_t *h) {
    corio_server *srv = h->data;
    srv->closed = true;
    if (srv->waiter)
        corio__wake(srv->waiter, 1);
}

static void free_on_close(uv_handle_t *h) {
    free(h->data);
}

void corio_server_stop(corio_server *srv) {
    if (!srv || !srv->open)
        return;
    srv->open = false;
    srv->backlogged = false;
    uv_close(&srv->lis.handle, on_listener_closed);
}

int corio_server_start(corio_server **out, const corio_server_opts *opts, corio_conn_fn handler,
                       void *arg) {
    if (!out || !opts || !handler)
        return CORIO_EINVAL;
    *out = NULL;
    if (opts->tls && !corio__tls_ctx_is_server(opts->tls)) {
        corio__report("corio_server_start: opts.tls is a client TLS context");
        return CORIO_EINVAL;
    }
    corio_loop *L = corio__tls_loop;
    if (!L) {
        corio__report("corio_server_start called outside corio_run()");
        return CORIO_ENOTASK;
    }
    corio_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return CORIO_ENOMEM;
    srv->loop = L;
    srv->opts = *opts;
    srv->fn = handler;
    srv->arg = arg;
    corio__list_init(&srv->conns);
    corio__timer_init(&srv->trim_timer, on_trim);
    srv->lis.handle.data = srv;
    int rc = open_listener(srv);
    srv->lis.handle.data = srv;
    if (rc == 0)
        rc = uv_listen(&srv->lis.stream, opts->backlog > 0 ? opts->backlog : DEFAULT_BACKLOG,
                       on_connection);
    if (rc) {
        if (srv->open) {
            /* The handle exists: it must be closed, and freed after. */
            srv->open = false;
            uv_close(&srv->lis.handle, free_on_close);
        } else {
            free(srv);
        }
        return rc;
    }
    *out = srv;
    return 0;
}

int corio_server_port(const corio_server *srv) {
    return srv ? srv->port : CORIO_EINVAL;
}

size_t corio_server_conns(const corio_server *srv) {
    return srv ? srv->nconns : 0;
}

/* Waits until `done(srv)` holds or loop time reaches `until`. */
static int wait_for(corio_server *srv, corio_task *t, bool (*done)(corio_server *),
                    uint64_t until) {
    while (!done(srv)) {
        int rc = corio__await_check(t);
        if (rc)
            return rc;
        rc = corio__park_in_slot(t, &srv->waiter, until, "server shutdown");
        if (rc == 0 && !done(srv))
            return CORIO_ETIMEDOUT;
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool no_conns(corio_server *srv) {
    return srv->nconns == 0;
}

static bool listener_closed(corio_server *srv) {
    return srv->closed && !srv->shedding; /* shed's close callback points at srv too */
}

int corio_server_shutdown(corio_server *srv, uint64_t drain_ms) {
    if (!srv)
        return CORIO_EINVAL;
    corio_task *t = corio__task_require("corio_server_shutdown");
    if (!t)
        return CORIO_ENOTASK;
    srv->draining = true;
    if (srv->open)
        accept_queued(srv);
    corio_server_stop(srv);
    /* Connections idle between requests have nothing to finish: end them
     * now (their protocol marks them idle, see corio_stream_set_idle) —
     * unless their next bytes have come: a parked one with input is
     * resumed, and an idle task looks for itself (end_idle). */
    for (corio__link *n = srv->conns.next, *next; n != &srv->conns; n = next) {
        next = n->next;
        conn *c = corio__container_of(n, conn, link);
        if (!c->task && corio__stream_input_pending(c->stream))
            on_parked_input(c->stream, c);
        else if (!c->task)
            close_parked(c);
        else if (c->stream && c->stream->idle)
            end_idle(c);
    }
    int result = 0;
    CORIO_WITH(corio_shield_scope()) {
        if (wait_for(srv, t, no_conns, corio__deadline_after(srv->loop, drain_ms)) != 0) {
            result = CORIO_ETIMEDOUT;
            for (corio__link *n = srv->conns.next; n != &srv->conns; n = n->next)
                if (corio__container_of(n, conn, link)->task)
                    corio_cancel_with(corio__container_of(n, conn, link)->task,
                                      CORIO_CANCEL_SHUTDOWN);
            if (wait_for(srv, t, no_conns, corio__deadline_after(srv->loop, CANCEL_GRACE_MS)) != 0)
                corio__report("server: %zu connection(s) still open %d ms after cancellation",
                              srv->nconns, CANCEL_GRACE_MS);
        }
        wait_for(srv, t, listener_closed, CORIO__NO_DEADLINE);
    }
    if (srv->nconns == 0 && listener_closed(srv)) {
        corio__timer_stop(srv->loop, &srv->trim_timer);
        free(srv);
    }
    /* else: leaked on purpose; tasks that refuse to end still point at it */
    return result;
}
