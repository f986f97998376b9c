#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Integration tests of WebSocket (RFC 6455, permessage-deflate RFC 7692)
against examples/chat-ws: GET /echo echoes every message (64 MiB limit,
permessage-deflate, subprotocols "v2.echo" then "v1.echo"), GET /chat is a
chat room (4096-byte limit, no compression, a member that does not read is
closed with 1008 "too slow").

    /usr/bin/python3 test_websocket.py --chat-ws build/examples/chat-ws/chat-ws [-k NAME]
                                       [--wrap "valgrind ..." [--slow 10]]

It needs Debian's python3-websockets (10.4: its asyncio client), hence
/usr/bin/python3; Node's ws (Debian's node-ws, /usr/share/nodejs/ws) is a
second client: without node or node-ws its cases print SKIP and pass.

Cases are named by the server they use: echo_* (Python websockets against
/echo), node_* (Node ws against /echo), raw_* (hand-built frames on a plain
socket: each protocol rule answered by the right close code, then the TCP
close), chat_* (the room, a member that does not read), all on one shared
server; drain_* (SIGTERM: close 1001 to every WebSocket, exit 0) and mem_*
(1,000 idle WebSockets) start servers of their own.  Every wait has a
deadline, every process started is killed when its case ends, pass or fail;
each server must exit 0 on SIGTERM, and a sanitizer or valgrind report in
its output fails the case (harness.py).  Under --wrap deadlines grow by
--slow and the memory case is skipped, visibly.
"""
import argparse
import asyncio
import base64
import functools
import hashlib
import json
import os
import resource
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import harness
from harness import DEADLINE, HOST, MIB, CaseFailure, Conn, check, pick, run_case

try:
    import websockets
except ImportError:  # reported by main()
    websockets = None

ARGS = None
NODE_WS = "/usr/share/nodejs/ws"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The example's limits (examples/chat-ws/main.c).
ECHO_MAX = 64 * MIB
CHAT_MAX = 4096

# Opcodes.
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
RSV1, RSV2, RSV3 = 0x40, 0x20, 0x10

Server = functools.partial(harness.Server, env_drop=("CORIO_",))


def run(coro, timeout=None):
    """Runs an asyncio coroutine to its end, within timeout (DEADLINE)."""
    return asyncio.run(asyncio.wait_for(coro, DEADLINE if timeout is None else timeout))


def ws_url(port, path="/echo"):
    return "ws://%s:%d%s" % (HOST, port, path)


def connect(port, path="/echo", **kw):
    """websockets.connect with deadlines of DEADLINE and no keep-alive pings
    of its own (they would blur what a case sees)."""
    kw.setdefault("open_timeout", DEADLINE)
    kw.setdefault("close_timeout", DEADLINE)
    kw.setdefault("ping_interval", None)
    return websockets.connect(ws_url(port, path), **kw)


# ---- raw WebSocket frames ------------------------------------------------------------------

def frame(opcode, payload=b"", fin=True, flags=0, mask=True, length=None):
    """One frame as bytes: opcode, payload, FIN, extra bits of byte 0 (RSV1..3),
    masked with a random key unless mask is false; length overrides the
    announced payload length (only the head is built then if payload is
    empty)."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | flags | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n <= 0xFFFF:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + xor_mask(payload, key)


def xor_mask(data, key):
    if not data:
        return b""
    k = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(
        len(data), "little")


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


