/* SPDX-License-Identifier: MIT */
/* The runner's "is this address free?" checks (framework/net/listen.c) on
 * real sockets and files: the locked Unix path claim and its release, and
 * the TCP check made after our own listeners are up.  Each test works in
 * a fresh directory under /tmp.
 *
 * This program defines flock() itself, over libc's (the library is linked
 * statically, so listen.c's calls land here): it can unlink the lock file
 * just before the claim's flock(), as a holder releasing between the
 * claimer's open() and flock() would, which makes the claim's retry
 * deterministic.  It then makes the system call. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "corio_test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/listen.h"

/* ---- flock, with a hook ------------------------------------------------------------ */

static const char *flock_unlink_path; /* unlinked before each flock() ... */
static int flock_unlink_times;        /* ... this many times */
static int flock_calls;

int flock(int fd, int op) {
    flock_calls++;
    if (flock_unlink_path && flock_unlink_times > 0) {
        flock_unlink_times--;
        unlink(flock_unlink_path);
    }
    return (int)syscall(SYS_flock, fd, op);
}

/* ---- a directory per test ---------------------------------------------------------- */

static char dir[64];
static char sock_path[128]; /* <dir>/s.sock */
static char lock_path[128]; /* <dir>/s.sock.lock */

static int dir_setup(void **state) {
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/corio-listen-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", dir);
    snprintf(lock_path, sizeof lock_path, "%s/s.sock.lock", dir);
    flock_unlink_path = NULL;
    flock_unlink_times = 0;
    flock_calls = 0;
    return 0;
}

/* Removes what a test left: files, and directories of files. */
static void remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[PATH_MAX];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            remove_tree(child);
        }
        closedir(d);
    }
    rmdir(path);
}

static int dir_teardown(void **state) {
    (void)state;
    flock_unlink_path = NULL;
    remove_tree(dir);
    return 0;
}

static bool exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static ino_t inode_of(const char *path) {
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_ino;
}

static ino_t fd_inode(int fd) {
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    return st.st_ino;
}

/* The lowest free descriptor: unchanged across a call that leaks none. */
static int lowest_free_fd(void) {
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    close(fd);
    return fd;
}

static void assert_claim(const char *path, int expect) {
    int lock_fd = 12345;
    int before = lowest_free_fd();
    int rc = corio__unix_path_claim(path, &lock_fd);
    if (rc != expect)
        fail_msg("claim %s: got %d (%s), expected %d", path, rc, strerror(-rc), expect);
    if (expect == 0) {
        assert_true(lock_fd >= 0);
        corio__unix_path_release(path, lock_fd);
    } else {
        assert_int_equal(lock_fd, -1);
    }
    assert_int_equal(lowest_free_fd(), before);
}

/* A socket file at path that nothing listens on (its server "died"). */
static void make_stale_socket(const char *path) {
    int fd = corio__unix_listen_socket(path, 0);
    assert_true(fd >= 0);
    close(fd);
    assert_true(exists(path));
}

/* ---- Unix: the locked claim -------------------------------------------------------- */

static void test_unix_claim_fresh_path_creates_lock_file(void **state) {
    (void)state;
    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    assert_true(lock_fd >= 0);
    struct stat st;
    assert_int_equal(lstat(lock_path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 077, 0); /* 0600, less the umask */
    assert_int_equal(st.st_ino, fd_inode(lock_fd));
    assert_true(fcntl(lock_fd, F_GETFD) & FD_CLOEXEC);
    assert_false(exists(sock_path));

    /* The claim is for a server: it binds and listens while holding it. */
    int sfd = corio__unix_listen_socket(sock_path, 0);
    assert_true(sfd >= 0);
    close(sfd);
    unlink(sock_path); /* the socket file first, then the release */
    corio__unix_path_release(sock_path, lock_fd);
    assert_false(exists(lock_path));
    assert_int_equal(fcntl(lock_fd, F_GETFD), -1); /* closed */
}

static void test_unix_second_claim_refused_while_held(void **state) {
    (void)state;
    int a = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &a), 0);
    /* A second open file description, even in this process, is refused. */
    assert_claim(sock_path, -EADDRINUSE);
    assert_true(exists(lock_path)); /* the refused claim left the holder's file */
    assert_int_equal(inode_of(lock_path), fd_inode(a));
    corio__unix_path_release(sock_path, a);
    assert_false(exists(lock_path));

    int b = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &b), 0);
    assert_true(exists(lock_path));
    corio__unix_path_release(sock_path, b);
    assert_false(exists(lock_path));
}

