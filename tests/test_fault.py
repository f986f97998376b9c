#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Fault tests of the server under load (issue 21 §3):

- SIGTERM under a steady load: clients in a keep-alive exchange that retry
  nothing (each sends its next request as soon as the last response is
  read) see no failed request: every connection is closed only after a
  response that says "Connection: close", by one process and by a
  supervisor of two workers, and the server exits 0.

    test_fault.py --hello build/examples/hello/hello [-k NAME] [--wrap ...]

Every wait polls with a deadline (harness.py); no sleeps, no timing
thresholds.  Python standard library only.
"""
import argparse
import os
import signal
import sys
import threading

import harness
from harness import Conn, check, wait_until

ARGS = None
Server = harness.Server


class SteadyClient(threading.Thread):
    """One keep-alive connection sending GET /plaintext back to back until
    the server closes it.  outcome: "closed" (the last response said
    Connection: close and the server closed after it), or what went wrong
    ("failed: ..." for a request sent and never answered)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.done, self.outcome = port, 0, None

    def run(self):
        try:
            c = Conn(self.port)
        except OSError as e:
            self.outcome = "failed: connect: %r" % e
            return
        try:
            while True:
                try:
                    c.send(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
                    status, hdrs, body, _ = c.response()
                except Exception as e:  # noqa: BLE001 - the outcome the case asserts
                    self.outcome = "failed: request %d unanswered: %r" % (self.done + 1, e)
                    return
                if status != 200 or body != b"Hello, World!":
                    self.outcome = "failed: %d %r" % (status, body)
                    return
                self.done += 1
                if hdrs.get("connection") == "close":
                    try:
                        c.expect_eof()
                        self.outcome = "closed"
                    except Exception as e:  # noqa: BLE001
                        self.outcome = "failed: no close after Connection: close: %r" % e
                    return
        finally:
            c.close()


def steady_load_sigterm(workers):
    args = ["--workers", str(workers)] if workers > 1 else []
    with Server(ARGS.hello, *args) as srv:
        if workers > 1:
            srv.wait_log(r"worker \d+ \(pid \d+\) serves", count=workers)
        clients = [SteadyClient(srv.port) for _ in range(16)]
        for c in clients:
            c.start()
        wait_until(lambda: all(c.done >= 20 for c in clients), harness.DEADLINE,
                   "every client in its exchange")
        os.killpg(srv.pid, signal.SIGTERM)
        for c in clients:
            c.join(harness.DEADLINE)
            check(not c.is_alive(), "a client still running after the drain")
        bad = [c.outcome for c in clients if c.outcome != "closed"]
        check(not bad, "%d of %d clients failed: %s" % (len(bad), len(clients), bad[:4]))
        check(srv.wait_exit() == 0, "exit code")


def case_sigterm_steady_load_one_process():
    steady_load_sigterm(1)


def case_sigterm_steady_load_two_workers():
    steady_load_sigterm(2)


CASES = [case_sigterm_steady_load_one_process, case_sigterm_steady_load_two_workers]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    return harness.run_cases(CASES, ARGS.k)


if __name__ == "__main__":
    sys.exit(main())
