#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Request ids and JSON log lines (corio_req_id, --log-format).

    test_request_id.py --server build/tests/http_test_server
                       --proxy build/examples/proxy/proxy

Cases:
- --log-format json: every line the server writes (its log lines and the
  access log) is one JSON object that Python's json module reads, with the
  keys; a handler's lines and the access line carry the request's id; a
  hostile target (quotes, backslashes) and heads the server refuses (a
  control byte, bytes from 0x80 in the target) stay one valid object each;
- a client's sane X-Request-Id is echoed, logged (text: "req=<id>" at the
  end of a handler's line, the quoted last field of the access line); an
  absent one is generated (32 hex digits); an insane one (too long, a space,
  a tab, a byte from 0x80) is replaced, and never echoed;
- generated ids are unique over 1000 requests served by 2 workers (both
  seen to serve);
- the HTTP client sends the id upstream (a Python upstream records the
  fields): from the handler and from a task it spawns, once each, the
  client's or the generated one;
- examples/proxy forwards the id once, the replaced one for an insane id;
- --log-format and CORIO_LOG_FORMAT refuse other values (exit 2), and
  --help shows the flag with its default.

Ordering, not sleeping: a server writes its buffered access lines when its
last connection ends and before it exits, so cases that read the access log
stop the server (SIGTERM) first.  Python standard library only.
"""
import argparse
import http.server
import json
import re
import subprocess
import sys
import threading
import time

import harness
from harness import Conn, check, kill_all, pick, run_case, summary

ARGS = None
HEX32 = re.compile(r"^[0-9a-f]{32}$")
LOG_KEYS = {"time", "level", "pid", "msg"}
ACCESS_KEYS = {"time", "remote", "method", "target", "protocol", "status", "bytes",
               "duration_us", "request_id"}


def get(port, target, headers=(), close=True):
    """One request on its own connection: (status, headers, body)."""
    c = Conn(port)
    try:
        lines = [b"GET " + target + b" HTTP/1.1", b"Host: x"] + list(headers)
        if close:
            lines.append(b"Connection: close")
        c.send(b"\r\n".join(lines) + b"\r\n\r\n")
        status, hdrs, body, raw = c.response()
        return status, hdrs, body, raw
    finally:
        c.close()


def stopped_lines(srv):
    srv.stop()
    with srv.cond:
        return list(srv.lines)


def parse_json_lines(lines):
    """Every line as a JSON object (a failed check names the first that is not)."""
    objs = []
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError as e:
            raise harness.CaseFailure("not JSON (%s): %r" % (e, ln)) from None
        check(isinstance(o, dict), "not an object: %r" % ln)
        objs.append(o)
    return objs


def case_json_lines_parse_with_the_keys():
    srv = harness.Server(ARGS.server, "--log-format", "json", "--access-log", "on")
    try:
        status, hdrs, _, _ = get(srv.port, b"/sleep?ms=1", [b"X-Request-Id: json-1"])
        check(status == 200 and hdrs.get("x-request-id") == "json-1", hdrs)
        hostile = b'/q?x=%22"\\\\q<>{}|^`'
        status, hdrs, _, _ = get(srv.port, hostile)
        hostile_id = hdrs.get("x-request-id", "")
        check(status == 200 and HEX32.match(hostile_id), hdrs)
        for refused in (b"/a\x01b", b"/q?x=\xff\xc3\xa9"):  # a control byte, non-ASCII
            status, hdrs, _, _ = get(srv.port, refused)
            check(status == 400, status)
        lines = stopped_lines(srv)
    finally:
        srv.kill()
    objs = parse_json_lines(lines)
    logs = [o for o in objs if "msg" in o]
    access = [o for o in objs if "status" in o]
    check(len(logs) + len(access) == len(objs), "neither kind: %r" % objs)
    for o in logs:
        check(LOG_KEYS <= set(o) and o["level"] in ("error", "warn", "info", "debug")
              and isinstance(o["pid"], int), o)
    for o in access:
        check(set(o) == ACCESS_KEYS, o)
    sleeps = [o for o in logs if o["msg"].startswith("sleep ")]
    check(len(sleeps) == 2 and all(o.get("request_id") == "json-1" for o in sleeps), sleeps)
    check(any(o["msg"].startswith("listening on") and "request_id" not in o for o in logs),
          "the listening line, without a request id: %r" % logs)
    check(len(access) == 4, access)
    first = access[0]
    check(first["method"] == "GET" and first["target"] == "/sleep?ms=1" and
          first["protocol"] == "HTTP/1.1" and first["status"] == 200 and
          first["request_id"] == "json-1" and first["remote"] == "127.0.0.1" and
          isinstance(first["duration_us"], int) and first["bytes"] > 0, first)
    # The target as sent (bytes that are not UTF-8 never get this far: llhttp
    # refuses them in a target; corio_log_json_escape's test covers them).
    check(access[1]["target"] == '/q?x=%22"\\\\q<>{}|^`' and
          access[1]["request_id"] == hostile_id, access[1])
    for o in access[2:]:
        check(o["status"] == 400 and o["method"] is None and HEX32.match(o["request_id"]), o)


def case_ids_echoed_generated_and_replaced():
    srv = harness.Server(ARGS.server, "--access-log", "on")
    try:
        sane = "abc-DEF_1.2:3/x"
        status, hdrs, _, _ = get(srv.port, b"/sleep?ms=1", [b"X-Request-Id: " + sane.encode()])
        check(status == 200 and hdrs.get("x-request-id") == sane, hdrs)
        srv.wait_log(r"INFO  \[\d+\] sleep start ms=1 req=%s$" % re.escape(sane))
        longest = "x" * 128
        _, hdrs, _, _ = get(srv.port, b"/plaintext", [b"X-Request-Id: " + longest.encode()])
        check(hdrs.get("x-request-id") == longest, "128 bytes are kept: %r" % hdrs)
        _, hdrs, _, _ = get(srv.port, b"/plaintext")
        check(HEX32.match(hdrs.get("x-request-id", "")), "absent: %r" % hdrs)
        for bad in (b"y" * 129, b"a b", b"a\tb", b"caf\xc3\xa9", b""):
            status, hdrs, _, raw = get(srv.port, b"/plaintext", [b"X-Request-Id: " + bad])
            got = hdrs.get("x-request-id", "")
            check(status == 200 and HEX32.match(got), "insane %r: %r" % (bad, raw))
            check(raw.lower().count(b"x-request-id:") == 1, raw)
        lines = stopped_lines(srv)
    finally:
        srv.kill()
    access = [ln for ln in lines if ln.startswith("127.0.0.1 - - [")]
    check(len(access) == 8, access)
    check(access[0].endswith(' 200 %s "%s"' % (access[0].split(" ")[-3], sane)) or
          access[0].endswith('"%s"' % sane), access[0])
    check(access[1].endswith('"%s"' % longest), access[1])
    for ln in access[2:]:
        check(re.search(r' "[0-9a-f]{32}"$', ln), ln)


def case_generated_ids_unique_across_two_workers():
    srv = harness.Server(ARGS.server, "--workers", "2")
    ids, pids = set(), set()
    try:
        # Fresh connections: SO_REUSEPORT spreads them over both workers.
        total = 0
        for i in range(100):
            c = Conn(srv.port)
            try:
                for j in range(10):
                    last = j == 9
                    c.send(b"GET /sleep?ms=0 HTTP/1.1\r\nHost: x\r\n" +
                           (b"Connection: close\r\n" if last else b"") + b"\r\n")
                    status, hdrs, _, _ = c.response()
                    check(status == 200, status)
                    ids.add(hdrs.get("x-request-id", ""))
                    total += 1
            finally:
                c.close()
        srv.wait_log(r"sleep done ms=0 req=", count=total)
        with srv.cond:
            for ln in srv.lines:
                m = re.search(r"\[(\d+)\] sleep done ms=0 req=([0-9a-f]{32})$", ln)
                if m:
                    pids.add(m.group(1))
    finally:
        srv.kill()
    check(total == 1000 and len(ids) == 1000 and all(HEX32.match(i) for i in ids),
          "%d requests, %d distinct ids" % (total, len(ids)))
    check(len(pids) == 2, "served by %d worker(s): %r" % (len(pids), pids))


class Recorder(http.server.BaseHTTPRequestHandler):
    """An upstream that records each request's X-Request-Id fields."""
    seen = []

    def do_GET(self):
        Recorder.seen.append((self.path, self.headers.get_all("X-Request-Id") or []))
        body = b"up\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Recorder.seen = []
    return server


