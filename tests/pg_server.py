# SPDX-License-Identifier: MIT
"""A throwaway PostgreSQL server for the Python integration tests, as
tests/pg_server.h is for the C ones: initdb + pg_ctl on 127.0.0.1, a free
port, a temporary data and socket directory, fsync off; stopped and removed
by stop() (and at exit, and by a watchdog shell if the test process dies
without running its exit handlers).

    from pg_server import PgServer, PgSkip
    try:
        pg = PgServer().start()            # or `with PgServer() as pg:`
    except PgSkip as e:
        print("SKIP:", e); sys.exit(77)
    uri = pg.database("corio_te")          # a fresh database, dropped by stop()
    pg.psql(uri, "select 1")               # -> "1"
    pg.stop()

As root the server runs as the unprivileged user `nobody` (runuser) with
the temporary directory given to it: PostgreSQL refuses to run as root.
The binaries are found under /usr/lib/postgresql/<version>/bin (Debian's
postgresql package), the newest version first.  CORIO_TEST_PG=<conninfo or
URI> uses an existing server instead (started and stopped by nobody here;
the databases made by database() are still dropped).  Python standard
library only.
"""
import atexit
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

PG_ROOT = "/usr/lib/postgresql"


class PgSkip(Exception):
    """The tests cannot run here (the message says why)."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bin():
    """The newest /usr/lib/postgresql/<v>/bin with initdb and pg_ctl, or None."""
    def version(path):
        v = path[len(PG_ROOT) + 1:].split("/")[0]
        return [int(x) if x.isdigit() else 0 for x in v.split(".")]
    for initdb in sorted(glob.glob(PG_ROOT + "/*/bin/initdb"), key=version, reverse=True):
        d = os.path.dirname(initdb)
        if os.access(os.path.join(d, "pg_ctl"), os.X_OK):
            return d
    return None


def with_dbname(conninfo, name):
    """conninfo (a key=value string or a postgres:// URI) naming database name."""
    if re.match(r"postgres(ql)?://", conninfo):
        u = urllib.parse.urlsplit(conninfo)
        return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, u.query, u.fragment))
    kept = re.sub(r"(^|\s)dbname\s*=\s*('(\\.|[^'])*'|\S+)", " ", conninfo).strip()
    return ("%s dbname=%s" % (kept, name)).strip()


