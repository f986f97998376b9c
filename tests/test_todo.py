#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of examples/todo against a throwaway PostgreSQL and a
throwaway Redis (todo_servers.py), with curl as well as Python's client.

    test_todo.py --server build/examples/todo/todo [-k NAME] [--wrap "valgrind ..." [--slow 10]]

Without PostgreSQL's server binaries (and without CORIO_TEST_PG=<conninfo>
naming a server to use) or without redis-server the script prints why and
exits 77, which CTest counts as skipped.

The cases: the create/list/get/update/delete round trip (statuses, bodies,
Location, the rows and their todo_log lines read back with psql); X-Cache
miss then hit, the entry in Redis with its TTL; a write invalidates (the
next GET is a miss showing the new value); the TTL (a change made behind
the API's back shows once the entry expired, waited for by polling); a
failed transaction rolls back (a CHECK on todo_log refuses the second
statement: the todo is as before, and a failed create leaves no row though
its insert ran); the deadline (a table lock: 503 at --deadline-ms, the
PATCH rolled back, 200 once the lock is gone); Redis killed mid-test
(reads 200 X-Cache: miss, writes 201, the outage logged once) and started
again (hits again: the client reconnects by itself); Redis down when the
server starts, and up later; no --redis; PostgreSQL stopped (503, cached
reads still served) and started again (200); bad input (400, 404, 405,
413, nothing written); the flags' refusals; run.sh (the one command: up,
answering, everything removed after Ctrl-C).  Every server stops with
SIGTERM and must exit 0.  Every wait is a poll with a deadline, never a
timing assertion; the servers are stopped and removed even when a case
fails.  Python standard library only (and curl).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import harness
from harness import HOST, CaseFailure, check, kill_all, pick, run_case, summary, wait_until
from todo_servers import Pg, PgSkip, Redis, free_port

ARGS = None
PG = None
DB = None  # the conninfo of the test's database
REDIS = None
SKIP = 77


def deadline():
    return harness.DEADLINE


def start_server(*args, redis=True, **kw):
    extra = ("--db", DB) + (("--redis", REDIS.addr) if redis else ())
    return harness.Server(ARGS.server, *extra, *args, **kw)


# ---- clients ---------------------------------------------------------------------------------

def request(port, method, path, body=None, headers=None):
    """One request with http.client: (status, {lower-case name: value}, body bytes)."""
    c = http.client.HTTPConnection(HOST, port, timeout=deadline())
    try:
        data = json.dumps(body) if isinstance(body, (dict, list)) else body
        h = dict(headers or {})
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def curl(port, method, path, body=None):
    """One request with curl (an external client): (status, headers, body)."""
    argv = ["curl", "-s", "-S", "-i", "--max-time", str(deadline()), "-X", method,
            "http://%s:%d%s" % (HOST, port, path)]
    if body is not None:
        argv += ["-H", "Content-Type: application/json", "--data-binary",
                 body if isinstance(body, str) else json.dumps(body)]
    p = subprocess.run(argv, capture_output=True, timeout=deadline() + 5)
    check(p.returncode == 0, "curl %s %s: exit %d: %s" % (method, path, p.returncode,
                                                         p.stderr.decode(errors="replace")))
    head, _, data = p.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.1 (\d{3})", lines[0])
    check(m, "curl: bad status line %r" % lines[0])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(m.group(1)), hdrs, data


def as_json(st, body, what):
    try:
        return json.loads(body)
    except ValueError:
        raise CaseFailure("%s: %d, not JSON: %r" % (what, st, body[:200])) from None


def expect(result, status, what, x_cache=None):
    """Checks status (and X-Cache) of a response; returns its JSON body (None
    for a 204)."""
    st, h, body = result
    check(st == status, "%s: status %d, want %d: %r" % (what, st, status, body[:300]))
    if x_cache:
        check(h.get("x-cache") == x_cache, "%s: X-Cache %r, want %r"
              % (what, h.get("x-cache"), x_cache))
    if st == 204:
        check(body == b"", "%s: a 204 with a body %r" % (what, body))
        return None
    check(h.get("content-type", "").startswith("application/json"),
          "%s: Content-Type %r" % (what, h.get("content-type")))
    doc = as_json(st, body, what)
    if st >= 400:
        check(isinstance(doc, dict) and isinstance(doc.get("error"), str) and doc["error"],
              "%s: error body %r" % (what, doc))
    return doc


