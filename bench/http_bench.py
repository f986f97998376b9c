#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP benchmark: corio (examples/hello) against its own dependencies and its peers.

    bench/http_bench.py BUILD [--rounds 3] [--duration 5] [--servers LIST] [--only CASES]
                              [--quick] [--out DIR] [--keep-tmp]

BUILD is a Release build tree holding examples/hello/hello, bench/rate_load,
bench/floor_uv and bench/floor_epoll (this script builds nothing):
  cmake -S . -B BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build BUILD -j2
Python 3 standard library only; on 127.0.0.1 only.  bench/http_bench.sh BUILD
[ROUNDS] execs this script.

The servers (bench/servers.sh starts every one of them; one process, one
worker, pinned to CPU CORIO_BENCH_SERVER_CPU, default 0; every client on
CORIO_BENCH_CLIENT_CPU, default 1, and this script too):
  corio        examples/hello                   floor_uv     libuv streams + llhttp
  floor_epoll  raw epoll, a hand parser         nginx        Debian nginx-light, `return 200`
  h2o          Debian h2o 2.2, mruby handlers   kore         Debian kore 4.1, a C module
All serialize /json per request except nginx, whose `return 200` sends a
constant (marked in the tables).  TLS instances (corio, nginx, h2o: TLS 1.3,
one self-signed P-256 certificate shared by all) run beside the plain ones:
"tls" with session tickets on, "tls_off" with tickets and session cache off.

The cases, each a row of issue 22's tables, and the servers that run them:
  plaintext, json   wrk -t1 -c256 --latency: CPU us/request, req/s, p50/p99     all six
  pipe16            the same with bench/pipeline.lua, 16 requests per write,
                    p50/p99 per batch (pipeline.lua's; none when it gives up on
                    a long tail)                            all six (Kore drops
                    pipelined requests: its row says so, and after the first
                    round it is not asked again)
  conns2000, conns4000, conns10000
                    wrk -t1 -cN --timeout=8s: CPU/request and p50/p99 with many
                    busy keep-alive connections; the server's VmRSS is sampled
                    in the middle of each run ("RSS with 4,000 busy
                    connections")                           corio floor_uv nginx
  close             wrk -t1 -c64 -H 'Connection: close': CPU per new connection
                                                            corio nginx h2o
  rate              bench/rate_load PORT /plaintext RATE 100 SECS at 40,000 req/s
                    and at 80 % of nginx's best /plaintext req/s in this run (its
                    warm-up and first-round runs), open loop: p50/p99 from each
                    request's due time
                                                            corio floor_uv nginx
  tls_keepalive     wrk -t1 -c64 over https: CPU/request    corio nginx h2o
  tls_full          openssl s_time -new, one connection at a time, each a full
                    handshake and a GET /plaintext; session tickets and cache
                    off on every server (corio: --tls-resumption off, through
                    its environment variable, since start_corio takes no
                    options): CPU per handshake             corio nginx h2o
  tls_resumed       openssl s_time -reuse, tickets on: CPU per resumed handshake.
                    s_time prints 'r' for each connection OpenSSL reports
                    resumed, '*' otherwise, and the script counts them (a run
                    under 90 % resumed is void): under TLS 1.3 with OpenSSL 3.0
                    -reuse does resume (s_client -sess_out/-sess_in agrees).
                    s_time runs a second longer than its -time: it gets
                    DURATION-1.                             corio nginx h2o
  idle              once per server, after the rounds, on a fresh instance (a
                    server whose heap has held 10,000 busy connections would
                    reuse that memory and show next to nothing):
                    bench/idle_conns.py, 10,000 keep-alive connections, one
                    request each, measured after 1.5 s idle (corio gives idle
                    stacks back after 0.5 s): KiB of VmRSS per connection (and
                    corio's stacks apart); then they close and the server's
                    VmRSS 3 s later is compared with its VmRSS before   all six
  syscalls          once per server, after the rounds: strace -c -f -p PID during
                    a 2 s wrk -t1 -c256 /plaintext: syscalls per request (strace
                    stops the server at every syscall, which undoes its
                    batching: the count is a property of the code path, not of
                    the loaded server); and, unobserved, perf stat's count of
                    the raw_syscalls:sys_enter tracepoint during the server's
                    warm-up run, when perf is installed
                                                corio floor_uv floor_epoll nginx h2o
h2o's TLS CPU time includes its neverbleed child (the private key's process).

Method (as bench/http_bench.sh did): a 1 s warm-up run per server instance,
then ROUNDS rounds; in each round every case runs against every server back
to back, the server order rotating between rounds.  The server's CPU time is
utime+stime from /proc/PID/stat before and after the client's run.  A run is
disturbed when neither the server nor the client used 90 % of its CPU in a
case that saturates one of them (plaintext, json, pipe16, tls_keepalive: one
wrk thread cannot saturate the floors) or other processes took > 5 % of the
server's CPU or of the client's (/proc/stat, busy ticks of the two CPUs less
the server's and the client's own).  Tables show medians over the clean runs
(over all runs when none is clean) with min-max, and paired ratios computed
round by round (corio/floor_uv, corio/nginx, corio/h2o: the two runs of a
round ran back to back).  Every subprocess has a timeout; every server is
stopped on exit, on an error or Ctrl-C too.

Time: the default run (3 rounds of 5 s) must stay under 15 minutes on a
2-CPU machine.  One round is 43 runs, about 4 minutes; warm-ups, the idle and
syscalls cases and the servers' starts add about 1.5 minutes: 13.5 in all.
To fit, the cases leave out the servers that issue 22 does not compare
there: with thousands of connections corio is compared with libuv+llhttp and
nginx (not h2o), with Connection: close with nginx and h2o (not libuv+llhttp),
the rates run against corio, libuv+llhttp and nginx, TLS against nginx and
h2o, and Kore (no TLS here, no pipelining) only in the keep-alive and idle
cases; idle and syscalls run once per server, not per round.  The estimate is
printed at the start, the elapsed time at the end.

Output, in --out (default bench/results/; with --quick a temp dir, so that a
check of the script does not replace the results):
  http-YYYY-MM-DD.md    machine, versions, command; tables per case group, paired
                        ratios, a summary shaped like issue 22's first table and
                        the issue's targets against this run
  http-latest.md        a copy
  http-YYYY-MM-DD.tsv   every run, one line each (after a "# SPDX" comment line
                        and the header line)
  http-YYYY-MM-DD.raw.txt  every client's output, strace's and perf's tables
  http_cpu.dat          CPU us/request, plaintext/json/pipelined-16 x servers, for
                        bench/chart.sh, which then draws docs/bench.svg (OUT/bench.svg
                        when --out is not bench/results/)
"""
import argparse
import datetime
import http.client
import os
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
ALL_SERVERS = ["corio", "floor_uv", "floor_epoll", "nginx", "h2o", "kore"]
LABEL = {"corio": "corio", "floor_uv": "libuv + llhttp", "floor_epoll": "epoll floor",
         "nginx": "nginx", "h2o": "h2o", "kore": "Kore"}
SUMMARY_COLS = ["floor_epoll", "floor_uv", "nginx", "h2o", "kore", "corio"]  # the order
DAT_COLS = ["corio", "floor_uv", "nginx", "h2o", "kore", "floor_epoll"]      # the chart's order
DAT_NAME = {"kore": "Kore"}

CONNS_SERVERS = ["corio", "floor_uv", "nginx"]
CLOSE_SERVERS = ["corio", "nginx", "h2o"]
TLS_SERVERS = ["corio", "nginx", "h2o"]
# name -> servers, instance variant, saturating (the < 90 % CPU rule applies)
CASES = {
    "plaintext": (ALL_SERVERS, "plain", True),
    "json": (ALL_SERVERS, "plain", True),
    "pipe16": (ALL_SERVERS, "plain", True),
    "conns2000": (CONNS_SERVERS, "plain", False),
    "conns4000": (CONNS_SERVERS, "plain", False),
    "conns10000": (CONNS_SERVERS, "plain", False),
    "close": (CLOSE_SERVERS, "plain", False),
    "rate": (["corio", "floor_uv", "nginx"], "plain", False),
    "tls_keepalive": (TLS_SERVERS, "tls", True),
    "tls_full": (TLS_SERVERS, "tls_off", False),
    "tls_resumed": (TLS_SERVERS, "tls", False),
    "idle": (ALL_SERVERS, "idle", False),
    "syscalls": (["corio", "floor_uv", "floor_epoll", "nginx", "h2o"], "plain", False),
}
GROUPS = {"conns": ["conns2000", "conns4000", "conns10000"],
          "tls": ["tls_keepalive", "tls_full", "tls_resumed"]}
RATE_FIXED = 40000
RATE_CONNS = 100
DEPTH = 16
TSV_FIELDS = ["round", "case", "server", "variant", "units", "rps", "p50_us", "p99_us", "cpu_us",
              "cpu_pct", "errors", "other_pct", "client_other_pct", "wall_s", "clean", "valid",
              "rss_kib", "rate", "resumed_pct", "note"]


def log(msg):
    print(f"http_bench: {msg}", flush=True)


class Fail(Exception):
    pass


# ---- small helpers --------------------------------------------------------------------------

def read_file(path, default=""):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def vm_rss_kib(pid):
    for line in read_file(f"/proc/{pid}/status").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def cpu_ticks(pids):
    """utime + stime of the processes, in clock ticks (fields 14 and 15 of /proc/PID/stat)."""
    t = 0
    for pid in pids:
        s = read_file(f"/proc/{pid}/stat")
        if s:
            f = s[s.rindex(")") + 2:].split()  # f[0] is field 3
            t += int(f[11]) + int(f[12])
    return t


def cpu_busy(cpu):
    """Busy ticks of one CPU (user nice system irq softirq steal), from /proc/stat."""
    for line in read_file("/proc/stat").splitlines():
        f = line.split()
        if f and f[0] == f"cpu{cpu}":
            v = [int(x) for x in f[1:]]
            return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
    raise Fail(f"no cpu{cpu} in /proc/stat")


def alive(pid):
    s = read_file(f"/proc/{pid}/stat")
    return bool(s) and s[s.rindex(")") + 2] not in "ZX"


def nofile_soft(pid):
    for line in read_file(f"/proc/{pid}/limits").splitlines():
        if line.startswith("Max open files"):
            v = line.split()[3]
            return 1 << 62 if v == "unlimited" else int(v)
    return 0


def free_port(taken):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p not in taken:
            taken.add(p)
            return p


def median(xs):
    return statistics.median(xs) if xs else None


def fmt_num(v, nd=2):
    if v is None:
        return "—"
    return f"{v:,.{nd}f}" if nd else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "—"
    if v < 1000:
        return f"{v:.0f} µs"
    if v < 1e6:
        return f"{v / 1000:.2f} ms"
    return f"{v / 1e6:.2f} s"


def fmt_range(vals, nd=2, unit=""):
    if not vals:
        return "—"
    m, lo, hi = median(vals), min(vals), max(vals)
    if len(vals) == 1 or lo == hi:
        return f"{m:,.{nd}f}{unit}"
    return f"{m:,.{nd}f}{unit} ({lo:,.{nd}f}–{hi:,.{nd}f})"


def fmt_range_us(vals):
    if not vals:
        return "—"
    m, lo, hi = median(vals), min(vals), max(vals)
    if len(vals) == 1 or lo == hi:
        return fmt_us(m)
    return f"{fmt_us(m)} ({fmt_us(lo)}–{fmt_us(hi)})"


def fmt_ratio(vals):
    if not vals:
        return "—"
    if len(vals) == 1:
        return f"{vals[0]:.2f}"
    return f"{median(vals):.2f} ({min(vals):.2f}–{max(vals):.2f})"


def wrk_us(v):
    """wrk's latency strings: 850.00us, 1.23ms, 1.02s, 2.00m."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", v)
    if not m:
        return None
    return float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6, "m": 6e7}[m.group(2)]


