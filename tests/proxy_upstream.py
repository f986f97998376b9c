# SPDX-License-Identifier: MIT
"""Upstreams for test_proxy.py: HTTP/1.1 origins on 127.0.0.1, in the test's
own process (threads, raw sockets), that answer well or misbehave on
purpose, and record what they were sent.  Python standard library only.

Upstream(tag) listens on port 0 and serves keep-alive connections, one thread
each.  Every response carries "X-Upstream: <tag>".  By the last segment of
the request path (so "/api/x/echo" is "echo"; the query is for parameters):

  echo (and anything   200 JSON {"tag", "method", "target", "headers": [[name,
  not listed below)    value], ...] as received, "body_len", "body_ok",
                       "body" (the first 4 KiB, latin-1)}.  The body is read
                       whatever its framing (Content-Length or chunked) and
                       checked against the pattern (pattern_pieces) when the
                       query has pattern=1 (body_ok: the first mismatch's
                       offset, or true).
  download?n=N         N bytes of the pattern, with a Content-Length (HEAD: the
                       same head, no body); 304 when If-None-Match is "v1"
  hold?id=K            noted as arrived (arrived(K) returns), then held until
                       release(K) (200 "held K"), until the peer closes the
                       connection (closed(K) returns then), or 30 s
  garbage              bytes that are no HTTP response, then held until the
                       peer closes
  close-mid-headers    half a status line and a field, then closes
  cut-length?n=N&m=M   a head with Content-Length N, M < N bytes of the pattern,
                       then closes
  cut-chunked?m=M      a chunked head, M bytes of the pattern in chunks of 1000,
                       no last chunk, then closes
  hop-response         a chunked "hop body" with every hop-by-hop field set
                       (Connection naming X-Hop-Resp, X-Hop-Resp, Keep-Alive,
                       Trailer, Upgrade, Proxy-Authenticate, Proxy-Extra) and
                       end-to-end ones (X-End-To-End, Via: 1.1 origin)
  status?code=C[&length=N]  status C (204, 304...) and no body (with length:
                       "Content-Length: N" all the same, as a 304 may carry)
  two-connection       200 "two" with two Connection fields, "keep-alive" and
                       "X-Other" (naming X-Other, which is set too: "secret")
  events?id=K          server-sent events: a chunked head at once (then noted
                       as arrived: arrived(K)), and no body byte until
                       release("K.1") (the event "data: one"), then
                       release("K.2") ("data: two" and the last chunk); until
                       the peer closes or 30 s
  close-after          200 "closing" with a Content-Length and no "Connection:
                       close", and the connection closed right after it (a
                       server that drops a keep-alive connection once idle)

kill() closes the listening socket and every connection at once (a crashed
upstream: connects are refused); stop() is the same at the end of a case.
"""
import json
import random
import select
import socket
import struct
import threading
import time
from urllib.parse import parse_qs, urlsplit

from harness import CaseFailure

HOST = "127.0.0.1"
PIECE = 1 << 20
# The pattern of bodies: piece i is its index (8 bytes, big-endian) and
# then BASE[8:], so that a piece lost, repeated or out of order is seen.
BASE = random.Random(20240611).randbytes(PIECE)
HOLD_MAX = 30.0


def piece(i, n=PIECE):
    """Piece i of the pattern, its first n bytes."""
    return (struct.pack(">Q", i) + BASE[8:n])[:n]


def pattern_pieces(total):
    """The first `total` bytes of the pattern, piece by piece."""
    i = 0
    while total > 0:
        n = min(PIECE, total)
        yield piece(i, n)
        total -= n
        i += 1


