#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Functional tests of the benchmark's reference floors, bench/floor_uv.c
(libuv + llhttp) and bench/floor_epoll.c (raw epoll), which must be the same
server on the wire.

    test_bench_floors.py --uv build/bench/floor_uv --epoll build/bench/floor_epoll
                         [-k NAME] [--wrap "valgrind ..." [--slow 10]]

For each floor, one server started with --port 0 (its "listening on" line
is on stdout: a shell sends it to stderr, where harness.Server reads it):
/plaintext and /json (bodies, the header set and its order, Content-Length,
an IMF-fixdate Date near the clock, the JSON parsed), a 404 with an empty
body on a connection that stays open, 16 pipelined requests in one send
answered in order, 20,000 whose answers overflow the socket (the rest sent
once it drains), a request sent byte by byte, Connection: close and
HTTP/1.0 (closed after the answer; kept with keep-alive), malformed
requests and a head over 8 KiB (400, Connection: close, then the close),
and exit status 0 on SIGTERM with a connection still open.  No load.
Python standard library only.
"""
import argparse
import email.utils
import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import check  # noqa: E402

# The header set of examples/hello's responses, in its order.
HEADER_ORDER = ["server", "date", "content-type", "content-length", "x-request-id"]
DATE_RE = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d "
                     r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                     r"\d\d:\d\d:\d\d GMT$")
PLAIN = b"Hello, World!"
ROUTES = {"/plaintext": (200, PLAIN), "/json": (200, b'{"message":"Hello, World!"}'),
          "/nope": (404, b"")}


def get(path, extra=b"", version=b"1.1"):
    return b"GET " + path.encode() + b" HTTP/" + version + b"\r\nHost: 127.0.0.1\r\n" + \
        extra + b"\r\n"


def header_names(raw):
    return [ln.split(b":", 1)[0].decode().lower() for ln in raw.split(b"\r\n")[1:] if ln]


def check_response(resp, path, close=False):
    """resp (Conn.response()) is the answer to GET path, closing or not."""
    status, hdrs, body, raw = resp
    want_status, want_body = ROUTES[path]
    check(status == want_status, "%s: status %d, want %d" % (path, status, want_status))
    check(body == want_body, "%s: body %r, want %r" % (path, body, want_body))
    names = header_names(raw)
    want = HEADER_ORDER + (["connection"] if close else [])
    check(names == want, "%s: headers %s, want %s" % (path, names, want))
    check(hdrs["server"] == "floor", "Server: %r" % hdrs["server"])
    check(hdrs["content-length"] == str(len(body)), "Content-Length %r for %d bytes"
          % (hdrs["content-length"], len(body)))
    check(re.fullmatch(r"[0-9a-f]{32}", hdrs["x-request-id"]), "X-Request-Id %r"
          % hdrs["x-request-id"])
    check(DATE_RE.match(hdrs["date"]), "Date %r is not an IMF-fixdate" % hdrs["date"])
    when = email.utils.parsedate_to_datetime(hdrs["date"]).timestamp()
    check(abs(when - time.time()) < 5, "Date %r is not now" % hdrs["date"])
    ctype = "application/json" if path == "/json" else "text/plain; charset=utf-8"
    check(hdrs["content-type"] == ctype, "%s: Content-Type %r" % (path, hdrs["content-type"]))
    if path == "/json":
        check(json.loads(body) == {"message": "Hello, World!"}, "JSON %r" % body)
    if close:
        check(hdrs["connection"] == "close", "Connection %r" % hdrs["connection"])


# ---- cases: each takes the server --------------------------------------------------------

def case_plaintext(srv):
    c = harness.Conn(srv.port)
    for _ in range(3):  # keep-alive: the same connection
        c.send(get("/plaintext"))
        check_response(c.response(), "/plaintext")
    c.close()


def case_json(srv):
    c = harness.Conn(srv.port)
    ids = set()
    for _ in range(3):
        c.send(get("/json"))
        resp = c.response()
        check_response(resp, "/json")
        ids.add(resp[1]["x-request-id"])
    check(len(ids) == 3, "X-Request-Id repeats: %s" % ids)
    c.close()


def case_404_keeps_the_connection(srv):
    c = harness.Conn(srv.port)
    c.send(get("/nope"))
    check_response(c.response(), "/nope")
    c.send(get("/plaintext?x=1"))  # the target as a whole is the path: no route
    check(c.response()[0] == 404, "/plaintext?x=1 is not a 404")
    c.send(b"POST /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")  # GET routes only
    check(c.response()[0] == 404, "POST /plaintext is not a 404")
    c.send(get("/plaintext"))
    check_response(c.response(), "/plaintext")
    c.close()


def case_pipelined_16_in_order(srv):
    paths = [("/plaintext", "/json", "/nope")[i % 3] for i in range(16)]
    c = harness.Conn(srv.port)
    c.send(b"".join(get(p) for p in paths))
    for p in paths:
        check_response(c.response(), p)
    check(not c.readable(), "bytes after the 16th response")
    c.send(get("/json"))  # still open
    check_response(c.response(), "/json")
    c.close()


def case_full_socket_then_drained(srv):
    # 20,000 pipelined requests (800 KB) to a client that reads nothing for a
    # while: their 3.8 MB of answers overflow the socket, the server keeps
    # what it could not write (and reads no more meanwhile) and sends it once
    # the socket drains.  Sent by a thread: the server stops reading.
    paths = [("/plaintext", "/json", "/nope")[i % 3] for i in range(20000)]
    c = harness.Conn(srv.port, rcvbuf=4096)
    data = b"".join(get(p) for p in paths)
    errors = []

    def send():
        try:
            c.send(data)
        except OSError as e:
            errors.append(e)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    time.sleep(0.5)
    for p in paths:
        check_response(c.response(), p)
    sender.join(harness.DEADLINE)
    check(not errors and not sender.is_alive(), "sending: %r" % errors)
    c.send(get("/json"))  # reading again
    check_response(c.response(), "/json")
    c.close()


def case_byte_by_byte(srv):
    c = harness.Conn(srv.port)
    c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for b in get("/json", b"Connection: keep-alive\r\n"):
        c.send(bytes([b]))
        time.sleep(0.002)
    check_response(c.response(), "/json")
    c.send(get("/plaintext"))
    check_response(c.response(), "/plaintext")
    c.close()


def case_connection_close(srv):
    c = harness.Conn(srv.port)
    c.send(get("/plaintext", b"connection: Close\r\n"))
    check_response(c.response(), "/plaintext", close=True)
    c.expect_eof()
    c.close()
    # Pipelined after it: not answered.
    c = harness.Conn(srv.port)
    c.send(get("/json", b"Connection: close\r\n") + get("/plaintext"))
    check_response(c.response(), "/json", close=True)
    c.expect_eof()
    c.close()


def case_http10(srv):
    c = harness.Conn(srv.port)
    c.send(get("/json", version=b"1.0"))
    check_response(c.response(), "/json", close=True)
    c.expect_eof()
    c.close()
    c = harness.Conn(srv.port)
    c.send(get("/json", b"Connection: keep-alive\r\n", version=b"1.0"))
    resp = c.response()
    check(header_names(resp[3])[-1] == "connection" and
          resp[1]["connection"] == "keep-alive", "HTTP/1.0 keep-alive: %r" % resp[3])
    c.send(get("/plaintext"))
    check_response(c.response(), "/plaintext")
    c.close()


def expect_400(srv, data, what):
    c = harness.Conn(srv.port)
    c.send(data)
    status, hdrs, body, raw = c.response()
    check(status == 400, "%s: status %d, want 400" % (what, status))
    check(header_names(raw) == HEADER_ORDER + ["connection"] and
          hdrs["connection"] == "close", "%s: headers %r" % (what, raw))
    check(body == b"" and hdrs["content-length"] == "0", "%s: body %r" % (what, body))
    c.expect_eof()
    c.close()


def case_malformed_400_and_close(srv):
    expect_400(srv, b"GARBAGE\r\n\r\n", "no request line")
    expect_400(srv, b"GET /plaintext\r\nHost: x\r\n\r\n", "no version")
    expect_400(srv, b"GET /plaintext HTTP/1.1\r\nno colon here\r\n\r\n", "a bad header line")
    expect_400(srv, b"GET /plaintext HTTP/2.0\r\n\r\n", "HTTP/2.0")
    # After a good one in the same send: the good one answered first.
    c = harness.Conn(srv.port)
    c.send(get("/plaintext") + b"BAD\r\n\r\n")
    check_response(c.response(), "/plaintext")
    check(c.response()[0] == 400, "no 400 after the good request")
    c.expect_eof()
    c.close()


def case_head_over_8k_400(srv):
    expect_400(srv, get("/plaintext", b"X-Big: " + b"a" * 9000 + b"\r\n"), "a 9 KB head")
    # Sent in pieces, no end in sight: the same.
    c = harness.Conn(srv.port)
    c.send(b"GET /plaintext HTTP/1.1\r\nX-Big: ")
    status = None
    try:
        for _ in range(12):
            c.send(b"a" * 1000)
            time.sleep(0.01)
        status = c.response()[0]
    except (ConnectionResetError, BrokenPipeError):
        # The server may close with some of the last piece unread (a reset
        # then), but the 400 must have come first.
        c.s.settimeout(1)
        try:
            data = c.s.recv(4096)
        except OSError:
            data = b""
        status = 400 if (bytes(c.buf) + data).startswith(b"HTTP/1.1 400 ") else None
    check(status == 400, "a head growing past 8 KiB: status %r" % status)
    c.close()


CASES = [case_plaintext, case_json, case_404_keeps_the_connection, case_pipelined_16_in_order,
         case_full_socket_then_drained, case_byte_by_byte, case_connection_close, case_http10,
         case_malformed_400_and_close, case_head_over_8k_400]


def start(binary):
    # The listening line is on stdout; harness.Server reads stderr.
    wrap = ("/bin/sh", "-c", 'exec "$@" 1>&2', "sh", *harness.WRAP)
    return harness.Server(binary, wrap=wrap, name=os.path.basename(binary))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--uv", required=True, help="bench/floor_uv")
    ap.add_argument("--epoll", required=True, help="bench/floor_epoll")
    args = harness.parse_args(ap)
    started = time.monotonic()
    passed, failed = 0, []
    try:
        for binary in (args.uv, args.epoll):
            name = os.path.basename(binary)
            try:
                srv = start(binary)
            except harness.CaseFailure as e:
                print("FAIL %s: %s" % (name, e), flush=True)
                failed.append(name + " start")
                continue
            for case in harness.pick(CASES, args.k):
                label = "%s %s" % (name, case.__name__)
                if harness.run_case(label, case, srv):
                    passed += 1
                else:
                    failed.append(label)
                if harness.server_died(srv):
                    failed.append(name + " died")
                    break
            else:
                # SIGTERM with an idle keep-alive connection open: exit 0.
                idle = harness.Conn(srv.port)
                idle.send(get("/plaintext"))
                idle.response()
                if harness.stop_cleanly(srv):
                    print("PASS %s exits 0 on SIGTERM" % name, flush=True)
                    passed += 1
                else:
                    failed.append(name + " SIGTERM")
                idle.close()
    finally:
        harness.kill_all()
    return harness.summary(passed, len(failed), started, failed)


if __name__ == "__main__":
    sys.exit(main())
