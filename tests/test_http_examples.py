#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of the HTTP examples: rest (CRUD + middleware), sse
(a streamed clock that ends on shutdown) and upload (streamed bodies).

    test_http_examples.py [--rest build/examples/rest/rest] --sse .../sse --upload .../upload [-k NAME]
                          [--wrap "valgrind ..." [--slow 10]]

Without --rest (the example is built only when jansson is found) its cases are
skipped.  Every server starts on 127.0.0.1 with --port 0; the port is read from
the "listening on 127.0.0.1:PORT" line on stderr.  Every wait has a deadline;
every process started is killed when its case ends, pass or fail; each
shared server must exit 0 on SIGTERM, and a sanitizer or valgrind report in
any server's output fails the case (harness.py).  Under --wrap (servers under
a command prefix such as valgrind) deadlines grow by --slow.  Python
standard library only.
"""
import argparse
import datetime
import functools
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time

import harness
from harness import (DEADLINE, HOST, MIB, CaseFailure, check, kill_all, pick, run_case,
                     server_died, stop_cleanly, summary, wait_until)

ARGS = None

# An example binary in its own process group (harness.Server), without the
# variables that would configure it.
Server = functools.partial(harness.Server, env_drop=("CORIO_", "UPLOAD_"))


def request(port, method, path, body=None, headers=None):
    """One request on a new connection: (status, {lower-case name: value}, body bytes)."""
    c = http.client.HTTPConnection(HOST, port, timeout=DEADLINE)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def chunked_past_limit(port, path, limit):
    """Sends a chunked body of limit + 1 bytes and returns the raw response.

    It stops at the byte that crosses the limit: a server that answers early
    and closes at once with bytes unread in its socket makes the kernel send
    a reset, which can destroy the response before the client reads it."""
    s = socket.create_connection((HOST, port), timeout=DEADLINE)
    try:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  % path.encode())
        for b in pseudo_random_blocks(limit, block=64 * 1024):
            s.sendall(b"%x\r\n%s\r\n" % (len(b), b))
        s.sendall(b"1\r\nX")
        resp = b""
        while True:
            d = s.recv(65536)
            if not d:
                return resp
            resp += d
    finally:
        s.close()


# ---- rest ------------------------------------------------------------------------------------

def case_rest_crud_round_trip(srv):
    st, h, body = request(srv.port, "POST", "/items", {"name": "bolt", "qty": 3})
    check(st == 201, "POST: %d %r" % (st, body))
    item = json.loads(body)
    check(item["name"] == "bolt" and item["qty"] == 3 and item["id"] >= 1, "POST body %r" % item)
    loc = h.get("location")
    check(loc == "/items/%d" % item["id"], "Location %r for %r" % (loc, item))
    check(h.get("content-type") == "application/json", "Content-Type %r" % h.get("content-type"))

    st, _, body = request(srv.port, "GET", loc)
    check(st == 200 and json.loads(body) == item, "GET %s: %d %r" % (loc, st, body))

    st, _, body = request(srv.port, "PUT", loc, {"name": "nut", "qty": 7})
    check(st == 200, "PUT: %d %r" % (st, body))
    check(json.loads(body) == {"id": item["id"], "name": "nut", "qty": 7}, "PUT body %r" % body)
    st, _, body = request(srv.port, "GET", loc)
    check(st == 200 and json.loads(body)["name"] == "nut", "GET after PUT: %d %r" % (st, body))

    st, _, body = request(srv.port, "GET", "/items")
    check(st == 200, "GET /items: %d" % st)
    listed = json.loads(body)
    check(isinstance(listed, list) and {"id": item["id"], "name": "nut", "qty": 7} in listed,
          "list %r" % listed)

    st, _, body = request(srv.port, "DELETE", loc)
    check(st == 204 and body == b"", "DELETE: %d %r" % (st, body))
    for method, payload in (("GET", None), ("PUT", {"name": "x", "qty": 1}), ("DELETE", None)):
        st, h, body = request(srv.port, method, loc, payload)
        check(st == 404, "%s after DELETE: %d %r" % (method, st, body))
        check("error" in json.loads(body), "404 body %r" % body)
    st, _, _ = request(srv.port, "GET", "/items/abc")
    check(st == 404, "GET /items/abc: %d" % st)
    st, _, body = request(srv.port, "GET", "/items")
    check(item["id"] not in [i["id"] for i in json.loads(body)], "deleted item still listed")


def case_rest_bad_json_is_400(srv):
    bad = [
        ("{bad", "not JSON"),
        ('{"name": "x"}', "qty missing"),
        ('{"qty": 2}', "name missing"),
        ('{"name": 5, "qty": 2}', "name not a string"),
        ('{"name": "x", "qty": "2"}', "qty not an integer"),
        ('{"name": "", "qty": 2}', "name empty"),
        ('[1, 2]', "not an object"),
        ("", "empty body"),
    ]
    for payload, what in bad:
        st, h, body = request(srv.port, "POST", "/items", payload,
                              {"Content-Type": "application/json"})
        check(st == 400, "%s: %d %r" % (what, st, body))
        check(h.get("content-type") == "application/json", "%s: Content-Type %r" % (what, h))
        check(isinstance(json.loads(body).get("error"), str), "%s: body %r" % (what, body))
    st, _, body = request(srv.port, "POST", "/items", {"name": "keep", "qty": 1})
    check(st == 201, "a good POST after bad ones: %d" % st)
    loc = "/items/%d" % json.loads(body)["id"]
    st, _, body = request(srv.port, "PUT", loc, "{nope")
    check(st == 400, "PUT with bad JSON: %d %r" % (st, body))
    st, _, body = request(srv.port, "GET", loc)
    check(json.loads(body)["name"] == "keep", "a rejected PUT changed the item: %r" % body)


def case_rest_concurrent_posts_get_distinct_ids(srv):
    nthreads, per_thread = 20, 5
    barrier = threading.Barrier(nthreads)
    results, errors = [], []
    lock = threading.Lock()

    def worker(n):
        try:
            c = http.client.HTTPConnection(HOST, srv.port, timeout=DEADLINE)
            barrier.wait(timeout=DEADLINE)
            for k in range(per_thread):
                c.request("POST", "/items", body=json.dumps({"name": "t%d-%d" % (n, k), "qty": k}))
                r = c.getresponse()
                body = r.read()
                with lock:
                    results.append((r.status, r.getheader("Location"), json.loads(body)))
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(nthreads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=DEADLINE * 2)
    check(not errors, "client errors: %s" % errors[:3])
    check(len(results) == nthreads * per_thread, "%d responses" % len(results))
    check(all(st == 201 for st, _, _ in results), "statuses %r" % {r[0] for r in results})
    ids = [b["id"] for _, _, b in results]
    check(len(set(ids)) == len(ids), "duplicate ids: %r" % sorted(ids))
    check(all(loc == "/items/%d" % b["id"] for _, loc, b in results), "Location mismatch")
    st, _, body = request(srv.port, "GET", "/items")
    listed = {i["id"]: i["name"] for i in json.loads(body)}
    for _, _, b in results:
        check(listed.get(b["id"]) == b["name"], "item %r missing from the list" % b)


def case_rest_body_too_large_is_413(srv):
    resp = chunked_past_limit(srv.port, "/items", 64 * 1024)
    check(resp.startswith(b"HTTP/1.1 413 "), "chunked body past 64 KiB: %r" % resp[:80])
    check(b'{"error":' in resp, "413 without a JSON error: %r" % resp[-80:])
    s = socket.create_connection((HOST, srv.port), timeout=DEADLINE)
    s.sendall(b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MIB))
    resp = s.recv(4096)
    s.close()
    check(resp.startswith(b"HTTP/1.1 413 "), "Content-Length past 64 KiB: %r" % resp[:80])


def case_rest_cors_and_preflight(srv):
    st, h, _ = request(srv.port, "GET", "/items", headers={"Origin": "http://example.com"})
    check(st == 200 and h.get("access-control-allow-origin") == "*", "GET headers %r" % h)
    check("Location" in h.get("access-control-expose-headers", ""), "Expose-Headers %r" % h)
    st, h, body = request(srv.port, "OPTIONS", "/items/1", headers={
        "Origin": "http://example.com",
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "content-type"})
    check(st == 204 and body == b"", "preflight: %d %r" % (st, body))
    check(h.get("access-control-allow-origin") == "*", "preflight Allow-Origin %r" % h)
    methods = {m.strip() for m in h.get("access-control-allow-methods", "").split(",")}
    check({"GET", "POST", "PUT", "DELETE"} <= methods, "Allow-Methods %r" % methods)
    check("content-type" in h.get("access-control-allow-headers", "").lower(),
          "Allow-Headers %r" % h)
    st, h, _ = request(srv.port, "POST", "/items", {"name": "c", "qty": 0},
                       {"Origin": "http://example.com"})
    check(st == 201 and h.get("access-control-allow-origin") == "*", "POST headers %r" % h)


def case_rest_access_log(srv):
    st, _, body = request(srv.port, "POST", "/items", {"name": "logged", "qty": 1})
    check(st == 201, "POST: %d" % st)
    loc = "/items/%d" % json.loads(body)["id"]
    request(srv.port, "DELETE", loc)
    srv.wait_log(r"POST /items 201 \d+us req=[0-9a-f]{32}$", DEADLINE)
    srv.wait_log(r"DELETE %s 204 \d+us req=[0-9a-f]{32}$" % loc, DEADLINE)


# ---- sse -------------------------------------------------------------------------------------

class ChunkedReader:
    """Reads a chunked response from a raw socket, one chunk at a time."""

    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False
        self.terminated = False  # the last chunk (0) arrived

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            self.eof = True
            raise EOFError
        self.buf += d

    def _until(self, delim):
        while delim not in self.buf:
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def head(self):
        raw = self._until(b"\r\n\r\n").decode("latin-1")
        return int(raw.split(" ")[1]), raw.lower()

    def chunk(self):
        """The next chunk's payload, or None at the end of the stream."""
        try:
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self._until(b"\r\n")
                self.terminated = True
                return None
            while len(self.buf) < size + 2:
                self._fill()
            data, self.buf = self.buf[:size], self.buf[size + 2:]
            return data
        except EOFError:
            return None


