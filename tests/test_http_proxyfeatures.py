#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What a reverse proxy needs of the HTTP server, with real clients, against
tests/http_test_server.c (its /relay, /abort-first and /scheme routes):

- corio_res_start_length: a body of known length relayed in pieces goes out
  as the bytes themselves under a Content-Length (no chunks), and the
  connection goes on; a write past the length is refused and nothing of it
  sent; HEAD gets the head alone; a corio_res_end (or a return) short of the
  length closes the connection after what was sent, so http.client reports
  an incomplete read and a pipelined request is not answered;
- corio_res_abort in mid-body (chunked or Content-Length): the connection
  closes without the last chunk, with no 500, the pipelined request behind
  it unanswered; a handler that fails in mid-body gets the same; before any
  response, the connection closes without an answer; an HTTP/1.0
  (close-delimited) body cut short ends with a reset, not a FIN;
- corio_req_is_tls: "https" over TLS, "http" over plain TCP.

    test_http_proxyfeatures.py --server build/tests/http_test_server [-k NAME]
                               [--wrap "valgrind ..." [--slow 10]]

Two shared servers, one plain and one with TLS (openssl makes its
certificate; without openssl the TLS case says SKIP); each must exit 0 on
SIGTERM at the end.  Every wait has a deadline.  Python standard library
only.
"""
import argparse
import functools
import http.client
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import harness
from harness import DEADLINE, HOST, Conn, check, make_cert, pick

ARGS = None
PATTERN = bytes(range(256))  # /relay sends it repeated

Server = functools.partial(harness.Server, env_drop=("CORIO_", "HTTP_TEST_"))


def relayed(n):
    return (PATTERN * (n // 256 + 1))[:n]


def req(method, path, close=False, version="1.1"):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: x"]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def get_incomplete(port, path):
    """GET path with http.client, which must find the body incomplete:
    returns the partial body it reports."""
    c = http.client.HTTPConnection(HOST, port, timeout=DEADLINE)
    try:
        c.request("GET", path)
        r = c.getresponse()
        check(r.status == 200, r.status)
        try:
            body = r.read()
        except http.client.IncompleteRead as e:
            return r, e.partial
        raise harness.CaseFailure("http.client read a whole body of %d bytes from %s"
                                  % (len(body), path))
    finally:
        c.close()


def cut_short_then_eof(t, path, framing):
    """`path` (then a pipelined GET /plaintext) on one connection: the head,
    then what `framing` says came of the body, then the close; returns the
    head's fields."""
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", path) + req("GET", "/plaintext"))
        status, hdrs, raw = c.read_head()
        check(status == 200, raw)
        check(b"Connection: close" not in raw, raw)  # the head left before the cut
        rest = c.read_to_eof()  # EOFError, a reset or a timeout would not end here
        check(rest == framing, "after the head: %r, want %r" % (rest[:80], framing[:80]))
        check(b"HTTP/1.1" not in rest, "a pipelined request was answered: %r" % rest)
        return hdrs
    finally:
        c.close()


# ---- corio_res_start_length ---------------------------------------------------------------------

def case_length_body_is_the_bytes_and_the_connection_goes_on(t):
    n = 200000  # four writes of up to 64 KiB
    c = Conn(t.srv.port)
    try:
        mark = t.srv.mark()
        c.send(req("GET", "/relay?len=%d&send=%d" % (n, n)) + req("GET", "/plaintext"))
        status, hdrs, raw = c.read_head()
        check(status == 200 and hdrs.get("content-length") == str(n), raw)
        check("transfer-encoding" not in hdrs and "connection" not in hdrs, raw)
        check(c.read_exact(n) == relayed(n), "the body differs")
        status, hdrs, body, raw = c.response()  # right behind the body: nothing between
        check(status == 200 and body == b"Hello, World!", (raw, body))
        t.srv.wait_log(r"relay start=0 write=0 over=0 end=0 req=[0-9a-f]{32}$", start=mark)
    finally:
        c.close()
    # A real client reads it as a whole body, and an empty one as empty.
    for n in (n, 0):
        cl = http.client.HTTPConnection(HOST, t.srv.port, timeout=DEADLINE)
        try:
            cl.request("GET", "/relay?len=%d&send=%d" % (n, n))
            r = cl.getresponse()
            check(r.status == 200 and r.read() == relayed(n), "len=%d" % n)
            check(r.getheader("Content-Length") == str(n), r.getheaders())
        finally:
            cl.close()


