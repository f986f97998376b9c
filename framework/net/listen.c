/* Listening sockets and socket ports (see listen.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
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

int corio__tcp_listen_socket(const char *host, uint16_t port, bool reuseport, int backlog,
                             uint16_t *bound_port) {
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t len;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (uv_ip4_addr(host, port, a4) == 0) {
        len = sizeof *a4;
    } else if (uv_ip6_addr(host, port, a6) == 0) {
        len = sizeof *a6;
    } else {
        corio__report("server: host '%s' is not an IPv4 or IPv6 address", host);
        return CORIO_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)
        goto out_errno;
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
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
