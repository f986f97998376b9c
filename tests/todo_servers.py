# SPDX-License-Identifier: MIT
"""Throwaway servers for tests/test_todo.py: a PostgreSQL server that can be
halted and resumed on the same port (pg_server.PgServer, plus halt() and
resume(), as tests/pg_server.h has them), and a Redis server (redis-server
on 127.0.0.1, a free port, no persistence) that can be killed and started
again on the same port.

    from todo_servers import Pg, Redis, PgSkip
    pg = Pg().start(); uri = pg.database("corio_todo")
    pg.halt(); pg.resume()
    r = Redis().start(); r.kill(); r.start(); r.cli("dbsize"); r.stop()

Both are stopped and removed at exit even when a test fails (atexit), and
redis-server dies with the process that started it (PR_SET_PDEATHSIG) if
that one is killed without running its exit handlers.  Python standard
library only.
"""
import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from pg_server import PgServer, PgSkip, free_port

__all__ = ["Pg", "Redis", "PgSkip", "free_port"]


class Pg(PgServer):
    """pg_server.PgServer, with halt() and resume() on the same port."""

    def _pg_ctl(self, *args, check=True):
        return self._sh([os.path.join(self.bin, "pg_ctl"), "-D", self.data, *args], check=check)

    def halt(self):
        """Stops the server (fast shutdown: its sessions are terminated),
        keeping its data and port for resume()."""
        if self.started and self.dir:
            self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")
            self.started = False

    def resume(self):
        """Starts a halted server again on the same port."""
        opts = ("-h 127.0.0.1 -p %d -k %s -F -c full_page_writes=off "
                "-c synchronous_commit=off" % (self.port, self.dir))
        self._pg_ctl("-l", os.path.join(self.dir, "server.log"), "-w", "-t",
                     str(self.timeout), "-o", opts, "start")
        self.started = True


def _die_with_parent():
    """preexec_fn: SIGKILL when the parent thread ends (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Redis:
    """One redis-server on 127.0.0.1 without persistence; start() again
    after kill() brings it back, empty, on the same port."""

    def __init__(self, timeout=10):
        self.timeout = timeout
        self.port = None
        self.proc = None
        self.dir = None

    @staticmethod
    def available():
        return shutil.which("redis-server") is not None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        """Starts the server (on a free port the first time, on the same
        one again after kill()); returns self once it answers PING.
        RuntimeError if it does not."""
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="corio-redis-")
            atexit.register(self.stop)
        again = self.port is not None
        for _ in range(3):
            if not again:
                self.port = free_port()  # may be taken meanwhile: a new one next time
            self.proc = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                 "--appendonly", "no", "--dir", self.dir, "--daemonize", "no",
                 "--logfile", os.path.join(self.dir, "redis.log")],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            deadline = time.monotonic() + self.timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if self.cli("ping") == "PONG":
                        return self
                except (OSError, RuntimeError):
                    pass
                time.sleep(0.02)
            self.kill()
        raise RuntimeError("redis-server did not start:\n" + self.log())

    def log(self):
        try:
            with open(os.path.join(self.dir or "", "redis.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def cli(self, *words):
        """Runs one command over a socket of its own (RESP): the reply as a
        str, an int, None (nil) or a list.  RuntimeError for an error
        reply."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout) as s:
            req = "*%d\r\n" % len(words) + "".join(
                "$%d\r\n%s\r\n" % (len(w.encode()), w) for w in map(str, words))
            s.sendall(req.encode())
            f = s.makefile("rb")
            return self._read(f)

    def _read(self, f):
        line = f.readline()
        if not line:
            raise RuntimeError("redis closed the connection")
        kind, rest = line[:1], line[1:-2].decode()
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError("redis: " + rest)
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise RuntimeError("redis: unexpected reply %r" % line)

    def kill(self):
        """SIGKILL: gone at once, with everything it held."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait(timeout=self.timeout)
        self.proc = None

    def stop(self):
        """Kills the server and removes its directory.  Idempotent."""
        self.kill()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