def case_client_sends_the_id_upstream():
    up = upstream()
    env = {"HTTP_TEST_BACKEND": "http://127.0.0.1:%d/up" % up.server_port}
    srv = harness.Server(ARGS.server, env=env)
    try:
        status, hdrs, body, _ = get(srv.port, b"/backend", [b"X-Request-Id: fwd-7"])
        check(status == 200 and body == b"200,200" and hdrs.get("x-request-id") == "fwd-7",
              (status, hdrs, body))
        check(Recorder.seen == [("/up", ["fwd-7"]), ("/up", ["fwd-7"])], Recorder.seen)
        srv.wait_log(r"backend handler req=fwd-7$")
        srv.wait_log(r"backend child req=fwd-7$")  # the spawned task inherits it
        Recorder.seen = []
        status, hdrs, body, _ = get(srv.port, b"/backend")
        rid = hdrs.get("x-request-id", "")
        check(status == 200 and HEX32.match(rid), hdrs)
        check(Recorder.seen == [("/up", [rid]), ("/up", [rid])], (rid, Recorder.seen))
    finally:
        srv.kill()
        up.shutdown()


def case_proxy_forwards_the_id_once():
    up = upstream()
    srv = harness.Server(ARGS.proxy, "--upstream", "http://127.0.0.1:%d" % up.server_port)
    try:
        status, hdrs, _, raw = get(srv.port, b"/p1", [b"X-Request-Id: prx-1"])
        check(status == 200 and hdrs.get("x-request-id") == "prx-1", raw)
        check(raw.lower().count(b"x-request-id:") == 1, raw)
        check(Recorder.seen == [("/p1", ["prx-1"])], Recorder.seen)
        Recorder.seen = []
        status, hdrs, _, raw = get(srv.port, b"/p2", [b"X-Request-Id: has space"])
        rid = hdrs.get("x-request-id", "")
        check(status == 200 and HEX32.match(rid), raw)
        check(Recorder.seen == [("/p2", [rid])], (rid, Recorder.seen))
        Recorder.seen = []
        status, hdrs, _, raw = get(srv.port, b"/p3")
        rid = hdrs.get("x-request-id", "")
        check(status == 200 and HEX32.match(rid), raw)
        check(Recorder.seen == [("/p3", [rid])], (rid, Recorder.seen))
    finally:
        srv.kill()
        up.shutdown()


