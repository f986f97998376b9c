#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What a client can make a corio server log, and what TLS it is offered.

    test_client_logs.py --hello build/examples/hello/hello
                        --server build/tests/http_test_server [--rest build/examples/rest/rest]
                        [-k NAME]

Cases:
- at --log-level error, bad handshakes, a client that leaves mid-handshake, a
  garbage record after the handshake and a TLS 1.2 renegotiation attempt
  write nothing at all on stderr (they used to go through corio__report,
  whatever the level);
- at the default level, 1000 failed handshakes write a number of lines
  bounded by the rate limit (corio_log_peer: a burst, then a steady rate
  per second), and every handshake not logged is counted in a "N similar
  messages suppressed" line;
- control characters a client sends never reach the log raw: examples/rest's
  log middleware (the decoded path: "%0a" used to forge a line, "%1b[31m"
  to reach the terminal) and the "handler failed" line of corio_http_serve;
- an HTTP server run by corio_app_main offers ALPN "http/1.1": a client
  offering "h2,http/1.1" (Python's ssl and `openssl s_client`) gets it.

The TLS cases need the openssl command (certificate, s_client) and are
skipped without it.  Servers at --log-level error log no "listening" line,
so they are given their socket the systemd way (LISTEN_FDS, fd 3).  Every
wait has a deadline; no case depends on how fast the machine is.  Python
standard library only.
"""
import argparse
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import harness
from harness import (DEADLINE, HOST, CaseFailure, check, kill_all, make_cert, pick, run_case,
                     summary, wait_until)

ARGS = None
CERT = None  # (certificate, key) or None without openssl

# corio_log_peer's limits (include/corio/log.h)
PEER_BURST = 20
PEER_RATE = 10

HANDSHAKE_RE = r"tls: handshake with .* failed"
SUPPRESSED_RE = re.compile(r"(\d+) similar messages suppressed")


# ---- helpers ----------------------------------------------------------------------------------

class Activated:
    """A server given a listening socket on fd 3 (LISTEN_PID/LISTEN_FDS), so
    that it needs no "listening" line to be found; stderr read to the end
    once it has exited."""

    def __init__(self, binary, *args):
        self.ls = socket.socket()
        self.ls.bind((HOST, 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&%d'
                % self.ls.fileno(), binary, *args]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=harness.clean_env(),
                                     pass_fds=(self.ls.fileno(),), start_new_session=True)
        self.ls.close()  # the server has its own copy

    def stop(self):
        """SIGTERM; returns (exit code, everything written on stderr)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            err = self.proc.communicate(timeout=DEADLINE)[1]
        except subprocess.TimeoutExpired:
            self.kill()
            raise CaseFailure("the server did not exit within %.0f s of SIGTERM" % DEADLINE)
        return self.proc.returncode, err

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.communicate()


def client_ctx(alpn=None, tls12=False):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def read_to_eof(sock):
    """Reads until the server closes (it must, within the deadline)."""
    sock.settimeout(DEADLINE)
    while True:
        try:
            if not sock.recv(65536):
                return
        except ConnectionResetError:
            return
        except socket.timeout:
            raise CaseFailure("the server kept the connection open") from None


def bad_handshake(port):
    """Plain HTTP to the TLS port: the handshake fails; waits until the
    server has closed the connection (so it has logged, if it does)."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        read_to_eof(s)


def left_mid_handshake(port):
    """A ClientHello, then the client is gone before the handshake ends; no
    wait for the server (it notices the close)."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as s:
        out = ssl.MemoryBIO()
        obj = client_ctx().wrap_bio(ssl.MemoryBIO(), out)
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s.sendall(out.read())


def garbage_after_handshake(port):
    """A completed handshake (memory BIOs over a raw socket), then an
    application-data record whose bytes are garbage: the server must drop
    the connection."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as s:
        _, _, out = harness.handshake_over_bios(s, client_ctx())
        s.sendall(out.read())  # the client's Finished
        s.sendall(b"\x17\x03\x03\x00\x40" + bytes(range(64)))
        read_to_eof(s)


def renegotiation_attempt(port):
    """TLS 1.2 with `openssl s_client`: one request answered, then "R" (a
    renegotiation, which corio refuses); waits for s_client to end."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), "-tls1_2"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        p.stdin.write(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        p.stdin.flush()
        seen, deadline = b"", time.monotonic() + DEADLINE
        while b"Hello, World!" not in seen:
            left = deadline - time.monotonic()
            check(left > 0 and select.select([p.stdout], [], [], left)[0],
                  "no answer through s_client: %r" % seen[-300:])
            chunk = os.read(p.stdout.fileno(), 65536)
            check(chunk, "s_client ended early: %r" % seen[-300:])
            seen += chunk
        p.stdin.write(b"R\n")
        p.stdin.flush()
        rest = p.communicate(timeout=DEADLINE)[0]
        check(b"RENEGOTIATING" in rest, "s_client did not renegotiate: %r" % rest[-300:])
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def tls_get(port, alpn=None):
    """GET /plaintext over TLS: (negotiated ALPN protocol, status line)."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as raw:
        with client_ctx(alpn).wrap_socket(raw) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            return s.selected_alpn_protocol(), data.split(b"\r\n", 1)[0]


def raw_request(port, target):
    """One request with a raw target: the status code, after the close."""
    with socket.create_connection((HOST, port), timeout=DEADLINE) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        s.settimeout(DEADLINE)
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", data)
    check(m, "not an HTTP response: %r" % data[:200])
    return int(m.group(1))


def raw_lines_clean(srv):
    """No stderr line holds a control character (the harness splits on
    newlines: a forged line is a line of its own, checked by the callers)."""
    with srv.cond:
        bad = [ln for ln in srv.lines if re.search(r"[\x00-\x1f\x7f]", ln)]
    check(not bad, "control characters logged raw: %r" % bad[:3])


def need_tls():
    if not CERT:
        print("SKIP (no openssl command)", flush=True)
        return False
    return True


# ---- cases ------------------------------------------------------------------------------------

def case_tls_client_errors_silent_at_log_level_error():
    if not need_tls():
        return
    srv = Activated(ARGS.hello, "--log-level", "error", "--tls-cert", CERT[0], "--tls-key",
                    CERT[1])
    try:
        for _ in range(5):
            bad_handshake(srv.port)
        left_mid_handshake(srv.port)
        garbage_after_handshake(srv.port)
        renegotiation_attempt(srv.port)
        _, status = tls_get(srv.port)  # still serving: everything above was handled
        check(status == b"HTTP/1.1 200 OK", "after the bad clients: %r" % status)
        rc, err = srv.stop()
    finally:
        srv.kill()
    check(rc == 0, "exit code %s" % rc)
    check(err == b"", "stderr at --log-level error:\n%s" % err.decode(errors="replace")[:2000])


def case_failed_handshakes_rate_limited():
    if not need_tls():
        return
    srv = harness.Server(ARGS.hello, "--tls-cert", CERT[0], "--tls-key", CERT[1])
    try:
        start = srv.mark()
        t0 = time.monotonic()
        flood = 1000
        for _ in range(flood):
            bad_handshake(srv.port)
        # Each server logged before closing; the reader thread may lag, never lead.
        bound = PEER_BURST + PEER_RATE * (int(time.monotonic() - t0) + 1) + 1
        seen = srv.count_log(HANDSHAKE_RE, start)
        check(seen <= bound, "%d handshake lines for %d failed handshakes (bound %d)"
              % (seen, flood, bound))
        # The bucket refills: a failure after the flood is logged, right after the
        # count of those that were not since the previous count.
        sent = [flood]

        def accounted_after_flood():
            with srv.cond:
                n = accounted(srv.lines[start:])
            if n > flood:
                return n
            bad_handshake(srv.port)
            sent[0] += 1
            return None
        wait_until(accounted_after_flood, DEADLINE,
                   "a 'similar messages suppressed' line after the flood", interval=0.05)
        elapsed = time.monotonic() - t0
        check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
        lines = srv.lines[start:]
    finally:
        srv.kill()
    logged = sum(1 for ln in lines if re.search(HANDSHAKE_RE, ln))
    bound = PEER_BURST + PEER_RATE * (int(elapsed) + 1) + 1
    check(logged <= bound, "%d handshake lines in %.1f s (bound %d)" % (logged, elapsed, bound))
    n = accounted(lines)
    check(flood < n <= sent[0], "%d failures accounted for, %d sent" % (n, sent[0]))


def accounted(lines):
    """The handshake failures that lines account for, up to the one logged
    right after the last "suppressed" line: those logged before it, those it
    counts, and itself; 0 without such a pair.  Failures are handled one at
    a time (each client waits for the close), so this is also the position
    of that last failure in the sequence sent."""
    logged, counted, total = 0, 0, 0
    for i, ln in enumerate(lines):
        m = SUPPRESSED_RE.search(ln)
        if m:
            counted += int(m.group(1))
            if i + 1 < len(lines) and re.search(HANDSHAKE_RE, lines[i + 1]):
                total = logged + counted + 1
        elif re.search(HANDSHAKE_RE, ln):
            logged += 1
    return total


def case_alpn_http11_offered_by_http_servers():
    if not need_tls():
        return
    srv = harness.Server(ARGS.hello, "--tls-cert", CERT[0], "--tls-key", CERT[1])
    try:
        proto, status = tls_get(srv.port, ["h2", "http/1.1"])
        check(proto == "http/1.1" and status == b"HTTP/1.1 200 OK",
              "ALPN %r, %r" % (proto, status))
        proto, status = tls_get(srv.port)  # a client without ALPN still served
        check(proto is None and status == b"HTTP/1.1 200 OK", "no ALPN: %r, %r" % (proto, status))
        out = subprocess.run(["openssl", "s_client", "-connect", "%s:%d" % (HOST, srv.port),
                              "-alpn", "h2,http/1.1"], input=b"", capture_output=True,
                             timeout=DEADLINE).stdout.decode(errors="replace")
        check("ALPN protocol: http/1.1" in out,
              "s_client -alpn h2,http/1.1: %r" % [ln for ln in out.splitlines()
                                                  if "ALPN" in ln or "alpn" in ln])
        check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
    finally:
        srv.kill()


def case_rest_log_escapes_the_decoded_path():
    if not ARGS.rest:
        print("SKIP (no --rest: built without jansson)", flush=True)
        return
    srv = harness.Server(ARGS.rest)
    try:
        start = srv.mark()
        st = raw_request(srv.port, b"/items%0aFORGED%20line%1b[31m%22q%5c")
        check(st == 404, "status %d" % st)
        line = srv.wait_log(r"GET /items", start=start).string
        check(re.search(r'INFO  \[\d+\] GET /items\\x0aFORGED line\\x1b\[31m\\x22q\\x5c - \d+us req=[0-9a-f]{32}$',
                        line), "the log line: %r" % line)
        with srv.cond:
            forged = [ln for ln in srv.lines if ln.startswith("FORGED")]
        check(not forged, "a forged line: %r" % forged)
        raw_lines_clean(srv)
        check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
    finally:
        srv.kill()


def case_handler_failure_line_escapes_the_target():
    srv = harness.Server(ARGS.server, env={"HTTP_TEST_ACCESS_LOG": "1"})
    try:
        start = srv.mark()
        # A tab in the target: llhttp's lenient mode lets it through to the handler
        # (whose failure is logged with the target); strict mode refuses it (400).
        st = raw_request(srv.port, b"/fail?a\tb")
        check(st in (500, 400), "status %d" % st)
        if st == 500:
            line = srv.wait_log(r'handler for "GET /fail', start=start).string
            check('handler for "GET /fail?a\\x09b" failed' in line, "the log line: %r" % line)
            srv.wait_log(r'"GET /fail\?a\\x09b HTTP/1\.1" 500 ', start=start)  # access log
        st = raw_request(srv.port, b"/fail?%0aFORGED%1b")  # encoded: logged as sent
        check(st == 500, "status %d" % st)
        srv.wait_log(r'"GET /fail\?%0aFORGED%1b HTTP/1\.1" 500 ', start=start)
        raw_lines_clean(srv)
        check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
    finally:
        srv.kill()


# ---- main -------------------------------------------------------------------------------------

def main():
    global ARGS, CERT
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True, help="the examples/hello binary")
    ap.add_argument("--server", required=True, help="the tests/http_test_server binary")
    ap.add_argument("--rest", default="", help="the examples/rest binary (optional)")
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ARGS = ap.parse_args()
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    tmp = tempfile.mkdtemp(prefix="corio-logs-")
    started = time.monotonic()
    failed = []
    try:
        try:
            CERT = make_cert(tmp, "logs") if shutil.which("openssl") else None
        except (OSError, subprocess.SubprocessError):
            CERT = None
        for case in cases:
            if not run_case(case.__name__, case):
                failed.append(case.__name__)
    finally:
        kill_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return summary(len(cases) - len(failed), len(failed), started, failed)


if __name__ == "__main__":
    sys.exit(main())
