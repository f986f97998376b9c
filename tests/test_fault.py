#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault tests of the server under load (issue 21 §3):

- SIGTERM under a steady load: clients in a keep-alive exchange that retry
  nothing (each sends its next request as soon as the last response is
  read) see no failed request: every connection is closed only after a
  response that says "Connection: close", by one process and by a
  supervisor of two workers, and the server exits 0.
- Descriptor exhaustion: hello under RLIMIT_NOFILE 64 (prlimit) and more
  clients than it has descriptors.  Those it can take are served; it then
  holds all 64 descriptors, and every client beyond them is refused (the
  connection closed or reset: libuv's reserve-fd trick, framework/net/
  server.c on_connection), never left hanging, whether it sent a request or
  sits silent in the backlog.  Meanwhile the held connections are still
  served, and the server's CPU time (/proc/PID/stat) over the exhausted
  period is a small fraction of the wall time: shedding is not a busy loop.
  Once the held connections close, new clients are served again (polled),
  the descriptors come back to their count before the load, and the server
  exits 0 on SIGTERM.
- kill -9 of one of two workers under a keep-alive load: every connection
  is mapped to the worker holding its socket (/proc/net/tcp inode ->
  /proc/PID/fd) before the kill.  The supervisor logs the death and the
  replacement's "serves"; the connections on the surviving worker see no
  error at all, an error is seen only on a connection the killed worker
  held (at most one per client, which then reconnects and goes on without
  another), the replacement worker takes connections (a new one is found
  in its /proc/PID/fd), and the supervisor exits 0 on SIGTERM.

    test_fault.py --hello build/examples/hello/hello [-k NAME] [--wrap ...]

Every wait polls with a deadline (harness.py); no timing thresholds but
the CPU share of the exhausted period.  Load and CPU cases skip, visibly,
under --wrap.  Python standard library only (and prlimit, util-linux).
"""
import argparse
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

import harness
from harness import HOST, CaseFailure, Conn, check, wait_until

ARGS = None
Server = harness.Server


class SteadyClient(threading.Thread):
    """One keep-alive connection sending GET /plaintext back to back until
    the server closes it.  outcome: "closed" (the last response said
    Connection: close and the server closed after it), or what went wrong
    ("failed: ..." for a request sent and never answered)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.done, self.outcome = port, 0, None

    def run(self):
        try:
            c = Conn(self.port)
        except OSError as e:
            self.outcome = "failed: connect: %r" % e
            return
        try:
            while True:
                try:
                    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, hdrs, body, _ = c.response()
                except Exception as e:  # noqa: BLE001 - the outcome the case asserts
                    self.outcome = "failed: request %d unanswered: %r" % (self.done + 1, e)
                    return
                if status != 200 or body != b"Hello, World!":
                    self.outcome = "failed: %d %r" % (status, body)
                    return
                self.done += 1
                if hdrs.get("connection") == "close":
                    try:
                        c.expect_eof()
                        self.outcome = "closed"
                    except Exception as e:  # noqa: BLE001
                        self.outcome = "failed: no close after Connection: close: %r" % e
                    return
        finally:
            c.close()


def steady_load_sigterm(workers):
    args = ["--workers", str(workers)] if workers > 1 else []
    with Server(ARGS.hello, *args) as srv:
        if workers > 1:
            srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=workers)
        clients = [SteadyClient(srv.port) for _ in range(16)]
        for c in clients:
            c.start()
        wait_until(lambda: all(c.done >= 20 for c in clients), harness.DEADLINE,
                   "every client in its exchange")
        os.killpg(srv.pid, signal.SIGTERM)
        for c in clients:
            c.join(harness.DEADLINE)
            check(not c.is_alive(), "a client still running after the drain")
        bad = [c.outcome for c in clients if c.outcome != "closed"]
        check(not bad, "%d of %d clients failed: %s" % (len(bad), len(clients), bad[:4]))
        check(srv.wait_exit() == 0, "exit code")


def case_sigterm_steady_load_one_process():
    steady_load_sigterm(1)


def case_sigterm_steady_load_two_workers():
    steady_load_sigterm(2)


# ---- /proc: CPU time, descriptors, which process holds a connection --------------------------

