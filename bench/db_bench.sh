#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Database benchmark: examples/techempower against uvicorn + asyncpg and Go
# net/http + database/sql + lib/pq, all against the same throwaway
# PostgreSQL, in the same run, on 127.0.0.1 only.
#
#   bench/db_bench.sh [build-dir] [rounds]
#
# build-dir defaults to build and should hold a Release build of
# examples/techempower (this script builds no C; it builds the Go peer,
# bench/db/go/main.go, into its temp dir).  rounds defaults to 3
# (CORIO_BENCH_ROUNDS or ROUNDS too).  A server whose dependency is missing is skipped
# with a line saying so (corio: no techempower binary; go: no go or no
# lib/pq sources; uvicorn: no uvicorn or asyncpg for CORIO_BENCH_PYTHON);
# the others still run.
#
# The servers, each with a pool of CORIO_BENCH_DB_POOL (default 8, the
# default of examples/techempower) connections to the same database:
#   corio    examples/techempower --workers 1 --db URI --db-pool N (one
#            process, one event loop; /queries sends its N queries as one
#            pipelined batch, /db and /fortunes a prepared statement each)
#   go       bench/db/go/main.go: net/http, database/sql + lib/pq (Debian's
#            golang-github-lib-pq-dev, built in GOPATH mode, offline),
#            GOMAXPROCS=1, prepared statements, html/template
#   uvicorn  bench/db/asyncpg_app.py: a raw ASGI app, uvicorn one worker,
#            --loop asyncio (CORIO_BENCH_UVICORN_LOOP), asyncpg pool,
#            prepared statements (asyncpg's statement cache)
# Each is written as TechEmpower's entries of its kind are, which is not
# the same work on the wire: corio's /queries is one round trip for its 20
# queries, the peers' twenty (database/sql and lib/pq cannot pipeline;
# TechEmpower's uvicorn entry does not); asyncpg's pool runs its reset query
# (pg_advisory_unlock_all, CLOSE ALL, UNLISTEN *, RESET ALL: one more round
# trip) at every release, and connection.prepare() parses the statement
# anew for every /queries request; database/sql checks a connection out of
# its pool for every query; corio's pool closes connections idle for 60 s
# (between its runs, when the quiet waits are long) and reopens them in its
# next run.  The PG CPU column shows what these cost PostgreSQL.  Debian 12 has no uvloop or httptools installed, so uvicorn
# parses HTTP with h11 on the asyncio loop, slower than TechEmpower's
# uvicorn entry (uvloop, httptools, several gunicorn workers).
# The routes, TechEmpower's: /db (one random World row as JSON),
# /queries?queries=20 (CORIO_BENCH_QUERIES; 20 rows, one query each) and
# /fortunes (the 12 Fortune rows plus one added, sorted, as escaped HTML).
# Before any load each server's answers are checked (row values against the
# table, 20 objects for queries=20, the clamping of queries to 1..500, the
# fortunes' rows, order and escaping), so a broken server cannot win.
#
# PostgreSQL 15 (CORIO_BENCH_PG_BIN, default the newest
# /usr/lib/postgresql/*/bin) is initdb'd in the temp dir and run as user
# nobody on a free port, TCP on 127.0.0.1 only, fsync, synchronous_commit
# and full_page_writes off, max_connections for every pool; World (10,000
# rows) and Fortune (the 12 standard rows) are created with psql here,
# TechEmpower's schema, so no server depends on another having run.  It is
# stopped and removed on exit, failure and ^C included.
#
# Topology (2 CPUs): the server under test and PostgreSQL share CPU 0
# (CORIO_BENCH_SERVER_CPU; CORIO_BENCH_PG_CPU defaults to it), wrk runs
# alone on CPU 1 (CORIO_BENCH_CLIENT_CPU), as
#   wrk -t1 -c64 -d5s --latency --timeout 10s URL
# So req/s is the throughput of server + PostgreSQL on one CPU (the same
# queries, the same PostgreSQL work for every server, give or take the
# protocol messages each driver sends): there is one bottleneck, CPU 0, and
# wrk has room on CPU 1.  The server's own cost is the "server CPU µs/req"
# column (its process only, utime+stime from /proc/PID/stat), PostgreSQL's
# the "PG CPU µs/req" column (the postmaster and all its children).
# Putting PostgreSQL beside wrk on CPU 1 instead (CORIO_BENCH_PG_CPU=1)
# gives two coupled bottlenecks: a lean server then saturates CPU 1, not
# its own, and which side limits a run varies (bench/proxy_bench.sh makes
# the same choice for its upstream, for the same reason).
#
# Runs are interleaved: a warm-up (1 s per route and server), then each
# round runs every route against every server back to back, the servers'
# order rotated from round to round.  For each run: wrk's requests/s, p50
# and p99, errors (non-2xx responses plus socket errors, timeouts
# included), the server's and PostgreSQL's CPU per request.  A run is
# disturbed when neither CPU was at least 90% busy with our processes
# (server, PostgreSQL, wrk: no bottleneck of ours), or other processes took
# > 5% of CPU 0 or of CPU 1 (/proc/stat minus ours), as on a machine
# shared with builds, which also inflate the CPU per request (caches).  The tables (markdown) show medians over the
# clean runs (all runs when none is clean), and the paired ratios
# corio/peer, run by run within a round, for each peer (the best peer of a
# route, by median req/s, marked).  When bench/results exists the tables
# are also written to bench/results/db_DATE.md.
#
# Other knobs: CORIO_BENCH_DURATION or DURATION (default 5s),
# CORIO_BENCH_CONNS or CONNS (wrk's connections, 64), CORIO_BENCH_QUIET_WAIT
# (seconds to wait before each run for a quiet second, default 0),
# CORIO_BENCH_PYTHON (/usr/bin/python3, the interpreter with Debian's
# uvicorn and asyncpg), CORIO_BENCH_GOPATH (/usr/share/gocode),
# CORIO_BENCH_TECHEMPOWER (the corio binary).  Every step is bounded; a
# full run takes about 2 minutes (3 rounds).  The helpers shared with the
# other benchmarks are in bench/lib.sh.
# shellcheck disable=SC2034 # the SERVER_pid and SERVER_port variables are read by name: ${!pv}
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
rounds=${2:-${CORIO_BENCH_ROUNDS:-${ROUNDS:-3}}}
dur=${CORIO_BENCH_DURATION:-${DURATION:-5s}}
conns=${CORIO_BENCH_CONNS:-${CONNS:-64}}
pool=${CORIO_BENCH_DB_POOL:-8}
queries=${CORIO_BENCH_QUERIES:-20}
server_cpu=${CORIO_BENCH_SERVER_CPU:-0}
client_cpu=${CORIO_BENCH_CLIENT_CPU:-1}
pg_cpu=${CORIO_BENCH_PG_CPU:-$server_cpu}
quiet_wait=${CORIO_BENCH_QUIET_WAIT:-0}
py=${CORIO_BENCH_PYTHON:-/usr/bin/python3}
uv_loop=${CORIO_BENCH_UVICORN_LOOP:-asyncio}
gopath=${CORIO_BENCH_GOPATH:-/usr/share/gocode}
corio_bin=${CORIO_BENCH_TECHEMPOWER:-$build/examples/techempower/techempower}
pg_bin=${CORIO_BENCH_PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
routes=(/db "/queries?queries=$queries" /fortunes)

need_tools "apt-get install wrk util-linux python3 curl procps" wrk taskset timeout runuser python3 curl pgrep
check_rounds "$rounds"
[[ $dur =~ ^[0-9]+s?$ ]] || die "CORIO_BENCH_DURATION must look like 5s, not '$dur'"
dur_s=${dur%s}
[[ $conns =~ ^[1-9][0-9]{0,3}$ ]] || die "CORIO_BENCH_CONNS: 1..9999, not '$conns'"
[[ $pool =~ ^[1-9][0-9]{0,2}$ ]] || die "CORIO_BENCH_DB_POOL: 1..999, not '$pool'"
if ! [[ $queries =~ ^[1-9][0-9]{0,2}$ ]] || ((queries > 500)); then
  die "CORIO_BENCH_QUERIES: 1..500, not '$queries'"
fi
[[ $(id -u) == 0 ]] || die "run as root: PostgreSQL is started as user nobody with runuser"
id nobody >/dev/null 2>&1 || die "no user nobody to run PostgreSQL as"
for t in initdb pg_ctl postgres psql; do
  [[ -x $pg_bin/$t ]] || die "$pg_bin/$t not found (apt-get install postgresql; or set CORIO_BENCH_PG_BIN)"
done

bench_setup corio_pid go_pid uvicorn_pid # clk, tmp; on exit: stop the servers, remove tmp
pg_data=$tmp/pg/data
pg_pid=

# pg_stop: stop the PostgreSQL of pg_data, if it runs (bounded: fast shutdown, then KILL).
pg_stop() {
  [[ -f $pg_data/postmaster.pid ]] || return 0
  timeout 20 runuser -u nobody -- "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w -t 10 stop \
    >/dev/null 2>&1 && return 0
  local p
  p=$(head -n 1 "$pg_data/postmaster.pid" 2>/dev/null || true)
  if [[ $p =~ ^[0-9]+$ ]]; then
    kill -KILL $(pgrep -P "$p" 2>/dev/null) "$p" 2>/dev/null || true
  fi
}

# The EXIT trap: the servers first (they hold connections), then PostgreSQL, then bench_cleanup.
db_cleanup() {
  local v
  for v in corio_pid go_pid uvicorn_pid; do
    stop "${!v:-}"
  done
  pg_stop
  bench_cleanup
}
trap db_cleanup EXIT

# ---- PostgreSQL ---------------------------------------------------------------------------------

chmod 711 "$tmp" # nobody must reach $tmp/pg
mkdir -p "$tmp/pg"
chown nobody: "$tmp/pg"
pg_port=$(free_port)
timeout 120 runuser -u nobody -- "$pg_bin/initdb" -D "$pg_data" -U bench --auth=trust -E UTF8 \
  --no-locale >"$tmp/pg/initdb.log" 2>&1 || die "initdb failed: $(tail -n 5 "$tmp/pg/initdb.log")"
cat >>"$pg_data/postgresql.conf" <<EOF
# db_bench.sh
port = $pg_port
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = $((3 * pool + 10))
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
timeout 60 runuser -u nobody -- taskset -c "$pg_cpu" "$pg_bin/pg_ctl" -D "$pg_data" \
  -l "$tmp/pg/postgres.log" -w -t 30 start >/dev/null 2>&1 ||
  die "PostgreSQL did not start: $(tail -n 5 "$tmp/pg/postgres.log" 2>/dev/null)"
pg_pid=$(head -n 1 "$pg_data/postmaster.pid")
[[ $pg_pid =~ ^[0-9]+$ ]] || die "no postmaster pid in $pg_data/postmaster.pid"

pg_psql() {
  timeout 60 "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pg_port" -U bench "$@"
}
pg_psql -d postgres -c 'CREATE DATABASE hello_world' || die "CREATE DATABASE failed"
# TechEmpower's schema and data (its create-postgres.sql): unquoted names, so
# world(id, randomnumber) and fortune(id, message) in the catalog.
pg_psql -d hello_world <<'SQL' || die "creating World and Fortune failed"
CREATE TABLE World (
  id integer NOT NULL,
  randomNumber integer NOT NULL default 0,
  PRIMARY KEY (id)
);
INSERT INTO World (id, randomnumber)
SELECT x.id, least(floor(random() * 10000 + 1), 10000) FROM generate_series(1, 10000) AS x(id);

CREATE TABLE Fortune (
  id integer NOT NULL,
  message varchar(2048) NOT NULL,
  PRIMARY KEY (id)
);
INSERT INTO Fortune (id, message) VALUES
  (1, 'fortune: No such file or directory'),
  (2, 'A computer scientist is someone who fixes things that aren''t broken.'),
  (3, 'After enough decimal places, nobody gives a damn.'),
  (4, 'A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1'),
  (5, 'A computer program does what you tell it to do, not what you want it to do.'),
  (6, 'Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen'),
  (7, 'Any program that runs right is obsolete.'),
  (8, 'A list is only as strong as its weakest link. — Donald Knuth'),
  (9, 'Feature: A bug with seniority.'),
  (10, 'Computers make very fast, very accurate mistakes.'),
  (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
  (12, 'フレームワークのベンチマーク');
VACUUM ANALYZE;
SQL
# Reference data for the checks of the answers.
pg_psql -d hello_world -At -F $'\t' -c 'SELECT id, randomnumber FROM world' >"$tmp/world.tsv"
pg_psql -d hello_world -At -F $'\t' -c 'SELECT id, message FROM fortune' >"$tmp/fortune.tsv"
db_uri="postgresql://bench@127.0.0.1:$pg_port/hello_world?sslmode=disable"
pg_version=$("$pg_bin/postgres" --version | sed 's/^[^0-9]*\([^ ]*\).*/\1/')
echo "db_bench: PostgreSQL $pg_version (pid $pg_pid, 127.0.0.1:$pg_port, as nobody, fsync off)" \
  "on CPU $pg_cpu; World 10000 rows, Fortune $(wc -l <"$tmp/fortune.tsv") rows"

# pg_ticks: utime + stime of the postmaster and of its children (the
# backends, the checkpointer...), those alive and those gone: a backend that
# exits (a pool closed an idle connection) is reaped by the postmaster, and
# its ticks move to the postmaster's cutime + cstime (fields 16 and 17).
pg_ticks() {
  local t stat p c
  stat=$(<"/proc/$pg_pid/stat")
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat # field 3 is now $1
  t=$((${12} + ${13} + ${14} + ${15}))
  for p in $(pgrep -P "$pg_pid" 2>/dev/null || true); do
    c=$(cpu_ticks "$p" 2>/dev/null) || continue
    t=$((t + c))
  done
  echo "$t"
}

# ---- servers ------------------------------------------------------------------------------------

servers=()  # those that run, in their starting order
skipped=()  # "name: why"
declare -A desc

# skip NAME WHY...: say that NAME is not run, and why; listed under the tables too.
skip() {
  skipped+=("$1: ${*:2}")
  echo "db_bench: $1 skipped: ${*:2}"
}

# corio: examples/techempower.
if [[ ! -x $corio_bin ]]; then
  skip corio "$corio_bin not found (examples/techempower not built, or not in this tree yet:" \
    "cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build -j2)"
else
  warn_unless_release "$build"
  corio_port=$(free_port)
  taskset -c "$server_cpu" "$corio_bin" --host 127.0.0.1 --port "$corio_port" --workers 1 \
    --log-level warn --db "$db_uri" --db-pool "$pool" >"$tmp/corio.log" 2>&1 &
  corio_pid=$!
  servers+=(corio)
  desc[corio]="$corio_bin"
fi

# go: bench/db/go/main.go, built here.
if ! command -v go >/dev/null; then
  skip go "no go on PATH (apt-get install golang-go)"
elif [[ ! -d $gopath/src/github.com/lib/pq ]]; then
  skip go "no lib/pq sources in $gopath/src/github.com/lib/pq (apt-get install golang-github-lib-pq-dev)"
elif ! (cd "$here/db/go" && GO111MODULE=off GOPATH=$gopath GOFLAGS="" GOCACHE=$tmp/gocache \
  timeout 300 go build -o "$tmp/go-db" main.go) >"$tmp/go-build.log" 2>&1; then
  skip go "go build of bench/db/go failed: $(tail -n 5 "$tmp/go-build.log")"
else
  go_port=$(free_port)
  GOMAXPROCS=1 taskset -c "$server_cpu" "$tmp/go-db" -addr "127.0.0.1:$go_port" -db "$db_uri" \
    -pool "$pool" >"$tmp/go.log" 2>&1 &
  go_pid=$!
  servers+=(go)
  pq_version=$(dpkg-query -W -f '${Version}' golang-github-lib-pq-dev 2>/dev/null || echo '?')
  desc[go]="$(go version | cut -d' ' -f3) net/http + database/sql + lib/pq $pq_version, GOMAXPROCS=1"
fi

# uvicorn: bench/db/asyncpg_app.py.
if [[ ! -x $py ]]; then
  skip uvicorn "no $py (set CORIO_BENCH_PYTHON)"
elif ! "$py" -c 'import uvicorn' 2>/dev/null; then
  skip uvicorn "no uvicorn for $py (apt-get install python3-uvicorn)"
elif ! "$py" -c 'import asyncpg' 2>/dev/null; then
  skip uvicorn "no asyncpg for $py (apt-get install python3-asyncpg)"
else
  uvicorn_port=$(free_port)
  DB_URI=$db_uri DB_POOL=$pool taskset -c "$server_cpu" "$py" -m uvicorn --app-dir "$here/db" \
    --host 127.0.0.1 --port "$uvicorn_port" --workers 1 --loop "$uv_loop" --lifespan on \
    --log-level warning --no-access-log asyncpg_app:app >"$tmp/uvicorn.log" 2>&1 &
  uvicorn_pid=$!
  servers+=(uvicorn)
  uv_http=h11
  "$py" -c 'import httptools' 2>/dev/null && uv_http=httptools
  desc[uvicorn]=$("$py" -c 'import sys, uvicorn, asyncpg
print(f"uvicorn {uvicorn.__version__} (one worker, --loop '"$uv_loop"', '"$uv_http"' parser)"
      f" + asyncpg {asyncpg.__version__}, Python {sys.version.split()[0]}")')
fi

((${#servers[@]})) || die "no server to benchmark"

# The answers of a server, checked against the tables before any load.
check_answers() {
  "$py" - "$1" "$2" "$queries" "$tmp/world.tsv" "$tmp/fortune.tsv" <<'PY'
import html.parser, json, sys, urllib.request
name, port, queries, world_tsv, fortune_tsv = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
world = {}
for line in open(world_tsv, encoding="utf-8"):
    i, n = line.rstrip("\n").split("\t")
    world[int(i)] = int(n)
fortunes = []
for line in open(fortune_tsv, encoding="utf-8"):
    i, m = line.rstrip("\n").split("\t", 1)
    fortunes.append((int(i), m))
fortunes.append((0, "Additional fortune added at request time."))
fortunes.sort(key=lambda f: f[1].encode())  # byte order of UTF-8 is code point order

def fail(msg):
    print(f"{name}: {msg}")
    sys.exit(1)

def get(path, ctype):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            if r.status != 200:
                fail(f"{path}: status {r.status}")
            ct = r.headers.get("Content-Type", "")
            if not ct.lower().replace(" ", "").startswith(ctype):
                fail(f"{path}: Content-Type '{ct}', not {ctype}")
            return r.read()
    except OSError as e:
        fail(f"{path}: {e}")

def check_world(path, w):
    if not isinstance(w, dict) or set(w) != {"id", "randomNumber"}:
        fail(f"{path}: not an object with id and randomNumber: {w!r:.200}")
    i, n = w["id"], w["randomNumber"]
    if type(i) is not int or type(n) is not int or world.get(i) != n:
        fail(f"{path}: {w!r} is not a row of World")

for _ in range(3):
    w = json.loads(get("/db", "application/json"))
    check_world("/db", w)
for q, want in ((queries, queries), (20, 20), (1, 1), (0, 1), ("x", 1), (501, 500)):
    path = f"/queries?queries={q}"
    ws = json.loads(get(path, "application/json"))
    if not isinstance(ws, list) or len(ws) != want:
        fail(f"{path}: not a list of {want} objects: {str(ws):.200}")
    for w in ws:
        check_world(path, w)

class Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.cells, self.cell = [], None
    def handle_starttag(self, tag, attrs):
        if tag in ("td", "th"):
            self.cell = ""
        elif self.cell is not None:
            fail(f"/fortunes: <{tag}> inside a cell: not escaped")
    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.cells.append(self.cell)
            self.cell = None
    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

body = get("/fortunes", "text/html;charset=utf-8").decode("utf-8")
if not body.lstrip().lower().startswith("<!doctype html>"):
    fail("/fortunes: does not start with <!DOCTYPE html>")
if "<script>" in body or "<title>Fortunes</title>" not in body:
    fail("/fortunes: <script> unescaped, or no <title>Fortunes</title>")
p = Cells()
p.feed(body)
cells = [c.strip() for c in p.cells]
want = ["id", "message"] + [c for f in fortunes for c in (str(f[0]), f[1])]
if cells != want:
    fail(f"/fortunes: the table's cells are not the 13 fortunes, sorted: {cells!r:.300}")
PY
}

# ready NAME: wait up to 10 s for a 200 on /db; 1 (why in $why) if the server exits or never answers.
ready() {
  local pv=${1}_pid pt=${1}_port i
  for ((i = 0; i < 100; i++)); do
    if ! kill -0 "${!pv}" 2>/dev/null; then
      why="exited at start: $(tail -n 5 "$tmp/$1.log")"
      return 1
    fi
    curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:${!pt}/db" && return 0
    sleep 0.1
  done
  why="no 200 on /db in 10 s: $(tail -n 5 "$tmp/$1.log")"
  return 1
}

# A server that does not start or answers wrongly is stopped and not
# benchmarked; the others are, and the script exits 1 at the end.
failed=() # "name: why"
ok=()
for srv in "${servers[@]}"; do
  pv=${srv}_pid pt=${srv}_port
  if ready "$srv" && why=$(check_answers "$srv" "${!pt}"); then
    ok+=("$srv")
    continue
  fi
  failed+=("$srv: $why")
  echo "db_bench: $srv FAILED, not benchmarked: $why" >&2
  stop "${!pv}"
done
servers=("${ok[@]}")
((${#servers[@]})) || die "no server left to benchmark"

echo "db_bench: servers, each with a pool of $pool connections to PostgreSQL:"
for srv in "${servers[@]}"; do
  pv=${srv}_pid pt=${srv}_port
  echo "  $srv: ${desc[$srv]} (pid ${!pv}, :${!pt}; answers checked)"
done
topology="server under test and PostgreSQL on CPU $server_cpu, wrk -t1 -c$conns -d$dur on CPU $client_cpu"
[[ $pg_cpu == "$server_cpu" ]] ||
  topology="server under test on CPU $server_cpu, PostgreSQL on CPU $pg_cpu, wrk -t1 -c$conns -d$dur on CPU $client_cpu"
echo "db_bench: $topology; $rounds round(s), $(uname -m), $(nproc) CPUs, CLK_TCK $clk," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- one wrk run --------------------------------------------------------------------------------

results=$tmp/results.tsv
: >"$results"

# run ROUND ROUTE SERVER [seconds]
run() {
  local round=$1 route=$2 srv=$3 d=${4:-$dur} out=$tmp/wrk.out line pv=${3}_pid pt=${3}_port
  local pid=${!pv} port=${!pt}
  [[ $round == warm ]] || wait_quiet "$quiet_wait"
  local s0 g0 b0 w0 k0 s1 g1 b1 w1 k1
  s0=$(cpu_ticks "$pid") g0=$(pg_ticks) b0=$(cpu_busy "$server_cpu") w0=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k0"
  taskset -c "$client_cpu" timeout $((${d%s} + 30)) wrk -t1 "-c$conns" "-d$d" --latency --timeout 10s \
    "http://127.0.0.1:$port$route" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
  s1=$(cpu_ticks "$pid") g1=$(pg_ticks) b1=$(cpu_busy "$server_cpu") w1=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k1"
  k0=$(<"$tmp/k0") k1=$(<"$tmp/k1")
  kill -0 "$pid" 2>/dev/null || die "$srv died during $route (log: $(tail -n 20 "$tmp/$srv.log"))"
  kill -0 "$pg_pid" 2>/dev/null || die "PostgreSQL died (log: $(tail -n 20 "$tmp/pg/postgres.log"))"
  [[ $round == warm ]] && return 0
  # Ticks of CPU 0 (the server's) and CPU 1 (wrk's) that none of ours used.
  local st=$((s1 - s0)) gt=$((g1 - g0)) wt=$(((k1 - k0) * clk / 100))
  local ours0=$st ours1=$wt
  if [[ $pg_cpu == "$server_cpu" ]]; then
    ours0=$((ours0 + gt))
  elif [[ $pg_cpu == "$client_cpu" ]]; then
    ours1=$((ours1 + gt))
  fi
  line=$(awk -v round="$round" -v route="$route" -v srv="$srv" -v st="$st" -v gt="$gt" \
    -v clk="$clk" -v secs="$dur_s" -v ours0="$ours0" -v other0=$((b1 - b0 - ours0)) \
    -v other1=$((w1 - w0 - ours1)) -v ours1="$ours1" -v wt="$wt" "$wrk_awk"'
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END {
      if (!reqs) { print "error"; exit }
      printf "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t%.2f\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%.0f\n",
        round, route, srv, rps, p50, p99, errs, st / clk * 1e6 / reqs, gt / clk * 1e6 / reqs,
        100 * st / clk / secs, 100 * ours0 / clk / secs,
        (other0 > 0 ? 100 * other0 / clk / secs : 0), (other1 > 0 ? 100 * other1 / clk / secs : 0),
        100 * wt / clk / secs, reqs, 100 * ours1 / clk / secs
    }' "$out")
  [[ $line != error ]] || die "$srv $route: cannot read wrk's output: $(cat "$out")"
  echo "$line" >>"$results"
  awk -F'\t' '{ printf "  round %s  %-20s %-7s %7s req/s  p50 %7s us  p99 %7s us  errors %s  server %7s us/req  PG %6s us/req  (cpu: server %s%%, ours on its/wrk cpu %s%%/%s%%, wrk %s%%, others on its/wrk cpu %s%%/%s%%)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $16, $14, $12, $13,
    (($11 < 90 && $16 < 90) || $12 > 5 || $13 > 5) ? "  <- disturbed" : "" }' <<<"$line"
}

# The warm-up (1 s per route and server: pools filled, statements prepared),
# then ROUNDS rounds, each running every route on every server back to back,
# the servers' order rotated by one from round to round.
echo "db_bench: warm-up (1 s per route and server)"
for route in "${routes[@]}"; do
  for srv in "${servers[@]}"; do
    run warm "$route" "$srv" 1s
  done
done
n=${#servers[@]}
for ((r = 1; r <= rounds; r++)); do
  echo "db_bench: round $r/$rounds"
  order=()
  for ((i = 0; i < n; i++)); do
    order+=("${servers[(i + r - 1) % n]}")
  done
  for route in "${routes[@]}"; do
    for srv in "${order[@]}"; do
      run "$r" "$route" "$srv"
    done
  done
done

for srv in "${servers[@]}"; do
  if [[ -s $tmp/$srv.log ]]; then
    echo "db_bench: $srv's log (last 5 lines):"
    tail -n 5 "$tmp/$srv.log" | sed 's/^/  /'
  fi
done
if grep -q -E 'ERROR|FATAL|PANIC' "$tmp/pg/postgres.log" 2>/dev/null; then
  echo "db_bench: PostgreSQL's log, errors (last 5):"
  grep -E 'ERROR|FATAL|PANIC' "$tmp/pg/postgres.log" | tail -n 5 | sed 's/^/  /'
fi

# ---- tables -------------------------------------------------------------------------------------

tables=$tmp/tables.md
{
  echo
  echo "db_bench $(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo '?'):" \
    "PostgreSQL $pg_version; $topology; pool $pool connections per server"
  for srv in "${servers[@]}"; do
    echo "- $srv: ${desc[$srv]}"
  done
  for s in "${skipped[@]}"; do
    echo "- skipped: $s"
  done
  for s in "${failed[@]}"; do
    echo "- FAILED (not benchmarked): $s"
  done
} >"$tables"
bench_table "$results" "$rounds" "${servers[*]}" >>"$tables" <<'EOF'
results, rounds, servers = sys.argv[1], sys.argv[2], sys.argv[3].split()
with open(results) as f:
    for line in f:
        (r, route, srv, rps, p50, p99, errs, scpu, gcpu, spct, cpu0pct,
         other0, other1, wrkpct, reqs, cpu1pct) = line.rstrip("\n").split("\t")
        runs[(route, srv)].append(dict(round=r, rps=float(rps), p50=float(p50), p99=float(p99),
                                       errs=int(errs), cpu=float(scpu), gcpu=float(gcpu),
                                       pct=float(spct), pct0=float(cpu0pct), pct1=float(cpu1pct),
                                       clean=max(float(cpu0pct), float(cpu1pct)) >= 90
                                       and float(other0) <= 5
                                       and float(other1) <= 5))

routes = list(dict.fromkeys(route for route, _ in runs))
print()
print(f"medians over {rounds} round(s), over the clean runs (runs: clean/all; all runs when none is clean)")
print("server CPU: the server process's utime+stime per request; PG CPU: PostgreSQL's (all its processes)")
print("per request; CPU0 %, CPU1 %: the busy share of the server's CPU and of wrk's that our processes")
print("took (server, PostgreSQL, wrk): the bottleneck is the one near 100%;")
print("errors: wrk's non-2xx responses + socket errors (timeouts included), summed over the runs")
print()
print("| route | server | req/s | p50 | p99 | server CPU µs/req | PG CPU µs/req | server CPU % | CPU0 % | CPU1 % | errors | runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for route in routes:
    for srv in servers:
        rs = runs.get((route, srv))
        if not rs:
            continue
        print(f"| {route} | {srv} | {med(route, srv, 'rps'):.0f} | {med(route, srv, 'p50') / 1000:.2f} ms"
              f" | {med(route, srv, 'p99') / 1000:.2f} ms | {med(route, srv, 'cpu'):.1f}"
              f" | {med(route, srv, 'gcpu'):.1f} | {med(route, srv, 'pct'):.0f} | {med(route, srv, 'pct0'):.0f}"
              f" | {med(route, srv, 'pct1'):.0f}"
              f" | {sum(x['errs'] for x in rs)} | {sum(x['clean'] for x in rs)}/{len(rs)} |")
peers = [s for s in servers if s != "corio"]
print()
if "corio" not in servers:
    print("no corio (examples/techempower) in this run: no ratios")
elif not peers:
    print("no peer in this run: no ratios")
else:
    print("paired ratios corio/peer, run by run within a round: median (min..max) over the rounds;")
    print("req/s above 1 and CPU/req, p99 below 1 favour corio; best: the peer with the highest median req/s")
    print()
    print("| route | corio / | req/s | server CPU/req | p99 |")
    print("|---|---|---:|---:|---:|")
    for route in routes:
        have = [p for p in peers if (route, p) in runs]
        if not have or (route, "corio") not in runs:
            continue
        best = max(have, key=lambda p: med(route, p, "rps"))
        for p in sorted(have, key=lambda p: p != best):
            a, b = runs[(route, "corio")], runs[(route, p)]
            cols = [spread(paired(a, b, key)) for key in ("rps", "cpu", "p99")]
            print(f"| {route} | {p}{' (best)' if p == best else ''} | " + " | ".join(cols) + " |")
EOF
cat "$tables"
if [[ -d $here/results ]]; then
  out_md=$here/results/db_$(date -u +%Y%m%d-%H%M%S).md
  cp "$tables" "$out_md"
  echo "db_bench: written to $out_md"
fi
if ((${#failed[@]})); then
  die "${#failed[@]} server(s) failed their checks: ${failed[*]%%:*}"
fi
