#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gzip response compression end to end, against examples/compress
(/data.json: 10 KiB of JSON; /events?n=N: server-sent events, one every
--interval; /secret.json: never compressed), with real clients:

- curl --compressed decodes /data.json to the bytes an identity request
  gets, and streams /events;
- Python's gzip and zlib decode what raw sockets read: a compressed body
  whose Content-Length is its compressed size, "Vary: Accept-Encoding"
  whether compressed or not, HEAD with the fields of GET but no
  Content-Length, HTTP/1.0 keeping its connection;
- Accept-Encoding variants (q-values, "*", identity, x-gzip, refusals), all
  pipelined on one connection, each answered as RFC 9110 12.5.3 says;
- server-sent events: each event is its own chunk that decodes on its own
  the moment it arrives, a full interval before the next (a buffering
  compressor would deliver them together at the end), and the gzip stream
  ends whole;
- a response that opts out (corio_res_no_compress) is never compressed.

    test_http_compress.py --compress build/examples/compress/compress [-k NAME]
                          [--wrap "valgrind ..." [--slow 10]]

One shared server, which must exit 0 on SIGTERM with no sanitizer report.
Without curl its cases print SKIP.  Every wait has a deadline.  Python
standard library (and curl).
"""
import argparse
import gzip
import http.client
import json
import shutil
import subprocess
import sys
import zlib

import harness
from harness import DEADLINE, HOST, Conn, check

ARGS = None
INTERVAL_MS = 300  # the server's --interval between two events


def req(method, path, ae=None, version="1.1", extra=()):
    lines = ["%s %s HTTP/%s" % (method, path, version), "Host: x"]
    if ae is not None:
        lines.append("Accept-Encoding: %s" % ae)
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def identity_body(port, path="/data.json"):
    """The body as http.client gets it (it sends no Accept-Encoding)."""
    c = http.client.HTTPConnection(HOST, port, timeout=DEADLINE)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        check(r.status == 200 and r.getheader("Content-Encoding") is None, r.getheaders())
        check(r.getheader("Vary") == "Accept-Encoding", r.getheaders())
        return body
    finally:
        c.close()


def event(i):
    return b'id: %d\ndata: {"tick":%d,"status":"ok"}\n\n' % (i, i)


def curl(*args):
    """curl -sS ARGS...: its stdout, or None (and a SKIP line) without curl."""
    if not shutil.which("curl"):
        print("    SKIP: no curl", flush=True)
        return None
    p = subprocess.run(["curl", "-sS", "--max-time", str(int(DEADLINE)), *args],
                       capture_output=True, timeout=DEADLINE * 2)
    check(p.returncode == 0, "curl %s: exit %d: %r" % (" ".join(args), p.returncode, p.stderr))
    return p.stdout


# ---- whole bodies -------------------------------------------------------------------------------

def case_curl_compressed_decodes_to_the_identity_body(t):
    plain = identity_body(t.srv.port)
    check(len(plain) == 10240 and isinstance(json.loads(plain), list), len(plain))
    url = "http://%s:%d/data.json" % (HOST, t.srv.port)
    out = curl("--compressed", "-D", "-", "-w", "\n%{size_download}", url)
    if out is None:
        return
    head, rest = out.split(b"\r\n\r\n", 1)
    body, size = rest.rsplit(b"\n", 1)
    fields = head.decode("latin-1").lower()
    check("\r\ncontent-encoding: gzip" in fields and "\r\nvary: accept-encoding" in fields, head)
    check(body == plain, "curl --compressed decoded %d bytes, not the identity body" % len(body))
    check(int(size) < len(plain) // 3, "%s bytes on the wire for 10240 of JSON" % size)


def case_python_gzip_decodes_body_sized_by_content_length(t):
    plain = identity_body(t.srv.port)
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/data.json", "gzip"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and hdrs.get("content-encoding") == "gzip", raw)
        check(hdrs.get("vary") == "Accept-Encoding", raw)
        check(int(hdrs["content-length"]) == len(body), raw)
        check(body[:2] == b"\x1f\x8b", "no gzip magic: %r" % body[:4])
        check(gzip.decompress(body) == plain, "gzip.decompress differs")
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        check(d.decompress(body) == plain and d.eof and d.unused_data == b"", "zlib: not whole")
    finally:
        c.close()


# (Accept-Encoding value or None for no field, compressed?)
VARIANTS = [
    (None, False),
    ("gzip", True),
    ("gzip, deflate, br, zstd", True),  # what browsers send
    ("x-gzip", True),
    ("GZIP;Q=0.5", True),
    ("*", True),
    ("br;q=1.0, gzip;q=0.8, *;q=0.1", True),
    ("gzip;q=0.7, identity;q=0.3", True),
    ("identity;q=0, gzip", True),
    ("gzip;q=0", False),
    ("gzip;q=0.0, *", False),
    ("*;q=0", False),
    ("gzip;q=0.3, identity;q=0.7", False),
    ("gzip;q=0.5, *", False),
    ("gzip;q=1.5", False),  # malformed weight: refused
    ("identity", False),
    ("br, deflate", False),
    ("", False),  # "no coding wanted"
]


def case_accept_encoding_variants_pipelined(t):
    plain = identity_body(t.srv.port)
    c = Conn(t.srv.port)
    try:
        c.send(b"".join(req("GET", "/data.json", ae) for ae, _ in VARIANTS))
        for ae, want in VARIANTS:
            status, hdrs, body, raw = c.response()
            got = hdrs.get("content-encoding") == "gzip"
            check(status == 200 and got == want,
                  "Accept-Encoding %r: compressed %s, expected %s" % (ae, got, want))
            check(hdrs.get("vary") == "Accept-Encoding", "Accept-Encoding %r: %r" % (ae, raw))
            check((gzip.decompress(body) if got else body) == plain, "Accept-Encoding %r" % ae)
    finally:
        c.close()


def case_head_has_get_fields_but_no_length(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("HEAD", "/data.json", "gzip") + req("GET", "/data.json", "gzip"))
        _, head, _, _ = c.response(head=True)
        _, get, body, _ = c.response()
        check(head.get("content-encoding") == "gzip" and head.get("vary") == "Accept-Encoding",
              head)
        check("content-length" not in head and "transfer-encoding" not in head, head)
        for k in ("content-type", "content-encoding", "vary", "cache-control"):
            check(head.get(k) == get.get(k), "HEAD's %s %r, GET's %r" % (k, head.get(k), get.get(k)))
        check(len(gzip.decompress(body)) == 10240, "GET after HEAD")
    finally:
        c.close()


def case_http10_compressed_with_length_and_kept_alive(t):
    plain = identity_body(t.srv.port)
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/data.json", "gzip", "1.0", ["Connection: keep-alive"])
               + req("GET", "/data.json", None, "1.0"))
        status, hdrs, body, raw = c.response()
        check(hdrs.get("content-encoding") == "gzip" and hdrs.get("connection") == "keep-alive",
              raw)
        check(int(hdrs["content-length"]) == len(body) and gzip.decompress(body) == plain, raw)
        status, hdrs, body, raw = c.response()  # HTTP/1.0 without keep-alive: then closed
        check(hdrs.get("content-encoding") is None and body == plain, raw)
        c.expect_eof()
    finally:
        c.close()


def case_secret_never_compressed(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/secret.json?q=" + "a" * 1500, "gzip"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and "content-encoding" not in hdrs and "vary" not in hdrs, raw)
        check(json.loads(body)["token"] == "3f2a9c81d4e7b605", body[:80])
    finally:
        c.close()


# ---- streams --------------------------------------------------------------------------------------

def read_chunk(c):
    """One chunk of a chunked body: its bytes; b"" for the last."""
    size = int(c.read_until(b"\r\n").split(b";")[0], 16)
    data = c.read_exact(size) if size else b""
    check(c.read_exact(2) == b"\r\n", "chunk not followed by CRLF")
    return data


def case_each_event_is_a_chunk_that_decodes_at_once(t):
    n = 3
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/events?n=%d" % n, "gzip"))
        status, hdrs, raw = c.read_head()
        check(status == 200 and hdrs.get("content-encoding") == "gzip", raw)
        check(hdrs.get("transfer-encoding") == "chunked" and hdrs.get("vary") == "Accept-Encoding",
              raw)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        # (That each arrives when written, not with the stream's end, is
        # test_http_compress.c's: there the handler waits for the client.)
        for i in range(n):
            data = read_chunk(c)
            # The chunk alone decodes to the whole event: nothing held back.
            check(d.decompress(data) == event(i), "chunk %d decodes to something else" % i)
            check(data.endswith(b"\x00\x00\xff\xff"), "chunk %d: no sync flush marker" % i)
        tail = b""
        while True:  # the gzip stream's end, then the last chunk
            data = read_chunk(c)
            if not data:
                break
            tail += data
        check(d.decompress(tail) == b"" and d.eof, "no whole gzip end")
        check(d.unused_data == b"", "bytes after the gzip stream")
        # The connection goes on.
        c.send(req("GET", "/data.json", "gzip"))
        status, hdrs, body, raw = c.response()
        check(status == 200 and len(gzip.decompress(body)) == 10240, raw)
    finally:
        c.close()


def case_curl_streams_events(t):
    out = curl("--compressed", "-N", "http://%s:%d/events?n=3" % (HOST, t.srv.port))
    if out is None:
        return
    check(out == event(0) + event(1) + event(2), out)


def case_http10_stream_close_delimited_and_compressed(t):
    c = Conn(t.srv.port)
    try:
        c.send(req("GET", "/events?n=2", "gzip", "1.0"))
        status, hdrs, raw = c.read_head()
        check(hdrs.get("content-encoding") == "gzip" and "transfer-encoding" not in hdrs, raw)
        body = c.read_to_eof()
        check(gzip.decompress(body) == event(0) + event(1), body[:40])
    finally:
        c.close()


def case_client_leaving_mid_stream_leaves_server_serving(t):
    for _ in range(20):
        c = Conn(t.srv.port)
        c.send(req("GET", "/events", "gzip"))
        c.read_head()
        read_chunk(c)
        c.close()  # mid-stream: the handler is cancelled, its deflate stream freed
    check(len(gzip.decompress(gzip_body_of(t.srv.port))) == 10240, "serving after")


def gzip_body_of(port):
    c = Conn(port)
    try:
        c.send(req("GET", "/data.json", "gzip"))
        return c.response()[2]
    finally:
        c.close()


# ---- main -----------------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS, DEADLINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--compress", required=True, help="the examples/compress binary")
    ARGS = harness.parse_args(ap)
    DEADLINE = harness.DEADLINE
    cases = harness.pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                         ARGS.k)

    def start():
        t = Servers()
        t.srv = harness.Server(ARGS.compress, "--interval", "%dms" % INTERVAL_MS)
        return t

    return harness.run_with_servers(cases, start)


if __name__ == "__main__":
    sys.exit(main())
