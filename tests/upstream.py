#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A misbehaving HTTP/1.1 upstream for test_http_client.c (standard library only).

Listens on 127.0.0.1 port 0 four times and prints "<main> <alt> <third> <ctl>\\n":
three origins that serve the same paths, each with its own connection
counters, and a control port whose connections count nowhere (the tests ask
it for the counters and tell it to let held responses go, without touching
the pool under test).

The origins serve, one thread per connection, by path:
  /ok             200, Content-Length, keep-alive
  /big?n=N        N bytes (i % 251), Content-Length (none for HEAD)
  /chunked?n=N    the same bytes, chunked in pieces of 1000
  /echo           the request body back (POST)
  /drop           served on a connection's first request; a later request
                  on the same connection is read and the connection closed
                  without an answer (a server that closed an idle connection)
  /malformed[?ms=M]  (after M ms) a status line llhttp's strict mode refuses
  /oversize       a 20 KiB header field
  /slow           headers promising 10 bytes, 1 byte, then nothing for 30 s
                  (ends early if the client closes)
  /close-headers  headers promising 100 bytes, then the connection is closed
  /stats          "accepts=A closed=C": this origin's connections accepted
                  and ended
  /hold?id=N[&code=S][&close=1]  noted as arrived (in order), then held
                  until the control port releases N (or the client closes: no
                  answer; or 10 s pass); then status S (200) and body "id=N"
                  (with close=1: Connection: close, and closes)
  /delay?ms=M[&code=S]  status S (200) after M ms, body "delayed"
  /status?code=S  status S at once, body "status"
  /silent         reads the request and never answers (until the client
                  closes, or 10 s)
  /trickle?n=N&ms=M  Content-Length N, then one byte ('t') every M ms
  /inspect        "METHOD len=L auth=0|1 cookie=0|1 ct=0|1 other=0|1 port=NAME":
                  the request's method, body length, whether it carried
                  Authorization, Cookie, Content-Type, X-Other; the origin
  /host           the request's Host field, as the body
  /redirect?code=C&to=URL  status C, Location URL (the rest of the query
                  after "to=", taken as is), body "moved"
  /chain?n=N      N > 0: 302 to /chain?n=N-1; 0: 200 "end"
  /loop           302 to /loop, forever

The control port serves:
  /stats?p=NAME   "accepts=A closed=C open=O peak=P held=H arrived=I,J,..."
                  for origin NAME (main, alt, third); peak is the most
                  connections open at once; held and arrived are global
  /release?id=N   lets /hold?id=N answer (now, or at once when it arrives)
  /release-all[?ms=M]  lets every /hold that is waiting answer (M ms later)
Exits on SIGTERM or when stdin reaches its end.
"""
import os
import select
import socket
import socketserver
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from upstream_common import serve_requests  # noqa: E402  (beside this script)

LOCK = threading.Lock()
ORIGINS = ("main", "alt", "third")
STATS = {name: {"accepts": 0, "closed": 0, "open": 0, "peak": 0} for name in ORIGINS}
HOLDS = {}  # id -> threading.Event
HELD = [0]
ARRIVED = []


def pattern(n):
    return bytes(i % 251 for i in range(n))


def arg(target, name, default=0):
    q = target.partition("?")[2]
    for kv in q.split("&"):
        k, _, v = kv.partition("=")
        if k == name:
            return int(v)
    return default


def hold_event(n):
    with LOCK:
        return HOLDS.setdefault(n, threading.Event())


def release_all():
    with LOCK:
        for ev in HOLDS.values():
            ev.set()


def peer_closed(sock):
    """Whether the client closed (or reset) the connection."""
    try:
        r, _, _ = select.select([sock], [], [], 0)
        return bool(r) and sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


def wait_or_closed(sock, event, seconds):
    """Waits for event (None: never set) for up to `seconds`.  Returns True
    when it is set, False when the client closed first, None when the time
    ran out."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if event is not None and event.wait(0.005):
            return True
        if event is None:
            time.sleep(min(0.005, max(0, end - time.monotonic())))
        if peer_closed(sock):
            return False
    return None


