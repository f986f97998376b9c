#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""File responses from pages not in the page cache (framework/http/file.c:
cold reads go to the thread pool), against examples/static.

    test_http_file_cold.py --static build/examples/static/static [-k NAME] [--wrap "valgrind ..."]

A temporary directory holds a 48 MiB random file, a 10 KiB one and a tiny
one.  Before each case the files it reads are evicted from the page cache
(fsync, posix_fadvise DONTNEED) and mincore must find them gone; where the
file system keeps them anyway (tmpfs) the case says so with a SKIP line and
still checks the bytes.  Cases: a whole cold download is byte-exact and a
second connection's small requests are answered while it runs (an ordering
check: at least one answer before the download's last byte, no timing); a
cold range at an odd offset; a cold small body (the arena path); a slow
reader of a cold file (the socket-full fallback); a client leaving mid-body;
and a SIGTERM with a 1 ms drain during cold downloads (the handler is
cancelled, perhaps while a pool read is in flight: the server must exit 0
with no sanitizer report).  Each runs against a plain server (sendfile) and a
TLS one (pread + stream writes; skipped without openssl).  Every wait has a
deadline.  Python standard library only; Linux.
"""
import argparse
import hashlib
import os
import shlex
import shutil
import socket
import ssl
import sys
import tempfile
import threading
import time

import harness
import pagecache
from harness import (HOST, MIB, check, kill_all, make_cert, pick, run_case, server_died,
                     stop_cleanly, summary)

BIG = 48 * MIB
SMALL = 10 * 1024

ARGS = None
CLIENT_TLS = None  # an ssl.SSLContext while the TLS server is under test

def evict(path):
    """Drops path's pages from the page cache; says SKIP if some stay."""
    left = pagecache.evict(path, tries=50)
    if left:
        print("    SKIP coldness: %d of %d bytes of %s stay cached; bytes still checked"
              % (left, os.path.getsize(path), os.path.basename(path)), flush=True)


class Tree:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="corio-cold-")
        self.root = os.path.join(self.base, "root")
        os.mkdir(self.root)
        self.data = {}
        for name, size in (("big.bin", BIG), ("small.bin", SMALL), ("tiny.txt", 0)):
            data = os.urandom(size) if size else b"tiny\n"
            with open(self.path(name), "wb") as f:
                f.write(data)
            self.data[name] = data
        self.big_sha = hashlib.sha256(self.data["big.bin"]).hexdigest()

    def path(self, name):
        return os.path.join(self.root, name)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


class Ctx:
    tree = None


def conn(port, rcvbuf=None):
    return harness.Conn(port, rcvbuf=rcvbuf, timeout=harness.DEADLINE, tls=CLIENT_TLS)


def get(c, target, extra=""):
    c.send(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (target, extra)).encode())


class Download(threading.Thread):
    """GET target on its own connection, read as fast as the socket allows
    (or `step` bytes every `pause` seconds), hashing the body; `head` is set
    once the head is in, `done` once the body is (or the read failed)."""

    def __init__(self, port, target, extra="", stop_after=None, rcvbuf=None, step=None,
                 pause=0.0):
        super().__init__(daemon=True)
        self.port, self.target, self.extra = port, target, extra
        self.stop_after, self.rcvbuf, self.step, self.pause = stop_after, rcvbuf, step, pause
        self.head = threading.Event()
        self.done = threading.Event()
        self.status = None
        self.length = None
        self.got = 0
        self.sha = hashlib.sha256()
        self.error = None

    def run(self):
        c = None
        try:
            c = conn(self.port, self.rcvbuf)
            get(c, self.target, self.extra)
            self.status, hdrs, _ = c.read_head()
            self.length = int(hdrs["content-length"])
            self.head.set()
            want = self.length if self.stop_after is None else min(self.stop_after, self.length)
            if c.buf:
                part = bytes(c.buf[:want])
                del c.buf[:want]
                self.sha.update(part)
                self.got += len(part)
            while self.got < want:
                d = c.s.recv(min(self.step or 1 << 20, want - self.got))
                if not d:
                    raise EOFError("closed after %d of %d bytes" % (self.got, want))
                self.sha.update(d)
                self.got += len(d)
                if self.pause:
                    time.sleep(self.pause)
        except Exception as e:  # noqa: BLE001 - the case reads it
            self.error = e
        finally:
            if c:
                c.close()
            self.head.set()
            self.done.set()

    def finish(self):
        check(self.done.wait(harness.DEADLINE * 3), "download of %s not done" % self.target)
        check(self.error is None, "download of %s: %s" % (self.target, self.error))


# ---- cases --------------------------------------------------------------------------------

def case_cold_download_small_requests_answered(t, port):
    """A whole cold file, byte-exact; small requests on another connection
    are answered before its last byte arrives.  Liveness, not latency: the
    old blocking sendfile also let them through now and then; how long they
    waited is bench/cold_file.py's to measure."""
    evict(t.tree.path("big.bin"))
    probe = conn(port)
    get(probe, "/tiny.txt")  # connected, the tiny file's dentry cached
    check(probe.response()[2] == b"tiny\n", "tiny.txt body")
    d = Download(port, "/big.bin")
    d.start()
    check(d.head.wait(harness.DEADLINE), "no head for big.bin")
    before_end = 0
    while not d.done.is_set():
        get(probe, "/tiny.txt")
        status, _, body, _ = probe.response()
        check(status == 200 and body == b"tiny\n", "tiny.txt: %d %r" % (status, body[:40]))
        if not d.done.is_set():
            before_end += 1
    d.finish()
    probe.close()
    check(d.status == 200 and d.length == BIG, "big.bin: %s, %s bytes" % (d.status, d.length))
    check(d.sha.hexdigest() == t.tree.big_sha, "big.bin: body differs")
    check(before_end >= 1, "no small request answered while the cold download ran")
    print("    %d small requests answered during the download" % before_end, flush=True)