def deflate_raw(data, level=9):
    """A permessage-deflate payload: raw deflate, sync-flushed, without the
    trailing 00 00 ff ff (RFC 7692 7.2.1)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    check(out.endswith(b"\x00\x00\xff\xff"), "zlib's sync flush without its empty block")
    return out[:-4]


def inflate_raw(payload, d=None):
    """A permessage-deflate payload inflated, with the inflater d (its
    context kept from message to message) or a new one."""
    d = d or zlib.decompressobj(-15)
    return d.decompress(payload + b"\x00\x00\xff\xff")


class WsConn(Conn):
    """A WebSocket client on a raw socket (harness.Conn's buffer): the
    opening handshake checked, frames sent as built and read as they come."""

    def __init__(self, port, path="/echo", headers=(), deflate=False, rcvbuf=None,
                 after_head=b"", timeout=None):
        super().__init__(port, rcvbuf=rcvbuf, timeout=timeout)
        self.controls = []  # control frames read_message() met
        try:
            self._handshake(port, path, headers, deflate, after_head)
        except BaseException:
            self.close()
            raise

    def _handshake(self, port, path, headers, deflate, after_head):
        key = base64.b64encode(os.urandom(16))
        lines = [b"GET %s HTTP/1.1" % path.encode(), b"Host: %s:%d" % (HOST.encode(), port),
                 b"Upgrade: websocket", b"Connection: Upgrade",
                 b"Sec-WebSocket-Key: " + key, b"Sec-WebSocket-Version: 13"]
        if deflate:  # True, or the offer's parameters
            lines.append(b"Sec-WebSocket-Extensions: permessage-deflate"
                         + (b"; " + deflate.encode() if isinstance(deflate, str) else b""))
        lines += [h.encode() if isinstance(h, str) else h for h in headers]
        self.send(b"\r\n".join(lines) + b"\r\n\r\n" + after_head)
        status, self.hdrs, raw = self.read_head()
        check(status == 101, "handshake answered %d:\n%s" % (status, raw.decode("latin-1")))
        want = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        check(self.hdrs.get("sec-websocket-accept") == want,
              "Sec-WebSocket-Accept %r, want %r" % (self.hdrs.get("sec-websocket-accept"), want))
        check(self.hdrs.get("upgrade", "").lower() == "websocket", "Upgrade %r" % self.hdrs)
        check("upgrade" in self.hdrs.get("connection", "").lower(), "Connection %r" % self.hdrs)
        ext = self.hdrs.get("sec-websocket-extensions", "")
        self.deflate = ext.startswith("permessage-deflate")
        # The server's compression context, kept between messages unless
        # it said server_no_context_takeover.
        self.inflater = zlib.decompressobj(-15)
        check(self.deflate == bool(deflate), "offered deflate=%s, answered %r" % (deflate, ext))

    def send_frame(self, opcode, payload=b"", **kw):
        self.send(frame(opcode, payload, **kw))

    def read_frame(self):
        """The next frame: (fin, rsv bits, opcode, payload).  Server frames
        are never masked."""
        b0, b1 = self.read_exact(2)
        check(not b1 & 0x80, "a masked frame from the server")
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(self.read_exact(2), "big")
        elif n == 127:
            n = int.from_bytes(self.read_exact(8), "big")
        return bool(b0 & 0x80), b0 & 0x70, b0 & 0x0F, self.read_exact(n)

    def read_message(self):
        """The next data message, fragments joined and inflated (the
        control frames met on the way are appended to self.controls):
        (opcode, payload)."""
        parts, op, compressed = [], None, False
        while True:
            fin, rsv, opcode, data = self.read_frame()
            if opcode >= 0x8:
                check(fin, "a fragmented control frame")
                if opcode == CLOSE:
                    raise CaseFailure("close frame %r instead of a message" % (data[:40],))
                self.controls.append((opcode, data))
                continue
            if op is None:
                check(opcode in (TEXT, BINARY), "message starts with opcode %d" % opcode)
                op, compressed = opcode, bool(rsv & RSV1)
            else:
                check(opcode == CONT and rsv == 0, "fragment opcode %d rsv %x" % (opcode, rsv))
            parts.append(data)
            if fin:
                body = b"".join(parts)
                if compressed and "server_no_context_takeover" in self.hdrs.get(
                        "sec-websocket-extensions", ""):
                    self.inflater = zlib.decompressobj(-15)
                return op, inflate_raw(body, self.inflater) if compressed else body

    def echo(self, opcode, payload, **kw):
        self.controls = []
        self.send_frame(opcode, payload, **kw)
        return self.read_message()

    def read_close(self):
        """Reads frames up to the server's close, skipping data frames:
        (code or None, reason bytes, frames skipped)."""
        skipped = 0
        while True:
            fin, _, opcode, data = self.read_frame()
            if opcode == CLOSE:
                check(fin, "a fragmented close frame")
                check(len(data) != 1, "a close payload of 1 byte")
                if not data:
                    return None, b"", skipped
                return int.from_bytes(data[:2], "big"), data[2:], skipped
            skipped += 1

    def wait_tcp_close(self, timeout=None):
        """Asserts that the server closes the connection (EOF or a reset)
        within timeout, with nothing more sent; returns how long it took."""
        timeout = DEADLINE if timeout is None else timeout
        t0 = time.monotonic()
        self.s.settimeout(timeout)
        try:
            rest = self.read_to_eof()
        except socket.timeout:
            raise CaseFailure("the server kept the TCP connection open %.1f s" % timeout) from None
        except ConnectionResetError:
            rest = bytes(self.buf)
        check(rest == b"", "bytes after the close frame: %r" % rest[:60])
        return time.monotonic() - t0


def expect_fail_close(c, code, what):
    """After a broken rule: the server's close with `code`, then the TCP close."""
    try:
        got, reason, skipped = c.read_close()
    except (EOFError, ConnectionResetError) as e:
        raise CaseFailure("%s: the connection ended without a close frame (%r)" % (what, e)) from None
    check(skipped == 0, "%s: %d data frame(s) before the close" % (what, skipped))
    check(got == code, "%s: close code %r (reason %r), want %d" % (what, got, reason, code))
    c.wait_tcp_close()
    return reason


def violation(port, frames, code, what, path="/echo", deflate=False):
    """Opens a WebSocket, sends frames (bytes, one write each) and expects
    the close `code`, then the TCP close."""
    c = WsConn(port, path, deflate=deflate)
    try:
        for f in frames:
            c.send(f)
        return expect_fail_close(c, code, what)
    finally:
        c.close()


# ---- echo with Python's websockets ------------------------------------------------------------

def case_echo_text_binary_empty(t):
    async def go():
        async with connect(t.srv.port) as ws:
            for msg in ["hello", "h\u00e9llo w\u00f6rld \u2603 \U0001F600", "", b"", b"\x00\xff" * 50,
                        bytes(range(256))]:
                await ws.send(msg)
                back = await ws.recv()
                check(type(back) is type(msg) and back == msg,
                      "sent %r, echoed %r" % (msg[:40], back[:40]))
    run(go())


def case_echo_16mib_binary(t):
    data = os.urandom(16 * MIB)

    async def go():
        async with connect(t.srv.port, max_size=None) as ws:
            await ws.send(data)
            back = await ws.recv()
            check(isinstance(back, bytes) and len(back) == len(data),
                  "echoed %s of %d bytes" % (type(back).__name__, len(back)))
            check(back == data, "16 MiB echoed with different bytes")
    run(go(), DEADLINE * 3)


def case_echo_fragmented_from_client(t):
    async def go():
        async with connect(t.srv.port, compression=None) as ws:
            await ws.send(["frag-one ", "", "frag-two \u00e9", " frag-three"])
            back = await ws.recv()
            check(back == "frag-one frag-two \u00e9 frag-three", "text fragments echoed as %r" % back)
            await ws.send([b"\x01" * 70000, b"\x02" * 3, b"\x03" * 100000])
            back = await ws.recv()
            check(back == b"\x01" * 70000 + b"\x02" * 3 + b"\x03" * 100000,
                  "binary fragments echoed as %d bytes" % len(back))
    run(go())


def case_echo_ping_pong(t):
    async def go():
        async with connect(t.srv.port) as ws:
            for payload in (b"", b"abc", b"p" * 125):
                waiter = await ws.ping(payload)
                await asyncio.wait_for(waiter, DEADLINE)
            await ws.send("still open")
            check(await ws.recv() == "still open", "echo after pings")
    run(go())


def case_echo_client_close_codes_echoed(t):
    async def go():
        for code, reason in ((1000, ""), (4000, "client done"), (3001, "\u00e9t\u00e9")):
            async with connect(t.srv.port) as ws:
                await ws.send("x")
                await ws.recv()
                await ws.close(code, reason)
                check(ws.close_code == code, "closed with %d, the server answered %r (%r)"
                      % (code, ws.close_code, ws.close_reason))
    run(go())


async def roundtrip(ws, data):
    await ws.send(data)
    back = await ws.recv()
    check(back == data, "%d bytes (%s) echoed as %d bytes" % (len(data), type(data).__name__,
                                                             len(back)))


def payloads():
    rnd = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "\u00e9t\u00e9", "\u2603"]
    text = " ".join(rnd.choice(words) for _ in range(200000))  # ~1.2 MB, compressible
    return [text, text.encode() * 2, os.urandom(3 * MIB), "short", b"x" * 127, b"y" * 129]


