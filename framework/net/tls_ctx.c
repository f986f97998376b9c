/* SPDX-License-Identifier: MIT */
/* TLS contexts (see corio/tls.h): settings shared by many connections, and
 * the OpenSSL SSL_CTX built from them.
 *
 * A context owns one SSL_CTX at a time, `current`, replaced whole by
 * corio_tls_ctx_reload(): the new one is built and checked completely before
 * it is swapped in under the context's lock, so a failed reload changes
 * nothing.  SSL objects hold references to the SSL_CTX they were made from,
 * and connections hold a reference to the context (its ALPN list is what
 * corio_stream_alpn() returns), so neither a reload nor corio_tls_ctx_free()
 * disturbs a live connection.
 *
 * Policy, the same for every context: TLS 1.2 or later; TLS 1.2 suites only
 * with ECDHE and AEAD; no compression; no renegotiation; encrypted private
 * keys refused rather than prompted for on a terminal.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "net/tls_internal.h"

#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* ---- reporting ----------------------------------------------------------------------- */

void corio__tls_errors(char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    unsigned long e;
    const char *data;
    int flags;
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        char one[256];
        ERR_error_string_n(e, one, sizeof one);
        int n = snprintf(buf + used, len - used, "%s%s%s%s", used ? "; " : "", one,
                         (flags & ERR_TXT_STRING) && data && *data ? ": " : "",
                         (flags & ERR_TXT_STRING) && data ? data : "");
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
    ERR_clear_error();
    if (!used)
        snprintf(buf, len, "no details from OpenSSL");
}

void corio__tls_report(const char *fmt, ...) {
    char what[160], why[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    corio__tls_errors(why, sizeof why);
    corio__report("tls: %s: %s", what, why);
}

/* ---- contexts ------------------------------------------------------------------------ */

static int no_password(char *buf, int size, int rwflag, void *u) {
    (void)buf, (void)size, (void)rwflag, (void)u;
    return 0; /* encrypted keys are refused instead of prompting on a terminal */
}

static int check_readable(const char *path, const char *what) {
    if (!path || !*path) {
        corio__report("tls: no %s file given", what);
        return CORIO_EINVAL;
    }
    if (access(path, R_OK) != 0) {
        int err = -errno;
        corio__report("tls: cannot read %s file '%s': %s", what, path, corio_strerror(err));
        return err;
    }
    return 0;
}

/* Parses "h2,http/1.1" into the wire format and a list of C strings. */
static int parse_alpn(corio_tls_ctx *c, const char *list) {
    if (!list || !*list)
        return 0;
    size_t len = strlen(list) + 1; /* one length byte per protocol, one NUL per protocol */
    c->alpn_wire = malloc(len);
    c->alpn_names = malloc(len);
    if (!c->alpn_wire || !c->alpn_names)
        return CORIO_ENOMEM;
    size_t at = 0;
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n > 255) {
            corio__report("tls: bad ALPN list '%s' (empty or over-long protocol)", list);
            return CORIO_EINVAL;
        }
        c->alpn_wire[at] = (unsigned char)n;
        memcpy(c->alpn_wire + at + 1, p, n);
        memcpy(c->alpn_names + at, p, n);
        c->alpn_names[at + n] = '\0';
        at += n + 1;
        p += n;
        if (*p == ',' && !*++p) {
            corio__report("tls: bad ALPN list '%s' (trailing comma)", list);
            return CORIO_EINVAL;
        }
    }
    c->alpn_len = at;
    return 0;
}

const char *corio__tls_ctx_alpn(const corio_tls_ctx *c, const unsigned char *p, unsigned n) {
    for (size_t at = 0; at < c->alpn_len; at += (size_t)c->alpn_wire[at] + 1)
        if (c->alpn_wire[at] == n && memcmp(c->alpn_wire + at + 1, p, n) == 0)
            return c->alpn_names + at;
    return NULL;
}

/* Server side of ALPN: our most preferred protocol the client offers. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg) {
    (void)ssl;
    const corio_tls_ctx *c = arg;
    for (size_t at = 0; at < c->alpn_len; at += (size_t)c->alpn_wire[at] + 1) {
        unsigned n = c->alpn_wire[at];
        for (unsigned i = 0; i < inlen; i += (unsigned)in[i] + 1) {
            if (in[i] == n && i + 1 + n <= inlen &&
                memcmp(in + i + 1, c->alpn_wire + at + 1, n) == 0) {
                *out = c->alpn_wire + at + 1;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_NOACK; /* go on without ALPN */
}