def parse_wrk(out):
    d = dict(requests=None, rps=None, p50=None, p99=None, errors=0, batch=False)
    for line in out.splitlines():
        s = line.split()
        if not s:
            continue
        if " requests in " in line:
            d["requests"] = int(s[0])
        elif s[0] == "Requests/sec:":
            d["rps"] = float(s[1])
        elif s[0] == "batch_latency_us" and len(s) >= 7:
            d["batch"], d["p50"], d["p99"] = True, float(s[2]), float(s[6])
        elif s[0] == "50%" and not d["batch"]:
            d["p50"] = wrk_us(s[1])
        elif s[0] == "99%" and not d["batch"]:
            d["p99"] = wrk_us(s[1])
        elif line.strip().startswith("Socket errors:"):
            d["errors"] += sum(int(x) for x in re.findall(r"\d+", line))
        elif "Non-2xx or 3xx responses:" in line:
            d["errors"] += int(s[-1])
    return d


def parse_kv(line):
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


# ---- the benchmark ----------------------------------------------------------------------------

class Instance:
    def __init__(self, name, variant, port, pid, dirpath):
        self.name, self.variant, self.port, self.pid, self.dir = name, variant, port, pid, dirpath
        self.cpu_pids = [pid]
        self.kill_pids = [pid]
        self.tls = variant in ("tls", "tls_off")

    def url(self, path):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}{path}"

    def log_text(self):
        return read_file(os.path.join(self.dir, f"{self.name}.log"))[-2000:]


