# SPDX-License-Identifier: MIT
"""Shared harness of the Python integration tests (test_http.py,
test_http_static.py, test_http_examples.py, test_runner.py).

It offers: CaseFailure, check() and wait_until() (every wait a poll with a
deadline); Server, a server binary started with --port 0 in its own process
group (environment from clean_env(), an optional command prefix), its port
read from its "listening on" log line and its stderr lines collected by a
thread (wait_log, count_log, mark, tail, rss_kib, sanitized, terminate,
wait_exit, stop, kill), and LIVE, the servers not yet stopped; Conn, a raw
HTTP/1.1 client connection (plain or TLS) that reads whole responses;
make_cert() for a self-signed certificate; and the pieces of a main loop:
pick() (-k), run_case() (prints PASS or FAIL), server_died(),
stop_cleanly(), kill_all(), raise_fd_limit() and summary().  Python standard
library only.

Sanitizer and valgrind reports.  Whatever a server prints that looks like one
(REPORT_RE: AddressSanitizer, LeakSanitizer, UBSan's "runtime error",
valgrind's error lines) fails the run: run_case() fails the case during
which a live server printed one or a server stopped with one (a worker that
aborted and was restarted included); stop_cleanly() and Server.stop() fail
for the server they stop; summary() fails the run for any report not
claimed yet (servers killed after their case, kill_all()).  LeakSanitizer
and valgrind's leak check run only at a normal exit: stop a server with
stop() or stop_cleanly() (SIGTERM, its exit awaited, exit status 0), not
kill(), where leaks matter.  Under a command prefix (WRAP, a script's
--wrap "valgrind ...") servers are slow: deadlines scale by SLOW, and
skip_under_wrap() skips, visibly, what cannot run there (load, timing).
"""
import os
import re
import resource
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import traceback

HOST = "127.0.0.1"
DEADLINE = 10.0
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
MIB = 1024 * 1024

# A line of a sanitizer's or valgrind's error report.  Valgrind's leak lines
# count only for "definitely lost" (what --errors-for-leak-kinds=definite
# makes an error).
REPORT_RE = re.compile(
    r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer|UndefinedBehaviorSanitizer"
    r"|: runtime error: "
    r"|^==\d+== (Invalid (read|write|free)|Conditional jump|Use of uninitialised"
    r"|Syscall param|Mismatched free|Source and destination overlap|Jump to the invalid"
    r"|Process terminating|Stack overflow|.*definitely lost in loss record"
    r"|ERROR SUMMARY: [1-9])")

# Reports found and not yet claimed by a case: (Server, [lines]).
PENDING_REPORTS = []

# A command prefix for servers (a script's --wrap, e.g. valgrind) and the
# factor it slows them by; set by use_wrap().
WRAP = ()
SLOW = 1.0


def use_wrap(wrap, slow=None):
    """Sets the command prefix of servers started from now on (a string,
    split like a shell would, or a sequence) and the deadline factor (10
    under a prefix unless given)."""
    global WRAP, SLOW, DEADLINE
    import shlex
    WRAP = tuple(shlex.split(wrap) if isinstance(wrap, str) else wrap)
    SLOW = slow if slow else (10.0 if WRAP else 1.0)
    DEADLINE = 10.0 * SLOW


def parse_args(ap):
    """Adds the options every script shares to the argparse parser ap (-k,
    --wrap, --slow), parses the command line, applies --wrap/--slow
    (use_wrap) and returns the arguments."""
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ap.add_argument("--wrap", default="", help='servers\' command prefix, e.g. "valgrind -q"')
    ap.add_argument("--slow", type=float, help="deadline factor (10 under --wrap)")
    args = ap.parse_args()
    use_wrap(args.wrap, args.slow)
    return args


def skip_under_wrap(what):
    """Under a command prefix, prints a SKIP line for `what` and returns
    True (the case then returns at once: load or timing means nothing under
    valgrind)."""
    if WRAP:
        print("    SKIP under %s: %s" % (os.path.basename(WRAP[0]), what), flush=True)
        return True
    return False


class CaseFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise CaseFailure(msg)


def wait_until(pred, timeout, what, interval=0.01):
    """Polls pred() until it returns a true value (returned) or the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise CaseFailure("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- servers ------------------------------------------------------------------------------

LIVE = []  # servers not yet stopped


def clean_env(env=None, drop=("CORIO_",)):
    """os.environ without the variables whose names start with a prefix in
    drop (they would configure the server), plus env."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop))}
    full_env.update(env or {})
    return full_env


