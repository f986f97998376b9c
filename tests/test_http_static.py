#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""File responses (framework/http/file.c) against examples/static, with real clients.

    test_http_static.py --static build/examples/static/static [-k NAME] [--wrap "valgrind ..."]

A temporary tree holds text files of several types, a 5 MiB random file, a
directory with an index, a dot-file, a FIFO, symlinks that stay inside and
symlinks that lead out (to a directory holding a secret).  Every case runs
against three servers on 127.0.0.1 (ports read from their logs): the
default one (corio_res_file_under: openat2 RESOLVE_BENEATH, sendfile), one
started with --realpath (corio_http_file_path + corio_res_file), and one
serving TLS (pread + stream writes; skipped without the openssl command).  Cases check bodies
byte for byte, Content-Type, validators and 304, the three Range forms, 206,
416 and what is ignored, HEAD, pipelining around sendfile, a slow reader (the
sendfile EAGAIN fallback), a client leaving mid-body, and that every way out
of the root is refused.  Every wait has a deadline; each server runs in its
own process group, is killed in a finally block, and must exit 0 on SIGTERM
(under --wrap valgrind --error-exitcode=N that means no error).  Python
standard library only.
"""
import argparse
import email.utils
import hashlib
import http.client
import os
import re
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import harness
from harness import (DEADLINE, HOST, MIB, check, kill_all, make_cert, pick, run_case,
                     server_died, stop_cleanly, summary)

MTIME = 1577880000  # 2020-01-01 12:00:00 UTC: every file's mtime, so validators are known
SECRET = b"TOP SECRET outside the root\n"

ARGS = None
CLIENT_TLS = None  # an ssl.SSLContext while the TLS server is under test


# ---- the tree -------------------------------------------------------------------------------

class Tree:
    """base/root is served; base/outside must never be."""

    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="corio-static-")
        self.root = os.path.join(self.base, "root")
        out = os.path.join(self.base, "outside")
        os.makedirs(os.path.join(self.root, "sub", "deeper"))
        os.makedirs(os.path.join(self.root, "a"))
        os.makedirs(os.path.join(self.root, "empty-dir"))
        os.makedirs(os.path.join(self.root, "sp ace"))
        os.makedirs(out)
        self.files = {
            "hello.txt": b"Hello, static world!\n",
            "style.css": b"body { color: red }\n",
            "app.js": b"console.log('hi');\n",
            "data.json": b'{"a": 1}\n',
            "pixel.PNG": bytes.fromhex("89504e470d0a1a0a") + b"\0" * 32,
            "font.woff2": b"wOF2" + b"\1" * 60,
            "noext": b"\0\1\2\3",
            "empty.txt": b"",
            "sub/index.html": b"<!doctype html><title>sub</title>\n",
            "sub/page.html": b"<p>page</p>\n",
            "sub/deeper/x.txt": b"deeper\n",
            "a/b.txt": b"a/b\n",
            ".secret": b"dot-file\n",
            "%2e%2e": b"a file literally named %2e%2e\n",
            "big.bin": os.urandom(5 * MIB),
            "mid.bin": os.urandom(200 * 1024),
        }
        for name, data in self.files.items():
            with open(os.path.join(self.root, name), "wb") as f:
                f.write(data)
        with open(os.path.join(out, "secret.txt"), "wb") as f:
            f.write(SECRET)
        # Symlinks: out of the root (relative dir, absolute file), inside (relative, with
        # a ".." that stays inside), and absolute-but-inside.
        os.symlink("../outside", os.path.join(self.root, "symlink-out"))
        os.symlink(os.path.join(out, "secret.txt"), os.path.join(self.root, "file-out.txt"))
        os.symlink("sub/page.html", os.path.join(self.root, "inside-link.html"))
        os.symlink("../hello.txt", os.path.join(self.root, "sub", "up-link.txt"))
        os.symlink("sub", os.path.join(self.root, "subdir-link"))
        os.symlink(os.path.join(self.root, "hello.txt"), os.path.join(self.root, "abs-inside.txt"))
        os.mkfifo(os.path.join(self.root, "fifo"))
        for d, dirs, names in os.walk(self.root):
            for n in names:
                p = os.path.join(d, n)
                if not os.path.islink(p):
                    os.utime(p, (MTIME, MTIME))
        self.lastmod = email.utils.formatdate(MTIME, usegmt=True)

    def remove(self):
        shutil.rmtree(self.base, ignore_errors=True)


# ---- servers and clients ------------------------------------------------------------------------

def start_server(root, *args):
    """examples/static serving root, under ARGS.wrap; SIGTERM goes to the
    whole process group (a --wrap tracer passes it on)."""
    return harness.Server(ARGS.static, "--root", root, *args, env_drop=("CORIO_", "STATIC_"),
                          wrap=shlex.split(ARGS.wrap), start_timeout=DEADLINE * ARGS.slow,
                          signal_group=True, name=" ".join(["static", *args]).strip())


class Conn(harness.Conn):
    """A raw connection (TLS while CLIENT_TLS is set) whose responses must
    carry a Content-Length."""

    def __init__(self, port, rcvbuf=None):
        super().__init__(port, rcvbuf, timeout=DEADLINE * ARGS.slow, tls=CLIENT_TLS)

    def get(self, target, headers=(), method="GET"):
        extra = "".join("%s: %s\r\n" % h for h in headers)
        self.send(("%s %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (method, target, extra)).encode())

    def response(self, head=False):
        """One response: (status, {lower-case name: value}, body)."""
        status, hdrs, raw = self.read_head()
        if head or status in (204, 304):
            check("content-length" not in hdrs or head, "%d with a Content-Length" % status)
            return status, hdrs, b""
        check("content-length" in hdrs, "no Content-Length in %r" % raw)
        return status, hdrs, self.read_exact(int(hdrs["content-length"]))


def http_conn(port):
    if CLIENT_TLS:
        return http.client.HTTPSConnection(HOST, port, timeout=DEADLINE * ARGS.slow,
                                           context=CLIENT_TLS)
    return http.client.HTTPConnection(HOST, port, timeout=DEADLINE * ARGS.slow)


def fetch(port, target, headers=(), method="GET"):
    """One request on a new connection: (status, headers, body)."""
    c = Conn(port)
    try:
        c.get(target, headers, method)
        return c.response(head=(method == "HEAD"))
    finally:
        c.close()


# ---- cases ----------------------------------------------------------------------------------------

def case_content_and_type(t, port):
    want = {
        "/hello.txt": "text/plain; charset=utf-8",
        "/style.css": "text/css; charset=utf-8",
        "/app.js": "text/javascript; charset=utf-8",
        "/data.json": "application/json",
        "/pixel.PNG": "image/png",
        "/font.woff2": "font/woff2",
        "/noext": "application/octet-stream",
        "/empty.txt": "text/plain; charset=utf-8",
        "/sub/page.html": "text/html; charset=utf-8",
        "/a/b.txt": "text/plain; charset=utf-8",
        "/mid.bin": "application/octet-stream",
    }
    c = http_conn(port)
    try:
        for target, ctype in want.items():  # one keep-alive connection for all
            c.request("GET", target)
            r = c.getresponse()
            body = r.read()
            check(r.status == 200, "%s: %d" % (target, r.status))
            check(body == t.tree.files[target[1:]], "%s: wrong body" % target)
            check(r.getheader("Content-Type") == ctype,
                  "%s: Content-Type %r" % (target, r.getheader("Content-Type")))
            check(r.getheader("Content-Length") == str(len(body)), "%s: length" % target)
            check(r.getheader("Last-Modified") == t.tree.lastmod, "%s: Last-Modified %r"
                  % (target, r.getheader("Last-Modified")))
            check(re.fullmatch(r'W/"%x-[0-9a-f]+"' % len(body), r.getheader("ETag") or ""),
                  "%s: ETag %r" % (target, r.getheader("ETag")))
            check(r.getheader("Accept-Ranges") == "bytes", "%s: no Accept-Ranges" % target)
    finally:
        c.close()


def case_directory_index_and_redirect(t, port):
    st, h, body = fetch(port, "/sub/")
    check(st == 200 and body == t.tree.files["sub/index.html"], "/sub/: %d" % st)
    check(h["content-type"] == "text/html; charset=utf-8", "/sub/: %r" % h["content-type"])
    st, h, _ = fetch(port, "/sub?x=1")
    check(st == 301 and h.get("location") == "/sub/?x=1", "/sub?x=1: %d %r" % (st, h))
    st, h, body = fetch(port, "/subdir-link/")  # a symlinked directory inside the root
    check(st == 200 and body == t.tree.files["sub/index.html"], "/subdir-link/: %d" % st)
    for target in ("/", "/empty-dir/", "/sub/deeper/", "/hello.txt/", "/nope.txt", "/sub/nope/"):
        st, _, _ = fetch(port, target)
        check(st == 404, "%s: %d, want 404 (no index, no listing)" % (target, st))


def case_redirect_stays_on_this_site(t, port):
    # The directory redirect's Location comes from the decoded, normalised path, never
    # from the raw target: an absolute-form target must not send the browser to its
    # host, and "//sub" must not become "//sub/" (a scheme-relative URL: host "sub").
    want = {
        "http://evil.example/sub": "/sub/",
        "http://evil.example//sub?x=1": "/sub/?x=1",
        "//sub": "/sub/",
        "///sub": "/sub/",
        "//sub//deeper": "/sub/deeper/",
        "//evil.example/%2e/sub": None,  # "." is refused (404): no redirect at all
        "/sp%20ace": "/sp%20ace/",  # re-encoded
        "//sp%20ace?a=%22b%22": "/sp%20ace/?a=%22b%22",
        "/sub?q=<x>": "/sub/?q=%3Cx%3E",
    }
    for target, loc in want.items():
        st, h, _ = fetch(port, target)
        got = h.get("location")
        if loc is None:
            check(st == 404 and got is None, "%s: %d %r, want 404" % (target, st, got))
        else:
            check(st == 301 and got == loc, "%s: %d %r, want 301 %r" % (target, st, got, loc))


def case_conditional_304(t, port):
    st, h, body = fetch(port, "/hello.txt")
    etag, lm = h["etag"], h["last-modified"]
    strong = etag[2:]
    older = email.utils.formatdate(MTIME - 3600, usegmt=True)
    newer = email.utils.formatdate(MTIME + 3600, usegmt=True)
    rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(MTIME))
    asctime = time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(MTIME))
    cases = [
        ([("If-None-Match", etag)], 304),
        ([("If-None-Match", strong)], 304),  # weak comparison
        ([("If-None-Match", '"nope", %s' % etag)], 304),
        ([("If-None-Match", "*")], 304),
        ([("If-None-Match", '"nope"')], 200),
        ([("If-Modified-Since", lm)], 304),
        ([("If-Modified-Since", newer)], 304),
        ([("If-Modified-Since", rfc850)], 304),
        ([("If-Modified-Since", asctime)], 304),
        ([("If-Modified-Since", older)], 200),
        ([("If-Modified-Since", "yesterday")], 200),
        ([("If-None-Match", '"nope"'), ("If-Modified-Since", lm)], 200),  # INM decides
    ]
    c = Conn(port)
    try:
        for headers, want in cases:
            c.get("/hello.txt", headers)
            st, h, body = c.response()  # also checks a 304 carries no body or length
            check(st == want, "%r: %d, want %d" % (headers, st, want))
            if st == 304:
                check(h.get("etag") == etag and h.get("last-modified") == lm,
                      "304 without validators: %r" % h)
            else:
                check(body == t.tree.files["hello.txt"], "%r: body" % headers)
        c.get("/hello.txt", [("If-None-Match", etag)], method="HEAD")
        st, _, _ = c.response(head=True)
        check(st == 304, "HEAD with If-None-Match: %d" % st)
        c.get("/hello.txt")  # the connection is still in step
        st, _, body = c.response()
        check(st == 200 and body == t.tree.files["hello.txt"], "after 304s: %d" % st)
    finally:
        c.close()


def case_ranges_206(t, port):
    big = t.tree.files["big.bin"]
    size = len(big)
    forms = [
        ("bytes=10-19", 10, 19),
        ("bytes=100-", 100, size - 1),
        ("bytes=-50", size - 50, size - 1),
        ("bytes=0-0", 0, 0),
        ("bytes=%d-%d" % (size - 1, size + 1000), size - 1, size - 1),  # end clamped
        ("bytes=-%d" % (size * 2), 0, size - 1),  # suffix longer than the file
        ("bytes=1234567-4567890", 1234567, 4567890),  # large: sendfile from an offset
        ("BYTES=5-9", 5, 9),
        (" bytes=5-9 ", 5, 9),
    ]
    c = Conn(port)
    try:
        for rng, a, b in forms:
            c.get("/big.bin", [("Range", rng)])
            st, h, body = c.response()
            check(st == 206, "%s: %d" % (rng, st))
            check(h.get("content-range") == "bytes %d-%d/%d" % (a, b, size),
                  "%s: Content-Range %r" % (rng, h.get("content-range")))
            check(body == big[a:b + 1], "%s: wrong bytes" % rng)
        c.get("/hello.txt", [("Range", "bytes=-6")])  # small file: the arena path
        st, h, body = c.response()
        check(st == 206 and body == t.tree.files["hello.txt"][-6:], "small range: %d %r"
              % (st, body))
        c.get("/big.bin", [("Range", "bytes=-4")], method="HEAD")
        st, h, _ = c.response(head=True)
        check(st == 206 and h["content-length"] == "4", "HEAD range: %d %r" % (st, h))
    finally:
        c.close()


def case_ranges_ignored_200_and_416(t, port):
    size = len(t.tree.files["mid.bin"])
    c = Conn(port)
    try:
        for rng in ("bytes=0-1,5-6", "bytes=5-2", "items=0-1", "bytes=x-1", "bytes=", "bytes=1"):
            c.get("/mid.bin", [("Range", rng)])
            st, h, body = c.response()
            check(st == 200 and body == t.tree.files["mid.bin"] and "content-range" not in h,
                  "%r: %d, want the whole file with 200" % (rng, st))
        for rng in ("bytes=%d-" % size, "bytes=%d-%d" % (size + 5, size + 9), "bytes=-0",
                    "bytes=99999999999999999999999-"):
            c.get("/mid.bin", [("Range", rng)])
            st, h, body = c.response()
            check(st == 416, "%r: %d, want 416" % (rng, st))
            check(h.get("content-range") == "bytes */%d" % size,
                  "%r: Content-Range %r" % (rng, h.get("content-range")))
        c.get("/empty.txt", [("Range", "bytes=0-")])
        st, h, _ = c.response()
        check(st == 416 and h.get("content-range") == "bytes */0", "empty file: %d" % st)
        # If-Range: a date equal to Last-Modified keeps the range; an entity tag (weak,
        # so never a strong match) or another date sends everything.
        st, h, _ = fetch(port, "/mid.bin")
        for if_range, want in ((h["last-modified"], 206), (h["etag"], 200),
                               (email.utils.formatdate(MTIME - 1, usegmt=True), 200)):
            c.get("/mid.bin", [("Range", "bytes=0-9"), ("If-Range", if_range)])
            st, _, body = c.response()
            check(st == want, "If-Range %r: %d, want %d" % (if_range, st, want))
            check(len(body) == (10 if want == 206 else size), "If-Range %r: body" % if_range)
    finally:
        c.close()


def case_head(t, port):
    c = Conn(port)
    try:
        for target in ("/hello.txt", "/big.bin", "/sub/"):
            name = "sub/index.html" if target == "/sub/" else target[1:]
            c.get(target, method="HEAD")
            st, h, _ = c.response(head=True)
            check(st == 200 and h["content-length"] == str(len(t.tree.files[name])),
                  "HEAD %s: %d %r" % (target, st, h))
        c.get("/hello.txt")  # no body was sent for the HEADs: still in step
        st, _, body = c.response()
        check(st == 200 and body == t.tree.files["hello.txt"], "after HEAD: %d" % st)
    finally:
        c.close()


def case_5mib_byte_exact(t, port):
    big = t.tree.files["big.bin"]
    c = http_conn(port)
    try:
        for _ in range(2):
            c.request("GET", "/big.bin")
            r = c.getresponse()
            body = r.read()
            check(r.status == 200 and len(body) == len(big), "%d, %d bytes" % (r.status,
                                                                              len(body)))
            check(hashlib.sha256(body).digest() == hashlib.sha256(big).digest(), "bytes differ")
    finally:
        c.close()


def case_pipelined_around_sendfile(t, port):
    """Small (arena), large (sendfile), small, range: answers in order, bytes exact."""
    c = Conn(port)
    try:
        c.send(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /mid.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=-70000\r\n\r\n"
               b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /data.json HTTP/1.1\r\nHost: x\r\n\r\n")
        f = t.tree.files
        for name, status, want in (("hello.txt", 200, f["hello.txt"]),
                                   ("big.bin", 200, f["big.bin"]),
                                   ("style.css", 200, f["style.css"]),
                                   ("mid.bin", 206, f["mid.bin"][-70000:]),
                                   ("HEAD big.bin", 200, b""),
                                   ("data.json", 200, f["data.json"])):
            st, _, body = c.response(head=name.startswith("HEAD"))
            check(st == status and body == want, "%s: %d, %d bytes" % (name, st, len(body)))
    finally:
        c.close()


def case_slow_reader_gets_every_byte(t, port):
    """A small receive window and pauses: sendfile hits EAGAIN, the fallback chunk
    goes through the stream's queue, sendfile resumes."""
    big = t.tree.files["big.bin"]
    c = Conn(port, rcvbuf=16 * 1024)
    try:
        c.get("/big.bin")
        c.read_until(b"\r\n\r\n")
        got, c.buf = c.buf, bytearray()  # body bytes that came with the head
        pauses = 0
        while len(got) < len(big):
            d = c.s.recv(min(32 * 1024, len(big) - len(got)))
            check(d, "closed after %d bytes" % len(got))
            got += d
            if pauses < 20 and len(got) > pauses * 200 * 1024:
                pauses += 1
                time.sleep(0.02)
        check(bytes(got) == big, "bytes differ")
        c.get("/hello.txt")  # still in step
        st, _, body = c.response()
        check(st == 200 and body == t.tree.files["hello.txt"], "after the slow read: %d" % st)
    finally:
        c.close()


