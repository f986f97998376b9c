#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of corio's standalone runner (framework/app), driving the
real echo and chat binaries over loopback.

    test_runner.py --echo build/examples/echo/echo --chat build/examples/chat/chat [-k NAME]

Every server starts on 127.0.0.1 with --port 0; the port is read from the
"listening on 127.0.0.1:PORT" log line.  Every wait is a poll with a deadline;
every process started is killed (its whole process group) when its case ends,
pass or fail.  One function per case; the harness prints PASS/FAIL per case
and exits non-zero if any failed.  Python standard library only.
"""
import argparse
import os
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import harness
from harness import (HOST, CaseFailure, check, clean_env, kill_all, make_cert, pick,
                     raise_fd_limit, run_case, summary, wait_until)

ARGS = None  # parsed command line: .echo, .chat


# ---- processes -------------------------------------------------------------------------

CASE_SERVERS = []  # every Server the running case started, for its logs on failure


class Server(harness.Server):
    """A runner binary (harness.Server: its own process group, stderr
    collected; a context manager), with its supervisor's children."""

    def __init__(self, binary, *args, env=None, nofile=None):
        """nofile: the fd limit, soft and hard, or a (soft, hard) pair."""
        wrap = ()
        if nofile is not None:
            # A shell sets the fd limit and execs the binary (same pid): safer
            # than preexec_fn in a process that runs threads.
            soft, hard = nofile if isinstance(nofile, tuple) else (nofile, nofile)
            wrap = ("/bin/sh", "-c",
                    'ulimit -Sn %d && ulimit -Hn %d && exec "$0" "$@"' % (soft, hard))
        super().__init__(binary, *args, env=env, wrap=wrap, start_timeout=5)
        CASE_SERVERS.append(self)

    def children(self):
        """The supervisor's live children (its worker processes)."""
        try:
            with open("/proc/%d/task/%d/children" % (self.pid, self.pid)) as f:
                return sorted(int(p) for p in f.read().split())
        except OSError:
            return []

    def wait_children(self, n, timeout=5, exclude=()):
        def ok():
            kids = self.children()
            return kids if len(kids) == n and not set(kids) & set(exclude) else None
        return wait_until(ok, timeout, "%d worker processes" % n)


def sched_sample(pid):
    """(runnable seconds, voluntary context switches) of the process's main
    thread, where its loop runs.  Runnable: on a CPU or waiting in a run
    queue for one (/proc/PID/task/PID/schedstat, first two fields, ns); a
    loop that spins is runnable all the time, whether or not a loaded machine
    gives it a CPU.  Voluntary switches: each time it blocked (slept)."""
    base = "/proc/%d/task/%d/" % (pid, pid)
    with open(base + "schedstat") as f:
        on_cpu, queued = f.read().split()[:2]
    with open(base + "status") as f:
        vol = next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
    return (int(on_cpu) + int(queued)) / 1e9, vol, time.monotonic()


def check_sleeps(pid, window, what):
    """Asserts that `pid` did not spin since `window` (a sched_sample).  A
    spinning loop is runnable for most of the window and never blocks; a
    sleeping one blocks at each wait.  Both signs are required, so a
    sleeper on a loaded machine (long run-queue waits at each of its
    wake-ups: runnable for long, but blocking each time) is not taken for a
    spinner, and a starved spinner (little CPU) still is."""
    runnable0, vol0, t0 = window
    runnable, vol, t1 = sched_sample(pid)
    busy, blocked, span = runnable - runnable0, vol - vol0, t1 - t0
    check(not (busy > span / 2 and blocked < 10),
          "%s was runnable for %.2f s of %.2f s and blocked %d times: it spins"
          % (what, busy, span, blocked))


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def socket_inodes(pid):
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP, NLMSG_ERROR, NLMSG_DONE = 0x1, 0x300, 2, 3
TCPF_ESTABLISHED = 1 << 1


