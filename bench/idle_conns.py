#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Memory per idle keep-alive connection of an HTTP server.

    bench/idle_conns.py --pid PID --port PORT [--conns 5000] [--path /plaintext]

Opens --conns keep-alive connections to 127.0.0.1:PORT, sends one request on
each and reads its response, then, with all of them idle and open, reads the
server's VmRSS (/proc/PID/status) and compares it with the figure before.
Prints one line of key=value pairs:

    conns=5000 open=5000 rss_before_kib=... rss_after_kib=... rss_kib_per_conn=...
    stack_kib_per_conn=... other_kib_per_conn=... elapsed_s=...

stack_* counts the resident pages of corio's coroutine stacks (an rw mapping
right above a PROT_NONE guard of --guard-kib, read from /proc/PID/smaps);
other_* is the rest of the VmRSS delta (heap: buffers, connection state).
For a server without such stacks stack_* is 0.

Servers close idle connections after a keep-alive timeout (corio: 5 s), so
the measurement is taken as soon as the last connection is idle, and the
script fails if the connections took longer than --window seconds to open or
if any was closed before the measurement.  Standard library only.
"""
import argparse
import os
import resource
import select
import socket
import sys
import time


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def stack_rss_kib(pid, guard_kib):
    """Resident KiB of rw anonymous mappings that sit right above a PROT_NONE
    mapping of guard_kib (corio's stacks: guard below, stack above)."""
    total = 0
    prev = None  # (end address, perms, size_kib) of the previous mapping
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and ":" not in parts[0]:
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                perms = parts[1]
                anon = len(parts) < 6
                is_stack = (
                    prev is not None
                    and prev[0] == lo
                    and prev[1].startswith("---")
                    and prev[2] == guard_kib
                    and perms.startswith("rw")
                    and anon
                )
                cur = is_stack
                prev = (hi, perms, (hi - lo) // 1024)
            elif parts[0] == "Rss:" and cur:
                total += int(parts[1])
    return total


def request_bytes(path, port):
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").encode()


def read_response(sock):
    """Reads one response with Content-Length; returns False on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        body += chunk
    return head.startswith(b"HTTP/1.1 200")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=5000)
    ap.add_argument("--path", default="/plaintext")
    ap.add_argument("--guard-kib", type=int, default=256)
    ap.add_argument("--settle", type=float, default=0.5,
                    help="seconds to wait after the last response before measuring (corio "
                         "parks a keep-alive connection after 100 ms idle)")
    ap.add_argument("--window", type=float, default=4.0,
                    help="seconds the whole opening may take (below the server's keep-alive timeout)")
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = a.conns + 64
    if soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            sys.exit(f"idle_conns: RLIMIT_NOFILE hard limit {hard} < {want}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    req = request_bytes(a.path, a.port)
    # Warm-up: one connection, so lazily built state is not counted.
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        s.sendall(req)
        read_response(s)
    time.sleep(0.2)

    rss0 = vm_rss_kib(a.pid)
    stk0 = stack_rss_kib(a.pid, a.guard_kib)
    t0 = time.monotonic()
    socks = []
    try:
        for i in range(a.conns):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=5)
            socks.append(s)
            s.sendall(req)
            if not read_response(s):
                sys.exit(f"idle_conns: connection {i}: no 200 response")
            if time.monotonic() - t0 > a.window:
                sys.exit(f"idle_conns: opening took over {a.window} s after {i + 1} "
                         "connections (the keep-alive timeout would skew the figure)")
        t_open = time.monotonic() - t0
        time.sleep(a.settle)  # the server parks connections idle for 100 ms
        rss1 = vm_rss_kib(a.pid)
        stk1 = stack_rss_kib(a.pid, a.guard_kib)
        elapsed = time.monotonic() - t0
        # Every connection must still be open: a closed one is readable (EOF).
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        closed = len(poller.poll(0))
    finally:
        for s in socks:
            s.close()
    n = a.conns
    d = rss1 - rss0
    ds = stk1 - stk0
    print(f"conns={n} open={n - closed} rss_before_kib={rss0} rss_after_kib={rss1} "
          f"rss_kib_per_conn={d / n:.2f} stack_kib_per_conn={ds / n:.2f} "
          f"other_kib_per_conn={(d - ds) / n:.2f} open_s={t_open:.2f} elapsed_s={elapsed:.2f}")
    if closed:
        sys.exit(f"idle_conns: {closed} connection(s) were closed before the measurement")


if __name__ == "__main__":
    main()