def case_client_leaving_mid_body(t, port):
    for _ in range(3):
        c = Conn(port, rcvbuf=8 * 1024)
        c.get("/big.bin")
        c.read_until(b"\r\n\r\n")
        c.s.recv(4096)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
        c.close()
    st, _, body = fetch(port, "/hello.txt")
    check(st == 200 and body == t.tree.files["hello.txt"], "server after resets: %d" % st)


TRAVERSALS = [
    "/../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/a/%2E%2E/%2E%2E/etc/passwd",
    "/..%2fetc%2fpasswd",
    "/..%2F..%2F..%2Fetc%2Fpasswd",
    "/sub/../../outside/secret.txt",
    "/sub/%2e%2e/%2e%2e/outside/secret.txt",
    "/./hello.txt",
    "/sub/./page.html",
    "/symlink-out/secret.txt",
    "/symlink-out/",
    "/file-out.txt",
    "/..\\..\\etc\\passwd",
    "/%5c..%5c..%5cetc%5cpasswd",
    "/sub/..%5c..%5coutside%5csecret.txt",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/%00",
    "/hello.txt%00.png",
    "/.secret",
    "/sub/%2e%2e",
    "/fifo",
]


def case_no_way_out_of_the_root(t, port):
    for target in TRAVERSALS:
        st, _, body = fetch(port, target)
        check(st in (400, 403, 404), "%s: %d, want 400/403/404" % (target, st))
        check(b"root:" not in body and SECRET not in body, "%s: leaked %r" % (target, body[:80]))
    # A file really named "%2e%2e" (double encoding decodes once) is just a file.
    st, _, body = fetch(port, "/%252e%252e")
    check(st == 200 and body == t.tree.files["%2e%2e"], "/%%252e%%252e: %d" % st)


