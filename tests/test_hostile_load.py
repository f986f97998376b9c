#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile clients under load (issue 21 §2): what a server facing the
internet meets in numbers, and its recovery afterwards.

- slowloris: 5,000 connections trickle header bytes (one byte per
  connection per round) while a well-behaved keep-alive client keeps at
  least 90 % of the throughput it had alone; the server's header deadline
  answers every slow connection 408 and closes it.
- slow readers: clients request 16 MiB each and never read (small
  SO_RCVBUF): the server's RSS stays within a bound derived from the
  stream's write high-water mark, and the send timeout closes them.
- connection flood: 20,000 connect-and-reset per second for ten seconds
  (tests/flood_client); half-open connections that never send; resets in
  the middle of a request head, of a body, of a response.

Throughout each hostile phase a well-behaved client (Steady) sends
requests and must get every one answered 200; afterwards the server must
come back to its baseline of open fds (/proc/PID/fd) and to its baseline
RSS within a stated margin, and exit 0 on SIGTERM.

    test_hostile_load.py --hello build/examples/hello/hello
                         --server build/tests/http_test_server
                         --flood build/tests/flood_client [-k NAME] [--wrap ...]

Every wait polls with a deadline (harness.py).  The only timing threshold is
the throughput ratio under the slowloris, which compares the best of many
short rounds (fixed request counts) alone and under attack, the phases
interleaved in the same run, the processes measured in SCHED_FIFO when root:
on a 2-CPU machine shared with other work one round can lose its CPU to
anything, the best of many rarely does.  The flood's rate is reported, not
asserted.  Load and timing mean nothing under valgrind: those cases skip
visibly under --wrap (the half-open connections and the resets run there,
smaller, and check fds and the server's health but not RSS).  Python
standard library only; the slowloris attacker runs as a child process of
this script (--slowloris-child) so that it takes no CPU from the measuring
client's interpreter.
"""
import argparse
import functools
import json
import os
import re
import selectors
import socket
import subprocess
import sys
import threading
import time

import harness
from harness import HOST, MIB, Conn, check, raise_fd_limit, wait_until

ARGS = None
Server = functools.partial(harness.Server, env_drop=("CORIO_", "HTTP_TEST_"))
KIB = 1024

# What one connection may hold in the server, from its configuration
# (framework/net/stream.c, framework/runtime/loop.c, framework/coro/stack.c):
WRITE_HIGH = 64 * KIB  # a stream's write high-water mark: a writer waits above it
PIECE = 64 * KIB  # http_test_server's /big writes (each queued whole, then waited on)
STACK = 64 * KIB  # a task's coroutine stack (release builds)
READ_CHUNK = 16 * KIB  # a stream's read buffer
# The pools a server keeps after a burst, by design: 256 hot stacks of the
# loop's pool (1,024 pooled at most, the cold ones one page each), 256 read
# buffers of 16 KiB, 256 arena chunks of 4 KiB.
POOLS = 256 * STACK + 768 * 4 * KIB + 256 * READ_CHUNK + 256 * 4 * KIB
# Slack for the allocator (glibc's heap does not give back memory below its
# top) after thousands of connections came and went.
HEAP_SLACK = 8 * MIB
RSS_MARGIN = POOLS + HEAP_SLACK

GET = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"

# After a burst of connections the heap they held is free, but glibc kept it
# resident (5,000 slow connections: RSS 4 -> 47 MiB, and more after each
# wave, with 5.4 MiB in use).  The server now trims the heap a second after
# its connections fall to a quarter of a peak of 256 or more
# (framework/net/server.c), so every case is held to RSS_MARGIN after a
# burst too.


def burst_margin(n, heap_per_conn):
    """The RSS margin after a burst of n connections that each held
    heap_per_conn bytes of heap: RSS_MARGIN (the server gives the burst's
    heap back)."""
    del n, heap_per_conn
    return RSS_MARGIN


def bulk_deadline(srv):
    """The deadline of a wait on thousands of connections: the harness's,
    three times over for a sanitized server (ASan: CI saw 5,000 idle
    connections take longer than 10 s to be accepted)."""
    return harness.DEADLINE * (3 if srv.sanitized() else 1)


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def measure_rss(srv):
    """The server's RSS in bytes, or None where it says nothing (ASan,
    valgrind)."""
    return None if srv.sanitized() else srv.rss_kib() * KIB


class Baseline:
    """A server's open fds and RSS with no client connected, after one
    warm-up request; recovered() polls until it is back to them."""

    def __init__(self, srv):
        self.srv = srv
        self.fds = fd_count(srv.pid)
        c = Conn(srv.port)
        try:
            c.send(GET)
            check(c.response()[0] == 200, "warm-up request")
        finally:
            c.close()
        wait_until(lambda: fd_count(srv.pid) == self.fds, bulk_deadline(srv),
                   "the warm-up connection's fd closed")
        self.rss = measure_rss(srv)

    def recovered(self, margin=RSS_MARGIN):
        """Polls until the server holds its baseline fds again and its RSS
        is within margin of the baseline; returns (fds, rss)."""
        srv = self.srv
        try:
            wait_until(lambda: fd_count(srv.pid) == self.fds, bulk_deadline(srv),
                       "the server back to its %d fds" % self.fds, interval=0.05)
        except harness.CaseFailure:
            raise harness.CaseFailure("the server holds %d fds, %d before"
                                      % (fd_count(srv.pid), self.fds)) from None
        rss = measure_rss(srv)
        if self.rss is not None:
            try:
                wait_until(lambda: measure_rss(srv) <= self.rss + margin, bulk_deadline(srv),
                           "RSS back within %.1f MiB of %.1f MiB" % (margin / MIB, self.rss / MIB),
                           interval=0.05)
            except harness.CaseFailure:
                raise harness.CaseFailure("RSS %.1f MiB, baseline %.1f MiB + margin %.1f MiB"
                                          % (measure_rss(srv) / MIB, self.rss / MIB,
                                             margin / MIB)) from None
            rss = measure_rss(srv)
        print("    fds %d -> %d; RSS %s -> %s (margin %.1f MiB)"
              % (self.fds, fd_count(srv.pid), mib(self.rss), mib(rss), margin / MIB), flush=True)
        return fd_count(srv.pid), rss


def mib(n):
    return "n/a" if n is None else "%.1f MiB" % (n / MIB)


def within(rss, bound):
    """rss <= bound, or True where RSS says nothing (None: ASan, valgrind)."""
    return rss is None or bound is None or rss <= bound


def metrics(port):
    """examples/hello's /metrics as {name (with labels): value}."""
    c = Conn(port)
    try:
        c.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _, body, raw = c.response()
        check(status == 200, raw)
    finally:
        c.close()
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


