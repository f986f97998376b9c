/* SPDX-License-Identifier: MIT */
/* A free TCP port on 127.0.0.1 for a server a test starts (PostgreSQL,
 * Redis): bound to port 0 and closed again, so another process may take
 * it before the server binds it; the servers' helpers retry on another
 * port when their start fails. */
#ifndef CORIO_TEST_FREE_PORT_H
#define CORIO_TEST_FREE_PORT_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

/* The port, or -1. */
static inline int test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

#endif
