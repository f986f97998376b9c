#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The access log switched from outside the code: CORIO_ACCESS_LOG.

    test_access_log_env.py --hello build/examples/hello/hello
                           --server build/tests/http_test_server [-k NAME]

Cases:
- unset: examples/hello (whose code leaves the log off) writes no access
  line, and every line it writes is a corio_log line;
- "on": one line per response on stderr, in the common log format with an
  English month, among log lines in the one corio_log format (no
  "corio: ..." line, nothing else);
- a file path: the lines go to the file (appended), none to stderr;
- "off": a server whose code turns the log on (http_test_server with
  HTTP_TEST_ACCESS_LOG=1) writes none;
- a file that cannot be opened: one ERROR line naming the variable, and
  the lines go to stderr.

Ordering, not sleeping: a server writes its buffered access lines at the
latest when its last connection ends, and everything before it exits, so
each case makes its requests (Connection: close), stops the server with
SIGTERM and reads what it wrote.  Python standard library only.
"""
import argparse
import os
import re
import shutil
import sys
import tempfile
import subprocess
import time

import harness
from harness import Conn, check, kill_all, pick, run_case, summary

ARGS = None
TMP = None

LOG_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG) \[\d+\] ")
MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec"
ACCESS_RE = re.compile(r'^127\.0\.0\.1 - - \[\d\d/(%s)/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                       r'"GET (/plaintext|/json) HTTP/1\.1" 200 \d+ \d+ "[0-9a-f]{32}"$' % MONTHS)


def serve_and_stop(binary, env, paths=("/plaintext", "/json")):
    """Starts binary with env, makes one request per path (each on its own
    connection, closed), stops it with SIGTERM; returns its stderr lines."""
    return serve_and_stop_args(binary, env, [], paths)


def serve_and_stop_args(binary, env, args, paths=("/plaintext", "/json")):
    """serve_and_stop with extra command-line arguments."""
    srv = harness.Server(binary, *args, env=env)
    try:
        for path in paths:
            c = Conn(srv.port)
            try:
                c.send(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
                       .encode())
                status = c.response()[0]
                check(status == 200, "GET %s: %s" % (path, status))
            finally:
                c.close()
        srv.stop()
        with srv.cond:
            return list(srv.lines)
    finally:
        srv.kill()


def split(lines):
    """(access lines, log lines, lines that are neither)."""
    access = [ln for ln in lines if ACCESS_RE.match(ln)]
    logs = [ln for ln in lines if LOG_RE.match(ln)]
    other = [ln for ln in lines if not ACCESS_RE.match(ln) and not LOG_RE.match(ln)]
    return access, logs, other


def case_unset_no_access_log():
    access, logs, other = split(serve_and_stop(ARGS.hello, {}))
    check(not access, "access lines without CORIO_ACCESS_LOG: %r" % access)
    check(logs and not other, "lines not in the log format: %r" % other)


def case_on_lines_on_stderr_in_the_one_format():
    lines = serve_and_stop(ARGS.hello, {"CORIO_ACCESS_LOG": "on"})
    access, logs, other = split(lines)
    check(len(access) == 2, "want 2 access lines, got:\n%s" % "\n".join(lines))
    check('"GET /plaintext HTTP/1.1" 200 13 ' in access[0] and '"GET /json ' in access[1],
          "access lines: %r" % access)
    check(logs and not other, "lines in neither format: %r" % other)


def case_file_path_lines_appended_to_the_file():
    path = os.path.join(TMP, "access.log")
    with open(path, "w") as f:
        f.write("kept\n")
    lines = serve_and_stop(ARGS.hello, {"CORIO_ACCESS_LOG": path})
    access, _, other = split(lines)
    check(not access and not other, "on stderr: %r" % (access + other))
    with open(path) as f:
        got = f.read().splitlines()
    check(got[0] == "kept" and len(got) == 3 and all(ACCESS_RE.match(ln) for ln in got[1:]),
          "the file: %r" % got)


def case_off_overrides_the_code():
    env = {"HTTP_TEST_ACCESS_LOG": "1"}
    access, _, _ = split(serve_and_stop(ARGS.server, env, ["/plaintext"]))
    check(len(access) == 1, "the control (the code's log on): %r" % access)
    env["CORIO_ACCESS_LOG"] = "OFF"
    access, _, other = split(serve_and_stop(ARGS.server, env, ["/plaintext"]))
    check(not access and not other, "with CORIO_ACCESS_LOG=OFF: %r" % (access + other))


def case_unopenable_file_refused_at_start():
    """The runner opens the file before it serves: one it cannot open stops it
    at start (exit 2, the reason named), rather than logging elsewhere."""
    path = os.path.join(TMP, "no-such-dir", "access.log")
    for how in ("env", "flag"):
        env = harness.clean_env({"CORIO_ACCESS_LOG": path} if how == "env" else {})
        argv = [ARGS.hello, "--port", "0"] + (["--access-log", path] if how == "flag" else [])
        p = subprocess.run(argv, env=env, capture_output=True, timeout=harness.DEADLINE)
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2 and "no such file or directory" in err and path in err,
              "%s: exit %d: %r" % (how, p.returncode, err))


def case_flag_wins_over_the_variable():
    path = os.path.join(TMP, "flag.log")
    srv_env = {"CORIO_ACCESS_LOG": "off"}
    lines = serve_and_stop_args(ARGS.hello, srv_env, ["--access-log", path])
    access, _, other = split(lines)
    check(not access and not other, "on stderr: %r" % (access + other))
    with open(path) as f:
        got = f.read().splitlines()
    check(len(got) == 2 and all(ACCESS_RE.match(ln) for ln in got), "the file: %r" % got)


def main():
    global ARGS, TMP
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True, help="the examples/hello binary")
    ap.add_argument("--server", required=True, help="the tests/http_test_server binary")
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ARGS = ap.parse_args()
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    TMP = tempfile.mkdtemp(prefix="corio-alog-")
    started = time.monotonic()
    failed = []
    try:
        for case in cases:
            if not run_case(case.__name__, case):
                failed.append(case.__name__)
    finally:
        kill_all()
        shutil.rmtree(TMP, ignore_errors=True)
    return summary(len(cases) - len(failed), len(failed), started, failed)


if __name__ == "__main__":
    sys.exit(main())