class Steady(threading.Thread):
    """A well-behaved client: GET /plaintext on keep-alive connections, one
    request every `pace` seconds (a browser, not a benchmark: it leaves the
    CPUs to the attack) and a new connection every `per_conn` requests (so
    that accepting is exercised too), until stop(); every request must be
    answered 200 within the harness deadline.  errors lists what went
    wrong."""

    def __init__(self, port, per_conn=20, pace=0.005):
        super().__init__(daemon=True)
        self.port, self.per_conn, self.pace = port, per_conn, pace
        self.done, self.conns, self.errors = 0, 0, []
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set() and not self.errors:
            try:
                c = Conn(self.port)
            except OSError as e:
                self.errors.append("connect: %r" % e)
                return
            self.conns += 1
            i, step, last = 0, "send", time.monotonic()
            try:
                for i in range(self.per_conn):
                    step = "send"
                    c.send(GET)
                    step = "response"
                    status, _, body, raw = c.response()
                    if status != 200 or body != b"Hello, World!":
                        self.errors.append("request %d: %r" % (self.done + 1, raw))
                        return
                    self.done += 1
                    last = time.monotonic()
                    if self.halt.wait(self.pace):  # the client's pace, not a wait for the server
                        break
            except Exception as e:  # noqa: BLE001 - the outcome the case asserts
                self.errors.append("request %d (the %d. on connection %d, %.3f s after the last "
                                   "answer) failed at its %s: %r"
                                   % (self.done + 1, i + 1, self.conns, time.monotonic() - last,
                                      step, e))
            finally:
                c.close()

    def stop(self):
        self.halt.set()
        self.join(harness.DEADLINE)
        check(not self.is_alive(), "the well-behaved client is stuck")
        check(not self.errors, "the well-behaved client failed: %s" % self.errors[:3])


