#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of the health probes and Prometheus metrics
(corio/metrics.h) on examples/hello, which mounts /healthz, /readyz and
/metrics:

- /healthz and /readyz answer 200 from a running server; /readyz answers
  503 during a SIGTERM drain (asked on a connection opened before it, while
  a request held open keeps the drain going);
- /metrics parses strictly as the text exposition format 0.0.4 (a small
  parser below: every line a comment or a sample, HELP and TYPE before a
  family's samples, histogram buckets cumulative up to +Inf == _count);
- counters equal known traffic exactly (requests by method, route and
  status class, request and response body bytes, a refused head), and the
  open connections gauge counts the connections held open;
- with --workers 2, requests on fresh connections (spread by SO_REUSEPORT)
  are all counted whichever worker answers the scrape, and a worker killed
  and replaced keeps its counts.

    test_metrics.py --hello build/examples/hello/hello [-k NAME] [--wrap ...]

Every wait polls with a deadline (harness.py); no sleeps, no timing
thresholds.  Python standard library only.
"""
import argparse
import os
import re
import signal
import subprocess
import sys

import harness
from harness import CaseFailure, Conn, check, wait_until

ARGS = None
Server = harness.Server

# ---- a strict parser of the exposition format ----------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"((?:[^"\\\n]|\\["\\n])*)"'
SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % NAME)
LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)=%s\s*(,|$)' % LABEL_VALUE)
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def unescape(v):
    return re.sub(r'\\(["\\n])', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_labels(text, line):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        if not m or m.end() == pos:
            raise CaseFailure("bad labels in %r" % line)
        if m.group(1) in labels:
            raise CaseFailure("label %s twice in %r" % (m.group(1), line))
        labels[m.group(1)] = unescape(m.group(2))
        pos = m.end()
    return labels


def parse_value(v, line):
    if v in ("+Inf", "-Inf", "NaN"):
        return float(v.replace("Inf", "inf").replace("NaN", "nan"))
    try:
        return float(v) if re.match(r"^-?[0-9]+(\.[0-9]+)?(e[+-]?[0-9]+)?$", v) else None
    except ValueError:
        return None


def parse_exposition(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, value)]}};
    raises CaseFailure for anything out of the format."""
    check(text.endswith("\n"), "the exposition does not end in a newline")
    families, current = {}, None
    for line in text[:-1].split("\n"):
        if line.startswith("#"):
            m = re.match(r"^# (HELP|TYPE) (%s) (.*)$" % NAME, line)
            check(m, "bad comment line %r" % line)
            kind, name, rest = m.groups()
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            check(not fam["samples"], "%s after samples of %s" % (kind, name))
            if kind == "TYPE":
                check(rest in TYPES and fam["type"] is None, "bad TYPE line %r" % line)
                fam["type"] = rest
            else:
                check(fam["help"] is None, "two HELP lines for %s" % name)
                check(not re.search(r"\\[^\\n]", rest), "bad escape in HELP %r" % line)
                fam["help"] = rest
            current = name
            continue
        m = SAMPLE_RE.match(line)
        check(m, "bad sample line %r" % line)
        name, labels, value = m.group(1), parse_labels(m.group(2) or "", line), m.group(3)
        v = parse_value(value, line)
        check(v is not None, "bad value in %r" % line)
        fam_name = name
        if current and families[current]["type"] == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                if name == current + suffix:
                    fam_name = current
        check(fam_name == current, "sample %s outside its family (%s)" % (name, current))
        fam = families[fam_name]
        check(fam["type"] and fam["help"] is not None, "%s: sample before HELP/TYPE" % name)
        if fam["type"] == "counter":
            check(name.endswith("_total") and v >= 0, "bad counter %r" % line)
        fam["samples"].append((name, labels, v))
    for name, fam in families.items():
        if fam["type"] == "histogram":
            check_histogram(name, fam["samples"])
    return families


def check_histogram(name, samples):
    buckets = [(s[1]["le"], s[2]) for s in samples if s[0] == name + "_bucket"]
    count = [s[2] for s in samples if s[0] == name + "_count"]
    sums = [s[2] for s in samples if s[0] == name + "_sum"]
    check(buckets and len(count) == 1 and len(sums) == 1, "%s: incomplete histogram" % name)
    check(buckets[-1][0] == "+Inf", "%s: last bucket is not +Inf" % name)
    bounds = [float(le.replace("+Inf", "inf")) for le, _ in buckets]
    check(bounds == sorted(bounds) and len(set(bounds)) == len(bounds), "%s: le order" % name)
    values = [v for _, v in buckets]
    check(values == sorted(values), "%s: buckets not cumulative: %s" % (name, values))
    check(values[-1] == count[0], "%s: +Inf %s != _count %s" % (name, values[-1], count[0]))


def value(fams, family, **labels):
    """The sample named `family` (a histogram's _count too) with exactly
    these labels (0 if absent)."""
    for fam in fams.values():
        for name, l, v in fam["samples"]:
            if name == family and l == labels:
                return v
    return 0


def requests_by_route(fams):
    return {(l["method"], l["route"], l["status"]): v
            for _, l, v in fams["corio_http_requests_total"]["samples"]}


# ---- clients -----------------------------------------------------------------------------

def exchange(port, raw):
    """Sends raw on a new connection; returns (status, headers, body)."""
    c = Conn(port)
    try:
        c.send(raw)
        status, hdrs, body, _ = c.response(head=raw.startswith(b"HEAD "))
        return status, hdrs, body
    finally:
        c.close()


def get(port, path):
    return exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())


