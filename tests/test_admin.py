#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of the runner's admin listener (--admin, corio/app.h):

- any corio program has it: examples/echo (a raw TCP server) answers
  /healthz, /readyz and /metrics on it, in plain HTTP, bound to 127.0.0.1
  when no host is given, and /metrics counts the echo connections;
- an HTTP server's requests on its main listener are counted in the admin
  listener's /metrics (examples/hello);
- an app's own admin router (corio_app.admin_router, tests/http_test_server)
  is what the admin listener serves: its routes there, none of them on the
  main listener, and the main routes not on the admin one;
- it outlives the drain: after SIGTERM the main listener refuses new
  connections while the admin listener answers /readyz 503 "draining",
  /healthz 200 and /metrics until the held request is done; then the
  process exits 0 (one process, and a supervisor of two workers);
- a SIGHUP roll of two workers keeps it ready: every probe on a fresh
  connection while a replaced worker drains answers 200 "ready" (a retired
  worker leaves the admin socket to its replacement);
- bad values (--admin foo, 1.2.3:80, 70000, ::1:80 without brackets, the
  main port) exit 2 naming the flag; "--admin off" overrides CORIO_ADMIN; a
  flag wins over a bad CORIO_ADMIN; an admin port that another socket
  listens on exits 1 with "address already in use", with one worker and
  with two.

    test_admin.py --hello H --echo E --server S [-k NAME] [--wrap ...]