def create(port, title, done=None, use_curl=False):
    body = {"title": title} if done is None else {"title": title, "done": done}
    res = (curl if use_curl else request)(port, "POST", "/todos", body)
    doc = expect(res, 201, "POST /todos %r" % title)
    check(res[1].get("location") == "/todos/%d" % doc["id"],
          "POST: Location %r for id %r" % (res[1].get("location"), doc["id"]))
    return doc


def get(port, path, x_cache=None, status=200):
    return expect(request(port, "GET", path), status, "GET " + path, x_cache)


def psql(sql):
    return PG.psql(DB, sql)


def check_todo(doc, id_, title, done, what):
    check(isinstance(doc, dict) and sorted(doc) == ["created_at", "done", "id", "title"],
          "%s: not a todo: %r" % (what, doc))
    check((doc["id"], doc["title"], doc["done"]) == (id_, title, done),
          "%s: %r, want id %r title %r done %r" % (what, doc, id_, title, done))
    check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["created_at"]),
          "%s: created_at %r" % (what, doc["created_at"]))


# ---- cases -----------------------------------------------------------------------------------

def test_round_trip(t):
    """Create (curl), get, list, update title and done, delete (curl): the
    statuses and bodies, and what the tables hold (psql)."""
    p = t.srv.port
    a = create(p, "buy milk", use_curl=True)
    check_todo(a, a["id"], "buy milk", False, "POST")
    b = create(p, "walk the dog", done=True)
    check_todo(b, b["id"], "walk the dog", True, "POST done")
    check(b["id"] > a["id"], "ids %r then %r" % (a["id"], b["id"]))
    check_todo(get(p, "/todos/%d" % a["id"]), a["id"], "buy milk", False, "GET")
    lst = get(p, "/todos")
    ids = [x["id"] for x in lst]
    check(ids == sorted(ids) and a["id"] in ids and b["id"] in ids, "GET /todos: ids %r" % ids)
    check(a in lst, "GET /todos: %r not in the list" % a)
    u = expect(curl(p, "PATCH", "/todos/%d" % a["id"], {"title": "buy oat milk"}), 200, "PATCH")
    check_todo(u, a["id"], "buy oat milk", False, "PATCH title")
    check(u["created_at"] == a["created_at"], "PATCH changed created_at")
    u = expect(request(p, "PATCH", "/todos/%d" % a["id"], {"done": True}), 200, "PATCH done")
    check_todo(u, a["id"], "buy oat milk", True, "PATCH done")
    check(psql("select title, done from todos where id = %d" % a["id"]) == "buy oat milk|t",
          "the row after the PATCHes")
    expect(curl(p, "DELETE", "/todos/%d" % a["id"]), 204, "DELETE")
    get(p, "/todos/%d" % a["id"], status=404)
    expect(request(p, "DELETE", "/todos/%d" % a["id"]), 404, "DELETE again")
    expect(request(p, "PATCH", "/todos/%d" % a["id"], {"done": False}), 404, "PATCH deleted")
    check(psql("select count(*) from todos where id = %d" % a["id"]) == "0", "row not deleted")
    ops = psql("select op from todo_log where todo_id = %d order by seq" % a["id"]).split()
    check(ops == ["create", "update", "update", "delete"], "todo_log for the todo: %r" % ops)
    check([x["id"] for x in get(p, "/todos")].count(a["id"]) == 0, "deleted todo listed")


def test_cache_miss_then_hit(t):
    """A first GET is a miss, the next a hit with the same body; the entry
    is in Redis with a TTL of at most --cache-ttl-ms (30 s by default)."""
    p = t.srv.port
    a = create(p, "cache me")
    path = "/todos/%d" % a["id"]
    first = get(p, path, "miss")
    second = get(p, path, "hit")
    check(first == second == a, "miss %r, hit %r, created %r" % (first, second, a))
    ttl = REDIS.cli("pttl", "todos:%d" % a["id"])
    check(0 < ttl <= 30000, "PTTL of the entry: %r" % ttl)
    check(json.loads(REDIS.cli("get", "todos:%d" % a["id"])) == a, "the cached value")
    get(p, "/todos", "miss" if REDIS.cli("exists", "todos:all") == 0 else "hit")
    get(p, "/todos", "hit")
    check(0 < REDIS.cli("pttl", "todos:all") <= 30000, "PTTL of the list")
    # A 404 is not cached: the id may come.
    get(p, "/todos/987654321", status=404)
    check(REDIS.cli("exists", "todos:987654321") == 0, "a 404 was cached")


