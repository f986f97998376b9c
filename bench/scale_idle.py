#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Memory of many idle keep-alive connections, per worker and per connection.

    bench/scale_idle.py --server "/tmp/build/examples/hello/hello --workers 2" [--conns 100000]
    bench/scale_idle.py --pid PID --port PORT [--conns 20000]

With --server the command is started here (its RLIMIT_NOFILE is raised with
this process's own, and " --port N --log-level warn" is appended) and stopped
at the end; with --pid, PID is a running server (a single process or a
supervisor) listening on 127.0.0.1:PORT.  The server's processes are PID and
its descendants (/proc/PID/task/*/children).

Phases, each with a deadline:

  start    RSS, PSS and private memory of every server process, idle, before
           any request (the supervisor and each worker);
  busy     --busy connections each sending half a request head: each holds a
           task and its coroutine stack, waiting for the rest (RSS, and the
           resident pages of the stacks, per connection), then closed;
  idle     --conns connections, each answered once and left open, opened
           by as many client processes as RLIMIT_NOFILE requires (each holds
           at most its limit less 256), with at most --inflight unanswered
           at a time (the backlog is 511 per listener).  The client side is
           spread over --sources loopback addresses (127.0.0.2, ...; each
           (source address, destination) pair has its own ephemeral port
           range, /proc/sys/net/ipv4/ip_local_port_range; connect() takes
           the even ports first and slows down past half the range, hence
           10,000 per address by default).  A server closes a connection
           idle for its keep-alive timeout (hello: 5 s), so while the others
           are being opened, a connection whose last answer is --refresh
           seconds old is sent another request (within the same --inflight:
           the opening goes in waves when it takes longer than --refresh,
           and the output says how many refreshes it took).  The measurement
           is taken once every connection has been answered and has been
           idle --settle seconds (corio parks a keep-alive connection, with
           no task and no stack, after 100 ms idle), and fails if any was
           closed.  Reported: RSS of every process and the sum, per
           connection (sum, and each worker's delta over its own
           connections, counted from /proc/<pid>/fd: how SO_REUSEPORT spread
           them), the kernel's TCP memory (/proc/net/sockstat "mem", pages),
           slab memory (/proc/meminfo) and conntrack entries, and the time
           to open them;
  close    every connection closed; the RSS --after seconds later.

Kernel figures are machine-wide: both ends of a loopback connection are on
this machine, and anything else running moves them too (the slab object
sizes from /proc/slabinfo are printed for a static estimate).  The client
raises its RLIMIT_NOFILE to the hard limit, and the hard limit up to
fs.nr_open when it may (CAP_SYS_RESOURCE); a server started with --server
inherits that limit, so each worker holds at most about that many
connections (--workers N spreads more).  /proc/slabinfo needs root.
Standard library only.  Exit status: 0 when every phase completed, 1
otherwise (what was measured is printed either way).
"""
import argparse
import collections
import errno
import json
import math
import os
import re
import resource
import select
import shlex
import signal
import socket
import subprocess
import sys
import time

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
GUARD_KIB = 256  # corio's stack guard (framework/coro/stack.c, GUARD_BYTES)
CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length:[ \t]*([0-9]+)")
SLABS = ("TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "tw_sock_TCP")


class Failed(Exception):
    pass


# ---- /proc ----------------------------------------------------------------------------------


def read(path):
    with open(path) as f:
        return f.read()


def descendants(pid):
    """pid and all its descendants, parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                todo += [int(c) for c in read(f"/proc/{p}/task/{t}/children").split()]
            except OSError:
                pass
    return out


def mem_of(pid):
    """KiB: rss, pss, private (clean + dirty), stack_rss (corio's coroutine
    stacks: rw anonymous mappings right above a PROT_NONE guard of GUARD_KIB)."""
    m = {"rss": 0, "pss": 0, "private": 0, "stack_rss": 0}
    try:
        for line in read(f"/proc/{pid}/smaps_rollup").splitlines()[1:]:
            k, v = line.split()[:2]
            if k == "Rss:":
                m["rss"] = int(v)
            elif k == "Pss:":
                m["pss"] = int(v)
            elif k in ("Private_Clean:", "Private_Dirty:"):
                m["private"] += int(v)
        prev, is_stack = None, False
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                parts = line.split()
                if "-" in parts[0] and ":" not in parts[0]:
                    lo, hi = (int(x, 16) for x in parts[0].split("-"))
                    perms = parts[1]
                    is_stack = (prev is not None and prev[0] == lo and prev[1].startswith("---")
                                and prev[2] == GUARD_KIB and perms.startswith("rw")
                                and len(parts) < 6)
                    prev = (hi, perms, (hi - lo) // 1024)
                elif parts[0] == "Rss:" and is_stack:
                    m["stack_rss"] += int(parts[1])
    except OSError:
        pass
    return m


def nmaps(pid):
    try:
        with open(f"/proc/{pid}/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def nfds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def kernel():
    k = {}
    for line in read("/proc/net/sockstat").splitlines():
        if line.startswith("TCP:"):
            f = line.split()[1:]
            for name, val in zip(f[0::2], f[1::2]):
                k["tcp_" + name] = int(val)
    for line in read("/proc/meminfo").splitlines():
        name, val = line.split(":")
        if name in ("Slab", "SUnreclaim", "MemAvailable"):
            k[name] = int(val.split()[0])
    try:
        k["conntrack"] = int(read("/proc/sys/net/netfilter/nf_conntrack_count"))
    except (OSError, ValueError):
        pass
    try:
        for line in read("/proc/slabinfo").splitlines()[2:]:
            f = line.split()
            if f[0] in SLABS:
                k["slab_" + f[0]] = (int(f[1]), int(f[3]))  # active objects, object size
    except OSError:
        pass
    return k


class Server:
    """The processes of the server under measurement."""

    def __init__(self, pid, proc=None):
        self.pid, self.proc = pid, proc

    def procs(self):
        return descendants(self.pid)

    def workers(self):
        ps = self.procs()
        return ps[1:] if len(ps) > 1 else ps

    def snapshot(self):
        ps = self.procs()
        return {p: dict(mem_of(p), fds=nfds(p), maps=nmaps(p)) for p in ps}


def total(snap, key):
    return sum(v[key] for v in snap.values())


# ---- the client -----------------------------------------------------------------------------


def raise_nofile(want):
    """Raises RLIMIT_NOFILE towards want: the soft limit to the hard one, and
    the hard one up to fs.nr_open where allowed (CAP_SYS_RESOURCE).  Returns
    the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            new = min(want, int(read("/proc/sys/fs/nr_open")))
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, new))
            return new
        except (OSError, ValueError):
            pass  # no CAP_SYS_RESOURCE (a container): the hard limit stays
    cap = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < cap:
        resource.setrlimit(resource.RLIMIT_NOFILE, (cap, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


CONNECTING, WAITING, IDLE, HALF, BUSY = 0, 1, 2, 3, 4


class Conns:
    """Non-blocking connections driven by one epoll, indexed by fd."""

    def __init__(self, port, sources, req):
        self.dst = ("127.0.0.1", port)
        self.sources = sources
        self.req = req
        self.ep = select.epoll()
        self.socks = {}  # fd -> socket
        self.state = {}  # fd -> CONNECTING/WAITING/IDLE/HALF/BUSY; None: closed by the server
        self.buf = {}  # fd -> bytes of an incomplete response
        self.idle_q = collections.deque()  # (time answered, fd), oldest first
        self.answered_at = {}
        self.inflight = 0
        self.closed_by_peer = 0
        self.requests = 0
        self.errors = collections.Counter()
        self.n = 0

    def open(self, payload=None):
        """Opens one connection and sends the request (payload: these bytes
        instead, expecting no answer)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        src = self.sources[self.n % len(self.sources)]
        self.n += 1
        try:
            s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((src, 0))
            rc = s.connect_ex(self.dst)
        except OSError as e:
            s.close()
            self.errors[errno.errorcode.get(e.errno, str(e.errno))] += 1
            return False
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            self.errors[errno.errorcode.get(rc, str(rc))] += 1
            return False
        fd = s.fileno()
        self.socks[fd] = s
        if payload is not None:
            self.state[fd] = HALF
            self.buf[fd] = payload
            self.ep.register(fd, select.EPOLLOUT)
            return True
        self.inflight += 1
        try:
            s.send(self.req)
            self.requests += 1
            self.state[fd] = WAITING
            self.ep.register(fd, select.EPOLLIN)
        except BlockingIOError:  # not established yet
            self.state[fd] = CONNECTING
            self.ep.register(fd, select.EPOLLOUT)
        return True

    def refresh(self, older_than, inflight):
        """Another request on each idle connection answered before older_than,
        while fewer than `inflight` requests are unanswered: a burst of
        refreshes would make that many tasks busy at once in the server, and
        the heap they leave behind would be counted as idle connections'."""
        q = self.idle_q
        while q and q[0][0] < older_than and self.inflight < inflight:
            t, fd = q.popleft()
            if self.state.get(fd) == IDLE and self.answered_at.get(fd) == t:
                try:
                    self.socks[fd].send(self.req)
                except OSError:
                    self.peer_closed(fd)
                    continue
                self.requests += 1
                self.state[fd] = WAITING
                self.inflight += 1

    def peer_closed(self, fd):
        if self.state.get(fd) in (CONNECTING, WAITING):
            self.inflight -= 1
        self.closed_by_peer += 1
        self.state[fd] = None
        try:
            self.ep.unregister(fd)
        except OSError:
            pass

    def answered(self, fd, data):
        """Whether data completes the response on fd (bytes kept meanwhile)."""
        if fd in self.buf:
            data = self.buf.pop(fd) + data
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            m = CONTENT_LENGTH.search(data, 0, end + 2)
            if len(data) >= end + 4 + (int(m.group(1)) if m else 0):
                return True
        self.buf[fd] = data
        return False

    def poll(self, timeout):
        now = None
        for fd, _ in self.ep.poll(timeout, 4096):
            st = self.state.get(fd)
            s = self.socks.get(fd)
            if st is None or s is None:
                continue
            if st == HALF:
                try:
                    s.send(self.buf[fd])
                    del self.buf[fd]
                    self.ep.modify(fd, select.EPOLLIN)  # readable: closed by the server
                    self.state[fd] = BUSY
                except BlockingIOError:
                    pass
                except OSError:
                    self.peer_closed(fd)
                continue
            if st == CONNECTING:
                try:
                    s.send(self.req)
                    self.requests += 1
                    self.state[fd] = WAITING
                    self.ep.modify(fd, select.EPOLLIN)
                except BlockingIOError:
                    pass
                except OSError:
                    self.peer_closed(fd)
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data or st != WAITING:  # BUSY: the server gave up on it
                self.peer_closed(fd)  # EOF (or bytes nobody asked for)
                continue
            if self.answered(fd, data):
                if now is None:
                    now = time.monotonic()
                self.state[fd] = IDLE
                self.inflight -= 1
                self.answered_at[fd] = now
                self.idle_q.append((now, fd))

    def fds(self):
        return [fd for fd, st in self.state.items() if st is not None]

    def close_all(self):
        for fd, s in self.socks.items():
            if self.state.get(fd) is not None:
                try:
                    self.ep.unregister(fd)
                except OSError:
                    pass
            s.close()
        self.socks.clear()
        self.state.clear()
        self.buf.clear()
        self.idle_q.clear()
        self.inflight = 0

    def shut(self):
        self.close_all()
        self.ep.close()


def listening(port):
    """Listening TCP sockets on 127.0.0.1:port or the wildcard (/proc/net/tcp)."""
    n = 0
    for line in read("/proc/net/tcp").splitlines()[1:]:
        f = line.split()
        addr, p = f[1].split(":")
        if int(p, 16) == port and f[3] == "0A" and addr in ("0100007F", "00000000"):
            n += 1
    return n


def wait_until(cond, deadline, step=0.05):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def conn_fds(srv, base):
    """Connections each worker holds now: its descriptors beyond its baseline."""
    return {p: nfds(p) - base.get(p, 0) for p in srv.workers()}


# ---- phases ---------------------------------------------------------------------------------


def start_server(cmd, port, workers_hint):
    argv = shlex.split(cmd) + ["--port", str(port), "--log-level", "warn"]
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            start_new_session=True)
    srv = Server(proc.pid, proc)
    want = 1 + workers_hint if workers_hint > 1 else 1

    def up():
        if proc.poll() is not None:
            raise Failed(f"the server exited ({proc.returncode}) at start")
        return len(srv.procs()) >= want and listening(port) >= max(1, workers_hint)

    # Not probed with a connection (a worker would run a task for it):
    # what the processes hold after this is start-up memory alone.
    if not wait_until(up, 10):
        raise Failed("the server did not listen within 10 s")
    time.sleep(1.0)  # the workers' loops start
    return srv


def stop_server(srv):
    if not srv or not srv.proc or srv.proc.poll() is not None:
        return
    srv.proc.send_signal(signal.SIGTERM)
    try:
        srv.proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(5)


def warm_up(port, req, n=64):
    """n connections, one request each, so that lazily built state (each
    worker's first connection) is not counted per connection."""
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(req)
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk


def drive_open(c, want, a, payload=None, held=None):
    """Opens `want` connections on c, keeping the answered ones alive;
    returns the seconds it took (raises Failed past a.open_deadline).
    payload: send these bytes instead of a request and expect no answer;
    held() then counts the connections the server has accepted, which paces
    the opening (at most a.inflight not accepted: the backlog is 511)."""
    t0 = time.monotonic()
    end = t0 + a.open_deadline
    target = c.n + want
    first = c.n
    accepted = 0
    while True:
        now = time.monotonic()
        if now > end:
            raise Failed(f"opening: {c.n - first} of {want} opened, {c.inflight} unanswered, "
                         f"after the {a.open_deadline} s deadline")
        if payload is None:
            c.refresh(now - a.refresh, a.inflight)
            budget = 64
            while c.n < target and c.inflight < a.inflight and budget:
                c.open()
                budget -= 1
            if c.n >= target and c.inflight == 0:
                return time.monotonic() - t0
        else:
            if c.n - first - accepted >= a.inflight:
                accepted = held()
            while c.n < target and c.n - first - accepted < a.inflight:
                c.open(payload)
            if c.n >= target and all(st != HALF for st in c.state.values()):
                return time.monotonic() - t0
        if sum(c.errors.values()) > want // 100 + 10:
            raise Failed(f"opening: errors {dict(c.errors)}")
        blocked = c.n >= target or (payload is not None and c.n - first - accepted >= a.inflight)
        c.poll(0.002 if blocked else 0)


# ---- client processes -----------------------------------------------------------------------
#
# A process holds at most RLIMIT_NOFILE descriptors, so --conns is split over
# as many client processes as that needs.  Each opens its share and keeps it
# alive (refresh) until the parent says "quiet"; the parent then measures,
# asks each for a "check" (how many are still open) and to "close".  Messages
# are JSON lines over a socketpair.


def send_msg(sock, **m):
    sock.sendall((json.dumps(m) + "\n").encode())


def child_main(cs, index, share, sources, port, req, a, inflight):
    try:  # die with the parent (prctl PR_SET_PDEATHSIG, SIGKILL)
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    c = Conns(port, sources, req)
    c.n = index  # its first source address
    a.inflight = inflight
    cmds = b""
    end = time.monotonic() + a.open_deadline + 60

    def command(timeout):
        nonlocal cmds
        while b"\n" not in cmds:
            r, _, _ = select.select([cs], [], [], timeout)
            if not r:
                return None
            chunk = cs.recv(4096)
            if not chunk:
                return "close"  # the parent is gone
            cmds += chunk
        line, _, cmds = cmds.partition(b"\n")
        return json.loads(line)["cmd"]

    try:
        try:
            t = drive_open(c, share, a)
            send_msg(cs, ev="opened", open_s=t, t_end=time.monotonic(), requests=c.requests,
                     errors=dict(c.errors))
        except Failed as e:
            send_msg(cs, ev="failed", msg=str(e))
        quiet = False
        while time.monotonic() < end:
            if not quiet:
                c.refresh(time.monotonic() - a.refresh, a.inflight)
                c.poll(0.005)
                cmd = command(0)
            else:
                cmd = command(0.2)
            if cmd == "quiet":
                limit = time.monotonic() + 3
                while c.inflight and time.monotonic() < limit:
                    c.poll(0.01)
                quiet = True
                fds = c.fds()
                send_msg(cs, ev="quiet", oldest=min((c.answered_at[f] for f in fds
                                                     if f in c.answered_at), default=0),
                         inflight=c.inflight, requests=c.requests)
            elif cmd == "check":
                c.poll(0)
                send_msg(cs, ev="check", open=len(c.fds()), closed_by_peer=c.closed_by_peer)
            elif cmd == "close":
                break
        c.shut()
        send_msg(cs, ev="closed")
    finally:
        os._exit(0)


class Clients:
    def __init__(self, n_conns, nproc, sources, port, req, a):
        self.kids = []  # (pid, socket, buffer)
        inflight = max(8, a.inflight // nproc)
        for i in range(nproc):
            share = n_conns // nproc + (1 if i < n_conns % nproc else 0)
            ps, cs = socket.socketpair()
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                ps.close()
                for _, other, _ in self.kids:
                    other.close()
                child_main(cs, i, share, sources, port, req, a, inflight)
            cs.close()
            self.kids.append([pid, ps, b""])

    def tell(self, cmd):
        for k in self.kids:
            try:
                send_msg(k[1], cmd=cmd)
            except OSError:
                pass

    def hear(self, ev, deadline):
        """One message from every client process; raises Failed on a
        "failed" one or past the deadline."""
        got = {}
        end = time.monotonic() + deadline
        while len(got) < len(self.kids):
            wait = [k[1] for k in self.kids if k[0] not in got]
            r, _, _ = select.select(wait, [], [], max(0.0, end - time.monotonic()))
            if not r:
                raise Failed(f"{len(self.kids) - len(got)} client process(es) did not report "
                             f"'{ev}' within {deadline:.0f} s")
            for k in self.kids:
                if k[1] in r:
                    chunk = k[1].recv(65536)
                    if not chunk:
                        raise Failed(f"client process {k[0]} died")
                    k[2] += chunk
                    while b"\n" in k[2]:
                        line, _, k[2] = k[2].partition(b"\n")
                        m = json.loads(line)
                        if m["ev"] == "failed":
                            raise Failed(f"client process {k[0]}: {m['msg']}")
                        if m["ev"] == ev:
                            got[k[0]] = m
        return list(got.values())

    def shut(self):
        self.tell("close")
        end = time.monotonic() + 10
        for pid, sock, _ in self.kids:
            while True:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done or time.monotonic() > end:
                    break
                time.sleep(0.05)
            if not done:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            sock.close()
        self.kids = []


def show_procs(label, srv, snap, base=None):
    print(f"  {label}:")
    for p in snap:
        role = "worker" if (p != srv.pid or len(snap) == 1) else "supervisor"
        m = snap[p]
        line = (f"    {role:10} pid {p:7}  rss {m['rss']:>9,} KiB  pss {m['pss']:>9,}  "
                f"private {m['private']:>9,}  stacks {m['stack_rss']:>7,}  fds {m['fds']}  maps {m['maps']}")
        if base and p in base:
            line += f"  (rss {m['rss'] - base[p]['rss']:+,})"
        print(line)
    print(f"    {'sum':10} {'':11}  rss {total(snap, 'rss'):>9,} KiB  pss {total(snap, 'pss'):>9,}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--server", help="command line of the server to start (--port is appended)")
    g.add_argument("--pid", type=int, help="a running server's pid (supervisor or single process)")
    ap.add_argument("--port", type=int, default=0, help="its port (--server: 0 picks a free one)")
    ap.add_argument("--conns", type=int, default=100000)
    ap.add_argument("--busy", type=int, default=1000, help="busy connections (0: skip)")
    ap.add_argument("--sources", type=int, default=0,
                    help="loopback source addresses, 127.0.0.2 up (0: one per 10,000 conns, 2 at least: "
                         "connect() takes even ports first, and past half the range each "
                         "connect scans the used ones)")
    ap.add_argument("--inflight", type=int, default=256,
                    help="connections opened but not yet answered, at most (below the backlog, 511)")
    ap.add_argument("--refresh", type=float, default=2.8,
                    help="seconds after its answer an idle connection is sent another request "
                         "while the others open (below the keep-alive timeout, 5 s)")
    ap.add_argument("--settle", type=float, default=1.2,
                    help="seconds idle before measuring (corio parks after 100 ms, and its "
                         "stack pool gives back the pages of stacks unused for 0.5-1 s)")
    ap.add_argument("--after", type=float, default=3.0, help="seconds after closing to measure")
    ap.add_argument("--open-deadline", type=float, default=90.0)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()

    if a.refresh + a.settle >= 4.5:
        sys.exit("scale_idle: --refresh + --settle must stay under 4.5 s (keep-alive timeout 5 s)")
    lo, hi = (int(x) for x in read("/proc/sys/net/ipv4/ip_local_port_range").split())
    per_src = hi - lo + 1
    nsrc = a.sources or max(2, math.ceil(a.conns / 10000))
    if a.conns / nsrc > per_src * 0.9:
        sys.exit(f"scale_idle: {a.conns} connections over {nsrc} source addresses need more than "
                 f"90% of the {per_src} ephemeral ports each: raise --sources")
    sources = [f"127.0.0.{2 + i}" for i in range(nsrc)]
    limit = raise_nofile(a.conns + a.busy + 1024)
    if limit < a.busy + 256:
        sys.exit(f"scale_idle: RLIMIT_NOFILE {limit} is too low for --busy {a.busy}")

    out = {"conns": a.conns, "busy": a.busy, "sources": nsrc, "ports_per_source": per_src,
           "server": a.server or f"pid {a.pid}"}
    srv = None
    c = clients = None
    ok = False
    try:
        if a.server:
            port = a.port
            if not port:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", 0))
                    port = s.getsockname()[1]
            toks = shlex.split(a.server)
            workers = int(toks[toks.index("--workers") + 1]) if "--workers" in toks else 1
            srv = start_server(a.server, port, workers)
        else:
            port = a.port
            srv = Server(a.pid)
        lims = []
        for p in srv.workers():
            f = [x for x in read(f"/proc/{p}/limits").splitlines() if x.startswith("Max open files")]
            lims.append(int(f[0].split()[3]) if f and f[0].split()[3].isdigit() else 1 << 30)
        out["server_fd_limit"] = min(lims)
        if a.conns > sum(lims) - 64 * len(lims):
            print(f"warning: the server's workers may hold {sum(lims):,} descriptors in all "
                  f"(RLIMIT_NOFILE {min(lims):,} each): fewer than --conns", file=sys.stderr)
        req = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        print(f"server: {out['server']} on 127.0.0.1:{port}; client: {nsrc} source addresses "
              f"({', '.join(sources[:3])}{', ...' if nsrc > 3 else ''}), {per_src} ports each, "
              f"fd limit {limit} per client process; the server's {min(lims):,} per process")

        s0 = srv.snapshot()
        show_procs("at start (no request served yet)", srv, s0)
        out["start"] = {str(p): m for p, m in s0.items()}

        warm_up(port, req)
        time.sleep(2.0)  # the stack pool's decay (0.5 s) and the heap trim (1 s)
        c = Conns(port, sources, req)

        if a.busy:
            b0 = srv.snapshot()
            base = {p: m["fds"] for p, m in b0.items()}
            k0 = kernel()
            half = f"GET {a.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode()
            t = drive_open(c, a.busy, a, payload=half,
                           held=lambda: sum(conn_fds(srv, base).values()))
            if not wait_until(lambda: sum(conn_fds(srv, base).values()) >= a.busy, 5):
                raise Failed(f"busy: the server holds {sum(conn_fds(srv, base).values())} "
                             f"of {a.busy} connections")
            time.sleep(0.3)  # each task reads its half head and waits for the rest
            b1 = srv.snapshot()
            k1 = kernel()
            d_rss = total(b1, "rss") - total(b0, "rss")
            d_stk = total(b1, "stack_rss") - total(b0, "stack_rss")
            print(f"\nbusy: {a.busy} connections, each with half a request head (a task "
                  f"waiting), opened in {t:.2f} s")
            show_procs("held", srv, b1, b0)
            d_maps = total(b1, "maps") - total(b0, "maps")
            print(f"    per busy connection: rss {d_rss / a.busy:.2f} KiB, of which coroutine "
                  f"stack pages {d_stk / a.busy:.2f} KiB; {d_maps / a.busy:.2f} memory mappings; "
                  f"kernel TCP mem {(k1['tcp_mem'] - k0['tcp_mem']) * 4 / a.busy:.2f} KiB")
            out["busy_phase"] = {"open_s": t, "rss_kib_per_conn": d_rss / a.busy,
                                 "maps_per_conn": d_maps / a.busy,
                                 "stack_kib_per_conn": d_stk / a.busy,
                                 "tcp_mem_kib_per_conn": (k1["tcp_mem"] - k0["tcp_mem"]) * 4 / a.busy}
            c.close_all()
            if not wait_until(lambda: sum(conn_fds(srv, base).values()) <= 0, 10):
                raise Failed("busy: the server did not close the busy connections within 10 s")
            time.sleep(2.5)  # decay and trim

        c.shut()
        c = None
        i0 = srv.snapshot()
        base = {p: m["fds"] for p, m in i0.items()}
        k0 = kernel()
        nproc = math.ceil(a.conns / max(1, limit - 256))
        print(f"\nidle: {a.conns:,} keep-alive connections, one request each, from {nproc} "
              f"client process(es)")
        show_procs("before", srv, i0)
        t0 = time.monotonic()
        clients = Clients(a.conns, nproc, sources, port, req, a)
        opened = clients.hear("opened", a.open_deadline + 10)
        t_open = max(m["t_end"] for m in opened) - t0
        clients.tell("quiet")
        quiet = clients.hear("quiet", 10)
        oldest = min(m["oldest"] for m in quiet)
        requests = sum(m["requests"] for m in quiet)
        errors = collections.Counter()
        for m in opened:
            errors.update(m["errors"])
        time.sleep(a.settle)
        i1 = srv.snapshot()
        k1 = kernel()
        t_meas = time.monotonic()
        per_worker = conn_fds(srv, base)
        clients.tell("check")
        still = sum(m["open"] for m in clients.hear("check", 10))
        print(f"  opened {a.conns:,} in {t_open:.2f} s ({a.conns / t_open:,.0f}/s; "
              f"{requests:,} requests: {requests - a.conns:,} were keep-alive "
              f"refreshes); measured {t_meas - oldest:.2f} s after the oldest answer; "
              f"open at the measurement: {still:,}; errors {dict(errors) or 'none'}")
        show_procs("with every connection idle", srv, i1, i0)
        n = a.conns
        d = total(i1, "rss") - total(i0, "rss")
        d_pss = total(i1, "pss") - total(i0, "pss")
        d_stk = total(i1, "stack_rss") - total(i0, "stack_rss")
        tcp_mem = (k1["tcp_mem"] - k0["tcp_mem"]) * 4  # KiB (pages of 4 KiB)
        slab = k1["Slab"] - k0["Slab"]
        print(f"  per connection (server, user space): rss {d / n:.3f} KiB "
              f"(pss {d_pss / n:.3f}), of which coroutine stacks {d_stk / n:.3f} KiB")
        wk = {}
        held = max(1, sum(per_worker.values()))
        for p, cnt in per_worker.items():
            if p in i0 and p in i1 and cnt > 0:
                dr = i1[p]["rss"] - i0[p]["rss"]
                wk[p] = {"conns": cnt, "share": cnt / held, "rss_delta_kib": dr,
                         "kib_per_conn": dr / cnt}
                print(f"    worker pid {p}: {cnt:,} connections ({100 * cnt / held:.1f} %), "
                      f"rss +{dr:,} KiB, {dr / cnt:.3f} KiB per connection")
        print(f"  kernel, machine-wide, both ends of each connection: TCP inuse "
              f"{k1['tcp_inuse'] - k0['tcp_inuse']:+,}, TCP mem {tcp_mem:+,} KiB "
              f"({tcp_mem / n:.3f} KiB per connection), slab {slab:+,} KiB "
              f"({slab / n:.2f} KiB per connection, {slab / n / 2:.2f} per socket); conntrack "
              f"entries {k0.get('conntrack', '-')} -> {k1.get('conntrack', '-')}")
        objs = {name[5:]: v for name, v in k1.items() if name.startswith("slab_")}
        if objs:
            print("  slab objects (active before -> after, size):",
                  ", ".join(f"{nm} {k0.get('slab_' + nm, (0, 0))[0]:,}->{v[0]:,} ({v[1]} B)"
                            for nm, v in objs.items()))
        out["idle"] = {"open_s": t_open, "open_per_s": n / t_open, "requests": requests,
                       "client_procs": nproc, "open_at_measurement": still,
                       "measured_after_oldest_s": t_meas - oldest,
                       "rss_before_kib": total(i0, "rss"), "rss_after_kib": total(i1, "rss"),
                       "rss_kib_per_conn": d / n, "pss_kib_per_conn": d_pss / n,
                       "stack_kib_per_conn": d_stk / n,
                       "per_worker": {str(p): v for p, v in wk.items()},
                       "tcp_mem_kib_per_conn": tcp_mem / n, "slab_kib_per_conn": slab / n,
                       "slab_objects": objs, "procs": {str(p): m for p, m in i1.items()}}
        if still < n:
            raise Failed(f"idle: {n - still} connection(s) closed before the measurement "
                         "(keep-alive timeout, or the server's descriptor limit)")
        t0 = time.monotonic()
        clients.tell("close")
        clients.hear("closed", 30)
        t_close = time.monotonic() - t0
        gone = wait_until(lambda: sum(conn_fds(srv, base).values()) <= 0, 30)
        t_gone = time.monotonic() - t0
        time.sleep(max(0.0, a.after - (time.monotonic() - t0)))
        i2 = srv.snapshot()
        print(f"\nclose: closed in {t_close:.2f} s; the server had closed them all "
              f"{t_gone:.2f} s after the first close{'' if gone else ' (NOT: deadline 30 s)'}")
        show_procs(f"{time.monotonic() - t0:.1f} s after the first close", srv, i2, i0)
        out["after_close"] = {"rss_kib": total(i2, "rss"), "rss_over_before_kib":
                              total(i2, "rss") - total(i0, "rss"), "server_closed_s": t_gone,
                              "procs": {str(p): m for p, m in i2.items()}}
        ok = gone
    except Failed as e:
        print(f"scale_idle: {e}", file=sys.stderr)
    finally:
        if c:
            c.shut()
        if clients:
            clients.shut()
        stop_server(srv if a.server else None)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