def case_cold_range(t, port):
    """A range at an odd offset, spanning several MiB of a cold file."""
    evict(t.tree.path("big.bin"))
    first, last = 1234567, 1234567 + 5 * MIB + 4321
    c = conn(port)
    get(c, "/big.bin", "Range: bytes=%d-%d\r\n" % (first, last))
    status, hdrs, body, _ = c.response()
    c.close()
    check(status == 206, "status %d" % status)
    check(hdrs.get("content-range") == "bytes %d-%d/%d" % (first, last, BIG),
          "Content-Range %r" % hdrs.get("content-range"))
    check(body == t.tree.data["big.bin"][first:last + 1], "range body differs")


def case_cold_small_body(t, port):
    """A cold file small enough to leave with its head (read into the arena),
    twice on one connection."""
    c = conn(port)
    for _ in range(2):
        evict(t.tree.path("small.bin"))
        get(c, "/small.bin")
        status, hdrs, body, _ = c.response()
        check(status == 200 and body == t.tree.data["small.bin"],
              "small.bin: %d, %d bytes" % (status, len(body)))
    c.close()


def case_cold_slow_reader(t, port):
    """A reader slower than the disk: the socket fills, chunks go through the
    stream's queue, pool reads and sendfile mix.  8 MiB of the cold file."""
    evict(t.tree.path("big.bin"))
    n = 8 * MIB
    d = Download(port, "/big.bin", "Range: bytes=0-%d\r\n" % (n - 1), rcvbuf=64 * 1024,
                 step=256 * 1024, pause=0.002)
    d.start()
    d.finish()
    check(d.status == 206 and d.got == n, "%s, %d bytes" % (d.status, d.got))
    check(d.sha.hexdigest() == hashlib.sha256(t.tree.data["big.bin"][:n]).hexdigest(),
          "body differs")


def case_cold_client_leaves(t, port):
    """A client leaving a cold download after 1 MiB: the server goes on serving."""
    for _ in range(3):
        evict(t.tree.path("big.bin"))
        d = Download(port, "/big.bin", stop_after=MIB)
        d.start()
        d.finish()
    c = conn(port)
    get(c, "/tiny.txt")
    check(c.response()[2] == b"tiny\n", "tiny.txt after the clients left")
    c.close()


def case_cold_drain_cancels(t, port, mode_args):
    """SIGTERM with a 1 ms drain while cold downloads run: the handlers are
    cancelled (a pool read may be in flight) and the server exits 0 with no
    sanitizer report (its own server; the shared one is untouched)."""
    for _ in range(3):
        srv = start_server(t.tree.root, "--drain-timeout", "1ms", *mode_args)
        try:
            evict(t.tree.path("big.bin"))
            downloads = [Download(srv.port, "/big.bin") for _ in range(2)]
            for d in downloads:
                d.start()
            for d in downloads:
                check(d.head.wait(harness.DEADLINE), "no head for big.bin")
            srv.stop(harness.DEADLINE)
            for d in downloads:
                check(d.done.wait(harness.DEADLINE), "download still running after the exit")
        finally:
            srv.kill()


def start_server(root, *args):
    return harness.Server(ARGS.static, "--root", root, "--workers", "1", *args,
                          env_drop=("CORIO_", "STATIC_"), signal_group=True,
                          name=" ".join(["static", *args]).strip())


def main():
    global ARGS, CLIENT_TLS
    ap = argparse.ArgumentParser()
    ap.add_argument("--static", required=True, help="the examples/static binary")
    ap.add_argument("--wrap", default="", help='command prefix, e.g. "valgrind -q"')
    ap.add_argument("--slow", type=float, default=None, help="deadline factor (valgrind: 10)")
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ARGS = ap.parse_args()
    harness.use_wrap(shlex.split(ARGS.wrap), ARGS.slow)
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    t = Ctx()
    t.tree = Tree()
    modes = [("plain", ())]
    passed = failed = 0
    failed_names = []
    started = time.monotonic()
    try:
        try:
            cert = make_cert(t.tree.base, "127.0.0.1")
            modes.append(("tls", ("--tls-cert", cert[0], "--tls-key", cert[1])))
        except (OSError, harness.subprocess.SubprocessError):
            cert = None
            print("SKIP the TLS server: no openssl command", flush=True)
        for mode, args in modes:
            CLIENT_TLS = ssl.create_default_context(cafile=cert[0]) if mode == "tls" else None
            srv = start_server(t.tree.root, *args)
            for case in cases:
                name = "%s [%s]" % (case.__name__, mode)
                extra = (args,) if case is case_cold_drain_cancels else ()
                if run_case(name, case, t, srv.port, *extra):
                    passed += 1
                else:
                    failed += 1
                    failed_names.append(name)
                if server_died(srv, 40):
                    return 1
            if not stop_cleanly(srv, harness.DEADLINE, 80):
                failed += 1
                failed_names.append("stop [%s]" % mode)
    finally:
        kill_all()
        t.tree.remove()
    return summary(passed, failed, started, failed_names)


if __name__ == "__main__":
    sys.exit(main())