def established_tcp_sock_diag():
    """(local port, remote port, inode) of every established TCP socket, from
    the kernel's sock_diag netlink interface (what `ss` uses): the kernel
    filters by state, so a table full of TIME_WAIT from earlier connections
    costs nothing, unlike reading /proc/net/tcp."""
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(5)
            # struct inet_diag_req_v2: family, protocol, ext, pad, states, and
            # a zeroed struct inet_diag_sockid (48 bytes).
            req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, TCPF_ESTABLISHED)
            req += bytes(48)
            nl.send(struct.pack("=IHHII", 16 + len(req), SOCK_DIAG_BY_FAMILY,
                                NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + req)
            done = False
            while not done:
                data = nl.recv(1 << 16)
                off = 0
                while off + 16 <= len(data):
                    length, kind = struct.unpack_from("=IH", data, off)
                    if kind == NLMSG_DONE:
                        done = True
                        break
                    if kind == NLMSG_ERROR:
                        raise OSError("sock_diag: netlink error")
                    # struct inet_diag_msg: 4 bytes, sockid (ports first, 48
                    # bytes), expires, rqueue, wqueue, uid, inode.
                    sport, dport = struct.unpack_from("!HH", data, off + 16 + 4)
                    (inode,) = struct.unpack_from("=I", data, off + 16 + 4 + 48 + 16)
                    found.append((sport, dport, inode))
                    off += (length + 3) & ~3
    return found


def established_tcp_proc():
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01":
                        found.append((int(parts[1].rsplit(":", 1)[1], 16),
                                      int(parts[2].rsplit(":", 1)[1], 16), int(parts[9])))
        except OSError:
            pass
    return found


def established_tcp():
    try:
        return established_tcp_sock_diag()
    except OSError:
        return established_tcp_proc()


def connections_by_worker(workers, port):
    """How many established connections on `port` each worker holds (the
    server side: local port == port, matched to the worker's fds by inode)."""
    est = {inode for lport, _, inode in established_tcp() if lport == port}
    return {pid: len(socket_inodes(pid) & est) for pid in workers}


def owners(client_socks, workers):
    """For each client socket, the worker pid holding its server side (or None)."""
    port = client_socks[0].getpeername()[1]
    by_peer = {rport: inode for lport, rport, inode in established_tcp() if lport == port}
    held = {}
    for pid in workers:
        try:
            for inode in socket_inodes(pid):
                held[inode] = pid
        except OSError:
            pass
    return [held.get(by_peer.get(s.getsockname()[1])) for s in client_socks]


# ---- clients ---------------------------------------------------------------------------

def connect(port, timeout=5):
    return socket.create_connection((HOST, port), timeout=timeout)


def recv_exactly(s, n):
    chunks, got = [], 0
    while got < n:
        b = s.recv(min(n - got, 1 << 20))
        if not b:
            raise CaseFailure("EOF after %d of %d bytes" % (got, n))
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def recv_until_eof(s):
    chunks = []
    while True:
        b = s.recv(1 << 20)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def echo_on(s, payload):
    s.sendall(payload)
    back = recv_exactly(s, len(payload))
    check(back == payload, "echo differs from what was sent")


def echo_once(port, payload=b"ping\n", timeout=5):
    with connect(port, timeout) as s:
        echo_on(s, payload)


def send_in_thread(s, data):
    """sendall(data) from a thread (the echo comes back while we send); returns
    the thread and a list that receives the exception, if any."""
    errors = []

    def run():
        try:
            s.sendall(data)
        except OSError as e:
            errors.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, errors


class StallingSender:
    """Sends `total` bytes on s from a thread, in short timed sends so that it
    can be stopped even while the peer applies backpressure."""

    def __init__(self, s, total, chunk=1 << 16):
        self.s, self.total, self.sent = s, total, 0
        self.stop = threading.Event()
        self.error = None
        self.buf = b"x" * chunk
        s.settimeout(0.05)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while self.sent < self.total and not self.stop.is_set():
            try:
                self.sent += self.s.send(self.buf[: self.total - self.sent])
            except socket.timeout:
                continue
            except OSError as e:
                self.error = e
                return

    def wait_stalled(self, quiet=0.5, timeout=10):
        """Waits until no byte went out for `quiet` seconds (or all did)."""
        last, since = -1, time.monotonic()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sent >= self.total or not self.thread.is_alive():
                return
            if self.sent != last:
                last, since = self.sent, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return
            time.sleep(0.02)
        raise CaseFailure("sender neither stalled nor finished within %d s" % timeout)

    def finish(self):
        self.stop.set()
        self.thread.join(timeout=5)


def reset(s):
    """Closes s with an RST (SO_LINGER 0)."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class LineReader:
    """Reads lines from a socket in a thread, timestamped."""

    def __init__(self, s):
        self.s = s
        self.lines = []
        self.cond = threading.Condition()
        self.eof = False
        s.settimeout(30)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        buf = b""
        try:
            while True:
                b = self.s.recv(1 << 16)
                if not b:
                    break
                buf += b
                *done, buf = buf.split(b"\n")
                if done:
                    now = time.monotonic()
                    with self.cond:
                        self.lines.extend((now, l) for l in done)
                        self.cond.notify_all()
        except OSError:
            pass
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, l in self.lines:
                    if pred(l):
                        return t, l
                left = deadline - time.monotonic()
                if left <= 0 or self.eof:
                    raise CaseFailure("no line %s within %.1f s (eof=%s)"
                                      % (what, timeout, self.eof))
                self.cond.wait(min(left, 0.1))

    def count(self, pred):
        with self.cond:
            return sum(1 for _, l in self.lines if pred(l))


# ---- cases: command line ---------------------------------------------------------------

def run_cli(binary, args, env=None):
    return subprocess.run([binary] + args, capture_output=True, env=clean_env(env), timeout=10)


def run_refused(args, env=None):
    """Runs a server that must not start: returns its stderr once it exits
    non-zero.  One that serves instead is killed at the deadline, a failure."""
    try:
        r = run_cli(ARGS.echo, args, env)
    except subprocess.TimeoutExpired:
        raise CaseFailure("%s started serving; it must not" % args) from None
    err = r.stderr.decode(errors="replace")
    check(r.returncode != 0, "%s exited %d: %r" % (args, r.returncode, err))
    return err


def all_echo(port, n=40):
    """n connections to port, open at once, each echoed."""
    socks = [connect(port) for _ in range(n)]
    try:
        for i, s in enumerate(socks):
            echo_on(s, b"all %d\n" % i)
    finally:
        for s in socks:
            s.close()


def case_bad_flag_values_exit_2_naming_the_flag():
    """Each bad value: exit code 2, one line on stderr naming the flag (or
    variable), nothing served."""
    bad = [
        (["--port", "abc"], None, "--port"),
        (["--port=70000"], None, "--port"),
        (["--port", "-1"], None, "--port"),
        (["--workers", "0"], None, "--workers"),
        (["--workers", "257"], None, "--workers"),
        (["--workers=x"], None, "--workers"),
        (["--drain-timeout", "5x"], None, "--drain-timeout"),
        (["--read-timeout=-1"], None, "--read-timeout"),
        (["--log-level", "loud"], None, "--log-level"),
        (["--host", "localhost"], None, "--host"),
        (["--bogus"], None, "--bogus"),
        (["--port"], None, "--port"),
        (["--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.pem"], None, "--tls-cert"),
        ([], {"CORIO_PORT": "x"}, "CORIO_PORT"),
        ([], {"CORIO_WORKERS": "0"}, "CORIO_WORKERS"),
    ]
    for args, env, name in bad:
        r = run_cli(ARGS.echo, args, env)
        err = r.stderr.decode()
        check(r.returncode == 2,
              "%s %s: exit %d, expected 2 (stderr %r)" % (args, env, r.returncode, err))
        lines = err.splitlines()
        check(len(lines) == 1,
              "%s %s: %d stderr lines, expected 1: %r" % (args, env, len(lines), err))
        check(name in lines[0], "%s %s: message %r does not name %s" % (args, env, lines[0], name))
        check(r.stdout == b"", "%s: unexpected stdout %r" % (args, r.stdout))
    # A flag wins over a bad variable: the server starts.
    with Server(ARGS.echo, env={"CORIO_PORT": "x"}) as srv:
        echo_once(srv.port)


def case_soft_fd_limit_raised_to_the_hard_limit():
    """The runner raises the soft RLIMIT_NOFILE to the hard one at start
    (app.h, "Descriptors"): started with 256 soft, 512 hard, it runs with
    512 and says so at debug level."""
    with Server(ARGS.echo, "--log-level", "debug", nofile=(256, 512)) as srv:
        with open("/proc/%d/limits" % srv.pid) as f:
            line = next(x for x in f if x.startswith("Max open files"))
        check(line.split()[3:5] == ["512", "512"], line)
        srv.wait_log(r"descriptors: soft limit raised from 256 to 512")
        harness.stop_cleanly(srv)


def case_signal_during_teardown_does_not_kill():
    """A second SIGTERM, a SIGINT or the supervisor's SIGUSR1 or SIGHUP that
    comes while a worker closes its signal watchers (libuv then puts their
    default action back, which is to end the process) does not kill it:
    the process exits 0.  tests/signal_shim.c sends the signal at that very
    moment (the worker's signal(SIGTERM, SIG_IGN) at teardown); the thread
    pool's threads never take one.  Before the fix: exit 143, 138, 129."""
    if not ARGS.signal_shim:
        print("    SKIP: no --signal-shim")
        return
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGHUP):
        env = {"LD_PRELOAD": ARGS.signal_shim, "CORIO_SHIM_SIGNAL": str(int(sig)),
               # a sanitized build: its runtime need not come first for this
               "ASAN_OPTIONS": "verify_asan_link_order=0:" + os.environ.get("ASAN_OPTIONS", "")}
        with Server(ARGS.echo, env=env) as srv:
            srv.proc.send_signal(signal.SIGTERM)
            code = srv.wait_exit(what="after SIGTERM, then %s at teardown" % sig.name)
            check(code == 0, "exit %r with %s at teardown:\n%s" % (code, sig.name, srv.tail()))


def case_help_and_version_exit_0():
    """--help (or -h) lists every flag with its default and exits 0 (even
    with a bad environment); --version exits 0 and names the version."""
    r = run_cli(ARGS.echo, ["--help"], {"CORIO_PORT": "x"})
    out = r.stdout.decode()
    check(r.returncode == 0, "--help exit %d" % r.returncode)
    for flag in ("--host", "--port", "--unix", "--workers", "--tls-cert", "--tls-key",
                 "--max-conns", "--read-timeout", "--write-timeout", "--drain-timeout",
                 "--log-level", "--help", "--version", "CORIO_PORT"):
        check(flag in out, "--help does not list %s" % flag)
    for default in ("(default: 127.0.0.1)", "(default: 7000)", "(default: 25s)",
                    "(default: info)", "(default: 1)"):
        check(default in out, "--help does not show %s:\n%s" % (default, out))
    h = run_cli(ARGS.echo, ["-h"])
    check(h.returncode == 0 and h.stdout == r.stdout, "-h: exit %d, %r" % (h.returncode, h.stdout))
    r = run_cli(ARGS.echo, ["--version"])
    check(r.returncode == 0, "--version exit %d" % r.returncode)
    check(re.search(rb"\d+\.\d+\.\d+", r.stdout), "--version prints no version: %r" % r.stdout)


# ---- cases: Unix sockets ----------------------------------------------------------------

class UnixServer:
    """echo on a Unix socket (harness.Server passes --port 0, which --unix
    refuses): started in its own process group, ready once it logs
    "listening on unix:"; killed on exit from the with block."""

    def __init__(self, path, *args, env=None):
        self.proc = subprocess.Popen([ARGS.echo, "--unix", path, *args],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=clean_env(env),
                                     start_new_session=True)
        self.log = b""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 10
        try:
            while b"listening on unix:" not in self.log:
                left = deadline - time.monotonic()
                chunk = os.read(self.proc.stderr.fileno(), 4096) if (
                    left > 0 and sel.select(left)) else None
                if not chunk:
                    raise CaseFailure("%s: not listening: %r" % (path, self.log))
                self.log += chunk
        except BaseException:
            self.__exit__()
            raise
        finally:
            sel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc.stderr.close()

    def terminate(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def unix_echo(path, payload=b"over unix\n"):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        echo_on(s, payload)


def stale_socket(path):
    """A socket file that nothing listens on, as a killed server leaves."""
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)


def case_unix_and_port_refused_together():
    """--unix with --port (or both variables): exit 2, one line naming both.
    A flag still wins over the other's variable."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="corio-runner-unix-") as d:
        path = os.path.join(d, "s.sock")
        for args, env, names in ((["--unix", path, "--port", "8080"], None, ("--unix", "--port")),
                                 (["--port=0", "--unix=" + path], None, ("--unix", "--port")),
                                 ([], {"CORIO_UNIX": path, "CORIO_PORT": "8080"},
                                  ("CORIO_UNIX", "CORIO_PORT"))):
            r = run_cli(ARGS.echo, args, env)
            err = r.stderr.decode()
            check(r.returncode == 2 and len(err.splitlines()) == 1,
                  "%s %s: exit %d, %r" % (args, env, r.returncode, err))
            check(all(n in err for n in names), "%s: %r does not name %s" % (args, err, names))
            check(not os.path.exists(path), "%s: the socket was made" % args)
        with UnixServer(path, env={"CORIO_PORT": "8080"}) as srv:
            unix_echo(path)
            check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
        with Server(ARGS.echo, env={"CORIO_UNIX": path}) as srv:  # --port 0 wins
            echo_once(srv.port)
            check(not os.path.exists(path), "CORIO_UNIX was used beside --port")


def case_unix_socket_missing_directory_named():
    """A Unix socket in a directory that does not exist: exit 1, "no such
    directory" and the directory (libuv alone would say "permission
    denied"), one process or supervised."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="corio-runner-unix-") as d:
        missing = os.path.join(d, "missing")
        for workers in ("1", "2"):
            err = run_refused(["--unix", os.path.join(missing, "s.sock"), "--workers", workers])
            check("no such directory: %s" % missing in err, "workers %s: %r" % (workers, err))
            check("permission denied" not in err.lower(), "workers %s: %r" % (workers, err))


