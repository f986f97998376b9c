/* SPDX-License-Identifier: MIT */
/* Listening sockets made here rather than by libuv, so that SO_REUSEPORT can
 * be set before bind (libuv 1.44 has no flag for it): a server adopts them
 * (uv_tcp_open, server.c), the runner's supervisor makes one per worker.
 * Also the one place that reads a port out of a socket address.
 */
#ifndef CORIO_NET_LISTEN_H
#define CORIO_NET_LISTEN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Creates a non-blocking TCP socket bound to host:port (an IP literal) and
 * listening (backlog <= 0: 511), with SO_REUSEADDR, SO_REUSEPORT if asked,
 * IPV6_V6ONLY for IPv6.  Returns the fd (and the bound port in *bound_port,
 * if not NULL) or a negative code: CORIO_EINVAL for a host that is not an
 * IP address, else the failing call's errno. */
int corio__tcp_listen_socket(const char *host, uint16_t port, bool reuseport, int backlog,
                             uint16_t *bound_port);

/* Whether a new SO_REUSEPORT group may be made on host:port without
 * joining another's: binds a socket without SO_REUSEPORT there (with
 * SO_REUSEADDR, as the listeners have, so connections in TIME_WAIT do not
 * count) and closes it at once.  Returns 0 when no socket listens on the
 * port, -EADDRINUSE when one does (SO_REUSEPORT or not), CORIO_EINVAL for a
 * host that is not an IP address, else the failing call's errno.  Nothing
 * holds the port after the check: a server that binds it in between is not
 * seen. */
int corio__tcp_port_free(const char *host, uint16_t port);

/* Makes `path` free for a Unix listening socket: a socket file there that
 * nothing listens on (connect() refused: its server died without removing
 * it) is removed.  Returns 0 (nothing there now), -EADDRINUSE (a server
 * listens there), -ENOTSOCK (a file that is not a socket: left alone),
 * -ENOENT or -ENOTDIR (the directory is missing, or not a directory),
 * CORIO_EINVAL (longer than sun_path), else the failing call's errno.  Not
 * atomic: a server binding the path meanwhile is not seen. */
int corio__unix_path_claim(const char *path);

/* Creates a non-blocking Unix stream socket bound to `path` and listening.
 * Returns the fd or a negative code: CORIO_EINVAL for a path too long for
 * sun_path, else the failing call's errno. */
int corio__unix_listen_socket(const char *path, int backlog);

/* The port of an IPv4 or IPv6 address (host order), 0 for other families. */
int corio__sockaddr_port(const struct sockaddr_storage *ss);

/* The TCP port socket fd is bound to, or 0 (not bound, not IP, an error). */
int corio__socket_port(int fd);

#endif
