/* SPDX-License-Identifier: MIT */
/* A line-based chat server on corio's standalone runner: every line a client
 * sends goes to every other client, prefixed with the sender's address.
 *
 *     ./chat --port 7001 &      nc 127.0.0.1 7001      (in two terminals)
 *
 * Each client has a bounded outgoing queue drained by a writer task of its
 * own, so one slow reader never slows the others down: a broadcast only
 * try_puts, and a client whose queue is full (it does not keep up) is
 * disconnected.  So is a client that sends a line longer than MAX_LINE.  The
 * room is per process: run it with --workers 1 (the default).
 */
#include <corio/corio.h>
#include <stdlib.h>
#include <string.h>

enum { QUEUE_LINES = 64, MAX_LINE = 1024, NAME_MAX_LEN = 64 };

/* A line on its way out, shared by every queue it is in. */
typedef struct line {
    size_t refs, len;
    char text[];
} line;

typedef struct client {
    struct client *prev, *next;
    struct room *room;
    corio_stream *s;
    corio_queue *out;            /* line*; closed when the client is dropped */
    corio_task *reader, *writer; /* references, released at the end */
    bool listed;                 /* in room->clients */
    char name[NAME_MAX_LEN];
} client;

typedef struct room {
    corio_lock lock; /* guards clients */
    client *clients;
} room;

static void line_unref(line *l) {
    if (--l->refs == 0)
        free(l);
}

static void unlink_client(client *c) {
    room *r = c->room;
    if (!c->listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        r->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->listed = false;
}

/* Drops a client that cannot keep up (room lock held): it gets no more lines,
 * its writer and reader stop, and its connection task cleans up. */
static void kick(client *c, const char *why) {
    corio_log(CORIO_LOG_INFO, "chat: disconnecting %s: %s", c->name, why);
    unlink_client(c);
    corio_queue_close(c->out);
    /* CORIO_EALREADY (the task already ended) is fine: we hold references. */
    if (c->writer)
        (void)corio_cancel(c->writer);
    if (c->reader)
        (void)corio_cancel(c->reader);
}

/* Sends "<from>: <text>" to everyone but `from`, never waiting on anyone. */
static int broadcast(client *from, const char *text, size_t len) {
    size_t nlen = strlen(from->name);
    line *l = malloc(sizeof *l + nlen + 2 + len);
    if (!l)
        return CORIO_ENOMEM;
    l->refs = 1; /* ours, until the loop is done */
    l->len = nlen + 2 + len;
    memcpy(l->text, from->name, nlen);
    memcpy(l->text + nlen, ": ", 2);
    memcpy(l->text + nlen + 2, text, len);
    CORIO_WITH(corio_lock_scope(&from->room->lock)) {
        client *next;
        for (client *c = from->room->clients; c; c = next) {
            next = c->next; /* kick() unlinks c */
            if (c == from)
                continue;
            l->refs++;
            if (corio_queue_try_put(c->out, l) != 0) {
                l->refs--;
                kick(c, "too slow (outgoing queue full)");
            }
        }
    }
    line_unref(l);
    return 0;
}

static int reader_main(void *arg) {
    client *c = arg;
    char buf[MAX_LINE];
    for (;;) {
        size_t n;
        int rc = corio_stream_read_until(c->s, "\n", 1, buf, sizeof buf, &n);
        if (rc == CORIO_EOF)
            break;
        if (rc == CORIO_ERANGE) {
            corio_log(CORIO_LOG_INFO, "chat: disconnecting %s: line over %d bytes", c->name,
                      MAX_LINE);
            return rc; /* a failure: the task group cancels the writer */
        }
        if (rc < 0)
            return rc;
        if ((rc = broadcast(c, buf, n)) < 0)
            return rc;
        /* Let the writers run before the next buffered line, so a burst from
         * one client does not fill fast clients' queues. */
        if ((rc = corio_yield()) < 0)
            return rc;
    }
    /* The client closed its side: deliver what is queued, then stop. */
    CORIO_WITH(corio_lock_scope(&c->room->lock)) {
        unlink_client(c);
    }
    corio_queue_close(c->out);
    return 0;
}

static int writer_main(void *arg) {
    client *c = arg;
    void *item;
    int rc;
    while ((rc = corio_queue_get(c->out, &item)) == 0) {
        line *l = item;
        rc = corio_stream_write(c->s, l->text, l->len);
        line_unref(l);
        if (rc < 0)
            return rc; /* a failure: the task group cancels the reader */
    }
    return rc == CORIO_ECLOSED ? 0 : rc;
}

/* Membership of the room as a scope: the client is listed on entry and
 * unlisted on every way out, before its queue goes away. */
static int member_enter(void *self, uint64_t arg) {
    (void)arg;
    client *c = self;
    int rc;
    CORIO_WITH_RC(rc, corio_lock_scope(&c->room->lock)) {
        c->next = c->room->clients;
        if (c->next)
            c->next->prev = c;
        c->room->clients = c;
        c->listed = true;
    }
    return rc;
}

static void member_exit(void *self, int how) {
    (void)how;
    client *c = self;
    CORIO_WITH(corio_lock_scope(&c->room->lock)) {
        unlink_client(c);
    }
}

static const corio_resource_type member_type = {
    .name = "chat member", .enter = member_enter, .exit = member_exit};

/* One connection: a reader and a writer task in a task group, inside the
 * room membership; whichever ends first with an error stops the other. */
static int chat_conn(corio_stream *s, void *arg) {
    client c = {.room = arg, .s = s};
    if (corio_stream_peer_name(s, c.name, sizeof c.name) != 0)
        strcpy(c.name, "?");
    int rc = corio_queue_new(&c.out, QUEUE_LINES);
    if (rc)
        return rc;
    corio_task_group g;
    CORIO_WITH_RC(rc, ((corio_resource){.type = &member_type, .self = &c})) {
        CORIO_WITH(corio_task_group_scope(&g)) {
            rc = corio_task_group_spawn(&g, &c.writer, "chat-writer", writer_main, &c);
            if (rc == 0)
                rc = corio_task_group_spawn(&g, &c.reader, "chat-reader", reader_main, &c);
            if (rc)
                corio_scope_fail(rc); /* cancels the writer if it was spawned */
        }
        if (rc == 0)
            rc = corio_task_group_result(&g);
    }
    void *item;
    while (corio_queue_try_get(c.out, &item) == 0)
        line_unref(item);
    (void)corio_queue_free(c.out); /* cannot fail: both tasks have ended */
    corio_task_release(c.reader);
    corio_task_release(c.writer);
    return rc;
}

int main(int argc, char **argv) {
    static room lobby;
    corio_lock_init(&lobby.lock);
    corio_app app = {
        .name = "chat",
        .description = "line-based chat server (run with --workers 1: one room per process)",
        .handler = chat_conn,
        .arg = &lobby,
        .default_port = 7001,
    };
    return corio_app_main(&app, argc, argv);
}
