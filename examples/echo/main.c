/* SPDX-License-Identifier: MIT */
/* A TCP echo server on corio's standalone runner: every byte a client sends
 * comes back.  The runner gives it --port, --workers, --max-conns, timeouts,
 * graceful drain on SIGTERM and the rest (see --help).
 *
 *     ./echo --port 7000 &      printf 'hello\n' | nc -q1 127.0.0.1 7000
 *     ./echo --port 7443 --tls-cert cert.pem --tls-key key.pem &
 *         openssl s_client -connect 127.0.0.1:7443 -quiet
 */
#include <corio/corio.h>

/* One task per connection: read what arrives, write it back, until the
 * client closes its side; then half-close ours (the echo is flushed first).
 * The runner closes the connection when this returns, on every path. */
static int echo(corio_stream *s, void *arg) {
    (void)arg;
    char buf[16384];
    for (;;) {
        int n = corio_stream_read(s, buf, sizeof buf);
        if (n == CORIO_EOF)
            return corio_stream_shutdown(s);
        if (n < 0)
            return n;
        int rc = corio_stream_write(s, buf, (size_t)n);
        if (rc < 0)
            return rc;
    }
}

int main(int argc, char **argv) {
    corio_app app = {
        .name = "echo",
        .description = "TCP echo server",
        .handler = echo,
        .default_port = 7000,
    };
    return corio_app_main(&app, argc, argv);
}
