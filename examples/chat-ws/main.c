/* SPDX-License-Identifier: MIT */
/* A WebSocket chat room and an echo endpoint:
 *
 *     GET /       a page that joins the room
 *     GET /chat   WebSocket: every text message goes to every member
 *     GET /echo   WebSocket: every message comes back as it came (text or
 *                 binary, up to 64 MiB, compressed when the client offers
 *                 permessage-deflate; subprotocols "v2.echo" and "v1.echo")
 *
 *     ./chat-ws --port 8080     then open http://127.0.0.1:8080/ in two tabs
 *
 * The ideas it shows:
 *  - corio_ws_accept as a scope (`async with`): the handshake on the way in,
 *    the close handshake on every way out.
 *  - One task receives (the handler's), another sends (the member's
 *    writer): a member's messages wait in a bounded queue of its own, so a
 *    member that does not read stalls nobody.  Overflow policy: a member
 *    whose queue is full leaves the room, and its writer closes it with
 *    1008 ("too slow") once its last send is done.
 *  - Drain: on SIGTERM every open WebSocket is sent close 1001 (the
 *    receiving call does it) and the handlers end.
 *  - Memory: --ws-budget caps what all of a worker's WebSockets hold at
 *    once in messages being received; past it a message gets close 1013.
 */
#include <corio/corio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { QUEUE_MSGS = 64, CHAT_MAX = 4096 };

static int64_t budget_mib = 256; /* --ws-budget: corio_ws_opts.receive_budget, in MiB */

/* A message on its way out, shared by every queue it is in. */
typedef struct msg {
    size_t refs, len;
    char text[];
} msg;

typedef struct member {
    struct member *prev, *next;
    corio_ws *ws;
    corio_queue *out; /* msg*; closed when the member leaves */
    bool listed, too_slow;
} member;

typedef struct room {
    member *members; /* one loop, no await while walking it: no lock needed */
} room;

static const char page[] =
    "<!doctype html>\n<meta charset=\"utf-8\">\n<title>corio chat</title>\n"
    "<pre id=\"log\"></pre>\n<input id=\"say\" size=\"60\" autofocus>\n"
    "<script>\n"
    "const ws = new WebSocket(`ws://${location.host}/chat`);\n"
    "const log = document.getElementById('log'), say = document.getElementById('say');\n"
    "ws.onmessage = e => { log.textContent += e.data + '\\n'; };\n"
    "ws.onclose = e => { log.textContent += `(closed: ${e.code} ${e.reason})\\n`; };\n"
    "say.onkeydown = e => { if (e.key === 'Enter') { ws.send(say.value); say.value = ''; } };\n"
    "</script>\n";

static int index_page(corio_req *req, corio_res *res, void *arg) {
    (void)req;
    (void)arg;
    return corio_res_send(res, 200, "text/html; charset=utf-8", page, sizeof page - 1);
}

/* ---- echo ----------------------------------------------------------------------------------- */

static const char *const echo_protocols[] = {"v2.echo", "v1.echo"};

static int echo(corio_req *req, corio_res *res, void *arg) {
    (void)arg;
    corio_ws_opts o = {.subprotocols = echo_protocols,
                       .nsubprotocols = 2,
                       .max_message = 64u << 20,
                       .receive_budget = (size_t)budget_mib << 20,
                       .deflate = true};
    corio_ws *ws;
    int rc;
    CORIO_WITH_RC(rc, corio_ws_accept(req, res, &ws, &o)) {
        corio_ws_msg m;
        while ((rc = corio_ws_receive(ws, &m)) == 0)
            if ((rc = corio_ws_send(ws, m.type, m.data, m.len)) != 0)
                break;
    }
    /* The peer's close, a refused handshake (answered already), a peer that
     * vanished or broke the protocol (told, and logged by nobody): all are
     * the client's doing, not the handler's failure. */
    return rc == CORIO_ENOMEM ? rc : 0;
}

/* ---- chat ----------------------------------------------------------------------------------- */

static void msg_unref(msg *m) {
    if (--m->refs == 0)
        free(m);
}