class Bench:
    def __init__(self, a):
        self.a = a
        self.build = os.path.abspath(a.build)
        self.server_cpu = int(os.environ.get("CORIO_BENCH_SERVER_CPU", "0"))
        self.client_cpu = int(os.environ.get("CORIO_BENCH_CLIENT_CPU", "1"))
        self.clk = os.sysconf("SC_CLK_TCK")
        self.tmp = tempfile.mkdtemp(prefix="http_bench.")
        self.instances = {}            # (name, variant) -> Instance
        self.procs = []                # background Popen objects (strace) to kill on exit
        self.timers = []
        self.runs = []                 # dicts, TSV_FIELDS
        self.idle = {}                 # server -> list of dicts (one per round)
        self.syscalls = {}             # server -> dict
        self.perf_counts = {}          # server -> syscalls per request (perf stat, warm-up)
        self.warm = {}                 # (name, variant) -> the warm-up run's record
        self.notes = []                # text for the report
        self.skipped = {}              # (case, server) -> why
        self.ports = set()
        self.rate80 = None
        self.cert = self.key = None
        self.corio_resumption = None   # (env var, value for on, value for off) or None
        self.date = datetime.date.today().isoformat()
        self.logf = open(os.path.join(self.tmp, "raw.txt"), "w")
        self.logf.write("# SPDX-License-Identifier: MIT\n# bench/http_bench.py: the raw output of "
                        f"every run ({self.date})\n\n")
        self.tsvf = open(os.path.join(self.tmp, "runs.tsv"), "w")
        self.tsvf.write("# SPDX-License-Identifier: MIT\n" + "\t".join(TSV_FIELDS) + "\n")

    # -- shell helpers (bench/lib.sh + bench/servers.sh) --

    def shlib(self, *args, env=None, timeout=60):
        r = subprocess.run(["bash", "-c", 'source ./lib.sh; source ./servers.sh; '
                            'bench_name=http_bench; "$@"', "_", *[str(x) for x in args]],
                           cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
        return r.returncode, r.stdout.strip(), r.stderr.strip()

    def rawlog(self, title, text):
        self.logf.write(f"==== {title}\n{text.rstrip()}\n\n")
        self.logf.flush()

    # -- servers --

    def probe_corio_tls(self):
        """corio's option for session resumption: --tls-tickets on|off or --tls-resumption
        tickets|cache|off (its environment variable, since start_corio takes no options)."""
        r = subprocess.run([os.path.join(self.build, "examples/hello/hello"), "--help"],
                           capture_output=True, text=True, timeout=10)
        for line in (r.stdout + r.stderr).splitlines():
            m = re.match(r"\s*--tls-(tickets|resumption)\b.*\[(CORIO_[A-Z_]+)\]", line)
            if m:
                on, off = ("on", "off") if m.group(1) == "tickets" else ("tickets", "off")
                self.corio_resumption = (m.group(2), on, off, f"--tls-{m.group(1)}")
                return
        self.corio_resumption = None

    def start(self, name, variant):
        d = os.path.join(self.tmp, f"{name}-{variant}")
        os.makedirs(d, exist_ok=True)
        port = free_port(self.ports)
        env = dict(os.environ)
        if variant in ("tls", "tls_off"):
            env["CORIO_BENCH_CERT"], env["CORIO_BENCH_KEY"] = self.cert, self.key
            env["CORIO_BENCH_TICKETS"] = "on" if variant == "tls" else "off"
            env["CORIO_BENCH_SESSION_CACHE"] = "off"
            if name == "corio" and self.corio_resumption:
                var, on, off, _ = self.corio_resumption
                env[var] = on if variant == "tls" else off
        args = [d, port, self.server_cpu]
        if name in ("corio", "floor_uv", "floor_epoll"):
            args.append(self.build)
        if variant in ("tls", "tls_off"):
            args.append(1)
        rc, out, err = self.shlib(f"start_{name}", *args, env=env, timeout=120)
        if rc != 0 or not out.split() or not out.split()[-1].isdigit():
            raise Fail(f"start_{name} failed: {err or out}")
        inst = Instance(name, variant, port, int(out.split()[-1]), d)
        self.instances[(name, variant)] = inst
        # Kore: the printed pid is the worker; its parent supervises.
        ppid = read_file(f"/proc/{inst.pid}/stat")
        if ppid:
            pp = ppid[ppid.rindex(")") + 2:].split()[1]
            if pp != "1" and read_file(f"/proc/{pp}/comm") == read_file(f"/proc/{inst.pid}/comm"):
                inst.kill_pids.append(int(pp))
        self.wait_ready(inst)
        rc, out, _ = self.shlib("server_cpu_pids", inst.pid)
        inst.cpu_pids = [int(x) for x in out.split()] or [inst.pid]
        for p in inst.cpu_pids:
            if p not in inst.kill_pids:
                inst.kill_pids.append(p)
        return inst

    def get(self, inst, path, timeout=2.0):
        if inst.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            c = http.client.HTTPSConnection("127.0.0.1", inst.port, timeout=timeout, context=ctx)
        else:
            c = http.client.HTTPConnection("127.0.0.1", inst.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode(errors="replace")
        finally:
            c.close()

    def wait_ready(self, inst):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10:
            if not alive(inst.pid):
                raise Fail(f"{inst.name} ({inst.variant}) exited at start: {inst.log_text()}")
            try:
                if self.get(inst, "/plaintext", 1.0)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.1)
        else:
            raise Fail(f"{inst.name} ({inst.variant}) is not answering on 127.0.0.1:{inst.port}")
        want = {"/plaintext": "Hello, World!", "/json": '{"message":"Hello, World!"}'}
        for path, body in want.items():
            st, got = self.get(inst, path)
            if st != 200 or got != body:
                raise Fail(f"{inst.name} ({inst.variant}) {path}: {st} {got!r}")

    def stop_all(self):
        for t in self.timers:
            t.cancel()
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for inst in list(self.instances.values()):
            try:
                self.shlib("server_stop", inst.pid, timeout=15)
            except subprocess.TimeoutExpired:
                pass
            for p in inst.kill_pids:
                if alive(p) and read_file(f"/proc/{p}/comm").strip() in (
                        "hello", "floor_uv", "floor_epoll", "nginx", "h2o", "kore"):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except OSError:
                        pass
        self.instances.clear()

    def alive_or_fail(self, inst, what):
        if not alive(inst.pid):
            raise Fail(f"{inst.name} ({inst.variant}) died during {what}: {inst.log_text()}")

    # -- one client run, measured --

    def client(self, argv, timeout, env=None, nofile=0):
        def pre():
            if nofile:
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                if soft < nofile:
                    if hard != resource.RLIM_INFINITY and hard < nofile:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))  # root only
                    else:
                        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
        try:
            r = subprocess.run(["taskset", "-c", str(self.client_cpu), *argv], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, preexec_fn=pre)
            return r.returncode, r.stdout
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            return None, out + f"\n[timed out after {timeout} s]"

    def measured(self, inst, argv, timeout, env=None, nofile=0, rss_at=None):
        """Run a client against inst; return (rc, output, measurement dict)."""
        rss = {}
        if rss_at is not None:
            t = threading.Timer(rss_at, lambda: rss.__setitem__("kib", vm_rss_kib(inst.pid)))
            t.daemon = True
            self.timers.append(t)
        ch0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, b0, w0 = cpu_ticks(inst.cpu_pids), cpu_busy(self.server_cpu), cpu_busy(self.client_cpu)
        m0 = time.monotonic()
        if rss_at is not None:
            t.start()
        rc, out = self.client(argv, timeout, env=env, nofile=nofile)
        wall = time.monotonic() - m0
        t1, b1, w1 = cpu_ticks(inst.cpu_pids), cpu_busy(self.server_cpu), cpu_busy(self.client_cpu)
        ch1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        if rss_at is not None:
            t.cancel()
            self.timers.remove(t)
        cl = (ch1.ru_utime + ch1.ru_stime - ch0.ru_utime - ch0.ru_stime) * self.clk
        srv = t1 - t0
        m = dict(cpu_s=srv / self.clk, wall=wall,
                 cpu_pct=100 * srv / self.clk / wall,
                 other_pct=max(0.0, 100 * (b1 - b0 - srv) / self.clk / wall),
                 client_other_pct=max(0.0, 100 * (w1 - w0 - cl) / self.clk / wall),
                 client_pct=100 * cl / self.clk / wall,
                 rss_kib=rss.get("kib"))
        return rc, out, m

    def record(self, rnd, case, inst, m, units, rps=None, p50=None, p99=None, errors=0,
               sat=False, valid=True, rate=None, resumed=None, note=""):
        cpu_us = m["cpu_s"] * 1e6 / units if units else None
        # A saturating case is clean when one side was saturated: the server,
        # or the client (one wrk thread cannot saturate the floors, nor corio
        # pipelined: their CPU per request is still what it is).
        clean = ((not sat or m["cpu_pct"] >= 90 or m.get("client_pct", 0) >= 90)
                 and m["other_pct"] <= 5 and m["client_other_pct"] <= 5)
        rec = dict(round=rnd, case=case, server=inst.name, variant=inst.variant, units=units,
                   rps=rps, p50_us=p50, p99_us=p99, cpu_us=cpu_us, cpu_pct=m["cpu_pct"],
                   errors=errors, other_pct=m["other_pct"], client_other_pct=m["client_other_pct"],
                   wall_s=m["wall"], clean=int(clean), valid=int(valid and bool(units)),
                   rss_kib=m.get("rss_kib"), rate=rate, resumed_pct=resumed, note=note)
        if rnd not in ("warm", "calib"):
            self.runs.append(rec)
            self.tsvf.write("\t".join("" if rec[k] is None else
                                      (f"{rec[k]:.3f}" if isinstance(rec[k], float) else str(rec[k]))
                                      for k in TSV_FIELDS) + "\n")
            self.tsvf.flush()
        flag = "" if clean else "  <- disturbed"
        if not rec["valid"]:
            flag = f"  <- {note or 'failed'}"
        extra = f", rss {rec['rss_kib'] / 1024:.1f} MiB" if rec["rss_kib"] else ""
        extra += f", resumed {resumed:.0f}%" if resumed is not None else ""
        print(f"  {str(rnd):>4} {case:<13} {inst.name:<11} {fmt_num(rps, 0):>10}/s  "
              f"p50 {fmt_us(p50):>9}  p99 {fmt_us(p99):>9}  cpu {fmt_num(cpu_us, 3):>7} us/unit  "
              f"(srv {m['cpu_pct']:.0f}%, others {m['other_pct']:.0f}%/{m['client_other_pct']:.0f}%,"
              f" err {errors}{extra}){flag}", flush=True)
        return rec

    # -- the cases --

    def run_wrk(self, rnd, case, inst, conns, path="/plaintext", headers=(), pipeline=False,
                sat=False, secs=None, rss_at=None, timeout_extra=15):
        secs = secs or self.a.duration
        argv = ["wrk", "-t1", f"-c{conns}", f"-d{secs}s", "--latency"]
        if conns > 1000:
            argv.append("--timeout=8s")
        for h in headers:
            argv += ["-H", h]
        env = None
        if pipeline:
            argv += ["-s", os.path.join(HERE, "pipeline.lua")]
            env = dict(os.environ, CORIO_BENCH_WRK_CONNS=str(conns))
        argv.append(inst.url(path))
        if pipeline:
            argv += ["--", str(DEPTH)]
        rc, out, m = self.measured(inst, argv, secs + timeout_extra + conns / 1000, env=env,
                                   nofile=conns + 256, rss_at=rss_at)
        self.rawlog(f"round {rnd} {case} {inst.name} ({inst.variant}): {' '.join(argv)}", out)
        self.alive_or_fail(inst, case)
        d = parse_wrk(out)
        note, valid = "", rc == 0 and d["requests"] is not None
        if rc is None:
            note = "timeout"
        elif not valid:
            note = "wrk failed"
        if pipeline and valid and d["requests"] < 10 * conns:
            note, valid = "drops them", False
        elif pipeline and valid and not d["batch"]:
            # pipeline.lua gives up on its percentiles when the walk of wrk's histogram would
            # be too long (a long tail); wrk's own are wrong under pipelining: none.
            d["p50"] = d["p99"] = None
            note = "no batch percentiles"
        return self.record(rnd, case, inst, m, d["requests"] or 0, rps=d["rps"], p50=d["p50"],
                           p99=d["p99"], errors=d["errors"], sat=sat, valid=valid, note=note)

    def run_rate(self, rnd, case, inst, rate):
        secs = self.a.duration
        argv = [os.path.join(self.build, "bench/rate_load"), str(inst.port), "/plaintext",
                str(rate), str(RATE_CONNS), str(secs)]
        rc, out, m = self.measured(inst, argv, secs + 15)
        self.rawlog(f"round {rnd} {case} {inst.name}: {' '.join(argv)}", out)
        self.alive_or_fail(inst, case)
        line = next((l for l in out.splitlines() if l.startswith("rate_load ")), "")
        kv = parse_kv(line)
        if not kv.get("done"):
            return self.record(rnd, case, inst, m, 0, note="rate_load failed", valid=False)
        return self.record(rnd, case, inst, m, int(kv["done"]), rps=float(kv["rate"]),
                           p50=float(kv["p50_us"]), p99=float(kv["p99_us"]),
                           errors=int(kv["errors"]), rate=rate)

    def run_s_time(self, rnd, case, inst, reuse, secs=None):
        # s_time runs about a second longer than its -time: ask for one less.
        secs = secs or max(1, self.a.duration - 1)
        argv = ["openssl", "s_time", "-connect", f"127.0.0.1:{inst.port}",
                "-reuse" if reuse else "-new", "-time", str(secs), "-www", "/plaintext"]
        rc, out, m = self.measured(inst, argv, secs + 20)
        self.alive_or_fail(inst, case)
        marks = "".join(l for l in out.splitlines() if re.fullmatch(r"[*r]+", l.strip()))
        nr, nf = marks.count("r"), marks.count("*")
        short = "\n".join(l for l in out.splitlines() if not re.fullmatch(r"[*r]+", l.strip()))
        self.rawlog(f"round {rnd} {case} {inst.name}: {' '.join(argv)}",
                    f"{short}\n[progress marks: {nr} resumed (r), {nf} full (*)]")
        mm = re.search(r"^(\d+) connections in [\d.]+s", out, re.M)
        n = int(mm.group(1)) if mm else 0
        resumed = 100 * nr / (nr + nf) if nr + nf else None
        note, valid = "", rc == 0 and n > 0
        if not valid:
            note = "s_time failed"
        elif reuse and (resumed or 0) < 90:
            note, valid = "not resumed", False
        elif not reuse and (resumed or 0) > 0:
            note = "some resumed"
        return self.record(rnd, case, inst, m, n, rps=n / m["wall"], sat=False, valid=valid,
                           resumed=resumed, note=note)

    def run_idle(self, name):
        """The idle case on a fresh instance of the server (not one whose heap has already held
        thousands of busy connections): idle_conns.py, then its VmRSS 3 s after they closed."""
        n = self.a.idle_conns
        try:
            inst = self.start(name, "idle")
        except (Fail, subprocess.TimeoutExpired) as e:
            self.idle[name] = [dict(ok=False, note=f"did not start: {e}"[:200])]
            return
        try:
            if nofile_soft(inst.pid) < n + 32:
                self.idle[name] = [dict(ok=False, note=f"its RLIMIT_NOFILE ({nofile_soft(inst.pid)}) "
                                                       f"is below {n} connections")]
                return
            pid = inst.pid
            time.sleep(0.3)
            rss0 = vm_rss_kib(pid)
            argv = ["python3", os.path.join(HERE, "idle_conns.py"), "--pid", str(pid), "--port",
                    str(inst.port), "--conns", str(n), "--settle", "1.5", "--window", "3"]
            rc, out = self.client(argv, 60, nofile=n + 256)
            t_closed = time.monotonic()
            self.rawlog(f"idle {name}: {' '.join(argv)}", out)
            self.alive_or_fail(inst, "idle")
            kv = parse_kv(next((l for l in out.splitlines() if l.startswith("conns=")), ""))
            rec = dict(server=name, rss_before_kib=rss0, ok=rc == 0 and bool(kv),
                       note="" if rc == 0 else (out.strip().splitlines() or ["failed"])[-1])
            for k in ("open", "rss_kib_per_conn", "stack_kib_per_conn", "other_kib_per_conn",
                      "open_s", "rss_after_kib"):
                if k in kv:
                    rec[k] = float(kv[k])
            time.sleep(max(0.0, 3.0 - (time.monotonic() - t_closed)))
            rec["rss_closed_kib"] = vm_rss_kib(pid)
            if rec["rss_closed_kib"] is not None and rss0:
                rec["closed_delta_kib"] = rec["rss_closed_kib"] - rss0
            self.idle[name] = [rec]
            if rec["ok"]:
                print(f"       idle          {name:<11} {rec.get('rss_kib_per_conn', 0):.2f} KiB/conn"
                      f" (stacks {rec.get('stack_kib_per_conn', 0):.2f}), {int(rec.get('open', 0))}/{n} open,"
                      f" opened in {rec.get('open_s', 0):.2f} s; RSS {rss0 / 1024:.1f} MiB before, "
                      f"{(rec['rss_closed_kib'] or 0) / 1024:.1f} MiB 3 s after they closed", flush=True)
            else:
                print(f"       idle          {name:<11} failed: {rec['note']}", flush=True)
        finally:
            self.shlib("server_stop", inst.pid, timeout=15)
            self.instances.pop((name, "idle"), None)

    def perf_syscalls_done(self, p, name, rec):
        """Stop the perf stat that counted the server's syscalls (the raw_syscalls:sys_enter
        tracepoint, counted in the kernel: the server runs as it would unobserved) during a
        warm-up run; keep the count per request."""
        time.sleep(0.1)
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        self.procs.remove(p)
        text = read_file(os.path.join(self.tmp, f"perf-{name}.txt"))
        self.rawlog(f"warm-up {name}: perf stat -e raw_syscalls:sys_enter -p PID", text)
        m = re.search(r"^(\d+),[^,]*,raw_syscalls:sys_enter", text, re.M)
        if m and rec["units"]:
            self.perf_counts[name] = int(m.group(1)) / rec["units"]

    def run_syscalls(self, inst, secs):
        perf = self.perf_counts.get(inst.name)
        out_file = os.path.join(self.tmp, f"strace-{inst.name}.txt")
        err_file = os.path.join(self.tmp, f"strace-{inst.name}.err")
        with open(err_file, "w") as ef:
            p = subprocess.Popen(["taskset", "-c", str(self.server_cpu), "strace", "-c", "-f",
                                  "-p", str(inst.pid), "-o", out_file], stdout=subprocess.DEVNULL,
                                 stderr=ef)
        self.procs.append(p)
        t0 = time.monotonic()
        while "attached" not in read_file(err_file) and time.monotonic() - t0 < 5:
            if p.poll() is not None:
                break
            time.sleep(0.05)
        if p.poll() is not None or "attached" not in read_file(err_file):
            p.kill()
            self.syscalls[inst.name] = dict(ok=False, note="strace did not attach: "
                                            + read_file(err_file).strip()[-200:])
            print(f"       syscalls      {inst.name:<11} {self.syscalls[inst.name]['note']}")
            return
        time.sleep(0.3)
        argv = ["wrk", "-t1", "-c256", f"-d{secs}s", inst.url("/plaintext")]
        rc, out = self.client(argv, secs + 20, nofile=512)
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)
        self.procs.remove(p)
        self.alive_or_fail(inst, "syscalls")
        table = read_file(out_file)
        self.rawlog(f"syscalls {inst.name}: strace -c -f -p {inst.pid} during {' '.join(argv)}",
                    out + "\n" + table)
        d = parse_wrk(out)
        calls, top = None, []
        for line in table.splitlines():
            f = line.split()
            if len(f) >= 5 and f[-1] == "total":
                calls = int(f[3])
            elif len(f) >= 5 and re.fullmatch(r"[\d.]+", f[0]) and f[3].isdigit():
                top.append((int(f[3]), f[-1]))
        top.sort(reverse=True)
        reqs = d["requests"] or 0
        rec = dict(ok=bool(calls and reqs), calls=calls, requests=reqs, table=table, perf=perf,
                   per_req=calls / reqs if calls and reqs else None,
                   top=[(name, c / reqs) for c, name in top[:5]] if reqs else [])
        self.syscalls[inst.name] = rec
        print(f"       syscalls      {inst.name:<11} {fmt_num(rec['per_req'], 3)} per request "
              f"({calls} calls, {reqs} requests under strace); unobserved (perf stat): "
              f"{fmt_num(perf, 3)}", flush=True)

    # -- plan --

    def plan(self):
        a = self.a
        avail = set(self.available)
        self.servers = [s for s in ALL_SERVERS if s in a.servers and s in avail]
        self.cases = [c for c in CASES if c in a.only]
        self.case_servers = {}
        for c in self.cases:
            srvs = [s for s in self.servers if s in CASES[c][0]]
            if c == "tls_full" and "corio" in srvs and not self.corio_resumption:
                srvs.remove("corio")
                self.skipped[(c, "corio")] = ("examples/hello has no option to turn session "
                                              "tickets off (no --tls-tickets/--tls-resumption in "
                                              "its --help): its tickets are always on")
            self.case_servers[c] = srvs
        self.needed = []  # (name, variant) in start order
        for c in self.cases:
            for s in self.case_servers[c]:
                key = (s, CASES[c][1])
                if key not in self.needed and key[1] != "idle":  # idle: fresh instances, later
                    self.needed.append(key)
        if "rate" in self.cases and "nginx" in self.servers and ("nginx", "plain") not in self.needed:
            self.needed.append(("nginx", "plain"))

    def estimate(self):
        """Seconds the run should take (from the per-run overheads measured on a 2-CPU VM)."""
        d, R = self.a.duration, self.a.rounds
        per_round, once = 0.0, 0.0
        for c in self.cases:
            n = len(self.case_servers[c])
            if c == "idle":
                once += n * (5.5 + self.a.idle_conns / 5000)
            elif c == "syscalls":
                once += n * (self.a.syscall_secs + 1.5)
            elif c == "rate":
                per_round += 2 * n * (d + 0.2)
            elif c.startswith("conns"):
                per_round += n * (d + 0.6 + int(c[5:]) / 20000)
            elif c == "close":
                per_round += n * (d + 0.4)
            elif c in ("tls_full", "tls_resumed"):
                per_round += n * (max(1, d - 1) + 1.1)
            elif c == "pipe16" and "kore" in self.case_servers[c]:
                per_round += (n - 1) * (d + 0.5)
                once += d + 0.5
            else:
                per_round += n * (d + 0.2)
        once += len(self.needed) * 2.5 + 5
        if "rate" in self.cases and "plaintext" not in self.cases:
            once += d + 1
        return R * per_round + once


    # -- main flow --

    def run(self):
        a = self.a
        rc, out, err = self.shlib("servers_available", self.build)
        self.available = out.split()
        for s in a.servers:
            if s not in self.available:
                self.notes.append(f"{LABEL[s]} is not available here (servers_available): left out.")
                log(f"warning: {s} not available here: left out")
        self.probe_corio_tls()
        self.plan()
        if not self.servers or not self.cases:
            raise Fail("nothing to run (no servers or no cases)")
        est = self.estimate()
        log(f"servers on CPU {self.server_cpu}, clients on CPU {self.client_cpu}; "
            f"{a.rounds} round(s) of {a.duration} s; cases: {', '.join(self.cases)}")
        log(f"estimated time: {est / 60:.1f} min (load average {read_file('/proc/loadavg').split()[0]})")
        try:
            os.sched_setaffinity(0, {self.client_cpu})
        except OSError:
            pass
        if any(v in ("tls", "tls_off") for _, v in self.needed):
            rc, out, err = self.shlib("bench_cert", self.tmp)
            if rc != 0 or len(out.split()) != 2:
                raise Fail(f"bench_cert failed: {err}")
            self.cert, self.key = out.split()
        # Servers
        for name, variant in self.needed:
            try:
                inst = self.start(name, variant)
                log(f"{name} ({variant}) pid {inst.pid} (cpu pids {' '.join(map(str, inst.cpu_pids))})"
                    f" on 127.0.0.1:{inst.port}")
            except (Fail, subprocess.TimeoutExpired) as e:
                log(f"warning: {name} ({variant}) did not start: {e}")
                self.notes.append(f"{LABEL[name]} ({variant}) did not start: {str(e)[:300]}")
        self.versions = {}
        for s in self.servers:
            rc, out, err = self.shlib("server_version", s, self.build)
            self.versions[s] = out or err or "?"
        # Limits for the many-connection cases
        for c in self.cases:
            if c.startswith("conns"):
                n = int(c[5:])
                for s in list(self.case_servers[c]):
                    inst = self.instances.get((s, "plain"))
                    if inst and nofile_soft(inst.pid) < n + 32:
                        self.case_servers[c].remove(s)
                        self.skipped[(c, s)] = (f"its RLIMIT_NOFILE ({nofile_soft(inst.pid)}) is "
                                                f"below {n} connections")
                soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
                if hard != resource.RLIM_INFINITY and hard < n + 256 and os.geteuid() != 0:
                    for s in self.case_servers[c]:
                        self.skipped[(c, s)] = f"the client's hard RLIMIT_NOFILE {hard} < {n + 256}"
                    self.case_servers[c] = []
        for (c, s), why in self.skipped.items():
            log(f"skip {c} on {s}: {why}")

        def inst_of(s, c):
            return self.instances.get((s, CASES[c][1]))

        # Warm-up (and, for the syscalls case, perf stat's count of the server's syscalls)
        log("warm-up: 1 s per server instance")
        for (name, variant), inst in list(self.instances.items()):
            perf = (variant == "plain" and "syscalls" in self.cases and shutil.which("perf")
                    and name in self.case_servers["syscalls"])
            p = None
            if perf:
                p = subprocess.Popen(["taskset", "-c", str(self.client_cpu), "perf", "stat", "-x", ",",
                                      "-e", "raw_syscalls:sys_enter", "-p", str(inst.pid), "-o",
                                      os.path.join(self.tmp, f"perf-{name}.txt")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                self.procs.append(p)
                time.sleep(0.3)
            rec = self.run_wrk("warm", "warm", inst, 256 if variant == "plain" else 64, secs=1)
            self.warm[(name, variant)] = rec
            if p:
                self.perf_syscalls_done(p, name, rec)
        # Rounds
        d = a.duration
        t_start = time.monotonic()
        for r in range(1, a.rounds + 1):
            k = (r - 1) % len(self.servers)
            order = self.servers[k:] + self.servers[:k]
            log(f"round {r}/{a.rounds}: order {' '.join(order)}")
            for c in self.cases:
                if c in ("syscalls", "idle"):
                    continue
                srvs = [s for s in order if s in self.case_servers[c] and inst_of(s, c)]
                if c == "rate" and self.rate80 is None:
                    self.set_rate80()
                for s in srvs:
                    inst = inst_of(s, c)
                    if c in ("plaintext", "json"):
                        self.run_wrk(r, c, inst, 256, path=f"/{c}", sat=True)
                    elif c == "pipe16":
                        if any(x["note"] == "drops them" for x in self.runs
                               if x["case"] == c and x["server"] == s):
                            continue  # seen in an earlier round: not again
                        self.run_wrk(r, c, inst, 256, pipeline=True, sat=True)
                    elif c.startswith("conns"):
                        self.run_wrk(r, c, inst, int(c[5:]), rss_at=d / 2 + 0.1)
                        time.sleep(0.3)  # the server closes its connections before the next run
                    elif c == "close":
                        self.run_wrk(r, c, inst, 64, headers=["Connection: close"])
                        time.sleep(0.2)
                    elif c == "rate":
                        self.run_rate(r, "rate40k", inst, RATE_FIXED)
                        if self.rate80:
                            self.run_rate(r, "rate80", inst, self.rate80)
                    elif c == "tls_keepalive":
                        self.run_wrk(r, c, inst, 64, sat=True)
                    elif c == "tls_full":
                        self.run_s_time(r, c, inst, reuse=False)
                    elif c == "tls_resumed":
                        self.run_s_time(r, c, inst, reuse=True)
            log(f"round {r} done at {(time.monotonic() - t_start) / 60:.1f} min")
        if "idle" in self.cases:
            log(f"idle: {a.idle_conns:,} keep-alive connections, one fresh server at a time")
            for s in self.servers:
                if s in self.case_servers["idle"]:
                    self.run_idle(s)
        if "syscalls" in self.cases:
            log(f"syscalls: strace -c -f during wrk -c256 -d{a.syscall_secs}s /plaintext, one run each")
            for s in self.servers:
                if s in self.case_servers["syscalls"] and inst_of(s, "syscalls"):
                    self.run_syscalls(inst_of(s, "syscalls"), a.syscall_secs)
                    time.sleep(0.3)

    def set_rate80(self):
        """80 % of nginx's maximum /plaintext req/s: the best of its warm-up and its first
        round's run (a disturbed run is slower, never faster)."""
        ng = [x["rps"] for x in self.runs if x["case"] == "plaintext" and x["server"] == "nginx"
              and x["valid"] and x["rps"]]
        w = self.warm.get(("nginx", "plain"))
        if ng and w and w.get("rps"):
            ng.append(w["rps"])
        if not ng:
            inst = self.instances.get(("nginx", "plain"))
            if not inst:
                self.notes.append("No nginx: the rate at 80 % of nginx's req/s is left out.")
                self.rate80 = 0
                return
            log("rate: measuring nginx's /plaintext req/s for the 80 % rate")
            rec = self.run_wrk("calib", "calib", inst, 256, path="/plaintext", sat=True)
            ng = [rec["rps"]] if rec["rps"] else []
        if not ng:
            self.rate80 = 0
            return
        self.rate80 = int(round(0.8 * max(ng), -3))
        log(f"rate: 80 % of nginx's /plaintext req/s ({max(ng):,.0f}) = {self.rate80:,} req/s")


# ---- the report ---------------------------------------------------------------------------------

CASE_TITLE = {
    "plaintext": "/plaintext, c256", "json": "/json, c256", "pipe16": "pipelined 16, c256",
    "conns2000": "2,000 busy conns", "conns4000": "4,000 busy conns",
    "conns10000": "10,000 busy conns", "close": "Connection: close, c64",
    "rate40k": "40,000 req/s", "rate80": "80 % of nginx", "tls_keepalive": "TLS keep-alive, c64",
    "tls_full": "TLS full handshake", "tls_resumed": "TLS resumed handshake",
}


class Report:
    def __init__(self, b):
        self.b = b
        self.by = {}
        for x in b.runs:
            self.by.setdefault((x["case"], x["server"]), []).append(x)

    def chosen(self, case, srv):
        rs = [x for x in self.by.get((case, srv), []) if x["valid"]]
        clean = [x for x in rs if x["clean"]]
        return clean or rs

    def vals(self, case, srv, field):
        return [x[field] for x in self.chosen(case, srv) if x[field] is not None]

    def med(self, case, srv, field):
        return median(self.vals(case, srv, field))

    def paired(self, case, a, b, field):
        ra = {x["round"]: x for x in self.by.get((case, a), []) if x["valid"]}
        rb = {x["round"]: x for x in self.by.get((case, b), []) if x["valid"]}
        return [ra[r][field] / rb[r][field] for r in ra if r in rb and ra[r][field] is not None
                and rb[r][field]]

    def dropped(self, case, srv):
        rs = self.by.get((case, srv), [])
        return rs and all(x["note"] == "drops them" for x in rs)

    def cases_present(self, names):
        return [c for c in names if any(k[0] == c for k in self.by)]

    def servers_of(self, case):
        return [s for s in ALL_SERVERS if (case, s) in self.by]

    # -- tables --

    def table_wrk(self, cases, rss=False):
        L = ["| case | server | req/s | p50 | p99 | CPU µs/request | server CPU | clean/all | errors |"
             + (" RSS mid-run |" if rss else ""),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if rss else "")]
        for c in cases:
            for s in self.servers_of(c):
                rs = self.by[(c, s)]
                if self.dropped(c, s):
                    L.append(f"| {CASE_TITLE.get(c, c)} | {LABEL[s]} | drops them | | | | | "
                             f"0/{len(rs)} | {sum(x['errors'] for x in rs)} |" + (" |" if rss else ""))
                    continue
                ch = self.chosen(c, s)
                row = (f"| {CASE_TITLE.get(c, c)} | {LABEL[s]}{self.mark(c, s)} | {fmt_num(self.med(c, s, 'rps'), 0)} | "
                       f"{fmt_us(self.med(c, s, 'p50_us'))} | {fmt_us(self.med(c, s, 'p99_us'))} | "
                       f"{fmt_range(self.vals(c, s, 'cpu_us'))} | {fmt_num(self.med(c, s, 'cpu_pct'), 0)} % | "
                       f"{sum(x['clean'] and x['valid'] for x in rs)}/{len(rs)} | {sum(x['errors'] for x in rs)} |")
                if rss:
                    v = [x["rss_kib"] / 1024 for x in ch if x["rss_kib"]]
                    row += f" {fmt_range(v, 1, ' MiB')} |"
                L.append(row)
        return L

    def mark(self, case, srv):
        if case == "json" and srv == "nginx":
            return " ¹"
        if case == "json" and srv in ("h2o", "kore") and os.environ.get("CORIO_BENCH_JSON") == "const":
            return " ¹"
        return ""

    def table_rate(self, cases):
        L = ["| rate | server | achieved req/s | p50 | p99 | CPU µs/request | server CPU | clean/all | errors |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in cases:
            for s in self.servers_of(c):
                rs = self.by[(c, s)]
                rate = rs[0]["rate"]
                L.append(f"| {rate:,} req/s{' (80 % of nginx)' if c == 'rate80' else ''} | {LABEL[s]} | "
                         f"{fmt_num(self.med(c, s, 'rps'), 0)} | {fmt_range_us(self.vals(c, s, 'p50_us'))} | "
                         f"{fmt_range_us(self.vals(c, s, 'p99_us'))} | {fmt_range(self.vals(c, s, 'cpu_us'))} | "
                         f"{fmt_num(self.med(c, s, 'cpu_pct'), 0)} % | "
                         f"{sum(x['clean'] and x['valid'] for x in rs)}/{len(rs)} | {sum(x['errors'] for x in rs)} |")
        return L

    def table_handshake(self, cases):
        L = ["| case | server | handshakes/s | CPU µs/handshake | server CPU | resumed | clean/all |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for c in cases:
            for s in self.servers_of(c):
                rs = self.by[(c, s)]
                L.append(f"| {CASE_TITLE[c]} | {LABEL[s]} | {fmt_num(self.med(c, s, 'rps'), 0)} | "
                         f"{fmt_range(self.vals(c, s, 'cpu_us'))} | {fmt_num(self.med(c, s, 'cpu_pct'), 0)} % | "
                         f"{fmt_num(self.med(c, s, 'resumed_pct'), 0)} % | "
                         f"{sum(x['clean'] and x['valid'] for x in rs)}/{len(rs)} |")
        return L

    def idle_vals(self, s, key):
        return [x[key] for x in self.b.idle.get(s, []) if x.get("ok") and x.get(key) is not None]

    def table_idle(self):
        n = self.b.a.idle_conns
        L = [f"| server | KiB RSS per idle conn ({n:,}) | of which stacks | other | RSS before | "
             f"RSS 3 s after they close | after − before |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in ALL_SERVERS:
            if s not in self.b.idle:
                continue
            bad = [x for x in self.b.idle[s] if not x.get("ok")]
            L.append(f"| {LABEL[s]} | {fmt_range(self.idle_vals(s, 'rss_kib_per_conn'))} | "
                     f"{fmt_range(self.idle_vals(s, 'stack_kib_per_conn'))} | "
                     f"{fmt_range(self.idle_vals(s, 'other_kib_per_conn'))} | "
                     f"{fmt_range([v / 1024 for v in self.idle_vals(s, 'rss_before_kib')], 1, ' MiB')} | "
                     f"{fmt_range([v / 1024 for v in self.idle_vals(s, 'rss_closed_kib')], 1, ' MiB')} | "
                     f"{fmt_range([v / 1024 for v in self.idle_vals(s, 'closed_delta_kib')], 2, ' MiB')} |"
                     + (f" failed {len(bad)}×: {bad[0]['note'][:80]}" if bad else ""))
        return L

    def table_syscalls(self):
        L = ["| server | syscalls/request (strace) | requests under strace | most frequent (per request, strace) "
             "| syscalls/request unobserved (perf stat) |",
             "| --- | ---: | ---: | --- | ---: |"]
        for s in ALL_SERVERS:
            x = self.b.syscalls.get(s)
            if not x:
                continue
            if not x["ok"]:
                L.append(f"| {LABEL[s]} | — | | {x.get('note', 'failed')} | |")
                continue
            top = ", ".join(f"{n} {v:.2f}" for n, v in x["top"][:4])
            L.append(f"| {LABEL[s]} | {x['per_req']:.3f} | {x['requests']:,} | {top} | "
                     f"{fmt_num(x.get('perf'), 3)} |")
        return L

    def table_paired(self, cases, field, what):
        pairs = [("floor_uv", "corio/libuv+llhttp"), ("nginx", "corio/nginx"), ("h2o", "corio/h2o")]
        L = [f"| case | " + " | ".join(p[1] for p in pairs) + " |", "| --- | ---: | ---: | ---: |"]
        any_row = False
        for c in cases:
            cells = [fmt_ratio(self.paired(c, "corio", o, field)) for o, _ in pairs]
            if all(x == "—" for x in cells):
                continue
            any_row = True
            L.append(f"| {CASE_TITLE.get(c, c)} | " + " | ".join(cells) + " |")
        return L if any_row else []

    # -- summary and targets --

    def cell(self, case, s, field="cpu_us", nd=2):
        if self.dropped(case, s):
            return "drops them"
        v = self.med(case, s, field)
        return fmt_num(v, nd) if v is not None else ""

    def summary(self):
        b = self.b
        rows = []

        def row(title, fn):
            cells = [fn(s) for s in SUMMARY_COLS]
            if any(cells):
                rows.append(f"| {title} | " + " | ".join(cells) + " |")

        row("CPU µs/request, /plaintext c256", lambda s: self.cell("plaintext", s))
        row("CPU µs/request, /json c256", lambda s: self.cell("json", s) + (self.mark("json", s)
                                                                           if self.cell("json", s) else ""))
        row("CPU µs/request, pipelined 16", lambda s: self.cell("pipe16", s))
        for n in (2000, 4000, 10000):
            row(f"CPU µs/request, {n:,} busy keep-alive conns", lambda s: self.cell(f"conns{n}", s))
            row(f"p99, {n:,} busy keep-alive conns",
                lambda s: fmt_us(self.med(f"conns{n}", s, "p99_us")) if self.med(f"conns{n}", s, "p99_us") else "")
        row("RSS with 4,000 busy connections, MiB",
            lambda s: fmt_num(median([x["rss_kib"] / 1024 for x in self.chosen("conns4000", s)
                                      if x["rss_kib"]]) , 1)
            if [x for x in self.chosen("conns4000", s) if x["rss_kib"]] else "")
        row("CPU µs per new connection (Connection: close, c64)", lambda s: self.cell("close", s))
        r40 = self.by_case_rate("rate40k")
        if r40:
            row(f"p99 at {r40:,} req/s (open loop)", lambda s: fmt_us(self.med("rate40k", s, "p99_us"))
                if self.med("rate40k", s, "p99_us") is not None else "")
        r80 = self.by_case_rate("rate80")
        if r80:
            row(f"p99 at {r80:,} req/s (80 % of nginx's max)",
                lambda s: fmt_us(self.med("rate80", s, "p99_us")) if self.med("rate80", s, "p99_us") is not None else "")
        row("syscalls per request (strace -c, c256)",
            lambda s: f"{b.syscalls[s]['per_req']:.2f}" if b.syscalls.get(s, {}).get("ok") else "")
        row("syscalls per request, unobserved (perf stat, c256)",
            lambda s: f"{b.syscalls[s]['perf']:.3f}" if b.syscalls.get(s, {}).get("perf") else "")
        row(f"KiB RSS per idle keep-alive conn ({b.a.idle_conns:,})",
            lambda s: (fmt_num(median(self.idle_vals(s, "rss_kib_per_conn")), 2)
                       + (f" (stacks {median(self.idle_vals(s, 'stack_kib_per_conn')):.2f})"
                          if s == "corio" and self.idle_vals(s, "stack_kib_per_conn") else ""))
            if self.idle_vals(s, "rss_kib_per_conn") else "")
        row(f"RSS 3 s after the {b.a.idle_conns:,} idle connections close, MiB over before",
            lambda s: f"{median(self.idle_vals(s, 'closed_delta_kib')) / 1024:+.2f}"
            if self.idle_vals(s, "closed_delta_kib") else "")
        row("TLS 1.3 keep-alive CPU µs/request, c64", lambda s: self.cell("tls_keepalive", s))
        row("TLS 1.3 CPU µs per full handshake (no tickets, no cache)", lambda s: self.cell("tls_full", s))
        row("TLS 1.3 CPU µs per resumed handshake (tickets)", lambda s: self.cell("tls_resumed", s))
        head = ["| figure (this machine, one run) | " + " | ".join(LABEL[s] for s in SUMMARY_COLS) + " |",
                "| --- |" + " ---: |" * len(SUMMARY_COLS)]
        return head + rows if rows else []

    def by_case_rate(self, case):
        rs = [x for x in self.b.runs if x["case"] == case]
        return rs[0]["rate"] if rs else None

    def targets(self):
        """Issue 22's section 2, against this run (paired ratios: median over the rounds)."""
        L = ["| workload | this run | target | met |", "| --- | --- | --- | --- |"]

        def pr(case, other, field="cpu_us"):
            v = self.paired(case, "corio", other, field)
            return median(v) if v else None

        def add(workload, measured, target, ok):
            if measured is None:
                return
            L.append(f"| {workload} | {measured} | {target} | {'yes' if ok else '**no**'} |")

        for c in ("plaintext", "json"):
            r = pr(c, "floor_uv")
            peers = [s for s in ("nginx", "h2o", "kore", "floor_epoll") if self.med(c, s, "cpu_us")]
            below = self.med(c, "corio", "cpu_us") is not None and all(
                self.med(c, "corio", "cpu_us") < self.med(c, s, "cpu_us") for s in peers
                if s != "floor_epoll")
            if r is not None:
                add(f"CPU per request, {CASE_TITLE[c]}", f"{r:.2f}× libuv+llhttp; corio "
                    f"{self.med(c, 'corio', 'cpu_us'):.2f} µs, peers "
                    + ", ".join(f"{LABEL[s]} {self.med(c, s, 'cpu_us'):.2f}" for s in peers if s != "floor_epoll"),
                    "≤ 1.05× libuv+llhttp, below every peer", r <= 1.05 and below)
        r = pr("pipe16", "floor_uv")
        add("CPU per request, pipelined 16", f"{r:.2f}× libuv+llhttp" if r else None, "≤ 1.2× libuv+llhttp",
            r is not None and r <= 1.2)
        sc = self.b.syscalls
        if sc.get("corio", {}).get("ok") and sc.get("floor_uv", {}).get("ok"):
            c, f = sc["corio"]["per_req"], sc["floor_uv"]["per_req"]
            pc, pf = sc["corio"].get("perf"), sc["floor_uv"].get("perf")
            add("syscalls per request (strace -c -f)", f"{c:.3f} vs libuv+llhttp {f:.3f}"
                + (f" (unobserved, perf stat: {pc:.3f} vs {pf:.3f})" if pc and pf else ""),
                "no more than libuv+llhttp's", c <= f)
        v = self.idle_vals("corio", "rss_kib_per_conn")
        if v:
            add(f"RSS per idle keep-alive connection at {self.b.a.idle_conns:,}", f"{median(v):.2f} KiB",
                "≤ 0.75 KiB", median(v) <= 0.75)
        v = self.idle_vals("corio", "closed_delta_kib")
        if v:
            add(f"RSS 3 s after the {self.b.a.idle_conns:,} connections close",
                f"baseline {median(v) / 1024:+.2f} MiB", "within 2 MiB of baseline",
                median(v) / 1024 <= 2)
        r = pr("tls_keepalive", "nginx")
        add("TLS keep-alive CPU per request", f"{r:.2f}× nginx" if r else None, "≤ 0.8× nginx",
            r is not None and r <= 0.8)
        for c in ("tls_full", "tls_resumed"):
            r = pr(c, "nginx")
            add(f"TLS new connections: CPU per {'full' if c == 'tls_full' else 'resumed'} handshake",
                f"{r:.2f}× nginx" if r else None, "≤ 0.85× nginx", r is not None and r <= 0.85)
        if ("tls_full", "corio") in self.b.skipped:
            L.append(f"| TLS full handshake, corio | not measured: {self.b.skipped[('tls_full', 'corio')]} "
                     f"| ≤ 0.85× nginx | **no** |")
        for c in ("rate40k", "rate80"):
            r = pr(c, "nginx", "p99_us")
            rate = self.by_case_rate(c)
            if r is not None:
                add(f"p99 at {rate:,} req/s (open loop)", f"{r:.2f}× nginx's "
                    f"({fmt_us(self.med(c, 'corio', 'p99_us'))} vs {fmt_us(self.med(c, 'nginx', 'p99_us'))})",
                    "≤ nginx's", r <= 1.0)
        for n in (2000, 4000, 10000):
            c = f"conns{n}"
            r, p = pr(c, "floor_uv"), pr(c, "nginx", "p99_us")
            if r is not None:
                add(f"CPU per request, {n:,} busy connections", f"{r:.2f}× libuv+llhttp; p99 "
                    + (f"{p:.2f}× nginx's" if p is not None else "—"),
                    "≤ 1.1× libuv+llhttp, p99 ≤ nginx's", r <= 1.1 and (p is None or p <= 1.0))
        c = self.med("close", "corio", "cpu_us")
        h = self.med("close", "h2o", "cpu_us")
        if c is not None and h is not None:
            add("CPU per new connection (Connection: close, c64)", f"{c:.2f} µs vs h2o {h:.2f} "
                f"(paired {fmt_ratio(self.paired('close', 'corio', 'h2o', 'cpu_us'))}× h2o)",
                "≤ h2o's", c <= h)
        cr = [x["rss_kib"] for x in self.chosen("conns4000", "corio") if x["rss_kib"]]
        fr = [x["rss_kib"] for x in self.chosen("conns4000", "floor_uv") if x["rss_kib"]]
        if cr and fr:
            r = median(cr) / median(fr)
            add("RSS with 4,000 busy connections", f"{median(cr) / 1024:.1f} MiB, {r:.2f}× libuv+llhttp "
                f"({median(fr) / 1024:.1f})", "≤ 1.25× libuv+llhttp", r <= 1.25)
        return L if len(L) > 2 else []

    # -- files --

    def markdown(self, cmdline, machine, elapsed):
        b, a = self.b, self.b.a
        L = [f"# HTTP benchmark, {b.date}", "",
             f"`{cmdline}` — {a.rounds} round(s) of {a.duration} s, finished in {elapsed / 60:.1f} min "
             f"(bench/http_bench.py; how to read it: its header comment).", "",
             "## Machine", ""]
        L += [f"- {k}: {v}" for k, v in machine]
        L += ["", "## Servers", ""]
        L += [f"- {LABEL[s]}: {b.versions.get(s, '?')}" for s in b.servers]
        L += ["", f"One worker each, pinned to CPU {b.server_cpu}; every client (wrk, rate_load, "
              f"openssl s_time, idle_conns.py) on CPU {b.client_cpu}. CPU time is the server's "
              "utime+stime (/proc/PID/stat; h2o with TLS: its neverbleed child too) over the "
              "requests (handshakes, connections) the client completed. Medians over the clean runs "
              "(all runs when none is clean), with min–max; a run is disturbed when neither the "
              "server nor the client used 90 % of its CPU in a saturating case (keep-alive c256, "
              "pipelined, TLS keep-alive) or other processes took > 5 % of the server's or the "
              "client's CPU.", ""]
        s = self.summary()
        if s:
            L += ["## Summary", ""] + s + [""]
        if s and any(k[0] == "json" for k in self.by):
            L += ["¹ nginx's /json is `return 200` with a constant string; every other server "
                  "serializes the object per request"
                  + (" (h2o and Kore send a constant too: CORIO_BENCH_JSON=const)"
                     if os.environ.get("CORIO_BENCH_JSON") == "const" else "") + ".", ""]
        t = self.targets()
        if t:
            L += ["## Issue 22's targets against this run", "",
                  "Ratios are paired (round by round), median over the rounds.", ""] + t + [""]
        g = self.cases_present(["plaintext", "json", "pipe16"])
        if g:
            L += ["## Keep-alive, 256 connections", "",
                  "wrk -t1 -c256 --latency; pipelined: bench/pipeline.lua, 16 requests per write, "
                  "p50/p99 per batch.", ""] + self.table_wrk(g) + [""]
        g = self.cases_present(["conns2000", "conns4000", "conns10000"])
        if g:
            L += ["## Many busy keep-alive connections", "",
                  "wrk -t1 -cN --timeout=8s; RSS: the server's VmRSS sampled in the middle of the run. "
                  "With thousands of connections wrk saturates its CPU before the server does.", ""]
            L += self.table_wrk(g, rss=True) + [""]
        g = self.cases_present(["close"])
        if g:
            L += ["## A new connection per request", "",
                  "wrk -t1 -c64 -H 'Connection: close': CPU per request = per connection "
                  "(accept, read, write, close).", ""] + self.table_wrk(g) + [""]
        g = self.cases_present(["rate40k", "rate80"])
        if g:
            L += ["## Open loop, fixed rates", "",
                  f"bench/rate_load PORT /plaintext RATE {RATE_CONNS} SECS: latency from each "
                  "request's due time (no coordinated omission).", ""] + self.table_rate(g) + [""]
        g = self.cases_present(["tls_keepalive"])
        h = self.cases_present(["tls_full", "tls_resumed"])
        if g or h:
            L += ["## TLS 1.3", "",
                  "The same certificate (self-signed P-256) on every server. Keep-alive: wrk -t1 -c64 "
                  "https. Handshakes: openssl s_time -new (tickets and session cache off on every "
                  "server) and -reuse (tickets on), one connection at a time, each sending GET "
                  "/plaintext; resumed: the share of connections s_time saw resumed.", ""]
            if g:
                L += self.table_wrk(g) + [""]
            if h:
                L += self.table_handshake(h) + [""]
        if b.idle:
            L += ["## Idle keep-alive connections", "",
                  f"Once per server, after the rounds, on a fresh instance: bench/idle_conns.py, "
                  f"{a.idle_conns:,} connections, one request each, VmRSS after 1.5 s idle; stacks: "
                  "corio's coroutine stacks (resident pages). Then they close, and the server's "
                  "VmRSS 3 s later is compared with its VmRSS before the case.",
                  ""] + self.table_idle() + [""]
        if b.syscalls:
            L += ["## Syscalls", "",
                  f"strace -c -f -p PID attached during wrk -t1 -c256 -d{a.syscall_secs}s /plaintext "
                  "(one run each; strace slows the server, so the batching differs from an unobserved "
                  "run): calls over the requests wrk completed. strace's tables are in the .raw.txt file. "
                  "Unobserved: `perf stat -e raw_syscalls:sys_enter -p PID` counting the server's "
                  "syscalls in the kernel during its 1 s warm-up run (wrk -t1 -c256 /plaintext), "
                  "over the requests of that run: the server keeps its usual batching.",
                  ""] + self.table_syscalls() + [""]
        allc = ["plaintext", "json", "pipe16", "conns2000", "conns4000", "conns10000", "close",
                "rate40k", "rate80", "tls_keepalive", "tls_full", "tls_resumed"]
        p = self.table_paired(allc, "cpu_us", "CPU")
        if p:
            L += ["## Paired ratios", "",
                  "Each round's two runs back to back; median (min–max) over the rounds.", "",
                  "CPU per request (handshake, connection):", ""] + p + [""]
        p = self.table_paired([c for c in allc if not c.startswith("tls_f") and c != "tls_resumed"],
                              "p99_us", "p99")
        if p:
            L += ["p99 latency:", ""] + p + [""]
        p = self.table_paired(["plaintext", "json", "pipe16", "conns2000", "conns4000", "conns10000",
                               "close", "tls_keepalive", "tls_full", "tls_resumed"], "rps", "req/s")
        if p:
            L += ["req/s (handshakes/s):", ""] + p + [""]
        notes = list(b.notes)
        for (c, s), why in b.skipped.items():
            notes.append(f"{c} on {LABEL[s]}: not run: {why}.")
        if b.corio_resumption:
            notes.append(f"corio's TLS session resumption set with {b.corio_resumption[3]} "
                         f"({b.corio_resumption[0]}={b.corio_resumption[1]} with tickets, "
                         f"={b.corio_resumption[2]} for the full handshakes).")
        dist = sum(1 for x in b.runs if x["valid"] and not x["clean"])
        notes.append(f"{dist} of {len(b.runs)} runs were disturbed (see the .tsv: clean=0).")
        L += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
        return "\n".join(L)

    def dat(self, machine_line):
        cases = [("plaintext", "plaintext"), ("json", "json"), ("pipelined-16", "pipe16")]
        L = ["# SPDX-License-Identifier: MIT",
             "# CPU microseconds per request, one worker, 256 connections, every server in one",
             f"# run of bench/http_bench.py ({self.b.date}; server on one CPU, wrk on the other),",
             f"# on {machine_line};",
             "# medians over the clean runs (bench/chart.sh draws it).",
             "# \"?\": the server cannot do the workload (Kore drops pipelined requests) or was",
             "# not measured.",
             ("# workload      " + "".join(f"{DAT_NAME.get(s, s):<12}" for s in DAT_COLS)).rstrip()]
        for title, c in cases:
            vals = []
            for s in DAT_COLS:
                v = None if self.dropped(c, s) else self.med(c, s, "cpu_us")
                vals.append(f"{v:.2f}" if v is not None else "?")
            L.append((f"{title:<16}" + "".join(f"{v:<12}" for v in vals)).rstrip())
        return "\n".join(L) + "\n"


def machine_info(build):
    model = next((l.split(":", 1)[1].strip() for l in read_file("/proc/cpuinfo").splitlines()
                  if l.startswith("model name")), "?")
    u = os.uname()
    mem = next((l.split()[1] for l in read_file("/proc/meminfo").splitlines()
                if l.startswith("MemTotal:")), None)
    try:
        git = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        git = git if len(git) <= 90 else git[:89] + "…"
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        git, dirty = "?", ""
    btype = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", read_file(os.path.join(build, "CMakeCache.txt")), re.M)
    return [("CPU", f"{model}, {os.cpu_count()} CPUs"),
            ("memory", f"{int(mem) / 1048576:.1f} GiB" if mem else "?"),
            ("kernel", f"Linux {u.release} {u.machine}"),
            ("Debian", read_file("/etc/debian_version").strip() or "?"),
            ("tree", f"{git}{' (with uncommitted changes)' if dirty else ''}; build {build} "
                     f"({btype.group(1) if btype else '?'})"),
            ("load average at start", read_file("/proc/loadavg").split()[0] if read_file("/proc/loadavg") else "?")]


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench/http_bench.py",
                                 description="HTTP benchmark: corio against its floors and peers "
                                             "(see the header comment).")
    ap.add_argument("build", help="a Release build tree (examples/hello/hello, bench/rate_load, "
                                  "bench/floor_uv, bench/floor_epoll)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default 3; --quick: 1)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per run (default 5; --quick: 1)")
    ap.add_argument("--servers", default=",".join(ALL_SERVERS),
                    help="comma-separated, from " + ",".join(ALL_SERVERS))
    ap.add_argument("--only", default=None,
                    help="comma-separated cases (default all): " + ",".join(CASES)
                         + "; groups: conns, tls")
    ap.add_argument("--quick", action="store_true",
                    help="1 round of 1 s, 2,000 idle connections, output in a temp dir: for "
                         "checking the script")
    ap.add_argument("--out", default=None, help="output directory (default bench/results/)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (servers' files and logs)")
    a = ap.parse_args(argv)
    a.rounds = a.rounds if a.rounds is not None else (1 if a.quick else 3)
    a.duration = a.duration if a.duration is not None else (1 if a.quick else 5)
    if not 1 <= a.rounds <= 99:
        ap.error("--rounds must be 1..99")
    if not 1 <= a.duration <= 600:
        ap.error("--duration must be 1..600 seconds")
    a.idle_conns = 2000 if a.quick else 10000
    a.syscall_secs = 1 if a.quick else 2
    a.servers = [s.strip() for s in a.servers.split(",") if s.strip()]
    for s in a.servers:
        if s not in ALL_SERVERS:
            ap.error(f"unknown server '{s}' (from {','.join(ALL_SERVERS)})")
    if a.only is None:
        a.only = list(CASES)
    else:
        only = []
        for c in (x.strip() for x in a.only.split(",")):
            if c in GROUPS:
                only += GROUPS[c]
            elif c in CASES:
                only.append(c)
            elif c:
                ap.error(f"unknown case '{c}' (from {','.join(CASES)}, conns, tls)")
        a.only = only
    return a


def main(argv):
    a = parse_args(argv)
    a.build = os.path.abspath(a.build)
    for rel in ("examples/hello/hello", "bench/rate_load", "bench/floor_uv", "bench/floor_epoll"):
        if not os.access(os.path.join(a.build, rel), os.X_OK):
            sys.exit(f"http_bench: {a.build}/{rel} not found; build the tree first (Release):\n"
                     f"  cmake -S . -B {a.build} -DCMAKE_BUILD_TYPE=Release && cmake --build {a.build} -j2")
    for tool, pkg in (("wrk", "wrk"), ("taskset", "util-linux"), ("openssl", "openssl"),
                      ("strace", "strace"), ("bash", "bash")):
        if not shutil.which(tool):
            sys.exit(f"http_bench: {tool} not found (apt-get install {pkg})")
    btype = re.search(r"^CMAKE_BUILD_TYPE:\w+=(.*)$", read_file(os.path.join(a.build, "CMakeCache.txt")), re.M)
    if not btype or btype.group(1) != "Release":
        log(f"warning: {a.build} is a '{btype.group(1) if btype else '?'}' build; figures are meant for Release")
    if os.cpu_count() < 2:
        log("warning: one CPU: servers and clients share it")
    default_out = os.path.join(HERE, "results")
    if a.out is None:
        a.out = tempfile.mkdtemp(prefix="http_bench-quick.") if a.quick else default_out
    os.makedirs(a.out, exist_ok=True)
    cmdline = "bench/http_bench.py " + " ".join(argv)

    def on_signal(sig, frame):
        raise KeyboardInterrupt if sig == signal.SIGINT else SystemExit(128 + sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    t0 = time.monotonic()
    b = Bench(a)
    ok, status = False, 1
    try:
        machine = machine_info(a.build)
        b.run()
        ok = True
    except Fail as e:
        log(f"error: {e}")
    except KeyboardInterrupt:
        log("interrupted")
        status = 130
    except SystemExit as e:  # SIGTERM, SIGHUP
        log("terminated")
        status = e.code if isinstance(e.code, int) else 1
    finally:
        b.stop_all()
        b.tsvf.close()
        b.logf.close()
    elapsed = time.monotonic() - t0
    if not ok:
        if b.runs:
            keep = os.path.join(a.out, f"http-{b.date}.partial.tsv")
            shutil.copy(os.path.join(b.tmp, "runs.tsv"), keep)
            log(f"the runs so far: {keep}")
        log(f"temp dir kept (servers' logs, raw output): {b.tmp}")
        log(f"elapsed {elapsed / 60:.1f} min")
        return status
    rep = Report(b)
    md = rep.markdown(cmdline, machine, elapsed)
    base = os.path.join(a.out, f"http-{b.date}")
    with open(base + ".md", "w") as f:
        f.write(md)
    shutil.copy(base + ".md", os.path.join(a.out, "http-latest.md"))
    shutil.copy(os.path.join(b.tmp, "runs.tsv"), base + ".tsv")
    shutil.copy(os.path.join(b.tmp, "raw.txt"), base + ".raw.txt")
    dat = os.path.join(a.out, "http_cpu.dat")
    cpu_model = machine[0][1]
    with open(dat, "w") as f:
        f.write(rep.dat(f"{cpu_model}, Linux {os.uname().release}, Debian {machine[3][1]}"))
    if os.path.realpath(a.out) == os.path.realpath(default_out):
        svg = os.path.join(ROOT, "docs", "bench.svg")
    else:
        svg = os.path.join(a.out, "bench.svg")
    if any(k[0] in ("plaintext", "json", "pipe16") for k in rep.by):
        r = subprocess.run(["bash", os.path.join(HERE, "chart.sh"), dat, svg], capture_output=True,
                           text=True, timeout=60)
        log((r.stdout + r.stderr).strip() or f"chart.sh exited {r.returncode}")
    print()
    print(md)
    log(f"wrote {base}.md (and http-latest.md, .tsv, .raw.txt), {dat}")
    log(f"elapsed {elapsed / 60:.1f} min")
    if a.keep_tmp:
        log(f"temp dir kept: {b.tmp}")
    else:
        shutil.rmtree(b.tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
