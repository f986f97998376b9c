/* SPDX-License-Identifier: MIT */
/* corio/tls.h — TLS on corio streams (OpenSSL 3 behind memory BIOs).
 *
 * A TLS stream is an ordinary corio_stream: read, read_exactly, read_until,
 * buffered/fill/consume, write, writev, drain, shutdown and close behave as
 * on a plain stream (stream.h), with plaintext in the stream's read buffer.
 * Only the errors below are new.
 *
 * Contexts.  A corio_tls_ctx holds the configuration shared by many
 * connections: certificate and key (server), trusted CAs (client), ALPN
 * protocols, the minimum TLS version and the handshake deadline.  Every
 * context enforces TLS 1.2 or later, only ECDHE key exchange with AEAD
 * ciphers for TLS 1.2 (TLS 1.3's suites are all AEAD), no compression and no
 * renegotiation.  Each connection keeps a reference to the context it was
 * made from, so corio_tls_ctx_free() and corio_tls_ctx_reload() never disturb
 * live connections.  A context may be shared by loops on several threads.
 *
 * Servers.  Set corio_server_opts.tls (server.h): each accepted connection's
 * task completes the handshake, under the handshake deadline, before the
 * handler runs; a failed handshake closes the connection (logged, see
 * Logging) and the handler never sees it.
 *
 * Clients.  corio_tls_connect() connects and handshakes; a stream that is
 * already connected (STARTTLS, a Unix socket) is upgraded with
 * corio_stream_start_tls().  Clients verify the server's certificate chain
 * against the system CA store (plus an optional CA file) and its name
 * against the host name given, unless verification is switched off
 * explicitly.
 *
 * Memory.  Ciphertext read ahead from the socket is bounded (40 KiB, a
 * little over two records); plaintext by read_buffer_max as on any stream;
 * writes are encrypted one 16 KiB record at a time and wait at
 * write_high_water between records.  Idle connections give back OpenSSL's
 * record buffers and any grown ciphertext buffer.
 *
 * Ending.  corio_stream_shutdown() and corio_stream_close() send TLS's
 * close_notify first (only after a completed handshake).  Unlike a plain
 * stream's close, which drops queued bytes, a TLS close waits up to one
 * second for the queued bytes and the close_notify to reach the kernel.
 * The peer's close_notify reads as CORIO_EOF; so does a TCP FIN without
 * close_notify that falls between records (peers that never send
 * close_notify are common; protocols with their own framing detect
 * truncation themselves); a FIN in the middle of a record is CORIO_ETLS.
 *
 * Logging.  What a peer can cause (failed handshakes, bad or truncated
 * records, renegotiation attempts, fatal alerts) is logged at WARN through
 * corio_log_peer (log.h): silent at --log-level error, and rate-limited per
 * thread so that a peer cannot flood the log.  Unusable configuration files
 * are reported on stderr whatever the level, one line each, with OpenSSL's
 * reason.
 */
#ifndef CORIO_TLS_H
#define CORIO_TLS_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "stream.h"