def sse_events(reader):
    """Yields events (lists of "field: value" lines) as they complete."""
    pending = b""
    while True:
        data = reader.chunk()
        if data is None:
            return
        pending += data
        while b"\n\n" in pending:
            ev, pending = pending.split(b"\n\n", 1)
            yield ev.decode("utf-8").split("\n")


def case_sse_page(srv):
    st, h, body = request(srv.port, "GET", "/")
    check(st == 200 and h.get("content-type", "").startswith("text/html"), "GET /: %d %r" % (st, h))
    check(b"EventSource('/clock')" in body, "no EventSource in the page")


def sse_sigterm_after_three_events(drain):
    """Three events, then SIGTERM right after the third: the clock says
    goodbye and its chunked stream ends with the last chunk (whether the
    handler saw the drain itself or the drain deadline cancelled it first);
    the server exits 0.  Returns the server (stopped)."""
    srv = Server(ARGS.sse, "--drain-timeout", drain)
    s = socket.create_connection((HOST, srv.port), timeout=DEADLINE)
    try:
        s.sendall(b"GET /clock HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        r = ChunkedReader(s)
        status, head = r.head()
        check(status == 200, "status %d" % status)
        check("content-type: text/event-stream" in head, "head %r" % head)
        check("transfer-encoding: chunked" in head, "head %r" % head)
        events = sse_events(r)
        stamps = []
        for _ in range(3):
            ev = next(events, None)
            check(ev is not None, "the stream ended after %d events" % len(stamps))
            check(len(ev) == 1 and ev[0].startswith("data: "), "event %r" % ev)
            t = datetime.datetime.strptime(ev[0][6:], "%Y-%m-%dT%H:%M:%SZ")
            stamps.append(t)
        check(stamps == sorted(set(stamps)), "timestamps not increasing: %r" % stamps)
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        check(abs((now - stamps[-1]).total_seconds()) < 3, "clock off: %s vs %s" % (stamps, now))
        srv.proc.send_signal(signal.SIGTERM)
        # Until the stream ends (EOF or the last chunk; a socket timeout of
        # DEADLINE fails the case): every read waits within it.
        rest = list(events)
        check(any(ev[:1] == ["event: bye"] for ev in rest), "no bye event in %r" % rest)
        for ev in rest:
            check(ev[0].startswith(("data: ", "event: ")), "event after SIGTERM %r" % ev)
        # A handler that said goodbye and returned completed its response:
        # the stream ends with its last chunk (one cut short would not).
        check(r.terminated, "the stream ended without its last chunk (%r left)" % r.buf[-40:])
        s.settimeout(DEADLINE)
        check(s.recv(1) == b"", "bytes after the last chunk")
        rc = srv.terminate(signal_it=False)  # a second SIGTERM would not be graceful
        check(rc == 0, "exit code %r\n%s" % (rc, srv.tail()))
        return srv
    finally:
        s.close()
        srv.kill()


def case_sse_three_events_then_sigterm(srv_unused):
    sse_sigterm_after_three_events("1s")


def case_sse_goodbye_after_drain_deadline_ends_the_stream(srv_unused):
    """The drain deadline (100 ms) comes long before the clock's next tick
    (about a second after the event that preceded SIGTERM): the handler is
    cancelled, says goodbye in a shield scope and returns 0, and its stream
    must still end with the last chunk, although the connection's task is
    cancelled."""
    srv = sse_sigterm_after_three_events("100ms")
    check(srv.count_log(r"drain deadline passed") == 1,
          "the handler ended before the drain deadline: not the case meant\n" + srv.tail())


def conn_tasks(srv):
    """The number of connection tasks (handlers running) in srv's task dump
    (SIGUSR1: "corio: N live task(s)", then a line per task)."""
    mark = srv.mark()
    srv.proc.send_signal(signal.SIGUSR1)
    n = int(srv.wait_log(r"^corio: (\d+) live task", start=mark).group(1))
    srv.wait_log(r"^\s+#\d+ ", start=mark, count=n)
    return srv.count_log(r"^\s+#\d+ conn ", start=mark)


def case_sse_client_leaving_ends_handler(srv):
    """A client that leaves cancels its clock, which ends (its connection's
    task is gone from the task dump) without logging an error."""
    s = socket.create_connection((HOST, srv.port), timeout=DEADLINE)
    s.sendall(b"GET /clock HTTP/1.1\r\nHost: x\r\n\r\n")
    r = ChunkedReader(s)
    status, _ = r.head()
    check(status == 200 and next(sse_events(r), None), "no first event")
    check(conn_tasks(srv) == 1, "no handler running for the clock:\n" + srv.tail())
    s.close()
    wait_until(lambda: conn_tasks(srv) == 0, DEADLINE, "the clock's handler to end")
    st, _, _ = request(srv.port, "GET", "/")
    check(st == 200, "server unwell after a client left: %d" % st)
    check(srv.count_log(r"ERROR") == 0, "errors logged:\n" + srv.tail())


# ---- upload ----------------------------------------------------------------------------------

def pseudo_random_blocks(total, block=MIB, seed=1):
    rnd = random.Random(seed)
    left = total
    while left > 0:
        n = min(block, left)
        yield rnd.randbytes(n)
        left -= n


def expected(total, seed=1):
    h = hashlib.sha256()
    for b in pseudo_random_blocks(total, seed=seed):
        h.update(b)
    return h.hexdigest()


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(MIB), b""):
            h.update(b)
    return h.hexdigest()