class Server:
    """A server binary started as `wrap... binary --port 0 args...` in its own
    process group; stderr lines collected by a thread so that cases can wait
    for what the server logs.  Also a context manager (kill() on exit).

    env_drop: prefixes of the variables not passed on; wrap: a command prefix
    (valgrind, a shell that sets limits; WRAP when not given); start_timeout:
    how long to wait for the listening line; signal_group: terminate()
    signals the whole group (a tracer in wrap passes it on) rather than the
    process.  Its output is searched for sanitizer reports (REPORT_RE) when
    it stops and whenever take_reports() asks."""

    def __init__(self, binary, *args, env=None, env_drop=("CORIO_",), wrap=None,
                 start_timeout=None, signal_group=False, name=None):
        self.binary = binary
        self.name = name or " ".join([os.path.basename(binary), *args])
        self.signal_group = signal_group
        self.lines = []
        self.scanned = 0  # lines searched for reports so far
        self.cond = threading.Condition()
        wrap = WRAP if wrap is None else wrap
        if start_timeout is None:
            start_timeout = DEADLINE
        self.proc = subprocess.Popen([*wrap, binary, "--port", "0", *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=clean_env(env, env_drop),
                                     start_new_session=True)
        self.pid = self.proc.pid
        LIVE.append(self)
        self.reader = threading.Thread(target=self._read_stderr, daemon=True)
        self.reader.start()
        try:
            self.port = int(self.wait_log(LISTEN_RE, start_timeout).group(1))
        except CaseFailure as e:
            self.kill()
            raise CaseFailure("%s: %s:\n%s" % (self.name, e, self.tail())) from None
        except BaseException:
            self.kill()
            raise

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()

    def mark(self):
        """The number of lines logged so far: a `start` for wait_log and count_log."""
        with self.cond:
            return len(self.lines)

    def wait_log(self, pattern, timeout=None, start=0, count=1):
        """Waits until `count` stderr lines from index `start` match; returns
        the last match."""
        if timeout is None:
            timeout = DEADLINE
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        found, i = 0, start
        with self.cond:
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        found += 1
                        if found >= count:
                            return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaseFailure("%d log line(s) matching %r within %.1f s, want %d"
                                      % (found, rx.pattern, timeout, count))
                if self.proc.poll() is not None and not self.reader.is_alive():
                    raise CaseFailure("server exited (%s) before logging %r"
                                      % (self.proc.returncode, rx.pattern))
                self.cond.wait(min(left, 0.05))

    def count_log(self, pattern, start=0):
        rx = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines[start:] if rx.search(line))

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
        raise CaseFailure("no VmRSS for pid %d" % self.pid)

    def sanitized(self):
        """Whether the binary runs under ASan or valgrind (its RSS says
        little then)."""
        try:
            with open("/proc/%d/maps" % self.pid) as f:
                maps = f.read()
                return "libasan" in maps or "vgpreload_memcheck" in maps
        except OSError:
            return False

    def terminate(self, timeout=None, signal_it=True):
        """SIGTERM (graceful drain) unless signal_it is false (already sent);
        returns the exit code."""
        if signal_it and self.proc.poll() is None:
            if self.signal_group:
                os.killpg(self.pid, signal.SIGTERM)
            else:
                self.proc.send_signal(signal.SIGTERM)
        return self.wait_exit(timeout, " after SIGTERM")

    def wait_exit(self, timeout=None, what=""):
        """Waits for the process to end (then kills what is left of its
        group); returns the exit code."""
        if timeout is None:
            timeout = DEADLINE
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise CaseFailure("%s still running %.0f s%s" % (self.name, timeout, what)) from None
        finally:
            self.kill()

    def stop(self, timeout=None):
        """A graceful stop where leaks matter: SIGTERM, the exit awaited, and
        a CaseFailure unless the server exited 0 and printed no sanitizer
        report (LeakSanitizer and valgrind check at exit)."""
        rc = self.terminate(timeout)
        found = claim_reports(self)
        check(rc == 0 and not found, "%s exited %r after SIGTERM%s:\n%s"
              % (self.name, rc, " with a sanitizer report" if found else "",
                 "\n".join(found[:60]) if found else self.tail()))

    def reports(self):
        """Report lines (REPORT_RE) printed since the last call; they are
        also queued in PENDING_REPORTS for take_reports()."""
        with self.cond:
            new = [ln for ln in self.lines[self.scanned:] if REPORT_RE.search(ln)]
            first = next((i for i in range(self.scanned, len(self.lines))
                          if REPORT_RE.search(self.lines[i])), None)
            # The whole report from its first line: the stack and summary too.
            found = self.lines[first:] if first is not None else []
            self.scanned = len(self.lines)
        if new:
            PENDING_REPORTS.append((self, found))
        return found

    def kill(self):
        """SIGKILL to the whole process group; waits for the process and the
        reader, then searches what it printed for sanitizer reports."""
        if self in LIVE:
            LIVE.remove(self)
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.reader.join(timeout=2)
        if not self.reader.is_alive():
            self.proc.stderr.close()
        self.reports()


