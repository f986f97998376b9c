/* SPDX-License-Identifier: MIT */
/* Private to the TLS code: the context structure (tls_ctx.c) and what the
 * connection code (tls.c) needs from it. */
#ifndef CORIO_NET_TLS_INTERNAL_H
#define CORIO_NET_TLS_INTERNAL_H

#include <stdatomic.h>

#include <openssl/ssl.h>

#include "net/stream_internal.h"

struct corio_tls_ctx {
    uv_mutex_t lock; /* guards `current` */
    SSL_CTX *current;
    atomic_int refs;
    bool server;
    bool verify;
    corio_tls_version min_version;
    uint64_t handshake_ms;
    char *ciphers;
    char *ca_file;
    unsigned char *alpn_wire; /* length-prefixed, as TLS sends it */
    char *alpn_names;         /* the same protocols, each NUL-terminated */
    size_t alpn_len;          /* bytes in each of the two */
    corio_tls_resumption resumption; /* servers */
    /* CORIO_TLS_RESUME_TICKETS: the ticket key, given or made once, so that
     * a reload (a new SSL_CTX) keeps accepting the tickets issued before */
    unsigned char ticket_key[CORIO_TLS_TICKET_KEY_SIZE];
};

/* Formats this thread's OpenSSL error queue into buf, "; "-separated, and
 * empties it ("no details from OpenSSL" when it was empty). */
void corio__tls_errors(char *buf, size_t len);

/* Logs one line with corio's reporter: "tls: <message>: <OpenSSL's error
 * queue>", emptying the queue. */
void corio__tls_report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Takes a reference (dropped with corio_tls_ctx_free).  Returns c. */
corio_tls_ctx *corio__tls_ctx_retain(corio_tls_ctx *c);

/* A new SSL object from the context's current SSL_CTX; NULL when out of
 * memory.  Thread-safe against corio_tls_ctx_reload. */
SSL *corio__tls_ctx_new_ssl(corio_tls_ctx *c);

/* The entry of the context's ALPN list equal to the n bytes at p (a
 * NUL-terminated string living as long as the context), or NULL. */
const char *corio__tls_ctx_alpn(const corio_tls_ctx *c, const unsigned char *p, unsigned n);

#endif