def steady_during(srv, what, fn):
    """Runs fn() with a Steady client going; asserts that it got answers
    during fn and no error.  Returns fn's result."""
    st = Steady(srv.port)
    st.start()
    wait_until(lambda: st.done > 0 or st.errors, harness.DEADLINE, "a first answer")
    before = st.done
    try:
        out = fn()
        # Answered right to the end: one more answer once fn is over (fn
        # may be quicker than the client's pace).
        end = st.done
        wait_until(lambda: st.done > end or st.errors, harness.DEADLINE,
                   "an answer after %s" % what)
    finally:
        during = st.done - before
        st.stop()
    print("    well-behaved client: %d requests on %d connections answered 200 during %s"
          % (during, st.conns, what), flush=True)
    return out


def run_flood(port, *args, count, rate, seconds):
    """Runs tests/flood_client; returns its JSON line as a dict."""
    cmd = [ARGS.flood, "--port", str(port), "--count", str(count), "--rate", str(rate),
           "--seconds", str(seconds), *args]
    p = subprocess.run(cmd, capture_output=True, timeout=seconds + harness.DEADLINE)
    check(p.returncode == 0, "flood_client exited %d: %r" % (p.returncode, p.stderr))
    return json.loads(p.stdout)


def reset_close(sock):
    """Closes sock with an RST (SO_LINGER {1, 0})."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


def connect_many(port, n, rcvbuf=None):
    """n connected non-blocking sockets (their connects overlap)."""
    socks, sel = [], selectors.DefaultSelector()
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            if rcvbuf:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            s.setblocking(False)
            s.connect_ex((HOST, port))
            sel.register(s, selectors.EVENT_WRITE)
        pending = n
        deadline = time.monotonic() + harness.DEADLINE * 2
        while pending:
            left = deadline - time.monotonic()
            check(left > 0, "%d of %d connects still pending" % (pending, n))
            for key, _ in sel.select(min(left, 0.5)):
                err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                check(err == 0, "connect failed: %s" % os.strerror(err))
                sel.unregister(key.fileobj)
                pending -= 1
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()
    return socks


# ---- 1. slowloris ----------------------------------------------------------------------------

SLOW_HEAD = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Slow: "
TICKS = 50  # the attacker's sends per interval, each to a slice of its connections


def slowloris_child(port, n, interval, hold):
    """The attacker (a child process), driven by lines on stdin: "open K"
    makes K more connections (n in all, over several commands), each sent
    one more byte of a head that never ends every `interval` seconds until
    the server closes it, and answers "ready N" (N open in all) once they
    are connected and have sent a byte; "drop" resets them all
    and answers "dropped"; "mark" records how many are still open, and the
    child ends when the server has closed them all or `hold` seconds later,
    printing one line of JSON (how the server closed them)."""
    sel = selectors.DefaultSelector()
    state = {}  # socket -> [bytes sent, bytes received]
    sel.register(sys.stdin, selectors.EVENT_READ)
    outcome = {"waves": 0, "open_at_mark": None, "status_408": 0, "other_status": 0,
               "eof_without_answer": 0, "reset": 0, "ticks": 0}
    mark_at, next_round = None, time.monotonic() + interval / TICKS

    def closed(s, how):
        sel.unregister(s)
        got = state.pop(s)[1]
        if got.startswith(b"HTTP/1.1 408 "):
            outcome["status_408"] += 1
        elif got:
            outcome["other_status"] += 1
            outcome.setdefault("first_other", got[:80].decode("latin-1"))
        else:
            outcome[how] += 1
        s.close()

    def command(line):
        nonlocal mark_at, next_round
        if line.startswith("open "):
            if not state:
                outcome["waves"] += 1
            for s in connect_many(port, int(line.split()[1])):
                s.send(SLOW_HEAD[:1])
                state[s] = [1, b""]
                sel.register(s, selectors.EVENT_READ)
            next_round = time.monotonic() + interval / TICKS
            print("ready %d" % len(state), flush=True)
        elif line == "drop":
            for s in list(state):
                sel.unregister(s)
                state.pop(s)
                reset_close(s)
            print("dropped", flush=True)
        elif line == "mark" and mark_at is None:
            mark_at = time.monotonic()
            outcome["open_at_mark"] = len(state)

    while mark_at is None or (state and time.monotonic() < mark_at + hold):
        for key, _ in sel.select(max(0.0, next_round - time.monotonic())):
            s = key.fileobj
            if s is sys.stdin:
                line = sys.stdin.readline()
                if line:
                    command(line.strip())
                elif mark_at is None:
                    return  # the test went away
                else:
                    sel.unregister(sys.stdin)
                continue
            try:
                d = s.recv(4096)
            except ConnectionResetError:
                closed(s, "reset")
                continue
            if d:
                state[s][1] += d
            else:
                closed(s, "eof_without_answer")
        if time.monotonic() >= next_round:
            # A slice of the connections per tick, so that each gets a byte
            # per interval and the attack's cost is spread evenly.
            outcome["ticks"] += 1
            socks = list(state)
            per_tick = -(-len(socks) // TICKS)
            start = (outcome["ticks"] % TICKS) * per_tick
            for s in socks[start:start + per_tick]:
                st = state[s]
                try:
                    s.send(SLOW_HEAD[st[0]:st[0] + 1] or b"a")
                    st[0] += 1
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass  # closed by the server: the read side says how
            next_round = time.monotonic() + interval / TICKS
    outcome["still_open"] = len(state)
    print(json.dumps(outcome), flush=True)


def request_rate(port, n):
    """n GET /plaintext, one at a time on one keep-alive connection;
    returns requests per second.  Every answer must be a 200."""
    c = Conn(port)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            c.send(GET)
            status, _, _, raw = c.response()
            check(status == 200, "a request failed: %r" % raw)
        return n / (time.perf_counter() - t0)
    finally:
        c.close()


def realtime(pids, on):
    """Puts the main thread of each pid (0: this thread) in SCHED_FIFO
    (priority 1) or back in SCHED_OTHER; returns whether it could (root)."""
    try:
        for pid in pids:
            if on:
                os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(1))
            else:
                os.sched_setscheduler(pid, os.SCHED_OTHER, os.sched_param(0))
        return True
    except (OSError, AttributeError):
        return False


def own_slowloris_keeps_throughput_and_header_deadline_closes():
    """5,000 connections each send one more byte of a head that never ends
    every second.  A keep-alive client keeps at least 90 % of the
    throughput it has alone: measured in rounds of 700 requests, 6 alone
    then 6 under the attack (the attacker resets its connections between
    the phases), the best round under the attack against the best alone,
    every answer a 200.  Four pairs of phases at least; on a 2-CPU machine
    shared with other work a phase's rounds can all lose their CPU, so
    while the ratio is below 0.9 more pairs are added, up to eight, both
    sides growing alike (the bests converge on what each side can do, and a
    real loss stays a loss).  The last wave of slow connections is left to
    the server's header deadline: each gets a 408 and is closed.  A first
    wave, not measured, lets the server fault in the memory 5,000
    connections take; during the measurement the client, the server and
    the attacker run SCHED_FIFO (when root: other jobs on the machine then
    take no CPU from them).  While
    they are held the server holds at most a read buffer, a stack, an
    arena chunk and a few structs per slow connection."""
    if harness.skip_under_wrap("5,000 slow connections and a throughput ratio"):
        return
    n, header_timeout_ms = 5000, 8000
    cycles, max_cycles, rounds, per_round = 4, 8, 6, 700
    per_conn = READ_CHUNK + STACK + 4 * KIB + 4 * KIB  # 4 KiB: the stream, task, parser
    srv = Server(ARGS.server, env={"HTTP_TEST_HEADER_TIMEOUT_MS": str(header_timeout_ms)})
    child = None
    try:
        base = Baseline(srv)
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--slowloris-child",
                                  str(srv.port), str(n)], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)

        def tell(cmd, answer):
            child.stdin.write(cmd + "\n")
            child.stdin.flush()
            got = child.stdout.readline().strip()
            check(got == answer, "the attacker answered %r to %s" % (got, cmd))

        def open_wave():
            # In slices of 400, each accepted before the next connects: a
            # burst of 5,000 connects overflows the listen queue (511, as
            # nginx's), the kernel drops the overflow's handshakes and
            # retransmits them seconds later, and the first connections'
            # header deadline could fire before the last are accepted.
            opened = 0
            while opened < n:
                k = min(400, n - opened)
                tell("open %d" % k, "ready %d" % (opened + k))
                opened += k
                wait_until(lambda: fd_count(srv.pid) >= base.fds + opened, bulk_deadline(srv),
                           "the server holding %d of the %d slow connections" % (opened, n))

        # A first wave, not measured: the server's first 5,000 connections
        # fault in its memory (stacks, buffers) while the rounds would run.
        open_wave()
        tell("drop", "dropped")
        wait_until(lambda: fd_count(srv.pid) == base.fds, bulk_deadline(srv),
                   "the server closing the %d reset connections" % n)
        alone, under, held_rss = [], [], None
        rt = realtime([0, srv.pid, child.pid], True)
        for cycle in range(max_cycles):
            alone.extend(request_rate(srv.port, per_round) for _ in range(rounds))
            open_wave()
            under.extend(request_rate(srv.port, per_round) for _ in range(rounds))
            held_rss = max(held_rss or 0, measure_rss(srv) or 0) or None
            if cycle + 1 >= cycles and max(under) >= 0.9 * max(alone):
                break
            if cycle + 1 < max_cycles:
                tell("drop", "dropped")
                wait_until(lambda: fd_count(srv.pid) == base.fds, bulk_deadline(srv),
                           "the server closing the %d reset connections" % n)
        if rt:
            realtime([0, srv.pid, child.pid], False)
        # The last wave is left to the server's header deadline.
        child.stdin.write("mark\n")
        child.stdin.flush()
        out, _ = child.communicate(timeout=header_timeout_ms / 1000 + harness.DEADLINE * 2)
        res = json.loads(out.strip().splitlines()[-1])
        ratio = max(under) / max(alone)
        pairs = [max(under[i:i + rounds]) / max(alone[i:i + rounds])
                 for i in range(0, len(alone), rounds)]
        def phases(rates):
            return ["%.0f" % max(rates[i:i + rounds]) for i in range(0, len(rates), rounds)]
        print("    alone: best %.0f req/s, per phase %s" % (max(alone), phases(alone)))
        print("    under %d slow connections: best %.0f req/s, per phase %s"
              % (n, max(under), phases(under)))
        print("    ratio %.3f (best of %d rounds of %d requests each side, %d phases each, "
              "interleaved; per pair of phases: %s)"
              % (ratio, len(alone), per_round, len(pairs), ", ".join("%.2f" % p for p in pairs)))
        print("    client, server and attacker %s during the measurement"
              % ("in SCHED_FIFO" if rt else "not real-time (not root?)"))
        print("    attacker: %s" % res, flush=True)
        bound = base.rss and base.rss + RSS_MARGIN + n * per_conn
        print("    RSS with the %d slow connections held: %s (baseline %s, bound %s: baseline + "
              "margin + %d x %d KiB)" % (n, mib(held_rss), mib(base.rss), mib(bound), n,
                                        per_conn // KIB), flush=True)
        check(res["open_at_mark"] == n,
              "only %s of %d slow connections still open after the measurement (header "
              "timeout %d ms): it measured less than the issue asks"
              % (res["open_at_mark"], n, header_timeout_ms))
        check(res["still_open"] == 0, "%d slow connections never closed" % res["still_open"])
        check(res["status_408"] == n and res["other_status"] + res["eof_without_answer"]
              + res["reset"] == 0, "not every slow connection got a 408: %s" % res)
        check(ratio >= 0.9, "the keep-alive client kept %.1f %% of its throughput (alone %.0f, "
              "under the slowloris %.0f req/s)" % (ratio * 100, max(alone), max(under)))
        check(within(held_rss, bound), "RSS %s with the slow connections held, above %s"
              % (mib(held_rss), mib(bound)))
        base.recovered(burst_margin(n, READ_CHUNK + 4 * KIB))  # a read buffer, the structs
        srv.stop()
    finally:
        realtime([0], False)
        if child and child.poll() is None:
            child.kill()
            child.wait()
        srv.kill()


# ---- 2. slow readers -------------------------------------------------------------------------

def own_slow_readers_rss_bounded_and_send_timeout_closes():
    """Clients ask for 16 MiB each and never read: what the server holds
    per connection is its stream's write queue (at most the high-water
    mark plus the piece that crossed it), the task's stack, a read buffer
    and the request's arena chunk; never the rest of the body.  The send
    timeout (HTTP_TEST_SEND_TIMEOUT_MS: no progress for that long) ends
    each handler's write and closes the connection."""
    if harness.skip_under_wrap("an RSS bound under 300 stalled 16 MiB responses"):
        return
    n, mb, send_timeout_ms = 300, 16, 2000
    per_conn = WRITE_HIGH + PIECE + STACK + READ_CHUNK + 4 * KIB + 32 * KIB  # 32 KiB: structs
    srv = Server(ARGS.server, env={"HTTP_TEST_SEND_TIMEOUT_MS": str(send_timeout_ms)})
    socks = []
    try:
        base = Baseline(srv)
        mark = srv.mark()
        bound = base.rss and base.rss + n * per_conn + RSS_MARGIN

        def stalled():
            socks.extend(connect_many(srv.port, n, rcvbuf=4096))
            for s in socks:
                s.send(b"GET /big?mb=%d HTTP/1.1\r\nHost: x\r\n\r\n" % mb)
            peak = [0]

            def all_done():
                peak[0] = max(peak[0], measure_rss(srv) or 0)
                return srv.count_log(r"big done rc=", mark) >= n

            wait_until(all_done, send_timeout_ms / 1000 + harness.DEADLINE * 2,
                       "%d handlers ended by the send timeout" % n)
            return peak[0] or None

        peak = steady_during(srv, "the slow readers", stalled)
        timed_out = srv.count_log(r"big done rc=ETIMEDOUT ", mark)
        print("    RSS: baseline %s, peak %s with %d stalled 16 MiB responses; bound %s "
              "(baseline + %d x %d KiB + margin %s); unbounded would be %d MiB"
              % (mib(base.rss), mib(peak), n, mib(bound), n, per_conn // KIB, mib(RSS_MARGIN),
                 n * mb), flush=True)
        check(timed_out == n, "%d of %d handlers ended by the send timeout:\n%s"
              % (timed_out, n, srv.tail(5)))
        check(within(peak, bound), "RSS peaked at %s, above %s" % (mib(peak), mib(bound)))
        # The server reset them: each client socket reads to an error or EOF.
        for s in socks:
            s.setblocking(True)
            s.settimeout(harness.DEADLINE)
            try:
                while s.recv(1 << 20):
                    pass
            except ConnectionResetError:
                pass
        base.recovered(burst_margin(n, WRITE_HIGH + PIECE + READ_CHUNK))
        srv.stop()
    finally:
        for s in socks:
            s.close()
        srv.kill()


