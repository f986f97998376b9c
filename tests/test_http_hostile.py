#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Regression tests for the server defects a security review found (issue
"fix first": unbounded memory from one pipelining connection, llhttp's
lenient mode, HTTP/1.0 with Transfer-Encoding, a drain that dropped requests
it had, unbounded chunk-size lines), each written to fail on the code before
its fix.

    test_http_hostile.py --hello build/examples/hello/hello \\
                         --server build/tests/http_test_server [-k NAME]
                         [--wrap "valgrind ..." [--slow 10]]

Cases are named by the server they use: hello_* (examples/hello, default
limits), case_* (a shared http_test_server), own_* (a server of their own,
signalled).  Raw sockets and python's ssl module only; every wait is a poll or
a blocking read with a deadline; no case asserts that something was fast.
"""
import argparse
import functools
import os
import signal
import socket
import ssl
import sys
import tempfile
import time

import harness
from harness import HOST, Conn, check, make_cert, pick, raise_fd_limit

ARGS = None
Server = functools.partial(harness.Server, env_drop=("CORIO_", "HTTP_TEST_"))
DRAINING = r"draining \d+ connection"


def req(method, path, headers=(), body=b"", version="1.1"):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: x"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def refused_and_closed(port, raw, status=400):
    """Sends raw on a new connection: exactly one answer, `status`, then the
    close (nothing after the bad part is taken as a request)."""
    c = Conn(port)
    try:
        c.send(raw)
        got, hdrs, body, head = c.response()
        check(got == status, "expected %d, got %r" % (status, head))
        check(hdrs.get("connection") == "close", head)
        c.expect_eof()
    finally:
        c.close()


# ---- 1. memory per connection ----------------------------------------------------------------

def hello_many_fields_pipelined_rss_flat(t):
    """Each write carries the end of request N and the first 40 header
    fields of request N+1 (more than the 32 kept inline); the client then
    waits for response N.  Before the fix the arena was never reset on such
    a connection: 3.7 MB -> 405 MB RSS over 100,000 requests."""
    fields = "".join("X-F%d: v\r\n" % i for i in range(40))
    head = ("GET /plaintext HTTP/1.1\r\nHost: x\r\n" + fields).encode()
    if harness.skip_under_wrap("30,000 requests and an RSS bound"):
        return
    n = 30000
    c = Conn(t.hello.port)
    try:
        c.send(head + b"\r\n")
        check(c.response()[0] == 200, "warm-up")
        base = t.hello.rss_kib()
        c.send(head)  # the first partial head
        for i in range(n):
            c.send(b"\r\n" + head)
            status, _, body, raw = c.response()
            check(status == 200 and body == b"Hello, World!", (i, raw))
        grew = (t.hello.rss_kib() - base) / 1024
    finally:
        c.close()
    asan = " (ASan build: not checked)" if t.hello.sanitized() else ""
    print("    RSS grew %.1f MiB over %d requests%s" % (grew, n, asan))
    if not asan:
        check(grew < 8, "RSS grew by %.1f MiB on one connection" % grew)


# ---- 2. strict parsing -----------------------------------------------------------------------

def case_strict_junk_after_chunk_refused(t):
    """A chunk followed by junk instead of CRLF (lenient llhttp took it)."""
    refused_and_closed(t.srv.port, req("POST", "/echo", ["Transfer-Encoding: chunked"])
                       + b"3\r\nabcXX0\r\n\r\n" + req("GET", "/plaintext"))


def case_strict_tab_in_target_refused(t):
    refused_and_closed(t.srv.port, b"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n")


def case_strict_byte_ff_in_target_refused(t):
    refused_and_closed(t.srv.port, b"GET /a\xffb HTTP/1.1\r\nHost: x\r\n\r\n")


def case_strict_two_spaces_after_method_refused(t):
    refused_and_closed(t.srv.port, b"GET  /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")


def case_strict_two_spaces_before_version_refused(t):
    refused_and_closed(t.srv.port, b"GET /plaintext  HTTP/1.1\r\nHost: x\r\n\r\n")


def case_strict_still_serves_well_formed_chunks(t):
    """What strict mode must keep: chunks with extensions, trailers."""
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"])
               + b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == b"abcde", raw)
        check(hdrs.get("connection") != "close", raw)
    finally:
        c.close()


# ---- 3. HTTP/1.0 and Transfer-Encoding -------------------------------------------------------

def case_http10_with_transfer_encoding_refused_and_closed(t):
    """RFC 9112 6.1: the framing of an HTTP/1.0 message with
    Transfer-Encoding is faulty; what follows must not be served as a
    request (before the fix it was, on a connection kept alive)."""
    refused_and_closed(t.srv.port,
                       req("POST", "/echo", ["Transfer-Encoding: chunked", "Connection: keep-alive"],
                           version="1.0") + b"0\r\n\r\n" + req("GET", "/plaintext"))


# ---- 5. chunk-size lines ---------------------------------------------------------------------

def case_long_chunk_size_line_refused(t):
    """50 MiB of '0' digits before a valid chunk was accepted: the size line
    is bounded now (a few KiB of digits are refused, the stream not read on)."""
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"]))
        sent = 0
        try:
            for _ in range(256):  # up to 4 MiB, in 16 KiB writes
                c.send(b"0" * 16384)
                sent += 16384
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-way, as it should be
        status, hdrs, body, raw = c.response()
        check(status == 400, raw)
        check(hdrs.get("connection") == "close", raw)
    finally:
        c.close()


def case_chunk_size_line_bound_same_however_split(t):
    """3,000 zeros before a size: refused whether they come in one write or
    in two (the bound once counted only reads that ended inside the line)."""
    line = b"0" * 3000 + b"3\r\nabc\r\n0\r\n\r\n"
    for pieces in ([line], [line[:1500], line[1500:]], [line[:10], line[10:2990], line[2990:]]):
        c = Conn(t.srv.port)
        try:
            c.send(req("POST", "/count", ["Transfer-Encoding: chunked"]))
            for piece in pieces:
                c.send(piece)
                if len(pieces) > 1:
                    time.sleep(0.05)  # separate reads on the server, most likely
            status, hdrs, body, raw = c.response()
            check(status == 400 and hdrs.get("connection") == "close", (len(pieces), raw))
        finally:
            c.close()


def case_many_small_chunks_accepted(t):
    """20,000 one-byte chunks with extensions, in one write and byte by
    byte at the end: every size line counted from its start, none refused."""
    body = b"".join(b"1;e=%d\r\nx\r\n" % (i % 10) for i in range(20000)) + b"0\r\nT: 1\r\n\r\n"
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/count", ["Transfer-Encoding: chunked"]) + body[:-200])
        for i in range(len(body) - 200, len(body)):
            c.send(body[i:i + 1])
        status, _, got, raw = c.response()
        check(status == 200 and got.startswith(b"count=20000 "), (raw, got))
    finally:
        c.close()


def case_chunk_size_with_some_leading_zeros_accepted(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("POST", "/echo", ["Transfer-Encoding: chunked"])
               + b"0000000000000003\r\nabc\r\n0\r\n\r\n")
        status, _, body, raw = c.response()
        check(status == 200 and body == b"abc", raw)
    finally:
        c.close()


def own_slow_body_below_the_minimum_rate_408(t):
    """Ten bytes every 150 ms: each read comes well within the 400 ms body
    timeout, so before the minimum rate a client could go on like this for
    as long as max_body allowed.  At 100 bytes/s they earn 100 ms of the
    150 spent: the body's
    deadline (400 ms + 1 s per 100 bytes) passes within a few seconds, long
    before the 1,000 bytes announced have come."""
    if harness.skip_under_wrap("a client's pace against the server's clock"):
        return
    srv = Server(ARGS.server, env={"HTTP_TEST_BODY_TIMEOUT_MS": "400",
                                   "HTTP_TEST_BODY_MIN_RATE": "100"})
    c = None
    try:
        c = Conn(srv.port)
        c.send(req("POST", "/echo", ["Content-Length: 1000"]))
        sent = 0
        while sent < 1000 and not c.readable():
            try:
                c.send(b"x" * 10)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 10
            time.sleep(0.15)  # the slow client's pace, not a wait for the server
        check(sent < 1000, "the whole slow body was taken")
        status, hdrs, body, raw = c.response()
        check(status == 408 and hdrs.get("connection") == "close", raw)
        print("    cut off after %d body bytes" % sent)
        srv.stop()
    finally:
        if c:
            c.close()
        srv.kill()


def own_handler_pausing_between_reads_is_not_a_slow_client(t):
    """The whole 1 MiB body is sent at once; the handler reads 256 KiB
    and then waits 1 s (a backend call, an upload slot): the client is not
    to blame, and gets its 200 (the first minimum-rate code counted the
    handler's pause against the client's 400 ms budget: 408)."""
    srv = Server(ARGS.server, env={"HTTP_TEST_BODY_TIMEOUT_MS": "400",
                                   "HTTP_TEST_BODY_MIN_RATE": "10000000",
                                   "HTTP_TEST_MAX_BODY": str(4 * 1024 * 1024)})
    c = None
    try:
        c = Conn(srv.port)
        body = bytes(range(256)) * 4096
        c.send(req("POST", "/count?pause_ms=1000", ["Content-Length: %d" % len(body)]) + body)
        status, _, got, raw = c.response()
        check(status == 200 and got.startswith(b"count=1048576 "), (raw, got))
        check(srv.count_log(r"count pauses 1000 ms") == 1, srv.tail())
        srv.stop()
    finally:
        if c:
            c.close()
        srv.kill()


def own_body_timeout_of_uint64_max_means_none(t):
    """body_timeout_ms = UINT64_MAX (no timeout, as timeout scopes
    saturate): the body's budget must saturate too, not wrap into an
    immediate 408 when the handler first waits for body bytes."""
    srv = Server(ARGS.server, env={"HTTP_TEST_BODY_TIMEOUT_MS": str(2 ** 64 - 1)})
    c = None
    try:
        c = Conn(srv.port)
        c.send(req("POST", "/count", ["Content-Length: 10"]))
        time.sleep(0.2)  # the client's pace: the handler waits for the body
        c.send(b"0123456789")
        status, _, got, raw = c.response()
        check(status == 200 and got.startswith(b"count=10 "), (raw, got))
        srv.stop()
    finally:
        if c:
            c.close()
        srv.kill()


# ---- 4. drain --------------------------------------------------------------------------------

def answered_then_closed(c, close_header=True):
    """Reads a 200 from http_test_server's /plaintext or /sleep on c (with
    Connection: close if close_header; either way if None), then the close."""
    status, hdrs, body, raw = c.response()
    check(status == 200 and body in (b"Hello, World!", b"slept"), raw)
    if close_header is not None:
        check((hdrs.get("connection") == "close") == close_header, raw)
    c.expect_eof()


def own_drain_serves_a_new_connections_first_request(t):
    """A connection accepted before SIGTERM that had not yet sent its
    request: before the fix it counted as idle and was closed unanswered."""
    srv = Server(ARGS.server, "--drain-timeout", "10s")
    c = None
    try:
        c = Conn(srv.port)
        srv.proc.send_signal(signal.SIGTERM)
        srv.wait_log(DRAINING)
        c.send(req("GET", "/plaintext"))
        answered_then_closed(c)
        check(srv.wait_exit() == 0, srv.tail())
    finally:
        if c:
            c.close()
        srv.kill()


def own_drain_serves_the_accept_queue(t):
    """With the connection cap reached, two more clients connect and send
    requests: one waits in libuv, one in the kernel's accept queue.  Closing
    the listener at SIGTERM used to reset both; now they are accepted and
    answered."""
    srv = Server(ARGS.server, "--drain-timeout", "10s", "--max-conns", "1")
    conns = []
    try:
        busy = Conn(srv.port)
        conns.append(busy)
        busy.send(req("GET", "/sleep?ms=500"))
        srv.wait_log(r"sleep start ms=500")
        for _ in range(2):
            c = Conn(srv.port)
            conns.append(c)
            c.send(req("GET", "/plaintext"))
        srv.proc.send_signal(signal.SIGTERM)
        for c in conns:
            answered_then_closed(c)
        check(srv.wait_exit() == 0, srv.tail())
    finally:
        for c in conns:
            c.close()
        srv.kill()


def own_drain_serves_bytes_waiting_in_the_kernel(t):
    """A keep-alive connection whose next request is in the kernel, not yet
    read, when the drain starts (the server is stopped meanwhile, so the
    request and the SIGTERM are both pending when it resumes): the request
    is answered (with Connection: close if the drain began first: the order
    in which the server sees the two is its own), then the connection
    closes."""
    srv = Server(ARGS.server, "--drain-timeout", "10s")
    c = None
    try:
        c = Conn(srv.port)
        c.send(req("GET", "/plaintext"))
        check(c.response()[0] == 200, "first request")
        os.kill(srv.pid, signal.SIGSTOP)
        try:
            c.send(req("GET", "/plaintext"))
            srv.proc.send_signal(signal.SIGTERM)
        finally:
            os.kill(srv.pid, signal.SIGCONT)
        answered_then_closed(c, close_header=None)
        check(srv.wait_exit() == 0, srv.tail())
    finally:
        if c:
            c.close()
        srv.kill()


def own_drain_tls_request_with_the_finished_message(t):
    """The review's case: SIGTERM between the handshake messages, then the
    client's Finished and its request in one write.  The request sits in
    the TLS layer's buffer when the handshake completes; the server used to
    send close_notify without looking at it."""
    with tempfile.TemporaryDirectory() as d:
        crt, key = make_cert(d, "drain")
        srv = Server(ARGS.server, "--drain-timeout", "10s", "--tls-cert", crt, "--tls-key", key)
        sock = None
        try:
            sock = socket.create_connection((HOST, srv.port), timeout=harness.DEADLINE)
            tls, inc, out = harness.handshake_over_bios(sock)  # the Finished held back
            srv.proc.send_signal(signal.SIGTERM)
            srv.wait_log(DRAINING)
            tls.write(req("GET", "/plaintext"))
            sock.sendall(out.read())  # Finished + the request, one write
            got = b""
            while b"Hello" not in got:
                try:
                    got += tls.read(65536)
                except ssl.SSLWantReadError:
                    data = sock.recv(65536)
                    check(data, "closed without an answer; got %r" % got)
                    inc.write(data)
                except ssl.SSLZeroReturnError:
                    raise harness.CaseFailure("close_notify without an answer; got %r" % got)
            check(got.startswith(b"HTTP/1.1 200 "), got)
            check(b"\r\nConnection: close\r\n" in got, got)
            check(srv.wait_exit() == 0, srv.tail())
        finally:
            if sock:
                sock.close()
            srv.kill()


# ---- 3. a body cut short --------------------------------------------------------------------

def half_closed_mid_body(port, headers, body):
    """POST /echo with part of its body, then the client's FIN: the request
    is incomplete (RFC 9112 8), a client fault: 400 and the close, never a
    500 (nor an ERROR line in the log)."""
    c = Conn(port)
    try:
        c.send(req("POST", "/echo", headers) + body)
        c.s.shutdown(socket.SHUT_WR)
        got, hdrs, _, head = c.response()
        check(got == 400, "expected 400, got %r" % head)
        check(hdrs.get("connection") == "close", head)
        c.expect_eof()
    finally:
        c.close()


# Regression: answered 500 before the fix.
def case_content_length_body_cut_by_half_close_is_400(t):
    mark = t.srv.mark()
    half_closed_mid_body(t.srv.port, ["Content-Length: 10"], b"abc")
    check(t.srv.count_log("ERROR", start=mark) == 0, t.srv.tail(5))


# Regression: answered 500 before the fix.
def case_chunked_body_cut_by_half_close_is_400(t):
    mark = t.srv.mark()
    half_closed_mid_body(t.srv.port, ["Transfer-Encoding: chunked"], b"5\r\nab")
    check(t.srv.count_log("ERROR", start=mark) == 0, t.srv.tail(5))


# ---- main ------------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ap.add_argument("--server", required=True)
    ARGS = harness.parse_args(ap)
    raise_fd_limit()
    cases = pick([v for k, v in globals().items()
                  if k.split("_")[0] in ("hello", "case", "own") and callable(v)], ARGS.k)

    def start():
        t = Servers()
        t.hello = Server(ARGS.hello)
        t.srv = Server(ARGS.server)
        return t

    return harness.run_with_servers(cases, start)


if __name__ == "__main__":
    sys.exit(main())