def take_reports():
    """Every sanitizer report not yet claimed, from stopped servers and from
    what live ones printed so far: [(Server, [lines])]; claims them."""
    for srv in list(LIVE):
        srv.reports()
    out = list(PENDING_REPORTS)
    PENDING_REPORTS.clear()
    return out


def claim_reports(srv):
    """The report lines of srv not yet claimed (it is stopped); claims them."""
    srv.reports()
    mine = [r for r in PENDING_REPORTS if r[0] is srv]
    PENDING_REPORTS[:] = [r for r in PENDING_REPORTS if r[0] is not srv]
    return [ln for _, lines in mine for ln in lines]


def format_reports(reports, n=60):
    return "\n".join("sanitizer report from %s:\n  %s" % (srv.name, "\n  ".join(lines[:n]))
                     for srv, lines in reports)


def make_cert(d, name):
    """A self-signed EC certificate for 127.0.0.1 with CN=name in directory d:
    (certificate path, key path).  Raises OSError or SubprocessError without
    a working openssl command."""
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=" + name, "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", crt], check=True, capture_output=True,
                   timeout=DEADLINE)
    return crt, key


def handshake_over_bios(sock, ctx=None):
    """A TLS client on memory BIOs over the connected socket `sock`, driven
    until its handshake is complete on its side (ctx: no verification when
    not given).  Its last flight (the client's Finished) is left unsent in
    `out`, for the caller to send when, and with what, it chooses.  Returns
    (tls object, incoming BIO, outgoing BIO)."""
    if ctx is None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out)
    while True:
        try:
            tls.do_handshake()
            return tls, inc, out
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            check(data, "the server closed during the handshake")
            inc.write(data)


# ---- a raw HTTP/1.1 client -----------------------------------------------------------------

