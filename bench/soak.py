#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Soak: corio servers under a long mixed load, checked for growth.

    bench/soak.py [--build DIR] [--seconds N] [--warmup S] [--interval S]
                  [--csv PATH] [--rss-tol-kib K] [--count-tol N] [--no-wrk] ...

Not part of `make test`.  Starts four servers from a build directory (a
Release build: cmake -S . -B build -DCMAKE_BUILD_TYPE=Release), each with
--port 0, --admin 0 (the admin listener serves /metrics) and one worker:

    hello       examples/hello, plain HTTP
    hello-tls   examples/hello with a self-signed certificate (--tls-cert/--tls-key)
    sse         examples/sse (GET /clock, an event a second)
    upload      examples/upload (UPLOAD_DIR a temporary directory, UPLOAD_MAX 1 MiB)

and runs a mixed load for --seconds (default 1800):

  - wrk (if installed; --no-wrk leaves it out): bounded bursts, `wrk -t1 -cC
    -dBs`, of keep-alive /plaintext, /json, pipelined /plaintext (16 deep)
    and TLS /plaintext in turn, with a pause as long as the burst between
    them (--wrk-conns, --wrk-burst), so that the machine's second core is
    not taken all the time;
  - Python threads, each looping over one kind of client with a short
    sleep between iterations: keep-alive and new-connection requests
    (HTTP/1.1 and 1.0, half-closed), pipelined batches (GET, HEAD, 404,
    /healthz), a slow writer (a head in 7-byte pieces), a slow reader (10000
    pipelined requests read late through a small receive buffer), idle and
    half-sent heads (closed by the server after its 5 s keep-alive / 10 s
    head timeouts: 408), resets (RST mid-head, mid-response, after a whole
    request), TLS keep-alive, new handshakes (full and resumed, closed with
    and without close_notify) and TLS resets (mid-handshake, mid-request),
    SSE streams read for 1-3 events then closed or reset, uploads
    (Content-Length and chunked, checked against their SHA-256, the file
    removed afterwards), uploads over the limit (413), a slow upload and
    uploads reset mid-body.

Every client counts its requests, the failures it provokes on purpose
(resets, 408, 413: "expected") and unexpected failures (a wrong status or
body, a reset or timeout nobody asked for, an exception); wrk's socket
errors and non-2xx answers count as failures.  Any unexpected failure fails
the soak.

Every --interval seconds (default: seconds/100, within 1..5 s) it samples
for each server: VmRSS (/proc/PID/status), open fds (/proc/PID/fd), and,
from /metrics on its admin listener, corio_tasks_live (live coroutine
tasks) and corio_connections_open (the admin connection that asks
included).  --csv PATH writes the samples (one row per server per sample).