def case_unix_stale_socket_replaced_live_refused():
    """A socket file nothing listens on (a killed server's) is replaced; a
    live one is refused with "address already in use" and keeps serving; a
    file that is not a socket is refused and left alone."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="corio-runner-unix-") as d:
        path = os.path.join(d, "s.sock")
        for workers in ("1", "2"):
            stale_socket(path)
            with UnixServer(path, "--workers", workers) as srv:
                unix_echo(path)
                for second in ("1", "2"):
                    err = run_refused(["--unix", path, "--workers", second])
                    check("address already in use" in err, "workers %s: %r" % (second, err))
                for i in range(10):
                    unix_echo(path, b"still %d\n" % i)
                check(srv.terminate() == 0, "exit code %s" % srv.proc.returncode)
            check(not os.path.exists(path), "workers %s: the socket file was left" % workers)
        with open(path, "w") as f:
            f.write("not a socket\n")
        err = run_refused(["--unix", path])
        check("not a socket" in err, "regular file: %r" % err)
        with open(path) as f:
            check(f.read() == "not a socket\n", "the regular file was changed")


def free_port():
    """A TCP port nothing listens on now (another process may take it
    later: the case below holds either way)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_together(argvs, timeout=10):
    """Starts one echo server per argument list at once and waits until
    each serves ("listening on" logged) or exits.  Returns (procs, serving,
    logs): the Popen objects (each in its own process group), whether each
    serves, and what each printed."""
    procs = [subprocess.Popen([ARGS.echo, *a], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=clean_env(None), start_new_session=True) for a in argvs]
    logs = [b""] * len(procs)
    settled = [False] * len(procs)
    sel = selectors.DefaultSelector()
    for i, p in enumerate(procs):
        sel.register(p.stderr, selectors.EVENT_READ, i)
    deadline = time.monotonic() + timeout
    try:
        while not all(settled):
            left = deadline - time.monotonic()
            check(left > 0, "servers neither serving nor gone: %r" % logs)
            for key, _ in sel.select(left):
                i = key.data
                chunk = os.read(key.fileobj.fileno(), 4096)
                logs[i] += chunk
                if not chunk or b"listening on" in logs[i]:
                    settled[i] = True
                    sel.unregister(key.fileobj)
    finally:
        sel.close()
    serving = [b"listening on" in log for log in logs]
    return procs, serving, [log.decode(errors="replace") for log in logs]


def stop_together(procs, sig):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, sig)
    for p in procs:
        p.wait(timeout=30)
        p.stderr.close()