# ---- 3. floods -------------------------------------------------------------------------------

def own_connection_flood_20k_per_second():
    """Connect-and-reset at 20,000/s for ten seconds (tests/flood_client;
    200,000 at most), against examples/hello with its defaults: no connect
    fails.  The rate achieved is reported, not asserted: on two CPUs shared
    with other work the client, the server and the kernel's handshakes
    compete for them."""
    if harness.skip_under_wrap("20,000 connections a second"):
        return
    count, rate, seconds = 200000, 20000, 10
    srv = Server(ARGS.hello)
    try:
        base = Baseline(srv)
        before = metrics(srv.port)
        res = steady_during(srv, "the flood", lambda: run_flood(
            srv.port, "--concurrency", "512", count=count, rate=rate, seconds=seconds))
        after = metrics(srv.port)
        accepted = after["corio_connections_accepted_total"] - before[
            "corio_connections_accepted_total"]
        errs = {k[len("corio_accept_errors_total"):]: after[k] - before.get(k, 0)
                for k in after if k.startswith("corio_accept_errors_total")}
        print("    flood: %s" % res)
        print("    the server accepted %d connections; accept errors: %s" % (accepted, errs),
              flush=True)
        check(not errs.get('{kind="fd_limit"}') and not errs.get('{kind="no_memory"}'),
              "accept errors: %s" % errs)
        if res["rate"] < rate * 0.95:
            print("    NOTE: %.0f connections/s achieved, below the %d/s asked (CPU-bound: "
                  "load average %.1f)" % (res["rate"], rate, os.getloadavg()[0]), flush=True)
        check(res["errors"] == 0 and res["connects"] > 0, "the flood: %s" % res)
        base.recovered()
        srv.stop()
    finally:
        srv.kill()


