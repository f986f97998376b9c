#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Layer check: every #include in framework/ and include/corio/ points down.

The layers are DESIGN.md's, lowest first; a file may include headers of its
own layer and of the layers below it, never above.  A framework file's layer
is its folder (framework/<layer>/...); a public header's layer is given in
PUBLIC below.  An include this script cannot place (a new folder or public
header) fails too: add it to the tables.  A layer's private header (PRIVATE:
a stream's fields) fails outside its layer, even from above: protocols use
net/proto.h.  Prints each offending file:line and the arrow; exits 1 if there
is one, 0 otherwise.

Usage: .ci/layers.py [ROOT]   (ROOT: the repository, default: this script's ..)
"""
import os
import re
import sys

# The allowed layer matrix: layer -> the layers it may include.  Each layer
# sees itself and everything below it.  app is above http: the runner offers
# ALPN "http/1.1" when the app's handler is corio_http_serve (app/app.c), so
# app may include http; http never includes app.  client (DESIGN.md's
# layer 8, the backend clients) sits beside http on net: it parses with
# llhttp itself and includes no http header, and neither includes the
# other; app may include both.  ws (WebSocket) stands on both: the server's
# handshake on http's upgrade, the client's on the HTTP client.
ORDER = ["base", "coro", "runtime", "sync", "scope", "net", "http", "client", "ws", "app"]
ALLOWED = {
    "base": {"base"},
    "coro": {"base", "coro"},
    "runtime": {"base", "coro", "runtime"},
    "sync": {"base", "coro", "runtime", "sync"},
    "scope": {"base", "coro", "runtime", "sync", "scope"},
    "net": {"base", "coro", "runtime", "sync", "scope", "net"},
    "http": {"base", "coro", "runtime", "sync", "scope", "net", "http"},
    "client": {"base", "coro", "runtime", "sync", "scope", "net", "client"},
    "ws": {"base", "coro", "runtime", "sync", "scope", "net", "http", "client", "ws"},
    "app": {"base", "coro", "runtime", "sync", "scope", "net", "http", "client", "ws", "app"},
}

# The layer of each public header (include/corio/<name>).
PUBLIC = {
    "error.h": "base",
    "link.h": "base",
    "log.h": "base",
    "loop.h": "runtime",
    "task.h": "runtime",
    "future.h": "runtime",
    "resource.h": "runtime",  # the scope frame a task keeps; read at every await
    "sync.h": "sync",
    "scope.h": "scope",
    "stream.h": "net",
    "tls.h": "net",
    "server.h": "net",
    "http.h": "http",
    "http_file.h": "http",
    "metrics.h": "http",
    "http_client.h": "client",
    "pg.h": "client",
    "redis.h": "client",
    "websocket.h": "ws",
    "app.h": "app",
    "http_test.h": "app",  # a router on loopback with a client: sees http and client
    "corio.h": "app",  # the umbrella: everything, so only the top may use it
}

# Private headers of a layer that the layers above must not include: a
# protocol uses net's narrow interface (net/proto.h), never a stream's
# fields (DESIGN.md).
PRIVATE = {
    "net/stream_internal.h": "net",
    "net/tls_internal.h": "net",
}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def target_layer(path, name, quote):
    """The layer of what `name` names, None for a system header, or a string
    starting with '?' when it cannot be placed."""
    parts = name.split("/")
    if parts[0] == "corio" and len(parts) == 2:
        return PUBLIC.get(parts[1], "?public header corio/%s" % parts[1])
    if quote != '"':
        return None  # <uv.h>, <openssl/ssl.h>, <llhttp.h>: not ours
    if path.startswith("include/corio/"):
        if len(parts) == 1:
            return PUBLIC.get(name, "?public header corio/%s" % name)
        return "?include %s" % name
    if len(parts) == 2 and parts[0] in ALLOWED:
        return parts[0]
    if len(parts) == 1:  # beside the including file
        return path.split("/")[1]
    return "?include %s" % name


def source_files(root):
    for top in ("framework", "include/corio"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for f in sorted(files):
                if f.endswith((".c", ".h", ".S")):
                    yield os.path.relpath(os.path.join(dirpath, f), root)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    bad = 0
    checked = 0
    for path in sorted(source_files(root)):
        if path.startswith("include/corio/"):
            layer = PUBLIC.get(os.path.basename(path))
            if layer is None:
                print("%s: public header not in the layer table (.ci/layers.py PUBLIC)" % path)
                bad += 1
                continue
        else:
            layer = path.split("/")[1]
            if layer not in ALLOWED:
                print("%s: folder framework/%s is not a layer (.ci/layers.py ORDER)" % (path, layer))
                bad += 1
                continue
        with open(os.path.join(root, path), encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                m = INCLUDE_RE.match(line)
                if not m:
                    continue
                to = target_layer(path, m.group(2), m.group(1))
                if to is None:
                    continue
                checked += 1
                inc = "#include " + m.group(1) + m.group(2) + ('"' if m.group(1) == '"' else ">")
                if to.startswith("?"):
                    print("%s:%d: %s: unknown %s, not in the layer tables" %
                          (path, lineno, inc, to[1:]))
                    bad += 1
                elif m.group(2) in PRIVATE and PRIVATE[m.group(2)] != layer:
                    print("%s:%d: %s: private to %s (protocols use net/proto.h)" %
                          (path, lineno, inc, PRIVATE[m.group(2)]))
                    bad += 1
                elif to not in ALLOWED[layer]:
                    print("%s:%d: %s -> %s (%s): an arrow up; %s may include %s" %
                          (path, lineno, layer, to, inc, layer,
                           ", ".join(l for l in ORDER if l in ALLOWED[layer])))
                    bad += 1
    if bad:
        print("layers: %d include(s) point up or cannot be placed (of %d checked)" % (bad, checked))
        return 1
    print("layers: %d includes checked, none points up (%s)" % (checked, " -> ".join(ORDER)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
