#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of examples/proxy, the reverse proxy on the HTTP client,
against real upstreams on 127.0.0.1: examples/hello, and the Python origins
of proxy_upstream.py (in this process, one thread per connection), which
tag their responses, echo what they were sent, and misbehave on purpose.
The clients are http.client, raw sockets (harness.Conn) and curl when it is
installed.

    test_proxy.py --proxy build/examples/proxy/proxy --hello build/examples/hello/hello
                  [-k NAME] [--wrap "valgrind ..." [--slow 10]]

What is covered: --upstream (repeated) and --prefix (forwarded with the
target unchanged, 404 outside it), round robin, passive health (a dead
upstream is tried once and skipped; none reachable: 502 at once; a pooled
connection the upstream dropped does not mark it down), 1 GiB bodies both
ways, Content-Length and chunked, with the proxy's peak RSS (VmHWM) growing
less than 64 MiB; hop-by-hop fields dropped both ways (every Connection
field counts) and X-Forwarded-For/-Proto/-Host and Via added (repeated
fields joined); 504 (--upstream-timeout), 502 (garbage, a close mid-head),
an upstream dying mid-body (Content-Length or chunked: the client's
connection closes, http.client reports IncompleteRead); a client that
leaves closes the upstream connection; a response without a length
(server-sent events) has its head sent before its first body byte; HEAD
keeps Content-Length, 204 and 304 have no body (and are answered at once
when they carry a Content-Length); SIGTERM drains an in-flight request and
refuses new connections.

Each case starts its own proxy (port 0, read from its log) and upstreams,
and stops the proxy with SIGTERM at its end: it must exit 0 with no
sanitizer report (LeakSanitizer, valgrind's leak check).  Every wait has a
deadline.  Under --wrap (valgrind) bodies shrink to 64 MiB and deadlines grow
by --slow; the RSS bound is checked only without ASan or valgrind.  Python
standard library only.
"""
import argparse
import contextlib
import functools
import http.client
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import harness
from harness import HOST, MIB, CaseFailure, Conn, check, wait_until
from proxy_upstream import PatternCheck, Upstream, pattern_pieces

ARGS = None
GIB = 1024 * MIB
RSS_BOUND_MIB = 64

Server = functools.partial(harness.Server, env_drop=("CORIO_",))


def deadline():
    return harness.DEADLINE  # set by parse_args (--wrap scales it)


def big():
    """The size of the streamed bodies: 1 GiB, 64 MiB under valgrind."""
    return 64 * MIB if harness.WRAP else GIB


@contextlib.contextmanager
def rig(tags, *args, urls=()):
    """Upstreams tagged `tags`, and a proxy with --upstream for each (then
    for each of `urls`) and args: yields (proxy Server, [Upstream]).  At the
    end the proxy must stop cleanly (SIGTERM, exit 0, no sanitizer report)
    and no upstream thread may have failed."""
    ups = [Upstream(t) for t in tags]
    try:
        flags = [x for u in [*(u.url for u in ups), *urls] for x in ("--upstream", u)]
        srv = Server(ARGS.proxy, *flags, *args, name="proxy " + " ".join(args))
        try:
            yield srv, ups
            srv.stop()
        finally:
            srv.kill()
        for u in ups:
            check(not u.errors, "upstream %s failed: %s" % (u.tag, u.errors[:3]))
    finally:
        for u in ups:
            u.stop()


def request(port, method, path, body=None, headers=None, conn=None):
    """One request (on a new connection unless conn is given): (status,
    {lower-case name: value}, body)."""
    c = conn or http.client.HTTPConnection(HOST, port, timeout=deadline())
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        if conn is None:
            c.close()


def echoed(port, method, path, body=None, headers=None, conn=None):
    """A request an upstream's echo route answers: its JSON document."""
    st, h, data = request(port, method, path, body, headers, conn)
    check(st == 200, "%s %s: %d %r" % (method, path, st, data[:200]))
    return json.loads(data)


def fields(doc, name):
    """The values of the field `name` the upstream received, in order."""
    return [v for k, v in doc["headers"] if k.lower() == name.lower()]


def raw_fields(raw_head):
    """[(lower-case name, value)] of a raw response head, duplicates kept."""
    out = []
    for line in raw_head.decode("latin-1").split("\r\n")[1:]:
        if line:
            k, v = line.split(":", 1)
            out.append((k.strip().lower(), v.strip()))
    return out


def sync_log(srv):
    """Waits until srv's stderr has been read up to now: a SIGUSR1 task dump
    ("corio: N live task(s)") is logged after anything logged before it."""
    mark = srv.mark()
    srv.proc.send_signal(signal.SIGUSR1)
    srv.wait_log(r"^corio: \d+ live task", start=mark)


def warned(srv, up_port, start=0):
    """Lines where the proxy marked the upstream on up_port down."""
    sync_log(srv)
    return srv.count_log(r"proxy: http://127\.0\.0\.1:%d(/[^ ]*)?: .*skipped for" % up_port,
                         start)


def closed_port():
    """A port on 127.0.0.1 where nothing listens (connects are refused)."""
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise CaseFailure("no %s for pid %d" % (field, pid))


# ---- routing -------------------------------------------------------------------------------

def case_prefix_forwards_target_unchanged(t):
    with rig(["A"], "--prefix", "/api") as (srv, (a,)):
        for target in ["/api", "/api/", "/api/x/echo?q=1&r=%2F%20x", "/api/a/b;p?x=%41&y=a%2Fb"]:
            doc = echoed(srv.port, "GET", target)
            check(doc["target"] == target, "sent %r, the upstream got %r" % (target, doc["target"]))
            check(doc["method"] == "GET", "method %r" % doc["method"])
        for method in ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]:
            body = ("body of %s" % method).encode()
            doc = echoed(srv.port, method, "/api/items/7", body)
            check(doc["method"] == method and doc["target"] == "/api/items/7",
                  "%s: the upstream got %s %s" % (method, doc["method"], doc["target"]))
            check(doc["body"] == body.decode() and doc["body_len"] == len(body),
                  "%s: body %r" % (method, doc["body"]))
        n = a.count()
        for target in ["/", "/apix", "/ap", "/other/api", "/API/x"]:
            st, _, data = request(srv.port, "GET", target)
            check(st == 404, "GET %s outside the prefix: %d %r" % (target, st, data[:80]))
        check(a.count() == n, "requests outside the prefix reached the upstream: %r"
              % [r[1] for r in a.requests[n:]])