def test_write_invalidates(t):
    """After each write the entries it changed are gone: the next GET is a
    miss showing the new state, then a hit again."""
    p = t.srv.port
    a = create(p, "before")
    path = "/todos/%d" % a["id"]
    get(p, path, "miss")
    get(p, path, "hit")
    get(p, "/todos")
    get(p, "/todos", "hit")
    expect(request(p, "PATCH", path, {"title": "after"}), 200, "PATCH")
    check_todo(get(p, path, "miss"), a["id"], "after", False, "GET after PATCH")
    check_todo(get(p, path, "hit"), a["id"], "after", False, "GET after PATCH, again")
    lst = get(p, "/todos", "miss")
    check(any(x["id"] == a["id"] and x["title"] == "after" for x in lst), "list after PATCH")
    get(p, "/todos", "hit")
    b = create(p, "new one")  # a create invalidates the list
    check(b in get(p, "/todos", "miss"), "list after POST")
    get(p, "/todos", "hit")
    expect(request(p, "DELETE", path), 204, "DELETE")
    get(p, path, status=404)
    check(all(x["id"] != a["id"] for x in get(p, "/todos", "miss")), "list after DELETE")
    check(REDIS.cli("exists", "todos:%d" % a["id"]) == 0, "entry left after DELETE")


def test_ttl_expiry(t):
    """With --cache-ttl-ms 300, a change made behind the API's back (psql:
    nothing invalidates) is served stale from the cache until the entry
    expires, then fresh: the TTL bounds the staleness."""
    ttl = int(300 * harness.SLOW)
    srv = start_server("--cache-ttl-ms", str(ttl))
    try:
        p = srv.port
        a = create(p, "fresh")
        path = "/todos/%d" % a["id"]
        get(p, path, "miss")
        pttl = REDIS.cli("pttl", "todos:%d" % a["id"])  # -2: expired already
        check(pttl <= ttl and pttl != -1, "PTTL %r, want at most %d ms" % (pttl, ttl))
        psql("update todos set title = 'changed behind its back' where id = %d" % a["id"])
        seen = []

        def fresh():
            st, h, body = request(p, "GET", path)
            check(st == 200, "GET %s: %d" % (path, st))
            doc = as_json(st, body, path)
            seen.append((h.get("x-cache"), doc["title"]))
            # A hit is the old value, a miss the new one: never a mix.
            check((h.get("x-cache"), doc["title"]) in
                  (("hit", "fresh"), ("miss", "changed behind its back")),
                  "GET %s: X-Cache %r with title %r" % (path, h.get("x-cache"), doc["title"]))
            return h.get("x-cache") == "miss"
        wait_until(fresh, deadline(), "the entry's expiry", interval=0.05)
        srv.stop()
    finally:
        srv.kill()


def test_failed_transaction_rolls_back(t):
    """A CHECK on todo_log (NOT VALID: for new rows only) refuses a write's second statement: the request
    is a 500, and the first statement's change is rolled back: the PATCHed
    title is the old one (psql, and a fresh GET), and the failed create
    left no row although its insert ran (the id sequence moved)."""
    p = t.srv.port
    a = create(p, "keep me")
    path = "/todos/%d" % a["id"]
    try:
        psql("alter table todo_log add constraint no_updates check (op <> 'update') not valid")
        expect(request(p, "PATCH", path, {"title": "lost", "done": True}), 500, "PATCH refused")
        check(psql("select title, done from todos where id = %d" % a["id"]) == "keep me|f",
              "the PATCH was not rolled back")
        REDIS.cli("del", "todos:%d" % a["id"])
        check_todo(get(p, path, "miss"), a["id"], "keep me", False, "GET after the rollback")
        psql("alter table todo_log add constraint no_creates check (op <> 'create') not valid")
        before = psql("select count(*) from todos")
        seq = int(psql("select last_value from todos_id_seq"))
        expect(request(p, "POST", "/todos", {"title": "never"}), 500, "POST refused")
        check(int(psql("select last_value from todos_id_seq")) > seq, "the insert did not run")
        check(psql("select count(*) from todos") == before, "the failed create left a row")
        check(psql("select count(*) from todos where title = 'never'") == "0", "'never' is there")
    finally:
        psql("alter table todo_log drop constraint if exists no_updates, "
             "drop constraint if exists no_creates")
    u = expect(request(p, "PATCH", path, {"done": True}), 200, "PATCH after the CHECKs went")
    check_todo(u, a["id"], "keep me", True, "PATCH after")


