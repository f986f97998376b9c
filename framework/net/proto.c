/* SPDX-License-Identifier: MIT */
/* The stream interface of protocol layers (see proto.h): the calls that are
 * not part of the read path in stream.c. */
#include <errno.h>
#include <sys/sendfile.h>

#include "net/proto.h"
#include "net/stream_internal.h"

bool corio__stream_input_finished(const corio_stream *s) {
    return s->rerr != 0;
}

void corio__stream_on_input_end(corio_stream *s, corio__stream_input_end_cb *cb, void *data) {
    s->on_input_end = cb;
    s->on_input_end_data = data;
}

uint64_t corio__stream_swap_read_timeout(corio_stream *s, uint64_t ms) {
    uint64_t was = s->rtimeout;
    s->rtimeout = ms;
    return was;
}

int corio__stream_write_error(const corio_stream *s) {
    if (s->werr)
        return s->werr;
    return s->closing ? CORIO_ECLOSED : 0;
}

void corio__stream_get_opts(const corio_stream *s, corio_stream_opts *out) {
    *out = (corio_stream_opts){.write_high_water = s->whigh,
                               .read_timeout_ms = s->rtimeout,
                               .write_timeout_ms = s->wtimeout};
}

bool corio__stream_can_sendfile(const corio_stream *s) {
    uv_os_fd_t sock;
    return !s->tls && uv_fileno(&s->h.handle, &sock) == 0;
}

ssize_t corio__stream_sendfile(corio_stream *s, int fd, uint64_t off, size_t len) {
    uv_os_fd_t sock;
    if (s->tls || uv_fileno(&s->h.handle, &sock) != 0)
        return CORIO_ECLOSED;
    off_t o = (off_t)off;
    ssize_t n = sendfile(sock, fd, &o, len);
    if (n >= 0)
        return n;
    return errno == EAGAIN ? CORIO_EAGAIN : -errno;
}
