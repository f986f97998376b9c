/* SPDX-License-Identifier: MIT */
/* Listening sockets and socket ports (see listen.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <uv.h>

#include "base/report.h"
#include "corio/error.h"
#include "net/listen.h"

#define DEFAULT_BACKLOG 511

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

/* A socket file outlives its server when the server is killed: nothing
 * unlinks it, and bind() then fails with EADDRINUSE although nobody
 * listens.  Connecting tells the two apart.  libuv reports a missing
 * directory as EACCES (uv_pipe_bind), so it is looked for here first. */
int corio__unix_path_claim(const char *path) {
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sun.sun_path)
        return CORIO_EINVAL;
    strcpy(sun.sun_path, path);
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno != ENOENT)
            return -errno;
        char dir[sizeof sun.sun_path];
        strcpy(dir, path);
        char *slash = strrchr(dir, '/');
        if (!slash)
            return 0;               /* in the working directory, which exists */
        slash[slash == dir] = '\0'; /* "/s.sock": the root */
        return stat(dir, &st) == 0 ? 0 : -errno;
    }
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int rc = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0 ? 0 : -errno;
    close(fd);
    if (rc == 0 || rc == -EAGAIN) /* EAGAIN: it listens, its backlog is full */
        return -EADDRINUSE;
    if (rc != -ECONNREFUSED)
        return rc == -ENOENT ? 0 : rc; /* ENOENT: gone meanwhile */
    return unlink(path) == 0 || errno == ENOENT ? 0 : -errno;
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