def test_deadline(t):
    """A lock held on todos past --deadline-ms: an uncached GET and a PATCH
    are answered 503 (at the deadline: the lock is held for 60 s, and the
    client would wait far less), the PATCH rolled back; once the lock is
    gone the same server answers 200 (the cut statements left the pooled
    connections usable), and the PATCH takes."""
    srv = start_server("--deadline-ms", str(int(500 * harness.SLOW)), redis=False)
    locker = None
    try:
        p = srv.port
        a = create(p, "locked")
        path = "/todos/%d" % a["id"]
        locker = PG.psql_popen(DB, "begin; lock table todos in access exclusive mode; "
                                   "select pg_sleep(60); commit;")
        wait_until(lambda: psql("select count(*) from pg_locks l join pg_class c on c.oid = "
                                "l.relation where c.relname = 'todos' and l.mode = "
                                "'AccessExclusiveLock' and l.granted") == "1",
                   deadline(), "the lock on todos")
        for method, body in (("GET", None), ("PATCH", {"title": "too late"}), ("GET", None)):
            doc = expect(request(p, method, path, body), 503, "%s under the lock" % method)
            check("deadline" in doc["error"], "%s under the lock: %r" % (method, doc))
    finally:
        if locker:
            locker.kill()
            locker.wait()
            psql("select pg_terminate_backend(pid) from pg_stat_activity where "
                 "query like '%pg_sleep(60)%' and pid <> pg_backend_pid()")
    try:
        wait_until(lambda: request(p, "GET", path)[0] == 200, deadline(), "GET after the lock")
        check(psql("select title from todos where id = %d" % a["id"]) == "locked",
              "the PATCH cut by the deadline was not rolled back")
        u = expect(request(p, "PATCH", path, {"title": "in time"}), 200, "PATCH after")
        check_todo(u, a["id"], "in time", False, "PATCH after the lock")
        srv.stop()
    finally:
        srv.kill()


def test_redis_down_and_back(t):
    """Redis killed under the running server: reads still 200 (X-Cache:
    miss, from PostgreSQL), writes still succeed, the outage is logged
    once; Redis started again (empty, same port): hits again, by the
    client's own reconnect."""
    srv = t.srv
    p = srv.port
    a = create(p, "outage")
    path = "/todos/%d" % a["id"]
    get(p, path, "miss")
    get(p, path, "hit")
    mark = srv.mark()
    REDIS.kill()
    try:
        for i in range(3):
            check_todo(get(p, path, "miss"), a["id"], "outage", False, "GET without Redis")
            get(p, "/todos", "miss")
        b = create(p, "written without Redis")
        expect(request(p, "PATCH", path, {"done": True}), 200, "PATCH without Redis")
        expect(request(p, "DELETE", "/todos/%d" % b["id"]), 204, "DELETE without Redis")
        check_todo(get(p, path, "miss"), a["id"], "outage", True, "GET after the PATCH")
        srv.wait_log(r"WARN .*redis .*reads go to PostgreSQL", start=mark)
        n = srv.count_log(r"redis .*reads go to PostgreSQL", start=mark)
        check(n == 1, "the outage logged %d times, want once:\n%s" % (n, srv.tail()))
    finally:
        REDIS.start()
    wait_until(lambda: request(p, "GET", path)[1].get("x-cache") == "hit", deadline(),
               "a hit after Redis came back")
    check_todo(get(p, path, "hit"), a["id"], "outage", True, "GET after Redis came back")
    srv.wait_log(r"redis .*back", start=mark)


def test_redis_down_at_start(t):
    """A server whose Redis is not there when it starts: it serves (misses),
    logs that once, and caches as soon as Redis appears."""
    later = Redis()
    later.port = free_port()
    srv = harness.Server(ARGS.server, "--db", DB, "--redis", later.addr)
    try:
        p = srv.port
        a = create(p, "no redis yet")
        path = "/todos/%d" % a["id"]
        for _ in range(3):
            get(p, path, "miss")
        srv.wait_log(r"WARN .*redis .*reads go to PostgreSQL")
        check(srv.count_log(r"reads go to PostgreSQL") == 1, "logged more than once")
        later.start()
        wait_until(lambda: request(p, "GET", path)[1].get("x-cache") == "hit", deadline(),
                   "a hit once Redis is there")
        srv.stop()
    finally:
        srv.kill()
        later.stop()