def cpu_seconds(pid):
    """User + system CPU time of pid so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def nofile_limit(pid):
    """The soft RLIMIT_NOFILE of pid (/proc/PID/limits)."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise CaseFailure("no open-files limit for pid %d" % pid)


def fd_targets(pid):
    """{fd number: readlink target} of pid's descriptors."""
    out = {}
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except OSError:
            pass  # closed meanwhile
    return out


TCP_STATES = {"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1",
              "05": "FIN_WAIT2", "06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT",
              "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING"}


def tcp_table():
    """{inode: (local port, remote port, state)} of the IPv4 TCP sockets
    (/proc/net/tcp; this network namespace)."""
    out = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            inode = int(p[9])
            if inode:
                out[inode] = (int(p[1].split(":")[1], 16), int(p[2].split(":")[1], 16),
                              TCP_STATES.get(p[3], p[3]))
    return out


def census(pid):
    """What pid's descriptors are: {"other": descriptors that are not TCP
    sockets (files, pipes, epoll, eventfd, Unix sockets...), "tcp":
    [(local port, remote port, state)]}."""
    table = tcp_table()
    other, tcp = 0, []
    for target in fd_targets(pid).values():
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m and int(m.group(1)) in table:
            tcp.append(table[int(m.group(1))])
        else:
            other += 1
    return {"other": other, "tcp": sorted(tcp)}


def socket_owners(pids, server_port):
    """{client port: pid} for every connection to server_port whose
    server-side socket one of pids holds."""
    by_inode = {inode: t for inode, t in tcp_table().items() if t[0] == server_port}
    out = {}
    for pid in pids:
        for target in fd_targets(pid).values():
            m = re.fullmatch(r"socket:\[(\d+)\]", target)
            if m and int(m.group(1)) in by_inode:
                local, remote, state = by_inode[int(m.group(1))]
                if state != "LISTEN":
                    out[remote] = pid
    return out


def metric(port, name):
    """The value of one sample of GET /metrics (name with its labels)."""
    c = Conn(port)
    try:
        c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, _ = c.response()
    finally:
        c.close()
    check(status == 200, "GET /metrics: %d" % status)
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise CaseFailure("no %s in /metrics" % name)


# ---- descriptor exhaustion -----------------------------------------------------------------

FD_LIMIT = 64
REQ = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"


def try_client(port):
    """A new connection sending one request: ("served", Conn) on a 200, or
    ("refused", why) when the server closed or reset it without an answer.
    Anything else (another status, the client's timeout: a hang) fails."""
    try:
        c = Conn(port)
    except OSError as e:
        return "refused", "connect: %r" % e
    try:
        c.send(REQ)
        status, _, body, _ = c.response()
    except (EOFError, ConnectionError) as e:
        c.close()
        return "refused", repr(e)
    except socket.timeout:
        c.close()
        raise CaseFailure("a client beyond the limit got neither an answer nor a close "
                          "within %.0f s" % harness.DEADLINE) from None
    except BaseException:
        c.close()
        raise
    check(status == 200 and body == b"Hello, World!", "%d %r" % (status, body[:80]))
    return "served", c


def exchange(c):
    c.send(REQ)
    status, _, body, _ = c.response()
    check(status == 200 and body == b"Hello, World!", "a held connection: %d %r" % (status, body))