Every wait polls with a deadline (harness.py); no sleeps, no timing
thresholds.  Python standard library only.
"""
import argparse
import os
import re
import signal
import socket
import subprocess
import sys

import harness
from harness import HOST, CaseFailure, Conn, check, wait_until

ARGS = None
Server = harness.Server
ADMIN_RE = r"admin listener on 127\.0\.0\.1:(\d+)"


def exchange(port, path, method="GET"):
    """One request on a new connection; returns (status, headers, body)."""
    c = Conn(port)
    try:
        c.send(b"%s %s HTTP/1.1\r\nHost: x\r\n\r\n" % (method.encode(), path.encode()))
        status, hdrs, body, _ = c.response()
        return status, hdrs, body
    finally:
        c.close()


def metric(body, name):
    """The value of an unlabelled sample `name` in an exposition body."""
    m = re.search(r"^%s (\S+)$" % re.escape(name), body.decode(), re.M)
    check(m is not None, "no sample %s in /metrics" % name)
    return float(m.group(1))


def requests_of_route(body, route, status="2xx"):
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith("corio_http_requests_total{") and 'route="%s"' % route in line \
                and 'status="%s"' % status in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def listening_address(port):
    """The local address of the LISTEN socket(s) on port, from /proc/net/tcp."""
    found = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:
                found.append(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def admin_port(srv):
    return int(srv.wait_log(ADMIN_RE).group(1))


def refused(port):
    s = socket.socket()
    s.settimeout(harness.DEADLINE)
    try:
        s.connect((HOST, port))
        return False
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False  # the listener closed as this connect was queued: ask again
    finally:
        s.close()


def run_quiet(binary, *args, env=None):
    """Runs binary with args (no --port added) to its exit; returns
    (code, stderr)."""
    p = subprocess.run([*harness.WRAP, binary, *args], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=harness.clean_env(env), timeout=harness.DEADLINE * 3)
    return p.returncode, p.stderr.decode(errors="replace")


# ---- cases ---------------------------------------------------------------------------------

def case_echo_gets_probes_and_metrics():
    with Server(ARGS.echo, "--admin", "0") as srv:
        aport = admin_port(srv)
        check(aport != srv.port, "admin and main on one port")
        check(listening_address(aport) == ["127.0.0.1"],
              "admin listens on %r" % listening_address(aport))
        status, _, body = exchange(aport, "/healthz")
        check(status == 200 and body == b"ok\n", "healthz: %d %r" % (status, body))
        status, _, body = exchange(aport, "/readyz")
        check(status == 200 and body == b"ready\n", "readyz: %d %r" % (status, body))
        for i in range(3):  # echo connections, counted by the server under the admin's metrics
            c = socket.create_connection((HOST, srv.port), timeout=harness.DEADLINE)
            c.sendall(b"ping %d\n" % i)
            check(c.recv(64) == b"ping %d\n" % i, "echo")
            c.close()
        status, hdrs, body = exchange(aport, "/metrics")
        check(status == 200, "metrics: %d" % status)
        check(hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
              "content type %r" % hdrs.get("content-type"))
        # 3 echo + healthz + readyz + this scrape, at least (counted at accept)
        check(metric(body, "corio_connections_accepted_total") >= 6,
              "accepted: %s" % metric(body, "corio_connections_accepted_total"))
        check(requests_of_route(body, "/healthz") == 1, "healthz counted once")
        status, _, _ = exchange(aport, "/nope")
        check(status == 404, "unknown admin path: %d" % status)
        srv.stop()


def case_hello_main_requests_counted_on_admin():
    with Server(ARGS.hello, "--admin", "0") as srv:
        aport = admin_port(srv)
        for _ in range(5):
            check(exchange(srv.port, "/plaintext")[2] == b"Hello, World!", "plaintext")
        body = exchange(aport, "/metrics")[2]
        check(requests_of_route(body, "/plaintext") == 5,
              "plaintext counted %s times" % requests_of_route(body, "/plaintext"))
        status, _, _ = exchange(aport, "/plaintext")
        check(status == 404, "the main routes are not on the admin listener: %d" % status)
        srv.stop()


def case_app_admin_router_served():
    with Server(ARGS.server, "--admin", "0") as srv:
        aport = admin_port(srv)
        status, _, body = exchange(aport, "/admin/hello")
        check(status == 200 and body == b"admin\n", "admin route: %d %r" % (status, body))
        status, _, body = exchange(aport, "/readyz")
        check(status == 200 and body == b"ready\n", "readyz: %d %r" % (status, body))
        status, _, _ = exchange(aport, "/metrics")
        check(status == 404, "the app's admin router has no /metrics: %d" % status)
        status, _, _ = exchange(srv.port, "/admin/hello")
        check(status == 404, "an admin route on the main listener: %d" % status)
        status, _, body = exchange(aport, "/plaintext")
        check(status == 404, "a main route on the admin listener: %d" % status)
        status, _, body = exchange(srv.port, "/plaintext")
        check(status == 200, "main route: %d" % status)
        srv.stop()


def drain_keeps_admin(workers):
    args = ["--admin", "0"] + (["--workers", str(workers)] if workers > 1 else [])
    with Server(ARGS.hello, *args) as srv:
        aport = admin_port(srv)
        if workers > 1:
            srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=workers)
        held = Conn(srv.port)
        held.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        wait_until(lambda: metric(exchange(aport, "/metrics")[2], "corio_connections_open") >= 2,
                   harness.DEADLINE, "the held connection accepted")
        mark = srv.mark()
        os.killpg(srv.pid, signal.SIGTERM)
        srv.wait_log(r"SIGTERM: draining", start=mark, count=workers)
        wait_until(lambda: refused(srv.port), harness.DEADLINE, "the main listener closed")
        status, _, body = exchange(aport, "/readyz")
        check(status == 503 and body == b"draining\n", "readyz: %d %r" % (status, body))
        status, _, body = exchange(aport, "/healthz")
        check(status == 200 and body == b"ok\n", "healthz while draining: %d %r" % (status, body))
        status, _, body = exchange(aport, "/metrics")
        check(status == 200 and metric(body, "corio_connections_open") >= 1,
              "metrics while draining: %d" % status)
        held.send(b"1234567")
        status, _, _, _ = held.response()
        check(status == 405, "held request: %d" % status)
        held.close()
        check(srv.wait_exit() == 0, "exit code")
        check(refused(aport), "the admin listener outlived the process")


def case_drain_keeps_admin_one_process():
    drain_keeps_admin(1)


def case_drain_keeps_admin_two_workers():
    drain_keeps_admin(2)


def case_roll_stays_ready():
    with Server(ARGS.hello, "--admin", "0", "--workers", "2", "--drain-timeout", "20s") as srv:
        aport = admin_port(srv)
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        held = Conn(srv.port)
        held.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        wait_until(lambda: metric(exchange(aport, "/metrics")[2], "corio_connections_open") >= 2,
                   harness.DEADLINE, "the held connection accepted")
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"SIGHUP: every worker restarted", start=mark)
        # the retired worker that holds the request drains until it is done
        srv.wait_log(r"(replaced by a new worker|SIGTERM): draining 1 connection", start=mark)
        answers = {}
        for _ in range(200):
            status, _, body = exchange(aport, "/readyz")
            answers[(status, body)] = answers.get((status, body), 0) + 1
        check(answers == {(200, b"ready\n"): 200}, "readyz during the roll: %r" % answers)
        held.send(b"1234567")
        status, _, _, _ = held.response()
        check(status == 405, "held request: %d" % status)
        held.close()
        srv.stop()


def case_bad_values_refused():
    for value, why in (("foo", "not a port"), ("1.2.3:80", "not an address"),
                       ("70000", "past 65535"), ("::1:80", "IPv6 without brackets"),
                       ("[127.0.0.1]:80", "IPv4 in brackets"), (":80", "empty host"),
                       ("127.0.0.1:", "no port"), ("", "empty")):
        code, err = run_quiet(ARGS.hello, "--admin", value)
        check(code == 2 and "--admin: expected [HOST:]PORT" in err,
              "--admin %r (%s): %d %r" % (value, why, code, err))
    code, err = run_quiet(ARGS.hello, "--port", "18099", "--admin", "18099")
    check(code == 2 and "--admin: port 18099 is the server's" in err,
          "same port: %d %r" % (code, err))
    code, err = run_quiet(ARGS.hello, "--admin", "8080")  # hello's default port
    check(code == 2 and "--admin: port 8080 is the server's" in err,
          "the default port: %d %r" % (code, err))


def run_help():
    p = subprocess.run([ARGS.hello, "--help"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=harness.DEADLINE)
    return p.stdout.decode()


def case_env_and_off():
    help_text = run_help()
    check(re.search(r"--admin VALUE .*\[CORIO_ADMIN\] \(default: off\)", help_text),
          "--help: %r" % help_text)
    with Server(ARGS.hello, env={"CORIO_ADMIN": "0"}) as srv:
        aport = admin_port(srv)
        check(exchange(aport, "/healthz")[0] == 200, "CORIO_ADMIN=0 serves")
        srv.stop()
    with Server(ARGS.hello, "--admin", "off", env={"CORIO_ADMIN": "0"}) as srv:
        check(exchange(srv.port, "/healthz")[0] == 200, "serving")
        check(srv.count_log(r"admin listener") == 0, "--admin off still served one")
        srv.stop()
    with Server(ARGS.hello, "--admin", "0", env={"CORIO_ADMIN": "bogus"}) as srv:
        check(exchange(admin_port(srv), "/healthz")[0] == 200, "the flag wins")
        srv.stop()
    code, err = run_quiet(ARGS.hello, "--port", "0", env={"CORIO_ADMIN": "bogus"})
    check(code == 2 and "CORIO_ADMIN: expected" in err, "bad CORIO_ADMIN: %d %r" % (code, err))


def case_ipv6_admin():
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        print("SKIP case_ipv6_admin: no ::1 here", flush=True)
        return
    with Server(ARGS.hello, "--admin", "[::1]:0") as srv:
        port = int(srv.wait_log(r"admin listener on \[::1\]:(\d+)").group(1))
        c = socket.create_connection(("::1", port), timeout=harness.DEADLINE)
        c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        c.close()
        check(data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok\n"), "v6: %r" % data)
        srv.stop()


def case_admin_port_in_use():
    holder = socket.socket()
    holder.bind((HOST, 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    try:
        for extra in ([], ["--workers", "2"]):
            code, err = run_quiet(ARGS.hello, "--port", "0", "--admin", str(taken), *extra)
            check(code == 1 and re.search(r"cannot listen on 127\.0\.0\.1:%d \(admin\): address "
                                          r"already in use" % taken, err),
                  "%r: %d %r" % (extra, code, err))
    finally:
        holder.close()


def case_sigterm_during_roll_keeps_answering_503():
    """SIGTERM while workers retired by a SIGHUP roll still drain: the new
    workers (nothing to drain) exit at once, and the retired ones, which
    hold the last admin sockets, answer /readyz 503 on fresh connections
    (not refused) until their requests are done; keep-alive admin
    connections never answer 200 after the SIGTERM."""
    with Server(ARGS.hello, "--admin", "0", "--workers", "2", "--drain-timeout", "20s") as srv:
        aport = admin_port(srv)
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        held = []
        for _ in range(6):
            c = Conn(srv.port)
            c.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
            held.append(c)
        wait_until(lambda: metric(exchange(aport, "/metrics")[2], "corio_connections_open") >= 7,
                   harness.DEADLINE, "the held connections accepted")
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"SIGHUP: every worker restarted", start=mark)
        srv.wait_log(r"replaced by a new worker: draining [1-9]", start=mark)
        kept = []
        for _ in range(6):
            c = Conn(aport)
            c.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _, body, _ = c.response()
            check(status == 200, "readyz during the roll: %d %r" % (status, body))
            kept.append(c)
        mark = srv.mark()
        os.kill(srv.pid, signal.SIGTERM)
        srv.wait_log(r"SIGTERM: stopping", start=mark)
        wait_until(lambda: refused(srv.port), harness.DEADLINE, "the main listener closed")
        for _ in range(20):
            # A connection queued on the admin socket of a slot whose workers
            # have all just exited is reset by the kernel (a retry lands on a
            # socket that lives); it must never be refused or answered 200.
            for attempt in range(5):
                try:
                    status, _, body = exchange(aport, "/readyz")
                    break
                except ConnectionResetError:
                    continue
            else:
                raise CaseFailure("five resets in a row: no admin socket answers")
            check(status == 503 and body == b"draining\n", "fresh readyz: %d %r" % (status, body))
        for c in kept:
            try:
                c.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                status, _, body, _ = c.response()
            except (OSError, CaseFailure, EOFError):
                continue  # its worker had nothing to drain and is gone
            check(status == 503, "kept-alive readyz after SIGTERM: %d %r" % (status, body))
        for c in held:
            c.send(b"1234567")
            check(c.response()[0] == 405, "held request")
            c.close()
        check(srv.wait_exit() == 0, "exit code")


def case_admin_port_not_shared_by_reuse_port():
    """--reuse-port shares the main port with a running instance, never the
    admin port: a replacement given the running one's admin port exits 1
    saying each instance needs its own; given another, it serves beside."""
    with Server(ARGS.hello, "--admin", "0") as first:
        aport = admin_port(first)
        code, err = run_quiet(ARGS.hello, "--port", str(first.port), "--reuse-port",
                              "--admin", str(aport))
        check(code == 1 and "needs an admin port of its own" in err, "%d %r" % (code, err))
        code, err = run_quiet(ARGS.hello, "--port", "0", "--reuse-port", "--admin",
                              str(first.port))
        check(code == 1 and "needs an admin port of its own" in err,
              "--admin on another server's main port: %d %r" % (code, err))
        with Server(ARGS.hello, "--port", str(first.port), "--reuse-port", "--admin", "0") as second:
            check(admin_port(second) != aport, "two admin ports")
            second.stop()
        first.stop()


def case_idle_admin_connections_do_not_lock_probes_out():
    with Server(ARGS.hello, "--admin", "0") as srv:
        aport = admin_port(srv)
        idle = [socket.create_connection((HOST, aport), timeout=harness.DEADLINE)
                for _ in range(200)]
        try:
            status, _, body = exchange(aport, "/healthz")
            check(status == 200 and body == b"ok\n", "healthz behind 200 idle: %d" % status)
        finally:
            for c in idle:
                c.close()
        srv.stop()


def case_socket_activation_port_is_the_servers():
    """Under socket activation the server's port is the inherited
    socket's: --admin on it is refused (exit 2), on hello's default port
    (unused here) it serves."""
    ls = socket.socket()
    try:
        ls.bind((HOST, 0))
        ls.listen(64)
        port = ls.getsockname()[1]
        with socket.socket() as probe:  # hello's default port, unused by this server
            try:
                probe.bind((HOST, 8080))
                cases = ((str(port), 2), ("8080", None))
            except OSError:
                print("SKIP part of case_socket_activation_port_is_the_servers: 8080 is taken",
                      flush=True)
                cases = ((str(port), 2),)
        for admin, want in cases:
            proc = harness.start_activated(ARGS.hello, ls, "--admin", admin)
            try:
                if want == 2:
                    _, err = proc.communicate(timeout=harness.DEADLINE)
                    check(proc.returncode == 2 and "port %d is the server's" % port in
                          err.decode(), "%d %r" % (proc.returncode, err))
                    continue
                lines = b""
                while b"admin listener on" not in lines:
                    line = proc.stderr.readline()
                    check(line, "exited: %r" % lines)
                    lines += line
                check(exchange(8080, "/healthz")[0] == 200, "admin on 8080")
                check(exchange(port, "/plaintext")[0] == 200, "main on the inherited socket")
                proc.send_signal(signal.SIGTERM)
                check(proc.wait(timeout=harness.DEADLINE) == 0, "exit code")
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                proc.stderr.close()
    finally:
        ls.close()


CASES = [case_echo_gets_probes_and_metrics, case_hello_main_requests_counted_on_admin,
         case_app_admin_router_served, case_drain_keeps_admin_one_process,
         case_drain_keeps_admin_two_workers, case_roll_stays_ready, case_bad_values_refused,
         case_env_and_off, case_ipv6_admin, case_admin_port_in_use,
         case_sigterm_during_roll_keeps_answering_503, case_admin_port_not_shared_by_reuse_port,
         case_idle_admin_connections_do_not_lock_probes_out,
         case_socket_activation_port_is_the_servers]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ap.add_argument("--echo", required=True)
    ap.add_argument("--server", required=True)
    ARGS = harness.parse_args(ap)
    return harness.run_cases(CASES, ARGS.k)


if __name__ == "__main__":
    sys.exit(main())