static void leave(room *r, member *m) {
    if (!m->listed)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else
        r->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->listed = false;
    corio_queue_close(m->out); /* its writer sends what is queued, then ends */
}

/* Every member gets the message; none is waited for. */
static int broadcast(room *r, const void *text, size_t len) {
    msg *x = malloc(sizeof *x + len);
    if (!x)
        return CORIO_ENOMEM;
    x->refs = 1; /* ours, until the loop is done */
    x->len = len;
    memcpy(x->text, text, len);
    member *next;
    for (member *m = r->members; m; m = next) {
        next = m->next; /* leave() unlinks m */
        x->refs++;
        if (corio_queue_try_put(m->out, x) != 0) {
            x->refs--;
            m->too_slow = true;
            leave(r, m);
        }
    }
    msg_unref(x);
    return 0;
}

static int writer_main(void *arg) {
    member *m = arg;
    void *item;
    int rc;
    while ((rc = corio_queue_get(m->out, &item)) == 0) {
        msg *x = item;
        rc = corio_ws_send(m->ws, CORIO_WS_TEXT, x->text, x->len);
        msg_unref(x);
        if (rc)
            return rc == CORIO_ECLOSED ? 0 : rc;
    }
    if (m->too_slow) /* its queue overflowed: out of the room, and told so */
        (void)corio_ws_close(m->ws, 1008, "too slow");
    return 0;
}

static int chat(corio_req *req, corio_res *res, void *arg) {
    room *r = arg;
    corio_ws_opts o = {.max_message = CHAT_MAX, .receive_budget = (size_t)budget_mib << 20};
    member m = {0};
    corio_task *writer = NULL;
    int rc;
    CORIO_WITH_RC(rc, corio_ws_accept(req, res, &m.ws, &o)) {
        if ((rc = corio_queue_new(&m.out, QUEUE_MSGS)) != 0)
            break;
        if ((rc = corio_spawn(&writer, "chat-ws-writer", writer_main, &m)) != 0)
            break;
        m.next = r->members; /* join */
        if (m.next)
            m.next->prev = &m;
        r->members = &m;
        m.listed = true;
        corio_ws_msg in;
        while ((rc = corio_ws_receive(m.ws, &in)) == 0)
            if (in.type == CORIO_WS_TEXT && (rc = broadcast(r, in.data, in.len)) != 0)
                break;
        leave(r, &m);
        CORIO_WITH(corio_shield_scope()) {
            (void)corio_await(writer); /* before the WebSocket goes */
        }
    }
    if (m.out) {
        void *item;
        while (corio_queue_try_get(m.out, &item) == 0)
            msg_unref(item);
        (void)corio_queue_free(m.out);
    }
    corio_task_release(writer);
    return rc == CORIO_ENOMEM ? rc : 0;
}

int main(int argc, char **argv) {
    static room lobby;
    corio_router *router;
    if (corio_router_new(&router) != 0) {
        fprintf(stderr, "chat-ws: out of memory\n");
        return 1;
    }
    if (corio_router_add(router, "GET", "/", index_page, NULL) != 0 ||
        corio_router_add(router, "GET", "/echo", echo, NULL) != 0 ||
        corio_router_add(router, "GET", "/chat", chat, &lobby) != 0) {
        fprintf(stderr, "chat-ws: cannot build the router\n");
        corio_router_free(router);
        return 1;
    }
    static const corio_app_flag flags[] = {
        {.name = "ws-budget",
         .type = CORIO_APP_FLAG_INT,
         .target = &budget_mib,
         .env = "CHAT_WS_BUDGET_MIB",
         .min = 1,
         .max = 1 << 20,
         .accepts = "MiB, 1..1048576",
         .help = "what all of a worker's WebSockets hold at once in messages being received"},
    };
    corio_app app = {
        .name = "chat-ws",
        .description = "WebSocket chat room (GET /chat, page at /) and echo (GET /echo); one "
                       "room per worker",
        .default_port = 8080,
        .flags = flags,
        .nflags = sizeof flags / sizeof flags[0],
    };
    return corio_http_app_main(&app, router, NULL, argc, argv); /* frees router */
}