def refused_silently(s):
    """Whether the silent client socket s was closed or reset by the server
    (polled; never blocks)."""
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def case_fd_exhaustion_sheds_without_spinning_and_recovers():
    if harness.skip_under_wrap("CPU time and descriptor counts at RLIMIT_NOFILE"):
        return
    if not shutil.which("prlimit"):
        print("    SKIP: no prlimit (Debian package util-linux)", flush=True)
        return
    with Server(ARGS.hello, wrap=("prlimit", "--nofile=%d:%d" % (FD_LIMIT, FD_LIMIT)),
                name="hello (RLIMIT_NOFILE %d)" % FD_LIMIT) as srv:
        check(nofile_limit(srv.pid) == FD_LIMIT, "the limit did not take: %d"
              % nofile_limit(srv.pid))
        base = census(srv.pid)
        held, refused, silent = [], [], []
        try:
            # More clients than descriptors, one after another: the first
            # ones are served (and kept open), the rest refused.
            for _ in range(FD_LIMIT + 16):
                outcome, x = try_client(srv.port)
                (held if outcome == "served" else refused).append(x)
            check(refused and held, "served %d, refused %d" % (len(held), len(refused)))
            check(not any(outcome == "served" for outcome, _ in
                          (try_client(srv.port) for _ in range(3))),
                  "a client served beyond the first refusal")
            # (Polled: while libuv sheds a connection, its reserve
            # descriptor is closed for a moment.)
            wait_until(lambda: len(fd_targets(srv.pid)) == FD_LIMIT, harness.DEADLINE,
                       "the server holding all %d descriptors" % FD_LIMIT)
            # The exhausted period: the held connections keep being served,
            # new clients keep coming (with a request, or silent in the
            # backlog), and the server's CPU time is measured over it.
            cpu0, t0 = cpu_seconds(srv.pid), time.monotonic()
            rounds = 0
            while time.monotonic() - t0 < 2.0 or rounds < 5:
                for c in held:
                    exchange(c)
                for _ in range(3):
                    outcome, x = try_client(srv.port)
                    check(outcome == "refused", "a client served while all %d descriptors "
                          "were held" % FD_LIMIT)
                    refused.append(x)
                silent.append(socket.create_connection((HOST, srv.port), timeout=harness.DEADLINE))
                rounds += 1
                time.sleep(0.1)  # pacing the load, not waiting for anything
            wait_until(lambda: all(refused_silently(s) for s in silent), harness.DEADLINE,
                       "the silent clients in the backlog refused")
            silent_refused = len(silent)
            cpu, wall = cpu_seconds(srv.pid) - cpu0, time.monotonic() - t0
            check(srv.alive(), "the server died at the limit:\n" + srv.tail())
            print("    %d served, %d refused (%d silent); server CPU %.3f s over %.2f s "
                  "exhausted (%.1f%%)" % (len(held), len(refused) + silent_refused,
                                          silent_refused, cpu, wall, 100 * cpu / wall),
                  flush=True)
            check(cpu < 0.25 * wall, "the server used %.2f s of CPU in %.2f s at the limit: "
                  "a busy loop" % (cpu, wall))
        finally:
            for c in held:
                c.close()
            for s in silent:
                s.close()
        # Recovery: the held connections closed, new clients are served.
        t1 = time.monotonic()
        served = []

        def one_served():
            outcome, x = try_client(srv.port)
            if outcome == "served":
                served.append(x)
            return outcome == "served"
        wait_until(one_served, harness.DEADLINE, "a client served after the held ones closed",
                   interval=0.02)
        print("    served again %.3f s after the held connections closed"
              % (time.monotonic() - t1), flush=True)
        for c in served:
            exchange(c)  # a working connection, not a lucky one
            c.close()
        wait_until(lambda: census(srv.pid) == base, harness.DEADLINE,
                   "the descriptors back to %r (now %r)" % (base, census(srv.pid)))
        accepted = metric(srv.port, "corio_connections_accepted_total")
        shed = metric(srv.port, 'corio_accept_errors_total{kind="fd_limit"}')
        print("    /metrics: %d accepted, accept_errors fd_limit %d" % (accepted, shed),
              flush=True)
        check(accepted >= len(held) + 1, "connections_accepted_total %d" % accepted)
        srv.stop()


# ---- kill -9 of one worker --------------------------------------------------------------------