/* Refuses cipher lists that admit TLS 1.2 suites without ECDHE and AEAD. */
static int check_ciphers(SSL_CTX *sc, const char *list) {
    STACK_OF(SSL_CIPHER) *sk = SSL_CTX_get_ciphers(sc);
    for (int i = 0; i < sk_SSL_CIPHER_num(sk); i++) {
        const SSL_CIPHER *ci = sk_SSL_CIPHER_value(sk, i);
        if (SSL_CIPHER_get_kx_nid(ci) == NID_kx_any)
            continue; /* a TLS 1.3 suite: all AEAD, key exchange separate */
        if (SSL_CIPHER_get_kx_nid(ci) != NID_kx_ecdhe || !SSL_CIPHER_is_aead(ci)) {
            corio__report("tls: cipher list '%s' admits %s (only ECDHE with AEAD is allowed)", list,
                          SSL_CIPHER_get_name(ci));
            return CORIO_EINVAL;
        }
    }
    return 0;
}

/* The session cache of CORIO_TLS_RESUME_CACHE (per SSL_CTX). */
#define SESSION_CACHE_SIZE 20000
#define SESSION_CACHE_SECONDS 300

/* A server's session resumption (corio_tls_resumption).  OpenSSL's default,
 * a server cache of 20,480 sessions beside the tickets, is never kept: each
 * mode has one mechanism.  Returns 0 or CORIO_EINVAL (reported). */
static int set_resumption(const corio_tls_ctx *c, SSL_CTX *sc) {
    static const unsigned char sid_ctx[] = "corio";
    switch (c->resumption) {
    case CORIO_TLS_RESUME_TICKETS:
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
        if (SSL_CTX_ctrl(sc, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, sizeof c->ticket_key,
                         (void *)c->ticket_key) != 1) {
            corio__tls_report("cannot set the session ticket key");
            return CORIO_EINVAL;
        }
        return 0;
    case CORIO_TLS_RESUME_CACHE:
        SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_SERVER);
        SSL_CTX_sess_set_cache_size(sc, SESSION_CACHE_SIZE);
        SSL_CTX_set_timeout(sc, SESSION_CACHE_SECONDS);
        if (!SSL_CTX_set_session_id_context(sc, sid_ctx, sizeof sid_ctx - 1)) {
            corio__tls_report("cannot set the session id context");
            return CORIO_EINVAL;
        }
        return 0;
    case CORIO_TLS_RESUME_OFF:
        SSL_CTX_set_options(sc, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(sc, 0);
        return 0;
    }
    return CORIO_EINVAL;
}

/* Builds an SSL_CTX from c's settings (and, for servers, cert and key). */
static int build_ssl_ctx(const corio_tls_ctx *c, const char *cert, const char *key, SSL_CTX **out) {
    *out = NULL;
    if (c->server) {
        int rc = check_readable(cert, "certificate");
        if (rc == 0)
            rc = check_readable(key, "private key");
        if (rc)
            return rc;
    }
    if (c->ca_file) {
        int rc = check_readable(c->ca_file, "CA");
        if (rc)
            return rc;
    }
    ERR_clear_error();
    SSL_CTX *sc = SSL_CTX_new(c->server ? TLS_server_method() : TLS_client_method());
    if (!sc) {
        corio__tls_report("cannot create a context");
        return CORIO_ENOMEM;
    }
    int rc = CORIO_EINVAL;
    SSL_CTX_set_min_proto_version(sc, c->min_version == CORIO_TLS_1_3 ? TLS1_3_VERSION
                                                                      : TLS1_2_VERSION);
    SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                (c->server ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_default_passwd_cb(sc, no_password);
    const char *ciphers = c->ciphers ? c->ciphers : DEFAULT_CIPHERS;
    if (!SSL_CTX_set_cipher_list(sc, ciphers)) {
        corio__tls_report("bad cipher list '%s'", ciphers);
        goto out_free;
    }
    if (check_ciphers(sc, ciphers))
        goto out_free;
    if (c->server) {
        if (!SSL_CTX_use_certificate_chain_file(sc, cert)) {
            corio__tls_report("cannot load certificate chain '%s'", cert);
            goto out_free;
        }
        if (!SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM)) {
            corio__tls_report("cannot load private key '%s'", key);
            goto out_free;
        }
        if (!SSL_CTX_check_private_key(sc)) {
            corio__tls_report("private key '%s' does not match certificate '%s'", key, cert);
            goto out_free;
        }
        if (c->alpn_len)
            SSL_CTX_set_alpn_select_cb(sc, alpn_select, (void *)c);
        if (set_resumption(c, sc))
            goto out_free;
    } else {
        if (c->verify) {
            SSL_CTX_set_verify(sc, SSL_VERIFY_PEER, NULL);
            if (!SSL_CTX_set_default_verify_paths(sc)) {
                corio__tls_report("cannot use the system CA store");
                goto out_free;
            }
        } else {
            SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
        }
        if (c->ca_file && !SSL_CTX_load_verify_locations(sc, c->ca_file, NULL)) {
            corio__tls_report("cannot load CA file '%s'", c->ca_file);
            goto out_free;
        }
        if (c->alpn_len && SSL_CTX_set_alpn_protos(sc, c->alpn_wire, (unsigned)c->alpn_len) != 0) {
            corio__tls_report("cannot set ALPN protocols");
            goto out_free;
        }
    }
    *out = sc;
    return 0;
out_free:
    ERR_clear_error();
    SSL_CTX_free(sc);
    return rc;
}

