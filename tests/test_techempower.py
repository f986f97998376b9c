#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Integration tests of examples/techempower against a throwaway PostgreSQL
(pg_server.py), route by route against TechEmpower's rules.

    test_techempower.py --server build/examples/techempower/techempower [-k NAME]
                        [--wrap "valgrind ..." [--slow 10]]

Without PostgreSQL server binaries (and without CORIO_TEST_PG=<conninfo>
naming a server to use) the script prints why and exits 77, which CTest
counts as skipped; so it does when the example was built without libpq
(it refuses --db then), after checking /plaintext and /json.

The shared server runs `--db <uri> --db-init --port 0` on a database of
its own.  The cases: /plaintext and /json (exact bodies, Content-Type,
Server, Date); /db (shape, ranges, the value the table holds); /queries
(1, 20, 500 rows; 0, -5, 501, "foo", "", missing and more clamped; the
values those of the table, read back with psql); /updates (the same counts
and clamping; the new values in the table afterwards, read back with psql;
concurrent requests on the same rows all answered, none deadlocked);
/fortunes (the exact page: 13 rows sorted by message, the <script> one
escaped, the Japanese one as UTF-8); /cached-queries; rows holding
int4's extremes; HEAD and an unknown path; a second server with
--db-init on the initialised database (no row added, none changed) and with
--workers 2; a request held past --db-timeout by a lock answered 503 and
the server fine after; the database gone: 503, /plaintext still served,
a clean SIGTERM exit; the flags' refusals.  Every wait has a deadline;
the servers are stopped and the PostgreSQL server stopped and removed even
when a case fails.  Python standard library only.
"""
import argparse
import concurrent.futures
import datetime
import functools
import http.client
import json
import os
import subprocess
import sys
import time

import harness
from harness import HOST, CaseFailure, check, kill_all, pick, run_case, summary, wait_until
from pg_server import PgServer, PgSkip

ARGS = None
PG = None
DB = None  # the conninfo of the test's database
SKIP = 77
Server = functools.partial(harness.Server, env_drop=("CORIO_",))

FORTUNES = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
]


def deadline():
    return harness.DEADLINE


def get(port, path, conn=None):
    """GET path: (status, {lower-case name: value}, body bytes)."""
    c = conn or http.client.HTTPConnection(HOST, port, timeout=deadline())
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body
    finally:
        if conn is None:
            c.close()


def check_headers(h, ctype_re, what):
    """Server and Date present (Date in RFC 9110's IMF-fixdate), the
    Content-Type matching TechEmpower's pattern, a length."""
    import re
    check("server" in h, "%s: no Server field: %r" % (what, h))
    check("date" in h, "%s: no Date field: %r" % (what, h))
    try:
        datetime.datetime.strptime(h["date"], "%a, %d %b %Y %H:%M:%S GMT")
    except ValueError:
        raise CaseFailure("%s: Date %r is not an IMF-fixdate" % (what, h["date"])) from None
    check(re.fullmatch(ctype_re, h.get("content-type", "")),
          "%s: Content-Type %r, want %s" % (what, h.get("content-type"), ctype_re))
    check("content-length" in h or "transfer-encoding" in h, "%s: no length: %r" % (what, h))


JSON_TYPE = r"application/json(; ?charset=(UTF|utf)-8)?"


def get_json(port, path, conn=None):
    st, h, body = get(port, path, conn)
    check(st == 200, "%s: status %d: %r" % (path, st, body[:200]))
    check_headers(h, JSON_TYPE, path)
    try:
        return json.loads(body)
    except ValueError as e:
        raise CaseFailure("%s: not JSON (%s): %r" % (path, e, body[:200])) from None


def check_world(obj, what):
    """{"id": 1..10000, "randomNumber": 1..10000} and nothing else."""
    check(isinstance(obj, dict) and sorted(obj) == ["id", "randomNumber"],
          "%s: not a World object: %r" % (what, obj))
    for k in ("id", "randomNumber"):
        check(type(obj[k]) is int and 1 <= obj[k] <= 10000,
              "%s: %s out of 1..10000: %r" % (what, k, obj))


def get_worlds(port, path, n, conn=None):
    """GET path: a JSON array of n World objects."""
    doc = get_json(port, path, conn)
    check(isinstance(doc, list), "%s: not an array: %r" % (path, str(doc)[:200]))
    check(len(doc) == n, "%s: %d rows, want %d" % (path, len(doc), n))
    for w in doc:
        check_world(w, path)
    return doc


def table(sql=None):
    """World as {id: randomnumber}, read with psql (an external client)."""
    out = PG.psql(DB, sql or "select id, randomnumber from world")
    return {int(a): int(b) for a, b in (line.split("|") for line in out.splitlines())}


def start_server(*args, db=True, **kw):
    extra = ("--db", DB, "--db-init") if db else ()
    return Server(ARGS.server, *extra, *args, **kw)


# ---- cases ----------------------------------------------------------------------------------

def test_plaintext(t):
    for conn in (None, http.client.HTTPConnection(HOST, t.port, timeout=deadline())):
        st, h, body = get(t.port, "/plaintext", conn)
        check(st == 200 and body == b"Hello, World!", "/plaintext: %d %r" % (st, body))
        check_headers(h, r"text/plain(; ?charset=(UTF|utf)-8)?", "/plaintext")


def test_json(t):
    st, h, body = get(t.port, "/json")
    check(st == 200 and body == b'{"message":"Hello, World!"}', "/json: %d %r" % (st, body))
    check_headers(h, JSON_TYPE, "/json")


def test_db(t):
    c = http.client.HTTPConnection(HOST, t.port, timeout=deadline())
    ids = set()
    for _ in range(50):
        w = get_json(t.port, "/db", c)
        check_world(w, "/db")
        ids.add(w["id"])
    c.close()
    check(len(ids) > 40, "/db: 50 requests gave only %d distinct ids" % len(ids))
    now = table()
    w = get_json(t.port, "/db")
    check(now[w["id"]] == w["randomNumber"], "/db: %r, the table holds %d"
          % (w, now[w["id"]]))


def test_queries_counts(t):
    c = http.client.HTTPConnection(HOST, t.port, timeout=deadline())
    for n in (1, 2, 20, 500):
        get_worlds(t.port, "/queries?queries=%d" % n, n, c)
    c.close()


def test_queries_clamped(t):
    for q, n in (("0", 1), ("-5", 1), ("501", 500), ("foo", 1), ("", 1), ("5x", 1),
                 ("-", 1), ("99999999999999999999999", 500), ("%2B7", 7), ("1000", 500)):
        get_worlds(t.port, "/queries?queries=" + q, n)
    get_worlds(t.port, "/queries", 1)
    get_worlds(t.port, "/queries?other=3", 1)


def test_queries_values(t):
    """Each of the 500 rows of a batch is its own id's row (no results
    shifted or swapped), with repeated ids too."""
    now = table()
    doc = get_worlds(t.port, "/queries?queries=500", 500)
    bad = [w for w in doc if now[w["id"]] != w["randomNumber"]]
    check(not bad, "/queries: rows that differ from the table: %r" % bad[:5])
    check(len({w["id"] for w in doc}) > 400, "/queries: too few distinct ids")


def test_updates(t):
    """The values sent back are in the table afterwards (psql), and most
    rows changed."""
    c = http.client.HTTPConnection(HOST, t.port, timeout=deadline())
    for n in (1, 20, 500):
        before = table()
        doc = get_worlds(t.port, "/updates?queries=%d" % n, n, c)
        after = table()
        sent = {}
        for w in doc:
            check(sent.setdefault(w["id"], w["randomNumber"]) == w["randomNumber"],
                  "/updates: id %d sent back with two values" % w["id"])
        bad = {i: (v, after[i]) for i, v in sent.items() if after[i] != v}
        check(not bad, "/updates?queries=%d: (sent, in the table): %r" % (n, list(bad.items())[:5]))
        changed = sum(1 for i in sent if before[i] != after[i])
        others = sum(1 for i in after if i not in sent and before[i] != after[i])
        check(others == 0, "/updates: %d rows not sent back changed" % others)
        if n == 500:
            check(changed > 450, "/updates?queries=500: only %d rows changed" % changed)
    c.close()


def test_updates_clamped(t):
    for q, n in (("0", 1), ("-5", 1), ("501", 500), ("foo", 1), ("", 1)):
        get_worlds(t.port, "/updates?queries=" + q, n)
    get_worlds(t.port, "/updates", 1)


def test_updates_concurrent(t):
    """Concurrent /updates of 500 rows each (many rows in common): each one
    answered 200 in time, none deadlocked (they write in the order of their
    ids) nor failed."""
    def one(_):
        st, _h, body = get(t.port, "/updates?queries=500")
        return st, body[:200]
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(one, range(24)))
    bad = [r for r in results if r[0] != 200]
    check(not bad, "%d of 24 concurrent /updates failed: %r" % (len(bad), bad[:3]))
    count = PG.psql(DB, "select count(*) from world where randomnumber between 1 and 10000")
    check(count == "10000", "World after the updates: %s rows in range" % count)