Criteria.  The samples before --warmup (default 20 % of the run, at least
10 s) are not judged.  For each server and series, a least-squares line
y = a + b*t is fitted to the samples after it; "growth" is b times the
window (the time between the first and last judged sample), the increase
the fitted line shows over the window, and se its standard error (the
slope's standard error times the window).  A series FAILs when its growth
is both over the tolerance and over 3 se (significant: the noise of a
load that comes in bursts does not fail a run, a steady climb does):

    VmRSS                     tolerance --rss-tol-kib (default 2048 KiB)
    fds, tasks, connections   tolerance --count-tol   (default 8)

A short run thus catches a fast leak only (60 s: over ~2 MiB in 48 s, about
2.5 MiB a minute); a long one a slow one (30 min: over 2 MiB in 24 min).
The counts are also checked exactly, whatever the run's length: after the
load stops and every client socket is closed, each server's fds, live tasks
and open connections must come back, within 20 s, to the figures measured
before the load (after one priming request of each kind, so that what a
server opens once, lazily, is in the baseline).  The upload directory must
be empty then (partial files of reset uploads removed by the server, whole
ones by the soak).  At the end each server is stopped with SIGTERM and must
exit 0 within 15 s, and no server may print a sanitizer report or die
during the run.  Exit status: 0 pass, 1 fail, 2 usage or setup error.

Python 3 standard library only; uses tests/harness.py (Conn, make_cert).
"""
import argparse
import csv
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import harness  # noqa: E402  (tests/harness.py: Conn, make_cert, clean_env, REPORT_RE)
from harness import HOST, Conn  # noqa: E402

UPLOAD_MAX = 1024 * 1024
PLAIN = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'
ADMIN_RE = re.compile(r"admin listener on 127\.0\.0\.1:(\d+)")
LEVEL_RE = re.compile(r"\b(DEBUG|INFO|WARN|ERROR)\b")
SERIES = ("rss_kib", "fds", "tasks", "conns")


class Unexpected(Exception):
    """A client saw something the server should not have done."""


def expect(cond, msg):
    if not cond:
        raise Unexpected(msg)


# ---- servers ------------------------------------------------------------------------------

class Server:
    """A server started with --port 0 --admin 0 in its own process group.  Its
    stderr is read by a thread that counts lines by level, keeps the last 200
    and keeps any sanitizer report (harness.REPORT_RE) whole."""

    def __init__(self, name, binary, args=(), env=None):
        self.name = name
        self.lines = []
        self.levels = {}
        self.messages = {}  # WARN/ERROR lines, digits and hex blotted out: count
        self.reports = []
        self.cond = threading.Condition()
        self.port = self.admin = None
        self.proc = subprocess.Popen(
            [binary, "--port", "0", "--admin", "0", "--drain-timeout", "5s", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            env=harness.clean_env(env), start_new_session=True)
        self.pid = self.proc.pid
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + 10
        with self.cond:
            while self.port is None or self.admin is None:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    self.kill()
                    raise RuntimeError("%s did not start:\n%s" % (name, self.tail()))
                self.cond.wait(min(left, 0.1))

    def _read(self):
        in_report = False
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            with self.cond:
                self.lines.append(line)
                del self.lines[:-200]
                m = LEVEL_RE.search(line[:40])
                if m:
                    self.levels[m.group(1)] = self.levels.get(m.group(1), 0) + 1
                    if m.group(1) in ("WARN", "ERROR"):
                        key = re.sub(r"[0-9a-f]{8,}|\d+", "N", line[m.start():])
                        if key in self.messages or len(self.messages) < 50:
                            self.messages[key] = self.messages.get(key, 0) + 1
                if harness.REPORT_RE.search(line) or in_report:
                    in_report = True
                    if len(self.reports) < 200:
                        self.reports.append(line)
                m = harness.LISTEN_RE.search(line)
                if m and self.port is None:
                    self.port = int(m.group(1))
                m = ADMIN_RE.search(line)
                if m and self.admin is None:
                    self.admin = int(m.group(1))
                self.cond.notify_all()

    def tail(self, n=30):
        with self.cond:
            return "\n".join(self.lines[-n:])

    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def cpu_s(self):
        """utime + stime so far, in seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def metrics(self):
        """corio_tasks_live and corio_connections_open from the admin listener."""
        c = Conn(self.admin, timeout=5)
        try:
            c.send(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status, _, body, _ = c.response()
        finally:
            c.close()
        expect(status == 200, "/metrics answered %d" % status)
        vals = {}
        for line in body.decode().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in ("corio_tasks_live", "corio_connections_open"):
                vals[parts[0]] = int(float(parts[1]))
        return vals.get("corio_tasks_live"), vals.get("corio_connections_open")

    def sample(self):
        """(rss_kib, fds, tasks, conns); None for a figure that could not be read."""
        try:
            rss, fds = self.rss_kib(), self.fds()
        except OSError:
            rss = fds = None
        try:
            tasks, conns = self.metrics()
        except (OSError, EOFError, Unexpected, ValueError, harness.CaseFailure):
            tasks = conns = None
        return rss, fds, tasks, conns

    def terminate(self, timeout=15):
        """SIGTERM; the exit status, or None if still running after timeout."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self.kill()

    def kill(self):
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# ---- clients ------------------------------------------------------------------------------

def req(path, method="GET", extra="", version="1.1"):
    return ("%s %s HTTP/%s\r\nHost: 127.0.0.1\r\n%s\r\n" % (method, path, version, extra)).encode()


HELLO = {"/plaintext": (200, PLAIN), "/json": (200, JSON), "/healthz": (200, None),
         "/nope": (404, None)}


def check_hello(c, path, head=False):
    """Reads one response to a request for path and checks it."""
    status, _, body, _ = c.response(head=head)
    want_status, want_body = HELLO[path]
    expect(status == want_status, "%s: status %d, want %d" % (path, status, want_status))
    if want_body is not None and not head:
        expect(body == want_body, "%s: body %r" % (path, body[:60]))


def reset(sock):
    """Closes the socket with an RST (SO_LINGER 0)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class Clients:
    """The client side: what each load generator does once (an iteration).
    An iteration returns how many requests it completed and checked, or a
    (requests, expected) pair where expected counts the failures it caused
    on purpose; it raises on anything unexpected."""

    def __init__(self, servers, cert, upload_dir):
        self.s = servers
        self.upload_dir = upload_dir
        self.tls = ssl.create_default_context(cafile=cert)
        self.tls.check_hostname = True
        self.blob = random.randbytes(UPLOAD_MAX + 65536)
        self.sessions = []
        self.lock = threading.Lock()

    # -- plain hello --

    def keepalive(self):
        c = Conn(self.s["hello"].port)
        try:
            n = random.randint(20, 100)
            for i in range(n):
                path = "/plaintext" if i % 2 else "/json"
                c.send(req(path))
                check_hello(c, path)
            return n
        finally:
            c.close()

    def newconn(self):
        c = Conn(self.s["hello"].port)
        try:
            kind = random.randrange(3)
            if kind == 0:
                c.send(req("/plaintext", extra="Connection: close\r\n"))
            elif kind == 1:
                c.send(req("/json", version="1.0"))
            else:  # the request, then a half-close: the answer still comes
                c.send(req("/plaintext"))
                c.s.shutdown(socket.SHUT_WR)
            check_hello(c, "/json" if kind == 1 else "/plaintext")
            c.expect_eof()
            return 1
        finally:
            c.close()

    def pipeline(self):
        c = Conn(self.s["hello"].port)
        try:
            done = 0
            for _ in range(10):
                batch = [(random.choice(list(HELLO)), random.random() < 0.15) for _ in range(16)]
                c.send(b"".join(req(p, "HEAD" if h and p != "/nope" else "GET")
                                for p, h in batch))
                for p, h in batch:
                    check_hello(c, p, head=h and p != "/nope")
                done += len(batch)
            return done
        finally:
            c.close()

    def slow_writer(self):
        c = Conn(self.s["hello"].port)
        try:
            data = req("/plaintext", extra="User-Agent: soak-slow-writer\r\n")
            for i in range(0, len(data), 7):
                c.send(data[i:i + 7])
                time.sleep(0.05)
            check_hello(c, "/plaintext")
            return 1
        finally:
            c.close()

    def slow_reader(self):
        c = Conn(self.s["hello"].port, rcvbuf=4096, timeout=20)
        try:
            n = 10000
            sender = threading.Thread(target=lambda: c.send(req("/plaintext") * n), daemon=True)
            sender.start()
            time.sleep(2)  # the server's answers pile up against our window
            for i in range(n):
                check_hello(c, "/plaintext")
                if i % 100 == 0:
                    time.sleep(0.01)
            sender.join(5)
            expect(not sender.is_alive(), "the pipelined requests were never all sent")
            return n
        finally:
            c.close()

    def idle(self):
        """A silent connection (closed after the keep-alive timeout, 5 s) or a
        half-sent head (408 after the head timeout, 10 s)."""
        c = Conn(self.s["hello"].port, timeout=25)
        try:
            if random.random() < 0.5:
                c.expect_eof(timeout=25)
            else:
                c.send(b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                status, _, _, _ = c.response()
                expect(status == 408, "a stalled head got %d, want 408" % status)
                c.expect_eof()
            return 0, 1
        finally:
            c.close()

    def resets(self):
        c = Conn(self.s["hello"].port)
        kind = random.randrange(3)
        if kind == 0:  # mid-head
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: 127.0")
        elif kind == 1:  # mid-response: a deep pipeline, a little of it read
            c.send(req("/plaintext") * 500)
            c.read_exact(1000)
        else:  # a whole request, its answer never read
            c.send(req("/json"))
        time.sleep(random.random() * 0.02)
        reset(c.s)
        return 0, 1

    # -- TLS hello --

    def tls_conn(self, session=None):
        sock = socket.create_connection((HOST, self.s["hello-tls"].port), timeout=10)
        try:
            tls = self.tls.wrap_socket(sock, server_hostname=HOST, session=session)
        except BaseException:
            sock.close()
            raise
        c = Conn.__new__(Conn)
        c.s, c.buf, c.timeout = tls, bytearray(), 10
        return c

    def tls_keepalive(self):
        c = self.tls_conn()
        try:
            for _ in range(50):
                c.send(req("/plaintext"))
                check_hello(c, "/plaintext")
            return 50
        finally:
            c.close()

    def tls_new(self):
        with self.lock:
            session = random.choice(self.sessions) if self.sessions and random.random() < 0.5 \
                else None
        c = self.tls_conn(session)
        try:
            c.send(req("/json"))
            check_hello(c, "/json")
            if c.s.session is not None:
                with self.lock:
                    self.sessions = (self.sessions + [c.s.session])[-8:]
            if random.random() < 0.5:
                c.s.unwrap()  # close_notify, then the TCP close
            return 1
        finally:
            c.close()

    def tls_resets(self):
        kind = random.randrange(3)
        if kind == 0:  # a ClientHello, then RST (before or after the server's answer)
            sock = socket.create_connection((HOST, self.s["hello-tls"].port), timeout=10)
            out = ssl.MemoryBIO()
            tls = self.tls_nocheck().wrap_bio(ssl.MemoryBIO(), out)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                pass
            sock.sendall(out.read())
            if random.random() < 0.5:
                sock.recv(65536)
            reset(sock)
            return 0, 1
        if kind == 1:  # the handshake all but its last flight, then RST
            sock = socket.create_connection((HOST, self.s["hello-tls"].port), timeout=10)
            harness.handshake_over_bios(sock, self.tls_nocheck())
            reset(sock)
            return 0, 1
        c = self.tls_conn()  # mid-request
        c.send(req("/plaintext")[:20])
        reset(c.s)
        return 0, 1

    def tls_nocheck(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx

    # -- SSE --

    def sse(self):
        c = Conn(self.s["sse"].port, timeout=10)
        try:
            c.send(req("/clock"))
            status, hdrs, _ = c.read_head()
            expect(status == 200 and hdrs.get("content-type", "").startswith("text/event-stream"),
                   "/clock: status %d, %r" % (status, hdrs.get("content-type")))
            for _ in range(random.randint(1, 3)):
                size = int(c.read_until(b"\r\n").split(b";")[0], 16)
                event = c.read_exact(size)
                expect(c.read_exact(2) == b"\r\n", "a chunk not followed by CRLF")
                expect(re.match(rb"data: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n\n$", event),
                       "event %r" % event)
        except BaseException:
            c.close()
            raise
        if random.random() < 0.5:
            reset(c.s)
            return 1, 1
        c.close()
        return 1

    def sse_page(self):
        c = Conn(self.s["sse"].port)
        try:
            for _ in range(5):
                c.send(req("/"))
                status, _, body, _ = c.response()
                expect(status == 200 and b"EventSource" in body, "GET /: %d" % status)
            return 5
        finally:
            c.close()

    # -- upload --

    def _upload_done(self, c, data):
        status, _, body, _ = c.response()
        expect(status == 201, "upload: status %d %r" % (status, body[:80]))
        reply = json.loads(body)
        expect(reply["bytes"] == len(data), "upload: %d bytes stored of %d"
               % (reply["bytes"], len(data)))
        expect(reply["sha256"] == hashlib.sha256(data).hexdigest(), "upload: sha256 differs")
        name = reply["file"]
        expect(re.fullmatch(r"upload-[A-Za-z0-9]+", name), "upload: file %r" % name)
        os.unlink(os.path.join(self.upload_dir, name))

    def _piece(self, hi):
        n = random.randint(0, hi)
        off = random.randint(0, len(self.blob) - n)
        return self.blob[off:off + n]

    def upload(self):
        c = Conn(self.s["upload"].port)
        try:
            for _ in range(3):
                data = self._piece(256 * 1024)
                if random.random() < 0.5:
                    c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                           % len(data) + data)
                else:
                    out, i = [b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n"], 0
                    while i < len(data):
                        k = random.randint(1, 40000)
                        out.append(b"%x\r\n%s\r\n" % (len(data[i:i + k]), data[i:i + k]))
                        i += k
                    out.append(b"0\r\n\r\n")
                    c.send(b"".join(out))
                self._upload_done(c, data)
            return 3
        finally:
            c.close()

    def upload_too_large(self):
        c = Conn(self.s["upload"].port)
        try:
            if random.random() < 0.5:
                c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                       % (UPLOAD_MAX + 1))
            else:
                c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       b"Transfer-Encoding: chunked\r\n\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, self.blob[:65536])
                for _ in range(UPLOAD_MAX // 65536 + 1):
                    c.send(chunk)
                c.send(b"0\r\n\r\n")
            status, _, _, _ = c.response()
            expect(status == 413, "an upload over the limit got %d, want 413" % status)
            c.expect_eof()
            return 0, 1
        finally:
            c.close()

    def upload_slow(self):
        c = Conn(self.s["upload"].port)
        try:
            data = self._piece(32 * 1024)
            c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n"
                   % len(data))
            for i in range(0, len(data), 4096):
                c.send(data[i:i + 4096])
                time.sleep(0.1)
            self._upload_done(c, data)
            return 1
        finally:
            c.close()

    def upload_reset(self):
        c = Conn(self.s["upload"].port)
        n = random.randint(64 * 1024, UPLOAD_MAX)
        c.send(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % n)
        c.send(self.blob[:random.randint(0, n - 1)])
        time.sleep(random.random() * 0.05)
        reset(c.s)
        return 0, 1


# The Python load generators: (name, Clients method, threads, pause between iterations in s).
GENERATORS = [
    ("keepalive", "keepalive", 1, 0.05),
    ("newconn", "newconn", 1, 0.01),
    ("pipeline", "pipeline", 1, 0.05),
    ("slow_writer", "slow_writer", 1, 0.2),
    ("slow_reader", "slow_reader", 1, 1.0),
    ("idle", "idle", 1, 0.5),
    ("resets", "resets", 1, 0.02),
    ("tls_keepalive", "tls_keepalive", 1, 0.1),
    ("tls_new", "tls_new", 1, 0.02),
    ("tls_resets", "tls_resets", 1, 0.05),
    ("sse", "sse", 4, 0.1),
    ("sse_page", "sse_page", 1, 0.2),
    ("upload", "upload", 1, 0.05),
    ("upload_too_large", "upload_too_large", 1, 0.5),
    ("upload_slow", "upload_slow", 1, 0.5),
    ("upload_reset", "upload_reset", 1, 0.1),
]


class Tally:
    def __init__(self, name):
        self.name = name
        self.ok = self.expected = self.failed = self.iterations = 0
        self.errors = []  # the first few unexpected failures
        self.lock = threading.Lock()

    def add(self, ok=0, expected=0):
        with self.lock:
            self.iterations += 1
            self.ok += ok
            self.expected += expected

    def fail(self, msg):
        with self.lock:
            self.iterations += 1
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(msg)


def run_generator(fn, tally, pause, stop):
    while not stop.is_set():
        try:
            r = fn()
            ok, exp = r if isinstance(r, tuple) else (r, 0)
            tally.add(ok, exp)
        except Exception as e:  # noqa: BLE001 - every failure is counted and shown
            if stop.is_set() and isinstance(e, (OSError, EOFError)):
                break  # cut short by the end of the run: not the server's doing
            tally.fail("%.1f s: %s: %s" % (time.monotonic() - T0, type(e).__name__, e))
        stop.wait(pause * random.uniform(0.5, 1.5))


WRK_TOTAL_RE = re.compile(r"(\d+) requests in")
WRK_SOCK_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)")


WRK_SCRIPT = None  # PIPELINE_LUA's file, in the run's temporary directory

# The server a wrk burst is loading now (None between bursts); the sampler
# records it with each sample.
WRK_ON = {"server": None}


# The pipelined wrk bursts' script: `depth` requests per write.  Not
# bench/pipeline.lua: its done() rebuilds percentiles with wrk's
# stats_value_at, a scan of the whole latency range per distinct value, and
# after a run with a few slow outliers it was seen spinning for over 30 s.
PIPELINE_LUA = """
local batch
init = function(args)
  local r = {}
  for i = 1, tonumber(args[1]) or 16 do
    r[i] = wrk.format()
  end
  batch = table.concat(r)
end
request = function()
  return batch
end
"""


def wrk_targets(servers):
    """(server, URL, extra arguments) of each kind of wrk burst."""
    return [("hello", "http://127.0.0.1:%d/plaintext" % servers["hello"].port, []),
               ("hello", "http://127.0.0.1:%d/json" % servers["hello"].port, []),
               ("hello", "http://127.0.0.1:%d/plaintext" % servers["hello"].port,
                ["-s", WRK_SCRIPT]),
               ("hello-tls", "https://127.0.0.1:%d/plaintext" % servers["hello-tls"].port, [])]


def wrk(url, extra, conns, seconds):
    """Runs one wrk burst: (requests, socket errors, non-2xx, output), or a
    string that says why there is no summary."""
    cmd = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds, "--timeout", "5s", *extra, url]
    if extra:
        cmd += ["--", "16"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired as e:
        return "still running %d s after its -d%ds, killed: %s" % (
            seconds + 30, seconds, " ".join(str(e.stdout or "").split())[-200:])
    out = r.stdout
    m = WRK_TOTAL_RE.search(out)
    if not m:
        return "exit %d, no summary: %s" % (r.returncode,
                                            " ".join((out + r.stderr).split())[-200:])
    sock = WRK_SOCK_RE.search(out)
    errs = sum(int(x) for x in sock.groups()) if sock else 0
    non2xx = WRK_NON2XX_RE.search(out)
    return int(m.group(1)), errs, int(non2xx.group(1)) if non2xx else 0, out


def run_wrk(servers, tally, conns, burst, stop, end):
    """wrk bursts in turn over four targets, each followed by a pause as long."""
    targets = wrk_targets(servers)
    i = 0
    while not stop.is_set():
        left = end - time.monotonic()
        d = int(min(burst, left - 1))
        if d < 1:
            break
        target, url, extra = targets[i % len(targets)]
        i += 1
        WRK_ON["server"] = target
        try:
            r = wrk(url, extra, conns, d)
        finally:
            WRK_ON["server"] = None
        if isinstance(r, str):
            tally.fail("%.1f s: wrk %s%s: %s" % (time.monotonic() - T0, url,
                                                 " pipelined" if extra else "", r))
            continue
        requests, errs, non2xx, out = r
        tally.add(requests - non2xx)
        if errs or non2xx:
            tally.fail("%.1f s: wrk %s%s (%d s): %d socket errors, %d non-2xx: %s"
                       % (time.monotonic() - T0, url, " pipelined" if extra else "", d, errs,
                          non2xx,
                          " ".join(out.split())[-160:]))
        stop.wait(burst)


# ---- samples and verdicts -----------------------------------------------------------------

def fit(ts, ys, ws):
    """Least squares y = a + b*t + c*w, w the 0/1 wrk-burst indicator (left
    out when every sample has the same w): (b, standard error of b)."""
    n = len(ts)
    mt, my, mw = sum(ts) / n, sum(ys) / n, sum(ws) / n
    T = [t - mt for t in ts]
    Y = [y - my for y in ys]
    W = [w - mw for w in ws]
    stt = sum(x * x for x in T)
    sww = sum(x * x for x in W)
    stw = sum(x * z for x, z in zip(T, W))
    sty = sum(x * y for x, y in zip(T, Y))
    swy = sum(x * y for x, y in zip(W, Y))
    k = 3 if min(sum(ws), n - sum(ws)) >= 3 else 2  # parameters fitted
    if k == 2:
        sww = stw = swy = 0.0
    det = stt * sww - stw * stw if k == 3 else stt
    if n <= k or det <= 0:
        return 0.0, float("inf")
    if k == 3:
        b = (sww * sty - stw * swy) / det
        c = (stt * swy - stw * sty) / det
        var_factor = sww / det
    else:
        b, c, var_factor = sty / stt, 0.0, 1 / stt
    ssr = sum((y - b * t - c * w) ** 2 for t, y, w in zip(T, Y, W))
    return b, math.sqrt(ssr / (n - k) * var_factor)


def judge(samples, warmup, tol):
    """The verdict on one series of (t, value, wrk burst on, burst state
    unchanged during the sample) samples: a dict of the report's figures."""
    pts = [(t, v, w) for t, v, w, stable in samples if t >= warmup and v is not None and stable]
    allv = [v for _, v, _, _ in samples if v is not None]
    r = {"n": len(pts), "first": allv[0] if allv else None, "last": allv[-1] if allv else None}
    if len(pts) < 10:
        r.update(verdict="FAIL (fewer than 10 samples after the warm-up)")
        return r
    ts, ys, ws = zip(*pts)
    b, se = fit(ts, ys, [1.0 if w else 0.0 for w in ws])
    window = ts[-1] - ts[0]
    growth, noise = b * window, 3 * se * window
    r.update(min=min(ys), max=max(ys), slope_min=b * 60, growth=growth, noise=noise, tol=tol)
    r["verdict"] = "FAIL" if growth > tol and growth > noise else "ok"
    return r


def fmt(v, digits=0):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.*f" % (digits, v)
    return str(v)


# ---- the run ------------------------------------------------------------------------------

T0 = time.monotonic()


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build directory with examples/{hello,sse,upload} (default: build)")
    ap.add_argument("--seconds", type=float, default=1800, help="length of the load (1800)")
    ap.add_argument("--warmup", type=float, help="seconds not judged (20%% of the run, >= 10)")
    ap.add_argument("--interval", type=float, help="seconds between samples (seconds/100, 1..5)")
    ap.add_argument("--csv", help="write the samples to this CSV file")
    ap.add_argument("--rss-tol-kib", type=float, default=2048,
                    help="VmRSS growth tolerated over the judged window (2048 KiB)")
    ap.add_argument("--count-tol", type=float, default=8,
                    help="fds/tasks/connections growth tolerated over the window (8)")
    ap.add_argument("--no-wrk", action="store_true", help="no wrk bursts")
    ap.add_argument("--wrk-conns", type=int, default=16, help="wrk connections (16)")
    ap.add_argument("--wrk-burst", type=int, default=5,
                    help="seconds per wrk burst, each followed by a pause as long (5)")
    a = ap.parse_args()
    if a.warmup is None:
        a.warmup = max(10.0, 0.2 * a.seconds)
    if a.interval is None:
        a.interval = min(5.0, max(1.0, a.seconds / 100))
    if a.interval <= 0 or a.seconds - a.warmup < 10 * a.interval:
        ap.error("--seconds must leave at least 10 samples after the warm-up "
                 "(seconds %.0f, warm-up %.0f, interval %.1f)" % (a.seconds, a.warmup, a.interval))
    return a


def quiet_check(servers, baseline, deadline_s=20):
    """Polls until every server is back at its baseline (fds, tasks,
    connections); returns {name: (fds, tasks, conns)} as last seen and
    whether all came back."""
    deadline = time.monotonic() + deadline_s
    while True:
        now = {n: s.sample()[1:] for n, s in servers.items()}
        if all(now[n] == baseline[n] for n in servers) or time.monotonic() > deadline:
            return now, all(now[n] == baseline[n] for n in servers)
        time.sleep(0.5)


def prime(cl, servers, wrk_conns):
    """One iteration of each kind of client and a 1 s wrk burst of each kind
    (if wrk is used), so that what a server opens lazily is in the baseline
    and the first burst of each kind (16 TLS connections' buffers at once,
    say) has set its high-water mark before the judged window."""
    for fn in (cl.keepalive, cl.newconn, cl.pipeline, cl.tls_keepalive, cl.tls_new, cl.sse,
               cl.sse_page, cl.upload):
        fn()
    for _, url, extra in wrk_targets(servers) if wrk_conns else ():
        r = wrk(url, extra, wrk_conns, 1)
        if isinstance(r, str) or r[1] or r[2]:
            raise RuntimeError("priming: wrk %s failed: %s" % (url, r if isinstance(r, str)
                                                                 else r[3]))


def main():
    global T0, WRK_SCRIPT
    a = parse_args()
    bins = {n: os.path.join(a.build, "examples", n, n) for n in ("hello", "sse", "upload")}
    for b in bins.values():
        if not os.access(b, os.X_OK):
            print("soak: %s not found; build first: cmake -S . -B build "
                  "-DCMAKE_BUILD_TYPE=Release && cmake --build build -j2" % b, file=sys.stderr)
            return 2
    use_wrk = not a.no_wrk and shutil.which("wrk") is not None
    harness.raise_fd_limit()
    tmp = tempfile.mkdtemp(prefix="corio-soak.")
    upload_dir = os.path.join(tmp, "uploads")
    os.mkdir(upload_dir)
    servers = {}
    failures = []
    try:
        cert, key = harness.make_cert(tmp, "soak")
        WRK_SCRIPT = os.path.join(tmp, "pipeline.lua")
        with open(WRK_SCRIPT, "w") as f:
            f.write(PIPELINE_LUA)
        servers["hello"] = Server("hello", bins["hello"])
        servers["hello-tls"] = Server("hello-tls", bins["hello"],
                                      ["--tls-cert", cert, "--tls-key", key])
        servers["sse"] = Server("sse", bins["sse"])
        servers["upload"] = Server("upload", bins["upload"],
                                   env={"UPLOAD_DIR": upload_dir, "UPLOAD_MAX": str(UPLOAD_MAX)})
        for n, s in servers.items():
            print("soak: %-9s pid %d port %d admin %d" % (n, s.pid, s.port, s.admin), flush=True)
        cl = Clients(servers, cert, upload_dir)
        prime(cl, servers, a.wrk_conns if use_wrk else 0)
        time.sleep(1.5)  # the primed SSE stream notices its client left at its next event
        baseline = {}
        for n, s in servers.items():
            prev = None
            for _ in range(20):  # the same figures twice in a row
                cur = s.sample()[1:]
                if cur == prev and None not in cur:
                    break
                prev = cur
                time.sleep(0.5)
            baseline[n] = cur
        print("soak: baseline (fds, tasks, conns): %s" % baseline, flush=True)
        print("soak: %.0f s of load, warm-up %.0f s, a sample every %.1f s, wrk %s"
              % (a.seconds, a.warmup, a.interval,
                 "-c%d bursts of %d s" % (a.wrk_conns, a.wrk_burst) if use_wrk else "off"),
              flush=True)

        stop = threading.Event()
        T0 = time.monotonic()
        end = T0 + a.seconds
        tallies, threads = [], []
        for name, meth, nthreads, pause in GENERATORS:
            t = Tally(name)
            tallies.append(t)
            for _ in range(nthreads):
                threads.append(threading.Thread(target=run_generator, daemon=True,
                                                args=(getattr(cl, meth), t, pause, stop)))
        if use_wrk:
            t = Tally("wrk")
            tallies.append(t)
            threads.append(threading.Thread(target=run_wrk, daemon=True, args=(
                servers, t, a.wrk_conns, a.wrk_burst, stop, end)))
        for th in threads:
            th.start()

        samples = {n: {k: [] for k in SERIES} for n in servers}
        out = open(a.csv, "w", newline="") if a.csv else None
        writer = csv.writer(out) if out else None
        if writer:
            writer.writerow(["t_s", "server", *SERIES, "wrk", "phase"])
        died = None
        next_sample, next_progress = T0, T0 + 60
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if now < next_sample:
                time.sleep(min(next_sample - now, end - now))
                continue
            t = now - T0
            next_sample += a.interval
            wrk_before = WRK_ON["server"]
            vals = {}
            for n, s in servers.items():
                if not s.alive():
                    died = n
                    break
                vals[n] = s.sample()
            wrk_after = WRK_ON["server"]
            for n, v in vals.items():
                w, stable = wrk_before == n, wrk_before == wrk_after
                for k, x in zip(SERIES, v):
                    samples[n][k].append((t, x, w, stable))
                if writer:
                    writer.writerow(["%.1f" % t, n, *("" if x is None else x for x in v),
                                     int(w) if stable else "",
                                     "warmup" if t < a.warmup else "judged"])
            if out:
                out.flush()
            if died:
                break
            if now >= next_progress:
                next_progress += 60
                print("soak: %4.0f s  requests %d  expected failures %d  unexpected %d  %s"
                      % (t, sum(x.ok for x in tallies), sum(x.expected for x in tallies),
                         sum(x.failed for x in tallies),
                         " ".join("%s=%sKiB/%sfd" % (n, samples[n]["rss_kib"][-1][1],
                                                     samples[n]["fds"][-1][1])
                                  for n in servers)), flush=True)
        stop.set()
        for th in threads:
            th.join(40)
        if out:
            out.close()
        if any(th.is_alive() for th in threads):
            failures.append("a load generator did not stop within 40 s")
        if died:
            s = servers[died]
            failures.append("%s died (exit %s) at %.0f s:\n%s"
                            % (died, s.proc.returncode, time.monotonic() - T0, s.tail()))

        # ---- report ----
        print("\nload (requests checked; expected: failures caused on purpose: resets, 408, 413)")
        print("  %-17s %10s %10s %9s %10s" % ("generator", "iterations", "requests",
                                               "expected", "unexpected"))
        for x in tallies:
            print("  %-17s %10d %10d %9d %10d" % (x.name, x.iterations, x.ok, x.expected,
                                                   x.failed))
            for e in x.errors:
                print("      %s" % e)
            if x.failed:
                failures.append("%s: %d unexpected failures" % (x.name, x.failed))
        print("  %-17s %10s %10d %9d %10d" % ("total", "", sum(x.ok for x in tallies),
                                               sum(x.expected for x in tallies),
                                               sum(x.failed for x in tallies)))

        print("\nseries (judged after %.0f s: growth = slope x window, FAIL if > tolerance "
              "and > 3 se)" % a.warmup)
        print("  %-9s %-7s %4s %8s %8s %8s %8s %10s %9s %8s %7s  %s"
              % ("server", "series", "n", "first", "last", "min", "max", "slope/min",
                 "growth", "3 se", "tol", "verdict"))
        for n in servers:
            for k in SERIES:
                tol = a.rss_tol_kib if k == "rss_kib" else a.count_tol
                r = judge(samples[n][k], a.warmup, tol)
                print("  %-9s %-7s %4d %8s %8s %8s %8s %10s %9s %8s %7s  %s"
                      % (n, k, r["n"], fmt(r["first"]), fmt(r["last"]), fmt(r.get("min")),
                         fmt(r.get("max")), fmt(r.get("slope_min"), 2), fmt(r.get("growth"), 1),
                         fmt(r.get("noise"), 1), fmt(r.get("tol")), r["verdict"]))
                if r["verdict"] != "ok":
                    failures.append("%s %s: %s" % (n, k, r["verdict"]))
                missing = sum(1 for _, v, _, _ in samples[n][k] if v is None)
                if missing > max(2, len(samples[n][k]) // 20):
                    failures.append("%s %s: %d samples could not be read" % (n, k, missing))

        if not died:
            now, ok = quiet_check(servers, baseline)
            print("\nafter the load, quiet (fds, tasks, conns): want the baseline")
            for n in servers:
                verdict = "ok" if now[n] == baseline[n] else "FAIL"
                print("  %-9s baseline %-16s now %-16s %s" % (n, baseline[n], now[n], verdict))
                if verdict != "ok":
                    failures.append("%s: %s after the load, %s before" % (n, now[n], baseline[n]))
            left = sorted(os.listdir(upload_dir))
            print("  upload dir: %d files left" % len(left))
            if left:
                failures.append("%d files left in the upload directory: %s"
                                % (len(left), ", ".join(left[:5])))

        elapsed = time.monotonic() - T0
        me = os.times()
        print("\nCPU over %.0f s: soak.py %.0f s, wrk and other children %.0f s"
              % (elapsed, me.user + me.system, me.children_user + me.children_system))
        print("\nservers (CPU s; exit status after SIGTERM; log lines by level; "
              "WARN/ERROR messages, numbers as N)")
        for n, s in servers.items():
            cpu = s.cpu_s() if s.alive() else float("nan")
            rc = s.terminate() if s.alive() else s.proc.returncode
            print("  %-9s cpu %5.0f s  exit %-4s %s"
                  % (n, cpu, rc, " ".join("%s=%d" % kv for kv in sorted(s.levels.items()))))
            for msg, count in sorted(s.messages.items(), key=lambda kv: -kv[1])[:6]:
                print("      %6d  %s" % (count, msg[:110]))
            if rc != 0:
                failures.append("%s exited %s after SIGTERM:\n%s" % (n, rc, s.tail()))
            if s.reports:
                failures.append("%s printed a sanitizer report:\n%s"
                                % (n, "\n".join(s.reports[:60])))
        if a.csv:
            print("\nsamples written to %s" % a.csv)
    except Exception:
        for s in servers.values():
            s.kill()
        raise
    finally:
        for s in servers.values():
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("\nsoak: FAIL\n  " + "\n  ".join(failures), flush=True)
        return 1
    print("\nsoak: PASS (%.0f s)" % (time.monotonic() - T0), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