def case_started_together_one_serves():
    """Two servers started at the same moment on one Unix socket path, or
    one TCP port, never both serve (the path's claim is held under a lock
    on "<path>.lock"; a TCP server checks once it listens that nobody else
    does): on the path exactly one serves, the other exits 1 with "address
    already in use"; on a port at most one serves, and a refusal says why.
    Rounds alternate a graceful stop (socket and lock file removed) and
    SIGKILL (both left behind: the next round reuses the lock file and
    replaces the socket)."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="corio-runner-race-") as d:
        path = os.path.join(d, "s.sock")
        for rnd in range(12):
            workers = ["--workers", "2"] if rnd % 3 == 2 else []
            procs, serving, logs = start_together([["--unix", path, *workers]] * 2)
            check(serving.count(True) == 1, "round %d: %d serve: %r" % (rnd, serving.count(True),
                                                                        logs))
            loser = procs[serving.index(False)]
            check(loser.wait(timeout=10) == 1 and "address already in use" in
                  logs[serving.index(False)], "round %d: loser %r" % (rnd, logs))
            unix_echo(path, b"round %d\n" % rnd)
            check(os.path.exists(path + ".lock"), "no lock file while serving")
            graceful = rnd % 2 == 0
            stop_together(procs, signal.SIGTERM if graceful else signal.SIGKILL)
            if graceful:
                check(not os.path.exists(path) and not os.path.exists(path + ".lock"),
                      "round %d: left %r" % (rnd, os.listdir(d)))
        port = free_port()
        for rnd in range(12):
            workers = ["--workers", "2"] if rnd % 3 == 2 else []
            procs, serving, logs = start_together([["--port", str(port), *workers]] * 2)
            check(serving.count(True) <= 1, "round %d: both serve: %r" % (rnd, logs))
            for i, s in enumerate(serving):
                if not s:
                    check(procs[i].wait(timeout=10) == 1 and "address already in use" in logs[i],
                          "round %d: %r" % (rnd, logs[i]))
            if True in serving:
                echo_once(port, b"round %d\n" % rnd)
            stop_together(procs, signal.SIGTERM)


# ---- cases: echo -----------------------------------------------------------------------

def case_echo_round_trip_and_half_close():
    """Bytes come back unchanged; after the client half-closes, the whole echo
    (1 MiB, more than every buffer on the way) still arrives, then EOF."""
    with Server(ARGS.echo) as srv:
        echo_once(srv.port, b"hello corio\n")
        data = os.urandom(1 << 20)
        with connect(srv.port, timeout=10) as s:
            t, errors = send_in_thread(s, data)
            got = recv_exactly(s, len(data) // 2)  # echo flows while we send
            t.join(timeout=10)
            check(not errors and not t.is_alive(), "send failed: %s" % errors)
            s.shutdown(socket.SHUT_WR)
            got += recv_until_eof(s)
        check(got == data, "echo after half-close: %d bytes back of %d, or corrupted"
              % (len(got), len(data)))


def case_reset_mid_write_spares_others():
    """A client that resets while the server is blocked writing to it (it
    never reads its echo) costs nobody else anything: another client's large
    echo, in flight at the same time, completes intact; the server lives on."""
    with Server(ARGS.echo) as srv:
        x = connect(srv.port)
        xs = StallingSender(x, 32 << 20)
        y = connect(srv.port, timeout=10)
        data = os.urandom(4 << 20)
        t, errors = send_in_thread(y, data)
        got = recv_exactly(y, 1 << 20)
        xs.wait_stalled(quiet=0.3)  # the server now waits to write to x
        check(xs.sent < xs.total, "x was never stalled: no backpressure")
        xs.finish()
        reset(x)
        got += recv_exactly(y, len(data) - len(got))
        t.join(timeout=10)
        check(not errors, "y send failed: %s" % errors)
        check(got == data, "y's echo corrupted")
        echo_on(y, b"still here\n")
        y.close()
        echo_once(srv.port)
        check(srv.alive(), "server died")


def case_never_reading_client_bounded_rss():
    """A client sends 64 MiB and never reads the echo: backpressure in both
    directions stops the sender after a few MiB of kernel buffers, and the
    server's RSS grows by less than 16 MiB."""
    with Server(ARGS.echo) as srv:
        echo_once(srv.port, b"x" * 100000)  # warm up buffers and stacks
        before = srv.rss_kib()
        s = connect(srv.port)
        sender = StallingSender(s, 64 << 20)
        peak = before
        deadline = time.monotonic() + 10
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:  # sample RSS until the sender stalls
            peak = max(peak, srv.rss_kib())
            if sender.sent >= sender.total or sender.error:
                break
            if sender.sent != last:
                last, since = sender.sent, time.monotonic()
            elif time.monotonic() - since >= 0.5:
                break
            time.sleep(0.02)
        peak = max(peak, srv.rss_kib())
        sent = sender.sent
        sender.finish()
        reset(s)
        check(sender.error is None, "sender failed: %s" % sender.error)
        check(sent < 32 << 20, "the server took %d MiB from a client that never reads: "
              "no backpressure" % (sent >> 20))
        growth = peak - before
        check(growth < 16 << 10, "server RSS grew by %d KiB (sent %d KiB)" % (growth, sent >> 10))
        echo_once(srv.port)


def case_thousand_concurrent_clients_one_worker():
    """1,000 clients connected at once to one worker each get their own echo
    (all held open until every one has it)."""
    n = 1000
    with Server(ARGS.echo, "--workers", "1") as srv:
        sel = selectors.DefaultSelector()
        socks = []
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((HOST, srv.port))
                socks.append(s)
                msg = b"client %04d says hi\n" % i
                sel.register(s, selectors.EVENT_WRITE, [i, msg, b""])
            done = 0
            deadline = time.monotonic() + 30
            while done < n:
                check(time.monotonic() < deadline, "only %d of %d echoes within 30 s" % (done, n))
                for key, ev in sel.select(timeout=0.5):
                    s, st = key.fileobj, key.data
                    if ev & selectors.EVENT_WRITE:
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        check(err == 0, "client %d: connect failed: %s" % (st[0], os.strerror(err)))
                        s.send(st[1])  # tiny: the kernel takes it whole
                        sel.modify(s, selectors.EVENT_READ, st)
                    else:
                        b = s.recv(4096)
                        check(b, "client %d: EOF before its echo" % st[0])
                        st[2] += b
                        if len(st[2]) >= len(st[1]):
                            check(st[2] == st[1], "client %d got %r" % (st[0], st[2]))
                            sel.unregister(s)  # keep it open: all 1,000 at once
                            done += 1
        finally:
            sel.close()
            for s in socks:
                s.close()
        echo_once(srv.port)


def case_max_conns_holds_third_connection():
    """--max-conns 2: a third connection waits (no echo) while two are open,
    and is served as soon as one of them closes."""
    with Server(ARGS.echo, "--max-conns", "2") as srv:
        a, b = connect(srv.port), connect(srv.port)
        echo_on(a, b"a\n")
        echo_on(b, b"b\n")
        c = connect(srv.port)
        c.sendall(b"third\n")
        c.settimeout(0.5)
        try:
            got = c.recv(100)
            raise CaseFailure("third connection served over the cap: %r" % got)
        except socket.timeout:
            pass
        a.close()
        c.settimeout(5)
        check(recv_exactly(c, 6) == b"third\n", "third echo wrong")
        echo_on(b, b"b again\n")
        b.close()
        c.close()