def expected_fortunes():
    def esc(s):
        return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                .replace('"', "&quot;").replace("'", "&#39;"))
    rows = sorted(FORTUNES + [(0, "Additional fortune added at request time.")],
                  key=lambda r: r[1].encode())
    return ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
            "<tr><th>id</th><th>message</th></tr>"
            + "".join("<tr><td>%d</td><td>%s</td></tr>" % (i, esc(m)) for i, m in rows)
            + "</table></body></html>")


def test_fortunes(t):
    st, h, body = get(t.port, "/fortunes")
    check(st == 200, "/fortunes: status %d: %r" % (st, body[:200]))
    check_headers(h, r"text/html; ?charset=(UTF|utf)-8", "/fortunes")
    page = body.decode("utf-8")
    check(page.count("<tr>") == 14, "/fortunes: %d rows, want 13 and the header"
          % (page.count("<tr>") - 1))
    check("&lt;script&gt;alert(&quot;This should not be displayed in a browser alert box."
          "&quot;);&lt;/script&gt;" in page and "<script>" not in page,
          "/fortunes: the <script> fortune is not escaped")
    check("<td>12</td><td>\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1"
          "\u30de\u30fc\u30af</td>" in page, "/fortunes: the Japanese fortune is not there")
    want = expected_fortunes()
    check(page == want, "/fortunes: the page differs:\n got %r\nwant %r" % (page, want))


