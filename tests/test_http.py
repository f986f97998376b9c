#!/usr/bin/env python3
"""HTTP/1.1 server tests against examples/hello, with real clients.

Each case starts from a server on 127.0.0.1 (port chosen by the server, read
from its log), talks raw HTTP over sockets or with http.client, and asserts
the status line, headers and whether the connection was closed.  Every wait
has a deadline; every process started is killed in a finally block.
"""
import argparse
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

DEADLINE = 10.0


class Server:
    def __init__(self, binary, *args):
        self.proc = subprocess.Popen([binary, "--port", "0", *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.port = None
        self.log = []
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                break
        if self.port is None:
            self.stop()
            raise RuntimeError("server did not start: " + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=DEADLINE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    return s


def read_all(s):
    """Reads until the server closes; returns the bytes."""
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            return data
        data += d


def exchange(port, raw):
    s = connect(port)
    try:
        s.sendall(raw)
        return read_all(s)
    finally:
        s.close()


def status_of(resp):
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", resp)
    return int(m.group(1)) if m else None


# ---- cases -------------------------------------------------------------------------------

def case_plaintext_and_json(srv):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=DEADLINE)
    c.request("GET", "/plaintext")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"Hello, World!", r.status
    assert r.getheader("Content-Type").startswith("text/plain")
    assert r.getheader("Date") and r.getheader("Content-Length") == "13"
    c.request("GET", "/json")  # same connection: keep-alive
    r = c.getresponse()
    assert r.status == 200 and r.read() == b'{"message":"Hello, World!"}'
    assert r.getheader("Content-Type") == "application/json"
    c.close()


def case_head_has_no_body(srv):
    resp = exchange(srv.port, b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 200
    assert b"Content-Length: 13\r\n" in resp and resp.endswith(b"\r\n\r\n"), resp


def case_not_found_and_method_not_allowed(srv):
    resp = exchange(srv.port, b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 404, resp
    resp = exchange(srv.port, b"DELETE /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(resp) == 405 and b"Allow: GET, HEAD\r\n" in resp, resp


def case_pipelined_100_in_one_write(srv):
    reqs = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" * 99
    reqs += b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    resp = exchange(srv.port, reqs)
    assert resp.count(b"HTTP/1.1 200 OK") == 100, resp.count(b"HTTP/1.1 200 OK")
    assert resp.endswith(b'{"message":"Hello, World!"}'), resp[-80:]


def case_one_byte_at_a_time(srv):
    s = connect(srv.port)
    try:
        for b in b"GET /json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n":
            s.sendall(bytes([b]))
        resp = read_all(s)
    finally:
        s.close()
    assert status_of(resp) == 200 and resp.endswith(b'"Hello, World!"}'), resp


def case_http10_keepalive_rules(srv):
    resp = exchange(srv.port, b"GET /plaintext HTTP/1.0\r\n\r\n")  # closes after
    assert status_of(resp) == 200 and b"Connection: close" in resp, resp
    s = connect(srv.port)
    try:
        s.sendall(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = s.recv(65536)
        assert b"Connection: keep-alive" in first, first
        s.sendall(b"GET /plaintext HTTP/1.0\r\n\r\n")
        rest = read_all(s)
        assert status_of(rest) == 200
    finally:
        s.close()


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
    ("absolute target", b"GET http://a/json HTTP/1.1\r\nHost: a\r\n\r\n", 400),
]


def case_bad_input_answered_and_closed(srv):
    failures = []
    for name, raw, want in BAD:
        try:
            resp = exchange(srv.port, raw)
        except OSError as e:  # a reset after the answer is fine if we got it
            failures.append(f"{name}: {e}")
            continue
        got = status_of(resp)
        if got != want or b"Connection: close" not in resp:
            failures.append(f"{name}: want {want} and close, got {resp[:60]!r}")
    assert not failures, "\n  ".join(failures)


def case_idle_keepalive_closes(srv):
    s = connect(srv.port)
    try:
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(65536)
        assert status_of(first) == 200
        start = time.monotonic()
        rest = read_all(s)  # the server closes an idle connection
        assert rest == b"" and time.monotonic() - start < DEADLINE
    finally:
        s.close()


def case_thousand_keepalive_connections(srv):
    socks = []
    try:
        for _ in range(1000):
            socks.append(connect(srv.port))
        for s in socks:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        for s in socks:
            data = b""
            while not data.endswith(b"Hello, World!"):
                d = s.recv(4096)
                assert d, "closed early"
                data += d
            assert status_of(data) == 200
    finally:
        for s in socks:
            s.close()


def case_slow_header_times_out(srv):
    s = connect(srv.port)
    try:
        s.settimeout(DEADLINE + 15)  # the server's header timeout is 10 s
        s.sendall(b"GET /json HTTP/1.1\r\n")
        resp = read_all(s)
        assert status_of(resp) == 408, resp
    finally:
        s.close()


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    args = ap.parse_args()
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    failed = 0
    srv = Server(args.hello, "--max-conns", "0")
    try:
        for case in CASES:
            try:
                case(srv)
                print(f"PASS {case.__name__}")
            except Exception as e:  # noqa: BLE001 - report every failure
                failed += 1
                print(f"FAIL {case.__name__}: {e}")
            if srv.proc.poll() is not None:
                print("FAIL the server died:\n" + "".join(srv.log[-20:]))
                return 1
    finally:
        srv.stop()
    print(f"{len(CASES) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