def case_emfile_no_spin_and_recovery():
    """At the fd limit (RLIMIT_NOFILE 64) with more clients than fds, the
    server does not spin (it sleeps for most of a second while connections
    keep arriving: runnable_seconds), and serves again by itself once
    clients close."""
    with Server(ARGS.echo, nofile=64) as srv:
        held = []
        try:
            for _ in range(100):
                held.append(connect(srv.port))
            wait_until(lambda: open_fds(srv.pid) >= 62, 5, "the server to reach its fd limit")
            window = sched_sample(srv.pid)
            for _ in range(10):  # the measuring window, more clients arriving
                try:
                    held.append(connect(srv.port, timeout=1))
                except OSError:
                    pass
                time.sleep(0.1)
            check_sleeps(srv.pid, window, "the server at the fd limit")
            check(srv.alive(), "server died at the fd limit")
        finally:
            for s in held:
                s.close()

        def served():
            try:
                echo_once(srv.port, b"back\n", timeout=1)
                return True
            except (OSError, CaseFailure):
                return False
        wait_until(served, 10, "a new client to be served after the fds freed up", 0.1)


# ---- cases: workers and signals ---------------------------------------------------------

def open_until_both_own(srv, workers, port, want=40, timeout=10):
    """Opens `want` echoed connections (more if needed, within the deadline)
    until every worker holds at least one; returns (sockets, counts)."""
    socks = []
    deadline = time.monotonic() + timeout
    while True:
        s = connect(port)
        socks.append(s)
        echo_on(s, b"x")
        if len(socks) >= want:
            counts = connections_by_worker(workers, port)
            if all(counts.values()):
                return socks, counts
        if time.monotonic() > deadline:
            raise CaseFailure("workers never all held connections: %s"
                              % connections_by_worker(workers, port))


def case_two_workers_share_connections():
    """--workers 2: two worker processes (the supervisor's children) both own
    established connections on the one port."""
    with Server(ARGS.echo, "--workers", "2") as srv:
        workers = srv.wait_children(2)
        socks, counts = open_until_both_own(srv, workers, srv.port)
        try:
            check(sum(counts.values()) == len(socks),
                  "connections unaccounted for: %s of %d" % (counts, len(socks)))
            check(srv.pid not in counts and all(c > 0 for c in counts.values()),
                  "connections by worker: %s" % counts)
        finally:
            for s in socks:
                s.close()


def case_second_server_on_taken_port_refused():
    """A second server on a port a running one holds, whether one process or
    a supervisor, exits non-zero saying "address already in use" (not a
    silent SO_REUSEPORT share), and the first still serves every
    connection."""
    for first in ((), ("--workers", "2")):
        with Server(ARGS.echo, *first) as srv:
            if first:
                srv.wait_children(2)
            for second in ((), ("--workers", "2")):
                err = run_refused(["--port", str(srv.port), *second])
                check("address already in use" in err and "--reuse-port" in err,
                      "%s after %s: %r" % (second, first, err))
            all_echo(srv.port)


def case_reuse_port_lets_a_second_share():
    """--reuse-port (or CORIO_REUSE_PORT=1) lets a second server share the
    port, a rolling replacement: both serve connections on it, and when the
    first leaves, the second serves them all."""
    for flag, env in ((("--reuse-port",), None), ((), {"CORIO_REUSE_PORT": "1"})):
        first = Server(ARGS.echo)
        with first, Server(ARGS.echo, "--port", str(first.port), *flag, env=env) as second:
            check(second.port == first.port, "second on %d, first on %d"
                  % (second.port, first.port))
            socks, counts = open_until_both_own(None, [first.pid, second.pid], first.port)
            for s in socks:
                s.close()
            code = first.terminate(10)
            check(code == 0, "first exit %s" % code)
            all_echo(second.port)
    r = run_cli(ARGS.echo, [], {"CORIO_REUSE_PORT": "maybe"})
    check(r.returncode == 2 and b"CORIO_REUSE_PORT" in r.stderr,
          "CORIO_REUSE_PORT=maybe: exit %d %r" % (r.returncode, r.stderr))


def case_killed_worker_restarted_others_serve():
    """kill -9 of one worker: the supervisor logs it and forks a new worker
    (a new child pid) that serves; the other worker keeps echoing on its open
    connection throughout, and new connections are served all along."""
    with Server(ARGS.echo, "--workers", "2") as srv:
        workers = srv.wait_children(2)
        socks, _ = open_until_both_own(srv, workers, srv.port, want=8)
        victim = workers[0]
        keep = next(s for s, pid in zip(socks, owners(socks, workers)) if pid == workers[1])
        stop = threading.Event()
        errors, stats = [], {"kept": 0, "new": 0, "killed_at": None}

        def on_kept():
            while not stop.is_set():
                try:
                    echo_on(keep, b"survivor\n")
                    stats["kept"] += 1
                except Exception as e:  # noqa: BLE001 - recorded and asserted
                    errors.append("kept connection: %r" % e)
                    return
                time.sleep(0.01)

        def on_new():
            while not stop.is_set():
                started = time.monotonic()
                try:
                    echo_once(srv.port, b"newcomer\n", timeout=5)
                    stats["new"] += 1
                except Exception as e:  # noqa: BLE001
                    killed_at = stats["killed_at"]
                    if killed_at is not None and started <= killed_at and not stats.get("excused"):
                        stats["excused"] = True  # in flight on the victim: lost with it
                        continue
                    errors.append("new connection: %r" % e)
                    return
                time.sleep(0.002)  # steady, without flooding the TCP table
        threads = [threading.Thread(target=f, daemon=True) for f in (on_kept, on_new)]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: stats["kept"] > 5 and stats["new"] > 5, 5, "echoes before the kill")
            mark = srv.mark()
            kept0, new0 = stats["kept"], stats["new"]
            os.kill(victim, signal.SIGKILL)
            stats["killed_at"] = time.monotonic()
            srv.wait_log(r"worker \d+ \(pid %d\) was killed by signal 9" % victim, 5, mark)
            m = srv.wait_log(r"worker \d+ started \(pid (\d+)\)", 5, mark)
            newpid = int(m.group(1))
            kids = srv.wait_children(2, exclude=(victim,))
            check(newpid in kids and workers[1] in kids, "children %s after restart" % kids)
            more, _ = open_until_both_own(srv, kids, srv.port, want=8)
            socks += more
            wait_until(lambda: stats["kept"] > kept0 + 20 and stats["new"] > new0 + 20, 5,
                       "echoes after the restart")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=6)
            for s in socks:
                s.close()
        check(not errors, "echo failures around the kill: %s" % errors)


def case_sigterm_during_restart_backoff_no_spin():
    """SIGTERM while a killed worker's restart is pending (100 ms backoff): the
    restart is dropped, and the supervisor sleeps (runnable_seconds) while
    the other worker drains the connections the test holds open; once they
    close, everything exits 0, and no worker was started after the SIGTERM."""
    with Server(ARGS.echo, "--workers", "2", "--drain-timeout", "30s") as srv:
        workers = srv.wait_children(2)
        socks, _ = open_until_both_own(srv, workers, srv.port, want=8)
        try:
            mark = srv.mark()
            os.kill(workers[0], signal.SIGKILL)
            srv.wait_log(r"killed by signal 9 .*restarting in", 5, mark)
            os.kill(srv.pid, signal.SIGTERM)
            srv.wait_log(r"SIGTERM: stopping", 5, mark)
            window = sched_sample(srv.pid)
            # The drain cannot end while the test holds connections open
            # (the drain timeout is far off): the window is inside the drain.
            wait_until(lambda: time.monotonic() - window[1] >= 1.0, 5, "the measuring window")
            check(srv.alive(), "exited with connections still open")
            check_sleeps(srv.pid, window, "the supervisor, draining")
        finally:
            for s in socks:
                s.close()
        code = srv.wait_exit(10, " after its connections closed")
        check(code == 0, "exit code %s" % code)
        check(srv.count_log(r"worker \d+ started", mark) == 0,
              "a worker was started while stopping")