def own_half_open_connections_parked_then_closed():
    """Connections that connect and never send (the SYN flood's cousin that
    gets past the kernel), against examples/hello with its defaults: each
    parks (its task ends: /metrics' corio_tasks_live comes back down while
    corio_connections_open counts them all), so that they cost the server
    at most 1 KiB each (corio/http.h: "well under 1 KiB") beyond its pools;
    the keep-alive timeout then closes each with a FIN; the server answers
    others meanwhile."""
    n = 200 if harness.WRAP else 5000
    srv = Server(ARGS.hello)
    socks = []
    try:
        base = Baseline(srv)
        before = metrics(srv.port)
        base_tasks = before["corio_tasks_live"]
        base_accepted = before["corio_connections_accepted_total"]
        # The connects go in batches within the listen backlog (511), each
        # waited for until the server has accepted it: beyond the backlog the
        # kernel drops the handshake's last ACK, and the connection arrives
        # only with a SYN-ACK retransmission (1, 3, 7, 15, 31 s later), or
        # never once those run out, while the client, which sends nothing,
        # believes it open (CI's ASan run: 23 of 5,000 never closed).  A
        # sanitized server can take longer than the 5 s keep-alive timeout
        # to accept them all, so there the first ones close before the last
        # arrive: the condition is every one accepted (the server's count,
        # which the well-behaved client's few connections also raise), not
        # every one open at once.
        at_once = not srv.sanitized()

        def accepted():
            return metrics(srv.port)["corio_connections_accepted_total"] - base_accepted

        def held():
            while len(socks) < n:
                socks.extend(connect_many(srv.port, min(256, n - len(socks))))
                wait_until((lambda: fd_count(srv.pid) >= base.fds + len(socks)) if at_once
                           else (lambda: accepted() >= len(socks)), bulk_deadline(srv),
                           "the server holding %d idle connections" % len(socks))
            # Parked: no task more than the well-behaved client's (and the
            # /metrics request's own).
            wait_until(lambda: (lambda m: (m["corio_connections_open"] >= n if at_once else
                                           m["corio_connections_accepted_total"]
                                           >= base_accepted + n)
                                and m["corio_tasks_live"] <= base_tasks + 1)(metrics(srv.port)),
                       bulk_deadline(srv), "the %d idle connections parked" % n, interval=0.05)
            held_rss = measure_rss(srv)
            bound = base.rss and base.rss + POOLS + n * KIB
            print("    RSS with %d idle connections parked: %s (baseline %s, bound %s: baseline "
                  "+ pools %s + %d x 1 KiB)" % (n, mib(held_rss), mib(base.rss), mib(bound),
                                               mib(POOLS), n), flush=True)
            check(within(held_rss, bound), "RSS %s with the idle connections parked, above %s"
                  % (mib(held_rss), mib(bound)))
            # Each one ends with an EOF (a FIN, not a reset, no bytes).
            sel = selectors.DefaultSelector()
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            left, bad = n, []
            deadline = time.monotonic() + bulk_deadline(srv) * 2
            while left:
                check(time.monotonic() < deadline, "%d idle connections still open" % left)
                for key, _ in sel.select(0.5):
                    try:
                        d = key.fileobj.recv(4096)
                    except ConnectionResetError:
                        d = b"<reset>"
                    if d:
                        bad.append(d[:60])
                    sel.unregister(key.fileobj)
                    left -= 1
            sel.close()
            check(not bad, "%d idle connections got bytes or a reset: %r" % (len(bad), bad[:3]))

        steady_during(srv, "the idle connections", held)
        base.recovered()
        srv.stop()
    finally:
        for s in socks:
            s.close()
        srv.kill()