def upload(port, total, chunked=False, seed=1):
    c = http.client.HTTPConnection(HOST, port, timeout=DEADLINE * 3)
    try:
        headers = {"Content-Type": "application/octet-stream"}
        if not chunked:
            headers["Content-Length"] = str(total)
        c.request("POST", "/upload", body=pseudo_random_blocks(total, seed=seed), headers=headers,
                  encode_chunked=chunked)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def check_created(st, body, total, sha, updir):
    check(st == 201, "status %d %r" % (st, body))
    doc = json.loads(body)
    check(doc["bytes"] == total, "bytes %r, want %d" % (doc["bytes"], total))
    check(doc["sha256"] == sha, "sha256 %s, want %s" % (doc["sha256"], sha))
    path = os.path.join(updir, doc["file"])
    check(os.path.getsize(path) == total, "file size %d" % os.path.getsize(path))
    check(file_sha256(path) == sha, "file on disk differs")
    os.unlink(path)


class RssSampler(threading.Thread):
    def __init__(self, srv):
        super().__init__(daemon=True)
        self.srv, self.peak, self.stop = srv, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                self.peak = max(self.peak, self.srv.rss_kib())
            except (OSError, CaseFailure):
                return
            time.sleep(0.005)


def case_upload_64mib_flat_memory(ctx):
    srv, updir = ctx
    total = 64 * MIB
    sha = expected(total)
    st, body = upload(srv.port, MIB)  # warm up: thread pool, buffers
    check_created(st, body, MIB, expected(MIB), updir)
    before = srv.rss_kib()
    sampler = RssSampler(srv)
    sampler.start()
    t0 = time.monotonic()
    try:
        st, body = upload(srv.port, total)
    finally:
        sampler.stop.set()
        sampler.join(timeout=2)
    took = time.monotonic() - t0
    check_created(st, body, total, sha, updir)
    grew = (sampler.peak - before) / 1024
    print("    64 MiB in %.2f s, VmRSS %d KiB before, peak %d KiB (+%.1f MiB)"
          % (took, before, sampler.peak, grew))
    if not srv.sanitized():
        check(grew < 16, "VmRSS grew by %.1f MiB during the upload" % grew)


