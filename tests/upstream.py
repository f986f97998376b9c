#!/usr/bin/env python3
"""A misbehaving HTTP/1.1 upstream for test_http_client.c (standard library only).

Listens on 127.0.0.1 port 0, prints "<port>\\n" and serves, one thread per
connection, by path:
  /ok             200, Content-Length, keep-alive
  /big?n=N        N bytes (i % 251), Content-Length (none for HEAD)
  /chunked?n=N    the same bytes, chunked in pieces of 1000
  /echo           the request body back (POST)
  /drop           served on a connection's first request; a later request
                  on the same connection is read and the connection closed
                  without an answer (a server that closed an idle connection)
  /malformed      a status line llhttp's strict mode refuses
  /oversize       a 20 KiB header field
  /slow           headers promising 10 bytes, 1 byte, then nothing for 30 s
                  (ends early if the client closes)
  /close-headers  headers promising 100 bytes, then the connection is closed
  /stats          "accepts=A closed=C": connections accepted and ended
Exits on SIGTERM or when stdin reaches its end.
"""
import select
import socketserver
import sys
import threading

LOCK = threading.Lock()
STATS = {"accepts": 0, "closed": 0}


def pattern(n):
    return bytes(i % 251 for i in range(n))


def arg_n(target):
    q = target.partition("?")[2]
    for kv in q.split("&"):
        k, _, v = kv.partition("=")
        if k == "n":
            return int(v)
    return 0


class Handler(socketserver.BaseRequestHandler):
    def send(self, status, body, extra=b""):
        self.request.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Length: " +
                             str(len(body)).encode() + b"\r\n" + extra + b"\r\n" +
                             (b"" if self.head else body))

    def respond(self, target, count, body):
        path = target.partition("?")[0]
        if path == "/ok":
            self.send(b"200 OK", b"hello", b"X-Test: Yes\r\n")
        elif path == "/big":
            self.send(b"200 OK", pattern(arg_n(target)))
        elif path == "/chunked":
            data = pattern(arg_n(target))
            out = [b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"]
            for i in range(0, len(data), 1000):
                piece = data[i:i + 1000]
                out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
            out.append(b"0\r\n\r\n")
            self.request.sendall(b"".join(out))
        elif path == "/echo":
            self.send(b"200 OK", body)
        elif path == "/drop":
            if count > 1:
                return False
            self.send(b"200 OK", b"first")
        elif path == "/malformed":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nxyz")
        elif path == "/many-headers":
            self.send(b"200 OK", b"x", b"".join(b"X-%d: v\r\n" % i for i in range(150)))
        elif path == "/oversize":
            self.send(b"200 OK", b"x", b"X-Big: " + b"a" * 20480 + b"\r\n")
        elif path == "/slow":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nx")
            r, _, _ = select.select([self.request], [], [], 30)
            return False
        elif path == "/close-headers":
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            return False
        elif path == "/stats":
            with LOCK:
                s = b"accepts=%d closed=%d" % (STATS["accepts"], STATS["closed"])
            self.send(b"200 OK", s)
        else:
            self.send(b"404 Not Found", b"")
        return True

    def handle(self):
        with LOCK:
            STATS["accepts"] += 1
        f = self.request.makefile("rb")
        count = 0
        try:
            while True:
                line = f.readline(65537)
                if not line:
                    break
                parts = line.split()
                headers = {}
                while True:
                    h = f.readline(65537)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.partition(b":")
                    headers[k.strip().lower()] = v.strip()
                body = f.read(int(headers.get(b"content-length", b"0")))
                count += 1
                self.head = parts[0] == b"HEAD"
                if not self.respond(parts[1].decode(), count, body):
                    break
        except OSError:
            pass
        finally:
            f.close()
            with LOCK:
                STATS["closed"] += 1


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print(srv.server_address[1], flush=True)
    sys.stdin.read()  # the test closes our stdin (or kills us) to stop us


if __name__ == "__main__":
    main()