def own_resets_mid_request():
    """Connect, send part of a request, reset: a head cut anywhere, and a
    body cut after its first bytes (POST /count reads it), by the thousand
    from tests/flood_client (under --wrap, a few hundred from here)."""
    srv = Server(ARGS.server)
    head = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-A: b\r\n"
    body_head = b"POST /count HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    cuts = [head[:1], head[:10], head[:27], head, body_head, body_head + b"x" * 3000]
    try:
        base = Baseline(srv)
        if harness.WRAP:
            def cut_all():
                for payload in cuts:
                    for _ in range(30):
                        s = socket.create_connection((HOST, srv.port), timeout=harness.DEADLINE)
                        s.sendall(payload)
                        reset_close(s)
            steady_during(srv, "the resets", cut_all)
        else:
            def flood_all():
                out = []
                for payload in cuts:
                    res = run_flood(srv.port, "--concurrency", "256", "--send",
                                    payload.decode(), count=10000, rate=10000, seconds=20)
                    check(res["connects"] == 10000 and res["errors"] == 0,
                          "cut after %d bytes: %s" % (len(payload), res))
                    out.append("%d B: %.0f/s" % (len(payload), res["rate"]))
                return out
            rates = steady_during(srv, "the resets", flood_all)
            print("    10,000 resets after each cut (bytes sent: rate): %s" % ", ".join(rates))
        base.recovered()
        srv.stop()
    finally:
        srv.kill()