def run_exit(args, env=None):
    e = harness.clean_env(env)
    return subprocess.run([ARGS.server, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=e, timeout=30, text=True)


def case_bad_log_format_refused():
    r = run_exit(["--log-format", "xml"])
    check(r.returncode == 2 and "--log-format" in r.stderr and "text or json" in r.stderr,
          (r.returncode, r.stderr))
    r = run_exit([], env={"CORIO_LOG_FORMAT": "yaml"})
    check(r.returncode == 2 and "CORIO_LOG_FORMAT" in r.stderr, (r.returncode, r.stderr))
    r = run_exit(["--help"])
    line = [ln for ln in r.stdout.splitlines() if "--log-format" in ln]
    check(r.returncode == 0 and len(line) == 1 and "[CORIO_LOG_FORMAT]" in line[0] and
          "(default: text)" in line[0], r.stdout)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the tests/http_test_server binary")
    ap.add_argument("--proxy", required=True, help="the examples/proxy binary")
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ARGS = ap.parse_args()
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    started = time.monotonic()
    failed = []
    try:
        for case in cases:
            if not run_case(case.__name__, case):
                failed.append(case.__name__)
    finally:
        kill_all()
    return summary(len(cases) - len(failed), len(failed), started, failed)


if __name__ == "__main__":
    sys.exit(main())