class PatternCheck:
    """Checks a stream of bytes against the pattern as it is fed in pieces
    of any size.  count: bytes fed; bad: the offset of the first piece that
    differs (None while all agree)."""

    def __init__(self):
        self.buf = bytearray(PIECE)
        self.fill = 0
        self.index = 0
        self.count = 0
        self.bad = None

    def feed(self, data):
        mv = memoryview(data)
        self.count += len(mv)
        while len(mv):
            n = min(len(mv), PIECE - self.fill)
            self.buf[self.fill:self.fill + n] = mv[:n]
            self.fill += n
            mv = mv[n:]
            if self.fill == PIECE:
                self._compare()

    def _compare(self):
        if self.bad is None and bytes(self.buf[:self.fill]) != piece(self.index, self.fill):
            self.bad = self.index * PIECE
        self.index += 1
        self.fill = 0

    def finish(self):
        """Checks the last partial piece; returns whether everything agreed."""
        if self.fill:
            self._compare()
        return self.bad is None


class Peer:
    """A connection's socket with a read buffer."""

    def __init__(self, sock):
        self.s = sock
        self.buf = bytearray()
        self.chunk = bytearray(256 * 1024)

    def _fill(self):
        n = self.s.recv_into(self.chunk)
        if n == 0:
            raise EOFError
        self.buf += memoryview(self.chunk)[:n]

    def read_until(self, delim, limit=64 * 1024):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes" % (delim, limit))
            self._fill()

    def read_into(self, n, sink):
        """Passes the next n bytes to sink(memoryview), buffered ones first."""
        if self.buf:
            k = min(n, len(self.buf))
            sink(memoryview(self.buf)[:k])
            del self.buf[:k]
            n -= k
        while n > 0:
            got = self.s.recv_into(self.chunk, min(n, len(self.chunk)))
            if got == 0:
                raise EOFError
            sink(memoryview(self.chunk)[:got])
            n -= got

    def closed_by_peer(self, timeout):
        """Waits up to timeout for the peer to close (or send something);
        returns True on EOF or reset."""
        if self.buf:
            return False
        r, _, _ = select.select([self.s], [], [], timeout)
        if not r:
            return False
        try:
            d = self.s.recv(65536)
        except OSError:
            return True
        if not d:
            return True
        self.buf += d
        return False