static void test_unix_release_of_no_claim_does_nothing(void **state) {
    (void)state;
    int fd = open(lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    corio__unix_path_release(sock_path, -1);
    assert_true(exists(lock_path));
    close(fd);
}

static void test_unix_stale_socket_replaced(void **state) {
    (void)state;
    make_stale_socket(sock_path);
    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    assert_false(exists(sock_path));
    int sfd = corio__unix_listen_socket(sock_path, 0);
    assert_true(sfd >= 0);
    close(sfd);
    unlink(sock_path);
    corio__unix_path_release(sock_path, lock_fd);
    assert_false(exists(lock_path));
}

static void test_unix_live_socket_refused_and_lock_file_removed(void **state) {
    (void)state;
    /* A server that does not take the lock (an older one): connect() tells. */
    int sfd = corio__unix_listen_socket(sock_path, 0);
    assert_true(sfd >= 0);
    assert_claim(sock_path, -EADDRINUSE);
    assert_false(exists(lock_path));
    assert_true(exists(sock_path)); /* left alone */
    close(sfd);
}

static void test_unix_missing_directory_reported_without_lock_file(void **state) {
    (void)state;
    char path[192], parent[160];
    snprintf(parent, sizeof parent, "%s/missing", dir);
    snprintf(path, sizeof path, "%s/s.sock", parent);
    assert_claim(path, -ENOENT);
    assert_false(exists(parent));

    /* A regular file where the directory should be. */
    int fd = open(parent, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_claim(path, -ENOTDIR);
    assert_false(exists(lock_path));
}

static void test_unix_regular_file_refused_and_left_alone(void **state) {
    (void)state;
    int fd = open(sock_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    assert_claim(sock_path, -ENOTSOCK);
    struct stat st;
    assert_int_equal(lstat(sock_path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_size, 1);
    assert_false(exists(lock_path));
}

static void test_unix_path_too_long_refused(void **state) {
    (void)state;
    char path[256];
    struct sockaddr_un sun;
    int n = snprintf(path, sizeof path, "%s/", dir);
    while (n < (int)sizeof sun.sun_path)
        path[n++] = 'x';
    path[n] = '\0';
    assert_claim(path, CORIO_EINVAL);
    /* One byte shorter fits; its lock file's path is longer than sun_path. */
    path[n - 1] = '\0';
    char lock[300];
    snprintf(lock, sizeof lock, "%s.lock", path);
    assert_true(strlen(lock) >= sizeof sun.sun_path);
    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(path, &lock_fd), 0);
    assert_true(exists(lock));
    corio__unix_path_release(path, lock_fd);
    assert_false(exists(lock));
}

static void test_unix_stale_lock_file_reused(void **state) {
    (void)state;
    /* What a server killed with SIGKILL leaves: the file, no holder. */
    int fd = open(lock_path, O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    close(fd); /* as the kernel does for a killed process */
    make_stale_socket(sock_path);
    ino_t ino = inode_of(lock_path);

    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    assert_int_equal(fd_inode(lock_fd), ino);
    assert_false(exists(sock_path));
    corio__unix_path_release(sock_path, lock_fd);
    assert_false(exists(lock_path));
}

/* Runs a claim in a child; its exit code says whether the result was
 * `expect`. */
static void assert_claim_in_child(int expect) {
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int lock_fd = -1;
        int rc = corio__unix_path_claim(sock_path, &lock_fd);
        if (rc == 0)
            corio__unix_path_release(sock_path, lock_fd);
        _exit(rc == expect ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_unix_claim_in_child_refused_while_parent_holds(void **state) {
    (void)state;
    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    assert_claim_in_child(-EADDRINUSE);
    assert_true(exists(lock_path));
    corio__unix_path_release(sock_path, lock_fd);
    assert_claim_in_child(0);
    assert_false(exists(lock_path));
}

static void test_unix_lock_held_while_a_forked_child_keeps_the_fd(void **state) {
    (void)state;
    int lock_fd = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* a worker: inherits lock_fd, serves until told to stop */
        char c;
        close(pipefd[1]);
        _exit(read(pipefd[0], &c, 1) == 0 ? 0 : 1);
    }
    close(pipefd[0]);
    close(lock_fd); /* the parent's copy only: the child's still holds */
    assert_claim(sock_path, -EADDRINUSE);
    close(pipefd[1]); /* the child exits, closing its copy */
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_claim(sock_path, 0); /* the file left behind is reused */
    assert_false(exists(lock_path));
}

static void test_unix_release_leaves_a_lock_file_it_does_not_hold(void **state) {
    (void)state;
    int a = -1, b = -1;
    assert_int_equal(corio__unix_path_claim(sock_path, &a), 0);
    unlink(lock_path); /* behind the holder's back */
    assert_int_equal(corio__unix_path_claim(sock_path, &b), 0);
    ino_t b_ino = inode_of(lock_path);
    assert_int_equal(fd_inode(b), b_ino);
    assert_true(fd_inode(a) != b_ino);

    corio__unix_path_release(sock_path, a); /* a's file is gone: b's is not a's to remove */
    assert_true(exists(lock_path));
    assert_int_equal(inode_of(lock_path), b_ino);
    assert_claim(sock_path, -EADDRINUSE); /* b still holds */
    corio__unix_path_release(sock_path, b);
    assert_false(exists(lock_path));
}

static void test_unix_claim_retries_when_lock_file_unlinked_before_flock(void **state) {
    (void)state;
    flock_unlink_path = lock_path; /* a holder released between our open and flock */
    flock_unlink_times = 1;
    int lock_fd = -1;
    int before = lowest_free_fd();
    assert_int_equal(corio__unix_path_claim(sock_path, &lock_fd), 0);
    assert_int_equal(flock_calls, 2);
    assert_int_equal(fd_inode(lock_fd), inode_of(lock_path)); /* the file now there */
    corio__unix_path_release(sock_path, lock_fd);
    assert_false(exists(lock_path));
    assert_int_equal(lowest_free_fd(), before);
}

static void test_unix_claim_gives_up_after_repeated_lock_file_replacements(void **state) {
    (void)state;
    flock_unlink_path = lock_path;
    flock_unlink_times = 1000;
    assert_claim(sock_path, -EADDRINUSE);
    assert_int_equal(flock_calls, 8);
    assert_false(exists(lock_path));
}

/* ---- TCP: the check after our own listeners are up -------------------------------- */

/* An SO_REUSEPORT listener on host:port (port 0: any; *bound set). */
static int listener(const char *host, uint16_t port, uint16_t *bound) {
    int fd = corio__tcp_listen_socket(host, port, true, 0, bound);
    if (fd < 0)
        fail_msg("listen on %s:%u: %s", host, port, strerror(-fd));
    return fd;
}

static void test_tcp_our_own_listeners_only(void **state) {
    (void)state;
    uint16_t port = 0;
    int fds[2];
    fds[0] = listener("127.0.0.1", 0, &port);
    fds[1] = listener("127.0.0.1", port, NULL);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, fds, 2), 0);
    /* Given only one of the two, the other is a foreign listener. */
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, fds, 1), -EADDRINUSE);
    close(fds[0]);
    close(fds[1]);
}

static void test_tcp_foreign_reuseport_listener_refused(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = listener("127.0.0.1", 0, &port);
    int theirs = listener("127.0.0.1", port, NULL);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), -EADDRINUSE);
    close(theirs);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), 0);
    close(ours);
}