def case_upstream_url_path_and_flag_forms(t):
    """--upstream URL/base/ puts /base before the target; --flag=value forms."""
    a = Upstream("A")
    try:
        srv = Server(ARGS.proxy, "--upstream=%s/base/" % a.url, "--prefix=/api/",
                     "--upstream-timeout=5s")
        try:
            doc = echoed(srv.port, "GET", "/api/x?y=1")
            check(doc["target"] == "/base/api/x?y=1", "the upstream got %r" % doc["target"])
            st, _, _ = request(srv.port, "GET", "/apx")
            check(st == 404, "GET /apx: %d" % st)
            srv.stop()
        finally:
            srv.kill()
    finally:
        a.stop()
    for bad in (["--upstream", "ftp://x"], ["--upstream", "http://x", "--prefix", "api"],
                ["--upstream", "http://x", "--upstream-timeout", "soon"], []):
        p = subprocess.run([*harness.WRAP, ARGS.proxy, "--port", "0", *bad],
                           capture_output=True, timeout=deadline(), env=harness.clean_env())
        check(p.returncode == 2 and b"proxy:" in p.stderr,
              "%r: exit %d, stderr %r" % (bad, p.returncode, p.stderr[-300:]))


def case_hello_upstream_through_prefix(t):
    """examples/hello behind --prefix /plaintext: /plaintext is hello's own
    answer, /json (which hello serves) is the proxy's 404."""
    srv = Server(ARGS.proxy, "--upstream", "http://127.0.0.1:%d" % t.hello.port,
                 "--prefix", "/plaintext")
    try:
        st, h, body = request(srv.port, "GET", "/plaintext")
        check(st == 200 and body == b"Hello, World!", "GET /plaintext: %d %r" % (st, body))
        check(h.get("via") == "1.1 corio", "Via %r" % h.get("via"))
        st, _, body = request(srv.port, "GET", "/json")
        check(st == 404 and b"Hello" not in body, "GET /json outside the prefix: %d %r"
              % (st, body))
        st, _, body = request(t.hello.port, "GET", "/json")
        check(st == 200, "hello itself serves /json: %d" % st)
        if shutil.which("curl"):
            url = "http://%s:%d/plaintext" % (HOST, srv.port)
            out = subprocess.run(["curl", "-sS", "-i", url], capture_output=True,
                                 timeout=deadline()).stdout
            check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"\r\n\r\nHello, World!"),
                  "curl -i: %r" % out)
            out = subprocess.run(["curl", "-sS", "-I", url], capture_output=True,
                                 timeout=deadline()).stdout
            check(out.startswith(b"HTTP/1.1 200") and b"\r\nContent-Length: 13\r\n" in out
                  and out.endswith(b"\r\n\r\n"), "curl -I: %r" % out)
        else:
            print("    (no curl: its part skipped)")
        srv.stop()
    finally:
        srv.kill()


# ---- balancing and health --------------------------------------------------------------------

def case_round_robin_alternates(t):
    with rig(["A", "B"]) as (srv, (a, b)):
        tags = [echoed(srv.port, "GET", "/rr/%d" % i)["tag"] for i in range(6)]
        c = http.client.HTTPConnection(HOST, srv.port, timeout=deadline())
        try:  # one client connection: still a different upstream each time
            tags += [echoed(srv.port, "GET", "/ka/%d" % i, conn=c)["tag"] for i in range(6)]
        finally:
            c.close()
        check(set(tags) == {"A", "B"}, "tags %r" % tags)
        check(all(x != y for x, y in zip(tags, tags[1:])), "no alternation: %r" % tags)
        check(a.count() == 6 and b.count() == 6, "A %d, B %d requests" % (a.count(), b.count()))