class Upstream:
    def __init__(self, tag, port=0):
        self.tag = tag
        self.cond = threading.Condition()
        self.requests = []  # (method, target, [(name, value)]) in arrival order
        self.accepts = 0
        self.conns_closed = 0
        self.arrived_ids = set()
        self.released = set()
        self.closed_ids = set()
        self.errors = []
        self.socks = set()
        self.dead = False
        self.ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind((HOST, port))
        self.ls.listen(128)
        self.port = self.ls.getsockname()[1]
        self.url = "http://%s:%d" % (HOST, self.port)
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    # ---- what the test asks ----

    def count(self):
        with self.cond:
            return len(self.requests)

    def last(self):
        with self.cond:
            return self.requests[-1] if self.requests else None

    def _wait(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaseFailure("upstream %s: no %s within %.1f s"
                                      % (self.tag, what, timeout))
                self.cond.wait(left)

    def arrived(self, k, timeout):
        """Waits until the request hold?id=k has arrived."""
        self._wait(lambda: k in self.arrived_ids, timeout, "hold?id=%s" % k)

    def closed(self, k, timeout):
        """Waits until the connection of hold?id=k has been closed by the peer."""
        self._wait(lambda: k in self.closed_ids, timeout, "close of hold?id=%s" % k)

    def is_closed(self, k):
        with self.cond:
            return k in self.closed_ids

    def release(self, k):
        with self.cond:
            self.released.add(k)
            self.cond.notify_all()

    def kill(self):
        """Closes the listening socket and every connection: connects are
        refused from now on."""
        with self.cond:
            self.dead = True
            socks = list(self.socks)
            self.cond.notify_all()
        try:
            self.ls.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.ls.close()
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.acceptor.join(timeout=5)

    def stop(self):
        self.kill()
        for t in list(self.threads):
            t.join(timeout=5)

    # ---- serving ----

    def _accept(self):
        while True:
            try:
                s, _ = self.ls.accept()
            except OSError:
                return
            with self.cond:
                if self.dead:
                    s.close()
                    return
                self.accepts += 1
                self.socks.add(s)
            t = threading.Thread(target=self._serve, args=(s,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, s):
        peer = Peer(s)
        try:
            while self._one(peer):
                pass
        except (EOFError, OSError):
            pass
        except Exception as e:  # noqa: BLE001 - the test reports it
            with self.cond:
                self.errors.append(repr(e))
        finally:
            with self.cond:
                self.socks.discard(s)
                self.conns_closed += 1
                self.cond.notify_all()
            s.close()

    def _one(self, peer):
        """Serves one request; returns whether the connection goes on."""
        try:
            head = peer.read_until(b"\r\n\r\n").decode("latin-1")
        except EOFError:
            return False
        lines = head.split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                headers.append((k.strip(), v.strip()))
        with self.cond:
            self.requests.append((method, target, headers))
            self.cond.notify_all()
        url = urlsplit(target)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        route = url.path.rstrip("/").rsplit("/", 1)[-1]
        lower = {k.lower(): v for k, v in headers}
        check = PatternCheck() if q.get("pattern") == "1" else None
        first = bytearray()

        def sink(mv):
            if check:
                check.feed(mv)
            else:
                sink.count += len(mv)
            if len(first) < 4096:
                first.extend(mv[:4096 - len(first)])
        sink.count = 0
        if "chunked" in lower.get("transfer-encoding", "").lower():
            while True:
                size = int(peer.read_until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    while peer.read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                peer.read_into(size, sink)
                if peer.read_until(b"\r\n") != b"\r\n":
                    raise ValueError("chunk data not followed by CRLF")
        elif "content-length" in lower:
            peer.read_into(int(lower["content-length"]), sink)
        handler = getattr(self, "_r_" + route.replace("-", "_"), self._r_echo)
        return handler(peer, method, target, headers, q,
                       (check.count if check else sink.count,
                        (check.finish() or check.bad) if check else None, bytes(first)))

    def _send(self, peer, status, fields, body=b""):
        head = "HTTP/1.1 %s\r\nX-Upstream: %s\r\n" % (status, self.tag)
        head += "".join("%s: %s\r\n" % kv for kv in fields)
        peer.s.sendall(head.encode("latin-1") + b"\r\n" + body)

    def _r_echo(self, peer, method, target, headers, q, body):
        doc = {"tag": self.tag, "method": method, "target": target, "headers": headers,
               "body_len": body[0], "body_ok": body[1], "body": body[2].decode("latin-1")}
        data = json.dumps(doc).encode()
        self._send(peer, "200 OK", [("Content-Type", "application/json"),
                                    ("Content-Length", len(data))], data)
        return True

    def _r_download(self, peer, method, target, headers, q, body):
        n = int(q.get("n", "0"))
        if dict((k.lower(), v) for k, v in headers).get("if-none-match") == '"v1"':
            self._send(peer, "304 Not Modified", [("ETag", '"v1"')])
            return True
        self._send(peer, "200 OK", [("Content-Type", "application/octet-stream"),
                                    ("Content-Length", n), ("ETag", '"v1"')])
        if method != "HEAD":
            for p in pattern_pieces(n):
                peer.s.sendall(p)
        return True

    def _held(self, peer, k):
        """Waits until release(k) (or HOLD_MAX passes): True; False when the
        upstream is killed or the peer closes first (noted: closed(k))."""
        deadline = time.monotonic() + HOLD_MAX
        while time.monotonic() < deadline:
            with self.cond:
                if k in self.released:
                    break
                if self.dead:
                    return False
            if peer.closed_by_peer(0.01):
                with self.cond:
                    self.closed_ids.add(k)
                    self.cond.notify_all()
                return False
        return True

    def _arrived(self, k):
        with self.cond:
            self.arrived_ids.add(k)
            self.cond.notify_all()

    def _r_hold(self, peer, method, target, headers, q, body):
        k = q.get("id", "")
        self._arrived(k)
        if not self._held(peer, k):
            return False
        data = ("held %s" % k).encode()
        self._send(peer, "200 OK", [("Content-Type", "text/plain"), ("Content-Length", len(data))],
                   data)
        return True

    def _hold_until_closed(self, peer):
        deadline = time.monotonic() + HOLD_MAX
        while time.monotonic() < deadline and not self.dead:
            if peer.closed_by_peer(0.05):
                break
        return False

    def _r_garbage(self, peer, method, target, headers, q, body):
        peer.s.sendall(b"SPLAT \x01\x02 this is no HTTP\r\n\r\n")
        return self._hold_until_closed(peer)

    def _r_close_mid_headers(self, peer, method, target, headers, q, body):
        peer.s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
        return False

    def _r_cut_length(self, peer, method, target, headers, q, body):
        n, m = int(q["n"]), int(q["m"])
        self._send(peer, "200 OK", [("Content-Type", "application/octet-stream"),
                                    ("Content-Length", n)])
        for p in pattern_pieces(m):
            peer.s.sendall(p)
        return False

    def _r_cut_chunked(self, peer, method, target, headers, q, body):
        m = int(q["m"])
        self._send(peer, "200 OK", [("Content-Type", "application/octet-stream"),
                                    ("Transfer-Encoding", "chunked")])
        data = b"".join(pattern_pieces(m))
        for i in range(0, m, 1000):
            c = data[i:i + 1000]
            peer.s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
        return False

    def _r_hop_response(self, peer, method, target, headers, q, body):
        self._send(peer, "200 OK", [
            ("Content-Type", "text/plain"), ("Connection", "keep-alive, X-Hop-Resp"),
            ("X-Hop-Resp", "secret"), ("Keep-Alive", "timeout=5"), ("Trailer", "X-Trail"),
            ("Upgrade", "h2c"), ("Proxy-Authenticate", "Basic realm=x"),
            ("Proxy-Extra", "1"), ("X-End-To-End", "kept"), ("Via", "1.1 origin"),
            ("Transfer-Encoding", "chunked")])
        peer.s.sendall(b"4\r\nhop \r\n4\r\nbody\r\n0\r\nX-Trail: t\r\n\r\n")
        return True

    def _r_status(self, peer, method, target, headers, q, body):
        code = int(q["code"])
        reason = {204: "No Content", 304: "Not Modified"}.get(code, "Whatever")
        fields = [("ETag", '"v1"')]
        if "length" in q:
            fields.append(("Content-Length", q["length"]))  # and still no body
        self._send(peer, "%d %s" % (code, reason), fields)
        return True

    def _r_two_connection(self, peer, method, target, headers, q, body):
        self._send(peer, "200 OK", [
            ("Content-Type", "text/plain"), ("Connection", "keep-alive"),
            ("X-Kept", "yes"), ("Connection", "X-Other"), ("X-Other", "secret"),
            ("Content-Length", 3)], b"two")
        return True

    def _r_events(self, peer, method, target, headers, q, body):
        k = q.get("id", "")
        self._send(peer, "200 OK", [("Content-Type", "text/event-stream"),
                                    ("Cache-Control", "no-cache"),
                                    ("Transfer-Encoding", "chunked")])
        self._arrived(k)
        for n, event in (("1", b"data: one\n\n"), ("2", b"data: two\n\n")):
            if not self._held(peer, "%s.%s" % (k, n)):
                return False
            peer.s.sendall(b"%x\r\n%s\r\n" % (len(event), event))
        peer.s.sendall(b"0\r\n\r\n")
        return True

    def _r_close_after(self, peer, method, target, headers, q, body):
        self._send(peer, "200 OK", [("Content-Type", "text/plain"), ("Content-Length", 7)],
                   b"closing")
        return False  # closed by _serve, with no "Connection: close" said
