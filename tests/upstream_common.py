# SPDX-License-Identifier: MIT
"""What the Python upstreams of the HTTP client tests share (upstream.py,
upstream_stream.py; standard library only): reading one request off a
connection (read_request), and serving a connection's requests in turn
(serve_requests).  They are run as scripts and import this module from their
own directory."""


def read_request(f):
    """Reads one HTTP/1.1 request from the binary file f.  Returns (method,
    target, headers, body): the method as bytes, the target as str, headers
    a dict of lower-cased names to values (bytes), the body whole (chunked,
    with no trailer fields, or by Content-Length: none when absent); or None
    at the connection's end."""
    line = f.readline(65537)
    if not line:
        return None
    parts = line.split()
    headers = {}
    while True:
        h = f.readline(65537)
        if h in (b"\r\n", b"\n", b""):
            break
        k, _, v = h.partition(b":")
        headers[k.strip().lower()] = v.strip()
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        pieces = []
        while True:
            size = int(f.readline(1024).split(b";")[0], 16)
            pieces.append(f.read(size))
            f.readline(1024)  # the chunk's CRLF (or the end of the trailers)
            if size == 0:
                break
        body = b"".join(pieces)
    else:
        body = f.read(int(headers.get(b"content-length", b"0")))
    return parts[0], parts[1].decode(), headers, body


def serve_requests(sock, respond):
    """Serves the requests that come on the connected socket sock, in order:
    respond(count, method, target, headers, body) for each (count: 1 for the
    connection's first request, as read_request returns the rest) until it
    returns False or the connection ends; an OSError ends it quietly."""
    f = sock.makefile("rb")
    count = 0
    try:
        while True:
            req = read_request(f)
            if req is None:
                break
            count += 1
            if not respond(count, *req):
                break
    except OSError:
        pass
    finally:
        f.close()
