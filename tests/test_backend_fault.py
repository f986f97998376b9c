#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Backends that vanish under load (issue 21 §3): PostgreSQL, Redis and an
upstream HTTP server killed with SIGKILL and started again while client
threads keep a server busy; the server is never restarted.

- PostgreSQL under examples/todo: every process of the cluster SIGKILLed
  (then its stale lock files removed: where nothing reaps the dead
  postmaster its zombie looks alive to PostgreSQL).  While it is gone, what
  needs the database is a 503 whose JSON error names the database, a
  cached read is still a 200 (X-Cache: hit); started again (crash recovery,
  same port), writes succeed again without touching the server, and no
  todo answered 201 is lost (synchronous_commit on for the test database:
  a DELETE of one is never a 404).  The load on todo: each client thread
  creates a todo, reads the cached one, deletes what it created, lists.
- Redis under examples/todo: SIGKILLed.  Nothing fails: reads are 200 from
  PostgreSQL (X-Cache: miss), writes succeed, the outage is logged once;
  started again (empty, same port), reads are hits again.
- An upstream (examples/hello) of examples/proxy: SIGKILLed.  Requests get
  502 "Bad Gateway..." (the proxy's log names the upstream it skips);
  started again on the same port, 200s come back.
- The same upstream frozen (SIGSTOP) behind --upstream-timeout 1s: 504
  "Gateway Timeout", and 200 again after SIGCONT.

In every case each request of every client completes within the client's
socket timeout (harness.DEADLINE) with a status and body that say what
happened: the only allowed answers are the success and the documented
failure; a hang, a reset or anything else fails the case.  Recovery is
polled with a deadline.  Afterwards the server's descriptors are back to
what they were before the load (the same count of non-TCP descriptors;
TCP ones only its listener and established connections to its backends,
none to a client, none half-closed), and it stops on SIGTERM with exit 0.

    test_backend_fault.py --proxy build/examples/proxy/proxy --hello build/examples/hello/hello
                          [--todo build/examples/todo/todo] [-k NAME]

Without --todo, PostgreSQL's server binaries (and CORIO_TEST_PG) or
redis-server, the todo cases print SKIP, and with CORIO_TEST_PG (a server
this script cannot kill) the PostgreSQL case does; the script exits 77
(skipped) when every case it picked skipped.  Under --wrap
everything skips (load).  No timing thresholds; Python standard library
only.
"""
import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

import harness
from harness import HOST, CaseFailure, check, wait_until
from test_fault import census
from todo_servers import Pg, PgSkip, Redis, free_port

ARGS = None
SKIP = 77
THREADS = 4
PG_MAX_POOL = 8  # examples/todo's POOL_SIZE: connections per worker


class Skipped(Exception):
    pass


# ---- a load of client threads ------------------------------------------------------------------

class Load:
    """THREADS client threads, each running `step(conn, i)` in a loop on a
    keep-alive http.client connection until stop().  step returns an
    outcome label ("ok" or a failure the case allows, e.g. "503") or raises
    CaseFailure for an answer that is not allowed; a connection error or a
    timeout is a failure too.  Outcomes are kept with their time."""

    def __init__(self, port, step):
        self.port, self.step = port, step
        self.lock = threading.Lock()
        self.events = []  # (monotonic time, thread index, outcome)
        self.failures = []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(k,), daemon=True)
                        for k in range(THREADS)]
        for t in self.threads:
            t.start()

    def _run(self, k):
        conn = None
        i = 0
        try:
            while not self.halt.is_set():
                if conn is None:
                    conn = http.client.HTTPConnection(HOST, self.port, timeout=harness.DEADLINE)
                try:
                    outcome = self.step(conn, i)
                except (OSError, http.client.HTTPException) as e:
                    self.failures.append("thread %d request %d: %r (no answer within the "
                                         "socket timeout, or the connection failed)" % (k, i, e))
                    return
                except CaseFailure as e:
                    self.failures.append("thread %d request %d: %s" % (k, i, e))
                    return
                with self.lock:
                    self.events.append((time.monotonic(), k, outcome))
                i += 1
                if conn.sock is None:  # the server said Connection: close
                    conn.close()
                    conn = None
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.failures.append("thread %d: %r" % (k, e))
        finally:
            if conn:
                conn.close()

    def count(self, outcome, since=0.0, per_thread=False, until=float("inf")):
        with self.lock:
            ev = [e for e in self.events if since <= e[0] < until and e[2] == outcome]
        if per_thread:
            return [sum(1 for e in ev if e[1] == k) for k in range(THREADS)]
        return len(ev)

    def every_thread(self, outcome, n, since=0.0):
        """Whether every thread saw `outcome` n times since `since` (raises
        once a thread failed: no use waiting)."""
        self.check()
        return min(self.count(outcome, since, per_thread=True)) >= n

    def check(self):
        check(not self.failures, "the load failed: %s" % "; ".join(self.failures[:4]))

    def stop(self):
        self.halt.set()
        for t in self.threads:
            t.join(harness.DEADLINE)
        check(not any(t.is_alive() for t in self.threads), "a client thread still running")
        self.check()

    def summary(self):
        with self.lock:
            kinds = sorted({e[2] for e in self.events})
            return ", ".join("%d %s" % (sum(1 for e in self.events if e[2] == o), o)
                             for o in kinds)


def request(conn, method, path, body=None):
    h = {}
    if body is not None:
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    if r.getheader("Connection", "").lower() == "close":
        conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def settled(pid, backends, base):
    """Whether pid's descriptors are as before the load: as many non-TCP
    ones as in base, its listening socket(s), and otherwise only
    established connections to the ports in backends (at most
    backends[port] to each): none to a client, none half-closed."""
    now = census(pid)
    if now["other"] != base["other"]:
        return False
    listen = [t for t in now["tcp"] if t[2] == "LISTEN"]
    if listen != [t for t in base["tcp"] if t[2] == "LISTEN"]:
        return False
    rest = [t for t in now["tcp"] if t[2] != "LISTEN"]
    for port, most in backends.items():
        to = [t for t in rest if t[1] == port]
        if len(to) > most or any(t[2] != "ESTABLISHED" for t in to):
            return False
    return all(t[1] in backends for t in rest)


def wait_settled(srv, backends, base):
    wait_until(lambda: settled(srv.pid, backends, base), harness.DEADLINE,
               "%s's descriptors back to %r (backends %r); now %r"
               % (srv.name, base, backends, census(srv.pid)), interval=0.05)


def pid_alive(pid):
    """Whether pid is a live process (a zombie is not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# ---- examples/todo: PostgreSQL and Redis ------------------------------------------------------

class Todo:
    pg = None
    db = None
    redis = None
    why = None  # why the todo cases skip

    @classmethod
    def ready(cls):
        """Starts PostgreSQL and Redis the first time; Skipped (with the
        reason) when the todo cases cannot run here."""
        if cls.why:
            raise Skipped(cls.why)
        if cls.pg:
            return
        if not ARGS.todo:
            cls.why = "no --todo (examples/todo is built only with libpq, hiredis and jansson)"
        elif not Redis.available():
            cls.why = "no redis-server (Debian package redis-server)"
        if not cls.why:
            try:
                cls.pg = Pg().start()
            except PgSkip as e:
                cls.why = str(e)
        if cls.why:
            raise Skipped(cls.why)
        cls.redis = Redis().start()
        name = "corio_fault_%d" % os.getpid()
        cls.db = cls.pg.database(name)
        # The server runs with synchronous_commit off (pg_server.py): a
        # commit could then be lost with the processes' WAL buffers when
        # they are killed, and a todo answered 201 be gone after the
        # restart.  On for this database, every 201 stays true.
        cls.pg.psql(cls.pg.conninfo, 'alter database "%s" set synchronous_commit = on' % name)

    @classmethod
    def stop(cls):
        if cls.redis:
            cls.redis.stop()
        if cls.pg:
            cls.pg.stop()

    @classmethod
    def server(cls):
        return harness.Server(ARGS.todo, "--db", cls.db, "--redis", cls.redis.addr)


def todo_step(hot, allow_503):
    """The load on examples/todo, one of four requests in turn: create a
    todo, read the hot one (cached before the load; the load never writes
    it), delete the one it created, list them all.  A 503 is allowed only
    with allow_503 and a JSON error naming the database; the outcome of a
    read is "ok hit" or "ok miss"."""
    created = {}

    def failed(what, st, h, body):
        if st == 503 and allow_503:
            try:
                doc = json.loads(body)
            except ValueError:
                raise CaseFailure("%s: a 503 that is not JSON: %r" % (what, body[:200])) from None
            check(h.get("content-type", "").startswith("application/json")
                  and isinstance(doc, dict) and "database" in doc.get("error", ""),
                  "%s: a 503 that does not name the database: %r" % (what, body[:200]))
            return "503"
        raise CaseFailure("%s: %d %r" % (what, st, body[:200]))

    def step(conn, i):
        k = threading.get_ident()
        op = i % 4
        if op == 0:
            st, h, body = request(conn, "POST", "/todos", {"title": "load %d" % i})
            if st != 201:
                return failed("POST /todos", st, h, body)
            created[k] = json.loads(body)["id"]
            return "ok write"
        if op == 1:
            st, h, body = request(conn, "GET", "/todos/%d" % hot["id"])
            if st != 200:
                return failed("GET the hot todo", st, h, body)
            check(json.loads(body) == hot, "GET the hot todo: %r, want %r" % (body, hot))
            return "ok " + h.get("x-cache", "?")
        if op == 2:
            if k not in created:
                return "nothing to delete"
            st, h, body = request(conn, "DELETE", "/todos/%d" % created[k])
            if st != 204:
                return failed("DELETE", st, h, body)
            del created[k]
            return "ok write"
        st, h, body = request(conn, "GET", "/todos")
        if st != 200:
            return failed("GET /todos", st, h, body)
        check(isinstance(json.loads(body), list), "GET /todos: %r" % body[:200])
        return "ok " + h.get("x-cache", "?")
    return step


def probe(port, method, path, body=None):
    c = http.client.HTTPConnection(HOST, port, timeout=harness.DEADLINE)
    try:
        return request(c, method, path, body)
    finally:
        c.close()


def warm_hot(port):
    """A todo created and read twice: cached (the second read a hit)."""
    st, _, body = probe(port, "POST", "/todos", {"title": "hot"})
    check(st == 201, "POST: %d %r" % (st, body))
    hot = json.loads(body)
    for want in ("miss", "hit"):
        st, h, body = probe(port, "GET", "/todos/%d" % hot["id"])
        check(st == 200 and h.get("x-cache") == want and json.loads(body) == hot,
              "GET hot: %d %r %r, want X-Cache %s" % (st, h.get("x-cache"), body, want))
    return hot


def kill_postgres(pg):
    """SIGKILL to the postmaster and all its children at once (a crash of
    the database's machine, as far as the server can tell); returns once
    none is left."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    pids = [postmaster]
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/stat" % name) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == postmaster:
                        pids.append(int(name))
            except OSError:
                pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(pid_alive(p) for p in pids), harness.DEADLINE,
               "PostgreSQL's processes gone")
    # Where nothing reaps orphans (a container's PID 1 may not), the dead
    # postmaster stays a zombie whose PID the lock files still name, and
    # PostgreSQL would take it for a live postmaster: as after a crash of
    # the machine, the stale lock files go (every process of the cluster
    # is dead: checked above).
    for lock in (os.path.join(pg.data, "postmaster.pid"),
                 os.path.join(pg.dir, ".s.PGSQL.%d.lock" % pg.port)):
        try:
            os.unlink(lock)
        except FileNotFoundError:
            pass
    return len(pids)


def case_postgres_killed_under_load():
    Todo.ready()
    pg = Todo.pg
    srv = Todo.server()
    load = None
    try:
        hot = warm_hot(srv.port)
        base = census(srv.pid)
        load = Load(srv.port, todo_step(hot, allow_503=True))
        wait_until(lambda: load.every_thread("ok write", 5), harness.DEADLINE,
                   "the load under way")
        mark = srv.mark()
        t_kill = time.monotonic()
        n = kill_postgres(pg)
        try:
            wait_until(lambda: load.every_thread("503", 5, t_kill)
                       and load.every_thread("ok hit", 2, t_kill), harness.DEADLINE,
                       "503s, and cached reads served, on every client without PostgreSQL")
            # A cached read still served; what needs the database a 503
            # that says so.
            st, h, body = probe(srv.port, "GET", "/todos/%d" % hot["id"])
            check(st == 200 and h.get("x-cache") == "hit" and json.loads(body) == hot,
                  "the cached todo without PostgreSQL: %d %r %r" % (st, h.get("x-cache"), body))
            st, h, body = probe(srv.port, "POST", "/todos", {"title": "x"})
            check(st == 503 and json.loads(body) == {"error": "the database is unavailable"},
                  "POST without PostgreSQL: %d %r" % (st, body))
            srv.wait_log(r"WARN .*postgresql: no connection", start=mark)
        finally:
            t_start = time.monotonic()
            pg.resume()
        t_back = time.monotonic()
        wait_until(lambda: load.every_thread("ok write", 5, t_back), harness.DEADLINE,
                   "every client writing again after PostgreSQL came back")
        back = min(e[0] for e in load.events if e[0] >= t_back and e[2] == "ok write") - t_back
        load.stop()
        print("    %d PostgreSQL processes killed; load: %s; down %.2f s (until pg_ctl start "
              "returned): %d 503, %d cached reads served; first write %.3f s after, %d 503 "
              "after" % (n, load.summary(), t_back - t_kill, load.count("503", t_kill, until=t_back),
                         load.count("ok hit", t_kill, until=t_back), back,
                         load.count("503", t_back)), flush=True)
        wait_settled(srv, {pg.port: PG_MAX_POOL, Todo.redis.port: 1}, base)
        srv.stop()
    finally:
        if load:
            load.halt.set()
        srv.kill()


def case_redis_killed_under_load():
    Todo.ready()
    redis = Todo.redis
    srv = Todo.server()
    load = None
    try:
        hot = warm_hot(srv.port)
        base = census(srv.pid)
        load = Load(srv.port, todo_step(hot, allow_503=False))
        wait_until(lambda: load.every_thread("ok write", 5), harness.DEADLINE,
                   "the load under way")
        mark = srv.mark()
        t_kill = time.monotonic()
        redis.kill()
        try:
            wait_until(lambda: load.every_thread("ok miss", 5, t_kill)
                       and load.every_thread("ok write", 5, t_kill), harness.DEADLINE,
                       "reads from PostgreSQL and writes without Redis")
            srv.wait_log(r"WARN .*redis .*reads go to PostgreSQL", start=mark)
        finally:
            redis.start()
        t_back = time.monotonic()
        wait_until(lambda: load.every_thread("ok hit", 5, t_back), harness.DEADLINE,
                   "hits again after Redis came back")
        back = min(e[0] for e in load.events if e[0] >= t_back and e[2] == "ok hit") - t_back
        srv.wait_log(r"redis .*back", start=mark)
        load.stop()
        n = srv.count_log(r"reads go to PostgreSQL", start=mark)
        check(n == 1, "the outage logged %d times, want once" % n)
        print("    load: %s; first hit %.3f s after Redis answered PING"
              % (load.summary(), back), flush=True)
        wait_settled(srv, {Todo.pg.port: PG_MAX_POOL, redis.port: 1}, base)
        srv.stop()
    finally:
        if load:
            load.halt.set()
        srv.kill()


# ---- examples/proxy in front of examples/hello ----------------------------------------------

def start_upstream(port=None):
    """examples/hello on `port` (a free one when None)."""
    for _ in range(3):
        p = port or free_port()
        try:
            return harness.Server(ARGS.hello, "--port", str(p), name="upstream hello :%d" % p)
        except CaseFailure:
            if port:
                raise
    raise CaseFailure("no free port for the upstream")


def proxy_step(allowed):
    """GET /plaintext through the proxy: "ok" for the upstream's 200, or
    the status of an allowed failure whose body is the proxy's (allowed:
    {status: body prefix})."""
    def step(conn, i):
        st, h, body = request(conn, "GET", "/plaintext")
        if st == 200:
            check(body == b"Hello, World!", "200 with %r" % body[:200])
            return "ok"
        check(st in allowed and body.startswith(allowed[st]),
              "%d %r (allowed: 200 or %r)" % (st, body[:200], allowed))
        return str(st)
    return step


def case_upstream_killed_under_load():
    up = start_upstream()
    port = up.port
    proxy = harness.Server(ARGS.proxy, "--upstream", "http://127.0.0.1:%d" % port, name="proxy")
    load = None
    try:
        base = census(proxy.pid)
        load = Load(proxy.port, proxy_step({502: b"Bad Gateway"}))
        wait_until(lambda: load.every_thread("ok", 20), harness.DEADLINE, "the load under way")
        mark = proxy.mark()
        t_kill = time.monotonic()
        up.kill()  # SIGKILL
        wait_until(lambda: load.every_thread("502", 5, t_kill), harness.DEADLINE,
                   "502s from every client without the upstream")
        proxy.wait_log(r"WARN .*proxy: http://127\.0\.0\.1:%d: .*skipped for" % port, start=mark)
        up = start_upstream(port)
        t_back = time.monotonic()
        wait_until(lambda: load.every_thread("ok", 20, t_back), 3 * harness.DEADLINE,
                   "200s again after the upstream came back")
        back = min(e[0] for e in load.events if e[0] >= t_back and e[2] == "ok") - t_back
        load.stop()
        print("    load: %s; first 200 %.3f s after the upstream listened again (the proxy "
              "skips a refusing upstream for 5 s)" % (load.summary(), back), flush=True)
        wait_settled(proxy, {port: THREADS}, base)
        proxy.stop()
        up.stop()
    finally:
        if load:
            load.halt.set()
        proxy.kill()
        up.kill()


def case_upstream_frozen_504_then_back():
    up = start_upstream()
    port = up.port
    proxy = harness.Server(ARGS.proxy, "--upstream", "http://127.0.0.1:%d" % port,
                           "--upstream-timeout", "1s", name="proxy --upstream-timeout 1s")
    load = None
    stopped = False
    try:
        base = census(proxy.pid)
        load = Load(proxy.port, proxy_step({504: b"Gateway Timeout", 502: b"Bad Gateway"}))
        wait_until(lambda: load.every_thread("ok", 20), harness.DEADLINE, "the load under way")
        t_stop = time.monotonic()
        os.kill(up.pid, signal.SIGSTOP)
        stopped = True
        wait_until(lambda: load.every_thread("504", 2, t_stop), harness.DEADLINE,
                   "504s from every client while the upstream is frozen")
        os.kill(up.pid, signal.SIGCONT)
        stopped = False
        t_back = time.monotonic()
        wait_until(lambda: load.every_thread("ok", 20, t_back), 3 * harness.DEADLINE,
                   "200s again after SIGCONT")
        load.stop()
        print("    load: %s" % load.summary(), flush=True)
        wait_settled(proxy, {port: THREADS}, base)
        proxy.stop()
        up.stop()
    finally:
        if load:
            load.halt.set()
        if stopped:
            os.kill(up.pid, signal.SIGCONT)
        proxy.kill()
        up.kill()


TODO_CASES = [case_postgres_killed_under_load, case_redis_killed_under_load]
CASES = TODO_CASES + [case_upstream_killed_under_load, case_upstream_frozen_504_then_back]


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--proxy", required=True, help="examples/proxy")
    ap.add_argument("--hello", required=True, help="examples/hello (the proxy's upstream)")
    ap.add_argument("--todo", help="examples/todo (its cases skip without it)")
    ARGS = harness.parse_args(ap)
    started = time.monotonic()
    passed, failed, skipped = 0, [], 0
    try:
        for case in harness.pick(CASES, ARGS.k):
            if harness.skip_under_wrap(case.__name__ + " (a load)"):
                skipped += 1
                continue
            if case in TODO_CASES:
                try:
                    Todo.ready()
                    if case is case_postgres_killed_under_load and not Todo.pg.started:
                        raise Skipped("CORIO_TEST_PG names a server this script cannot kill")
                except Skipped as e:
                    print("SKIP %s: %s" % (case.__name__, e), flush=True)
                    skipped += 1
                    continue
            if harness.run_case(case.__name__, case):
                passed += 1
            else:
                failed.append(case.__name__)
    finally:
        harness.kill_all()
        Todo.stop()
    rc = harness.summary(passed, len(failed), started, failed)
    return SKIP if rc == 0 and passed == 0 and skipped else rc


if __name__ == "__main__":
    sys.exit(main())