def case_echo_permessage_deflate_on(t):
    async def go():
        async with connect(t.srv.port, max_size=None) as ws:
            names = [e.name for e in ws.extensions]
            check(names == ["permessage-deflate"], "extensions %r" % names)
            for p in payloads():
                await roundtrip(ws, p)
    run(go(), DEADLINE * 2)


def case_echo_permessage_deflate_off(t):
    async def go():
        async with connect(t.srv.port, max_size=None, compression=None) as ws:
            check(ws.extensions == [], "extensions %r without an offer" % ws.extensions)
            for p in payloads():
                await roundtrip(ws, p)
    run(go(), DEADLINE * 2)


def case_echo_subprotocol_server_preference(t):
    async def go():
        async with connect(t.srv.port, subprotocols=["v1.echo", "v2.echo"]) as ws:
            check(ws.subprotocol == "v2.echo", "offered v1.echo, v2.echo: got %r" % ws.subprotocol)
            await roundtrip(ws, "sub")
        async with connect(t.srv.port, subprotocols=["v1.echo"]) as ws:
            check(ws.subprotocol == "v1.echo", "offered v1.echo: got %r" % ws.subprotocol)
        async with connect(t.srv.port, subprotocols=["other"]) as ws:
            check(ws.subprotocol is None, "offered other: got %r" % ws.subprotocol)
            await roundtrip(ws, "none")
    run(go())


# ---- Node's ws ----------------------------------------------------------------------------------

NODE_CLIENT = r"""
const WebSocket = require(process.argv[1]);
const cfg = JSON.parse(process.argv[2]);
const crypto = require('crypto');
const out = {steps: []};
const done = (code) => { process.stdout.write(JSON.stringify(out) + '\n'); process.exit(code); };
setTimeout(() => { out.error = 'node client timed out'; done(1); }, cfg.timeout_ms);
const ws = new WebSocket(cfg.url, cfg.protocols || [], {perMessageDeflate: cfg.deflate,
                                                         maxPayload: 0});
ws.binaryType = 'nodebuffer';
const big = crypto.randomBytes(16 * 1024 * 1024);
const tests = [
  ['text', 'h\u00e9llo from node \u2603', false],
  ['binary', Buffer.from([0, 1, 2, 255, 254, 0]), true],
  ['empty', '', false],
  ['compressible', 'node '.repeat(200000), false],
  ['random16mib', big, true],
];
let i = 0, waiting = null;
function next() {
  if (i < tests.length) {
    const [name, data, bin] = tests[i++];
    waiting = {name, data, bin};
    ws.send(data, {binary: bin});
    return;
  }
  waiting = null;
  ws.once('pong', (data) => {
    out.steps.push({name: 'pong', ok: data.toString() === 'node-ping', got: data.toString()});
    ws.close(4001, 'node done');
  });
  ws.ping('node-ping');
}
ws.on('open', () => {
  out.extensions = ws.extensions;
  out.protocol = ws.protocol;
  next();
});
ws.on('message', (data, isBinary) => {
  if (!waiting) { out.steps.push({name: 'unexpected', ok: false}); return; }
  const {name, data: sent, bin} = waiting;
  const want = Buffer.isBuffer(sent) ? sent : Buffer.from(sent);
  out.steps.push({name, ok: isBinary === bin && Buffer.compare(data, want) === 0,
                  binary: isBinary, len: data.length, want_len: want.length});
  next();
});
ws.on('close', (code, reason) => {
  out.close = {code, reason: reason.toString()};
  done(0);
});
ws.on('error', (e) => { out.error = String(e); });
"""


def node_available():
    node = shutil.which("node")
    if not node or not os.path.isdir(NODE_WS):
        return None
    return node


