/* SPDX-License-Identifier: MIT */
/* One Redis command's round trip, and replies (corio/redis.h).
 *
 * A command is a small heap record handed to hiredis as its callback data,
 * and a future the calling task awaits.  hiredis calls back exactly once
 * per command: with the reply, or with NULL when the connection is freed
 * (lost, closed).  While the caller waits, the callback copies the reply
 * into the record and completes the future.  A caller whose await is cut
 * short (a deadline, a cancel) marks the record abandoned and leaves it to
 * the callback, which then frees the record and nothing else: it never
 * touches the caller's task or future, which may be long gone, and the
 * late reply (freed by hiredis) reaches nobody.  The future has no cancel
 * hook: there is nothing to stop, the command is on the wire.
 *
 * A reply is copied out of hiredis's (which hiredis frees when the
 * callback returns) into one block: the nodes first, then every string's
 * bytes, so a reply is one allocation and one free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "redis_internal.h"

/* ---- the round trip ---------------------------------------------------------------------------
 */

typedef struct call {
    corio_future *f;          /* the caller's; NULL once abandoned */
    corio_redis_reply *reply; /* the copy, handed to the caller */
    int result;
    bool answered;  /* the callback ran */
    bool abandoned; /* the caller gave up: the callback frees the record */
} call;

static void on_reply(redisAsyncContext *ac, void *reply, void *data) {
    corio__redis_conn *c = ac->data;
    call *k = data;
    c->pending--;
    if (k->abandoned) {
        free(k);
        return;
    }
    k->answered = true;
    if (!reply)
        k->result = c->closing ? CORIO_ECLOSED : CORIO_ECONNRESET;
    else if (!(k->reply = corio__redis_reply_copy(reply)))
        k->result = CORIO_ENOMEM;
    corio_future_complete(k->f, k->result, NULL);
}

int corio__redis_call(corio__redis_conn *c, const char *cmd, size_t len, size_t max_pending,
                      corio_redis_reply **out) {
    *out = NULL;
    if (c->closing)
        return CORIO_ECLOSED;
    if (!c->ac)
        return CORIO_ECONNRESET;
    if (c->pending >= max_pending)
        return CORIO_EBUSY;
    call *k = calloc(1, sizeof *k);
    if (!k)
        return CORIO_ENOMEM;
    int rc = corio_future_new(&k->f);
    if (rc < 0) {
        free(k);
        return rc;
    }
    if (redisAsyncFormattedCommand(c->ac, on_reply, k, cmd, len) != REDIS_OK) {
        /* hiredis refuses new commands once the context is being freed */
        corio_future_release(k->f);
        free(k);
        return c->closing ? CORIO_ECLOSED : CORIO_ECONNRESET;
    }
    c->pending++;
    rc = corio_future_await(k->f);
    corio_future_release(k->f);
    k->f = NULL;
    if (!k->answered) { /* cut short: the reply, when it comes, is dropped */
        k->abandoned = true;
        return rc;
    }
    if (rc == 0)
        rc = k->result;
    if (rc == 0)
        *out = k->reply;
    else
        corio_redis_reply_free(k->reply);
    free(k);
    return rc;
}

/* ---- replies ------------------------------------------------------------------------------- */

struct corio_redis_reply {
    int type;                /* corio_redis_type: hiredis's REDIS_REPLY_* numbers */
    size_t len;              /* bytes of a string, status or error; elements of an array */
    long long integer;       /* an integer reply's value */
    char *str;               /* the bytes, NUL-terminated, inside the block */
    corio_redis_reply *elem; /* an array's elements, inside the block */
};

/* Counts r's nodes below the root and the bytes of its strings. */
static void measure(const redisReply *r, size_t *nodes, size_t *bytes) {
    if (r->type == REDIS_REPLY_ARRAY) {
        *nodes += r->elements;
        for (size_t i = 0; i < r->elements; i++)
            measure(r->element[i], nodes, bytes);
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR) {
        *bytes += r->len + 1;
    }
}

static void fill(corio_redis_reply *n, const redisReply *r, corio_redis_reply **nodes,
                 char **bytes) {
    memset(n, 0, sizeof *n);
    n->type = r->type;
    if (r->type == REDIS_REPLY_ARRAY) {
        n->len = r->elements;
        n->elem = *nodes;
        *nodes += r->elements;
        for (size_t i = 0; i < r->elements; i++)
            fill(&n->elem[i], r->element[i], nodes, bytes);
    } else if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS ||
               r->type == REDIS_REPLY_ERROR) {
        n->len = r->len;
        n->str = *bytes;
        if (r->len)
            memcpy(n->str, r->str, r->len);
        n->str[r->len] = '\0';
        *bytes += r->len + 1;
    } else if (r->type == REDIS_REPLY_INTEGER) {
        n->integer = r->integer;
    }
}

corio_redis_reply *corio__redis_reply_copy(const redisReply *r) {
    size_t nodes = 1, bytes = 0;
    measure(r, &nodes, &bytes);
    corio_redis_reply *root = malloc(nodes * sizeof *root + bytes);
    if (!root)
        return NULL;
    corio_redis_reply *next = root + 1;
    char *b = (char *)(root + nodes);
    fill(root, r, &next, &b);
    return root;
}

corio_redis_type corio_redis_reply_type(const corio_redis_reply *rep) {
    return rep ? (corio_redis_type)rep->type : (corio_redis_type)0;
}

const char *corio_redis_reply_str(const corio_redis_reply *rep, size_t *len) {
    if (len)
        *len = 0;
    if (!rep || !rep->str)
        return NULL;
    if (len)
        *len = rep->len;
    return rep->str;
}

int corio_redis_reply_integer(const corio_redis_reply *rep, int64_t *out) {
    if (!rep || !out)
        return CORIO_EINVAL;
    if (rep->type == CORIO_REDIS_INTEGER) {
        *out = rep->integer;
        return 0;
    }
    if (rep->type == CORIO_REDIS_NIL)
        return CORIO_ENOENT;
    if (rep->type != CORIO_REDIS_STRING || rep->len == 0)
        return CORIO_EINVAL;
    const char *s = rep->str;
    size_t i = (s[0] == '-');
    if (i == rep->len)
        return CORIO_EINVAL;
    for (size_t j = i; j < rep->len; j++)
        if (s[j] < '0' || s[j] > '9')
            return CORIO_EINVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return CORIO_ERANGE;
    *out = v;
    return 0;
}

size_t corio_redis_reply_elements(const corio_redis_reply *rep) {
    return rep && rep->type == CORIO_REDIS_ARRAY ? rep->len : 0;
}

const corio_redis_reply *corio_redis_reply_element(const corio_redis_reply *rep, size_t i) {
    if (!rep || rep->type != CORIO_REDIS_ARRAY || i >= rep->len)
        return NULL;
    return &rep->elem[i];
}

void corio_redis_reply_free(corio_redis_reply *rep) {
    free(rep);
}
