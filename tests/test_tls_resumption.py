#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TLS session resumption through the runner (--tls-resumption,
CORIO_TLS_RESUMPTION), against examples/hello with a self-signed
certificate, from Python's ssl module: a client makes one full handshake,
reads a response (TLS 1.3 tickets arrive after the handshake), takes the
session and offers it on later connections (session_reused).

- tickets, the default, with --workers 2: every one of 20 connections held
  open at once resumes, and the 20 are spread over both workers (their
  accepted sockets counted in /proc): the workers share one ticket key.
  With a key per worker (before the runner made one for all), about half of
  them would land on the worker that did not make the session and make a
  full handshake.  TLS 1.3 and TLS 1.2, by flag and by default;
- cache with --workers 1: connections resume (no ticket: the session id);
- off, by flag or by CORIO_TLS_RESUMPTION=off: no ticket, never a resumed
  connection; a flag wins over the variable;
- a bad value, by flag or by variable: exit 2, one line naming it.

Usage: test_tls_resumption.py --hello build/examples/hello/hello"""
import argparse
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile

import harness
from harness import HOST, Server, check, clean_env

ARGS = None
CERT = None  # (certificate, key), made once by main()
SPREAD = 20  # resumed connections of the two-worker cases


def client_context(tls12=False):
    """A client trusting the test certificate (verified, with its IP name);
    TLS 1.2 at most when asked."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CERT[0])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def open_conn(port, ctx, session=None):
    """A TLS connection to port offering session (None: none) that has sent
    GET /plaintext and read its 200 response, keep-alive: its session is
    then complete (TLS 1.3 tickets come after the handshake).  The caller
    closes it."""
    raw = socket.create_connection((HOST, port), timeout=harness.DEADLINE)
    # The client's Finished and its request go out at once (TLS 1.2's
    # abbreviated handshake otherwise waits on a delayed ACK).
    raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s = ctx.wrap_socket(raw, server_hostname=HOST, session=session)
    except BaseException:
        raw.close()
        raise
    try:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = s.recv(4096)
            check(d, "connection closed before the response")
            buf += d
        head, _, body = buf.partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200 "), "response %r" % head[:60])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        while len(body) < length:
            d = s.recv(4096)
            check(d, "connection closed in the body")
            body += d
        check(body == b"Hello, World!", "body %r" % body[:60])
        return s
    except BaseException:
        s.close()
        raise


def first_session(port, ctx):
    """One full handshake with port: its session."""
    s = open_conn(port, ctx)
    try:
        check(not s.session_reused, "the first connection resumed")
        return s.session
    finally:
        s.close()


def workers_of(srv):
    """The pids of srv's worker processes (its children)."""
    kids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
        if int(fields[1]) == srv.pid:  # ppid
            kids.append(int(name))
    return sorted(kids)


def two_workers(srv):
    w = workers_of(srv)
    return w if len(w) == 2 else None


def accepted_per_worker(pids, port):
    """For each pid, the established TCP connections to 127.0.0.1:port it
    holds (accepted sockets: /proc/<pid>/fd against /proc/net/tcp)."""
    established = set()
    with open("/proc/net/tcp", encoding="ascii") as f:
        for row in f.readlines()[1:]:
            col = row.split()
            local, state, inode = col[1], col[3], col[9]
            if state == "01" and local == "0100007F:%04X" % port:
                established.add(inode)
    counts = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in established:
                    n += 1
        except OSError:
            pass
        counts[pid] = n
    return counts


def resume_spread(flags, env=None, tls12=False):
    """hello --workers 2 with flags (and env): a first session, then SPREAD
    connections offering it, all held open: each must resume, and each
    worker must hold some of them."""
    ctx = client_context(tls12)
    want = "TLSv1.2" if tls12 else "TLSv1.3"
    with Server(ARGS.hello, "--workers", "2", "--tls-cert", CERT[0], "--tls-key", CERT[1],
                *flags, env=env) as srv:
        workers = harness.wait_until(lambda: two_workers(srv), harness.DEADLINE, "two workers")
        sess = first_session(srv.port, ctx)
        check(sess.has_ticket, "no session ticket on the first connection")
        conns = []
        try:
            for _ in range(SPREAD):
                conns.append(open_conn(srv.port, ctx, sess))
            versions = {c.version() for c in conns}
            check(versions == {want}, "versions %s, expected %s" % (versions, want))
            reused = sum(1 for c in conns if c.session_reused)
            counts = accepted_per_worker(workers, srv.port)
            check(sum(counts.values()) == SPREAD,
                  "the workers hold %s of the %d connections" % (counts, SPREAD))
            check(reused == SPREAD, "%d of %d connections resumed (per worker: %s)"
                  % (reused, SPREAD, counts))
            check(all(counts.values()),
                  "one worker took every connection: %s; the spread is not shown" % counts)
            print("    %d/%d resumed; connections per worker: %s"
                  % (reused, SPREAD, counts), flush=True)
        finally:
            for c in conns:
                c.close()
        srv.stop()


