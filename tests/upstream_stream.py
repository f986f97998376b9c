#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""An HTTP/1.1 upstream for test_http_client_stream.c (standard library only).

Listens on 127.0.0.1 port 0, prints "<port>\\n" and serves, one thread per
connection, by path:
  /pattern?n=N       N bytes, byte i = i % 251, with a Content-Length; sent in
                     1 MiB pieces from one buffer (a client that goes away
                     mid-body ends the connection: counted as closed)
  /continue          "100 Continue" and "103 Early Hints" (with a Link field)
                     before the final 200 ("hello", X-Final: yes)
  /bodiless?code=C   status C (204 or 304) with "Content-Length: 1234" and
                     no body, as RFC 9110 allows (the length a 200 would have)
  /to-unix?p=P       302 to http+unix://P/secret (a redirect a client must
                     not follow from a TCP origin)
  /trailers          a chunked "hello world" whose last chunk carries the
                     trailer fields X-Checksum and X-Other (4000 bytes: more
                     than the header fields took)
  /count[?drop=1]    POST/PUT: counts the request body (Content-Length or
                     chunked) and checks the pattern: "count=N ok=0|1"; with
                     drop=1, on a connection's second and later requests the
                     body is read and the connection closed without an answer
                     (a server that dropped an idle connection)
  /close[?linger=1]  "ok" with Connection: close, then closes (linger=1: only
                     once the client has closed, up to 30 s)
  /eof-body?n=N      N pattern bytes delimited by the close (no length, not
                     chunked)
  /stall[?n=N]       a Content-Length of 1000, the first N (10) bytes of the
                     pattern, then nothing until the client closes (30 s)
  /stats             "accepts=A closed=C": connections accepted and ended
  /wait-closed?n=K   waits (10 s at most) until C >= K, then answers as /stats:
                     the test's way to wait for a close it caused
Exits when stdin reaches its end (the test closes it) or on SIGTERM.
"""
import os
import select
import socketserver
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream_common import serve_requests  # noqa: E402  (beside this script)

COND = threading.Condition()
STATS = {"accepts": 0, "closed": 0}
PIECE = 1 << 20
REF = bytes(i % 251 for i in range(PIECE + 251))


def arg_n(target):
    q = target.partition("?")[2]
    for kv in q.split("&"):
        k, _, v = kv.partition("=")
        if k == "n":
            return int(v)
    return 0


def stats_body():
    return b"accepts=%d closed=%d" % (STATS["accepts"], STATS["closed"])


class Handler(socketserver.BaseRequestHandler):
    def send(self, status, body, extra=b""):
        self.request.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
                             str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)

    def respond(self, count, _method, target, _headers, body):
        path = target.partition("?")[0]
        sock = self.request
        if path == "/count":
            if "drop=1" in target and count > 1:
                return False
            ok = all(body[i:i + PIECE] == REF[i % 251:i % 251 + len(body[i:i + PIECE])]
                     for i in range(0, len(body), PIECE))
            self.send(b"200 OK", b"count=%d ok=%d" % (len(body), ok))
        elif path == "/close":
            self.send(b"200 OK", b"ok", b"Connection: close\r\n")
            if "linger=1" in target:
                select.select([sock], [], [], 30)
            return False
        elif path == "/eof-body":
            n = arg_n(target)
            sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n" + REF[:n])
            return False
        elif path == "/pattern":
            n = arg_n(target)
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            view = memoryview(REF)
            off = 0
            while off < n:
                k = min(PIECE, n - off)
                sock.sendall(view[off % 251:off % 251 + k])
                off += k
        elif path == "/continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                         b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
                         b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Final: yes\r\n\r\nhello")
        elif path == "/bodiless":
            code = b"204 No Content" if "code=204" in target else b"304 Not Modified"
            sock.sendall(b"HTTP/1.1 " + code + b"\r\nContent-Length: 1234\r\nETag: \"e\"\r\n\r\n")
        elif path == "/to-unix":
            to = target.partition("p=")[2].encode()
            self.send(b"302 Found", b"moved", b"Location: http+unix://" + to + b"/secret\r\n")
        elif path == "/trailers":
            sock.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"Trailer: X-Checksum, X-Other\r\nX-Before: 1\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n"
                         b"0\r\nX-Checksum: abc\r\nX-Other: " + b"d" * 4000 + b"\r\n\r\n")
        elif path == "/stall":
            n = arg_n(target) if "n=" in target else 10
            sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + REF[:n])
            select.select([sock], [], [], 30)
            return False
        elif path == "/stats":
            with COND:
                body = stats_body()
            self.send(b"200 OK", body)
        elif path == "/wait-closed":
            n = arg_n(target)
            with COND:
                COND.wait_for(lambda: STATS["closed"] >= n, timeout=10)
                body = stats_body()
            self.send(b"200 OK", body)
        else:
            self.send(b"404 Not Found", b"")
        return True

    def handle(self):
        with COND:
            STATS["accepts"] += 1
        try:
            serve_requests(self.request, self.respond)
        finally:
            with COND:
                STATS["closed"] += 1
                COND.notify_all()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(srv.server_address[1], flush=True)
    sys.stdin.read()  # the test closes our stdin (or kills us) to stop us


if __name__ == "__main__":
    main()