def case_dead_upstream_skipped(t):
    with rig(["A", "B"]) as (srv, (a, b)):
        for i in range(2):
            echoed(srv.port, "GET", "/warm/%d" % i)  # a pooled connection to each
        mark = srv.mark()
        a.kill()
        killed = time.monotonic()
        tags = [echoed(srv.port, "GET", "/after/%d" % i)["tag"] for i in range(6)]
        check(tags == ["B"] * 6, "after A died: %r" % tags)
        check(warned(srv, a.port, mark) == 1, "A marked down %d times, want once:\n%s"
              % (warned(srv, a.port, mark), srv.tail()))
        # A comes back on its port within the 5 s it is skipped for: the proxy
        # still does not try it.
        a2 = Upstream("A2", port=a.port)
        try:
            tags = [echoed(srv.port, "GET", "/back/%d" % i)["tag"] for i in range(4)]
            if time.monotonic() - killed < 4.0:
                check(tags == ["B"] * 4, "A tried again within its 5 s: %r" % tags)
                check(a2.accepts == 0, "A's port got %d connects" % a2.accepts)
            else:
                print("    (slow run: the 5 s window passed, its check skipped)")
        finally:
            a2.stop()
        check(warned(srv, a.port, mark) == 1, "A marked down again:\n" + srv.tail())


def case_no_upstream_reachable_is_502_at_once(t):
    p1, p2 = closed_port(), closed_port()
    with rig([], urls=["http://127.0.0.1:%d" % p1, "http://127.0.0.1:%d/x" % p2]) as (srv, _):
        for i in range(3):
            t0 = time.monotonic()
            st, _, body = request(srv.port, "GET", "/any")
            took = time.monotonic() - t0
            check(st == 502, "request %d: %d %r" % (i, st, body))
            check(took < 1.0 * harness.SLOW, "request %d: 502 after %.2f s" % (i, took))
            # The first request tries each once; then both are skipped.
            check(warned(srv, p1) == 1 and warned(srv, p2) == 1,
                  "after request %d: %d and %d down marks:\n%s"
                  % (i, warned(srv, p1), warned(srv, p2), srv.tail()))


def case_dropped_pooled_connection_does_not_mark_upstream_down(t):
    """One upstream that closes each connection right after its response,
    with no "Connection: close": the proxy's pooled connection is dead when
    the next request comes.  A POST with a body after it is still answered
    (not 502), and so is a GET after that: the upstream was not marked down.
    (The POST is sent once the upstream has closed: a close racing the
    proxy's reuse of the connection can still cost a POST, whose streamed
    body is not sent twice, a 502.)"""
    with rig(["A"]) as (srv, (a,)):
        c = http.client.HTTPConnection(HOST, srv.port, timeout=deadline())
        try:
            for i in range(3):
                st, _, body = request(srv.port, "GET", "/pd/close-after", conn=c)
                check(st == 200 and body == b"closing", "close-after: %d %r" % (st, body))
                wait_until(lambda: a.conns_closed >= i + 1, deadline(),
                           "the upstream to close its connection")
                doc = echoed(srv.port, "POST", "/pd/echo", b"a body %d" % i,
                             {"Content-Type": "text/plain"}, conn=c)
                check(doc["method"] == "POST" and doc["body"] == "a body %d" % i,
                      "POST: %r" % doc)
                check(echoed(srv.port, "GET", "/pd/echo", conn=c)["tag"] == "A", "GET after")
            check(warned(srv, a.port) == 0, "the upstream was marked down:\n" + srv.tail())
        finally:
            c.close()


# ---- bodies of 1 GiB -------------------------------------------------------------------------

