#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Does a cold file stall the other connections of a worker?  (issue 15, item 10)

    bench/cold_file.py --static build/examples/static/static [--size-mib 512] [--rounds 3]
                       [--dir DIR] [--gap-ms 1] [--max-seconds 60] [--tls]

Serves a temporary directory (or DIR, e.g. a mount on a throttled loop
device) with examples/static, one worker, on 127.0.0.1.  Each round runs
three phases, interleaved: "idle" (no download), "warm" (the big file wholly
in the page cache) and "cold" (evicted: fsync, posix_fadvise DONTNEED,
checked with mincore).  During a phase a second process downloads the big
file as fast as it can over one connection, while this process sends
`GET /tiny.txt` on another keep-alive connection, one request every
--gap-ms, and records each answer's latency (send to last byte).  The idle
phase probes for as long as the previous download took (at least 1 s).

Printed: one row per phase and round (download time and rate; probe count,
median, p99 and max latency in ms), then the pooled figures per phase.  No
thresholds: it measures, it does not judge.  Bounded: each download stops
after --max-seconds, each phase after --max-probes probes.  Python standard
library only; Linux (mincore, posix_fadvise).

A slower disk than the machine's (as root; device-mapper's dm-delay is
often missing in containers, a loop device and the blkio throttle are not):

    truncate -s 1200M /tmp/disk.img && mkfs.ext4 -q -F /tmp/disk.img
    mkdir -p /tmp/slow && mount $(losetup -f --show --direct-io=on /tmp/disk.img) /tmp/slow
    mkdir /sys/fs/cgroup/blkio/slow      # cgroup v1; v2: io.max "MAJ:MIN rbps=..."
    echo "$(cat /sys/block/loopN/dev) 52428800" > /sys/fs/cgroup/blkio/slow/blkio.throttle.read_bps_device
    bench/cold_file.py --static ... --dir /tmp/slow --size-mib 256 --server-cgroup /sys/fs/cgroup/blkio/slow
