/* SPDX-License-Identifier: MIT */
/* Redis subscribers (corio/redis.h): a connection in subscribe mode as an
 * awaitable stream of messages.
 *
 * hiredis calls one callback (on_message, registered with every SUBSCRIBE
 * and PSUBSCRIBE) for each confirmation and each message.  Messages are
 * copied into one block each and put on a bounded corio queue, which
 * corio_redis_next_message awaits; confirmations complete the oldest
 * waiting subscribe (Redis confirms in order, one reply per channel).
 *
 * A subscriber ends once: the connection is lost (CORIO_ECONNRESET), the
 * queue overflows (CORIO_ERANGE: the connection is dropped, as Redis drops
 * a pub/sub client past its output-buffer limit), or it is closed or shut
 * down (CORIO_ECLOSED).  The queue is then closed: what it holds is still
 * delivered (not after a close), then the code.  No reconnect: messages
 * published meanwhile would be missed without the reader knowing.
 *
 * A keeper task (one per subscriber) exists for the loop's shutdown: it is
 * cancelled then like every task, and drops a connection left open.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/report.h"
#include "corio/task.h"
#include "redis_internal.h"

/* A subscribe waiting for its confirmations. */
typedef struct confirm {
    struct confirm *next;
    corio_future *f; /* NULL once abandoned */
    size_t left;     /* confirmations still to come */
    int result;
    bool answered, abandoned;
} confirm;

struct corio_redis_sub {
    corio__redis_conn conn; /* first: hiredis's context data points here */
    corio__redis_target target;
    corio_redis_opts o;
    corio_queue *q;     /* corio_redis_message * */
    int end;            /* 0 while live, else why it ended */
    corio_event over;   /* set when it ends: the keeper's cue */
    corio_task *keeper; /* NULL once it ended */
    confirm *head, *tail;
    unsigned refs; /* the close's, the keeper's, each task inside a call */
    bool close_called;
};

static void drain(corio_redis_sub *sub) {
    void *item;
    while (corio_queue_try_get(sub->q, &item) == 0)
        corio_redis_message_free(item);
}

static void sub_unref(corio_redis_sub *sub) {
    if (--sub->refs)
        return;
    if (sub->q) {
        drain(sub);
        corio_queue_free(sub->q);
    }
    corio__redis_target_release(&sub->target);
    free(sub);
}

static void confirm_pop(corio_redis_sub *sub, int result) {
    confirm *k = sub->head;
    sub->head = k->next;
    if (!sub->head)
        sub->tail = NULL;
    if (k->abandoned) {
        free(k);
        return;
    }
    k->answered = true;
    k->result = result;
    corio_future_complete(k->f, result, NULL);
}

/* Ends the subscriber with `code` (the first code wins). */
static void end(corio_redis_sub *sub, int code) {
    if (!sub->end)
        sub->end = code;
    if (code == CORIO_ECLOSED)
        sub->conn.closing = true;
    corio__redis_drop(&sub->conn);
    while (sub->head)
        confirm_pop(sub, sub->end);
    if (sub->q)
        corio_queue_close(sub->q);
    corio_event_set(&sub->over);
}

static void on_lost(corio__redis_conn *c) {
    end((corio_redis_sub *)c, CORIO_ECONNRESET);
}

static bool is_str(const redisReply *r) {
    return r->type == REDIS_REPLY_STRING;
}

static corio_redis_message *message_new(const redisReply *channel, const redisReply *pattern,
                                        const redisReply *data) {
    size_t plen = pattern ? pattern->len + 1 : 0;
    corio_redis_message *m = malloc(sizeof *m + channel->len + 1 + plen + data->len + 1);
    if (!m)
        return NULL;
    char *p = (char *)(m + 1);
    memcpy(p, channel->str, channel->len);
    p[channel->len] = '\0';
    m->channel = p;
    m->channel_len = channel->len;
    p += channel->len + 1;
    m->pattern = NULL;
    m->pattern_len = 0;
    if (pattern) {
        memcpy(p, pattern->str, pattern->len);
        p[pattern->len] = '\0';
        m->pattern = p;
        m->pattern_len = pattern->len;
        p += pattern->len + 1;
    }
    if (data->len)
        memcpy(p, data->str, data->len);
    p[data->len] = '\0';
    m->data = p;
    m->len = data->len;
    return m;
}

static void on_message(redisAsyncContext *ac, void *reply, void *data) {
    (void)ac;
    corio_redis_sub *sub = data;
    const redisReply *r = reply;
    if (!r || sub->end || r->type != REDIS_REPLY_ARRAY || r->elements < 3 || !is_str(r->element[0]))
        return; /* NULL: the context is being freed (end() ran or runs) */
    const char *kind = r->element[0]->str;
    if (strcasecmp(kind, "subscribe") == 0 || strcasecmp(kind, "psubscribe") == 0) {
        if (sub->head && --sub->head->left == 0)
            confirm_pop(sub, 0);
        return;
    }
    const redisReply *pattern = NULL, *channel, *payload;
    if (strcasecmp(kind, "message") == 0) {
        channel = r->element[1];
        payload = r->element[2];
    } else if (strcasecmp(kind, "pmessage") == 0 && r->elements >= 4) {
        pattern = r->element[1];
        channel = r->element[2];
        payload = r->element[3];
        if (!is_str(pattern))
            return;
    } else {
        return;
    }
    if (!is_str(channel) || !is_str(payload))
        return;
    corio_redis_message *m = message_new(channel, pattern, payload);
    if (!m) {
        end(sub, CORIO_ENOMEM);
        return;
    }
    if (corio_queue_try_put(sub->q, m) != 0) { /* full: the reader fell behind */
        corio_redis_message_free(m);
        end(sub, CORIO_ERANGE);
    }
}