def process_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


def case_supervisor_killed_workers_exit():
    """kill -9 of the supervisor: its workers do not serve on unsupervised
    (they get SIGTERM and exit)."""
    with Server(ARGS.echo, "--workers", "2") as srv:
        workers = srv.wait_children(2)
        socks, _ = open_until_both_own(srv, workers, srv.port, want=4)
        for s in socks:
            s.close()
        os.kill(srv.pid, signal.SIGKILL)
        wait_until(lambda: all(process_gone(w) for w in workers), 5,
                   "the orphaned workers to exit")


STARTED_RE = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def started_workers(srv, start=0):
    """(slot, pid) of every worker the supervisor logged as started, from
    log line `start` on."""
    with srv.cond:
        lines = srv.lines[start:]
    return [(int(m.group(1)), int(m.group(2))) for m in map(STARTED_RE.search, lines) if m]


def case_sighup_in_restart_backoff_no_orphan():
    """Regression (issue 15, #6): worker 0 is killed five times in a row, each
    time once it serves, so that its next restart waits out a long backoff
    (1.6 s); SIGHUP comes inside that backoff, then SIGTERM.  The roll starts
    slot 0's worker itself and cancels the pending restart: after the roll
    exactly two workers exist, and none is forked when the restart would have
    been due; on SIGTERM the supervisor exits 0 without having to kill
    anyone, and every worker that ever ran has exited.  (Both used to fork:
    the roll's worker was overwritten, never got SIGTERM, kept serving, and
    the supervisor logged "killing" for ever.)"""
    with Server(ARGS.echo, "--workers", "2", "--drain-timeout", "2s") as srv:
        killed = []
        started = srv.wait_log(r"worker 0 started \(pid (\d+)\)", 5)
        for k in range(5):
            victim = int(started.group(1))
            kids = srv.wait_children(2, exclude=killed)
            check(victim in kids, "worker 0 (pid %d) is not among the children %s" % (victim, kids))
            # Each one serves before it dies: one killed while it starts
            # would count as a worker that cannot start (case below).
            socks, _ = open_until_both_own(srv, kids, srv.port, want=2)
            for s in socks:
                s.close()
            mark = srv.mark()
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            m = srv.wait_log(r"worker 0 \(pid %d\) was killed by signal 9 .*; restarting in (\d+) ms"
                             % victim, 5, mark)
            if k < 4:
                started = srv.wait_log(r"worker 0 started \(pid (\d+)\)", 5, mark)
        due = time.monotonic() + int(m.group(1)) / 1000
        hup = srv.mark()
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"SIGHUP: every worker restarted", 10, hup)
        rolled = srv.mark()
        while time.monotonic() < due + 1.0:  # past the cancelled restart's due time
            extra = started_workers(srv, rolled)
            check(not extra, "worker(s) %s forked after the roll: a third worker (log:\n%s)"
                  % (extra, srv.tail(8)))
            time.sleep(0.02)
        check(srv.count_log(r"worker 0: SIGHUP starts it now", hup) == 1,
              "the SIGHUP did not come inside the backoff: the case tested nothing")
        new = started_workers(srv, hup)
        check(sorted(slot for slot, _ in new) == [0, 1], "the roll started %s" % new)
        before = [pid for _, pid in started_workers(srv, 0)[:-len(new)]]
        kids = srv.wait_children(2, exclude=before)
        check(sorted(kids) == sorted(pid for _, pid in new),
              "children %s, the roll started %s" % (kids, new))
        everyone = [pid for _, pid in started_workers(srv)]
        term = srv.mark()
        os.kill(srv.pid, signal.SIGTERM)
        try:
            code = srv.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise CaseFailure("supervisor still running 15 s after SIGTERM, children %s:\n%s"
                              % (srv.children(), srv.tail(5))) from None
        check(code == 0, "exit code %s after SIGTERM" % code)
        check(srv.count_log(r"still alive after the drain deadline", term) == 0,
              "the supervisor had to kill workers")
        # Before Server.kill() kills the process group: an orphan would still run.
        wait_until(lambda: all(process_gone(p) for p in everyone), 5,
                   "every worker that ever ran to exit")