def test_no_redis(t):
    """Without --redis: no cache, every read a miss, nothing logged about it."""
    srv = start_server(redis=False)
    try:
        p = srv.port
        a = create(p, "uncached")
        for _ in range(2):
            get(p, "/todos/%d" % a["id"], "miss")
            get(p, "/todos", "miss")
        check(srv.count_log("redis") == 0, "logs about Redis:\n" + srv.tail())
        srv.stop()
    finally:
        srv.kill()


def test_bad_input(t):
    """400 for bad JSON, fields and titles, 404 for ids that are not there
    or not ids, 405 for other methods, 413 for a body too large; nothing
    written by any of them.  A title of 200 two-byte characters is fine."""
    p = t.srv.port
    a = create(p, "valid")
    item = "/todos/%d" % a["id"]
    before = psql("select count(*) from todos") + "/" + psql("select count(*) from todo_log")
    bad = [("POST", "/todos", "{"), ("POST", "/todos", "not json"), ("POST", "/todos", ""),
           ("POST", "/todos", "[]"), ("POST", "/todos", '"title"'), ("POST", "/todos", "{}"),
           ("POST", "/todos", {"done": True}), ("POST", "/todos", {"title": ""}),
           ("POST", "/todos", {"title": 5}), ("POST", "/todos", {"title": None}),
           ("POST", "/todos", {"title": "x" * 201}), ("POST", "/todos", {"title": "\u00e9" * 201}),
           ("POST", "/todos", {"title": "x", "done": "yes"}),
           ("POST", "/todos", {"title": "x", "done": 1}),
           ("POST", "/todos", {"title": "x", "id": 7}),
           ("POST", "/todos", '{"title": "a\\u0000b"}'),
           ("PATCH", item, "{}"), ("PATCH", item, {"titel": "typo"}),
           ("PATCH", item, {"done": None}), ("PATCH", item, {"title": "y" * 201}),
           ("PATCH", item, "[true]")]
    for method, path, body in bad:
        res = (curl if isinstance(body, str) else request)(p, method, path, body)
        expect(res, 400, "%s %s %r" % (method, path, str(body)[:40]))
    for path in ("/todos/0", "/todos/abc", "/todos/-1", "/todos/1.5", "/todos/987654321",
                 "/todos/99999999999999999999"):
        get(p, path, status=404)
        expect(request(p, "PATCH", path, {"done": True}), 404, "PATCH " + path)
        expect(request(p, "DELETE", path), 404, "DELETE " + path)
    for method, path in (("PUT", item), ("POST", item), ("PUT", "/todos"),
                         ("DELETE", "/todos"), ("PATCH", "/todos")):
        st, h, _ = request(p, method, path, "{}")
        check(st == 405 and "allow" in h, "%s %s: %d %r" % (method, path, st, h))
    st, _, _ = request(p, "POST", "/todos", '{"title": "%s"}' % ("z" * 70000))
    check(st == 413, "a 70 KB body: %d" % st)
    after = psql("select count(*) from todos") + "/" + psql("select count(*) from todo_log")
    check(before == after, "bad requests changed the tables: %s -> %s" % (before, after))
    u = create(p, "\u00e9" * 200)
    check(u["title"] == "\u00e9" * 200, "a 200-character title: %r" % u["title"][:10])
    check(psql("select char_length(title) from todos where id = %d" % u["id"]) == "200",
          "the stored title's length")


def test_postgres_down_and_back(t):
    """PostgreSQL stopped under the running server: what is not cached is a
    503 with a JSON error (no connection: at once, well within the
    deadline), a cached read is still served; started again: 200 and 201."""
    if not PG.started:
        print("    SKIP: CORIO_TEST_PG names a server this script cannot stop", flush=True)
        return
    p = t.srv.port
    a = create(p, "survivor")
    path = "/todos/%d" % a["id"]
    get(p, path, "miss")
    get(p, path, "hit")
    PG.halt()
    try:
        REDIS.cli("del", "todos:all")
        for _ in range(2):
            expect(request(p, "GET", "/todos"), 503, "GET /todos without PostgreSQL")
            expect(request(p, "POST", "/todos", {"title": "x"}), 503, "POST without PostgreSQL")
            expect(request(p, "PATCH", path, {"done": True}), 503, "PATCH without PostgreSQL")
        check_todo(get(p, path, "hit"), a["id"], "survivor", False, "a cached read")
    finally:
        PG.resume()
    wait_until(lambda: request(p, "GET", "/todos")[0] == 200, deadline(),
               "GET /todos after PostgreSQL came back")
    b = create(p, "after the restart")
    check_todo(get(p, "/todos/%d" % b["id"], "miss"), b["id"], "after the restart", False,
               "GET after the restart")