class KeepAliveClient(threading.Thread):
    """A keep-alive connection sending GET /plaintext until told to stop;
    on an error it notes which connection (its client port) failed and
    how, and connects again.  conns: every client port it used, in order."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.done = 0
        self.stop = threading.Event()
        self.conns, self.errors = [], []  # errors: (client port, what)
        self.fatal = None

    def run(self):
        c = None
        try:
            while not self.stop.is_set():
                if c is None:
                    try:
                        c = Conn(self.port)
                    except OSError as e:
                        self.errors.append((None, "connect: %r" % e))
                        continue
                    self.conns.append(c.s.getsockname()[1])
                try:
                    c.send(REQ)
                    status, _, body, _ = c.response()
                except (OSError, EOFError) as e:
                    self.errors.append((self.conns[-1], repr(e)))
                    c.close()
                    c = None
                    continue
                if status != 200 or body != b"Hello, World!":
                    self.fatal = "%d %r" % (status, body[:80])
                    return
                self.done += 1
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.fatal = repr(e)
        finally:
            if c:
                c.close()


def case_kill9_one_worker_under_load():
    if harness.skip_under_wrap("a load on two workers"):
        return
    with Server(ARGS.hello, "--workers", "2") as srv:
        # From the first line: the workers may have said so before the
        # server's listening line was seen (a mark taken now would skip it).
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        with srv.cond:
            pids = {int(m.group(2)): int(m.group(1)) for m in
                    (re.search(r"worker (\d+) \(pid (\d+)\) serves", ln)
                     for ln in srv.lines) if m}
        check(len(pids) == 2, "worker pids %r" % pids)
        clients = [KeepAliveClient(srv.port) for _ in range(16)]
        for c in clients:
            c.start()
        try:
            wait_until(lambda: all(c.done >= 5 for c in clients), harness.DEADLINE,
                       "every client in its exchange")
            owners = socket_owners(list(pids), srv.port)
            first = {c: c.conns[0] for c in clients}
            check(all(c.conns == [first[c]] and first[c] in owners for c in clients),
                  "connections not mapped to a worker: %r, owners %r"
                  % ([c.conns for c in clients], owners))
            on = {pid: [c for c in clients if owners[first[c]] == pid] for pid in pids}
            victim = max(pids, key=lambda pid: len(on[pid]))
            survivor = next(pid for pid in pids if pid != victim)
            check(on[survivor], "every connection on pid %d: %r" % (victim, owners))
            check(all(not c.errors and not c.fatal for c in clients),
                  "errors before the kill: %r" % [(c.errors, c.fatal) for c in clients])
            slot = pids[victim]
            mark = srv.mark()
            t0 = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            srv.wait_log(r"worker %d \(pid %d\) was killed by signal 9.*restarting"
                         % (slot, victim), start=mark)
            m = srv.wait_log(r"worker %d \(pid (\d+)\) serves" % slot, start=mark)
            newpid = int(m.group(1))
            restarted = time.monotonic() - t0
            after = {c: c.done for c in clients}
            wait_until(lambda: all(c.done >= after[c] + 20 or c.fatal for c in clients),
                       harness.DEADLINE, "every client going on after the restart")
        finally:
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(harness.DEADLINE)
        check(not any(c.is_alive() for c in clients), "a client still running")
        check(not any(c.fatal for c in clients), "clients failed: %r"
              % [c.fatal for c in clients if c.fatal])
        bad = [(c.conns, c.errors) for c in clients
               if any(port is None or owners.get(port) != victim for port, _ in c.errors)]
        check(not bad, "errors on connections the killed worker did not hold: %r" % bad[:4])
        check(not any(c.errors for c in on[survivor]), "clients on the surviving worker saw "
              "errors: %r" % [c.errors for c in on[survivor] if c.errors])
        check(all(len(c.errors) <= 1 for c in clients), "a client failed more than once: %r"
              % [c.errors for c in clients if len(c.errors) > 1])
        hit = sum(1 for c in on[victim] if c.errors)
        print("    %d connections on the killed worker (%d saw an error), %d on the survivor "
              "(0 errors, %d requests); replacement serving %.3f s after the kill"
              % (len(on[victim]), hit, len(on[survivor]),
                 sum(c.done for c in on[survivor]), restarted), flush=True)
        # The replacement takes connections: one of a few new ones is its.
        extra = []
        try:
            def on_new_worker():
                c = Conn(srv.port)
                extra.append(c)
                exchange(c)
                return socket_owners([newpid], srv.port).get(c.s.getsockname()[1]) == newpid
            wait_until(on_new_worker, harness.DEADLINE, "a connection on the new worker")
        finally:
            for c in extra:
                c.close()
        srv.stop()


CASES = [case_sigterm_steady_load_one_process, case_sigterm_steady_load_two_workers,
         case_fd_exhaustion_sheds_without_spinning_and_recovers,
         case_kill9_one_worker_under_load]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    return harness.run_cases(CASES, ARGS.k)


if __name__ == "__main__":
    sys.exit(main())