def case_symlinks_inside_work(t, port):
    f = t.tree.files
    for target, want, ctype in (("/inside-link.html", f["sub/page.html"], "text/html"),
                                ("/sub/up-link.txt", f["hello.txt"], "text/plain"),
                                ("/subdir-link/page.html", f["sub/page.html"], "text/html")):
        st, h, body = fetch(port, target)
        check(st == 200 and body == want, "%s: %d" % (target, st))
        check(h["content-type"].startswith(ctype), "%s: %r" % (target, h["content-type"]))
    # An absolute symlink that points back inside: corio_res_file_under (modes beneath
    # and tls) refuses every absolute link, as http_file.h promises, with openat2's
    # RESOLVE_BENEATH and in its fallback where openat2 is missing (valgrind does not
    # know the syscall) alike; the realpath check (--realpath) only cares where it lands.
    st, _, body = fetch(port, "/abs-inside.txt")
    want = 200 if t.mode == "realpath" else 404
    check(st == want, "/abs-inside.txt: %d, want %d in mode %s" % (st, want, t.mode))
    check(st == 404 or body == f["hello.txt"], "/abs-inside.txt: wrong body")


def case_other_methods(t, port):
    st, h, _ = fetch(port, "/hello.txt", method="DELETE")
    check(st == 405 and "GET" in h.get("allow", ""), "DELETE: %d %r" % (st, h))


