#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP/1.1 server tests with real clients, against examples/hello and
tests/http_test_server.c.

Cases are named by the server they use: hello_* (examples/hello, default
limits), case_* (one shared http_test_server with a 128 MiB body limit and
the access log on), lim_* (an http_test_server with a 64 KiB body limit and
300 ms header, body and keep-alive timeouts), own_* (a server of their own).

    test_http.py --hello build/examples/hello/hello --server build/tests/http_test_server [-k NAME]
                 [--wrap "valgrind ..." [--slow 10]]

Every server starts on 127.0.0.1 (port chosen by the server, read from its
log) in its own process group.  Cases talk raw HTTP over sockets, or use
http.client and wrk, and assert status lines, headers, bodies, whether the
connection was closed, what the handlers logged and the server's memory.
Every wait is a poll with a deadline; no case asserts that something was
fast, only that it happened before a generous deadline, or before something
else.  Every process started is killed in a finally block, and each shared
server must exit 0 on SIGTERM at the end (under ASan that also means
LeakSanitizer found nothing), and so must a case's own server; a sanitizer
or valgrind report in any server's output fails the case (harness.py).
Under --wrap (servers run under a command prefix such as valgrind)
deadlines grow by --slow and the load case is skipped, visibly.  Python
standard library only.
"""
import argparse
import functools
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import harness
from harness import DEADLINE, HOST, MIB, Conn, check, pick, raise_fd_limit

PATTERN = bytes(range(256)) * 256  # what /big sends, 64 KiB at a time

ARGS = None

# A server binary in its own process group (harness.Server), without the
# variables that would configure it.
Server = functools.partial(harness.Server, env_drop=("CORIO_", "HTTP_TEST_"))


def get(port, path, headers=None, method="GET", body=None):
    """One request on a fresh http.client connection: (status, response, body)."""
    c = http.client.HTTPConnection(HOST, port, timeout=DEADLINE)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def req(method, path, headers=(), body=b"", close=False):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: x"] + list(headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked(*pieces):
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"


def exchange(port, raw):
    c = Conn(port)
    try:
        c.send(raw)
        return c.read_to_eof()
    finally:
        c.close()


def report_rss(srv, grew):
    """RSS bounds mean little under ASan (shadow memory, quarantine) or valgrind."""
    note = " (ASan or valgrind: not checked)" if srv.sanitized() else ""
    print("    RSS grew %.1f MiB%s" % (grew, note))


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


# ---- cases against examples/hello (default limits) ------------------------------------------

def hello_plaintext_and_json(t):
    c = http.client.HTTPConnection(HOST, t.hello.port, timeout=DEADLINE)
    c.request("GET", "/plaintext")
    r = c.getresponse()
    check(r.status == 200 and r.read() == b"Hello, World!", r.status)
    check(r.getheader("Content-Type").startswith("text/plain"), r.getheader("Content-Type"))
    check(r.getheader("Date") and r.getheader("Content-Length") == "13", r.getheaders())
    c.request("GET", "/json")  # same connection: keep-alive
    r = c.getresponse()
    check(r.status == 200 and r.read() == b'{"message":"Hello, World!"}', r.status)
    check(r.getheader("Content-Type") == "application/json", r.getheader("Content-Type"))
    c.close()


def hello_head_has_no_body(t):
    resp = exchange(t.hello.port, req("HEAD", "/plaintext", close=True))
    check(status_of(resp) == 200, resp)
    check(b"Content-Length: 13\r\n" in resp and resp.endswith(b"\r\n\r\n"), resp)


def hello_not_found_and_method_not_allowed(t):
    resp = exchange(t.hello.port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status_of(resp) == 404, resp)
    resp = exchange(t.hello.port, b"DELETE /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    check(status_of(resp) == 405 and b"Allow: GET, HEAD\r\n" in resp, resp)


def hello_pipelined_100_in_one_write(t):
    reqs = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * 99
    reqs += b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = exchange(t.hello.port, reqs)
    check(resp.count(b"HTTP/1.1 200 OK") == 100, resp.count(b"HTTP/1.1 200 OK"))
    check(resp.endswith(b'{"message":"Hello, World!"}'), resp[-80:])


def hello_absolute_form_target_accepted(t):
    """RFC 9112 3.2.2: a server must accept the absolute form; its path routes."""
    resp = exchange(t.hello.port, b"GET http://example.test:8080/json HTTP/1.1\r\nHost: a\r\n"
                    b"Connection: close\r\n\r\n")
    check(status_of(resp) == 200 and resp.endswith(b'"Hello, World!"}'), resp[:80])


def hello_one_byte_at_a_time(t):
    c = Conn(t.hello.port)
    try:
        for b in b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
            c.send(bytes([b]))
        resp = c.read_to_eof()
    finally:
        c.close()
    check(status_of(resp) == 200 and resp.endswith(b'"Hello, World!"}'), resp)


def hello_http10_keepalive_rules(t):
    resp = exchange(t.hello.port, b"GET /plaintext HTTP/1.0\r\n\r\n")  # closes after
    check(status_of(resp) == 200 and b"Connection: close" in resp, resp)
    c = Conn(t.hello.port)
    try:
        c.send(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        status, hdrs, body, _ = c.response()
        check(hdrs.get("connection") == "keep-alive", hdrs)
        c.send(b"GET /plaintext HTTP/1.0\r\n\r\n")
        check(status_of(c.read_to_eof()) == 200, "second request")
    finally:
        c.close()


BAD = [
    ("no Host on 1.1", b"GET /json HTTP/1.1\r\n\r\n", 400),
    ("two Hosts", b"GET /json HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40, 400),
    ("obs-fold", b"GET /json HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),
    ("bare LF", b"GET /json HTTP/1.1\nHost: a\n\n", 400),
    ("bare CR in value", b"GET /json HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),
    ("control char in value", b"GET /json HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n", 400),
    ("bad token in name", b"GET /json HTTP/1.1\r\nHost: a\r\nX Y: a\r\n\r\n", 400),
    ("CL and TE", b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("two CLs", b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                b"Content-Length: 4\r\n\r\nabcd", 400),
    ("bad chunk size", b"POST /json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n", 400),
    ("TE gzip", b"POST /json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("TE gzip, chunked", b"POST /json HTTP/1.1\r\nHost: a\r\n"
                         b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("HTTP/2.0", b"GET /json HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    ("HTTP/3.1", b"GET /json HTTP/3.1\r\nHost: a\r\n\r\n", 505),
    ("CONNECT", b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501),
    ("request line too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    ("header section too big", b"GET /json HTTP/1.1\r\nHost: a\r\n" +
     b"".join(b"X-%d: %s\r\n" % (i, b"v" * 200) for i in range(90)) + b"\r\n", 431),
    ("too many fields", b"GET /json HTTP/1.1\r\nHost: a\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"\r\n", 431),
    ("body too large", b"POST /json HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n", 413),
    ("bad percent escape", b"GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("NUL in path", b"GET /a%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    ("absolute target without a path", b"GET http:///json HTTP/1.1\r\nHost: a\r\n\r\n", 400),
]


def hello_bad_input_answered_and_closed(t):
    failures = []
    for name, raw, want in BAD:
        try:
            resp = exchange(t.hello.port, raw)
        except OSError as e:  # a reset must not destroy the answer
            failures.append("%s: %s" % (name, e))
            continue
        got = status_of(resp)
        if got != want or b"Connection: close" not in resp:
            failures.append("%s: want %d and close, got %r" % (name, want, resp[:60]))
    check(not failures, "\n  ".join(failures))


def hello_thousand_connections(t):
    socks = []
    try:
        for _ in range(1000):
            socks.append(Conn(t.hello.port))
        for c in socks:
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in socks:
            status, _, body, _ = c.response()
            check(status == 200 and body == b"Hello, World!", (status, body))
    finally:
        for c in socks:
            c.close()


def hello_access_log_off_by_default(t):
    """An ordering, not a sleep: a server writes its access log lines at the
    latest when its last connection ends, before it closes the socket.  The
    same exchange with t.srv (its log on) shows its line; by then hello's
    would have been written long before, were its log on."""
    once = req("GET", "/plaintext", close=True)
    check(status_of(exchange(t.hello.port, once)) == 200, "hello")
    mark = t.srv.mark()
    check(status_of(exchange(t.srv.port, once)) == 200, "http_test_server")
    t.srv.wait_log(r'"GET /plaintext HTTP/1\.1" 200', start=mark)
    check(t.hello.count_log(r'"GET /plaintext HTTP/1\.1" 200') == 0,
          "access log lines without the option:\n" + t.hello.tail())


# ---- cases against http_test_server (the shared instance, `t.srv`) ---------------------------

def case_echo_content_length_and_chunked(t):
    status, r, body = get(t.srv.port, "/echo", method="POST", body=b"hello")
    check(status == 200 and body == b"hello", (status, body))
    payload = os.urandom(300 * 1024)  # more than the read buffer holds at once
    status, r, body = get(t.srv.port, "/echo", method="POST", body=payload)
    check(status == 200 and body == payload, (status, len(body)))
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"],
                   chunked(b"abc", b"x" * 5000, b"de")))
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == b"abc" + b"x" * 5000 + b"de", (status, body[:40]))
        # Two requests with bodies in one write: each body goes to its own handler.
        c.send(req("POST", "/echo", ["Content-Length: 3"], b"one") +
               req("POST", "/echo", ["Transfer-Encoding: chunked"], chunked(b"tw", b"o")))
        for want in (b"one", b"two"):
            status, hdrs, body, _ = c.response()
            check(status == 200 and body == want, (status, body, want))
        # Read twice (a middleware, then the handler): the same body, and the
        # next request's bytes right behind it are left alone.
        c.send(req("POST", "/echo?twice=1", ["Content-Length: 3"], b"abc") +
               req("POST", "/echo?twice=1", ["Content-Length: 3"], b"def"))
        for want in (b"abc", b"def"):
            status, hdrs, body, _ = c.response()
            check(status == 200 and body == want, (status, body, want))
        # Trailer fields after the last chunk are read and dropped: the
        # handler, walking the header fields after reading the body, sees only
        # the head's (it once saw trailers with wild offsets and crashed).
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"],
                   b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\nZZ: y\r\n\r\n"))
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == b"abc", (status, body))
        check(hdrs.get("x-fields") == "2", hdrs)  # Host and Transfer-Encoding
        # Chunk extensions are bounded (1 KiB per chunk): endless ones get 400.
        c2 = Conn(t.srv.port)
        try:
            c2.send(req("POST", "/echo", ["Transfer-Encoding: chunked"],
                        b"3;" + b"e" * 4096 + b"\r\nabc\r\n0\r\n\r\n"))
            status, hdrs2, _, raw = c2.response()
            check(status == 400 and hdrs2.get("connection") == "close", raw)
        finally:
            c2.close()
        # A body sent to no route is read and dropped; the connection goes on.
        c.send(req("POST", "/nope", ["Content-Length: 5"], b"hello"))
        status, hdrs, body, raw = c.response()
        check(status == 404 and hdrs.get("connection") != "close", raw)
        c.send(req("POST", "/echo", ["Content-Length: 0"], close=True))
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == b"", (status, body))
        c.expect_eof()
    finally:
        c.close()


def case_expect_100_only_when_the_body_is_read(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/echo", ["Content-Length: 5", "Expect: 100-continue"]))
        check(c.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n", "no 100 Continue")
        c.send(b"hello")
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == b"hello", (status, body))
        # A streaming reader gets the 100 too (on its first corio_req_read).
        c.send(req("POST", "/count", ["Transfer-Encoding: chunked", "Expect: 100-continue"]))
        check(c.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n", "no 100 Continue")
        c.send(chunked(b"abc"))
        status, hdrs, body, _ = c.response()
        check(status == 200 and body.startswith(b"count=3 "), (status, body))
    finally:
        c.close()
    # A handler that never reads the body: no 100; the final answer says the
    # connection closes, since the body may or may not follow.
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/sleep?ms=200", ["Content-Length: 5", "Expect: 100-continue"]))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"slept", (status, raw, body))
        check(hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()


def case_body_over_limit_413_readable_before_close(t):
    # t.lim caps bodies at 64 KiB.  Announced too large: 413 before the body;
    # the client that goes on sending must still read the 413 (no reset).
    c = Conn(t.lim.port)
    try:
        c.send(req("POST", "/echo", ["Content-Length: %d" % MIB]))
        c.send(b"x" * MIB)  # the server discards it while it lingers
        status, hdrs, body, raw = c.response()
        check(status == 413 and hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()
    # Chunked, found too large while the handler buffers it.
    c = Conn(t.lim.port)
    try:
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"]))
        for _ in range(32):
            c.send(b"8000\r\n" + b"y" * 0x8000 + b"\r\n")  # 1 MiB in all
        status, hdrs, body, raw = c.response()
        check(status == 413 and hdrs.get("connection") == "close", raw + body)
        check(b"Content Too Large" in body, body)
        c.expect_eof()
    finally:
        c.close()


def case_unread_body_answered_then_closed(t):
    # The handler answers without reading a 4 MiB body: its answer says the
    # connection closes, and reaches the client that goes on sending.
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/sleep?ms=0", ["Content-Length: %d" % (4 * MIB)]))
        c.send(b"z" * (4 * MIB))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"slept" and hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()
    # Too large and announced with Expect: refused at once, no 100, closed.
    c = Conn(t.lim.port)
    try:
        c.send(req("POST", "/echo", ["Content-Length: %d" % MIB, "Expect: 100-continue"]))
        status, hdrs, body, raw = c.response()
        check(status == 413 and hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()


def case_body_of_exactly_the_limit_accepted(t):
    for framing in ("Content-Length: %d" % (64 * 1024), "Transfer-Encoding: chunked"):
        body = os.urandom(64 * 1024)
        c = Conn(t.lim.port)
        try:
            wire = body if framing.startswith("Content") else chunked(body[:1000], body[1000:])
            c.send(req("POST", "/echo", [framing], wire))
            status, hdrs, got, raw = c.response()
            check(status == 200 and got == body, (framing, raw))
        finally:
            c.close()


def case_malformed_body_read_by_handler_is_400(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/count", ["Transfer-Encoding: chunked"], b"3\r\nabc\r\nzz\r\n"))
        status, hdrs, body, raw = c.response()
        check(status == 400 and hdrs.get("connection") == "close", raw + body)
        c.expect_eof()
    finally:
        c.close()


def case_upload_64mib_streamed_with_flat_rss(t):
    get(t.srv.port, "/count", method="POST", body=b"warm-up")
    base = t.srv.rss_kib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], t.srv.rss_kib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    piece = os.urandom(MIB)
    crc = 0
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/count", ["Content-Length: %d" % (64 * MIB), "X-Tag: first"]))
        for _ in range(64):
            c.send(piece)
            crc = zlib.crc32(piece, crc)
        status, hdrs, body, _ = c.response()
        # The same through the chunked decoder, on the same connection.
        c.send(req("POST", "/count", ["Transfer-Encoding: chunked", "X-Tag: second"]))
        for _ in range(8):
            c.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        c.send(b"0\r\n\r\n")
        status2, _, body2, _ = c.response()
    finally:
        done.set()
        sampler.join()
        c.close()
    # tag: a header read before the body streamed, intact after it.
    check(status == 200 and body == b"count=%d crc32=%08x tag=first" % (64 * MIB, crc),
          (status, body))
    crc8 = 0
    for _ in range(8):
        crc8 = zlib.crc32(piece, crc8)
    check(status2 == 200 and body2 == b"count=%d crc32=%08x tag=second" % (8 * MIB, crc8),
          (status2, body2))
    grew = (peak[0] - base) / 1024
    report_rss(t.srv, grew)
    if not t.srv.sanitized():
        check(grew < 16, "RSS grew by %.1f MiB during a 64 MiB upload" % grew)


def big_response_backpressure(t, send):
    """GET /big?mb=64 by a client that stops reading: the handler is held back
    (it has not finished while the client does not read), the server's memory
    stays bounded, and once the client reads, every byte arrives."""
    path = "/big?mb=64" + ("&send=1" if send else "")
    mark = t.srv.mark()
    get(t.srv.port, "/big?mb=1" + ("&send=1" if send else ""))  # warm-up
    t.srv.wait_log(r"big done rc=0", start=mark)  # may come after the client has it all
    base = t.srv.rss_kib()
    mark = t.srv.mark()
    c = Conn(t.srv.port, rcvbuf=64 * 1024)
    try:
        c.send(req("GET", path))
        # Let the server fill every buffer between it and us.
        last, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline and time.monotonic() - stable_since < 0.5:
            rss = t.srv.rss_kib()
            if rss != last:
                last, stable_since = rss, time.monotonic()
            time.sleep(0.02)
        grew = (t.srv.rss_kib() - base) / 1024
        check(t.srv.count_log(r"big done", mark) == 0,
              "the handler finished although the client read nothing")
        allowed = 16 + (64 if send else 0)  # send=1: the handler's own 64 MiB buffer
        report_rss(t.srv, grew)
        if not t.srv.sanitized():
            check(grew < allowed, "RSS grew by %.1f MiB while the client did not read" % grew)
        status, hdrs, body, _ = c.response()
    finally:
        c.close()
    check(status == 200 and len(body) == 64 * MIB, (status, len(body)))
    check(body == PATTERN * 1024, "64 MiB body corrupted")
    t.srv.wait_log(r"big done rc=0", start=mark)


def case_large_streamed_response_to_a_slow_reader(t):
    big_response_backpressure(t, send=False)


def case_large_buffered_response_to_a_slow_reader(t):
    big_response_backpressure(t, send=True)


def case_long_chunked_stream_memory_flat(t):
    """200,000 chunks on one response: the server's memory does not grow
    with the number of chunks (nothing per chunk may pile up until the
    response ends)."""
    get(t.srv.port, "/stream?n=10")
    base = t.srv.rss_kib()
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/stream?n=200000"))
        status, hdrs, body, _ = c.response()
        peak = t.srv.rss_kib()  # the handler's memory is only freed after its response
    finally:
        c.close()
    check(status == 200 and body.count(b"\n") == 200000, (status, len(body)))
    check(body.endswith(b"chunk 199999\n"), body[-40:])
    grew = (peak - base) / 1024
    report_rss(t.srv, grew)
    if not t.srv.sanitized():
        check(grew < 8, "RSS grew by %.1f MiB over one long chunked response" % grew)


def case_pipelined_flood_memory_flat(t):
    """300,000 pipelined requests sent without pause by a client that at
    first reads nothing: the server, its answers stuck, must neither refuse
    the requests that pile up in its read buffer meanwhile (they are not one
    oversized head) nor keep per-request memory until the client stops
    (its reads end inside a request most of the time)."""
    # Requests of seven lengths, so that reads rarely end between two.
    batch = b"".join(req("GET", "/q?x=flood&pad=" + "p" * (i % 7)) for i in range(1000))
    n = 300000
    get(t.srv.port, "/q?x=warm")
    base = t.srv.rss_kib()
    peak = [base]
    c = Conn(t.srv.port)
    err = []
    sent = [0]

    def send():
        try:
            for _ in range(n // 1000):
                c.send(batch)
                sent[0] += 1
        except OSError as e:
            err.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        # Until the sender is stuck: every buffer between us is full.
        last, since = -1, time.monotonic()
        while sender.is_alive() and time.monotonic() - since < 0.3:
            if sent[0] != last:
                last, since = sent[0], time.monotonic()
            time.sleep(0.01)
        got = 0
        while got < n:
            status, hdrs, body, raw = c.response()
            check(status == 200 and body == b"flood", (got, raw, body))
            got += 1
            if got % 20000 == 0:
                peak[0] = max(peak[0], t.srv.rss_kib())
        sender.join(DEADLINE)
    finally:
        c.close()
    check(not err, err)
    grew = (peak[0] - base) / 1024
    report_rss(t.srv, grew)
    if not t.srv.sanitized():
        check(grew < 4, "RSS grew by %.1f MiB over %d pipelined requests" % (grew, n))


def case_peer_gone_cancels_the_handler(t):
    mark = t.srv.mark()
    c = Conn(t.srv.port)
    c.send(req("GET", "/sleep?ms=5000"))
    t.srv.wait_log(r"sleep start ms=5000", start=mark)
    c.close()
    # Not "sleep done": the line itself says the handler did not sleep out its 5 s.
    t.srv.wait_log(r"sleep cancelled: peer gone", start=mark)
    check(t.srv.count_log(r"handler for .* failed", mark) == 0,
          "a cancelled handler logged as an error:\n" + t.srv.tail())
    # A client that leaves in the middle of a large response: the handler's
    # next write fails (cancelled, or the socket's error) and it ends.
    mark = t.srv.mark()
    c = Conn(t.srv.port)
    c.send(req("GET", "/big?mb=64"))
    c.read_exact(MIB)
    c.close()
    t.srv.wait_log(r"big done rc=(ECANCELED|EPIPE|ECONNRESET)", start=mark)
    # A handler that asked to finish does, with its client gone.
    mark = t.srv.mark()
    c = Conn(t.srv.port)
    c.send(req("GET", "/finish?ms=300"))
    t.srv.wait_log(r"finish start ms=300", start=mark)
    c.close()
    t.srv.wait_log(r"finish completed rc=0", start=mark)


def case_handler_error_is_a_generic_500(t):
    other = http.client.HTTPConnection(HOST, t.srv.port, timeout=DEADLINE)
    c = Conn(t.srv.port)
    try:
        other.request("GET", "/plaintext")
        r = other.getresponse()
        check(r.status == 200 and r.read() == b"Hello, World!", r.status)
        mark = t.srv.mark()
        c.send(req("GET", "/fail"))
        status, hdrs, body, raw = c.response()
        check(status == 500, raw)
        check(body == b"Internal Server Error\n", body)
        check(hdrs.get("connection") != "close", raw)
        t.srv.wait_log(r'handler for "GET /fail" failed', start=mark)
        # The same connection goes on, and so does the other one.
        c.send(req("GET", "/plaintext"))
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == b"Hello, World!", (status, body))
        other.request("GET", "/plaintext")
        r = other.getresponse()
        check(r.status == 200 and r.read() == b"Hello, World!", r.status)
    finally:
        c.close()
        other.close()


def case_middleware_headers_and_auth(t):
    status, r, body = get(t.srv.port, "/plaintext")
    check(status == 200 and r.getheader("X-Mw") == "1", r.getheaders())
    status, r, body = get(t.srv.port, "/nope")
    check(status == 404 and r.getheader("X-Mw") == "1", (status, r.getheaders()))
    status, r, body = get(t.srv.port, "/plaintext", method="DELETE")
    check(status == 405 and r.getheader("X-Mw") == "1", (status, r.getheaders()))
    status, r, body = get(t.srv.port, "/private")
    check(status == 401 and r.getheader("WWW-Authenticate") == "Bearer", (status, r.getheaders()))
    check(r.getheader("X-Mw") == "1" and body == b"Unauthorized\n", body)
    status, r, body = get(t.srv.port, "/private", headers={"Authorization": "Bearer no"})
    check(status == 401, status)
    status, r, body = get(t.srv.port, "/private", headers={"Authorization": "Bearer ok"})
    check(status == 200 and body == b"secret" and r.getheader("X-Mw") == "1", (status, body))


def case_header_injection_refused(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/hdr") + req("GET", "/plaintext"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"rc=EINVAL", (status, body))
        check(b"Injected" not in raw and b"X-Evil" not in raw, raw)
        check(hdrs.get("x-good") == "1", raw)
        status, hdrs, body, raw = c.response()  # the stream is still in step
        check(status == 200 and body == b"Hello, World!", (status, raw))
    finally:
        c.close()


def case_content_type_with_cr_lf_refused(t):
    """Commit d8b7db3 refused a content type with CR or LF but tested only a
    header value: corio_res_send and corio_res_start both return EINVAL for
    a bare CR, a bare LF and CRLF, nothing is injected, and the pipelined
    request behind it is answered in step."""
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/ctype") + req("GET", "/plaintext"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"send=EINVAL,EINVAL,EINVAL start=EINVAL,EINVAL,EINVAL",
              (status, raw, body))
        check(b"Injected" not in raw + body and b"bad" not in body, raw + body)
        check(hdrs.get("content-type") == "text/plain; charset=utf-8", raw)
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"Hello, World!", (status, raw))
    finally:
        c.close()


def case_chunked_streaming_and_head(t):
    status, r, body = get(t.srv.port, "/stream?n=5")
    check(status == 200 and r.getheader("Transfer-Encoding") == "chunked", r.getheaders())
    check(body == b"".join(b"chunk %d\n" % i for i in range(5)), body)
    c = Conn(t.srv.port)
    try:
        c.send(req("HEAD", "/stream?n=5") + req("GET", "/plaintext"))
        status, hdrs, body, raw = c.response(head=True)
        check(status == 200 and hdrs.get("transfer-encoding") == "chunked", raw)
        status, hdrs, body, raw = c.response()  # right after the head: no body came
        check(status == 200 and body == b"Hello, World!", (raw, body))
        c.send(b"GET /stream?n=2 HTTP/1.0\r\n\r\n")  # HTTP/1.0: close-delimited
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"chunk 0\nchunk 1\n", (raw, body))
        check("transfer-encoding" not in hdrs and hdrs.get("connection") == "close", raw)
    finally:
        c.close()


def case_query_and_path_parameters_decoded(t):
    cases = [
        ("/users/42", 200, b"42"),
        ("/users/J%C3%BCrgen%20X", 200, "Jürgen X".encode()),
        ("/users/a%2Fb", 200, b"a/b"),  # an encoded slash stays inside the segment
        ("/users/a+b", 200, b"a+b"),  # '+' is a space only in queries
        ("/q?x=a%26b+c%3D", 200, b"a&b c="),
        ("/q?y=1&x=%E2%9C%93&x=2", 200, "\u2713".encode()),
        ("/q?x=", 200, b""),
        ("/q?y=1", 400, b"missing\n"),
        ("/q?x=%zz", 400, b"missing\n"),
    ]
    failures = []
    for path, want_status, want_body in cases:
        status, r, body = get(t.srv.port, path)
        if (status, body) != (want_status, want_body):
            failures.append("%s: got %d %r" % (path, status, body))
    check(not failures, "\n  ".join(failures))


def case_thousand_keepalive_connections_three_requests(t):
    conns = []
    try:
        for _ in range(1000):
            conns.append(Conn(t.srv.port))
        for i in range(3):
            for c in conns:
                c.send(req("GET", "/q?x=%d" % i))
            for c in conns:
                status, hdrs, body, _ = c.response()
                check(status == 200 and body == b"%d" % i, (status, body))
    finally:
        for c in conns:
            c.close()


def case_wrk_keepalive_load(t):
    if harness.skip_under_wrap("a load test"):
        return
    wrk = shutil.which("wrk")
    if not wrk:
        print("    SKIP: wrk is not installed (apt-get install wrk)")
        return
    url = "http://%s:%d/plaintext" % (HOST, t.srv.port)
    out = subprocess.run([wrk, "-t1", "-c50", "-d2s", url], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=30, text=True)
    text = out.stdout
    m = re.search(r"(\d+) requests in", text)
    check(out.returncode == 0 and m and int(m.group(1)) > 0, text)
    check("Non-2xx" not in text, text)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    check(not m or all(int(g) == 0 for g in m.groups()), text)
    print("    wrk: %s requests in 2 s" % re.search(r"(\d+) requests in", text).group(1))


ACCESS_RE = (r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
             r'"GET /q\?x=acc%s HTTP/1\.1" 200 %d (\d+) "[0-9a-f]{32}"$')


def case_access_log_line_per_request(t):
    c = Conn(t.srv.port)
    try:
        for i in range(5):
            c.send(req("GET", "/q?x=acc%d" % i))
            status, _, body, _ = c.response()
            check(status == 200, status)
        # Lines are buffered and flushed within about a second.
        for i in range(5):
            t.srv.wait_log(ACCESS_RE % (i, len("acc%d" % i)), timeout=5)
        c.send(req("GET", "/nope", close=True))
        c.response()
    finally:
        c.close()
    t.srv.wait_log(r'"GET /nope HTTP/1\.1" 404 10 \d+ "[0-9a-f]{32}"$', timeout=5)
    # Every line written so far (wrk's included: many 16 KiB flushes) whole.
    line_re = re.compile(r'^127\.0\.0\.1 - - \[[^]]+\] "(-|[A-Z]+ \S+ HTTP/1\.[01])" '
                         r'\d{3} (-|\d+) \d+ "[^"]*"$')
    with t.srv.cond:
        lines = [ln for ln in t.srv.lines  # not the log's own lines, nor valgrind's
                 if not re.match(r"^(\d{4}-\d\d-\d\dT|==\d+==)", ln)]
    bad = [ln for ln in lines if not line_re.match(ln)]
    check(len(lines) > 1000 and not bad, "%d lines, %d malformed, e.g. %r"
          % (len(lines), len(bad), bad[:3]))


# ---- cases with servers of their own --------------------------------------------------------

def lim_slow_header_times_out(t):
    c = Conn(t.lim.port)
    try:
        c.send(b"GET /plaintext HTTP/1.1\r\n")
        status, hdrs, body, raw = c.response()
        check(status == 408 and hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()


def lim_slow_body_times_out(t):
    c = Conn(t.lim.port)
    try:
        c.send(req("POST", "/echo", ["Content-Length: 10"], b"12345"))
        status, hdrs, body, raw = c.response()
        check(status == 408 and hdrs.get("connection") == "close", raw)
        c.expect_eof()
    finally:
        c.close()


def lim_idle_keepalive_closes(t):
    c = Conn(t.lim.port)
    try:
        c.send(req("GET", "/plaintext"))
        status, _, _, _ = c.response()
        check(status == 200, status)
        c.expect_eof()  # the server closes an idle connection
    finally:
        c.close()


def own_requests_per_connection_capped_and_idle_holds_no_task(t):
    """max_requests 3: the third response says close and the server closes;
    a keep-alive connection idle for park_after_ms (default 100 ms) holds no
    task (SIGUSR1's task dump comes to list none named conn), and its request
    count survives that."""
    srv = Server(ARGS.server, env={"HTTP_TEST_MAX_REQUESTS": "3"})
    c = None
    try:
        c = Conn(srv.port)
        for i in range(3):
            c.send(req("GET", "/plaintext"))
            status, hdrs, _, raw = c.response()
            check(status == 200, raw)
            if i == 2:
                check(hdrs.get("connection") == "close", raw)
                break
            check(hdrs.get("connection") != "close", raw)
            deadline = time.monotonic() + 5
            while True:
                mark = srv.mark()
                srv.proc.send_signal(signal.SIGUSR1)
                srv.wait_log(r"live task", start=mark)
                srv.wait_log(r"#\d+ main ", start=mark)  # the dump's last line is there
                if srv.count_log(r"#\d+ conn ", start=mark) == 0:
                    break
                check(time.monotonic() < deadline,
                      "an idle keep-alive connection holds a task:\n" + srv.tail())
                time.sleep(0.02)  # polling: parking leaves no trace to wait for
        c.expect_eof()
        srv.stop()  # exit 0, and no leak report
    finally:
        if c:
            c.close()
        srv.kill()


def own_runner_read_and_write_timeouts_reach_http(t):
    """--read-timeout 300ms bounds a head that stops coming (408 long before
    the 10 s header timeout), but not the wait between requests (keep-alive,
    5 s); --write-timeout 300ms ends a response the client does not read,
    with a reset (nothing left for the kernel to trickle out) and no ERROR
    line (the client's doing, not the handler's)."""
    srv = Server(ARGS.server, "--read-timeout", "300ms", "--write-timeout", "300ms")
    idle = slow = stuck = None
    try:
        idle = Conn(srv.port)
        idle.send(req("GET", "/plaintext"))
        check(idle.response()[0] == 200, "first request")
        slow = Conn(srv.port)
        slow.send(b"GET /plaintext HTTP/1.1\r\n")
        slow.s.settimeout(5)
        status, hdrs, _, raw = slow.response()
        check(status == 408 and hdrs.get("connection") == "close", raw)
        slow.expect_eof()
        # The idle connection outlived 300 ms of silence (the 408 took that
        # long): it still serves.
        idle.send(req("GET", "/plaintext"))
        check(idle.response()[0] == 200, "the idle connection was closed by the read timeout")
        stuck = socket.create_connection((HOST, srv.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # The handler ignores its failed write: the connection ends anyway,
        # and the pipelined request behind it is never served.
        stuck.sendall(req("GET", "/big?mb=64&ignore=1") + req("GET", "/sleep?ms=1"))
        srv.wait_log(r"big done rc=ETIMEDOUT", timeout=10)  # not the 30 s send timeout
        stuck.settimeout(DEADLINE)
        reset = False
        try:
            while stuck.recv(1 << 20):  # what the kernel holds, then the close
                pass
        except ConnectionResetError:
            reset = True  # a send cut short ends in a reset, not a FIN
        check(reset, "the connection of a response cut short ended with a FIN")
        check(srv.count_log(r"sleep start") == 0,
              "a request after a response cut short was served:\n" + srv.tail())
        check(srv.count_log(r"ERROR") == 0, "a client too slow to read is no handler error:\n"
              + srv.tail())
        srv.stop()  # exit 0, and no leak report
    finally:
        for c in (idle, slow):
            if c:
                c.close()
        if stuck:
            stuck.close()
        srv.kill()


def own_graceful_drain(t):
    """SIGTERM: an idle keep-alive connection is closed (after the drain's
    grace of up to 1 s for a next request, its last exchange being recent)
    while a request in flight, longer than that, runs to its end and is
    answered with Connection: close."""
    srv = Server(ARGS.server, "--drain-timeout", "10s")
    idle = busy = None
    try:
        idle = Conn(srv.port)
        idle.send(req("GET", "/plaintext"))
        check(idle.response()[0] == 200, "idle connection's request")
        busy = Conn(srv.port)
        busy.send(req("GET", "/sleep?ms=3000"))
        srv.wait_log(r"sleep start ms=3000")
        srv.proc.send_signal(signal.SIGTERM)
        idle.expect_eof()
        check(not busy.readable(), "the in-flight request ended before the idle connection")
        check(srv.count_log(r"sleep done") == 0, "the in-flight request ended first")
        status, hdrs, body, raw = busy.response()
        check(status == 200 and body == b"slept", raw)
        check(hdrs.get("connection") == "close", raw)
        busy.expect_eof()
        rc = srv.wait_exit()
        check(rc == 0, "exit code %s:\n%s" % (rc, srv.tail()))
    finally:
        for c in (idle, busy):
            if c:
                c.close()
        srv.kill()


def own_drain_deadline_cuts_a_stream_short_without_its_last_chunk(t):
    """A chunked response the drain deadline cuts short (its handler
    cancelled between chunks) ends without the last chunk, so that the
    client can tell; the server still exits 0."""
    srv = Server(ARGS.server, "--drain-timeout", "300ms")
    c = None
    try:
        c = Conn(srv.port)
        c.send(req("GET", "/stream?n=100000&ms=50"))
        status, hdrs, _, raw = c.response(head=True)
        check(status == 200 and hdrs.get("transfer-encoding") == "chunked", raw)
        check(c.read_until(b"\r\n") == b"8\r\n", "first chunk")
        srv.proc.send_signal(signal.SIGTERM)
        rest = c.read_to_eof()
        srv.wait_log(r"stream done rc=ECANCELED")
        check(rest.endswith(b"\n\r\n") and not rest.endswith(b"\r\n0\r\n\r\n"),
              "a stream cut short ended with %r" % rest[-40:])
        srv.wait_log(r"drain deadline passed")
        rc = srv.wait_exit()
        check(rc == 0, "exit code %s:\n%s" % (rc, srv.tail()))
    finally:
        if c:
            c.close()
        srv.kill()


# ---- harness ----------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS, DEADLINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ap.add_argument("--server", required=True)
    ARGS = harness.parse_args(ap)
    DEADLINE = harness.DEADLINE
    raise_fd_limit()
    cases = pick([v for k, v in globals().items()
                  if k.split("_")[0] in ("hello", "case", "lim", "own") and callable(v)], ARGS.k)

    def start():
        t = Servers()
        t.hello = Server(ARGS.hello)
        t.srv = Server(ARGS.server, env={"HTTP_TEST_MAX_BODY": str(128 * MIB),
                                         "HTTP_TEST_ACCESS_LOG": "1"})
        t.lim = Server(ARGS.server, env={"HTTP_TEST_MAX_BODY": str(64 * 1024),
                                         "HTTP_TEST_HEADER_TIMEOUT_MS": "300",
                                         "HTTP_TEST_BODY_TIMEOUT_MS": "300",
                                         "HTTP_TEST_KEEPALIVE_MS": "300"})
        return t

    return harness.run_with_servers(cases, start)


if __name__ == "__main__":
    sys.exit(main())