def case_upload_chunked(ctx):
    srv, updir = ctx
    total = 8 * MIB + 12345
    st, body = upload(srv.port, total, chunked=True, seed=2)
    check_created(st, body, total, expected(total, seed=2), updir)


def case_upload_over_limit_is_413(ctx):
    _, updir = ctx
    limit = MIB
    small = Server(ARGS.upload, env={"UPLOAD_DIR": updir, "UPLOAD_MAX": str(limit)})
    try:
        # Content-Length over the limit: answered before the body is sent.
        s = socket.create_connection((HOST, small.port), timeout=DEADLINE)
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (limit + 1))
        resp = s.recv(4096)
        s.close()
        check(resp.startswith(b"HTTP/1.1 413 "), "Content-Length over the limit: %r" % resp[:80])
        # Chunked, growing past the limit: the handler answers 413.
        resp = chunked_past_limit(small.port, "/upload", limit)
        check(resp.startswith(b"HTTP/1.1 413 "), "chunked over the limit: %r" % resp[:80])
        check(b"connection: close" in resp.lower(), "413 without Connection: close")
        # Exactly the limit is fine.
        st, body = upload(small.port, limit)
        check_created(st, body, limit, expected(limit), updir)
        check(os.listdir(updir) == [], "files left behind: %r" % os.listdir(updir))
    finally:
        small.kill()


