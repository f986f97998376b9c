/* SPDX-License-Identifier: MIT */
/* Listening sockets and socket ports (see listen.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "base/report.h"
#include "corio/error.h"
#include "net/listen.h"

#define DEFAULT_BACKLOG 511
#define LOCK_SUFFIX ".lock"
#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
#define LOCK_PATH_SIZE (SUN_PATH_SIZE + sizeof LOCK_SUFFIX)
#define LOCK_TRIES 8
#define TCP_LISTEN 0x0A /* the "st" column of /proc/net/tcp: TCP_LISTEN */

int corio__sockaddr_port(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

int corio__socket_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return corio__sockaddr_port(&ss);
}

/* host:port into *ss (an IP literal: no name lookup).  Returns the address
 * length, or 0 after a report. */
static socklen_t ip_address(const char *host, uint16_t port, struct sockaddr_storage *ss) {
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return sizeof(struct sockaddr_in);
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return sizeof(struct sockaddr_in6);
    corio__report("server: host '%s' is not an IPv4 or IPv6 address", host);
    return 0;
}

/* A TCP socket of ss's family with the options every listener here has:
 * SO_REUSEADDR (a port whose connections linger in TIME_WAIT can be bound
 * again at once) and, for IPv6, IPV6_V6ONLY.  Returns the fd or -errno. */
static int tcp_socket(const struct sockaddr_storage *ss) {
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    return fd;
}

int corio__tcp_listen_socket(const char *host, uint16_t port, bool reuseport, int backlog,
                             uint16_t *bound_port) {
    struct sockaddr_storage ss;
    socklen_t len = ip_address(host, port, &ss);
    if (!len)
        return CORIO_EINVAL;
    int fd = tcp_socket(&ss);
    if (fd < 0)
        return fd;
    int one = 1;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto out_errno;
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 ||
        listen(fd, backlog > 0 ? backlog : DEFAULT_BACKLOG) != 0)
        goto out_errno;
    len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        goto out_errno;
    if (bound_port)
        *bound_port = (uint16_t)corio__sockaddr_port(&ss);
    return fd;
out_errno:;
    int err = -errno;
    close(fd);
    return err;
}

/* The kernel lets a socket without SO_REUSEPORT share a port with no
 * listening socket, SO_REUSEPORT or not (a listener on the wildcard
 * address covers 127.0.0.1 too): the probe's bind fails exactly when some
 * socket listens there. */
int corio__tcp_port_free(const char *host, uint16_t port) {
    struct sockaddr_storage ss;
    socklen_t len = ip_address(host, port, &ss);
    if (!len)
        return CORIO_EINVAL;
    int fd = tcp_socket(&ss);
    if (fd < 0)
        return fd;
    int rc = bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* An address as /proc/net/tcp* shows it, for comparing listeners: an IPv6
 * address that maps an IPv4 one (::ffff:a.b.c.d, a dual-stack socket bound
 * to an IPv4 address) is that IPv4 address. */
typedef struct {
    int family;
    struct in6_addr a; /* AF_INET: the address in a.s6_addr[0..4) */
} proc_addr;

static void proc_addr_set(proc_addr *pa, int family, const void *addr) {
    memset(pa, 0, sizeof *pa);
    pa->family = family;
    if (family == AF_INET) {
        memcpy(pa->a.s6_addr, addr, 4);
        return;
    }
    memcpy(&pa->a, addr, sizeof pa->a);
    if (IN6_IS_ADDR_V4MAPPED(&pa->a)) {
        pa->family = AF_INET;
        memmove(pa->a.s6_addr, pa->a.s6_addr + 12, 4);
        memset(pa->a.s6_addr + 4, 0, 12);
    }
}

static bool proc_addr_any(const proc_addr *pa) {
    static const struct in6_addr zero;
    return memcmp(&pa->a, &zero, pa->family == AF_INET ? 4 : sizeof zero) == 0;
}

/* Whether the listener `theirs` takes connections that `ours` would:
 * same family and the same address, or either the wildcard; across
 * families, an IPv6 wildcard that may be dual-stack covers every IPv4
 * address.  Theirs may always be (/proc does not show IPV6_V6ONLY); ours
 * is not when all our sockets have IPV6_V6ONLY (ours_v6only). */
static bool proc_addr_overlap(const proc_addr *ours, bool ours_v6only, const proc_addr *theirs) {
    if (ours->family == theirs->family)
        return proc_addr_any(ours) || proc_addr_any(theirs) ||
               memcmp(&ours->a, &theirs->a, sizeof ours->a) == 0;
    if (theirs->family == AF_INET6)
        return proc_addr_any(theirs);
    return !ours_v6only && proc_addr_any(ours);
}

/* One line of /proc/net/tcp or tcp6:
 *   "  0: 0100007F:EE03 00000000:0000 0A 00000000:00000000 00:00000000 00000000  0  0 10373258 ..."
 * sl, local address:port, remote, state, tx:rx queues, timer, retransmits,
 * uid, timeout, inode.  The kernel prints each 32-bit word of the address
 * with %08X as a number in host byte order (an IPv4 address is one word,
 * IPv6 four: s6_addr32[0..3]), the port with %04X in host order.  Returns
 * false for the header line or anything else that does not parse. */
static bool proc_tcp_line(const char *line, proc_addr *pa, unsigned *port, unsigned *state,
                          unsigned long *inode) {
    char hex[33];
    /* The kernel's own fixed format, not a peer's input: NOLINTNEXTLINE(cert-err34-c) */
    if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*u %*u %lu", hex, port, state,
               inode) != 4)
        return false;
    size_t n = strlen(hex);
    if (n != 8 && n != 32)
        return false;
    uint32_t words[4];
    for (size_t i = 0; i < n / 8; i++) {
        char w[9];
        memcpy(w, hex + 8 * i, 8);
        w[8] = '\0';
        words[i] = (uint32_t)strtoul(w, NULL, 16);
    }
    proc_addr_set(pa, n == 8 ? AF_INET : AF_INET6, words);
    return true;
}