class Scraper:
    """Scrapes /metrics on fresh connections, tracking what the scrapes
    themselves add to the counters (each is counted after it answers)."""

    def __init__(self, port):
        self.port, self.n, self.bytes_in, self.bytes_out = port, 0, 0, 0

    def scrape(self):
        raw = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
        status, hdrs, body = exchange(self.port, raw)
        check(status == 200, "metrics: %d" % status)
        check(hdrs.get("content-type", "").startswith("text/plain; version=0.0.4"),
              "content type %r" % hdrs.get("content-type"))
        fams = parse_exposition(body.decode())
        self.n += 1
        self.bytes_in += len(raw)
        self.bytes_out += len(body)
        self.last = (len(raw), len(body))  # counted only once it has answered
        return fams


def hello(*args):
    srv = Server(ARGS.hello, "--port", "0", *args)
    srv.wait_log(r"listening on|worker \d+ \(pid \d+\) serves")
    return srv


def port_of(srv):
    return int(srv.wait_log(r"listening on 127\.0\.0\.1:(\d+)").group(1))


# ---- cases ---------------------------------------------------------------------------------

def case_health_probes():
    with hello() as srv:
        port = port_of(srv)
        status, _, body = get(port, "/healthz")
        check(status == 200 and body == b"ok\n", "healthz: %d %r" % (status, body))
        status, _, body = get(port, "/readyz")
        check(status == 200 and body == b"ready\n", "readyz: %d %r" % (status, body))
        check(srv.terminate() == 0, "exit code")