def case_write_past_length_refused_and_not_sent(t):
    c = Conn(t.srv.port)
    try:
        mark = t.srv.mark()
        c.send(req("GET", "/relay?len=10&send=10&over=1") + req("GET", "/plaintext"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == relayed(10), (raw, body))
        status, hdrs, body, raw = c.response()  # the stream is in step
        check(status == 200 and body == b"Hello, World!", (raw, body))
        t.srv.wait_log(r"relay start=0 write=0 over=EINVAL end=0 req=[0-9a-f]{32}$", start=mark)
    finally:
        c.close()


def case_head_gets_the_length_and_no_body(t):
    c = Conn(t.srv.port)
    try:
        mark = t.srv.mark()
        # written in full, then not written at all (what a proxy relaying a HEAD does)
        c.send(req("HEAD", "/relay?len=11&send=11&over=1") + req("HEAD", "/relay?len=11")
               + req("GET", "/plaintext"))
        for _ in range(2):
            status, hdrs, raw = c.read_head()
            check(status == 200 and hdrs.get("content-length") == "11", raw)
            check("connection" not in hdrs, raw)
        status, hdrs, body, raw = c.response()  # right after the heads: no body came
        check(status == 200 and body == b"Hello, World!", (raw, body))
        t.srv.wait_log(r"relay start=0 write=0 over=EINVAL end=0 req=[0-9a-f]{32}$", start=mark)
        t.srv.wait_log(r"relay start=0 write=0 over=0 end=0 req=[0-9a-f]{32}$", start=mark)
    finally:
        c.close()


def case_short_end_closes_after_what_was_sent(t):
    for then, logged in (("end", r"end=EINVAL req=[0-9a-f]{32}$"),
                         ("return", r"end=none req=[0-9a-f]{32}$")):
        mark = t.srv.mark()
        path = "/relay?len=100&send=10&then=" + then
        hdrs = cut_short_then_eof(t, path, relayed(10))
        check(hdrs.get("content-length") == "100", hdrs)
        t.srv.wait_log(r"relay start=0 write=0 over=0 " + logged, start=mark)
        r, partial = get_incomplete(t.srv.port, path)
        check(partial == relayed(10), partial)
    t.srv.wait_log(r"a handler returned 90 bytes short of its response's Content-Length")


# ---- corio_res_abort ----------------------------------------------------------------------------

def case_abort_mid_body_closes_without_completing(t):
    mark = t.srv.mark()
    hdrs = cut_short_then_eof(t, "/relay?send=10&then=abort", b"a\r\n" + relayed(10) + b"\r\n")
    check(hdrs.get("transfer-encoding") == "chunked", hdrs)
    hdrs = cut_short_then_eof(t, "/relay?len=100&send=10&then=abort", relayed(10))
    check(hdrs.get("content-length") == "100", hdrs)
    # After the abort, a write and an end were refused.
    t.srv.wait_log(r"relay start=0 write=0 over=0 end=EINVAL,EINVAL req=[0-9a-f]{32}$", start=mark, count=2)
    for path in ("/relay?send=10&then=abort", "/relay?len=100&send=10&then=abort"):
        r, partial = get_incomplete(t.srv.port, path)
        check(partial == relayed(10), (path, partial))
    check(t.srv.count_log(r'handler for "GET /relay\?send=10&then=abort', start=mark) == 0,
          "an abort followed by a return of 0 was logged as a failure")


def case_handler_error_mid_body_is_cut_short_like_abort(t):
    mark = t.srv.mark()
    cut_short_then_eof(t, "/relay?send=10&then=fail", b"a\r\n" + relayed(10) + b"\r\n")
    t.srv.wait_log(r'handler for "GET /relay\?send=10&then=fail" failed', start=mark)


def case_abort_before_a_response_closes_without_answering(t):
    for path in ("/abort-first", "/abort-first?fail=1"):
        c = Conn(t.srv.port)
        try:
            mark = t.srv.mark()
            c.send(req("GET", "/plaintext") + req("GET", path) + req("GET", "/plaintext"))
            status, hdrs, body, raw = c.response()
            check(status == 200 and body == b"Hello, World!", (raw, body))
            c.expect_eof()  # no 500, nothing for the third request
            t.srv.wait_log(r"abort-first text=EALREADY req=[0-9a-f]{32}$", start=mark)
        finally:
            c.close()


def case_http10_body_cut_short_ends_with_a_reset(t):
    """Close-delimited: a FIN would tell the client the body was whole."""
    for then in ("abort", "fail"):
        s = socket.create_connection((HOST, t.srv.port), timeout=DEADLINE)
        try:
            s.sendall(req("GET", "/relay?send=10&then=" + then, version="1.0"))
            got = b""
            try:
                while True:
                    d = s.recv(65536)
                    check(d, "%s: a clean close after %r" % (then, got[-40:]))
                    got += d
            except ConnectionResetError:
                pass
        finally:
            s.close()
    # The same stream ended normally is the body, then a FIN.
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/relay?send=10", version="1.0"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and body == relayed(10) and hdrs.get("connection") == "close", raw)
    finally:
        c.close()


# ---- corio_req_is_tls ---------------------------------------------------------------------------

def case_req_is_tls_says_which(t):
    c = http.client.HTTPConnection(HOST, t.srv.port, timeout=DEADLINE)
    try:
        c.request("GET", "/scheme")
        r = c.getresponse()
        check(r.status == 200 and r.read() == b"http", r.status)
    finally:
        c.close()
    if t.tls is None:
        print("    SKIP the TLS half: no openssl command to make a certificate", flush=True)
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c = http.client.HTTPSConnection(HOST, t.tls.port, timeout=DEADLINE, context=ctx)
    try:
        c.request("GET", "/scheme")
        r = c.getresponse()
        check(r.status == 200 and r.read() == b"https", r.status)
    finally:
        c.close()


# ---- corio_req_peer_addr ------------------------------------------------------------------------

def case_req_peer_addr_is_the_address_without_port(t):
    c = http.client.HTTPConnection(HOST, t.srv.port, timeout=DEADLINE)
    try:
        for _ in range(2):  # a second request on the connection: the cached one
            c.request("GET", "/peer-addr")
            r = c.getresponse()
            check(r.status == 200 and r.read() == b"127.0.0.1|127.0.0.1", r.status)
    finally:
        c.close()


# ---- main -----------------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS, DEADLINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the tests/http_test_server binary")
    ARGS = harness.parse_args(ap)
    DEADLINE = harness.DEADLINE
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    tmp = tempfile.mkdtemp(prefix="corio-proxyfeatures-")

    def start():
        t = Servers()
        t.srv = Server(ARGS.server)
        t.tls = None
        cert = None
        if shutil.which("openssl"):
            try:
                cert = make_cert(tmp, "proxyfeatures")
            except (OSError, subprocess.SubprocessError):
                cert = None
        if cert:
            t.tls = Server(ARGS.server, "--tls-cert", cert[0], "--tls-key", cert[1])
        return t

    try:
        return harness.run_with_servers(cases, start)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