/* Whether a socket inode is one of fds (already checked by fstat). */
static bool inode_ours(unsigned long inode, const int *fds, size_t nfds) {
    for (size_t i = 0; i < nfds; i++) {
        struct stat st;
        if (fstat(fds[i], &st) == 0 && st.st_ino == (ino_t)inode)
            return true;
    }
    return false;
}

/* Whether one /proc/net/tcp* table shows a listener on port that overlaps
 * ours and is not one of fds.  A table that cannot be opened or read shows
 * nothing. */
static bool proc_tcp_taken(const char *table, const proc_addr *ours, bool ours_v6only,
                           uint16_t port, const int *fds, size_t nfds) {
    FILE *f = fopen(table, "re");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    bool taken = false;
    while (!taken && getline(&line, &cap, f) >= 0) {
        proc_addr pa;
        unsigned p, state;
        unsigned long inode;
        if (!proc_tcp_line(line, &pa, &p, &state, &inode) || state != TCP_LISTEN || p != port)
            continue;
        taken = proc_addr_overlap(ours, ours_v6only, &pa) && !inode_ours(inode, fds, nfds);
    }
    free(line);
    (void)fclose(f); /* read only: nothing to flush */
    return taken;
}

/* Whether every one of fds is an IPv6 socket with IPV6_V6ONLY (none: no). */
static bool all_v6only(const int *fds, size_t nfds) {
    for (size_t i = 0; i < nfds; i++) {
        int on = 0;
        socklen_t len = sizeof on;
        if (getsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &on, &len) != 0 || !on)
            return false;
    }
    return nfds > 0;
}

/* Why this is race-free where corio__tcp_port_free is not: each server
 * checks only after its own sockets listen.  Of two servers racing for one
 * port, take the one that checks last: the other listened before it
 * checked, hence before this check too, and is seen (unless it has already
 * refused and closed its sockets, which leaves the port to this one).  So
 * at most one of them serves; both may refuse, which is the safe outcome.
 * The tables are read in pages, and the kernel resumes each page by
 * position in a hash bucket: with many sockets, a listener could be missed
 * if a socket ahead of it in its bucket closed between two pages. */
int corio__tcp_port_exclusive(const char *host, uint16_t port, const int *fds, size_t nfds) {
    struct sockaddr_storage ss;
    socklen_t len = ip_address(host, port, &ss);
    if (!len)
        return CORIO_EINVAL;
    proc_addr ours;
    if (ss.ss_family == AF_INET)
        proc_addr_set(&ours, AF_INET, &((struct sockaddr_in *)&ss)->sin_addr);
    else
        proc_addr_set(&ours, AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr);
    for (size_t i = 0; i < nfds; i++) {
        struct stat st;
        if (fstat(fds[i], &st) != 0)
            return -errno;
    }
    bool v6only = ours.family == AF_INET6 && all_v6only(fds, nfds);
    /* No tcp6 table: a kernel without IPv6, hence no IPv6 listener. */
    if (proc_tcp_taken("/proc/net/tcp", &ours, v6only, port, fds, nfds) ||
        proc_tcp_taken("/proc/net/tcp6", &ours, v6only, port, fds, nfds))
        return -EADDRINUSE;
    return 0;
}

/* path into *sun.  Returns 0, or CORIO_EINVAL when it is longer than
 * sun_path. */