static void test_tcp_wildcard_listener_overlaps(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = listener("127.0.0.1", 0, &port);
    int theirs = listener("0.0.0.0", port, NULL);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), -EADDRINUSE);
    /* The other way round: ours on the wildcard, theirs on 127.0.0.1. */
    assert_int_equal(corio__tcp_port_exclusive("0.0.0.0", port, &theirs, 1), -EADDRINUSE);
    close(theirs);
    close(ours);
}

static void test_tcp_other_port_or_address_does_not_count(void **state) {
    (void)state;
    uint16_t port = 0, other = 0;
    int ours = listener("127.0.0.1", 0, &port);
    int elsewhere = listener("127.0.0.1", 0, &other);
    assert_true(other != port);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), 0);
    /* Same port, another address (all of 127/8 is loopback on Linux). */
    int fd = corio__tcp_listen_socket("127.0.0.2", port, true, 0, NULL);
    if (fd >= 0) {
        assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), 0);
        close(fd);
    }
    close(elsewhere);
    close(ours);
}

static void test_tcp_bound_but_not_listening_does_not_count(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = listener("127.0.0.1", 0, &port);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), 0);
    close(fd);
    close(ours);
}

static void test_tcp_connections_on_the_port_do_not_count(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = listener("127.0.0.1", 0, &port);
    int client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(client >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(client, (struct sockaddr *)&a, sizeof a), 0);
    struct pollfd p = {.fd = ours, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    int accepted = accept4(ours, NULL, NULL, SOCK_CLOEXEC);
    assert_true(accepted >= 0);
    /* The accepted socket is ESTABLISHED with local port `port`. */
    assert_int_equal(corio__socket_port(accepted), port);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &ours, 1), 0);
    close(accepted);
    close(client);
    close(ours);
}