static void ctx_destroy(corio_tls_ctx *c) {
    SSL_CTX_free(c->current);
    OPENSSL_cleanse(c->ticket_key, sizeof c->ticket_key);
    uv_mutex_destroy(&c->lock);
    free(c->ciphers);
    free(c->ca_file);
    free(c->alpn_wire);
    free(c->alpn_names);
    free(c);
}

corio_tls_ctx *corio__tls_ctx_retain(corio_tls_ctx *c) {
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

void corio_tls_ctx_free(corio_tls_ctx *c) {
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        ctx_destroy(c);
}

static char *dup_or_null(const char *s, int *rc) {
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *rc = CORIO_ENOMEM;
    return d;
}

/* Allocates a context and copies the settings shared by both sides. */
static int ctx_alloc(corio_tls_ctx **out, bool server, const char *alpn, const char *ciphers,
                     corio_tls_version min_version, uint64_t handshake_ms) {
    if (min_version != CORIO_TLS_1_2 && min_version != CORIO_TLS_1_3)
        return CORIO_EINVAL;
    corio_tls_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return CORIO_ENOMEM;
    if (uv_mutex_init(&c->lock) != 0) {
        free(c);
        return CORIO_ENOMEM;
    }
    atomic_init(&c->refs, 1);
    c->server = server;
    c->min_version = min_version;
    c->handshake_ms = handshake_ms ? handshake_ms : DEFAULT_HANDSHAKE_MS;
    int rc = 0;
    c->ciphers = dup_or_null(ciphers, &rc);
    if (rc == 0)
        rc = parse_alpn(c, alpn);
    if (rc) {
        ctx_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

int corio_tls_ticket_key_new(unsigned char key[CORIO_TLS_TICKET_KEY_SIZE]) {
    if (!key)
        return CORIO_EINVAL;
    if (RAND_bytes(key, CORIO_TLS_TICKET_KEY_SIZE) != 1) {
        corio__tls_report("cannot make a session ticket key");
        return CORIO_ENOMEM;
    }
    return 0;
}

int corio_tls_ctx_new_server(corio_tls_ctx **out, const corio_tls_server_opts *o) {
    if (!out || !o)
        return CORIO_EINVAL;
    *out = NULL;
    corio_tls_ctx *c;
    if ((unsigned)o->resumption > CORIO_TLS_RESUME_OFF)
        return CORIO_EINVAL;
    int rc = ctx_alloc(&c, true, o->alpn, o->ciphers, o->min_version, o->handshake_timeout_ms);
    if (rc)
        return rc;
    c->resumption = o->resumption;
    if (o->ticket_key)
        memcpy(c->ticket_key, o->ticket_key, sizeof c->ticket_key);
    else if (c->resumption == CORIO_TLS_RESUME_TICKETS &&
             (rc = corio_tls_ticket_key_new(c->ticket_key)) != 0) {
        ctx_destroy(c);
        return rc;
    }
    rc = build_ssl_ctx(c, o->cert_file, o->key_file, &c->current);
    if (rc) {
        ctx_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

int corio_tls_ctx_new_client(corio_tls_ctx **out, const corio_tls_client_opts *o) {
    if (!out)
        return CORIO_EINVAL;
    *out = NULL;
    corio_tls_client_opts none = {0};
    if (!o)
        o = &none;
    corio_tls_ctx *c;
    int rc = ctx_alloc(&c, false, o->alpn, o->ciphers, o->min_version, o->handshake_timeout_ms);
    if (rc)
        return rc;
    c->verify = !o->insecure_no_verify;
    c->ca_file = dup_or_null(o->ca_file, &rc);
    if (rc == 0)
        rc = build_ssl_ctx(c, NULL, NULL, &c->current);
    if (rc) {
        ctx_destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

int corio_tls_ctx_reload(corio_tls_ctx *c, const char *cert, const char *key) {
    if (!c || !c->server)
        return CORIO_EINVAL;
    SSL_CTX *fresh;
    int rc = build_ssl_ctx(c, cert, key, &fresh);
    if (rc)
        return rc; /* the current certificate stays */
    uv_mutex_lock(&c->lock);
    SSL_CTX *old = c->current;
    c->current = fresh;
    uv_mutex_unlock(&c->lock);
    SSL_CTX_free(old); /* connections made from it hold their own references */
    return 0;
}

bool corio__tls_ctx_is_server(const corio_tls_ctx *c) {
    return c && c->server;
}

SSL *corio__tls_ctx_new_ssl(corio_tls_ctx *c) {
    uv_mutex_lock(&c->lock);
    SSL *ssl = SSL_new(c->current); /* holds its own reference to the SSL_CTX */
    uv_mutex_unlock(&c->lock);
    return ssl;
}