def case_upload_client_leaving_removes_file(ctx):
    srv, updir = ctx
    s = socket.create_connection((HOST, srv.port), timeout=DEADLINE)
    s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (16 * MIB))
    for b in pseudo_random_blocks(4 * MIB):
        s.sendall(b)
    wait_until(lambda: os.listdir(updir), DEADLINE, "the upload file")
    s.close()
    wait_until(lambda: os.listdir(updir) == [], DEADLINE, "the partial file to be removed")
    st, body = upload(srv.port, 1000)
    check_created(st, body, 1000, expected(1000), updir)


# ---- harness ---------------------------------------------------------------------------------

REST_CASES = [case_rest_crud_round_trip, case_rest_bad_json_is_400,
              case_rest_concurrent_posts_get_distinct_ids, case_rest_body_too_large_is_413,
              case_rest_cors_and_preflight,
              case_rest_access_log]
SSE_CASES = [case_sse_page, case_sse_client_leaving_ends_handler,
             case_sse_three_events_then_sigterm,
             case_sse_goodbye_after_drain_deadline_ends_the_stream]
UPLOAD_CASES = [case_upload_64mib_flat_memory, case_upload_chunked, case_upload_over_limit_is_413,
                case_upload_client_leaving_removes_file]


def run_group(cases, setup, server_of=lambda f: f):
    """Runs cases against one fixture, then stops its server with SIGTERM
    (it must exit 0: a clean drain, and no leak under ASan); returns
    (passed, failed)."""
    cases = pick(cases, ARGS.k)
    if not cases:
        return 0, 0
    passed = failed = 0
    fixture = setup()
    srv = server_of(fixture)
    stopped = False
    try:
        for case in cases:
            if run_case(case.__name__, case, fixture):
                passed += 1
            else:
                failed += 1
                print("  server log:\n" + srv.tail(), flush=True)
            if server_died(srv):
                failed += 1
                break
        else:
            stopped = True
            if not stop_cleanly(srv):
                failed += 1
    finally:
        if not stopped:
            srv.kill()
    return passed, failed


def main():
    global ARGS, DEADLINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--rest", help="the rest example (omitted: built without jansson)")
    ap.add_argument("--sse", required=True)
    ap.add_argument("--upload", required=True)
    ARGS = harness.parse_args(ap)
    DEADLINE = harness.DEADLINE
    t0 = time.monotonic()
    passed = failed = 0
    updir = tempfile.mkdtemp(prefix="corio-upload-")
    try:
        if ARGS.rest:
            p, f = run_group(REST_CASES, lambda: Server(ARGS.rest))
            passed, failed = passed + p, failed + f
        else:
            print("SKIP rest cases: no --rest (the example needs jansson)")
        p, f = run_group(SSE_CASES, lambda: Server(ARGS.sse))
        passed, failed = passed + p, failed + f

        def up_setup():
            return Server(ARGS.upload, env={"UPLOAD_DIR": updir}), updir

        p, f = run_group(UPLOAD_CASES, up_setup, lambda ctx: ctx[0])
        passed, failed = passed + p, failed + f
    finally:
        kill_all()
        shutil.rmtree(updir, ignore_errors=True)
    return summary(passed, failed, t0)


if __name__ == "__main__":
    sys.exit(main())