def own_resets_mid_response():
    """Ask for 8 MiB (more than the kernel buffers: the client's receive
    buffer is 16 KiB, the server's send buffer at most 4 MiB), streamed or
    in one corio_res_send, read the first bytes, reset: every handler's
    write fails (EPIPE or ECONNRESET) or its task is cancelled as its
    client left (ECANCELED), it ends, and the connection is gone."""
    n = 20 if harness.WRAP else 500
    srv = Server(ARGS.server)
    try:
        base = Baseline(srv)
        mark = srv.mark()

        def cut_all():
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * KIB)
                s.settimeout(harness.DEADLINE)
                s.connect((HOST, srv.port))
                send = b"&send=1" if i % 2 else b""
                s.sendall(b"GET /big?mb=8%s HTTP/1.1\r\nHost: x\r\n\r\n" % send)
                got = b""
                while len(got) < 1000:
                    d = s.recv(65536)
                    check(d, "closed before the first bytes")
                    got += d
                check(got.startswith(b"HTTP/1.1 200 "), got[:80])
                reset_close(s)
            wait_until(lambda: srv.count_log(r"big done rc=", mark) >= n, bulk_deadline(srv),
                       "%d handlers ended" % n)

        steady_during(srv, "the resets", cut_all)
        ends = {}
        with srv.cond:
            lines = srv.lines[mark:]
        for line in lines:
            m = re.search(r"big done rc=(\S+)", line)
            if m:
                ends[m.group(1)] = ends.get(m.group(1), 0) + 1
        print("    how the %d handlers ended: %s" % (n, ends), flush=True)
        check(set(ends) <= {"EPIPE", "ECONNRESET", "ECANCELED"},
              "a handler whose client reset ended otherwise: %s" % ends)
        base.recovered()
        srv.stop()
    finally:
        srv.kill()


CASES = [own_slowloris_keeps_throughput_and_header_deadline_closes,
         own_slow_readers_rss_bounded_and_send_timeout_closes,
         own_connection_flood_20k_per_second,
         own_half_open_connections_parked_then_closed,
         own_resets_mid_request,
         own_resets_mid_response]


def main():
    global ARGS
    if len(sys.argv) == 4 and sys.argv[1] == "--slowloris-child":
        raise_fd_limit()
        slowloris_child(int(sys.argv[2]), int(sys.argv[3]), 1.0, harness.DEADLINE * 2)
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--flood", required=True, help="tests/flood_client")
    ARGS = harness.parse_args(ap)
    raise_fd_limit()
    return harness.run_cases(CASES, ARGS.k)


if __name__ == "__main__":
    sys.exit(main())