class PgServer:
    """One PostgreSQL server, started here or given by CORIO_TEST_PG.

    conninfo: how to reach its `postgres` database; bin: the binaries'
    directory (None for an existing server: psql is then looked up on
    PATH); started: whether stop() stops a server."""

    def __init__(self, timeout=60):
        self.timeout = timeout
        self.dir = None
        self.bin = None
        self.port = None
        self.conninfo = None
        self.started = False
        self.databases = []
        self.watchdog = None

    # ---- start and stop --------------------------------------------------------------

    def start(self):
        """Starts the server (or takes CORIO_TEST_PG); returns self.  Raises
        PgSkip when it cannot run here, RuntimeError (with the server's log)
        when it failed to start."""
        env = os.environ.get("CORIO_TEST_PG")
        if env:
            self.conninfo = env
            self.bin = find_bin()
            if not self._psql_path():
                raise PgSkip("CORIO_TEST_PG is set but there is no psql (Debian package "
                             "postgresql-client)")
            return self
        self.bin = find_bin()
        if not self.bin:
            raise PgSkip("no PostgreSQL server binaries under %s/*/bin (Debian package "
                         "postgresql, `make deps`), and CORIO_TEST_PG is not set" % PG_ROOT)
        as_nobody = os.geteuid() == 0
        if as_nobody:
            try:
                pw = pwd.getpwnam("nobody")
            except KeyError:
                raise PgSkip("running as root and there is no user `nobody` to run "
                             "PostgreSQL as") from None
            if not shutil.which("runuser"):
                raise PgSkip("running as root and there is no runuser to run PostgreSQL as "
                             "`nobody`")
        self.dir = tempfile.mkdtemp(prefix="corio-pg-")
        atexit.register(self.stop)
        if as_nobody:
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        try:
            self._sh([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U",
                      "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            self._watchdog()
            for _ in range(3):  # the port may be taken meanwhile
                self.port = free_port()
                opts = ("-h 127.0.0.1 -p %d -k %s -F -c full_page_writes=off "
                        "-c synchronous_commit=off" % (self.port, self.dir))
                try:
                    self._sh([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-l",
                              os.path.join(self.dir, "server.log"), "-w", "-t",
                              str(self.timeout), "-o", opts, "start"])
                except RuntimeError:
                    self._sh([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m",
                              "immediate", "-w", "stop"], check=False)
                    continue
                self.started = True
                self.conninfo = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % self.port
                return self
            raise RuntimeError("the server did not start")
        except RuntimeError as e:
            log = self.log()
            self.stop()
            raise RuntimeError("pg_server: %s\n%s" % (e, log)) from None

    def stop(self):
        """Drops the databases made by database(), stops the server
        (immediate shutdown) and removes its directory.  Idempotent."""
        for name in self.databases:
            try:
                self.psql(self.conninfo, 'drop database if exists "%s" with (force)' % name)
            except (RuntimeError, OSError, subprocess.SubprocessError):
                pass
        self.databases = []
        if self.started:
            self._sh([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "immediate",
                      "-w", "-t", "30", "stop"], check=False)
            self.started = False
        if self.watchdog and self.watchdog.poll() is None:
            self.watchdog.kill()
            self.watchdog.wait()
        self.watchdog = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    def log(self):
        """What initdb, pg_ctl and the server wrote (for a failure's message)."""
        out = []
        for name in ("log.txt", "server.log"):
            try:
                with open(os.path.join(self.dir or "", name), errors="replace") as f:
                    out.append("---- %s\n%s" % (name, f.read()[-8000:]))
            except OSError:
                pass
        return "\n".join(out)

    def _sh(self, argv, check=True):
        """Runs argv as `nobody` when root, in the temporary directory (initdb
        and pg_ctl look the current one up, which nobody may not be allowed
        to), its output appended to log.txt.  RuntimeError if it fails and
        check."""
        if os.geteuid() == 0:
            argv = ["runuser", "-u", "nobody", "--", *argv]
        with open(os.path.join(self.dir, "log.txt"), "ab") as log:
            try:
                rc = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=log, timeout=self.timeout + 30).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
        if check and rc != 0:
            raise RuntimeError("%s: exit %s" % (" ".join(argv), rc))
        return rc

    def _watchdog(self):
        """A shell in its own session that stops the server and removes its
        directory once this process is gone (a crash, SIGKILL: no atexit)."""
        stop = "%s/pg_ctl -D %s -m immediate stop" % (self.bin, self.data)
        if os.geteuid() == 0:
            stop = "runuser -u nobody -- " + stop
        script = ("while kill -0 %d 2>/dev/null; do sleep 1; done; %s; rm -rf '%s'"
                  % (os.getpid(), stop, self.dir))
        self.watchdog = subprocess.Popen(["sh", "-c", script], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         start_new_session=True)

    # ---- using it ---------------------------------------------------------------------

    def _psql_path(self):
        if self.bin and os.access(os.path.join(self.bin, "psql"), os.X_OK):
            return os.path.join(self.bin, "psql")
        return shutil.which("psql")

    def psql(self, conninfo, sql, timeout=30):
        """Runs sql with psql (an external client) on conninfo: its output,
        unaligned and without headers ("a|b" per row), stripped.
        RuntimeError with psql's message if it fails."""
        p = subprocess.run([self._psql_path(), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
                            "-d", conninfo, "-c", sql], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError("psql %r: %s" % (sql[:200], p.stderr.decode(errors="replace")))
        return p.stdout.decode().strip()

    def psql_popen(self, conninfo, sql):
        """psql running sql in the background (a lock held for a while, say):
        the Popen, in its own session, stdin and stdout piped."""
        return subprocess.Popen([self._psql_path(), "-X", "-A", "-t", "-q", "-v",
                                 "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)

    def database(self, name):
        """Creates database `name` afresh (dropped first if it is there) and
        returns the conninfo (or URI) that reaches it; stop() drops it."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError("database name %r" % name)
        self.psql(self.conninfo, 'drop database if exists "%s" with (force)' % name)
        self.psql(self.conninfo, 'create database "%s"' % name)
        self.databases.append(name)
        return with_dbname(self.conninfo, name)
