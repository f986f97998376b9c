#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Request smuggling and framing (issue 21, section 2): every way to make a
request's end ambiguous -- Content-Length against Transfer-Encoding,
obfuscated codings, malformed lengths and chunk lines, bare LF and CR,
control bytes, folded and nameless fields, odd targets and versions,
Upgrade, Expect -- answered as RFC 9112 and 9110 say, with the connection
never left where the bytes that follow are read as a request they are not.

    test_http_smuggling.py --hello build/examples/hello/hello
                           --server build/tests/http_test_server
                           --proxy build/examples/proxy/proxy [-k NAME]
                           [--wrap "valgrind ..." [--slow 10]]

Each vector is a function returning the bytes one client connection sends:
the ambiguous request, then (in most) a second request, GET
/plaintext?smuggled=<case>, the "smuggled" one.  Its docstring is the rule
that decides the answer.  Every vector runs against three servers, one case
each: examples/hello (hello_*), http_test_server (srv_*; POST /echo echoes
the body) and examples/proxy (proxy_*) in front of Upstream, an origin of
this file's own that parses strictly and records every request it receives
byte for byte.  What a case checks:

  refused(...)  exactly one answer, with one of the statuses given and
                "Connection: close", then the close: nothing after the bad
                part is read as a request;
  accepted(...) the first request answered as its framing says (/echo's
                body, or the upstream's record of it), then the next request
                answered as itself (parsed at the right boundary), unless
                the server announced the close;
and in every case that the smuggled request reached a handler exactly as
often as the client got an answer to it (0 or 1): for hello and
http_test_server from their access logs (--access-log on; a sentinel request
on a new connection, logged after anything of the case's connection, says
when to look), for the proxy from the upstream's records (a sentinel too),
where every request must also come with normalised framing (one of
Content-Length or "Transfer-Encoding: chunked", no hop-by-hop field, one
Host).  Cases of the proxy's own: the Host it forwards for an absolute target,
and (up_*) the upstream answering badly, with what the proxy's client gets.

Raw sockets only (and threads for the upstream); every wait is a blocking read
or a poll with a deadline (a few cases pace a client's two writes 50 ms apart,
so that the server most likely reads them apart, and pass either way); no case
asserts that something was fast.  Python standard library only.
"""
import argparse
import functools
import re
import socket
import sys
import threading
import time

import harness
from harness import HOST, CaseFailure, Conn, check

ARGS = None
Server = functools.partial(harness.Server, env_drop=("CORIO_", "HTTP_TEST_"))
KINDS = ("hello", "srv", "proxy")
HELLO = b"Hello, World!"
# Fields a proxy must not forward (RFC 9110 7.6.1), read with '_' as '-'.
HOP = {"connection", "keep-alive", "te", "trailer", "upgrade", "proxy-connection",
       "proxy-authorization", "proxy-authenticate", "http2-settings"}
TCHAR = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"


def head(line, *fields, host=True):
    """A request head: the request line, "Host: x" (unless not host), the
    fields (bytes, sent as they are)."""
    return b"\r\n".join([line] + ([b"Host: x"] if host else []) + list(fields)) + b"\r\n\r\n"


def post(*fields, body=b""):
    return head(b"POST /echo HTTP/1.1", *fields) + body


def get(*fields):
    return head(b"GET /plaintext HTTP/1.1", *fields)


CHUNKED = b"Transfer-Encoding: chunked"
ABC = b"3\r\nabc\r\n0\r\n\r\n"  # "abc", chunked


def origin_path(target):
    """The path a target names (its absolute form's, "/" without one)."""
    if target.startswith(("http://", "https://")):
        rest = target.split("://", 1)[1]
        i = rest.find("/")
        return rest[i:] if i >= 0 else "/"
    return target


# ---- the recording upstream -------------------------------------------------------------------

class Record:
    """One request as the upstream read it."""

    def __init__(self, raw, error=None, method="", target="", fields=(), body=b""):
        self.raw, self.error, self.method, self.target = raw, error, method, target
        self.fields, self.body = list(fields), body

    def values(self, name):
        return [v for n, v in self.fields if n.lower() == name]

    def __repr__(self):
        return "<%s %s%s: %r>" % (self.method, self.target,
                                  " ERROR " + self.error if self.error else "", self.raw[:300])


class Reader:
    def __init__(self, sock):
        self.s, self.buf = sock, bytearray()

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError
        self.buf += d

    def until(self, delim, limit):
        while delim not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            self._fill()
        i = self.buf.index(delim) + len(delim)
        out = bytes(self.buf[:i])
        del self.buf[:i]
        return out

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out


class Upstream:
    """An HTTP/1.1 origin on 127.0.0.1 (a thread per connection) that parses
    every request strictly -- lines end in CRLF, fields are token ":" value,
    one Content-Length of digits or "Transfer-Encoding: chunked" (never
    both), chunk lines to the letter -- and records it (Record) before it
    answers: GET /plaintext "Hello, World!", POST /echo its body, /resp/NAME
    the raw bytes scripted[NAME] (then the close, if the script says so),
    anything else 404.  An "Expect: 100-continue" gets a 100 first.  A
    request it cannot parse is recorded with its error, answered 400, and
    the connection closed."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((HOST, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        self.records = []
        self.scripts = {}  # name -> (raw response, close after)
        self.cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        s.settimeout(harness.DEADLINE * 3)
        r = Reader(s)
        try:
            while True:
                rec = self._read(r, s)
                with self.cond:
                    self.records.append(rec)
                    self.cond.notify_all()
                if rec.error:
                    s.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
                    return
                resp, close = self._answer(rec)
                s.sendall(resp)
                if close:
                    return
        except (OSError, EOFError, ValueError):
            pass
        finally:
            s.close()

    def _read(self, r, s):
        raw = r.until(b"\r\n\r\n", 65536)
        lines = raw[:-4].split(b"\r\n")
        m = re.fullmatch(rb"(%s) (\S+) HTTP/1\.1" % TCHAR, lines[0])
        if any(b"\n" in ln or b"\r" in ln for ln in lines) or not m:
            return Record(raw, "bad request line or bare CR/LF")
        fields = []
        for ln in lines[1:]:
            f = re.fullmatch(rb"(%s):[ \t]*(.*?)[ \t]*" % TCHAR, ln, re.S)
            if not f or re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", f.group(2)):
                return Record(raw, "bad field line %r" % ln)
            fields.append((f.group(1).decode("latin-1"), f.group(2).decode("latin-1")))
        rec = Record(raw, None, m.group(1).decode(), m.group(2).decode("latin-1"), fields)
        te, cl = rec.values("transfer-encoding"), rec.values("content-length")
        if (te and cl) or len(te) > 1 or len(cl) > 1 or len(rec.values("host")) != 1:
            rec.error = "ambiguous framing or Host"
        elif te and te[0] != "chunked":
            rec.error = "Transfer-Encoding %r" % te[0]
        elif cl and not re.fullmatch(r"[0-9]+", cl[0]):
            rec.error = "Content-Length %r" % cl[0]
        if rec.error:
            return rec
        if [v.lower() for v in rec.values("expect")] == ["100-continue"]:
            s.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te:
            body = []
            while True:
                line = r.until(b"\r\n", 4096)
                rec.raw += line
                size = re.fullmatch(rb"([0-9a-fA-F]+)(;[^\r\n]*)?\r\n", line)
                if not size:
                    rec.error = "chunk size line %r" % line
                    return rec
                n = int(size.group(1), 16)
                if n == 0:
                    break
                data = r.exact(n + 2)
                rec.raw += data
                if data[-2:] != b"\r\n":
                    rec.error = "chunk data not followed by CRLF"
                    return rec
                body.append(data[:-2])
            while True:  # trailer fields, then the empty line
                line = r.until(b"\r\n", 4096)
                rec.raw += line
                if line == b"\r\n":
                    break
                if b"\n" in line[:-2] or not re.match(TCHAR + rb":", line):
                    rec.error = "trailer line %r" % line
                    return rec
            rec.body = b"".join(body)
        elif cl:
            rec.body = r.exact(int(cl[0]))
            rec.raw += rec.body
        return rec

    def _answer(self, rec):
        path = rec.target.split("?")[0]
        if path.startswith("/resp/") and path[6:] in self.scripts:
            return self.scripts[path[6:]]
        status, body = ((200, HELLO) if rec.method == "GET" and path == "/plaintext"
                        else (200, rec.body) if rec.method == "POST" and path == "/echo"
                        else (404, b"Not Found\n"))
        return (b"HTTP/1.1 %d X\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
                % (status, len(body)) + body, False)

    def mark(self):
        with self.cond:
            return len(self.records)

    def wait_for(self, pred, start, what):
        """Waits until a record from index `start` satisfies pred; returns
        the records from `start` on."""
        deadline = time.monotonic() + harness.DEADLINE
        with self.cond:
            while not any(pred(r) for r in self.records[start:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaseFailure("the upstream never received %s; it has %r"
                                      % (what, self.records[start:]))
                self.cond.wait(min(left, 0.05))
            return list(self.records[start:])

    def close(self):
        self.sock.close()


# ---- reading answers -----------------------------------------------------------------------

def final_response(c):
    """The next final response on c (1xx ones skipped): (status, fields,
    body, raw head, interim statuses).  A response with both Content-Length
    and Transfer-Encoding, or a 101, fails the case."""
    interim = []
    while True:
        status, hdrs, body, raw = c.response()
        low = raw.lower()
        check(not (b"\r\ncontent-length:" in low and b"\r\ntransfer-encoding:" in low),
              "a response framed twice: %r" % raw)
        check(status != 101, "switched protocols: %r" % raw)
        if status >= 200:
            return status, hdrs, body, raw, interim
        interim.append(status)


def send_all(c, data):
    """Sends data; a server that already closed (it refused what came
    first) may reset the rest, which is not an error here."""
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def closed_after(c, hdrs, raw):
    """After an answer with "Connection: close": the close, nothing more."""
    check(hdrs.get("connection") == "close", raw)
    try:
        c.expect_eof()
    except ConnectionResetError:
        pass  # a reset after the answer: also nothing more


# ---- expectations ------------------------------------------------------------------------

class refused:
    """The request is refused with one of `statuses` and the connection
    closed after the answer."""

    def __init__(self, *statuses):
        self.statuses = statuses

    def run(self, c, kind, raw):
        send_all(c, raw)
        status, hdrs, body, head_, interim = final_response(c)
        check(status in self.statuses and not interim,
              "expected %s and the close, got %r" % ("/".join(map(str, self.statuses)), head_))
        closed_after(c, hdrs, head_)
        return 0, []


class accepted:
    """The request is served as its framing says: POST /echo answers with
    `body` (hello: 404 for /echo, after reading it), GET /plaintext with
    "Hello, World!", or `status` if given; the upstream gets `body`.  Then
    (follows) the next request is answered as itself, unless the server
    announced the close (closes: None either, True must, False must not);
    or (then) the bytes after are a request refused with those statuses.
    reaches: whether the proxy forwards it (404 of its own router if not)."""

    def __init__(self, body=b"", status=None, closes=None, then=(), follows=True, reaches=True):
        self.body, self.status, self.closes, self.then = body, status, closes, then
        self.follows, self.reaches = follows, reaches

    def run(self, c, kind, raw):
        line = raw.lstrip(b"\r\n").split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        method, path = line[0], origin_path(line[1])
        send_all(c, raw)
        status, hdrs, body, head_, _ = final_response(c)
        if self.status:
            want = (self.status, None)
        elif method == "POST":
            want = (404, None) if kind == "hello" else (200, self.body)
        else:
            want = (200, HELLO)
        check(status == want[0] and (want[1] is None or body == want[1]),
              "expected %d %r, got %r %r" % (want[0], want[1], head_, body[:200]))
        check("upgrade" not in hdrs, "an Upgrade field in the answer: %r" % head_)
        served = 0
        closing = hdrs.get("connection") == "close"
        if self.closes is not None:
            check(closing == self.closes, "close %s expected: %r" % (self.closes, head_))
        if closing:
            closed_after(c, hdrs, head_)
        elif self.then:
            status, hdrs, body, head_, _ = final_response(c)
            check(status in self.then, "the bytes after: expected %s, got %r" % (self.then, head_))
            closed_after(c, hdrs, head_)
        elif self.follows:
            status, hdrs, body, head_, _ = final_response(c)
            check(status == 200 and body == HELLO, "the next request: %r %r" % (head_, body))
            served = 1
        return served, [(method, path, self.body)] if self.reaches else []


# ---- vectors ---------------------------------------------------------------------------------

VECTORS = []  # (function of the smuggled request's bytes, expectation, kinds)


def vector(expect, kinds=KINDS):
    def register(fn):
        VECTORS.append((fn, expect, kinds))
        return fn
    return register


# -- Content-Length and Transfer-Encoding together (RFC 9112 6.1, 6.3) --

@vector(refused(400))
def cl_te(s):
    """RFC 9112 6.3: TE overrides CL, and the server closes after, or refuses (corio): 400."""
    return post(b"Content-Length: 4", CHUNKED, body=b"0\r\n\r\n") + s


@vector(refused(400))
def te_cl(s):
    """RFC 9112 6.3: the same with Transfer-Encoding first: refused, closed."""
    return post(CHUNKED, b"Content-Length: 3", body=b"0\r\n\r\n") + s


@vector(refused(400))
def te_cl_zero(s):
    """RFC 9112 6.3: a Content-Length of 0 beside chunked is no less ambiguous: refused."""
    return post(b"Content-Length: 0", CHUNKED, body=b"0\r\n\r\n") + s


@vector(refused(400))
def te_identity_with_cl(s):
    """RFC 9112 6.3: any Transfer-Encoding with Content-Length: refused, closed."""
    return post(b"Transfer-Encoding: identity", b"Content-Length: 3", body=b"abc") + s


# -- obfuscated Transfer-Encoding (TE.TE) --

@vector(refused(400, 501))
def te_chunked_then_identity(s):
    """RFC 9112 6.3: chunked not final: 400 and close (6.1: 501 for a coding unknown; corio)."""
    return post(b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n") + s


@vector(refused(501))
def te_identity_then_chunked(s):
    """RFC 9112 6.1: a coding not implemented (identity is none now): 501, closed."""
    return post(b"Transfer-Encoding: identity, chunked", body=b"0\r\n\r\n") + s


@vector(refused(501))
def te_gzip_then_chunked(s):
    """RFC 9112 6.1: a transfer coding not implemented: 501, closed."""
    return post(b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_xchunked(s):
    """RFC 9112 6.3/6.1: "xchunked" is not chunked: length unknown: refused, closed."""
    return post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_chunked_list_twice(s):
    """RFC 9112 6.1: chunked must not be applied twice: refused, closed."""
    return post(b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_empty_list_element(s):
    """RFC 9110 5.6.1 makes "chunked," chunked; corio, like nginx, takes "chunked" only: refused."""
    return post(b"Transfer-Encoding: chunked,", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_empty(s):
    """RFC 9112 6.1: an empty Transfer-Encoding names no coding: refused, closed."""
    return post(b"Transfer-Encoding: ", body=b"0\r\n\r\n") + s


@vector(accepted(b"abc"))
def te_leading_spaces(s):
    """RFC 9110 5.5: whitespace before the value is not part of it: chunked."""
    return post(b"Transfer-Encoding:   chunked", body=ABC) + s


# Regression: 501 before the fix (the value kept its trailing space).
@vector(accepted(b"abc"))
def te_trailing_space(s):
    """RFC 9110 5.5: nor is whitespace after it: "chunked " is chunked."""
    return post(b"Transfer-Encoding: chunked  ", body=ABC) + s


@vector(refused(400, 501))
def te_trailing_tab(s):
    """RFC 9110 5.5 makes "chunked<TAB>" chunked; llhttp 8 refuses it: safe, as it closes."""
    return post(b"Transfer-Encoding: chunked\t", body=ABC) + s


@vector(accepted(b"abc"))
def te_tab_before_value(s):
    """RFC 9110 5.6.3: a tab is OWS: chunked."""
    return post(b"Transfer-Encoding:\tchunked", body=ABC) + s


@vector(accepted(b"abc"))
def te_capitalised(s):
    """RFC 9112 7: coding names are case-insensitive: "Chunked" is chunked."""
    return post(b"Transfer-Encoding: Chunked", body=ABC) + s


@vector(accepted(b"abc"))
def te_mixed_case_name_and_value(s):
    """RFC 9110 5.1: field names are case-insensitive; codings too: chunked."""
    return post(b"tRaNsFeR-eNcOdInG: cHuNkEd", body=ABC) + s


@vector(refused(400))
def te_space_before_colon(s):
    """RFC 9112 5.1: whitespace between a field name and its colon: the server must answer 400."""
    return post(b"Transfer-Encoding : chunked", body=b"0\r\n\r\n") + s


# Regression: taken as chunked before the fix (llhttp skips a fold before a value).
@vector(refused(400))
def te_obs_fold(s):
    """RFC 9112 5.2: obs-fold in a request is rejected with 400 (corio) or unfolded."""
    return post(b"Transfer-Encoding:\r\n chunked", body=b"0\r\n\r\n") + s


# Regression: taken as chunked before the fix.
@vector(refused(400))
def te_obs_fold_tab(s):
    """RFC 9112 5.2: a fold that begins with a tab is a fold too: 400 (accepted before the fix)."""
    return post(b"Transfer-Encoding:\r\n\tchunked", body=b"0\r\n\r\n") + s


@vector(refused(400))
def te_obs_fold_continuation(s):
    """RFC 9112 5.2: a fold after a value ("chunked" CRLF SP "identity"): 400."""
    return post(b"Transfer-Encoding: chunked\r\n identity", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_twice(s):
    """RFC 9112 6.1: two Transfer-Encoding fields are "chunked, chunked": refused, closed."""
    return post(CHUNKED, CHUNKED, body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_twice_differing(s):
    """RFC 9112 6.3: chunked then identity in two fields: chunked is not final: refused, closed."""
    return post(CHUNKED, b"Transfer-Encoding: identity", body=b"0\r\n\r\n") + s


@vector(refused(400))
def te_http10(s):
    """RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing: 400, closed."""
    return head(b"POST /echo HTTP/1.0", CHUNKED, b"Connection: keep-alive") + b"0\r\n\r\n" + s


@vector(refused(400))
def te_vertical_tab(s):
    """RFC 9110 5.5: a VT is no OWS and no field-vchar: 400."""
    return post(b"Transfer-Encoding:\x0bchunked", body=b"0\r\n\r\n") + s


@vector(refused(400, 501))
def te_nbsp(s):
    """RFC 9110 5.6.3: 0xA0 is not whitespace: "\\xa0chunked" is no coding corio knows: refused."""
    return post(b"Transfer-Encoding: \xa0chunked", body=b"0\r\n\r\n") + s


# Regression: the proxy forwarded Transfer_Encoding before the fix.
@vector(accepted(b"", then=(400, 501)))
def te_underscore_name(s):
    """RFC 9110 5.1: "Transfer_Encoding" is another field: no body; "0..." is the next request."""
    return post(b"Transfer_Encoding: chunked", body=b"0\r\n\r\n") + s


@vector(accepted(b"", closes=None))
def te_on_get(s):
    """RFC 9112 6.3: a GET may have a chunked body: read, and what follows is the next request."""
    return head(b"GET /plaintext HTTP/1.1", CHUNKED) + b"0\r\n\r\n" + s


# -- Content-Length values (RFC 9110 8.6, RFC 9112 6.3) --

@vector(refused(400))
def cl_twice_same(s):
    """RFC 9110 8.6: duplicated identical lengths may be merged or rejected; corio rejects: 400."""
    return post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc") + s


@vector(refused(400))
def cl_twice_conflicting(s):
    """RFC 9112 6.3: differing Content-Length values: unrecoverable error, 400 and close."""
    return post(b"Content-Length: 3", b"Content-Length: 5", body=b"abc") + s


@vector(refused(400))
def cl_list(s):
    """RFC 9110 8.6: "3, 3" is a list, no valid length: 400 (or merged, MAY): corio refuses."""
    return post(b"Content-Length: 3, 3", body=b"abc") + s


@vector(refused(400))
def cl_plus(s):
    """RFC 9110 8.6: Content-Length = 1*DIGIT: "+3" is invalid: 400."""
    return post(b"Content-Length: +3", body=b"abc") + s


@vector(refused(400))
def cl_negative(s):
    """RFC 9110 8.6: "-1" is invalid: 400."""
    return post(b"Content-Length: -1", body=b"abc") + s


@vector(refused(400))
def cl_overflow(s):
    """RFC 9110 8.6: a length past 2^64-1 cannot be framed: 400, never wrapped."""
    return post(b"Content-Length: 18446744073709551616", body=b"abc") + s


@vector(refused(400))
def cl_huge(s):
    """RFC 9110 8.6: 23 digits overflow: 400."""
    return post(b"Content-Length: 99999999999999999999999", body=b"abc") + s


@vector(refused(413), kinds=("hello", "srv"))
def cl_max_u64(s):
    """RFC 9110 15.5.14: 2^64-1 is a length, past max_body: 413 (the proxy has no max_body)."""
    return post(b"Content-Length: 18446744073709551615", body=b"abc") + s


@vector(accepted(b"abc"))
def cl_leading_zeros(s):
    """RFC 9110 8.6: 1*DIGIT allows leading zeros: "0003" is 3."""
    return post(b"Content-Length: 0003", body=b"abc") + s


@vector(refused(400))
def cl_hex(s):
    """RFC 9110 8.6: "0x3" is not digits: 400."""
    return post(b"Content-Length: 0x3", body=b"abc") + s


@vector(refused(400))
def cl_empty(s):
    """RFC 9110 8.6: an empty Content-Length is invalid: 400."""
    return post(b"Content-Length: ", body=b"abc") + s


@vector(accepted(b"abc"))
def cl_spaces_around(s):
    """RFC 9110 5.5: OWS around the value is not part of it: 3."""
    return post(b"Content-Length:  3 ", body=b"abc") + s


@vector(refused(400))
def cl_trailing_tab(s):
    """RFC 9110 5.5 makes "3<TAB>" 3; llhttp 8 refuses it: a refusal, and closed, is safe."""
    return post(b"Content-Length: 3\t", body=b"abc") + s


@vector(refused(400))
def cl_two_numbers(s):
    """RFC 9110 8.6: "3 4" is not a length: 400."""
    return post(b"Content-Length: 3 4", body=b"abc") + s


@vector(refused(400))
def cl_space_before_colon(s):
    """RFC 9112 5.1: whitespace before the colon: 400."""
    return post(b"Content-Length : 3", body=b"abc") + s


# Regression: taken as Content-Length 3 before the fix.
@vector(refused(400))
def cl_obs_fold(s):
    """RFC 9112 5.2: a folded Content-Length: 400 (taken as 3 before the fix)."""
    return post(b"Content-Length:\r\n 3", body=b"abc") + s


@vector(accepted(b"abc", closes=False))
def cl_on_get(s):
    """RFC 9112 6.3: a GET's Content-Length frames its body; the next request starts after it."""
    return head(b"GET /plaintext HTTP/1.1", b"Content-Length: 3") + b"abc" + s


@vector(accepted(b"a", then=(400, 501)))
def cl_shorter_than_sent(s):
    """RFC 9112 6.3: Content-Length 1 ends the body at "a"; "bcGET ..." is the next request."""
    return post(b"Content-Length: 1", body=b"abc") + s


@vector(accepted(None, follows=False))
def cl_covers_next(s):
    """RFC 9112 6.3: the length decides: a request inside the body is body, echoed, never served."""
    return post(b"Content-Length: %d" % len(s), body=s)


# Regression: the proxy forwarded Content_Length before the fix.
@vector(accepted(b"", then=(400, 501)))
def cl_underscore_name(s):
    """RFC 9110 5.1: "Content_Length" is another field: no body; "abcGET ..." comes next."""
    return post(b"Content_Length: 3", body=b"abc") + s


# -- chunk lines (RFC 9112 7.1) --

@vector(refused(400))
def chunk_size_overflow(s):
    """RFC 9112 7.1: a chunk size past 64 bits ("ffffffffffffffff0"): 400, never wrapped."""
    return post(CHUNKED, body=b"ffffffffffffffff0\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_size_many_digits(s):
    """RFC 9112 7.1: 1000000000000000003 (hex) overflows too: 400."""
    return post(CHUNKED, body=b"1000000000000000003\r\nabc\r\n0\r\n\r\n") + s


# Regression: no answer before the fix (the body was waited for).
@vector(refused(413), kinds=("hello", "srv"))
def chunk_size_beyond_max_body(s):
    """RFC 9110 15.5.14: a chunk of 2^64-1 bytes can never fit max_body: 413 at once."""
    return post(CHUNKED, body=b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n") + s


@vector(accepted(b"abc"))
def chunk_size_leading_zeros(s):
    """RFC 9112 7.1: chunk-size = 1*HEXDIG: leading zeros allowed."""
    return post(CHUNKED, body=b"0000000000000003\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_size_hex_prefix(s):
    """RFC 9112 7.1: "0x3" is not HEXDIG: 400."""
    return post(CHUNKED, body=b"0x3\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_size_negative(s):
    """RFC 9112 7.1: "-3": 400."""
    return post(CHUNKED, body=b"-3\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_size_trailing_space(s):
    """RFC 9112 7.1: BWS is allowed only before ";": "3 " CRLF is refused (400)."""
    return post(CHUNKED, body=b"3 \r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_ext_too_long(s):
    """RFC 9112 7.1.1: a server limits extensions (corio: 1 KiB a chunk): 400."""
    return post(CHUNKED, body=b"3;a=" + b"b" * 2000 + b"\r\nabc\r\n0\r\n\r\n") + s


@vector(accepted(b"abc"))
def chunk_ext_quoted(s):
    """RFC 9112 7.1.1: chunk-ext-val may be a quoted-string, ";" inside it included; ignored."""
    return post(CHUNKED, body=b'3;a="x;y"\r\nabc\r\n0\r\n\r\n') + s


@vector(accepted(b"abc"))
def chunk_ext_names_only(s):
    """RFC 9112 7.1.1: several extensions without values: ignored."""
    return post(CHUNKED, body=b"3;a;b\r\nabc\r\n0;c\r\n\r\n") + s


@vector(refused(400))
def chunk_ext_quoted_pair(s):
    """RFC 9112 7.1.1 allows a quoted-pair; llhttp 8 refuses it: a refusal, and closed, is safe."""
    return post(CHUNKED, body=b'3;a="x\\"y"\r\nabc\r\n0\r\n\r\n') + s


@vector(refused(400))
def chunk_ext_value_then_another(s):
    """RFC 9112 7.1.1 allows "a=b;c"; llhttp 8 refuses it: a refusal, and closed, is safe."""
    return post(CHUNKED, body=b"3;a=b;c\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_ext_space_in_name(s):
    """RFC 9112 7.1.1: "a b" is no token: 400."""
    return post(CHUNKED, body=b"3;a b\r\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_ext_empty(s):
    """RFC 9112 7.1.1: ";" without a name: 400."""
    return post(CHUNKED, body=b"3;\r\nabc\r\n0\r\n\r\n") + s


# Regression: served before the fix (llhttp 8.1 takes an empty name there).
@vector(refused(400))
def chunk_ext_empty_name_with_value(s):
    """RFC 9112 7.1.1: ";=v", a value without a name: 400."""
    return post(CHUNKED, body=b"3;=v\r\nabc\r\n0\r\n\r\n") + s


# Regression: served before the fix.
@vector(refused(400))
def chunk_ext_empty_name_then_another(s):
    """RFC 9112 7.1.1: ";;a", an empty extension before another: 400."""
    return post(CHUNKED, body=b"3;;a\r\nabc\r\n0\r\n\r\n") + s


# Regression: served before the fix (llhttp 8.1 takes ";;" after a token value
# without a callback; found by fuzz_chunked).
@vector(refused(400))
def chunk_ext_empty_after_token_value(s):
    """RFC 9112 7.1.1: ";a=1;;b", an empty extension after a valued one: 400."""
    return post(CHUNKED, body=b"3;a=1;;b\r\nabc\r\n0\r\n\r\n") + s


# Regression: served before the fix.
@vector(refused(400))
def chunk_ext_trailing_semicolon(s):
    """RFC 9112 7.1.1: ";a=1;" then CRLF, a ';' with no extension after it: 400."""
    return post(CHUNKED, body=b"3;a=1;\r\nabc\r\n0\r\n\r\n") + s


# The same ';;' inside a quoted value is data.
@vector(accepted(b"abc"))
def chunk_ext_semicolons_quoted(s):
    """RFC 9112 7.1.1: ';' inside a quoted-string value is no separator: served."""
    return post(CHUNKED, body=b'3;a=";;";b\r\nabc\r\n0\r\n\r\n') + s


@vector(refused(400))
def chunk_ext_crlf_in_quotes(s):
    """RFC 9110 5.6.4: no CR or LF in a quoted-string: 400."""
    return post(CHUNKED, body=b'3;a="x\r\n"\r\nabc\r\n0\r\n\r\n') + s


@vector(refused(400))
def chunk_data_without_crlf(s):
    """RFC 9112 7.1: chunk-data is followed by CRLF; "abc0" is not: 400."""
    return post(CHUNKED, body=b"3\r\nabc0\r\n\r\n") + s


@vector(refused(400))
def chunk_data_longer_than_size(s):
    """RFC 9112 7.1: 4 bytes after a size of 3: 400."""
    return post(CHUNKED, body=b"3\r\nabcd\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_bare_lf_after_data(s):
    """RFC 9112 7.1: CRLF after chunk-data, not LF: 400."""
    return post(CHUNKED, body=b"3\r\nabc\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_bare_lf_after_size(s):
    """RFC 9112 7.1: CRLF after the size: 400."""
    return post(CHUNKED, body=b"3\nabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_bare_cr_after_size(s):
    """RFC 9112 7.1: a CR alone ends no chunk line: 400."""
    return post(CHUNKED, body=b"3\rabc\r\n0\r\n\r\n") + s


@vector(refused(400))
def chunk_bare_cr_ends_trailers(s):
    """RFC 9112 7.1: CR then "GET" where the last CRLF belongs: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\n\r") + s


@vector(refused(400))
def chunk_bare_lf_last_chunk(s):
    """RFC 9112 7.1: the last chunk's line and the empty line after it end in CRLF: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\n\n") + s


# Regression: served before the fix, and the bytes after taken as a request.
@vector(refused(400))
def chunk_bare_lf_ends_trailers(s):
    """RFC 9112 7.1, 2.2: the empty line ending the trailer section is CRLF, not LF: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\n\n") + s


# Regression: served before the fix.
@vector(refused(400))
def chunk_bare_lf_after_trailer_field(s):
    """RFC 9112 7.1, 2.2: the same after a trailer field: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nX: a\r\n\n") + s


@vector(accepted(b"abc"))
def trailer_content_length(s):
    """RFC 9110 6.5.1: framing fields in trailers are never used: the chunks' length stands."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n") + s


@vector(refused(400))
def trailer_transfer_encoding(s):
    """RFC 9110 6.5.1: Transfer-Encoding is no trailer; llhttp refuses it (400, closed): safe."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n") + s


@vector(accepted(b"abc"))
def trailer_host(s):
    """RFC 9110 6.5.1: trailers are not merged into the header section: Host there is nothing."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nHost: evil\r\n\r\n") + s


@vector(refused(400))
def trailer_bad_name(s):
    """RFC 9110 5.1: a trailer field name is a token: "Bad Name" is refused, 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nBad Name: x\r\n\r\n") + s


@vector(refused(400))
def trailer_control_byte(s):
    """RFC 9110 5.5: no control bytes in a trailer value: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nX: a\x01b\r\n\r\n") + s


# Regression: served before the fix (llhttp joins the fold to the line before).
@vector(refused(400))
def trailer_obs_fold(s):
    """RFC 9112 5.2: a fold is refused or unfolded; corio refuses it, as in the head: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nX: a\r\n b\r\n\r\n") + s


# Regression: served before the fix.
@vector(refused(400))
def trailer_obs_fold_first_line(s):
    """RFC 9112 5.2: a trailer section that begins with whitespace: 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\n\tX: a\r\n\r\n") + s


# Regression: served before the fix (llhttp takes an empty name).
@vector(refused(400))
def trailer_empty_name(s):
    """RFC 9110 5.1: a field name is a token, never empty: ": v" is refused, 400."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\n: v\r\n\r\n") + s


# Regression: the next request was refused with 400 (llhttp took the close,
# corio did not).
@vector(accepted(b"abc", closes=True))
def trailer_connection_close(s):
    """RFC 9112 9.6: "Connection: close", even as a trailer: this answer is the last."""
    return post(CHUNKED, body=b"3\r\nabc\r\n0\r\nConnection: close\r\n\r\n") + s


# -- line endings, CR, NUL and controls in the head (RFC 9112 2.2, 3, 5) --

# Regression: served before the fix.
@vector(refused(400))
def lf_after_request_line(s):
    """RFC 9112 2.2: a bare LF may be taken as a line end, or refused (corio): 400."""
    return b"GET /plaintext HTTP/1.1\nHost: x\r\n\r\n" + s


@vector(refused(400))
def lf_after_field(s):
    """RFC 9112 2.2: a field line ending in LF alone: 400."""
    return b"GET /plaintext HTTP/1.1\r\nHost: x\n\r\n" + s


# Regression: served before the fix, and the bytes after taken as a request.
@vector(refused(400))
def lf_ends_head(s):
    """RFC 9112 2.2: the empty line ending the head as LF alone: 400 (taken before the fix)."""
    return b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\n" + s


# Regression: served before the fix.
@vector(refused(400))
def lf_ends_head_before_body(s):
    """RFC 9112 2.2: the same where a body follows: 400 (taken before the fix)."""
    return b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\nabc" + s


@vector(refused(400))
def lf_only(s):
    """RFC 9112 2.2: every line ending in LF alone: 400."""
    return b"GET /plaintext HTTP/1.1\nHost: x\n\n" + s


# Regression: served before the fix.
@vector(refused(400))
def lf_head_without_fields(s):
    """RFC 9112 2.2: "HTTP/1.0" LF LF: 400 (taken before the fix)."""
    return b"GET /plaintext HTTP/1.0\n\n" + s


@vector(refused(400, 505))
def cr_alone_after_request_line(s):
    """RFC 9112 2.2: a CR alone is no line end: the version is malformed, refused."""
    return b"GET /plaintext HTTP/1.1\rHost: x\r\n\r\n" + s


@vector(refused(400))
def cr_alone_between_fields(s):
    """RFC 9112 2.2: "x" CR "X: y": a CR inside a value: 400."""
    return get(b"X: a\rX-B: y") + s


@vector(refused(400))
def cr_alone_ends_head(s):
    """RFC 9112 2.2: CR then "GET": no LF: 400."""
    return b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r" + s


@vector(refused(400, 505))
def cr_cr_lf(s):
    """RFC 9112 2.2: CR CR LF ends no line: refused."""
    return b"GET /plaintext HTTP/1.1\r\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def nul_in_method(s):
    """RFC 9112 3.1: a method is a token: NUL is refused, 400."""
    return b"G\x00T /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def nul_in_target(s):
    """RFC 9112 3.2: no NUL in a target: 400."""
    return b"GET /plain\x00text HTTP/1.1\r\nHost: x\r\n\r\n" + s


@vector(refused(400, 505))
def nul_in_version(s):
    """RFC 9112 2.3: "HTTP/1." NUL is no version: refused."""
    return b"GET /plaintext HTTP/1.\x00\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def nul_in_field_name(s):
    """RFC 9110 5.1: a field name is a token: 400."""
    return b"GET /plaintext HTTP/1.1\r\nHo\x00st: x\r\n\r\n" + s


@vector(refused(400))
def nul_in_field_value(s):
    """RFC 9110 5.5: NUL in a value must be refused or replaced: 400."""
    return get(b"X: a\x00b") + s


@vector(refused(400))
def nul_line_between_fields(s):
    """RFC 9112 5: a line of NUL is no field line: 400."""
    return b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\x00\r\n\r\n" + s


@vector(refused(400))
def nul_before_field_name(s):
    """RFC 9112 5: NUL before a field name: 400."""
    return b"GET /plaintext HTTP/1.1\r\n\x00Host: x\r\n\r\n" + s


@vector(refused(400))
def control_in_field_value(s):
    """RFC 9110 5.5: 0x01 is no field-vchar: 400."""
    return get(b"X: a\x01b") + s


@vector(refused(400))
def del_in_field_value(s):
    """RFC 9110 5.5: DEL is no field-vchar: 400."""
    return get(b"X: a\x7fb") + s


@vector(refused(400))
def control_in_target(s):
    """RFC 3986: VT in a target: 400."""
    return b"GET /a\x0bb HTTP/1.1\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def del_in_target(s):
    """RFC 3986: DEL in a target: 400."""
    return b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def escape_in_method(s):
    """RFC 9112 3.1: ESC in a method: not a token, 400."""
    return b"G\x1bT /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" + s


@vector(accepted(None))
def obs_text_in_field_value(s):
    """RFC 9110 5.5: obs-text (0x80-0xFF) is allowed in a value."""
    return get(b"X: a\xffb") + s


@vector(refused(400))
def tab_before_colon(s):
    """RFC 9112 5.1: a tab between name and colon: 400."""
    return get(b"X-A\t: b") + s


@vector(refused(400))
def space_in_field_name(s):
    """RFC 9110 5.1: "X A" is no token: 400."""
    return get(b"X A: b") + s


# Regression: served before the fix (the proxy then failed: 500).
@vector(refused(400))
def empty_field_name(s):
    """RFC 9110 5.1: field-name = token, not empty: 400 (accepted before the fix)."""
    return get(b": b") + s


# Regression: served before the fix.
@vector(refused(400))
def empty_field_name_first(s):
    """RFC 9110 5.1: the same as the first field line: 400 (accepted before the fix)."""
    return b"GET /plaintext HTTP/1.1\r\n: b\r\nHost: x\r\n\r\n" + s


@vector(refused(400))
def field_without_colon(s):
    """RFC 9112 5: a field line needs a colon: 400."""
    return get(b"XAb") + s


@vector(refused(400))
def whitespace_before_first_field(s):
    """RFC 9112 2.2: whitespace-preceded line after the request line: 400 (or skipped, MAY)."""
    return b"GET /plaintext HTTP/1.1\r\n Host: x\r\n\r\n" + s


@vector(refused(400))
def obs_fold(s):
    """RFC 9112 5.2: obs-fold in a request: 400."""
    return get(b"X: a\r\n b") + s


# Regression: served before the fix.
@vector(refused(400))
def obs_fold_empty_value(s):
    """RFC 9112 5.2: a fold before any value: 400 (accepted before the fix)."""
    return get(b"X:\r\n b") + s


# Regression: served before the fix.
@vector(refused(400))
def obs_fold_host(s):
    """RFC 9112 5.2: a folded Host: 400 (accepted before the fix)."""
    return b"GET /plaintext HTTP/1.1\r\nHost:\r\n x\r\n\r\n" + s


@vector(accepted(None))
def empty_lines_before_request(s):
    """RFC 9112 2.2: a server should ignore at least one empty line before a request line."""
    return b"\r\n\r\n" + get() + s


@vector(refused(431))
def field_line_too_long(s):
    """RFC 6585 5: a field section past the limit: 431, closed."""
    return get(b"X: " + b"a" * 20000) + s


@vector(refused(414))
def target_too_long(s):
    """RFC 9112 3: a request line past the limit: 414, closed."""
    return b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n" + s


# -- targets (RFC 9112 3.2) --

# Regression: the proxy answered 500 before the fix (it sent "base + http://...").
@vector(accepted(None))
def absolute_form(s):
    """RFC 9112 3.2.2: absolute-form is accepted; its authority replaces Host."""
    return head(b"GET http://other.example/plaintext HTTP/1.1") + s


# Regression: the proxy answered 500 before the fix.
@vector(accepted(None))
def absolute_form_https(s):
    """RFC 9112 3.2.2: an https target is absolute-form too."""
    return head(b"GET https://other.example:8443/plaintext HTTP/1.1") + s


# Regression: the proxy answered 500 before the fix.
@vector(accepted(None, status=404))
def absolute_form_without_path(s):
    """RFC 9112 3.2.2: "http://other" names "/" (404 here)."""
    return head(b"GET http://other.example HTTP/1.1") + s


@vector(refused(400))
def absolute_form_without_host_field(s):
    """RFC 9112 3.2: HTTP/1.1 without Host is refused even in absolute-form: 400."""
    return head(b"GET http://other.example/plaintext HTTP/1.1", host=False) + s


# Regression: served before the fix.
@vector(refused(400))
def absolute_form_userinfo(s):
    """RFC 9110 4.2.4: userinfo in an http URI is an error: 400 (accepted before the fix)."""
    return head(b"GET http://user@other.example/plaintext HTTP/1.1") + s


@vector(refused(400))
def absolute_form_ftp(s):
    """RFC 9112 3.2.2: a scheme the server does not serve: 400."""
    return head(b"GET ftp://other.example/plaintext HTTP/1.1") + s


@vector(refused(400))
def absolute_form_no_authority(s):
    """RFC 9110 4.2.1: http URIs need a host: "http:///plaintext" is refused, 400."""
    return head(b"GET http:///plaintext HTTP/1.1") + s


@vector(accepted(None, status=404, reaches=False))
def asterisk_options(s):
    """RFC 9112 3.2.4: OPTIONS * is the server-wide form (no route: 404, kept alive)."""
    return head(b"OPTIONS * HTTP/1.1") + s


# Regression: 404 before the fix.
@vector(refused(400))
def asterisk_get(s):
    """RFC 9112 3.2.4: asterisk-form is only for OPTIONS: GET * is refused, 400."""
    return head(b"GET * HTTP/1.1") + s


@vector(refused(400))
def authority_form_get(s):
    """RFC 9112 3.2.3: authority-form is only for CONNECT: 400."""
    return head(b"GET other.example:80 HTTP/1.1") + s


@vector(refused(501))
def connect(s):
    """RFC 9110 9.3.6: CONNECT is not implemented: 501, closed; tunnel bytes never read."""
    return (b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n"
            b"\x16\x03\x01\x00\x05hello" + s)


# -- connection management, Upgrade, Expect, versions, Host --

@vector(accepted(b"abc", closes=False))
def http10_keep_alive_with_length(s):
    """RFC 9112 9.3: HTTP/1.0 keep-alive with a length: the next request starts after the body."""
    return head(b"POST /echo HTTP/1.0", b"Connection: keep-alive",
                b"Content-Length: 3") + b"abc" + s


# Regression: the proxy forwarded Proxy_Authorization and Keep_Alive before the fix.
@vector(accepted(None, closes=False))
def hop_by_hop_request_fields(s):
    """RFC 9110 7.6.1: hop-by-hop fields end at the proxy ('_' look-alikes too); served."""
    return get(b"Keep-Alive: timeout=5", b"TE: trailers", b"Trailer: X-T", b"Proxy-Connection: x",
               b"Proxy_Authorization: y", b"Keep_Alive: z") + s


@vector(accepted(None, closes=True))
def connection_close_then_more(s):
    """RFC 9112 9.6: after "Connection: close" the server reads no further request."""
    return get(b"Connection: close") + s


@vector(accepted(None, closes=True))
def upgrade_websocket(s):
    """RFC 9110 7.8: a server may ignore Upgrade: no 101, then closed (corio)."""
    return get(b"Connection: Upgrade", b"Upgrade: websocket",
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13") + s


@vector(accepted(None, closes=True))
def upgrade_h2c_then_preface(s):
    """RFC 9110 7.8: h2c ignored: no 101, closed, so the HTTP/2 preface after is never parsed."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    return get(b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
               b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA") + preface + s


@vector(accepted(b"abc", closes=True))
def upgrade_with_body(s):
    """RFC 9110 7.8: Upgrade ignored, the body read as its length says, then closed."""
    return post(b"Connection: Upgrade", b"Upgrade: h2c", b"Content-Length: 3", body=b"abc") + s


@vector(accepted(None, closes=False))
def upgrade_not_in_connection(s):
    """RFC 9110 7.8: Upgrade not named by Connection is no request to switch: served, kept alive."""
    return get(b"Upgrade: websocket") + s


@vector(accepted(b"abc"))
def expect_100_with_body(s):
    """RFC 9110 10.1.1: the 100 may be omitted when the content has come; framed as usual."""
    return post(b"Expect: 100-continue", b"Content-Length: 3", body=b"abc") + s


@vector(accepted(None, closes=False))
def expect_100_without_body(s):
    """RFC 9110 10.1.1: a 100-continue expectation without content: just the answer."""
    return get(b"Expect: 100-continue") + s


@vector(refused(417))
def expect_unknown(s):
    """RFC 9110 10.1.1: an expectation other than 100-continue: 417, closed, body unread."""
    return post(b"Expect: 200-ok", b"Content-Length: 3", body=b"abc") + s


@vector(refused(400))
def http09(s):
    """RFC 9112 2.3: HTTP/0.9 (no version) is not served: 400."""
    return b"GET /plaintext\r\n" + s


@vector(refused(400, 505))
def http2_preface(s):
    """RFC 9113 3.4: the HTTP/2 preface to an HTTP/1.1-only server gets an error and the close."""
    return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + s


# Regression: 505 before the fix.
@vector(accepted(None, closes=False))
def http_1_2(s):
    """RFC 9110 2.5: a higher minor version is served as the highest known, 1.1."""
    return head(b"GET /plaintext HTTP/1.2") + s


@vector(refused(505))
def http_2_0(s):
    """RFC 9110 15.6.6: major version 2 over HTTP/1.1 framing: 505."""
    return head(b"GET /plaintext HTTP/2.0") + s


@vector(refused(505))
def http_3_0(s):
    """RFC 9110 15.6.6: major version 3: 505."""
    return head(b"GET /plaintext HTTP/3.0") + s


@vector(refused(400, 505))
def http_1_10(s):
    """RFC 9112 2.3: HTTP-version is one digit each side: "1.10" is refused."""
    return head(b"GET /plaintext HTTP/1.10") + s


@vector(refused(400))
def http_lower_case(s):
    """RFC 9112 2.3: "HTTP" is case-sensitive: "http/1.1" is 400."""
    return head(b"GET /plaintext http/1.1") + s


@vector(refused(400))
def host_missing(s):
    """RFC 9112 3.2: an HTTP/1.1 request without Host: 400."""
    return head(b"GET /plaintext HTTP/1.1", host=False) + s


@vector(accepted(None, closes=True))
def host_missing_http10(s):
    """RFC 9112 3.2: HTTP/1.0 needs no Host (and closes after)."""
    return head(b"GET /plaintext HTTP/1.0", host=False) + s


@vector(refused(400))
def host_twice(s):
    """RFC 9112 3.2: more than one Host field: 400."""
    return get(b"Host: x") + s


@vector(refused(400))
def host_twice_differing(s):
    """RFC 9112 3.2: two differing Hosts: 400."""
    return get(b"Host: y") + s


@vector(accepted(None))
def host_empty(s):
    """RFC 9110 7.2: an empty Host is valid (a target without authority)."""
    return head(b"GET /plaintext HTTP/1.1", b"Host:", host=False) + s


# Regression: served before the fix.
@vector(refused(400))
def host_with_space(s):
    """RFC 9112 3.2: a Host that is no uri-host[:port]: 400 (accepted before the fix)."""
    return head(b"GET /plaintext HTTP/1.1", b"Host: a b", host=False) + s


# Regression: served before the fix.
@vector(refused(400))
def host_with_path(s):
    """RFC 9112 3.2: "a/b" is no Host value: 400 (accepted before the fix)."""
    return head(b"GET /plaintext HTTP/1.1", b"Host: a/b", host=False) + s


# Regression: served before the fix.
@vector(refused(400))
def host_with_userinfo(s):
    """RFC 9112 3.2: "user@a" is no Host value: 400 (accepted before the fix)."""
    return head(b"GET /plaintext HTTP/1.1", b"Host: user@a", host=False) + s


# Regression: served before the fix.
@vector(refused(400))
def host_bad_port(s):
    """RFC 3986 3.2.3: a port is digits: "a:8x" is 400 (accepted before the fix)."""
    return head(b"GET /plaintext HTTP/1.1", b"Host: a:8x", host=False) + s


@vector(accepted(None))
def host_ip_literal_and_port(s):
    """RFC 9112 3.2: "[::1]:80" is a uri-host and port."""
    return head(b"GET /plaintext HTTP/1.1", b"Host: [::1]:80", host=False) + s


# ---- cases of their own ----------------------------------------------------------------------

CUSTOM = []  # functions (c, kind, tag) -> (served, expected upstream requests)


def custom(fn):
    CUSTOM.append(fn)
    return fn


def expect_flow(c, head_bytes, body, smug, want):
    """A client that waits for 100 Continue: sends the head; on a 100
    sends the body and the next request; on a final answer instead (which
    must announce the close) sends them anyway, and they must not be read.
    want: (status, body or None) of the final answer.  Returns the number
    of answers to the next request (0 or 1)."""
    c.send(head_bytes)
    status, hdrs, got, raw = c.response()
    if status == 100:
        c.send(body + smug)
        status, hdrs, got, raw, _ = final_response(c)
    else:
        check(status >= 200, raw)
        check(hdrs.get("connection") == "close", "a final answer without 100 must close: %r" % raw)
        send_all(c, body + smug)
    check(status == want[0] and (want[1] is None or got == want[1]), (raw, got))
    if hdrs.get("connection") == "close":
        closed_after(c, hdrs, raw)
        return 0
    status, hdrs, got, raw, _ = final_response(c)
    check(status == 200 and got == HELLO, (raw, got))
    return 1


@custom
def expect_100_waits_for_continue(c, kind, smug):
    """RFC 9110 10.1.1: a client awaiting 100 gets it, or a final answer and the close."""
    want = (404, None) if kind == "hello" else (200, b"abc")
    served = expect_flow(c, post(b"Expect: 100-continue", b"Content-Length: 3"), b"abc", smug,
                         want)
    return served, [("POST", "/echo", b"abc")]


@custom
def expect_100_body_never_read(c, kind, smug):
    """RFC 9110 10.1.1: answered unread: no 100, the close, and what comes after unread."""
    served = expect_flow(c, get(b"Expect: 100-continue", b"Content-Length: 3"), b"abc", smug,
                         (200, HELLO))
    if kind == "proxy":  # the proxy reads the body (its 100 came) and forwards it
        return served, [("GET", "/plaintext", b"abc")]
    check(served == 0, "the body of a request answered without it was read on")
    return served, []


@custom
def expect_100_http10(c, kind, smug):
    """RFC 9110 10.1.1: an HTTP/1.0 request's 100-continue is ignored: no 100 ever."""
    c.send(head(b"POST /echo HTTP/1.0", b"Expect: 100-continue", b"Content-Length: 3"))
    time.sleep(0.05)  # the client's pace: the body most likely comes in a read of its own
    send_all(c, b"abc" + smug)
    status, hdrs, got, raw, interim = final_response(c)
    check(not interim, "a 100 to HTTP/1.0: %r" % interim)
    want = (404, None) if kind == "hello" else (200, b"abc")
    check(status == want[0] and (want[1] is None or got == want[1]), (raw, got))
    closed_after(c, hdrs, raw)
    return 0, [("POST", "/echo", b"abc")]


def split_trailer_end(c, kind, smug, first, second, ok):
    """The chunked body "abc" whose last bytes (`first`) and the rest
    (`second`, then the next request) come in two writes, so the server most
    likely reads them apart: the line ending the trailer section is judged
    across the two."""
    c.send(post(CHUNKED) + b"3\r\nabc\r\n" + first)
    time.sleep(0.05)  # the client's pace: the server most likely reads the rest apart
    send_all(c, second + smug)
    status, hdrs, got, raw, _ = final_response(c)
    if not ok:
        check(status == 400, raw)
        closed_after(c, hdrs, raw)
        return 0, []
    want = (404, None) if kind == "hello" else (200, b"abc")
    check(status == want[0] and (want[1] is None or got == want[1]), (raw, got))
    status, hdrs, got, raw, _ = final_response(c)
    check(status == 200 and got == HELLO, (raw, got))
    return 1, [("POST", "/echo", b"abc")]


@custom
def chunk_trailer_end_split_after_cr(c, kind, smug):
    """RFC 9112 7.1: "0" CRLF CR | LF: a CRLF split between two reads still ends the message."""
    return split_trailer_end(c, kind, smug, b"0\r\n\r", b"\n", True)


# Regression: served before the fix.
@custom
def chunk_trailer_end_split_bare_lf(c, kind, smug):
    """RFC 9112 7.1: "0" CRLF | LF: a bare LF in a read of its own is refused too (400)."""
    return split_trailer_end(c, kind, smug, b"0\r\n", b"\n", False)


@custom
def chunk_trailer_fold_split(c, kind, smug):
    """RFC 9112 5.2: "X: a" CRLF | SP "b": a fold in a read of its own is refused too (400)."""
    return split_trailer_end(c, kind, smug, b"0\r\nX: a\r\n", b" b\r\n\r\n", False)


@custom
def chunk_trailer_value_split(c, kind, smug):
    """RFC 9112 7.1.2: "X: a" | " b" CRLF: a value split between reads is one value, served."""
    return split_trailer_end(c, kind, smug, b"0\r\nX: a", b" b\r\n\r\n", True)


@custom
def pipelined_bodies_keep_their_boundaries(c, kind, smug):
    """RFC 9112 6.3, 9.3.2: pipelined length, chunked and bodiless requests: each in order."""
    c.send(post(b"Content-Length: 5", body=b"first")
           + post(CHUNKED, body=b"6\r\nsecond\r\n0\r\n\r\n") + get() + smug)
    for want in (b"first", b"second", HELLO, HELLO):
        status, hdrs, got, raw, _ = final_response(c)
        if kind == "hello" and want in (b"first", b"second"):
            check(status == 404, raw)
        else:
            check(status == 200 and got == want, (raw, got))
    return 1, [("POST", "/echo", b"first"), ("POST", "/echo", b"second"),
               ("GET", "/plaintext", b"")]


# ---- checks after each case --------------------------------------------------------------------

def sentinel(port, tag):
    c = Conn(port)
    try:
        c.send(b"GET /plaintext?sentinel=%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
               % tag.encode())
        status, _, body, raw, _ = final_response(c)
        check(status == 200, "sentinel: %r" % raw)
    finally:
        c.close()


def check_access_log(srv, mark, tag, served):
    """The smuggled request reached the router exactly `served` times: its
    access log lines, up to the sentinel's (one loop logs in order, and the
    case's connection is done)."""
    sentinel(srv.port, tag)
    srv.wait_log(r'"GET /plaintext\?sentinel=%s HTTP' % re.escape(tag), start=mark)
    n = srv.count_log(r'"GET /plaintext\?smuggled=%s HTTP' % re.escape(tag), start=mark)
    check(n == served, "the smuggled request was served %d time(s), answered %d:\n%s"
          % (n, served, srv.tail(10)))


def check_upstream(t, mark, tag, served, expected):
    """What reached the upstream from the case: exactly `expected` (method,
    path, body or None) and the smuggled request `served` times, each
    request parsed strictly and with normalised framing."""
    sentinel(t.proxy.port, tag)
    recs = t.up.wait_for(lambda r: ("sentinel=" + tag) in r.target, mark, "the sentinel")
    recs = [r for r in recs if ("sentinel=" + tag) not in r.target]
    for r in recs:
        check(not r.error, "the upstream could not parse %r" % r)
        names = [n.lower() for n, _ in r.fields]
        bad = [n for n in names if n.replace("_", "-") in HOP or n.startswith(("proxy-", "proxy_"))
               or ("_" in n and n.replace("_", "-") in ("transfer-encoding", "content-length"))]
        check(not bad, "hop-by-hop or look-alike fields forwarded: %s in %r" % (bad, r))
    smug = [r for r in recs if ("smuggled=" + tag) in r.target]
    check(len(smug) == served, "the smuggled request reached the upstream %d time(s), answered "
          "%d: %r" % (len(smug), served, smug))
    rest = [r for r in recs if r not in smug]
    got = [(r.method, r.target, r.body) for r in rest]
    check(len(got) == len(expected) and
          all(g[0] == e[0] and g[1] == e[1] and (e[2] is None or g[2] == e[2])
              for g, e in zip(got, expected)),
          "the upstream got %r, expected %r" % (rest, expected))


def make_case(kind, name, doc, run):
    """A case named kind_name: run(c, tag, smuggled bytes) on a new
    connection to the kind's server returns (served, expected upstream
    requests); then the access log or the upstream must agree."""
    def case(t):
        tag = "%s_%s" % (kind, name)
        srv = getattr(t, kind)
        mark = t.up.mark() if kind == "proxy" else srv.mark()
        c = Conn(srv.port)
        try:
            served, expected = run(c, tag)
        finally:
            c.close()
        if kind == "proxy":
            check_upstream(t, mark, tag, served, expected)
        else:
            check_access_log(srv, mark, tag, served)
    case.__name__ = "%s_%s" % (kind, name)
    case.__doc__ = doc
    return case


def smuggled(tag):
    return b"GET /plaintext?smuggled=%s HTTP/1.1\r\nHost: x\r\n\r\n" % tag.encode()


def all_cases():
    cases = []
    for fn, expect, kinds in VECTORS:
        for kind in kinds:
            cases.append(make_case(kind, fn.__name__, fn.__doc__,
                                   lambda c, tag, fn=fn, expect=expect, kind=kind:
                                   expect.run(c, kind, fn(smuggled(tag)))))
    for fn in CUSTOM:
        for kind in KINDS:
            cases.append(make_case(kind, fn.__name__, fn.__doc__,
                                   lambda c, tag, fn=fn, kind=kind: fn(c, kind, smuggled(tag))))
    return cases + OWN_CASES


# ---- the proxy's own cases: Host from the target, the upstream answering badly ------------------

OWN_CASES = []  # functions of the servers (their names say which)


def own_case(fn):
    OWN_CASES.append(fn)
    return fn


# Regression: the proxy answered 500 before the fix, and forwarded the client's Host.
@own_case
def proxy_absolute_form_authority_is_host(t):
    """RFC 9112 3.2.2: the target's authority replaces Host: forwarded in origin-form with it."""
    mark = t.up.mark()
    c = Conn(t.proxy.port)
    try:
        c.send(head(b"GET http://other.example:8080/plaintext?q=1 HTTP/1.1",
                    b"Host: ignored.example", host=False))
        status, _, body, raw, _ = final_response(c)
        check(status == 200 and body == HELLO, (raw, body))
    finally:
        c.close()
    rec = t.up.wait_for(lambda r: r.target == "/plaintext?q=1", mark, "the request")[-1]
    check(rec.values("host") == ["other.example:8080"] and
          rec.values("x-forwarded-host") == ["other.example:8080"], rec)


def through_proxy(t, name, response, close=False):
    """Scripts the upstream's answer to GET /resp/<name> (`response`, then
    the close if `close`) and asks for it through the proxy, then (unless
    the proxy closes) for /plaintext on the same client connection: returns
    the first answer (status, fields, body, head) once the second is checked
    to be the upstream's own, whole."""
    t.up.scripts[name] = (response, close)
    c = Conn(t.proxy.port)
    try:
        c.send(b"GET /resp/%s HTTP/1.1\r\nHost: x\r\n\r\n" % name.encode())
        first = final_response(c)[:4]
        if first[1].get("connection") != "close":
            c.send(get())
            status, _, body, raw, _ = final_response(c)
            check(status == 200 and body == HELLO, "the next answer: %r %r" % (raw, body))
        return first
    finally:
        c.close()


@own_case
def up_content_length_and_chunked(t):
    """RFC 9112 6.3: an upstream answer with Content-Length and chunked: 502, not relayed."""
    status, _, _, raw = through_proxy(t, "clte", b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n"
                                      b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
    check(status == 502, raw)


@own_case
def up_two_content_lengths(t):
    """RFC 9112 6.3: differing Content-Lengths from upstream: 502."""
    status, _, _, raw = through_proxy(t, "twocl", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                      b"Content-Length: 9\r\n\r\nok")
    check(status == 502, raw)


@own_case
def up_bytes_after_response_not_relayed(t):
    """RFC 9112 9.3: bytes past a complete answer never answer the next request (pool)."""
    status, _, body, raw = through_proxy(
        t, "extra", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\npoisoned")
    check(status == 200 and body == b"ok", (raw, body))
    for _ in range(3):  # the pool again: never the junk
        c = Conn(t.proxy.port)
        try:
            c.send(get())
            status, _, body, raw, _ = final_response(c)
            check(status == 200 and body == HELLO, (raw, body))
        finally:
            c.close()


@own_case
def up_switching_protocols_unasked(t):
    """RFC 9110 15.2.2: a 101 nobody asked for is no valid answer: 502, nothing relayed."""
    status, _, body, raw = through_proxy(
        t, "switch", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
        b"Upgrade: websocket\r\n\r\n\x81\x05hello", close=True)
    check(status == 502 and b"hello" not in body, (raw, body))


@own_case
def up_chunked_response_reframed(t):
    """RFC 9112 7.1: a chunked answer is relayed framed once, by the proxy, trailers dropped."""
    status, hdrs, body, raw = through_proxy(
        t, "chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;x=1\r\nabc\r\n3\r\ndef\r\n0\r\nX-Trailer: 1\r\n\r\n")
    check(status == 200 and body == b"abcdef" and "x-trailer" not in hdrs, (raw, body))


@own_case
def up_close_delimited_response(t):
    """RFC 9112 6.3: an answer ended by the close is relayed framed; the client's goes on."""
    status, hdrs, body, raw = through_proxy(
        t, "eof", b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end", close=True)
    check(status == 200 and body == b"until the end", (raw, body))
    check(hdrs.get("connection") != "close", "the client's connection closed: %r" % raw)


# Regression: the proxy relayed Transfer_Encoding before the fix.
@own_case
def up_hop_by_hop_response_fields(t):
    """RFC 9110 7.6.1: hop-by-hop fields, those Connection names, '_' look-alikes: dropped."""
    status, hdrs, body, raw = through_proxy(
        t, "hop", b"HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
        b"Upgrade: h2c\r\nTransfer_Encoding: chunked\r\nX-End: 2\r\nContent-Length: 2\r\n\r\nok")
    check(status == 200 and body == b"ok" and hdrs.get("x-end") == "2", (raw, body))
    low = raw.lower()
    for name in (b"x-hop", b"keep-alive", b"upgrade", b"transfer_encoding"):
        check(b"\r\n" + name + b":" not in low, "%s relayed: %r" % (name, raw))


@own_case
def up_bare_lf_response(t):
    """RFC 9112 2.2: an answer with bare LF lines is read or refused (502), framed either way."""
    status, _, body, raw = through_proxy(
        t, "lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
    check((status == 200 and body == b"ok") or status == 502, (raw, body))


# ---- main ------------------------------------------------------------------------------------

class Servers:
    pass


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--proxy", required=True)
    ARGS = harness.parse_args(ap)
    harness.raise_fd_limit()
    cases = harness.pick(all_cases(), ARGS.k)

    def start():
        t = Servers()
        t.up = Upstream()
        t.hello = Server(ARGS.hello, "--access-log", "on")
        t.srv = Server(ARGS.server, "--access-log", "on")
        t.proxy = Server(ARGS.proxy, "--upstream", t.up.url)
        return t

    return harness.run_with_servers(cases, start)


if __name__ == "__main__":
    sys.exit(main())