class Handler(socketserver.BaseRequestHandler):
    def send(self, status, body, extra=b""):
        self.request.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
                             str(len(body)).encode() + b"\r\n" + extra + b"\r\n" +
                             (b"" if self.head else body))

    def send_code(self, code, body, extra=b""):
        self.send(b"%d X" % code, body, extra)

    def respond(self, count, method, target, headers, body):
        self.head = method == b"HEAD"
        path = target.partition("?")[0]
        if path == "/ok":
            self.send(b"200 OK", b"hello", b"X-Test: Yes\r\n")
        elif path == "/big":
            self.send(b"200 OK", pattern(arg(target, "n")))
        elif path == "/chunked":
            data = pattern(arg(target, "n"))
            out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
            for i in range(0, len(data), 1000):
                piece = data[i:i + 1000]
                out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
            out.append(b"0\r\n\r\n")
            self.request.sendall(b"".join(out))
        elif path == "/echo":
            self.send(b"200 OK", body)
        elif path == "/drop":
            if count > 1:
                return False
            self.send(b"200 OK", b"first")
        elif path == "/malformed":
            time.sleep(arg(target, "ms") / 1000)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxyz")
        elif path == "/many-headers":
            self.send(b"200 OK", b"x", b"".join(b"X-%d: v\r\n" % i for i in range(150)))
        elif path == "/oversize":
            self.send(b"200 OK", b"x", b"X-Big: " + b"a" * 20480 + b"\r\n")
        elif path == "/slow":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nx")
            select.select([self.request], [], [], 30)
            return False
        elif path == "/close-headers":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            return False
        elif path == "/stats":
            with LOCK:
                st = STATS[self.server.name]
                s = b"accepts=%d closed=%d" % (st["accepts"], st["closed"])
            self.send(b"200 OK", s)
        elif path == "/hold":
            n = arg(target, "id")
            ev = hold_event(n)
            with LOCK:
                ARRIVED.append(n)
                HELD[0] += 1
            try:
                released = wait_or_closed(self.request, ev, 10)
            finally:
                with LOCK:
                    HELD[0] -= 1
            if released is not True:
                return False
            close = arg(target, "close")
            self.send_code(arg(target, "code", 200), b"id=%d" % n,
                           b"Connection: close\r\n" if close else b"")
            if close:
                return False
        elif path == "/delay":
            if wait_or_closed(self.request, None, arg(target, "ms") / 1000) is False:
                return False
            self.send_code(arg(target, "code", 200), b"delayed")
        elif path == "/status":
            self.send_code(arg(target, "code", 200), b"status")
        elif path == "/silent":
            wait_or_closed(self.request, None, 10)
            return False
        elif path == "/trickle":
            n, ms = arg(target, "n"), arg(target, "ms")
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            for _ in range(n):
                time.sleep(ms / 1000)
                self.request.sendall(b"t")
        elif path == "/inspect":
            has = lambda k: b"1" if k in headers else b"0"
            self.send(b"200 OK", b"%s len=%d auth=%s cookie=%s ct=%s other=%s port=%s" % (
                method, len(body), has(b"authorization"), has(b"cookie"),
                has(b"content-type"), has(b"x-other"), self.server.name.encode()))
        elif path == "/host":
            self.send(b"200 OK", headers.get(b"host", b"(none)"))
        elif path == "/redirect":
            to = target.partition("to=")[2].encode()
            self.send_code(arg(target, "code"), b"moved", b"Location: " + to + b"\r\n")
        elif path == "/chain":
            n = arg(target, "n")
            if n > 0:
                self.send(b"302 Found", b"", b"Location: /chain?n=%d\r\n" % (n - 1))
            else:
                self.send(b"200 OK", b"end")
        elif path == "/loop":
            self.send(b"302 Found", b"again", b"Location: /loop\r\n")
        else:
            self.send(b"404 Not Found", b"")
        return True

    def handle(self):
        name = self.server.name
        with LOCK:
            st = STATS[name]
            st["accepts"] += 1
            st["open"] += 1
            st["peak"] = max(st["peak"], st["open"])
        try:
            serve_requests(self.request, self.respond)
        finally:
            with LOCK:
                st["closed"] += 1
                st["open"] -= 1


class Control(socketserver.BaseRequestHandler):
    def respond(self, _count, _method, target, _headers, _body):
        path = target.partition("?")[0]
        if path == "/stats":
            name = target.partition("p=")[2] or "main"
            with LOCK:
                st = STATS[name]
                body = b"accepts=%d closed=%d open=%d peak=%d held=%d arrived=%s" % (
                    st["accepts"], st["closed"], st["open"], st["peak"], HELD[0],
                    b",".join(b"%d" % i for i in ARRIVED))
        elif path == "/release":
            hold_event(arg(target, "id")).set()
            body = b"ok"
        elif path == "/release-all":
            threading.Timer(arg(target, "ms") / 1000, release_all).start()
            body = b"ok"
        else:
            body = b"?"
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" %
                             (len(body), body))
        return True

    def handle(self):
        serve_requests(self.request, self.respond)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default 5 drops the SYNs of a burst of connects


def main():
    servers = []
    for name in ORIGINS:
        srv = Server(("127.0.0.1", 0), Handler)
        srv.name = name
        servers.append(srv)
    servers.append(Server(("127.0.0.1", 0), Control))
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(" ".join(str(srv.server_address[1]) for srv in servers), flush=True)
    sys.stdin.read()  # the test closes our stdin (or kills us) to stop us


if __name__ == "__main__":
    main()