static void test_tcp_bad_arguments(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = listener("127.0.0.1", 0, &port);
    assert_int_equal(corio__tcp_port_exclusive("not-an-ip", port, &ours, 1), CORIO_EINVAL);
    int bad[2] = {ours, -1};
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, bad, 2), -EBADF);
    close(ours);
}

/* An IPv6 socket on addr:port with SO_REUSEPORT and the given IPV6_V6ONLY,
 * listening. */
static int listener6(const char *addr, uint16_t port, int v6only) {
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int one = 1;
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one), 0);
    assert_int_equal(setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only), 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
    assert_int_equal(inet_pton(AF_INET6, addr, &a.sin6_addr), 1);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0)
        fail_msg("listen on [%s]:%u: %s", addr, port, strerror(errno));
    return fd;
}

static void test_tcp_ipv6(void **state) {
    (void)state;
    uint16_t port = 0;
    int ours = corio__tcp_listen_socket("::1", 0, true, 0, &port);
    if (ours < 0)
        skip(); /* no IPv6 loopback here */
    int ours2 = listener("::1", port, NULL);
    int fds[2] = {ours, ours2};
    assert_int_equal(corio__tcp_port_exclusive("::1", port, fds, 2), 0);
    assert_int_equal(corio__tcp_port_exclusive("::1", port, fds, 1), -EADDRINUSE);
    close(ours2);

    int wild = listener6("::", port, 1);
    assert_int_equal(corio__tcp_port_exclusive("::1", port, &ours, 1), -EADDRINUSE);
    close(wild);

    /* Across families: an IPv4 listener on the port does not take ::1's
     * connections; an IPv6 wildcard may take 127.0.0.1's (dual stack). */
    int v4 = listener("127.0.0.1", port, NULL);
    assert_int_equal(corio__tcp_port_exclusive("::1", port, &ours, 1), 0);
    wild = listener6("::", port, 0);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &v4, 1), -EADDRINUSE);
    close(wild);
    close(ours);

    /* Ours on :: with IPV6_V6ONLY (as every corio listener) and theirs on
     * 0.0.0.0: no connection could reach both. */
    int any4 = listener("0.0.0.0", port, NULL);
    int any6 = listener("::", port, NULL);
    assert_int_equal(corio__tcp_port_exclusive("::", port, &any6, 1), 0);
    close(any6);
    close(any4);

    /* A dual-stack socket bound to ::ffff:127.0.0.1 is on 127.0.0.1. */
    int mapped = listener6("::ffff:127.0.0.1", port, 0);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &v4, 1), -EADDRINUSE);
    close(mapped);
    assert_int_equal(corio__tcp_port_exclusive("127.0.0.1", port, &v4, 1), 0);
    close(v4);
}

#define U(fn) cmocka_unit_test_setup_teardown(fn, dir_setup, dir_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        U(test_unix_claim_fresh_path_creates_lock_file),
        U(test_unix_second_claim_refused_while_held),
        U(test_unix_release_of_no_claim_does_nothing),
        U(test_unix_stale_socket_replaced),
        U(test_unix_live_socket_refused_and_lock_file_removed),
        U(test_unix_missing_directory_reported_without_lock_file),
        U(test_unix_regular_file_refused_and_left_alone),
        U(test_unix_path_too_long_refused),
        U(test_unix_stale_lock_file_reused),
        U(test_unix_claim_in_child_refused_while_parent_holds),
        U(test_unix_lock_held_while_a_forked_child_keeps_the_fd),
        U(test_unix_release_leaves_a_lock_file_it_does_not_hold),
        U(test_unix_claim_retries_when_lock_file_unlinked_before_flock),
        U(test_unix_claim_gives_up_after_repeated_lock_file_replacements),
        cmocka_unit_test(test_tcp_our_own_listeners_only),
        cmocka_unit_test(test_tcp_foreign_reuseport_listener_refused),
        cmocka_unit_test(test_tcp_wildcard_listener_overlaps),
        cmocka_unit_test(test_tcp_other_port_or_address_does_not_count),
        cmocka_unit_test(test_tcp_bound_but_not_listening_does_not_count),
        cmocka_unit_test(test_tcp_connections_on_the_port_do_not_count),
        cmocka_unit_test(test_tcp_bad_arguments),
        cmocka_unit_test(test_tcp_ipv6),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