#ifdef __cplusplus
extern "C" {
#endif

/* TLS failures (codes from corio/error.h):
 * CORIO_ETLS: the handshake failed (no common version or cipher, a fatal
 * alert from the peer, bytes that are not TLS) or a record was bad or
 * truncated.
 * CORIO_ETLS_VERIFY: the peer's certificate did not verify (untrusted
 * issuer, expired, issued for another name); the reason is logged. */

typedef struct corio_tls_ctx corio_tls_ctx;

/* The lowest TLS version a context accepts. */
typedef enum corio_tls_version {
    CORIO_TLS_1_2 = 0, /* the default */
    CORIO_TLS_1_3,
} corio_tls_version;

/* How a returning client skips the full handshake (session resumption). */
typedef enum corio_tls_resumption {
    /* Session tickets (the default): the server stores nothing; the client
     * brings its session back sealed with the context's ticket key
     * (`ticket_key`, else random per context; corio_app gives every worker
     * of a server the same one, so a client resumes on any of them).  No
     * server-side session cache: memory does not grow with clients. */
    CORIO_TLS_RESUME_TICKETS = 0,
    /* A server-side session cache (at most 20,000 sessions of a few KiB,
     * 5 minutes each, per context) and no tickets in the TLS 1.2 sense
     * (TLS 1.3 tickets then carry only the cache's id).  Per process: a
     * client resumes only on the worker that made its session. */
    CORIO_TLS_RESUME_CACHE,
    /* None: every connection makes a full handshake; no ticket is sent. */
    CORIO_TLS_RESUME_OFF,
} corio_tls_resumption;

/* The size of a session ticket key (corio_tls_server_opts.ticket_key). */
#define CORIO_TLS_TICKET_KEY_SIZE 80

typedef struct corio_tls_server_opts {
    const char *cert_file; /* PEM certificate chain, leaf first; required */
    const char *key_file;  /* PEM private key, not encrypted; required */
    /* ALPN protocols the server accepts, comma-separated, in its order of
     * preference ("h2,http/1.1").  The server picks its most preferred
     * protocol the client also offers; with no common protocol (or NULL
     * here) the connection goes on without ALPN. */
    const char *alpn;
    corio_tls_version min_version;
    /* TLS 1.2 cipher list in OpenSSL's syntax; NULL: "ECDHE+AESGCM:
     * ECDHE+CHACHA20".  A list that admits a suite without ECDHE key
     * exchange and an AEAD cipher is refused (CORIO_EINVAL). */
    const char *ciphers;
    uint64_t handshake_timeout_ms; /* 0: 10000 */
    corio_tls_resumption resumption;
    /* With CORIO_TLS_RESUME_TICKETS: the key that seals tickets,
     * CORIO_TLS_TICKET_KEY_SIZE secret random bytes (copied), the same for
     * every server that should accept another's tickets; NULL: a random key
     * made with the context (kept across corio_tls_ctx_reload).  Ignored
     * otherwise. */
    const unsigned char *ticket_key;
} corio_tls_server_opts;

typedef struct corio_tls_client_opts {
    /* PEM file of CA certificates trusted in addition to the system's. */
    const char *ca_file;
    /* true: do not verify the server at all (neither its chain nor its
     * name).  For tests and pinned setups only; off by default. */
    bool insecure_no_verify;
    const char *alpn; /* protocols offered, comma-separated; NULL: none */
    corio_tls_version min_version;
    const char *ciphers;           /* as for servers */
    uint64_t handshake_timeout_ms; /* 0: 10000 */
} corio_tls_client_opts;

/* Fills key with a fresh random session ticket key (OpenSSL's CSPRNG), for
 * corio_tls_server_opts.ticket_key: made once and given to several
 * contexts (servers in one process, or processes forked after the call),
 * they accept each other's tickets.  Returns 0, or CORIO_EINVAL (key NULL)
 * or CORIO_ENOMEM when the generator fails. */
int corio_tls_ticket_key_new(unsigned char key[CORIO_TLS_TICKET_KEY_SIZE]);

/* Creates a server context from opts (read during the call only).  Returns
 * 0 and *out (free with corio_tls_ctx_free), or: CORIO_EINVAL for a missing
 * file name, a bad ALPN list or cipher list, an unknown resumption mode, a PEM file that does not parse,
 * a key that does not match the certificate; -errno (CORIO_ENOENT,
 * -EACCES ...) when a file cannot be read; CORIO_ENOMEM.  Details of a
 * failure are logged on stderr. */
int corio_tls_ctx_new_server(corio_tls_ctx **out, const corio_tls_server_opts *opts);

/* Creates a client context; opts may be NULL (verify against the system CA
 * store, no ALPN).  Returns 0 and *out, or CORIO_EINVAL / -errno for the
 * CA file as above, CORIO_ENOMEM. */
int corio_tls_ctx_new_client(corio_tls_ctx **out, const corio_tls_client_opts *opts);

/* Replaces a server context's certificate chain and key: connections
 * accepted from now on present the new ones, open connections keep theirs.
 * On any failure the context is unchanged and goes on serving the old
 * certificate.  Callable from any thread.  Returns 0, the error codes of
 * corio_tls_ctx_new_server, or CORIO_EINVAL for a client context. */
int corio_tls_ctx_reload(corio_tls_ctx *ctx, const char *cert_file, const char *key_file);

/* Drops the caller's reference; the context is freed once no connection
 * uses it either.  Accepts NULL. */
void corio_tls_ctx_free(corio_tls_ctx *ctx);

/* Await: connects to host:port (as corio_connect) and completes a TLS
 * handshake with ctx (a client context).  host is the name sent as SNI and
 * checked against the certificate (an IP literal is checked against the
 * certificate's IP addresses and sends no SNI).  timeout_ms bounds connect
 * and handshake together (0: no bound beyond the context's handshake
 * deadline and the task's deadlines).  Returns 0 and *out (close with
 * corio_stream_close), or corio_connect's errors, CORIO_ETLS,
 * CORIO_ETLS_VERIFY, CORIO_ECONNRESET (the server closed during the
 * handshake), CORIO_ETIMEDOUT, CORIO_ECANCELED, CORIO_EINVAL (a server
 * context).  host and ctx are borrowed; the stream keeps its own reference
 * to ctx. */
int corio_tls_connect(corio_stream **out, const char *host, uint16_t port, corio_tls_ctx *ctx,
                      uint64_t timeout_ms);

/* Await: turns a connected plain stream into a TLS stream and completes the
 * handshake, as client or server according to ctx.  Bytes already buffered
 * on s are taken as the first TLS bytes from the peer.  server_name: for a
 * client, the name for SNI and verification (required unless verification
 * is off); ignored for a server.  Returns 0, the handshake errors of
 * corio_tls_connect, CORIO_EALREADY if s is already TLS, CORIO_EBUSY if
 * another task reads s.  After a failure s stays open but unusable: close
 * it.  Arguments are borrowed. */
int corio_stream_start_tls(corio_stream *s, corio_tls_ctx *ctx, const char *server_name);

/* Whether s is a TLS stream. */
bool corio_stream_is_tls(const corio_stream *s);

/* The ALPN protocol agreed on s ("h2"), or NULL when none was or s is not a
 * TLS stream.  Borrowed: valid as long as s. */
const char *corio_stream_alpn(const corio_stream *s);

/* The TLS version in use ("TLSv1.3"), or NULL for a plain stream.  Static
 * string. */
const char *corio_stream_tls_version(const corio_stream *s);

#ifdef __cplusplus
}
#endif
#endif /* CORIO_TLS_H */