def test_cached_queries(t):
    for q, n in (("1", 1), ("20", 20), ("500", 500), ("0", 1), ("foo", 1), ("501", 500)):
        get_worlds(t.port, "/cached-queries?count=" + q, n)
    get_worlds(t.port, "/cached-queries", 1)


def test_extreme_values(t):
    """Rows holding int4's extremes (a table changed by hand) are sent back
    as they are: the JSON buffers are sized for any int."""
    PG.psql(DB, "drop table if exists world_saved; create table world_saved as "
                "select * from world; update world set randomnumber = case when id % 2 = 0 "
                "then -2147483648 else 2147483647 end")
    try:
        for path, n in (("/queries?queries=500", 500), ("/db", None)):
            doc = get_json(t.port, path)
            rows = doc if n else [doc]
            check(len(rows) == (n or 1), "%s: %d rows" % (path, len(rows)))
            bad = [w for w in rows
                   if w["randomNumber"] != (-2147483648 if w["id"] % 2 == 0 else 2147483647)]
            check(not bad, "%s: %r" % (path, bad[:3]))
    finally:
        PG.psql(DB, "update world w set randomnumber = s.randomnumber from world_saved s "
                    "where s.id = w.id; drop table world_saved")


def test_head_and_unknown(t):
    c = http.client.HTTPConnection(HOST, t.port, timeout=deadline())
    c.request("HEAD", "/db")
    r = c.getresponse()
    check(r.status == 200 and r.read() == b"", "HEAD /db: %d" % r.status)
    c.close()
    st, _h, _b = get(t.port, "/nope")
    check(st == 404, "/nope: %d" % st)