def test_flags_refused(t):
    for args, msg in ((("--deadline-ms", "0"), "--deadline-ms"),
                      (("--deadline-ms", "x"), "--deadline-ms"),
                      (("--cache-ttl-ms", "-5"), "--cache-ttl-ms"),
                      (("--redis", ""), "--redis"), (("--db",), "--db needs")):
        p = subprocess.run([*harness.WRAP, ARGS.server, "--port", "0", *args],
                           capture_output=True, timeout=deadline(), env=harness.clean_env())
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2 and msg in err, "%r: exit %d, %r" % (args, p.returncode, err))
    p = subprocess.run([*harness.WRAP, ARGS.server, "--port", "0", "--db",
                        "host=127.0.0.1 port=1 connect_timeout=5 user=x dbname=x"],
                       capture_output=True, timeout=deadline() + 15, env=harness.clean_env())
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "--db" in err, "an unreachable --db: exit %d, %r"
          % (p.returncode, err))


def test_run_sh(t):
    """examples/todo/run.sh, the one command: up with its own PostgreSQL and
    Redis, answering (a hit on the second GET), and after Ctrl-C (SIGINT to
    its process group) everything stopped and its directory removed."""
    if harness.skip_under_wrap("run.sh runs the binary itself"):
        return
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "todo",
                          "run.sh")
    build = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(ARGS.server))))
    port = free_port()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(["bash", script], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                            env=harness.clean_env({"PORT": str(port), "BUILD_DIR": build}),
                            start_new_session=True)

    def output():
        out.seek(0)
        return out.read().decode(errors="replace")
    try:
        wait_until(lambda: "listening on 127.0.0.1:%d" % port in output() or proc.poll() is not None,
                   60, "run.sh's server")
        check(proc.poll() is None, "run.sh exited %r" % proc.returncode)
        m = re.search(r"files in (\S+)", output())
        check(m and os.path.isdir(m.group(1)), "run.sh's directory")
        a = create(port, "from run.sh", use_curl=True)
        get(port, "/todos/%d" % a["id"], "miss")
        get(port, "/todos/%d" % a["id"], "hit")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=deadline() + 30)
        check(not os.path.exists(m.group(1)), "%s left behind" % m.group(1))
        check("removed" in output(), "no last line from run.sh")
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        left = [line for line in ps.splitlines() if m.group(1) in line]
        check(not left, "processes left by run.sh: %r" % left)
    except Exception as e:  # noqa: BLE001 - whatever failed, show what run.sh said
        raise CaseFailure("%s\n---- run.sh's output:\n%s" % (e, output()[-3000:])) from e
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        out.close()


CASES = [test_round_trip, test_cache_miss_then_hit, test_write_invalidates, test_ttl_expiry,
         test_failed_transaction_rolls_back, test_deadline, test_redis_down_and_back,
         test_redis_down_at_start, test_no_redis, test_bad_input, test_postgres_down_and_back,
         test_flags_refused, test_run_sh]


class Shared:
    srv = None


def main():
    global ARGS, PG, DB, REDIS
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the todo example binary")
    ARGS = harness.parse_args(ap)
    if not Redis.available():
        print("SKIP: no redis-server (Debian package redis-server)", flush=True)
        return SKIP
    if not shutil.which("curl"):
        print("SKIP: no curl", flush=True)
        return SKIP
    started = time.monotonic()
    try:
        PG = Pg().start()
    except PgSkip as e:
        print("SKIP: %s" % e, flush=True)
        return SKIP
    passed = failed = 0
    failed_names = []
    try:
        REDIS = Redis().start()
        DB = PG.database("corio_todo_%d" % os.getpid())
        t = Shared()
        t.srv = start_server()
        for case in pick(CASES, ARGS.k):
            if run_case(case.__name__, case, t):
                passed += 1
            else:
                failed += 1
                failed_names.append(case.__name__)
            if harness.server_died(t.srv):
                failed += 1
                failed_names.append("the shared server died")
                break
        if t.srv.alive() and not harness.stop_cleanly(t.srv):
            failed += 1
            failed_names.append("the shared server's SIGTERM exit")
    finally:
        kill_all()
        if REDIS:
            REDIS.stop()
        PG.stop()
    return summary(passed, failed, started, failed_names)


if __name__ == "__main__":
    sys.exit(main())