def node_run(port, deflate, protocols=None):
    node = node_available()
    if not node:
        print("    SKIP: node or Node's ws (Debian's node-ws, %s) is missing" % NODE_WS, flush=True)
        return None
    cfg = {"url": ws_url(port), "deflate": deflate, "protocols": protocols or [],
           "timeout_ms": int(DEADLINE * 3 * 1000)}
    p = subprocess.run([node, "-e", NODE_CLIENT, NODE_WS, json.dumps(cfg)], capture_output=True,
                       timeout=DEADLINE * 3 + 5)
    try:
        out = json.loads(p.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise CaseFailure("node exited %d: %s %s" % (p.returncode, p.stdout[-300:],
                                                     p.stderr[-500:])) from None
    check(p.returncode == 0 and "error" not in out,
          "node exited %d: %r %s" % (p.returncode, out, p.stderr[-300:]))
    names = [s["name"] for s in out["steps"]]
    check(names == ["text", "binary", "empty", "compressible", "random16mib", "pong"],
          "steps %r" % out["steps"])
    bad = [s for s in out["steps"] if not s["ok"]]
    check(not bad, "steps failed: %r" % bad)
    check(out["close"]["code"] == 4001, "closed with 4001, the server answered %r" % out["close"])
    return out


def case_node_echo_deflate_on(t):
    out = node_run(t.srv.port, True, ["v1.echo", "v2.echo"])
    if out:
        check(out["extensions"] == "permessage-deflate", "extensions %r" % out["extensions"])
        check(out["protocol"] == "v2.echo", "subprotocol %r" % out["protocol"])


def case_node_echo_deflate_off(t):
    out = node_run(t.srv.port, False)
    if out:
        check(out["extensions"] == "", "extensions %r" % out["extensions"])
        check(out["protocol"] == "", "subprotocol %r" % out["protocol"])


# ---- raw frames: the protocol's rules -----------------------------------------------------------

def case_raw_echo_and_frames_unmasked(t):
    c = WsConn(t.srv.port)
    try:
        check(c.hdrs.get("sec-websocket-protocol") is None, "a subprotocol nobody asked for")
        check(c.echo(TEXT, b"raw") == (TEXT, b"raw"), "text echo")
        check(c.echo(BINARY, b"\x00" * 70000) == (BINARY, b"\x00" * 70000), "binary echo")
        c.send_frame(CLOSE, close_payload(1000))
        code, _, skipped = c.read_close()
        check(code == 1000 and skipped == 0, "close echoed as %r" % code)
        c.wait_tcp_close()
    finally:
        c.close()


def case_raw_unmasked_client_frame_is_1002(t):
    violation(t.srv.port, [frame(TEXT, b"no mask", mask=False)], 1002, "unmasked text")


def case_raw_reserved_opcode_is_1002(t):
    violation(t.srv.port, [frame(0x3, b"x")], 1002, "opcode 0x3")
    violation(t.srv.port, [frame(0xB, b"x")], 1002, "opcode 0xB")


def case_raw_reserved_bits_are_1002(t):
    violation(t.srv.port, [frame(TEXT, b"x", flags=RSV2)], 1002, "RSV2")
    violation(t.srv.port, [frame(TEXT, b"x", flags=RSV3)], 1002, "RSV3")
    violation(t.srv.port, [frame(TEXT, b"x", flags=RSV1)], 1002, "RSV1 without deflate")
    # Negotiated, RSV1 is for a data message's first frame only.
    violation(t.srv.port, [frame(PING, b"x", flags=RSV1)], 1002, "RSV1 on a ping",
              deflate=True)


def case_raw_frame_order_is_1002(t):
    violation(t.srv.port, [frame(CONT, b"orphan")], 1002, "a continuation with no message")
    violation(t.srv.port, [frame(TEXT, b"part", fin=False), frame(TEXT, b"new")], 1002,
              "a text frame inside a fragmented message")
    violation(t.srv.port, [frame(BINARY, b"part", fin=False), frame(BINARY, b"new", fin=False)],
              1002, "a binary frame inside a fragmented message")


def case_raw_control_frame_rules_are_1002(t):
    violation(t.srv.port, [frame(PING, b"p" * 126)], 1002, "a ping of 126 bytes")
    violation(t.srv.port, [frame(PING, b"p", fin=False)], 1002, "a fragmented ping")
    violation(t.srv.port, [frame(PONG, b"p" * 126)], 1002, "a pong of 126 bytes")


def case_raw_invalid_utf8_is_1007(t):
    violation(t.srv.port, [frame(TEXT, b"ok \xff bad")], 1007, "invalid UTF-8")
    violation(t.srv.port, [frame(TEXT, b"\xed\xa0\x80")], 1007, "a UTF-16 surrogate")
    violation(t.srv.port, [frame(TEXT, b"\xc0\xaf")], 1007, "an overlong encoding")
    violation(t.srv.port, [frame(TEXT, b"cut \xe2\x82")], 1007, "a character cut at the end")
    # The bad sequence straddles two fragments: E2 82 | 28.
    violation(t.srv.port, [frame(TEXT, b"abc \xe2\x82", fin=False), frame(CONT, b"(def")], 1007,
              "invalid UTF-8 across two fragments")


def case_raw_utf8_character_split_across_fragments_is_echoed(t):
    c = WsConn(t.srv.port)
    try:
        euro = "\u20ac".encode()  # E2 82 AC
        c.controls = []
        c.send_frame(TEXT, b"price " + euro[:1], fin=False)
        c.send_frame(CONT, euro[1:2], fin=False)
        c.send_frame(CONT, euro[2:] + b" \xf0\x9f", fin=False)
        c.send_frame(CONT, b"\x98\x80")
        op, data = c.read_message()
        check((op, data) == (TEXT, b"price \xe2\x82\xac \xf0\x9f\x98\x80"),
              "echoed %r %r" % (op, data))
    finally:
        c.close()


def case_raw_bad_close_frames(t):
    violation(t.srv.port, [frame(CLOSE, b"\x03")], 1002, "a close payload of 1 byte")
    violation(t.srv.port, [frame(CLOSE, close_payload(1005))], 1002, "close code 1005")
    violation(t.srv.port, [frame(CLOSE, close_payload(999))], 1002, "close code 999")
    violation(t.srv.port, [frame(CLOSE, close_payload(1006))], 1002, "close code 1006")
    violation(t.srv.port, [frame(CLOSE, close_payload(5000))], 1002, "close code 5000")
    violation(t.srv.port, [frame(CLOSE, close_payload(1000, b"bad \xff"))], 1007,
              "a close reason that is not UTF-8")


def case_raw_close_echoed_and_server_closes_tcp_first(t):
    for payload, want in ((close_payload(1000, b"bye"), 1000), (close_payload(4321), 4321),
                          (b"", None)):
        c = WsConn(t.srv.port)
        try:
            check(c.echo(TEXT, b"before") == (TEXT, b"before"), "echo")
            c.send_frame(CLOSE, payload)
            code, reason, skipped = c.read_close()
            check(code == want and skipped == 0,
                  "sent close %r, the server answered %r %r" % (payload, code, reason))
            # We do not close: the server must close the TCP connection first.
            c.wait_tcp_close()
        finally:
            c.close()


def case_raw_message_over_echo_limit_is_1009_before_payload(t):
    c = WsConn(t.srv.port)
    try:
        # The head alone (2 + 8 length bytes + the key).
        c.send(frame(BINARY, length=ECHO_MAX + MIB)[:14])
        expect_fail_close(c, 1009, "a frame announcing 65 MiB")
    finally:
        c.close()
    # The limit counts the whole message: two 33 MiB fragments are over it.
    c = WsConn(t.srv.port)
    try:
        c.send(frame(BINARY, b"\x00" * (ECHO_MAX // 2 + MIB), fin=False))
        c.send(frame(CONT, length=ECHO_MAX // 2 + MIB)[:14])
        expect_fail_close(c, 1009, "fragments adding up to 66 MiB")
    finally:
        c.close()


def case_raw_message_over_chat_limit_is_1009(t):
    c = WsConn(t.srv.port, "/chat")
    try:
        c.send_frame(TEXT, b"a" * CHAT_MAX)  # at the limit: fine, broadcast back to us
        check(c.read_message() == (TEXT, b"a" * CHAT_MAX), "a message of 4096 bytes")
        c.send_frame(TEXT, b"b" * (CHAT_MAX + 1))
        expect_fail_close(c, 1009, "a message of 4097 bytes to /chat")
    finally:
        c.close()


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
            time.sleep(0.002)


def case_raw_zip_bomb_is_1009_with_bounded_memory(t):
    bomb = deflate_raw(b"\x00" * (100 * MIB))
    print("    100 MiB of zeros deflate to %d bytes" % len(bomb), flush=True)
    c = WsConn(t.srv.port, deflate=True)
    before = t.srv.rss_kib()
    sampler = RssSampler(t.srv)
    sampler.start()
    try:
        c.send_frame(BINARY, bomb, flags=RSV1)
        expect_fail_close(c, 1009, "a compressed message inflating to 100 MiB")
    finally:
        sampler.stop.set()
        sampler.join(timeout=2)
        c.close()
    grew = (sampler.peak - before) / 1024
    print("    VmRSS %d KiB before, peak %d KiB (+%.1f MiB; the limit is 64 MiB)"
          % (before, sampler.peak, grew), flush=True)
    if not t.srv.sanitized():
        check(grew < 80, "VmRSS grew by %.1f MiB for a message limited to 64 MiB" % grew)
    # A bomb in fragments, none of them over the limit: the total counts.
    # One compressor for the message, each fragment a sync flush (the
    # message does not end: every fragment keeps its 00 00 ff ff).
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    c = WsConn(t.srv.port, deflate=True)
    try:
        c.send_frame(BINARY, b"", fin=False, flags=RSV1)
        for _ in range(3):
            piece = comp.compress(b"\x00" * (30 * MIB)) + comp.flush(zlib.Z_SYNC_FLUSH)
            c.send_frame(CONT, piece, fin=False)
        expect_fail_close(c, 1009, "compressed fragments inflating to 90 MiB")
    finally:
        c.close()


def case_raw_failed_mid_compressed_message_next_connection_clean(t):
    # A compressed text message whose first byte is not UTF-8, then 1 MiB
    # more: the server fails it (1007) after inflating its first piece,
    # with most of the compressed input not yet through zlib, and the
    # connection's inflater goes back to the worker's cache.  The next
    # connection (Python's websockets, compressing) gets that inflater: it
    # must start clean, not read on in the failed connection's freed buffer.
    # (The offer is websockets': the same window, so the same cached state.)
    for i in range(3):
        c = WsConn(t.srv.port, deflate="client_max_window_bits")
        try:
            c.send_frame(TEXT, deflate_raw(b"\xff" + b"a" * MIB), flags=RSV1)
            expect_fail_close(c, 1007, "compressed text that is not UTF-8")
        finally:
            c.close()

        async def go():
            async with connect(t.srv.port) as ws:
                check([e.name for e in ws.extensions] == ["permessage-deflate"],
                      "no permessage-deflate")
                await roundtrip(ws, "after a failed connection %d " % i * 2000)
        run(go())


def case_mem_receive_budget_refuses_with_1013_and_gives_back(t):
    # --ws-budget 2: this worker's WebSockets hold at most 2 MiB in messages
    # being received beyond the first 64 KiB of each.  Raw clients each
    # send the start of a compressed message: 900 KiB of zeros in a few
    # hundred bytes, held in a 1 MiB buffer (960 KiB counted) while the
    # message waits for its end.  Two fit, the third is refused with 1013;
    # once the first two are done, Python's websockets sends 1.5 MiB.
    srv = Server(ARGS.chat_ws, "--ws-budget", "2")
    held, comps, zeros = [], [], b"\0" * (900 * 1024)
    try:
        for i in range(3):
            c = WsConn(srv.port, deflate=True)
            held.append(c)
            # One compressor per message; a fragment that does not end it
            # keeps its sync flush's 00 00 ff ff.
            comps.append(zlib.compressobj(9, zlib.DEFLATED, -15))
            start = comps[i].compress(zeros) + comps[i].flush(zlib.Z_SYNC_FLUSH)
            c.send_frame(BINARY, start, fin=False, flags=RSV1)
            if i < 2:
                # A ping behind the fragment: its pong says the fragment
                # was taken (inflated into the message's buffer).
                c.send_frame(PING, b"%d" % i)
                fin, _, op, data = c.read_frame()
                check(op == PONG and data == b"%d" % i, "conn %d: %r %r" % (i, op, data[:40]))
            else:
                expect_fail_close(c, 1013, "a third message past the budget")
        for c, comp in zip(held[:2], comps):  # the two end their messages: echoed whole
            c.send_frame(CONT, (comp.compress(b"end") + comp.flush(zlib.Z_SYNC_FLUSH))[:-4])
            op, data = c.read_message()
            check(op == BINARY and data == zeros + b"end", "an echo of %d bytes" % len(data))
            c.send_frame(CLOSE, close_payload(1000))
            code, _, _ = c.read_close()
            check(code == 1000, "close %r" % code)

        async def go():
            async with connect(srv.port, max_size=None) as ws:
                await roundtrip(ws, b"\1" * (1536 * 1024))
        run(go())
        srv.stop()
    finally:
        for c in held:
            c.close()
        srv.kill()


def case_raw_server_compresses_when_negotiated(t):
    c = WsConn(t.srv.port, deflate=True)
    try:
        text = b"compress me " * 1000
        c.send_frame(TEXT, text)
        fin, rsv, op, data = c.read_frame()
        check(fin and op == TEXT and rsv == RSV1, "echo frame fin=%s rsv=%x op=%d" % (fin, rsv, op))
        check(len(data) < len(text) // 10, "%d bytes compressed to %d" % (len(text), len(data)))
        check(inflate_raw(data, c.inflater) == text,
              "the compressed echo inflates to something else")
        # Our compressed message, context kept from one message to the next
        # (no *_no_context_takeover was agreed): two in a row with one compressor.
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        for msg in (b"first message " * 50, b"first message " * 50 + b"second"):
            out = comp.compress(msg) + comp.flush(zlib.Z_SYNC_FLUSH)
            c.controls = []
            c.send_frame(BINARY, out[:-4], flags=RSV1)
            check(c.read_message() == (BINARY, msg), "a compressed message echoed wrong")
        # Short messages go uncompressed.
        c.send_frame(TEXT, b"tiny")
        fin, rsv, op, data = c.read_frame()
        check(rsv == 0 and data == b"tiny", "a 4-byte echo rsv=%x %r" % (rsv, data))
        # Broken deflate data: 1007.
        c.send_frame(BINARY, b"\xff\xff\xff\xff\xff", flags=RSV1)
        expect_fail_close(c, 1007, "compressed data that is not deflate")
    finally:
        c.close()


def case_raw_ping_inside_fragmented_message_answered_at_once(t):
    c = WsConn(t.srv.port)
    try:
        c.send_frame(TEXT, b"first half, ", fin=False)
        c.send_frame(PING, b"in the middle")
        fin, _, op, data = c.read_frame()  # before the message ends
        check((fin, op, data) == (True, PONG, b"in the middle"),
              "answer to a ping inside a message: fin=%s op=%d %r" % (fin, op, data))
        c.send_frame(CONT, b"second half", fin=False)
        c.send_frame(PING, b"")
        fin, _, op, data = c.read_frame()
        check((op, data) == (PONG, b""), "second pong: op=%d %r" % (op, data))
        c.send_frame(CONT, b".")
        c.controls = []
        check(c.read_message() == (TEXT, b"first half, second half."), "message after pings")
        check(c.controls == [], "extra control frames %r" % c.controls)
    finally:
        c.close()


def case_raw_peer_not_answering_server_close(t):
    c = WsConn(t.srv.port)
    try:
        c.send_frame(TEXT, b"\xff")
        code, _, _ = c.read_close()
        check(code == 1007, "close code %r" % code)
        took = c.wait_tcp_close(10 * harness.SLOW)  # we neither answer nor close
        print("    TCP closed %.2f s after the server's close" % took, flush=True)
    finally:
        c.close()


def case_raw_frame_in_same_write_as_upgrade_is_echoed(t):
    first = frame(TEXT, b"eager") + frame(BINARY, b"\x01\x02") + frame(PING, b"eager ping")
    c = WsConn(t.srv.port, after_head=first)
    try:
        c.controls = []
        check(c.read_message() == (TEXT, b"eager"), "the first frame after the head")
        got = c.read_message()
        check(got == (BINARY, b"\x01\x02"), "the second: %r" % (got,))
        if not c.controls:
            fin, _, op, data = c.read_frame()
            c.controls.append((op, data))
        check(c.controls == [(PONG, b"eager ping")], "controls %r" % c.controls)
    finally:
        c.close()


def handshake_request(path="/echo", method="GET", drop=(), extra=(), version="13",
                      key=None):
    fields = {"Host": "x", "Upgrade": "websocket", "Connection": "Upgrade",
              "Sec-WebSocket-Key": key or base64.b64encode(os.urandom(16)).decode(),
              "Sec-WebSocket-Version": version}
    for d in drop:
        del fields[d]
    lines = ["%s %s HTTP/1.1" % (method, path)] + ["%s: %s" % kv for kv in fields.items()]
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def refused(port, raw, what):
    """Sends a request; returns (status, headers, body, whether the server
    then closed the connection, the status of a plain GET / sent next on
    the same connection or None)."""
    c = Conn(port)
    try:
        c.send(raw)
        status, hdrs, body, _ = c.response()
        check(status != 101, "%s: switched protocols" % what)
        try:
            c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            st2 = c.response()[0]
        except (EOFError, ConnectionResetError, BrokenPipeError):
            st2 = None
        return status, hdrs, body, st2
    finally:
        c.close()


def case_raw_handshake_refusals(t):
    p = t.srv.port
    st, h, body, after = refused(p, b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n", "a plain GET")
    check(st == 426 and h.get("upgrade", "").lower() == "websocket",
          "a plain GET /echo: %d %r" % (st, h))
    check(after == 200, "a plain GET refused: the next request on the connection got %r" % after)

    st, h, body, after = refused(p, handshake_request(version="8"), "version 8")
    check(st == 426 and h.get("sec-websocket-version") == "13", "version 8: %d %r" % (st, h))
    check(after is None, "after a refused upgrade request the connection stayed open (%r)"
          % after)

    st, h, body, after = refused(p, handshake_request(drop=["Sec-WebSocket-Version"]),
                                 "no version")
    check(st == 426 and h.get("sec-websocket-version") == "13", "no version: %d %r" % (st, h))

    st, h, body, after = refused(p, handshake_request(drop=["Sec-WebSocket-Key"]), "no key")
    check(st == 400, "no Sec-WebSocket-Key: %d %r" % (st, body))
    check(after is None, "after a refused upgrade request the connection stayed open (%r)"
          % after)
    for bad in ("short", base64.b64encode(os.urandom(15)).decode(),
                base64.b64encode(os.urandom(17)).decode(), "!" * 24):
        st, _, body, _ = refused(p, handshake_request(key=bad), "key %r" % bad)
        check(st == 400, "Sec-WebSocket-Key %r: %d %r" % (bad, st, body))
    st, _, body, _ = refused(p, handshake_request(extra=["Sec-WebSocket-Key: " +
                                                         base64.b64encode(b"k" * 16).decode()]),
                             "two keys")
    check(st == 400, "two Sec-WebSocket-Key lines: %d %r" % (st, body))

    st, _, body, _ = refused(p, handshake_request(drop=["Connection"]), "no Connection")
    check(st == 400, "no Connection: upgrade: %d %r" % (st, body))

    st, _, body, _ = refused(p, handshake_request(method="POST"), "POST")
    check(st in (400, 404, 405), "POST /echo with the upgrade fields: %d %r" % (st, body))

    st, _, body, _ = refused(p, handshake_request(path="/nowhere"), "unknown path")
    check(st == 404, "an upgrade to /nowhere: %d %r" % (st, body))

    c = Conn(p)
    try:
        c.send(handshake_request().replace(b"HTTP/1.1", b"HTTP/1.0", 1))
        st = c.response()[0]
        check(st == 400, "an HTTP/1.0 handshake: %d" % st)
    finally:
        c.close()

    # Fields on several lines and in other cases are read whole.
    c = WsConn(p, headers=["Connection: keep-alive", "upgrade: WebSocket",
                           "Sec-WebSocket-Protocol: x.y", "Sec-WebSocket-Protocol: v1.echo"])
    try:
        check(c.hdrs.get("sec-websocket-protocol") == "v1.echo", "subprotocol %r" % c.hdrs)
        check(c.echo(TEXT, b"ok") == (TEXT, b"ok"), "echo after a handshake on several lines")
    finally:
        c.close()


def case_raw_426_lists_upgrade_in_connection(t):
    """RFC 9110 7.8: "A sender of Upgrade MUST also send an 'Upgrade'
    connection option in the Connection header field" (the 426 example
    of 15.5.22 has "Connection: Upgrade")."""
    for what, raw in (("a plain GET /echo", b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n"),
                      ("Sec-WebSocket-Version: 8", handshake_request(version="8"))):
        st, h, _, _ = refused(t.srv.port, raw, what)
        check(st == 426 and "upgrade" in h, "%s: %d %r" % (what, st, h))
        tokens = [x.strip().lower() for x in h.get("connection", "").split(",")]
        check("upgrade" in tokens, "%s: 426 with Upgrade: %s but Connection: %r"
              % (what, h["upgrade"], h.get("connection")))


# ---- the chat room ----------------------------------------------------------------------------

def case_chat_message_reaches_every_member(t):
    async def go():
        async with connect(t.srv.port, "/chat") as a, connect(t.srv.port, "/chat") as b, \
                connect(t.srv.port, "/chat") as c:
            members = [a, b, c]
            for i, sender in enumerate(members):
                text = "hello from %d \u2603" % i
                await sender.send(text)
                for j, m in enumerate(members):
                    got = await asyncio.wait_for(m.recv(), DEADLINE)
                    check(got == text, "member %d got %r, want %r" % (j, got, text))
            await members[0].send(b"binary is not broadcast")
            await members[0].send("after binary")
            for j, m in enumerate(members):
                got = await asyncio.wait_for(m.recv(), DEADLINE)
                check(got == "after binary", "member %d got %r" % (j, got))
    run(go())


def case_chat_slow_member_closed_others_unaffected(t):
    # 2,000 messages of 4,000 bytes (the room's limit is 4,096): 8 MB, more
    # than the server's socket send buffer can take (4 MiB at most here,
    # net.ipv4.tcp_wmem), whatever the slow member's receive buffer.
    n, size = 2000, 4000
    slow = WsConn(t.srv.port, "/chat", rcvbuf=4096)
    try:
        async def go():
            async with connect(t.srv.port, "/chat", max_queue=None) as sender, \
                    connect(t.srv.port, "/chat", max_queue=None) as other:
                # Fast members read as messages come; the sender keeps at
                # most `window` messages ahead of the slower of the two (one
                # event loop runs all three: without it the sender's loop
                # could starve the readers, which would then be the slow
                # ones).  The slow member is not waited for.
                window, counts, progress = 16, [0, 0], asyncio.Event()

                async def reader(k, ws):
                    got = []
                    while len(got) < n:
                        got.append(await ws.recv())
                        counts[k] = len(got)
                        progress.set()
                    return got

                readers = [asyncio.create_task(reader(k, w))
                           for k, w in enumerate((sender, other))]
                for i in range(n):
                    while min(counts) < i - window:
                        progress.clear()
                        await asyncio.wait_for(progress.wait(), DEADLINE)
                    await sender.send(("%05d:" % i).ljust(size, "."))
                results = await asyncio.wait_for(asyncio.gather(*readers), DEADLINE * 2)
                for who, got in zip(("the sender", "the other member"), results):
                    seq = [int(m[:5]) for m in got]
                    check(seq == list(range(n)), "%s got messages out of order or not all"
                          % who)
                    check(all(len(m) == size for m in got), "%s got a message cut" % who)
                # The room still works for the fast members.
                await other.send("still here")
                for ws in (sender, other):
                    check(await asyncio.wait_for(ws.recv(), DEADLINE) == "still here",
                          "a message after the flood")
        run(go(), DEADLINE * 3)
        # Now read the slow member: what was queued for it, then 1008 "too slow".
        got = 0
        try:
            while True:
                fin, _, op, data = slow.read_frame()
                if op == PING:
                    continue  # the keep-alive's, if the flood outlasted its interval
                if op == CLOSE:
                    code = int.from_bytes(data[:2], "big")
                    check(code == 1008 and data[2:] == b"too slow",
                          "the slow member closed with %r %r" % (code, data[2:]))
                    break
                check(op == TEXT and fin and data[5:6] == b":" and int(data[:5]) >= got,
                      "the slow member got %r after %d messages" % (data[:20], got))
                got += 1
        except (EOFError, ConnectionResetError):
            check(False, "the slow member's connection ended without a close (after %d "
                  "messages)" % got)
        print("    the slow member got %d of %d messages, then close 1008" % (got, n), flush=True)
        check(got < n, "the slow member got every message: it was not slow")
        slow.send_frame(CLOSE, close_payload(1000))
        slow.wait_tcp_close()
    finally:
        slow.close()


# ---- drain --------------------------------------------------------------------------------------

def case_drain_every_websocket_gets_1001(t):
    srv = Server(ARGS.chat_ws, "--drain-timeout", "5s")
    try:
        async def go():
            async with connect(srv.port, "/echo") as echo, connect(srv.port, "/chat") as chat:
                await echo.send("up")
                check(await echo.recv() == "up", "echo before the drain")
                await chat.send("up")
                check(await chat.recv() == "up", "chat before the drain")
                t0 = time.monotonic()
                srv.proc.send_signal(signal.SIGTERM)
                for name, ws in (("/echo", echo), ("/chat", chat)):
                    try:
                        got = await asyncio.wait_for(ws.recv(), DEADLINE)
                        raise CaseFailure("%s: a message %r instead of the close" % (name, got))
                    except websockets.ConnectionClosed:
                        pass
                    await asyncio.wait_for(ws.wait_closed(), DEADLINE)
                    check(ws.close_code == 1001, "%s closed with %r %r during the drain"
                          % (name, ws.close_code, ws.close_reason))
                    print("    %s: close %d %r" % (name, ws.close_code, ws.close_reason),
                          flush=True)
                return t0
        t0 = run(go())
        rc = srv.wait_exit(DEADLINE, " after SIGTERM")
        took = time.monotonic() - t0
        found = harness.claim_reports(srv)
        check(rc == 0 and not found, "exit %r after SIGTERM%s\n%s"
              % (rc, " with a sanitizer report" if found else "",
                 "\n".join(found[:60]) or srv.tail()))
        print("    exited %.2f s after SIGTERM (the drain allows 5 s)" % took, flush=True)
    finally:
        srv.kill()


def case_drain_peer_not_answering_close_dropped_after_close_timeout(t):
    srv = Server(ARGS.chat_ws, "--drain-timeout", "30s")
    try:
        c = WsConn(srv.port)
        try:
            check(c.echo(TEXT, b"up") == (TEXT, b"up"), "echo before the drain")
            srv.proc.send_signal(signal.SIGTERM)
            code, reason, _ = c.read_close()
            check(code == 1001, "close %r %r during the drain" % (code, reason))
            t0 = time.monotonic()
            took = c.wait_tcp_close(10 * harness.SLOW)  # we never answer
            print("    TCP closed %.2f s after the 1001 we did not answer" % took, flush=True)
        finally:
            c.close()
        rc = srv.wait_exit(DEADLINE, " after SIGTERM")
        found = harness.claim_reports(srv)
        check(rc == 0 and not found, "exit %r after SIGTERM\n%s"
              % (rc, "\n".join(found[:60]) or srv.tail()))
        check(time.monotonic() - t0 < 12 * harness.SLOW, "the server exited late")
    finally:
        srv.kill()


# ---- memory -------------------------------------------------------------------------------------

def case_mem_idle_websockets(t):
    if harness.skip_under_wrap("10,000 idle WebSockets' RSS"):
        return
    harness.raise_fd_limit()
    # 10,000 (issue 23), or what this process's descriptor limit allows.
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    n = min(10000, soft - 300)
    check(n >= 1000, "a descriptor limit of %d leaves room for %d WebSockets" % (soft, n))
    if n < 10000:
        print("    %d WebSockets, as the descriptor limit %d allows" % (n, soft), flush=True)
    srv = Server(ARGS.chat_ws)
    conns = []
    try:
        for _ in range(20):  # warm up: the loop's, the allocator's first pages
            c = WsConn(srv.port)
            c.echo(TEXT, b"warm")
            conns.append(c)
        before = srv.rss_kib()
        for _ in range(n):
            conns.append(WsConn(srv.port))
        after = srv.rss_kib()
        per = (after - before) / n
        print("    VmRSS %d KiB with 20, %d KiB with %d more idle WebSockets: %.1f KiB each"
              % (before, after, n, per), flush=True)
        if not srv.sanitized():
            check(per < 24, "%.1f KiB per idle WebSocket" % per)
        for i, c in enumerate(conns):
            c.send_frame(TEXT, b"still there %d" % i)
        for i, c in enumerate(conns):
            c.controls = []
            check(c.read_message() == (TEXT, b"still there %d" % i), "connection %d" % i)
        after2 = srv.rss_kib()
        print("    after one echo each: %d KiB (%.1f KiB each)" % (after2, (after2 - before) / n),
              flush=True)
        # With permessage-deflate (context takeover both ways, the example's
        # choice, 12-bit windows) once a compressed message went each way:
        # the zlib state stays, about 50 KiB says corio/websocket.h.
        m = 100
        for _ in range(m):
            c = WsConn(srv.port, deflate=True)
            conns.append(c)
            check(c.echo(TEXT, b"compress me " * 100) == (TEXT, b"compress me " * 100),
                  "a compressed echo")
        after3 = srv.rss_kib()
        per_z = (after3 - after2) / m
        print("    %d more after a compressed echo each: %d KiB, %.1f KiB each"
              % (m, after3, per_z), flush=True)
        if not srv.sanitized():
            check(per_z < 120, "%.1f KiB per WebSocket with permessage-deflate" % per_z)
        for c in conns:
            c.close()
        conns = []
        srv.stop()
    finally:
        for c in conns:
            c.close()
        srv.kill()


# ---- main ---------------------------------------------------------------------------------------

class Servers:
    pass


SHARED = ("echo", "node", "raw", "chat")
OWN = ("drain", "mem")


def main():
    global ARGS, DEADLINE
    ap = argparse.ArgumentParser()
    ap.add_argument("--chat-ws", required=True, help="the chat-ws example")
    ARGS = harness.parse_args(ap)
    DEADLINE = harness.DEADLINE
    if websockets is None:
        print("FAIL Python's websockets is missing (Debian's python3-websockets; run this "
              "script with /usr/bin/python3, not %s)" % sys.executable, flush=True)
        return 1
    if not node_available():
        print("SKIP node cases: node or Node's ws (Debian's node-ws) is missing", flush=True)
    if ARGS.k in "case_keepalive_ping":  # a case that would be picked
        print("SKIP keepalive: chat-ws pings a WebSocket idle for 20 s (the default "
              "ping_interval_ms) and has no option to make that quicker", flush=True)
    harness.raise_fd_limit()
    every = [v for k, v in globals().items() if k.startswith("case_") and callable(v)]
    shared = pick([c for c in every if c.__name__.split("_")[1] in SHARED], ARGS.k)
    own = pick([c for c in every if c.__name__.split("_")[1] in OWN], ARGS.k)
    started = time.monotonic()
    passed, failed, names = 0, 0, []
    try:
        if shared:
            t = Servers()
            t.srv = Server(ARGS.chat_ws)
            for case in shared:
                if run_case(case.__name__, case, t):
                    passed += 1
                else:
                    failed += 1
                    names.append(case.__name__)
                    print("  server log:\n" + t.srv.tail(15), flush=True)
                if harness.server_died(t.srv):
                    failed += 1
                    names.append("the shared server died")
                    break
            else:
                if not harness.stop_cleanly(t.srv):
                    failed += 1
                    names.append("the shared server's stop")
        for case in own:
            if run_case(case.__name__, case, None):
                passed += 1
            else:
                failed += 1
                names.append(case.__name__)
    finally:
        harness.kill_all()
    return harness.summary(passed, failed, started, names)


if __name__ == "__main__":
    sys.exit(main())