static int keeper_task(void *arg) {
    corio_redis_sub *sub = arg;
    while (!sub->end && corio_event_wait(&sub->over) == 0) {
    }
    end(sub, CORIO_ECLOSED); /* the loop shuts down (or it ended: no change) */
    corio_task_release(sub->keeper);
    sub->keeper = NULL;
    sub_unref(sub);
    return 0;
}

int corio_redis_sub_connect(corio_redis_sub **out, const char *where,
                            const corio_redis_opts *opts) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    if (!corio_current()) {
        corio__report("corio_redis_sub_connect called outside a task");
        corio__redis_set_connect_error("corio_redis_sub_connect called outside a task");
        return CORIO_ENOTASK;
    }
    corio_redis_sub *sub = calloc(1, sizeof *sub);
    if (!sub) {
        corio__redis_set_connect_error("out of memory");
        return CORIO_ENOMEM;
    }
    if (opts)
        sub->o = *opts;
    sub->o.username = sub->o.password = NULL;
    sub->o.connect_timeout_ms = sub->o.connect_timeout_ms ? sub->o.connect_timeout_ms : 5000;
    sub->o.max_messages = sub->o.max_messages ? sub->o.max_messages : 1024;
    sub->conn.on_lost = on_lost;
    corio_event_init(&sub->over);
    sub->refs = 1;
    int rc = corio__redis_target_parse(&sub->target, where, opts, sub->conn.error,
                                       sizeof sub->conn.error);
    if (rc == 0)
        rc = corio_queue_new(&sub->q, sub->o.max_messages);
    if (rc == 0)
        rc = corio__redis_dial(&sub->conn, &sub->target, sub->o.connect_timeout_ms);
    if (rc == 0) {
        sub->refs++;
        rc = corio__redis_spawn_keeper(&sub->keeper, "redis-sub", keeper_task, sub);
        if (rc < 0)
            sub->refs--;
    }
    if (rc < 0) {
        corio__redis_set_connect_error(sub->conn.error[0] ? sub->conn.error : corio_strerror(rc));
        sub->conn.closing = true;
        corio__redis_drop(&sub->conn);
        sub_unref(sub);
        return rc;
    }
    corio__redis_set_connect_error("");
    *out = sub;
    return 0;
}

/* Await: (P)SUBSCRIBE to n names and wait for their confirmations. */
static int subscribe(corio_redis_sub *sub, const char *word, size_t n, const char *const *names) {
    if (!sub || !names || n == 0 || n > 100000)
        return CORIO_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!names[i])
            return CORIO_EINVAL;
    if (!corio_current()) {
        corio__report("corio_redis_%s called outside a task", word);
        return CORIO_ENOTASK;
    }
    if (sub->end)
        return sub->end;
    const char **argv = malloc((n + 1) * sizeof *argv);
    confirm *k = calloc(1, sizeof *k);
    int rc = argv && k ? corio_future_new(&k->f) : CORIO_ENOMEM;
    char *cmd = NULL;
    int len = -1;
    if (rc == 0) {
        argv[0] = word;
        memcpy(argv + 1, names, n * sizeof *argv);
        len = redisFormatCommandArgv(&cmd, (int)n + 1, argv, NULL);
        if (len < 0)
            rc = CORIO_ENOMEM;
    }
    free(argv);
    if (rc == 0 &&
        redisAsyncFormattedCommand(sub->conn.ac, on_message, sub, cmd, (size_t)len) != REDIS_OK)
        rc = CORIO_ECONNRESET;
    if (len >= 0)
        redisFreeCommand(cmd);
    if (rc < 0) {
        if (k)
            corio_future_release(k->f);
        free(k);
        return rc;
    }
    k->left = n;
    if (sub->tail)
        sub->tail->next = k;
    else
        sub->head = k;
    sub->tail = k;
    sub->refs++;
    rc = corio_future_await(k->f);
    corio_future_release(k->f);
    k->f = NULL;
    if (!k->answered) {
        k->abandoned = true; /* confirm_pop frees it */
    } else {
        if (rc == 0)
            rc = k->result;
        free(k);
    }
    sub_unref(sub);
    return rc;
}

int corio_redis_subscribe(corio_redis_sub *sub, size_t n, const char *const *channels) {
    return subscribe(sub, "subscribe", n, channels);
}

int corio_redis_psubscribe(corio_redis_sub *sub, size_t n, const char *const *patterns) {
    return subscribe(sub, "psubscribe", n, patterns);
}

int corio_redis_next_message(corio_redis_sub *sub, corio_redis_message **out) {
    if (out)
        *out = NULL;
    if (!sub || !out)
        return CORIO_EINVAL;
    if (!corio_current()) {
        corio__report("corio_redis_next_message called outside a task");
        return CORIO_ENOTASK;
    }
    sub->refs++;
    void *item = NULL;
    int rc = corio_queue_get(sub->q, &item);
    if (rc == 0)
        *out = item;
    else if (rc == CORIO_ECLOSED && sub->end)
        rc = sub->end;
    sub_unref(sub);
    return rc;
}

int corio_redis_sub_status(const corio_redis_sub *sub) {
    return sub ? sub->end : CORIO_EINVAL;
}

void corio_redis_message_free(corio_redis_message *msg) {
    free(msg);
}

void corio_redis_sub_close(corio_redis_sub *sub) {
    if (!sub)
        return;
    if (sub->close_called) {
        corio__report("corio_redis_sub_close called twice on one subscriber");
        return;
    }
    sub->close_called = true;
    end(sub, CORIO_ECLOSED);
    sub->end = CORIO_ECLOSED; /* a close wins: calls from now on are told so */
    drain(sub);
    if (sub->keeper)
        corio_cancel(sub->keeper);
    sub_unref(sub);
}