class Conn:
    """One client connection with a buffer (over TLS when given an
    ssl.SSLContext); reads whole responses."""

    def __init__(self, port, rcvbuf=None, timeout=None, tls=None):
        self.timeout = timeout = DEADLINE if timeout is None else timeout
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect((HOST, port))
        if tls:
            self.s = tls.wrap_socket(self.s, server_hostname=HOST)
        self.buf = bytearray()

    def close(self):
        self.s.close()

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(256 * 1024)
        if not d:
            raise EOFError("connection closed by the server")
        self.buf += d

    def read_until(self, delim):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            self._fill()

    def read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self):
        try:
            while True:
                self._fill()
        except EOFError:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_head(self):
        """Reads a response head: (status, {lower-case name: value}, raw head)."""
        raw = self.read_until(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.1 (\d{3}) ", lines[0])
        check(m, "bad status line %r" % lines[0])
        hdrs = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                hdrs[k.strip().lower()] = v.strip()
        return int(m.group(1)), hdrs, raw

    def response(self, head=False):
        """Reads one response: (status, {lower-case name: value}, body, raw head)."""
        status, hdrs, raw = self.read_head()
        if head or status < 200 or status in (204, 304):
            body = b""
        elif hdrs.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int(self.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass  # trailer fields
                    break
                parts.append(self.read_exact(size))
                check(self.read_exact(2) == b"\r\n", "chunk not followed by CRLF")
            body = b"".join(parts)
        elif "content-length" in hdrs:
            body = self.read_exact(int(hdrs["content-length"]))
        else:
            body = self.read_to_eof()
        return status, hdrs, body, raw

    def expect_eof(self, timeout=None):
        """Asserts that the server closes the connection with nothing more to read."""
        if timeout is None:
            timeout = DEADLINE
        self.s.settimeout(timeout)
        try:
            rest = self.read_to_eof()
        except socket.timeout:
            raise CaseFailure("connection still open after %.0f s" % timeout)
        finally:
            self.s.settimeout(self.timeout)
        check(rest == b"", "unexpected bytes before the close: %r" % rest[:80])

    def readable(self):
        return bool(self.buf) or bool(select.select([self.s], [], [], 0)[0])


# ---- the main loop ---------------------------------------------------------------------------

def pick(cases, k):
    """The cases whose name contains k (a string, or any string of a list);
    all of them for an empty k."""
    ks = [x for x in ([k] if isinstance(k, str) else (k or [])) if x]
    return [c for c in cases if not ks or any(x in c.__name__ for x in ks)]


def run_case(name, fn, *args, verbose=False):
    """Runs one case, fn(*args), and prints PASS or FAIL with its time (and
    a traceback for an error that is not a CaseFailure, or for any failure
    when verbose); returns whether it passed."""
    t0 = time.monotonic()
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001 - report every failure, the run goes on
        print("FAIL %s (%.2f s): %s" % (name, time.monotonic() - t0, e), flush=True)
        if verbose or not isinstance(e, CaseFailure):
            traceback.print_exc()
        reports = take_reports()
        if reports:
            print(format_reports(reports), flush=True)
        return False
    reports = take_reports()
    if reports:
        print("FAIL %s (%.2f s): a server printed a sanitizer report\n%s"
              % (name, time.monotonic() - t0, format_reports(reports)), flush=True)
        return False
    print("PASS %s (%.2f s)" % (name, time.monotonic() - t0), flush=True)
    return True


def server_died(srv, n=30):
    """Whether srv has exited; if so, prints a FAIL line with its log tail."""
    if srv.proc.poll() is None:
        return False
    print("FAIL the server %s died (%s):\n%s" % (srv.name, srv.proc.returncode, srv.tail(n)),
          flush=True)
    return True


def stop_cleanly(srv, timeout=None, n=60):
    """SIGTERM to srv, which must exit 0 in time (a clean drain) and print no
    sanitizer report (under ASan LeakSanitizer, under valgrind its leak check,
    run at exit).  Prints a FAIL line with its log tail or the report if
    not; returns whether it did."""
    try:
        rc = srv.terminate(timeout)
    except CaseFailure as e:
        rc = str(e)
    found = claim_reports(srv)
    if found:
        print("FAIL %s exited %r after SIGTERM with a sanitizer report:\n  %s"
              % (srv.name, rc, "\n  ".join(found[:n])), flush=True)
        return False
    if rc != 0:
        print("FAIL %s exited %r after SIGTERM:\n%s" % (srv.name, rc, srv.tail(n)), flush=True)
        return False
    return True


def kill_all():
    """Kills every server not yet stopped."""
    for s in list(LIVE):
        s.kill()


def raise_fd_limit():
    """Raises RLIMIT_NOFILE to its hard limit (the servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_with_servers(cases, start_servers):
    """The main loop of a script whose cases share servers: start_servers()
    returns an object whose Server attributes are the shared servers (it is
    passed to every case); a shared server that dies ends the run (1); each
    must stop cleanly at the end.  Returns summary()'s exit code."""
    started = time.monotonic()
    failed = 0
    try:
        t = start_servers()
        shared = [v for v in vars(t).values() if isinstance(v, Server)]
        for case in cases:
            if not run_case(case.__name__, case, t):
                failed += 1
            if any(server_died(s) for s in shared):
                return 1
        for s in shared:
            if not stop_cleanly(s):
                failed += 1
    finally:
        kill_all()
    return summary(len(cases) - failed, failed, started)


def run_cases(cases, k=None):
    """The main loop of a script whose cases start their own servers: runs
    the cases pick() chooses (-k), each with run_case(), kills what they
    left running, and returns summary()'s exit code."""
    started = time.monotonic()
    passed, names = 0, []
    try:
        for case in pick(cases, k):
            if run_case(case.__name__, case):
                passed += 1
            else:
                names.append(case.__name__)
    finally:
        kill_all()
    return summary(passed, len(names), started, names)


def start_activated(binary, listener, *args):
    """Starts binary with args the way systemd's socket activation does:
    the listening socket `listener` as fd 3, LISTEN_PID naming the process
    and LISTEN_FDS=1; in its own process group, stderr piped.  Returns the
    Popen."""
    argv = ["/bin/sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@" 3<&%d'
            % listener.fileno(), binary, *args]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, pass_fds=(listener.fileno(),),
                            start_new_session=True)


def summary(passed, failed, started, failed_names=()):
    """Prints the totals (after a FAIL line for any sanitizer report no case
    claimed: it fails the run); returns the exit code."""
    kill_all()
    reports = take_reports()
    if reports:
        print("FAIL sanitizer report(s) after the last case:\n%s" % format_reports(reports),
              flush=True)
        failed += 1
        failed_names = list(failed_names) + ["sanitizer reports"]
    print("%d passed, %d failed in %.1f s%s"
          % (passed, failed, time.monotonic() - started,
             "; failed: " + ", ".join(failed_names) if failed_names else ""), flush=True)
    return 1 if failed else 0
