/* SPDX-License-Identifier: MIT */
/* Listening sockets made here rather than by libuv, so that SO_REUSEPORT can
 * be set before bind (libuv 1.44 has no flag for it): a server adopts them
 * (uv_tcp_open, server.c), the runner's supervisor makes one per worker.
 * Also the one place that reads a port out of a socket address.
 */
#ifndef CORIO_NET_LISTEN_H
#define CORIO_NET_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
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

/* The race-free check that host:port is this server's alone, made AFTER
 * the server's own SO_REUSEPORT sockets fds[0..nfds) are bound to it and
 * listen (corio__tcp_port_free stays the earlier check, before anything is
 * bound).  Reads /proc/net/tcp and /proc/net/tcp6 for listening sockets on
 * the port whose address overlaps host: the same address, or either one a
 * wildcard (0.0.0.0 of IPv4, :: of IPv6); across families an IPv6 wildcard
 * counts as covering IPv4 (dual stack), except our own when every one of
 * fds has IPV6_V6ONLY; ::ffff:a.b.c.d counts as a.b.c.d.  Sockets whose
 * inode is one of fds' are ours and do not count, nor do sockets that are
 * bound but do not listen, nor connections (accepted ones on the port
 * included).  Race-free because each of two racing servers checks after it
 * listens: the later check sees the other (or both refuse, the safe
 * outcome).  fds are borrowed.  Returns 0 (no other listener; also when
 * /proc/net/tcp cannot be read, as nothing can be told: the
 * corio__tcp_port_free pre-check stands), -EADDRINUSE (another listener
 * overlaps), CORIO_EINVAL for a host that is not an IP address, else
 * fstat's errno for a bad fd (EBADF). */
int corio__tcp_port_exclusive(const char *host, uint16_t port, const int *fds, size_t nfds);

/* Makes `path` free for a Unix listening socket, atomically: first takes
 * an exclusive flock() (non-blocking) on the regular file "<path>.lock",
 * created if missing (mode 0600, close-on-exec; it is never bound, so it
 * may be longer than sun_path), then, holding it, removes a socket file at
 * `path` that nothing listens on (connect() refused: its server died
 * without removing it), and refuses one that a server listens on, or a
 * file that is not a socket (left alone).  A server holds the lock from the claim
 * until it stops serving, so a second claimer is refused at once instead of
 * taking the first one's bound-but-not-yet-listening socket for a stale
 * one.  The lock belongs to the open file: a forked child that inherits
 * *lock_fd keeps the lock held until every copy is closed; a server killed
 * even by SIGKILL releases it (the kernel closes its files), and the
 * "<path>.lock" it leaves is simply reused by the next claim.  A missing
 * directory is reported before any lock file is made.  Returns 0 with the
 * held lock in *lock_fd (the caller's, for corio__unix_path_release), or a
 * negative code with *lock_fd = -1 and no lock held and no lock file left:
 * -EADDRINUSE (another server holds the lock or listens on path, or the
 * lock file was replaced under us 8 times in a row: other claimers are
 * busy on the path), -ENOTSOCK, -ENOENT, -ENOTDIR,
 * CORIO_EINVAL (longer than sun_path), -ELOOP (the lock path is a
 * symbolic link: not followed), else the failing call's errno (EACCES: a
 * lock file or directory we may not open or write). */
int corio__unix_path_claim(const char *path, int *lock_fd);

/* Gives up a claim of corio__unix_path_claim: unlinks "<path>.lock"
 * while still holding its lock, then closes lock_fd (transferred).  The
 * lock file is unlinked only if it is still the one lock_fd holds (same
 * device and inode): if it was removed and another server has claimed the
 * path since, that server's lock file is left alone.  The socket file is
 * not touched: remove it before the release (after, it could be the next
 * server's).  Call it once, in the process that claimed, after every
 * process serving the path has closed its listener; a forked child just
 * closes its copy of lock_fd.  lock_fd < 0: does nothing. */
void corio__unix_path_release(const char *path, int lock_fd);

/* Creates a non-blocking Unix stream socket bound to `path` and listening.
 * Returns the fd or a negative code: CORIO_EINVAL for a path too long for
 * sun_path, else the failing call's errno. */
int corio__unix_listen_socket(const char *path, int backlog);

/* The port of an IPv4 or IPv6 address (host order), 0 for other families. */
int corio__sockaddr_port(const struct sockaddr_storage *ss);

/* The TCP port socket fd is bound to, or 0 (not bound, not IP, an error). */
int corio__socket_port(int fd);

#endif