class Memory:
    """The proxy's VmRSS after a warm-up and its VmHWM (peak) since."""

    def __init__(self, srv):
        self.srv = srv
        st, body = upload(srv.port, MIB, chunked=False)
        check(st == 200 and body["body_ok"] is True, "warm-up upload %d %r" % (st, body))
        download(srv.port, MIB)
        self.rss = status_kib(srv.pid, "VmRSS")
        self.hwm = status_kib(srv.pid, "VmHWM")

    def check(self, what, took, size):
        hwm = status_kib(self.srv.pid, "VmHWM")
        grew = (hwm - self.rss) / 1024
        print("    %s: %d MiB in %.2f s (%.0f MiB/s); proxy VmRSS %d KiB before, VmHWM %d KiB "
              "before, %d KiB after (+%.1f MiB over the RSS before)"
              % (what, size // MIB, took, size / MIB / took, self.rss, self.hwm, hwm, grew),
              flush=True)
        if self.srv.sanitized():
            print("    (ASan or valgrind: the RSS bound is not checked)")
        else:
            check(grew < RSS_BOUND_MIB, "%s: the proxy's peak RSS grew by %.1f MiB" % (what, grew))


def upload(port, total, chunked):
    c = http.client.HTTPConnection(HOST, port, timeout=deadline() * 3)
    try:
        headers = {"Content-Type": "application/octet-stream"}
        if not chunked:
            headers["Content-Length"] = str(total)
        c.request("POST", "/up/echo?pattern=1", body=pattern_pieces(total), headers=headers,
                  encode_chunked=chunked)
        r = c.getresponse()
        data = r.read()
        return r.status, json.loads(data) if r.status == 200 else data
    finally:
        c.close()


def download(port, total):
    c = http.client.HTTPConnection(HOST, port, timeout=deadline() * 3)
    try:
        c.request("GET", "/down/download?n=%d" % total)
        r = c.getresponse()
        check(r.status == 200, "download: %d" % r.status)
        check(r.getheader("Content-Length") == str(total),
              "download: Content-Length %r" % r.getheader("Content-Length"))
        pc, buf = PatternCheck(), bytearray(MIB)
        while True:
            n = r.readinto(buf)
            if not n:
                break
            pc.feed(memoryview(buf)[:n])
        check(pc.count == total, "downloaded %d bytes of %d" % (pc.count, total))
        check(pc.finish(), "download differs from offset %r" % pc.bad)
    finally:
        c.close()


def streamed_upload(chunked):
    with rig(["A"]) as (srv, (a,)):
        mem = Memory(srv)
        total = big()
        t0 = time.monotonic()
        st, doc = upload(srv.port, total, chunked)
        took = time.monotonic() - t0
        check(st == 200, "upload: %d %r" % (st, doc))
        check(doc["body_len"] == total, "the upstream counted %d bytes of %d"
              % (doc["body_len"], total))
        check(doc["body_ok"] is True, "the upstream got a body differing from offset %r"
              % doc["body_ok"])
        if chunked:
            check(fields(doc, "Transfer-Encoding") == ["chunked"] and
                  not fields(doc, "Content-Length"), "framing up: %r" % doc["headers"])
        else:
            check(fields(doc, "Content-Length") == [str(total)] and
                  not fields(doc, "Transfer-Encoding"), "framing up: %r" % doc["headers"])
        mem.check("upload (%s)" % ("chunked" if chunked else "Content-Length"), took, total)


def case_upload_1gib_content_length(t):
    streamed_upload(chunked=False)


def case_upload_1gib_chunked(t):
    streamed_upload(chunked=True)


def case_download_1gib(t):
    with rig(["A"]) as (srv, (a,)):
        mem = Memory(srv)
        total = big()
        t0 = time.monotonic()
        download(srv.port, total)
        mem.check("download", time.monotonic() - t0, total)


# ---- headers ---------------------------------------------------------------------------------

HOP_REQUEST = (b"Connection: keep-alive, X-Hop-Req\r\nX-Hop-Req: secret\r\n"
               b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-Trail\r\nUpgrade: websocket\r\n"
               b"Proxy-Authorization: Basic dXNlcjpwYXNz\r\nProxy-Extra: 1\r\n"
               b"X-End-To-End: kept\r\n")
HOP_NAMES = ["connection", "x-hop-req", "keep-alive", "te", "trailer", "upgrade",
             "proxy-authorization", "proxy-extra"]


def raw_echo(srv, head, body=b""):
    c = Conn(srv.port)
    try:
        c.send(head + body)
        st, _, data, raw = c.response()
        check(st == 200, "status %d %r" % (st, data[:200]))
        return json.loads(data)
    finally:
        c.close()


def case_hop_by_hop_request_fields_dropped_forwarded_added(t):
    with rig(["A"]) as (srv, _):
        # GET with every hop-by-hop field and client-supplied forwarding fields.
        doc = raw_echo(srv, b"GET /h/echo HTTP/1.1\r\nHost: front.example:8443\r\n" + HOP_REQUEST +
                       b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n"
                       b"X-Forwarded-Host: spoofed.example\r\nVia: 1.0 fred\r\n\r\n")
        got = {k.lower() for k, _ in doc["headers"]}
        check(not got & set(HOP_NAMES), "hop-by-hop fields forwarded: %r" % doc["headers"])
        check(fields(doc, "X-End-To-End") == ["kept"], "end-to-end field: %r" % doc["headers"])
        check(fields(doc, "Host") == ["front.example:8443"], "Host: %r" % fields(doc, "Host"))
        check(fields(doc, "X-Forwarded-For") == ["203.0.113.7, 127.0.0.1"],
              "X-Forwarded-For: %r" % fields(doc, "X-Forwarded-For"))
        check(fields(doc, "X-Forwarded-Proto") == ["http"],
              "X-Forwarded-Proto: %r" % fields(doc, "X-Forwarded-Proto"))
        check(fields(doc, "X-Forwarded-Host") == ["front.example:8443"],
              "X-Forwarded-Host: %r" % fields(doc, "X-Forwarded-Host"))
        check(fields(doc, "Via") == ["1.0 fred, 1.1 corio"], "Via: %r" % fields(doc, "Via"))

        # Without forwarding fields of its own: the proxy's alone.
        doc = raw_echo(srv, b"GET /h/echo HTTP/1.1\r\nHost: plain.example\r\n\r\n")
        check(fields(doc, "X-Forwarded-For") == ["127.0.0.1"],
              "X-Forwarded-For of a client without one: %r" % fields(doc, "X-Forwarded-For"))
        check(fields(doc, "X-Forwarded-Proto") == ["http"] and
              fields(doc, "X-Forwarded-Host") == ["plain.example"] and
              fields(doc, "Via") == ["1.1 corio"], "forwarding fields: %r" % doc["headers"])

        # A chunked body: the upstream sees the proxy's own framing, once.
        doc = raw_echo(srv, b"POST /h/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n" +
                       HOP_REQUEST + b"\r\n", b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        check(doc["body"] == "hello world", "chunked body: %r" % doc["body"])
        check(fields(doc, "Transfer-Encoding") == ["chunked"] and not fields(doc, "Content-Length"),
              "framing of a chunked body: %r" % doc["headers"])
        check(not {k.lower() for k, _ in doc["headers"]} & set(HOP_NAMES),
              "hop-by-hop fields forwarded with a body: %r" % doc["headers"])
        # A Content-Length body: one Content-Length, no Transfer-Encoding.
        doc = raw_echo(srv, b"POST /h/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                       b"Connection: X-Hop-Req\r\nX-Hop-Req: 1\r\n\r\n", b"hello")
        check(doc["body"] == "hello" and fields(doc, "Content-Length") == ["5"] and
              not fields(doc, "Transfer-Encoding") and not fields(doc, "X-Hop-Req"),
              "a Content-Length body: %r" % doc)


def case_hop_by_hop_response_fields_dropped_via_added(t):
    with rig(["A"]) as (srv, _):
        c = Conn(srv.port)
        try:
            for _ in range(2):  # the connection goes on after it
                c.send(b"GET /r/hop-response HTTP/1.1\r\nHost: x\r\n\r\n")
                st, h, body, raw = c.response()
                check(st == 200 and body == b"hop body", "status %d body %r" % (st, body))
                got = raw_fields(raw)
                names = {k for k, _ in got}
                for n in ["x-hop-resp", "keep-alive", "trailer", "upgrade", "proxy-authenticate",
                          "proxy-extra"]:
                    check(n not in names, "%s passed to the client: %r" % (n, raw))
                conn = [v.lower() for k, v in got if k == "connection"]
                check(all(v in ("keep-alive", "close") for v in conn),
                      "Connection from upstream passed on: %r" % conn)
                check(h.get("x-end-to-end") == "kept" and h.get("x-upstream") == "A",
                      "end-to-end fields: %r" % raw)
                via = ", ".join(v for k, v in got if k == "via")
                check(via == "1.1 origin, 1.1 corio", "Via %r" % via)
                check([v for k, v in got if k == "transfer-encoding"] in ([], ["chunked"]),
                      "Transfer-Encoding %r" % raw)
        finally:
            c.close()


def case_every_connection_field_counts_both_ways(t):
    """Connection may come as several fields (RFC 9110 5.3): the fields any
    of them names are hop-by-hop, not only those the first one names."""
    with rig(["A"]) as (srv, _):
        c = Conn(srv.port)
        try:
            c.send(b"GET /cf/echo HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
                   b"X-Hop: secret\r\nConnection: X-Hop\r\nX-End-To-End: kept\r\n\r\n")
            st, _, body, raw = c.response()
            check(st == 200, "status %d %r" % (st, raw))
            doc = json.loads(body)
            check(not fields(doc, "X-Hop"), "X-Hop, named by the second Connection field, "
                  "reached the upstream: %r" % doc["headers"])
            check(not fields(doc, "Connection"), "Connection forwarded: %r" % doc["headers"])
            check(fields(doc, "X-End-To-End") == ["kept"], "end-to-end: %r" % doc["headers"])

            # The upstream's response: "Connection: keep-alive", then
            # "Connection: X-Other" and X-Other.  (The connection goes on.)
            c.send(b"GET /cf/two-connection HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body, raw = c.response()
            check(st == 200 and body == b"two", "status %d body %r" % (st, body))
            got = raw_fields(raw)
            check("x-other" not in {k for k, _ in got},
                  "X-Other, named by the second Connection field, reached the client: %r" % raw)
            check(h.get("x-kept") == "yes" and h.get("x-upstream") == "A",
                  "end-to-end fields: %r" % raw)
            check(all(v.lower() in ("keep-alive", "close") for k, v in got if k == "connection"),
                  "the upstream's Connection passed on: %r" % raw)
            c.send(b"GET /cf/echo HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, body, raw = c.response()
            check(st == 200 and json.loads(body)["tag"] == "A", "after: %d %r" % (st, raw))
        finally:
            c.close()


def case_repeated_forwarding_fields_are_joined(t):
    """Two X-Forwarded-For fields and two Via fields: each list is all of
    its fields' values in order, then the proxy's own entry."""
    with rig(["A"]) as (srv, _):
        doc = raw_echo(srv, b"GET /ff/echo HTTP/1.1\r\nHost: x\r\n"
                       b"X-Forwarded-For: 1.1.1.1\r\nVia: 1.0 first\r\n"
                       b"X-Forwarded-For: 2.2.2.2\r\nVia: 1.1 second\r\n\r\n")
        check(fields(doc, "X-Forwarded-For") == ["1.1.1.1, 2.2.2.2, 127.0.0.1"],
              "X-Forwarded-For: %r" % fields(doc, "X-Forwarded-For"))
        check(fields(doc, "Via") == ["1.0 first, 1.1 second, 1.1 corio"],
              "Via: %r" % fields(doc, "Via"))


# ---- upstream failures -----------------------------------------------------------------------

def case_upstream_timeout_is_504(t):
    with rig(["A"], "--upstream-timeout", "300ms") as (srv, (a,)):
        c = http.client.HTTPConnection(HOST, srv.port, timeout=deadline())
        try:
            t0 = time.monotonic()
            st, _, body = request(srv.port, "GET", "/t/hold?id=t1", conn=c)
            took = time.monotonic() - t0
            check(st == 504, "a silent upstream: %d %r" % (st, body))
            check(took >= 0.29, "504 after %.2f s: before the timeout" % took)
            print("    504 after %.3f s" % took)
            a.closed("t1", deadline())  # not pooled half-read: closed
            check(echoed(srv.port, "GET", "/t/echo", conn=c)["tag"] == "A",
                  "the client's connection after the 504")
        finally:
            c.close()


def bad_gateway(route):
    with rig(["A"]) as (srv, (a,)):
        c = http.client.HTTPConnection(HOST, srv.port, timeout=deadline())
        try:
            st, _, body = request(srv.port, "GET", "/b/" + route, conn=c)
            check(st == 502, "%s: %d %r" % (route, st, body))
            check(a.count() == 1, "%s: %d upstream requests" % (route, a.count()))
            check(echoed(srv.port, "GET", "/b/echo", conn=c)["tag"] == "A",
                  "the client's connection after the 502")
        finally:
            c.close()


def case_garbage_from_upstream_is_502(t):
    bad_gateway("garbage")


def case_upstream_closing_mid_head_is_502(t):
    bad_gateway("close-mid-headers")


def cut_short(srv, path, chunked):
    """The upstream dies mid-body: http.client must report IncompleteRead,
    and a raw client see its connection closed with the body unfinished."""
    c = http.client.HTTPConnection(HOST, srv.port, timeout=deadline())
    try:
        c.request("GET", path)
        r = c.getresponse()
        check(r.status == 200, "%s: status %d" % (path, r.status))
        check(r.getheader("Content-Length") == (None if chunked else "100000"),
              "%s: Content-Length %r" % (path, r.getheader("Content-Length")))
        try:
            data = r.read()
            raise CaseFailure("%s: a complete-looking body of %d bytes" % (path, len(data)))
        except http.client.IncompleteRead as e:
            check(len(e.partial) <= 5000, "%s: %d bytes" % (path, len(e.partial)))
    finally:
        c.close()
    raw = Conn(srv.port)
    try:
        raw.send(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        st, h, _ = raw.read_head()
        check(st == 200, "raw: status %d" % st)
        rest = bytearray(raw.buf)
        raw.buf.clear()
        raw.s.settimeout(deadline())
        try:
            while True:
                d = raw.s.recv(65536)
                if not d:
                    break
                rest += d
        except ConnectionResetError:
            pass  # a reset is a close too
        except socket.timeout:
            raise CaseFailure("%s: the connection is still open after %.0f s (%d bytes)"
                              % (path, deadline(), len(rest))) from None
        want = b"".join(pattern_pieces(5000))
        if chunked:
            check(not rest.endswith(b"0\r\n\r\n"), "%s: the last chunk arrived" % path)
            data, i = bytearray(), 0
            while True:
                j = rest.find(b"\r\n", i)
                if j < 0:
                    break
                size = int(rest[i:j], 16)
                if size == 0 or j + 2 + size > len(rest):
                    break
                data += rest[j + 2:j + 2 + size]
                i = j + 4 + size
            check(want.startswith(bytes(data)), "%s: relayed bytes differ" % path)
        else:
            check(len(rest) < 100000 and want.startswith(bytes(rest)),
                  "%s: %d bytes of 100000, or not the upstream's" % (path, len(rest)))
    finally:
        raw.close()


def case_upstream_dying_mid_body_closes_client(t):
    with rig(["A"]) as (srv, (a,)):
        cut_short(srv, "/c/cut-length?n=100000&m=5000", chunked=False)
        cut_short(srv, "/c/cut-chunked?m=5000", chunked=True)
        check(echoed(srv.port, "GET", "/c/echo")["tag"] == "A", "the proxy after the cuts")


def case_client_leaving_closes_upstream_request(t):
    with rig(["A"]) as (srv, (a,)):
        s = socket.create_connection((HOST, srv.port), timeout=deadline())
        s.sendall(b"GET /l/hold?id=gone HTTP/1.1\r\nHost: x\r\n\r\n")
        a.arrived("gone", deadline())
        t0 = time.monotonic()
        s.close()
        a.closed("gone", 2.0 * harness.SLOW)
        print("    the upstream saw its connection closed %.3f s after the client left"
              % (time.monotonic() - t0))
        # In mid-body too: a client that stops reading a large download and
        # leaves ends the upstream's connection.
        before = a.conns_closed
        s = socket.create_connection((HOST, srv.port), timeout=deadline())
        s.sendall(b"GET /l/download?n=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (256 * MIB))
        got = 0
        while got < MIB:
            d = s.recv(65536)
            check(d, "the download ended after %d bytes" % got)
            got += len(d)
        s.close()
        wait_until(lambda: a.conns_closed > before, 2.0 * harness.SLOW,
                   "the upstream's download connection to close")
        check(echoed(srv.port, "GET", "/l/echo")["tag"] == "A", "the proxy after the clients left")


# ---- a response without a length -------------------------------------------------------------

def read_chunk(c):
    """One chunk of a chunked body from Conn c: its data (b"" for the last
    chunk, whose trailer is read too)."""
    size = int(c.read_until(b"\r\n").split(b";")[0], 16)
    if size == 0:
        while c.read_until(b"\r\n") != b"\r\n":
            pass
        return b""
    data = c.read_exact(size)
    check(c.read_exact(2) == b"\r\n", "chunk not followed by CRLF")
    return data


def case_events_head_sent_before_first_body_byte(t):
    """Server-sent events: the upstream sends a chunked head and no body
    byte until told.  The client gets the head at once (not with the first
    event), then each event as it comes, and the connection goes on."""
    with rig(["A"]) as (srv, (a,)):
        bound = 2.0 * harness.SLOW  # the upstream holds the first event for up to 30 s
        c = Conn(srv.port, timeout=bound)
        try:
            c.send(b"GET /ev/events?id=e1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                   b"\r\n")
            a.arrived("e1", deadline())
            t0 = time.monotonic()
            try:
                st, h, raw = c.read_head()
            except socket.timeout:
                raise CaseFailure("no response head within %.1f s of the upstream's (its body "
                                  "held back)" % bound) from None
            print("    head %.3f s after the upstream sent its own" % (time.monotonic() - t0))
            c.s.settimeout(deadline())
            check(st == 200, "status %d %r" % (st, raw))
            check(h.get("content-type", "").startswith("text/event-stream"),
                  "Content-Type %r" % h.get("content-type"))
            check(h.get("transfer-encoding") == "chunked" and "content-length" not in h,
                  "framing: %r" % raw)
            a.release("e1.1")
            check(read_chunk(c) == b"data: one\n\n", "the first event")
            a.release("e1.2")
            check(read_chunk(c) == b"data: two\n\n", "the second event")
            check(read_chunk(c) == b"", "the last chunk")
            c.send(b"GET /ev/echo HTTP/1.1\r\nHost: x\r\n\r\n")
            st, _, body, raw = c.response()
            check(st == 200 and json.loads(body)["tag"] == "A", "after the events: %d %r"
                  % (st, raw))
        finally:
            a.release("e1.1")
            a.release("e1.2")
            c.close()


# ---- HEAD, 204, 304 --------------------------------------------------------------------------

def case_head_keeps_length_no_body(t):
    with rig(["A"]) as (srv, (a,)):
        c = Conn(srv.port)
        try:
            c.send(b"HEAD /x/download?n=12345 HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, _ = c.read_head()
            check(st == 200 and h.get("content-length") == "12345", "HEAD: %d %r" % (st, h))
            check("transfer-encoding" not in h, "HEAD: %r" % h)
            check(a.last()[0] == "HEAD", "the upstream got %r" % (a.last()[:2],))
            # Whatever follows on the connection must be the next response:
            # a body after the HEAD would come first.
            c.send(b"GET /x/echo HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body, raw = c.response()
            check(st == 200 and json.loads(body)["method"] == "GET",
                  "after HEAD: %d %r" % (st, raw[:100]))
            c.send(b"GET /x/download?n=12345 HTTP/1.1\r\nHost: x\r\n\r\n")
            st, h, body, _ = c.response()
            check(st == 200 and body == b"".join(pattern_pieces(12345)), "GET: %d" % st)
        finally:
            c.close()


def case_204_and_304_pass_without_body(t):
    with rig(["A"]) as (srv, (a,)):
        c = Conn(srv.port)
        try:
            for path, extra, code in [("/s/status?code=204", b"", 204),
                                      ("/s/status?code=304", b"", 304),
                                      ("/s/download?n=5000", b'If-None-Match: "v1"\r\n', 304)]:
                c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path.encode(), extra))
                st, h, _ = c.read_head()
                check(st == code, "%s: %d, want %d" % (path, st, code))
                check("transfer-encoding" not in h, "%s: %r" % (path, h))
                check("content-length" not in h, "%s: %r" % (path, h))
                if code == 304:
                    check(h.get("etag") == '"v1"', "%s: ETag %r" % (path, h.get("etag")))
                c.send(b"GET /s/echo HTTP/1.1\r\nHost: x\r\n\r\n")
                st, h, body, raw = c.response()
                check(st == 200 and json.loads(body)["tag"] == "A",
                      "after %d: %d %r" % (code, st, raw[:100]))
        finally:
            c.close()


def case_204_and_304_with_content_length_answered_at_once(t):
    """A 304 and a 204 carrying "Content-Length: 1234" and no body: no body
    is waited for (RFC 9110 6.4.1), so the answer comes at once, not after
    --upstream-timeout, and both connections go on."""
    with rig(["A"], "--upstream-timeout", "5s") as (srv, (a,)):
        limit = min(2.0 * harness.SLOW, 4.5)  # under the 5 s a wait for the body would take
        c = Conn(srv.port, timeout=limit)
        try:
            for code in (304, 204):
                path = "/sl/status?code=%d&length=1234" % code
                t0 = time.monotonic()
                c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                try:
                    st, h, raw = c.read_head()
                except socket.timeout:
                    raise CaseFailure("%s: no answer within %.1f s" % (path, limit)) from None
                took = time.monotonic() - t0
                check(st == code, "%s: %d, want %d: %r" % (path, st, code, raw))
                check(took < limit, "%s: answered after %.2f s" % (path, took))
                check("transfer-encoding" not in h, "%s: %r" % (path, raw))
                if code == 204:
                    check("content-length" not in h, "%s: %r" % (path, raw))
                else:
                    check(h.get("etag") == '"v1"', "%s: ETag %r" % (path, h.get("etag")))
                # A stray body byte would come before the next response and spoil it.
                c.send(b"GET /sl/echo HTTP/1.1\r\nHost: x\r\n\r\n")
                st, h, body, raw = c.response()
                check(st == 200 and json.loads(body)["tag"] == "A",
                      "after %d: %d %r" % (code, st, raw[:100]))
            # The upstream's connection was pooled after each (no body to wait for).
            check(a.accepts == 1, "the upstream saw %d connections" % a.accepts)
        finally:
            c.close()


# ---- shutdown --------------------------------------------------------------------------------

def case_sigterm_drains_inflight_request(t):
    a = Upstream("A")
    srv = Server(ARGS.proxy, "--upstream", a.url)
    try:
        result = {}

        def client():
            try:
                result["r"] = request(srv.port, "GET", "/d/hold?id=drain")
            except Exception as e:  # noqa: BLE001 - checked below
                result["e"] = e

        th = threading.Thread(target=client, daemon=True)
        th.start()
        a.arrived("drain", deadline())
        srv.proc.send_signal(signal.SIGTERM)

        def refused():
            try:
                socket.create_connection((HOST, srv.port), timeout=deadline()).close()
                return False
            except ConnectionRefusedError:
                return True
            except ConnectionResetError:
                return False  # the listening socket closed with this connect queued

        wait_until(refused, deadline(), "new connections to be refused")
        check(th.is_alive() and not a.is_closed("drain"),
              "the in-flight request ended before the upstream answered: %r" % result)
        a.release("drain")
        th.join(deadline())
        check("r" in result, "the in-flight request: %r" % result)
        st, h, body = result["r"]
        check(st == 200 and body == b"held drain", "in flight across SIGTERM: %d %r" % (st, body))
        rc = srv.terminate(signal_it=False)
        found = harness.claim_reports(srv)
        check(rc == 0 and not found, "the proxy exited %r after the drain%s:\n%s"
              % (rc, " with a sanitizer report" if found else "",
                 "\n".join(found[:60]) or srv.tail()))
    finally:
        srv.kill()
        a.stop()


# ---- main ------------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True)
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    harness.raise_fd_limit()
    cases = harness.pick([v for k, v in globals().items()
                          if k.startswith("case_") and callable(v)], ARGS.k)

    def start():
        t = Servers()
        t.hello = Server(ARGS.hello)
        return t

    return harness.run_with_servers(cases, start)


if __name__ == "__main__":
    sys.exit(main())