static int unix_address(const char *path, struct sockaddr_un *sun) {
    memset(sun, 0, sizeof *sun);
    sun->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun->sun_path)
        return CORIO_EINVAL;
    strcpy(sun->sun_path, path);
    return 0;
}

/* libuv reports a missing directory as EACCES (uv_pipe_bind), so it is
 * looked for here first: 0 when path exists or its directory does, else
 * -ENOENT, -ENOTDIR or the failing call's errno. */
static int unix_dir_check(const char *path) {
    struct stat st;
    if (lstat(path, &st) == 0)
        return 0;
    if (errno != ENOENT)
        return -errno;
    char dir[SUN_PATH_SIZE];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;               /* in the working directory, which exists */
    slash[slash == dir] = '\0'; /* "/s.sock": the root */
    return stat(dir, &st) == 0 ? 0 : -errno;
}

/* A socket file outlives its server when the server is killed: nothing
 * unlinks it, and bind() then fails with EADDRINUSE although nobody
 * listens.  Connecting tells the two apart. */
static int unix_path_clear(const struct sockaddr_un *sun) {
    struct stat st;
    if (lstat(sun->sun_path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0 ? 0 : -errno;
    close(fd);
    if (rc == 0 || rc == -EAGAIN) /* EAGAIN: it listens, its backlog is full */
        return -EADDRINUSE;
    if (rc != -ECONNREFUSED)
        return rc == -ENOENT ? 0 : rc; /* ENOENT: gone meanwhile */
    return unlink(sun->sun_path) == 0 || errno == ENOENT ? 0 : -errno;
}

/* "<path>.lock" into buf, of LOCK_PATH_SIZE bytes: enough for any path
 * that fits sun_path, a longer one is cut (and its lock never found). */
static void lock_path_of(char *buf, const char *path) {
    snprintf(buf, LOCK_PATH_SIZE, "%s" LOCK_SUFFIX, path);
}

/* Whether fd is the file now at lockpath (same device and inode): a lock
 * file unlinked by its holder's release, or replaced since, is not. */
static bool lock_is_current(int fd, const char *lockpath) {
    struct stat held, now;
    return fstat(fd, &held) == 0 && lstat(lockpath, &now) == 0 && held.st_dev == now.st_dev &&
           held.st_ino == now.st_ino;
}

/* Opens (creating it) and locks lockpath.  Between our open() and flock()
 * the holder may release: it unlinks the file and closes it, and our
 * flock() then succeeds on a file nobody else will ever open, while a third
 * claimer creates a new one.  Hence the check that the locked file is still
 * the one at lockpath, and another try if not.  Every retry means another
 * claimer took or released the lock meanwhile: after LOCK_TRIES of them the
 * path is taken to be in use.  Returns the fd, -EADDRINUSE, or the failing
 * call's errno. */
static int lock_take(const char *lockpath) {
    for (int i = 0; i < LOCK_TRIES; i++) {
        int fd = open(lockpath, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
        if (fd < 0)
            return -errno;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
            close(fd);
            return err;
        }
        if (lock_is_current(fd, lockpath))
            return fd;
        close(fd);
    }
    return -EADDRINUSE;
}

/* The lock makes the claim atomic: the checks below, the bind and the
 * listen of a server all happen while it holds the lock, and it holds it
 * for as long as it serves, so a second claimer fails at flock() instead of
 * seeing a bound socket that does not listen yet (connect() refused, as for
 * a stale one).  The socket checks remain for a socket file left by a
 * killed server, or made by a program that does not take the lock. */
int corio__unix_path_claim(const char *path, int *lock_fd) {
    *lock_fd = -1;
    struct sockaddr_un sun;
    if (unix_address(path, &sun) != 0)
        return CORIO_EINVAL;
    int rc = unix_dir_check(path); /* before the lock file is made there */
    if (rc != 0)
        return rc;
    char lockpath[LOCK_PATH_SIZE];
    lock_path_of(lockpath, path);
    int fd = lock_take(lockpath);
    if (fd < 0)
        return fd;
    rc = unix_path_clear(&sun);
    if (rc != 0) {
        unlink(lockpath); /* held and current: nobody else's */
        close(fd);
        return rc;
    }
    *lock_fd = fd;
    return 0;
}

void corio__unix_path_release(const char *path, int lock_fd) {
    if (lock_fd < 0)
        return;
    char lockpath[LOCK_PATH_SIZE];
    lock_path_of(lockpath, path);
    if (lock_is_current(lock_fd, lockpath))
        unlink(lockpath);
    close(lock_fd);
}

int corio__unix_listen_socket(const char *path, int backlog) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path)
        return CORIO_EINVAL;
    strcpy(sun.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
        listen(fd, backlog > 0 ? backlog : DEFAULT_BACKLOG) != 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}