def case_worker_that_cannot_start_supervisor_gives_up():
    """Regression (issue 15, #7): a certificate file that holds no
    certificate.  One process exits 1; with --workers 2 every worker fails
    before it serves, and after five failures in a row in a slot (the bound
    documented in corio/app.h) the supervisor stops and exits 1 too, instead
    of restarting workers for ever behind listening sockets that queue
    clients nobody serves; its giving-up line names the worker's own error."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="corio-runner-bad-")
    try:
        bad = os.path.join(d, "bad.pem")
        with open(bad, "w") as f:
            f.write("not a certificate\n")
        r = run_cli(ARGS.echo, ["--port", "0", "--tls-cert", bad, "--tls-key", bad])
        check(r.returncode == 1, "one process: exit %d, expected 1" % r.returncode)
        with Server(ARGS.echo, "--workers", "2", "--tls-cert", bad, "--tls-key", bad) as srv:
            code = srv.wait_exit(20, " with a certificate that cannot load")
            check(code == 1, "exit code %s, expected 1:\n%s" % (code, srv.tail(5)))
            m = srv.wait_log(r"could not start, 5 times in a row; the last \(pid \d+\) [^:]*: (.*); giving up", 1)
            check("cannot load the TLS certificate %s" % bad in m.group(1),
                  "the giving-up line does not name the worker's error: %r" % m.group(0))
            starts = len(started_workers(srv))
            check(starts <= 2 * 5, "%d workers started: more than 5 per slot" % starts)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def still_open(s):
    """Whether the peer has not closed s yet (no EOF, no reset waiting)."""
    timeout = s.gettimeout()
    s.settimeout(0)  # with a timeout, Python would wait for data before recv()
    try:
        return s.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.settimeout(timeout)


def drain_case(workers):
    with Server(ARGS.echo, "--workers", str(workers), "--drain-timeout", "2s") as srv:
        if workers > 1:  # every worker serving, so each will log its drain
            socks, _ = open_until_both_own(srv, srv.wait_children(workers), srv.port, want=4)
        else:
            socks = [connect(srv.port), connect(srv.port)]
        inflight, idle = socks[0], socks[1]
        for s in socks[2:]:
            s.close()
        echo_on(inflight, b"before\n")
        echo_on(idle, b"idle\n")
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGTERM)
        wait_until(lambda: srv.count_log(r"SIGTERM: draining", mark) == workers, 5,
                   "every worker to start draining")
        # The in-flight connection goes on after SIGTERM and completes.
        data = os.urandom(256 << 10)
        t, errors = send_in_thread(inflight, data)
        got = recv_exactly(inflight, len(data))
        t.join(timeout=5)
        check(got == data and not errors, "in-flight echo after SIGTERM failed")
        inflight.shutdown(socket.SHUT_WR)
        check(recv_until_eof(inflight) == b"", "bytes after the echo")
        inflight.close()

        # New connections are refused while the server drains: before the
        # idle connection is closed, which happens at the drain deadline.
        def refused():
            try:
                s = socket.create_connection((HOST, srv.port), timeout=1)
            except (ConnectionRefusedError, ConnectionResetError):
                return True
            s.close()
            return False
        wait_until(refused, 5, "new connections to be refused during the drain", 0.05)
        check(srv.alive() and still_open(idle),
              "refused only after the drain ended: proves nothing")
        check(srv.count_log(r"drain deadline passed", mark) == 0,
              "the drain deadline passed before the refusal was seen: proves nothing")
        # The idle connection is closed by the drain deadline (2 s), not before.
        idle.settimeout(10)
        try:
            rest = recv_until_eof(idle)
        except ConnectionResetError:
            rest = b""
        check(rest == b"", "idle connection got %r" % rest)
        idle.close()
        srv.wait_log(r"drain deadline passed: remaining connections cancelled", 5, mark)
        code = srv.wait_exit(10, " after SIGTERM")
        check(code == 0, "exit code %s after SIGTERM" % code)
        check(srv.count_log(r"still alive after the drain deadline", mark) == 0,
              "the supervisor had to kill workers that did not exit after their drain")


def case_sigterm_drain_one_process():
    """SIGTERM, one process: an in-flight connection completes; new ones are
    refused (while the idle one is still open); the idle one is closed by the
    2 s drain deadline (logged); exit code 0."""
    drain_case(1)


def case_sigterm_drain_supervised():
    """The same through the supervisor with --workers 2 (its copies of the
    listening sockets must not keep accepting into a dead queue)."""
    drain_case(2)


def case_sighup_rolling_restart_refuses_nothing():
    """SIGHUP with --workers 2: while a client connects and echoes in a loop,
    every worker is replaced (new pids) and no connection attempt fails."""
    with Server(ARGS.echo, "--workers", "2") as srv:
        old = srv.wait_children(2)
        stop = threading.Event()
        errors, stats = [], {"ok": 0}

        def loop():
            end = time.monotonic() + 10  # bound, in case the main thread dies
            while not stop.is_set() and time.monotonic() < end:
                try:
                    echo_once(srv.port, b"rolling\n", timeout=3)
                    stats["ok"] += 1
                except Exception as e:  # noqa: BLE001 - recorded and asserted
                    errors.append(repr(e))
                time.sleep(0.002)
        t = threading.Thread(target=loop, daemon=True)
        t.start()
        try:
            wait_until(lambda: stats["ok"] >= 20, 5, "echoes before SIGHUP")
            mark = srv.mark()
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_log(r"SIGHUP: every worker restarted", 5, mark)
            new = srv.wait_children(2, exclude=old)
            ok0 = stats["ok"]
            wait_until(lambda: stats["ok"] >= ok0 + 20, 5, "echoes after SIGHUP")
        finally:
            stop.set()
            t.join(timeout=5)
        check(not errors, "%d failed connection(s) across SIGHUP: %s" % (len(errors), errors[:3]))
        check(not set(new) & set(old), "worker pids did not change: %s -> %s" % (old, new))


def case_sigusr1_dumps_live_tasks():
    """SIGUSR1 makes a single process, and through the supervisor every worker,
    print its live tasks (the open connection's task among them)."""
    with Server(ARGS.echo) as srv:
        s = connect(srv.port)
        echo_on(s, b"x")
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGUSR1)
        srv.wait_log(r"live task\(s\) on pid %d" % srv.pid, 5, mark)
        srv.wait_log(r"conn\s.*waiting\s+on stream read", 5, mark)
        s.close()
        check(srv.alive(), "SIGUSR1 killed the server")
    with Server(ARGS.echo, "--workers", "2") as srv:
        # A burst while the workers start: one that has not set up its
        # handlers yet must ignore SIGUSR1, not die of it.
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            os.kill(srv.pid, signal.SIGUSR1)
            time.sleep(0.0005)
        workers = srv.wait_children(2)
        socks, _ = open_until_both_own(srv, workers, srv.port, want=4)
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGUSR1)
        for w in workers:
            srv.wait_log(r"live task\(s\) on pid %d" % w, 5, mark)
        check(srv.children() == workers, "workers changed: %s -> %s" % (workers, srv.children()))
        check(srv.count_log(r"killed by signal") == 0, "SIGUSR1 killed a worker")
        for s in socks:
            s.close()


# ---- cases: chat -----------------------------------------------------------------------

def chat_join(port, n, extra=()):
    """Connects n chat clients (plus the sockets in extra, already connected)
    and waits until all are in the room: each sends a hello that the first
    client must see.  Returns (sockets, readers)."""
    socks = [connect(port) for _ in range(n)] + list(extra)
    readers = [LineReader(socks[0])]
    for i, s in enumerate(socks[1:], 1):
        s.sendall(b"hello from %d\n" % i)
        readers[0].wait_for(lambda l, i=i: l.endswith(b"hello from %d" % i), 5, "hello %d" % i)
    readers += [LineReader(s) for s in socks[1:len(socks) - len(extra)]]
    return socks, readers


def case_chat_line_reaches_all_others():
    """Three chat clients: a line from A reaches B and C, prefixed with A's
    address; A does not get its own line back."""
    with Server(ARGS.chat) as srv:
        socks, (ra, rb, rc) = chat_join(srv.port, 3)
        a = socks[0]
        name = ("%s:%d: " % a.getsockname()).encode()
        a.sendall(b"hi all\n")
        for r in (rb, rc):
            _, l = r.wait_for(lambda l: l.endswith(b"hi all"), 5, "from A")
            check(l == name + b"hi all", "line %r lacks A's prefix %r" % (l, name))
        socks[1].sendall(b"from B\n")
        ra.wait_for(lambda l: l.endswith(b"from B"), 5, "B's line at A")
        check(ra.count(lambda l: l.endswith(b"hi all")) == 0, "A got its own line back")
        for s in socks:
            s.close()