"""
import argparse
import json
import os
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
LISTEN_RE = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


# ---- the page cache -----------------------------------------------------------------------

# tests/pagecache.py, shared with tests/test_http_file_cold.py.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from pagecache import evict, resident_bytes  # noqa: E402


def warm(path):
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass


# ---- the downloader (a separate process) --------------------------------------------------

def download(port, target, max_seconds, tls):
    """Reads the whole response to GET target; prints {"bytes", "seconds"}."""
    s = socket.create_connection((HOST, port))
    s.settimeout(max_seconds + 10)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = ctx.wrap_socket(s)
    t0 = time.perf_counter()
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target.encode())
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    head = b""
    while b"\r\n\r\n" not in head:
        n = s.recv_into(view)
        if n == 0:
            raise SystemExit("connection closed in the head")
        head += bytes(view[:n])
    head, _, rest = head.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    got = len(rest)
    deadline = t0 + max_seconds
    while got < length and time.perf_counter() < deadline:
        n = s.recv_into(view)
        if n == 0:
            break
        got += n
    print(json.dumps({"bytes": got, "length": length,
                      "seconds": time.perf_counter() - t0}), flush=True)


# ---- the server ---------------------------------------------------------------------------

class Server:
    def __init__(self, binary, root, extra, cgroup=None):
        self.proc = subprocess.Popen([binary, "--root", root, "--port", "0", "--workers", "1",
                                      *extra], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        if cgroup:  # before its first request: only the server's reads are throttled
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(self.proc.pid))
        deadline = time.monotonic() + 10
        self.port = None
        while self.port is None and time.monotonic() < deadline:
            line = self.proc.stderr.readline().decode(errors="replace")
            if not line:
                break
            m = LISTEN_RE.search(line)
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.stop()
            raise SystemExit("the server did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Prober:
    """One keep-alive connection sending GET path and timing each answer."""

    def __init__(self, port, path, tls):
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(30)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        self.s = s
        self.req = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode()
        self.buf = b""

    def one(self):
        t0 = time.perf_counter()
        self.s.sendall(self.req)
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        while len(self.buf) < n:
            self.buf += self._recv()
        self.buf = self.buf[n:]
        return time.perf_counter() - t0

    def _recv(self):
        d = self.s.recv(65536)
        if not d:
            raise SystemExit("probe connection closed")
        return d

    def close(self):
        self.s.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else float("nan")


def phase(a, srv, mode, big, idle_seconds):
    """One phase; returns a result row (dict)."""
    if mode == "cold":
        evict(big)
        res = resident_bytes(big)
    elif mode == "warm":
        warm(big)
        res = resident_bytes(big)
    else:
        res = None
    prober = Prober(srv.port, a.probe_path, a.tls)
    prober.one()  # the connection is up and the tiny file's dentry cached
    dl = None
    if mode != "idle":
        dl = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--download",
                               str(srv.port), "/big.bin", "--max-seconds", str(a.max_seconds)]
                              + (["--tls"] if a.tls else []), stdout=subprocess.PIPE)
    lat = []
    t0 = time.perf_counter()
    gap = a.gap_ms / 1000.0
    while len(lat) < a.max_probes:
        if dl is not None and dl.poll() is not None:
            break
        if dl is None and time.perf_counter() - t0 >= idle_seconds:
            break
        lat.append(prober.one())
        if gap:
            time.sleep(gap)
    prober.close()
    row = {"mode": mode, "resident_mib": None if res is None else res / 2**20,
           "lat": lat, "dl_s": None, "dl_mib_s": None}
    if dl is not None:
        out, _ = dl.communicate(timeout=a.max_seconds + 30)
        r = json.loads(out)
        row["dl_s"] = r["seconds"]
        row["dl_mib_s"] = r["bytes"] / 2**20 / r["seconds"]
        row["complete"] = r["bytes"] == r["length"]
    return row


def fmt_row(label, row_lat, dl_s=None, rate=None, res=None):
    ms = [x * 1000 for x in row_lat]
    cols = [label,
            "%6.1f" % res if res is not None else "     -",
            "%6.2f" % dl_s if dl_s is not None else "     -",
            "%7.0f" % rate if rate is not None else "      -",
            "%6d" % len(ms),
            "%7.3f" % statistics.median(ms) if ms else "      -",
            "%7.3f" % pct(ms, 99) if ms else "      -",
            "%8.3f" % max(ms) if ms else "       -"]
    return "  ".join(cols)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--static", help="examples/static binary")
    ap.add_argument("--dir", help="directory to serve (created files: big.bin, tiny.txt)")
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--gap-ms", type=float, default=1.0, help="pause between two probes")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="bound on one download")
    ap.add_argument("--max-probes", type=int, default=100000, help="bound on one phase")
    ap.add_argument("--probe-path", default="/tiny.txt")
    ap.add_argument("--modes", default="idle,warm,cold")
    ap.add_argument("--server-cgroup", metavar="DIR",
                    help="a cgroup (v1 blkio or v2) directory the server is moved into")
    ap.add_argument("--tls", action="store_true", help="serve TLS (self-signed, openssl)")
    ap.add_argument("--download", nargs=2, metavar=("PORT", "TARGET"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.download:
        download(int(a.download[0]), a.download[1], a.max_seconds, a.tls)
        return
    if not a.static:
        ap.error("--static is required")

    tmp = tempfile.mkdtemp(prefix="corio-cold-")
    root = a.dir or tmp
    big = os.path.join(root, "big.bin")
    extra = []
    srv = None
    try:
        if not os.path.exists(big) or os.path.getsize(big) != a.size_mib * 2**20:
            with open(big, "wb") as f:
                for _ in range(a.size_mib):
                    f.write(os.urandom(2**20))
        with open(os.path.join(root, "tiny.txt"), "wb") as f:
            f.write(b"tiny\n")
        if a.tls:
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1"],
                           check=True, capture_output=True)
            extra = ["--tls-cert", cert, "--tls-key", key]
        srv = Server(a.static, root, extra, a.server_cgroup)
        print("file %s: %d MiB; probe GET %s every %.1f ms; %s; server pid %d" %
              (big, a.size_mib, a.probe_path, a.gap_ms, "TLS" if a.tls else "plain TCP",
               srv.proc.pid))
        print("phase  rnd  res_MiB   dl_s  dl_MiB/s  probes  med_ms   p99_ms    max_ms")
        rows = []
        last_dl = 1.0
        for rnd in range(1, a.rounds + 1):
            for mode in a.modes.split(","):
                r = phase(a, srv, mode, big, max(1.0, last_dl))
                if r["dl_s"]:
                    last_dl = r["dl_s"]
                rows.append(r)
                label = "%-5s  %3d" % (mode, rnd)
                if r.get("complete") is False:
                    label += " (cut at --max-seconds)"
                print(fmt_row(label, r["lat"], r["dl_s"], r["dl_mib_s"], r["resident_mib"]),
                      flush=True)
        print("pooled over %d rounds:" % a.rounds)
        for mode in a.modes.split(","):
            lat = [x for r in rows if r["mode"] == mode for x in r["lat"]]
            dls = [r["dl_mib_s"] for r in rows if r["mode"] == mode and r["dl_mib_s"]]
            print(fmt_row("%-5s  all" % mode, lat, None,
                          statistics.median(dls) if dls else None))
    finally:
        if srv:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if a.dir:
            for name in ("big.bin", "tiny.txt"):
                try:
                    os.unlink(os.path.join(a.dir, name))
                except OSError:
                    pass


if __name__ == "__main__":
    main()