def test_reinit_keeps_rows(t):
    """A second --db-init on the initialised database adds and changes
    nothing; --workers 2 serves every route (a pool per worker)."""
    before = table()
    fortunes = PG.psql(DB, "select id, message from fortune order by id")
    srv = start_server("--workers", "2")
    try:
        for path in ("/db", "/queries?queries=20", "/fortunes", "/cached-queries?count=5"):
            for _ in range(6):
                st, _h, body = get(srv.port, path)
                check(st == 200, "--workers 2: %s: %d %r" % (path, st, body[:200]))
        srv.stop()
    finally:
        srv.kill()
    check(table() == before, "--db-init on an initialised database changed World")
    check(PG.psql(DB, "select id, message from fortune order by id") == fortunes,
          "--db-init on an initialised database changed Fortune")
    check(PG.psql(DB, "select count(*) from world") == "10000", "World count")


def test_deadline_503(t):
    """A lock that holds World longer than --db-timeout: /db is answered 503
    while the lock is still held, and once the lock is gone
    the same server answers 200 again (the cancelled query left the pooled
    connection usable)."""
    # 300 ms, ten times that under valgrind: the deadline also covers the
    # calls that must succeed (a pooled connection's connect, 50 queries).
    srv = start_server("--db-timeout", str(int(300 * harness.SLOW)), "--db-pool", "2")
    locker = None
    try:
        get_json(srv.port, "/db")
        locker = PG.psql_popen(DB, "begin; lock table world in access exclusive mode; "
                                   "select pg_sleep(60); commit;")
        wait_until(lambda: PG.psql(DB, "select count(*) from pg_locks l join pg_class c on "
                                       "c.oid = l.relation where c.relname = 'world' and "
                                       "l.mode = 'AccessExclusiveLock' and l.granted") == "1",
                   deadline(), "the lock on World")
        for path in ("/db", "/queries?queries=5", "/updates?queries=5"):
            # The lock is held until the finally below: a 503 while it is
            # held is the deadline's.
            st, h, body = get(srv.port, path)
            check(st == 503 and body == b"database unavailable\n",
                  "%s under the lock: %d %r" % (path, st, body))
            check_headers(h, r"text/plain.*", path)
        st, _h, body = get(srv.port, "/plaintext")
        check(st == 200, "/plaintext while the database is locked: %d" % st)
    finally:
        if locker:
            locker.kill()
            locker.wait()
            # A backend in pg_sleep does not notice its client gone.
            PG.psql(DB, "select pg_terminate_backend(pid) from pg_stat_activity where "
                        "query like '%pg_sleep(60)%' and pid <> pg_backend_pid()")
    try:
        wait_until(lambda: get(srv.port, "/db")[0] == 200, deadline(), "/db after the lock")
        for n in (1, 2):
            get_worlds(srv.port, "/queries?queries=50", 50)
            get_worlds(srv.port, "/updates?queries=50", 50)
        srv.stop()
    finally:
        srv.kill()


