/* SPDX-License-Identifier: MIT */
/* The service manager's notification protocol (systemd's sd_notify),
 * written without libsystemd: one datagram of "KEY=VALUE" lines to the
 * AF_UNIX socket named by $NOTIFY_SOCKET (a path, or '@' for Linux's
 * abstract namespace).  The runner says READY=1 once it serves and
 * STOPPING=1 when a drain begins, so a Type=notify unit knows both; with
 * workers, the supervisor speaks for the service and the workers stay
 * silent (corio__notify_forget in each child). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "app/runner.h"
#include "corio/log.h"

void corio__notify(const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@'))
        return; /* no service manager listens (or an address we do not speak) */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof a.sun_path) {
        corio_log(CORIO_LOG_WARN, "NOTIFY_SOCKET too long: not notifying");
        return;
    }
    memcpy(a.sun_path, path, len);
    if (a.sun_path[0] == '@')
        a.sun_path[0] = '\0'; /* abstract: no NUL at the end, the length says where */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s\nMAINPID=%d\n", state, (int)getpid());
    socklen_t alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&a, alen) < 0)
        corio_log(CORIO_LOG_WARN, "NOTIFY_SOCKET %s: %s", path, strerror(errno));
    close(fd);
}

void corio__notify_forget(void) {
    unsetenv("NOTIFY_SOCKET");
}