# ---- harness ---------------------------------------------------------------------------------------

class Ctx:
    pass


def run_static(args, env=None, user=None):
    """examples/static run to its exit (it must not start): (code, stderr)."""
    kw = {"user": user, "group": user, "extra_groups": []} if user is not None else {}
    try:
        r = subprocess.run([ARGS.static, "--port", "0", *args], capture_output=True,
                           env=harness.clean_env(env, ("CORIO_", "STATIC_")), timeout=10, **kw)
    except subprocess.TimeoutExpired:
        raise harness.CaseFailure("static %s %s started serving; it must not" % (args, env))
    return r.returncode, r.stderr.decode(errors="replace")


def case_bad_root_refused(t, port):
    """A root that is missing, not a directory or unreadable (every request
    would be 403): exit 2 and one line naming the root and why."""
    base = tempfile.mkdtemp(prefix="corio-static-root-")
    try:
        os.chmod(base, 0o755)
        missing, plain, locked = (os.path.join(base, n) for n in ("missing", "plain", "locked"))
        open(plain, "w").close()
        os.mkdir(locked, 0o000)
        os.chmod(locked, 0o000)
        cases = [(["--root", missing], None, missing, "no such directory"),
                 ([], {"STATIC_ROOT": missing}, missing, "no such directory"),
                 (["--root=" + plain], None, plain, "not a directory")]
        # root reads every directory: the locked one is tried as nobody.
        user = 65534 if os.geteuid() == 0 else None
        cases.append((["--root", locked], None, locked, "permission denied"))
        for args, env, root, why in cases:
            try:
                code, err = run_static(args, env, user if root == locked else None)
            except PermissionError:
                print("  SKIP the unreadable root: nobody cannot run %s" % ARGS.static)
                continue
            check(code == 2, "%s %s: exit %d: %r" % (args, env, code, err))
            check(len(err.splitlines()) == 1 and root in err and why in err,
                  "%s %s: %r should name %s and say %r" % (args, env, err, root, why))
    finally:
        os.chmod(os.path.join(base, "locked"), 0o755)
        shutil.rmtree(base, ignore_errors=True)