def test_flags_refused(t):
    for args, msg in ((("--db-init",), "--db-init needs --db"),
                      (("--db", DB, "--db-pool", "0"), "--db-pool"),
                      (("--db", DB, "--db-pool", "x"), "--db-pool"),
                      (("--db", DB, "--db-timeout", "-1"), "--db-timeout"),
                      (("--db",), "--db needs")):
        p = subprocess.run([*harness.WRAP, ARGS.server, "--port", "0", *args],
                           capture_output=True, timeout=deadline(),
                           env=harness.clean_env())
        err = p.stderr.decode(errors="replace")
        check(p.returncode == 2 and msg in err, "%r: exit %d, %r" % (args, p.returncode, err))
    p = subprocess.run([*harness.WRAP, ARGS.server, "--port", "0", "--db",
                        "host=127.0.0.1 port=1 connect_timeout=5 user=x dbname=x"],
                       capture_output=True, timeout=deadline(), env=harness.clean_env())
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 1 and "--db" in err, "an unreachable --db: exit %d, %r"
          % (p.returncode, err))


def test_database_gone(t):
    """Last: the database stops under a running server.  Database routes
    answer 503 (or 500), never a crash; /plaintext is still served; the
    server exits 0 on SIGTERM."""
    srv = start_server()
    try:
        get_json(srv.port, "/db")
        PG.stop()
        for path in ("/db", "/queries?queries=20", "/updates?queries=20", "/fortunes"):
            for _ in range(2):
                st, _h, body = get(srv.port, path)
                check(st in (500, 503) and body.startswith(b"database"),
                      "%s without a database: %d %r" % (path, st, body[:200]))
        st, _h, body = get(srv.port, "/plaintext")
        check(st == 200 and body == b"Hello, World!", "/plaintext without a database: %d" % st)
        get_worlds(srv.port, "/cached-queries?count=3", 3)
        srv.stop()
    finally:
        srv.kill()


CASES = [test_plaintext, test_json, test_db, test_queries_counts, test_queries_clamped,
         test_queries_values, test_updates, test_updates_clamped, test_updates_concurrent,
         test_fortunes, test_cached_queries, test_extreme_values, test_head_and_unknown,
         test_reinit_keeps_rows, test_deadline_503, test_flags_refused, test_database_gone]


def built_without_pg():
    """Whether the binary refuses --db (built without libpq)."""
    p = subprocess.run([ARGS.server, "--port", "0", "--db", "x"], capture_output=True,
                       timeout=deadline(), env=harness.clean_env())
    return p.returncode == 2 and b"no PostgreSQL client" in p.stderr


def run_no_pg():
    """Only /plaintext and /json, then exit 77 (skipped)."""
    started = time.monotonic()
    passed = failed = 0
    srv = start_server(db=False)
    try:
        for case in (test_plaintext, test_json):
            ok = run_case(case.__name__, case, srv)
            passed, failed = passed + ok, failed + (not ok)
        if not harness.stop_cleanly(srv):
            failed += 1
    finally:
        kill_all()
    rc = summary(passed, failed, started)
    return rc or SKIP


def main():
    global ARGS, PG, DB
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True, help="the techempower example binary")
    ARGS = harness.parse_args(ap)
    if built_without_pg():
        print("SKIP the database cases: %s was built without libpq" % ARGS.server, flush=True)
        return run_no_pg()
    started = time.monotonic()
    try:
        PG = PgServer().start()
    except PgSkip as e:
        print("SKIP: %s" % e, flush=True)
        return SKIP
    passed = failed = 0
    failed_names = []
    try:
        DB = PG.database("corio_te_%d" % os.getpid())
        t = start_server()
        cases = pick(CASES, ARGS.k)
        for case in cases:
            if case is test_database_gone and not PG.started:
                print("SKIP %s: CORIO_TEST_PG names a server this script cannot stop"
                      % case.__name__, flush=True)
                continue
            if run_case(case.__name__, case, t):
                passed += 1
            else:
                failed += 1
                failed_names.append(case.__name__)
            if harness.server_died(t):
                failed += 1
                failed_names.append("the shared server died")
                break
        if t.alive() and not harness.stop_cleanly(t):
            failed += 1
            failed_names.append("the shared server's stop")
    finally:
        kill_all()
        PG.stop()
    return summary(passed, failed, started, failed_names)


if __name__ == "__main__":
    sys.exit(main())