def case_readyz_503_while_draining():
    """A request held open (a body still to come) keeps the drain going; a
    connection opened before the drain, with no request yet, asks /readyz:
    503 "draining", and the connection closes after it."""
    with hello() as srv:
        port = port_of(srv)
        held = Conn(port)
        held.send(b"POST /json HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        probe = Conn(port)
        # both accepted (the held one reads its body): the server's own count
        wait_until(lambda: value(Scraper(port).scrape(), "corio_connections_open") >= 3, 10,
                   "connections accepted")
        mark = srv.mark()
        os.killpg(srv.proc.pid, signal.SIGTERM)
        srv.wait_log(r"SIGTERM: draining", start=mark)
        probe.send(b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
        status, hdrs, body, _ = probe.response()
        check(status == 503 and body == b"draining\n", "readyz: %d %r" % (status, body))
        check(hdrs.get("connection") == "close", "no Connection: close: %r" % hdrs)
        probe.expect_eof()
        held.send(b"1234567")  # the held request completes: 405
        status, _, _, _ = held.response()
        check(status == 405, "held request: %d" % status)
        check(srv.wait_exit() == 0, "exit code")


def case_counts_match_traffic():
    """Known requests, each on a fresh connection; the counters are exact."""
    with hello() as srv:
        port = port_of(srv)
        sent_in, sent_out, n_get, n_head, n_404, n_405 = 0, 0, 7, 3, 4, 2
        for _ in range(n_get):
            raw = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
            status, _, body = exchange(port, raw)
            check(status == 200 and body == b"Hello, World!", "plaintext: %d" % status)
            sent_in, sent_out = sent_in + len(raw), sent_out + len(body)
        for _ in range(n_head):
            raw = b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"
            status, _, _ = exchange(port, raw)
            check(status == 200, "HEAD: %d" % status)
            sent_in += len(raw)
        for i in range(n_404):
            raw = b"GET /no/such/%d?x=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (i, i)
            status, _, body = exchange(port, raw)
            check(status == 404, "404: %d" % status)
            sent_in, sent_out = sent_in + len(raw), sent_out + len(body)
        for _ in range(n_405):
            raw = b"DELETE /json HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
            status, _, body = exchange(port, raw)
            check(status == 405, "405: %d" % status)
            sent_in, sent_out = sent_in + len(raw), sent_out + len(body)
        big = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        status, _, body = exchange(port, big)
        check(status == 431, "big head: %d" % status)
        sent_out += len(body)  # its head's bytes in: as far as the server read
        sc = Scraper(port)
        fams = sc.scrape()
        got = requests_by_route(fams)
        want = {("GET", "/plaintext", "2xx"): n_get, ("HEAD", "/plaintext", "2xx"): n_head,
                ("GET", "(unmatched)", "4xx"): n_404, ("DELETE", "(unmatched)", "4xx"): n_405,
                ("GET", "(rejected)", "4xx"): 1}
        check(got == want, "requests: %s, want %s" % (got, want))
        check(not any("/no/such" in r for _, r, _ in got), "a raw path became a label")
        check(value(fams, "corio_http_rejected_total", reason="header_too_large") == 1,
              "header_too_large not counted")
        total = n_get + n_head + n_404 + n_405 + 1
        check(value(fams, "corio_http_request_duration_seconds_count") == total,
              "duration count %s" % value(fams, "corio_http_request_duration_seconds_count"))
        check(value(fams, "corio_http_response_body_bytes_total") == sent_out,
              "bytes out %s, want %d" % (value(fams, "corio_http_response_body_bytes_total"),
                                         sent_out))
        bytes_in = value(fams, "corio_http_request_bytes_total")
        check(sent_in < bytes_in <= sent_in + len(big), "bytes in %s, sent %d + a refused head"
              % (bytes_in, sent_in))
        refused_in = bytes_in - sent_in
        fams = sc.scrape()  # the first scrape is counted now
        check(requests_by_route(fams).get(("GET", "/metrics", "2xx")) == 1, "scrape not counted")
        check(value(fams, "corio_http_request_bytes_total")
              == sent_in + refused_in + sc.bytes_in - sc.last[0], "bytes in after a scrape")
        check(value(fams, "corio_http_response_body_bytes_total")
              == sent_out + sc.bytes_out - sc.last[1], "bytes out after a scrape")
        check(value(fams, "corio_workers_live") == 1, "workers_live")
        check(value(fams, "corio_tasks_live") >= 2, "tasks_live")
        check(srv.terminate() == 0, "exit code")


def case_open_connections():
    with hello() as srv:
        port = port_of(srv)
        held = []
        for _ in range(5):
            c = Conn(port)
            c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            check(c.response()[0] == 200, "plaintext")
            held.append(c)
        sc = Scraper(port)
        # the scrape's own connection is open too; earlier scrapes' close
        wait_until(lambda: value(sc.scrape(), "corio_connections_open") == 6, 10,
                   "6 connections open")
        for c in held[:3]:
            c.close()
        wait_until(lambda: value(sc.scrape(), "corio_connections_open") == 3, 10,
                   "3 connections open")
        fams = sc.scrape()
        check(value(fams, "corio_connections_accepted_total") == 5 + sc.n,
              "accepted %s" % value(fams, "corio_connections_accepted_total"))
        for c in held[3:]:
            c.close()
        check(srv.terminate() == 0, "exit code")


def workers_of(srv):
    with open("/proc/%d/task/%d/children" % (srv.proc.pid, srv.proc.pid)) as f:
        return [int(p) for p in f.read().split()]


def send_spread(port, n):
    for _ in range(n):
        status, _, _ = get(port, "/plaintext")
        check(status == 200, "plaintext: %d" % status)


def case_workers_sum_whichever_answers():
    with hello("--workers", "2") as srv:
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        port = port_of(srv)
        n = 200
        send_spread(port, n)
        sc = Scraper(port)
        for _ in range(8):
            fams = sc.scrape()
            got = requests_by_route(fams).get(("GET", "/plaintext", "2xx"))
            check(got == n, "scrape %d: %s of %d requests" % (sc.n, got, n))
            lag = [l for _, l, _ in fams["corio_loop_lag_last_seconds"]["samples"]]
            check(len(lag) >= 2, "lag gauges of %d workers" % len(lag))
        check(srv.terminate() == 0, "exit code")


def case_killed_worker_keeps_counts():
    with hello("--workers", "2") as srv:
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        port = port_of(srv)
        n = 100
        send_spread(port, n)
        victim = workers_of(srv)[0]
        mark = srv.mark()
        os.kill(victim, signal.SIGKILL)
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", start=mark)
        sc = Scraper(port)
        for _ in range(6):
            got = requests_by_route(sc.scrape()).get(("GET", "/plaintext", "2xx"))
            check(got == n, "after the kill: %s of %d" % (got, n))
        send_spread(port, 20)
        got = requests_by_route(sc.scrape()).get(("GET", "/plaintext", "2xx"))
        check(got == n + 20, "after more: %s of %d" % (got, n + 20))
        check(srv.terminate() == 0, "exit code")


def case_retired_workers_slots_freed_even_if_their_pid_returns():
    """After a SIGHUP roll the retired workers' slots are freed when the
    supervisor reaps them: a process that later gets one of their pids does
    not make a slot count as a live worker again (root only: the pid is
    handed out again through /proc/sys/kernel/ns_last_pid)."""
    if os.geteuid() != 0 or not os.access("/proc/sys/kernel/ns_last_pid", os.W_OK):
        print("    SKIP not root: cannot hand a pid out again", flush=True)
        return
    with hello("--workers", "2", "--drain-timeout", "200ms") as srv:
        srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=2)
        port = port_of(srv)
        old = workers_of(srv)
        mark = srv.mark()
        os.kill(srv.proc.pid, signal.SIGHUP)
        srv.wait_log(r"SIGHUP: every worker restarted", start=mark)
        harness.wait_until(lambda: not set(old) & set(workers_of(srv)), harness.DEADLINE,
                           "the retired workers gone")
        sc = Scraper(port)
        live = value(sc.scrape(), "corio_workers_live")
        check(live == 2, "live workers after the roll: %s" % live)
        impostor = None
        for victim in old:  # the first pid the kernel hands out again
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(victim - 1))
            p = subprocess.Popen(["sleep", "30"])
            if p.pid == victim:
                impostor = p
                break
            p.kill()
            p.wait()
        if impostor is None:
            print("    SKIP the retired pids were taken meanwhile", flush=True)
        else:
            try:
                live = value(sc.scrape(), "corio_workers_live")
                check(live == 2, "live workers with pid %d reused: %s" % (impostor.pid, live))
            finally:
                impostor.kill()
                impostor.wait()
        check(srv.terminate() == 0, "exit code")


CASES = [case_health_probes, case_readyz_503_while_draining, case_counts_match_traffic,
         case_open_connections, case_workers_sum_whichever_answers,
         case_killed_worker_keeps_counts,
         case_retired_workers_slots_freed_even_if_their_pid_returns]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    return harness.run_cases(CASES, ARGS.k)


if __name__ == "__main__":
    sys.exit(main())