def case_app_flags_in_help_env_and_refused(t, port):
    """--root and --realpath are the runner's to parse: --help and -h list
    them with their variable and default beside the runner's flags (with
    theirs); STATIC_ROOT serves; a malformed one exits 2 naming it."""
    for h in ("--help", "-h"):
        r = subprocess.run([ARGS.static, h], capture_output=True, timeout=10,
                           env=harness.clean_env(None, ("CORIO_", "STATIC_")))
        out = r.stdout.decode()
        check(r.returncode == 0, "%s: exit %d" % (h, r.returncode))
        for want in ("--root VALUE", "[STATIC_ROOT] (default: .)", "--realpath",
                     "--port VALUE", "(default: 8080)", "--drain-timeout", "(default: 25s)"):
            check(want in out, "%s lacks %r:\n%s" % (h, want, out))
    for args, name in ((["--realpath=yes"], "--realpath"), (["--root", ""], "--root"),
                       (["--root"], "--root"), (["--rot", "x"], "--rot")):
        code, err = run_static(args)
        check(code == 2 and len(err.splitlines()) == 1 and name in err,
              "%s: exit %d, %r" % (args, code, err))
    srv = harness.Server(ARGS.static, env={"STATIC_ROOT": os.path.join(t.tree.root, "sub")},
                         env_drop=("CORIO_", "STATIC_"), wrap=shlex.split(ARGS.wrap),
                         start_timeout=DEADLINE * ARGS.slow, name="static STATIC_ROOT")
    try:
        c = http.client.HTTPConnection(HOST, srv.port, timeout=DEADLINE * ARGS.slow)
        c.request("GET", "/page.html")
        r = c.getresponse()
        body = r.read()
        c.close()
        with open(os.path.join(t.tree.root, "sub", "page.html"), "rb") as f:
            check(r.status == 200 and body == f.read(), "STATIC_ROOT not served: %d" % r.status)
    finally:
        srv.kill()