def case_chat_slow_client_dropped_others_prompt():
    """A client that never reads (tiny receive buffer) is disconnected once its
    queue fills during a flood, while a client that reads receives every line,
    lines reaching it before the slow one is dropped (the room does not wait
    for the slowest reader); a line longer than the limit disconnects its
    sender."""
    with Server(ARGS.chat) as srv:
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(5)
        slow.connect((HOST, srv.port))
        socks, (ra, rb) = chat_join(srv.port, 2, extra=[slow])
        a, flooder = socks[0], socks[1]  # ra reads a, rb reads the flooder
        mark = srv.mark()
        # The slow client absorbs a few MiB of kernel buffers before its queue
        # fills.  The flood is paced (~10 MB/s) so that a Python reader
        # thread, not the server, is never the bottleneck for `a`.
        payload, sent = b"y" * 500, 0
        kicked_at = None
        while kicked_at is None or sent < kicked_at + 200:
            check(sent < 60000, "no slow client disconnected after %d lines" % sent)
            flooder.sendall(b"".join(b"%06d %s\n" % (sent + i, payload) for i in range(20)))
            sent += 20
            if kicked_at is None and srv.count_log(r"disconnecting .*too slow", mark):
                kicked_at = sent
                before_kick = ra.count(lambda l: l.endswith(payload))
            time.sleep(0.001)
        check(srv.count_log(r"disconnecting %s:%d: too slow" % slow.getsockname(), mark) == 1
              and srv.count_log(r"too slow", mark) == 1, "not (only) the slow client was dropped:\n"
              + srv.tail(5))
        check(before_kick > 0, "A received no flood line until the slow client was dropped")
        ra.wait_for(lambda l: b" %06d " % (sent - 1) in l, 10, "the last flood line at A")
        got = ra.count(lambda l: l.endswith(payload))
        check(got == sent, "A received %d of %d flood lines" % (got, sent))
        a.sendall(b"probe\n")
        rb.wait_for(lambda l: l.endswith(b"probe"), 10, "the probe at the flooder")
        # The slow client was cut off: EOF (or a reset) after fewer lines.
        slow.settimeout(10)
        try:
            rest = recv_until_eof(slow)
        except ConnectionResetError:
            rest = b""
        check(rest.count(b"\n") < sent, "the slow client got every line")
        slow.close()
        # Over-long line: its sender is disconnected, the others stay.
        mark = srv.mark()
        a.sendall(b"z" * 2000 + b"\n")
        srv.wait_log(r"line over \d+ bytes", 5, mark)
        wait_until(lambda: ra.eof, 5, "A to be disconnected")
        with connect(srv.port) as d:  # the flooder is still in the room, and the room works
            def heard():
                d.sendall(b"newcomer\n")
                try:
                    rb.wait_for(lambda l: l.endswith(b"newcomer"), 0.2, "")
                    return True
                except CaseFailure:
                    return False
            wait_until(heard, 5, "a newcomer's line at the flooder")
        for s in socks:
            s.close()


def case_socket_activation_serves_fd_3():
    """systemd-style LISTEN_PID/LISTEN_FDS: the socket on fd 3 is served, by
    one process and by supervised workers, and --port is not needed."""
    ls = socket.socket()
    try:
        ls.bind((HOST, 0))
        ls.listen(64)
        port = ls.getsockname()[1]
        for workers in ("1", "2"):
            proc = harness.start_activated(ARGS.echo, ls, "--workers", workers)
            try:
                line = proc.stderr.readline().decode(errors="replace")
                check("listening on inherited fd 3 (port %d)" % port in line,
                      "unexpected first log line: %r" % line)
                for i in range(5):
                    echo_once(port, b"activated %d\n" % i)  # raises unless echoed
                proc.send_signal(signal.SIGTERM)
                check(proc.wait(timeout=10) == 0, "exit code %s" % proc.returncode)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                proc.stderr.close()
    finally:
        ls.close()


def tls_echo(port, cafile, payload=b"secret\n"):
    """Echo over TLS, verifying the server against cafile; returns the
    server certificate's CN."""
    import ssl
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((HOST, port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as s:
            echo_on(s, payload)
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def case_tls_flags_serve_tls_and_sighup_reloads():
    """--tls-cert/--tls-key serve TLS (a plain client gets no echo); SIGHUP
    in one process reloads the certificate; a bad one keeps the old."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="corio-runner-tls-")
    try:
        crt_a, key_a = make_cert(d, "corio-a")
        crt_b, key_b = make_cert(d, "corio-b")
        both = os.path.join(d, "both.pem")
        with open(both, "w") as f:
            f.write(open(crt_a).read() + open(crt_b).read())
        live_crt, live_key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
        shutil.copy(crt_a, live_crt)
        shutil.copy(key_a, live_key)
        with Server(ARGS.echo, "--tls-cert", live_crt, "--tls-key", live_key) as srv:
            check(tls_echo(srv.port, both) == "corio-a", "first certificate not served")
            with connect(srv.port) as s:  # plain bytes to a TLS port: closed, no echo
                s.sendall(b"GET / HTTP/1.1\r\n\r\n")
                try:
                    back = recv_until_eof(s)
                except ConnectionResetError:
                    back = b""
                check(b"GET /" not in back, "plain bytes were echoed by a TLS port")
            shutil.copy(crt_b, live_crt)
            shutil.copy(key_b, live_key)
            mark = srv.mark()
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_log(r"TLS certificate reloaded", 5, start=mark)
            check(tls_echo(srv.port, both) == "corio-b", "reloaded certificate not served")
            with open(live_crt, "w") as f:
                f.write("not a certificate\n")
            mark = srv.mark()
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_log(r"keeping the old certificate", 5, start=mark)
            check(tls_echo(srv.port, both) == "corio-b", "a failed reload changed the certificate")
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---- harness -------------------------------------------------------------------------------

CASES = [
    case_bad_flag_values_exit_2_naming_the_flag,
    case_help_and_version_exit_0,
    case_soft_fd_limit_raised_to_the_hard_limit,
    case_signal_during_teardown_does_not_kill,
    case_unix_and_port_refused_together,
    case_unix_socket_missing_directory_named,
    case_unix_stale_socket_replaced_live_refused,
    case_started_together_one_serves,
    case_echo_round_trip_and_half_close,
    case_reset_mid_write_spares_others,
    case_never_reading_client_bounded_rss,
    case_thousand_concurrent_clients_one_worker,
    case_max_conns_holds_third_connection,
    case_emfile_no_spin_and_recovery,
    case_two_workers_share_connections,
    case_second_server_on_taken_port_refused,
    case_reuse_port_lets_a_second_share,
    case_killed_worker_restarted_others_serve,
    case_sigterm_during_restart_backoff_no_spin,
    case_supervisor_killed_workers_exit,
    case_sighup_in_restart_backoff_no_orphan,
    case_worker_that_cannot_start_supervisor_gives_up,
    case_sigterm_drain_one_process,
    case_sigterm_drain_supervised,
    case_sighup_rolling_restart_refuses_nothing,
    case_sigusr1_dumps_live_tasks,
    case_socket_activation_serves_fd_3,
    case_tls_flags_serve_tls_and_sighup_reloads,
    case_chat_line_reaches_all_others,
    case_chat_slow_client_dropped_others_prompt,
]


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--echo", required=True)
    p.add_argument("--chat", required=True)
    p.add_argument("--signal-shim", help="tests/signal_shim.c's library (a teardown case)")
    p.add_argument("-k", action="append", default=[], help="run only cases containing this")
    p.add_argument("-v", action="store_true", help="print server logs of failed cases")
    ARGS = p.parse_args()
    raise_fd_limit()
    cases = pick(CASES, ARGS.k)
    failed = []
    t_all = time.monotonic()
    for case in cases:
        name = case.__name__[len("case_"):]
        try:
            if not run_case(name, case, verbose=ARGS.v):
                failed.append(name)
                for srv in CASE_SERVERS:
                    print("  server %d log tail:\n    %s"
                          % (srv.pid, srv.tail(15).replace("\n", "\n    ")), flush=True)
        finally:
            kill_all()
            CASE_SERVERS.clear()
    return summary(len(cases) - len(failed), len(failed), t_all, failed)


if __name__ == "__main__":
    sys.exit(main())