def never_resumes(srv, ctx, n=5):
    """Connections to srv never resume: no ticket, and the first session
    offered again n times makes a full handshake each time."""
    sess = first_session(srv.port, ctx)
    check(not sess.has_ticket, "a session ticket was sent")
    for i in range(n):
        s = open_conn(srv.port, ctx, sess)
        try:
            check(not s.session_reused, "connection %d resumed" % (i + 1))
        finally:
            s.close()


def always_resumes(srv, ctx, n=5):
    sess = first_session(srv.port, ctx)
    for i in range(n):
        s = open_conn(srv.port, ctx, sess)
        try:
            check(s.session_reused, "connection %d did not resume" % (i + 1))
        finally:
            s.close()


def tls_server(*args, env=None):
    return Server(ARGS.hello, "--tls-cert", CERT[0], "--tls-key", CERT[1], *args, env=env)


# ---- cases ---------------------------------------------------------------------------------

def case_tickets_default_two_workers_resume_on_either():
    """No flag: tickets, one key for both workers (TLS 1.3)."""
    resume_spread([])


def case_tickets_flag_two_workers_resume_on_either():
    resume_spread(["--tls-resumption", "tickets"])


def case_tickets_default_tls12_two_workers_resume_on_either():
    """The same with TLS 1.2 (its tickets come in the handshake)."""
    resume_spread([], tls12=True)


def case_tickets_env_two_workers_resume_on_either():
    resume_spread([], env={"CORIO_TLS_RESUMPTION": "tickets"})


def case_cache_one_worker_resumes():
    for tls12 in (False, True):
        with tls_server("--tls-resumption", "cache") as srv:
            always_resumes(srv, client_context(tls12))
            srv.stop()


def case_off_never_resumes():
    for tls12 in (False, True):
        with tls_server("--tls-resumption", "off") as srv:
            never_resumes(srv, client_context(tls12))
            srv.stop()


def case_off_by_env_never_resumes():
    with tls_server(env={"CORIO_TLS_RESUMPTION": "off"}) as srv:
        never_resumes(srv, client_context())
        srv.stop()
    with tls_server("--workers", "2", env={"CORIO_TLS_RESUMPTION": "off"}) as srv:
        never_resumes(srv, client_context(), n=8)
        srv.stop()


def case_flag_wins_over_env():
    with tls_server("--tls-resumption", "tickets", env={"CORIO_TLS_RESUMPTION": "off"}) as srv:
        always_resumes(srv, client_context())
        srv.stop()


def case_bad_value_exits_2_naming_the_flag():
    tls = ["--tls-cert", CERT[0], "--tls-key", CERT[1]]
    bad = [
        (["--tls-resumption", "sometimes"], None, "--tls-resumption"),
        (["--tls-resumption=Tickets"], None, "--tls-resumption"),
        (["--tls-resumption", ""], None, "--tls-resumption"),
        (["--tls-resumption"], None, "--tls-resumption"),
        ([], {"CORIO_TLS_RESUMPTION": "none"}, "CORIO_TLS_RESUMPTION"),
    ]
    for args, env, name in bad:
        r = subprocess.run([ARGS.hello, "--port", "0", *tls, *args], capture_output=True,
                           env=clean_env(env), timeout=harness.DEADLINE)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2,
              "%s %s: exit %d, expected 2 (stderr %r)" % (args, env, r.returncode, err))
        lines = err.splitlines()
        check(len(lines) == 1, "%s %s: %d stderr lines: %r" % (args, env, len(lines), err))
        check(name in lines[0], "%s %s: %r does not name %s" % (args, env, lines[0], name))
    h = subprocess.run([ARGS.hello, "--help"], capture_output=True, timeout=harness.DEADLINE)
    check(h.returncode == 0 and b"--tls-resumption" in h.stdout
          and b"CORIO_TLS_RESUMPTION" in h.stdout, "--help does not list --tls-resumption")


CASES = [case_tickets_default_two_workers_resume_on_either,
         case_tickets_flag_two_workers_resume_on_either,
         case_tickets_default_tls12_two_workers_resume_on_either,
         case_tickets_env_two_workers_resume_on_either,
         case_cache_one_worker_resumes, case_off_never_resumes, case_off_by_env_never_resumes,
         case_flag_wins_over_env, case_bad_value_exits_2_naming_the_flag]


def main():
    global ARGS, CERT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    d = tempfile.mkdtemp(prefix="corio-tls-resumption-")
    try:
        CERT = harness.make_cert(d, "corio-resumption")
        return harness.run_cases(CASES, ARGS.k)
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