def main():
    global ARGS, CLIENT_TLS
    ap = argparse.ArgumentParser()
    ap.add_argument("--static", required=True, help="the examples/static binary")
    ap.add_argument("--wrap", default="", help='command prefix, e.g. "valgrind -q"')
    ap.add_argument("--slow", type=float, default=1.0, help="deadline factor (valgrind: 10)")
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ARGS = ap.parse_args()
    if ARGS.wrap and ARGS.slow == 1.0:
        ARGS.slow = 10.0
    cases = pick([v for k, v in globals().items() if k.startswith("case_") and callable(v)],
                 ARGS.k)
    t = Ctx()
    t.tree = Tree()
    modes = []
    failed = 0
    started = time.monotonic()
    try:
        modes = [("beneath", ()), ("realpath", ("--realpath",))]
        try:
            cert = make_cert(t.tree.base, "static")
        except (OSError, subprocess.SubprocessError):
            cert = None
        if cert:
            modes.append(("tls", ("--tls-cert", cert[0], "--tls-key", cert[1])))
        else:
            print("SKIP the TLS server: no openssl command", flush=True)
        for mode, args in modes:
            t.mode = mode
            CLIENT_TLS = ssl.create_default_context(cafile=cert[0]) if mode == "tls" else None
            srv = start_server(t.tree.root, *args)
            for case in cases:
                if not run_case("%s [%s]" % (case.__name__, mode), case, t, srv.port):
                    failed += 1
                if server_died(srv, 40):
                    return 1
            if not stop_cleanly(srv, DEADLINE * ARGS.slow, 80):
                failed += 1
            elif ARGS.wrap:
                print("server log [%s]:\n%s" % (mode, srv.tail(30)))
    finally:
        kill_all()
        t.tree.remove()
    return summary(len(modes) * len(cases) - failed, failed, started)


if __name__ == "__main__":
    sys.exit(main())
