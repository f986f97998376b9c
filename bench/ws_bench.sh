#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# WebSocket echo benchmark (issue 23, section 5): corio (examples/chat-ws,
# GET /echo) against Node's `ws` (bench/ws_echo_node.js) and, when Python
# has them, uvicorn + websockets (a bare ASGI echo app, written into the
# temp dir), in one run.
#
#   bench/ws_bench.sh BUILD [ROUNDS [SECONDS]]      (defaults: 3 rounds of 5 s)
#
# BUILD is a Release tree holding examples/chat-ws/chat-ws:
#   cmake -S . -B BUILD -DCMAKE_BUILD_TYPE=Release && cmake --build BUILD -j2 --target chat-ws
# The load generator is BUILD/bench/ws_load if built there, else this script
# compiles bench/ws_load.c into its temp dir (cc -O2; C and libc only).
#
# Environment: CORIO_BENCH_SERVER_CPU (default 0), CORIO_BENCH_CLIENT_CPU
# (default 1); WS_BENCH_SERVERS (default "corio node uvicorn"; one that cannot
# run here is left out with a note); WS_BENCH_DEPTHS (default "1 8": messages
# in flight per connection); WS_BENCH_SIZE (default 32 bytes); WS_BENCH_IDLE
# (default 10000 connections); WS_BENCH_RETRIES (default 18: disturbed runs
# run again, at most twice each and this many in all); WS_BENCH_OUT (default
# bench/results; the report is OUT/ws-YYYY-MM-DD.md).
#
# Method (bench/http_bench.py's): each server is one process with one worker,
# pinned to the server CPU (every thread of it: Node's and V8's helper
# threads count); the client, bench/ws_load, is pinned to the client CPU;
# loopback only.  Each server is started once for the rounds and warmed up
# with 1 s per case; then ROUNDS rounds, each running every case against
# every server back to back, the server order rotating between rounds.  A
# case is 64 connections, each with DEPTH text messages of SIZE bytes in
# flight, closed loop (the next one leaves when an echo comes back), for
# SECONDS after the handshakes.  ws_load reads the server's utime+stime
# (/proc/PID/stat) at the start and the end of that window: server CPU per
# round trip = that time / round trips, a round trip being one message in
# and its echo out (so per message, counting either way, it is half).  It
# also reports its own CPU time and the machine's other busy time over the
# window (see bench/ws_load.c): a run is disturbed when other processes took
# > 10 % of a CPU, or a message failed, or neither the server nor the client
# was busy 90 % of the window (http_bench.py's rule: a closed loop saturates
# one of them, the server on a quiet machine; when neither is, the CPUs went
# to something unseen, such as the hypervisor's other guests): it runs again
# after a wait for a quiet second (bounded, see WS_BENCH_RETRIES), and
# the tables use the clean runs (all runs when none is clean).  Ratios
# against Node are paired: round by round over the rounds where both runs
# are clean (over all rounds, marked, when there is none), then the median.
#
# Memory: after the rounds, per server, a fresh instance answers one echo,
# then its VmRSS is read; ws_load --idle opens WS_BENCH_IDLE WebSockets
# (handshakes only), and 1.5 s after the last one opened VmRSS is read again:
# KiB per idle WebSocket = the difference / the connections open.  This needs
# `ulimit -n` above the count for both the server and the client: the script
# raises the soft limit to the hard one and, if that is too low, uses as
# many connections as it allows (and says so).
#
# Time: about servers x (cases x (2 + ROUNDS x (SECONDS + 1)) + 15) seconds
# (the 15: the memory case), plus up to 10 s per round waiting for a quiet
# machine (bench/lib.sh's wait_quiet) and the retries (11 s each at most):
# 3 servers, 2 cases, 3 x 5 s: 2.5 minutes on a quiet machine, 6.5 at most.
# Every client call is bounded (timeout); servers are stopped on every exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
# shellcheck source=bench/lib.sh
source "$here/lib.sh"

[[ $# -ge 1 && $# -le 3 ]] || die "usage: bench/ws_bench.sh BUILD [ROUNDS [SECONDS]]"
build=$(cd "$1" && pwd) || die "no build tree $1"
rounds=${2:-3}
secs=${3:-5}
check_rounds "$rounds"
[[ $secs =~ ^[1-9]$|^10$ ]] || die "seconds must be 1..10, not '$secs'"
scpu=${CORIO_BENCH_SERVER_CPU:-0}
ccpu=${CORIO_BENCH_CLIENT_CPU:-1}
read -r -a want_servers <<<"${WS_BENCH_SERVERS:-corio node uvicorn}"
read -r -a depths <<<"${WS_BENCH_DEPTHS:-1 8}"
size=${WS_BENCH_SIZE:-32}
idle_conns=${WS_BENCH_IDLE:-10000}
out_dir=${WS_BENCH_OUT:-$here/results}
conns=64
retries_left=${WS_BENCH_RETRIES:-18}
chatws=$build/examples/chat-ws/chat-ws
need_bins "$build" "$chatws"
warn_unless_release "$build"
need_tools "" taskset timeout cc

declare -A pid=() port=() version=()
idle_pid=""
bench_setup idle_pid
# The servers' pids live in an array, which bench_setup's cleanup cannot name: stop them here too.
trap 'for s in "${!pid[@]}"; do stop "${pid[$s]}"; done; bench_cleanup' EXIT
notes=()
started=$(date +%s)
load_avg=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the client -----------------------------------------------------------------------------
load=$build/bench/ws_load
if [[ ! -x $load ]]; then
  load=$tmp/ws_load
  cc -O2 -o "$load" "$here/ws_load.c" || die "cannot compile bench/ws_load.c"
fi

# ---- the servers ----------------------------------------------------------------------------
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import uvicorn, websockets' 2>/dev/null; then
    py=$(command -v "$p")
    break
  fi
done
node_ws=""
if command -v node >/dev/null; then
  node_ws=$(node -e "let p; try { p = require.resolve('ws/package.json') } catch (e) {
                     p = '/usr/share/nodejs/ws/package.json' }; console.log(require(p).version)" 2>/dev/null) || node_ws=""
fi

servers=()
for s in "${want_servers[@]}"; do
  case $s in
    corio) servers+=(corio); version[corio]=$("$chatws" --version 2>&1 | head -n1) ;;
    node)
      if [[ -n $node_ws ]]; then
        servers+=(node); version[node]="Node $(node --version), ws $node_ws (perMessageDeflate off)"
      else
        notes+=("Node ws: left out (no node, or no ws module: apt-get install node-ws)")
      fi
      ;;
    uvicorn)
      if [[ -n $py ]]; then
        servers+=(uvicorn)
        version[uvicorn]=$("$py" -c 'import sys, uvicorn, websockets
print(f"uvicorn {uvicorn.__version__} (--loop asyncio --http h11 --ws websockets, per-message deflate off), websockets {websockets.__version__}, CPython {sys.version.split()[0]}")')
      else
        notes+=("uvicorn + websockets: left out (no Python with both: apt-get install python3-uvicorn python3-websockets)")
      fi
      ;;
    *) die "unknown server '$s' (corio, node, uvicorn)" ;;
  esac
done
[[ " ${servers[*]} " == *" node "* ]] || notes+=("no Node run: ratios against Node are left empty")

cat >"$tmp/ws_echo_asgi.py" <<'PY'
# The uvicorn peer: a bare ASGI WebSocket echo on /echo (no framework).
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        if scope["path"] != "/echo":
            await send({"type": "websocket.close", "code": 1008})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] != "websocket.receive":
                return
            if m.get("text") is not None:
                await send({"type": "websocket.send", "text": m["text"]})
            else:
                await send({"type": "websocket.send", "bytes": m["bytes"]})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"not found\n"})
PY

# start_server NAME PORT: start NAME pinned to the server CPU, log in $tmp/NAME.log; sets pid[NAME]
# (the server's own pid: taskset execs it, and so does python3 -m uvicorn, one worker, no reloader).
start_server() {
  local name=$1 p=$2 cmd
  case $name in
    corio) cmd=("$chatws" --host 127.0.0.1 --port "$p" --log-level warn) ;;
    node) cmd=(node "$here/ws_echo_node.js" "$p") ;;
    uvicorn)
      cmd=("$py" -m uvicorn ws_echo_asgi:app --app-dir "$tmp" --host 127.0.0.1 --port "$p"
        --loop asyncio --http h11 --ws websockets --ws-per-message-deflate false --lifespan off
        --log-level warning --no-access-log)
      ;;
  esac
  taskset -c "$scpu" "${cmd[@]}" >>"$tmp/$name.log" 2>&1 &
  pid[$name]=$!
  port[$name]=$p
}

# ready NAME: up to 10 s for one echo on NAME's /echo; dies if it exits or never answers.
ready() {
  local name=$1 i line
  for ((i = 0; i < 50; i++)); do
    kill -0 "${pid[$name]}" 2>/dev/null || die "$name exited at start (log: $(cat "$tmp/$name.log"))"
    if line=$(timeout 5 "$load" --port "${port[$name]}" --conns 1 --duration 0.2 2>/dev/null) &&
      [[ $line == *" errors=0 "* ]]; then
      return 0
    fi
    sleep 0.2
  done
  die "$name does not echo on 127.0.0.1:${port[$name]}/echo (log: $(cat "$tmp/$name.log"))"
}

# run ROUND DEPTH NAME [SECONDS]: one ws_load run, its line appended to $tmp/runs.txt.  A disturbed
# run (other processes > 10 % of a CPU, or errors) is run again after a wait for a quiet second,
# at most twice, while the run's budget of retries ($retries_left) lasts; the last one counts.
run() {
  local r=$1 d=$2 name=$3 s=${4:-$secs} line attempt
  for ((attempt = 1; ; attempt++)); do
    line=$(timeout $((s + 20)) taskset -c "$ccpu" "$load" --port "${port[$name]}" --conns "$conns" \
      --depth "$d" --size "$size" --duration "$s" --pid "${pid[$name]}" 2>>"$tmp/load.err") ||
      echo "  $name depth $d: ws_load failed ($(tail -n1 "$tmp/load.err" 2>/dev/null))"
    kill -0 "${pid[$name]}" 2>/dev/null || die "$name died during a run (log: $(tail -n5 "$tmp/$name.log"))"
    [[ -n $line ]] || return 0
    printf '  %-8s depth %-2s %s\n' "$name" "$d" "${line#ws_load }"
    if [[ $r == warm ]]; then
      echo "warm $d $name $line" >>"$tmp/warm.txt"
      return 0
    fi
    disturbed "$line" || break
    ((attempt < 3 && retries_left > 0)) || break
    retries_left=$((retries_left - 1))
    echo "  (disturbed: again after a quiet wait)"
    wait_quiet 5
  done
  echo "$r $d $name $line attempts=$attempt" >>"$tmp/runs.txt"
}

# disturbed LINE: status 0 if ws_load's LINE shows errors, other processes above 10 % of a CPU,
# or neither the server nor the client busy 90 % of the time (a closed loop of 64 connections
# saturates one of them: on a quiet machine the server, here; when neither is, something unseen
# took the CPUs, such as the hypervisor, whose steal time this VM may not report).
disturbed() {
  awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] } }
       END { s = v["secs"]; exit !(v["errors"] > 0 || v["other_cpu_s"] > 0.1 * s ||
                                   (v["server_cpu_s"] < 0.9 * s && v["client_cpu_s"] < 0.9 * s)) }' <<<"$1"
}

# ---- file descriptors -----------------------------------------------------------------------
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]] || ((hard > 65536)); then hard=65536; fi
ulimit -n "$hard"
if ((idle_conns + 200 > hard)); then
  notes+=("idle: the fd hard limit is $hard: $((hard - 200)) connections instead of $idle_conns")
  idle_conns=$((hard - 200))
fi

echo "ws_bench: servers ${servers[*]}; depths ${depths[*]}; $rounds round(s) of $secs s; $conns connections, $size-byte text messages; idle $idle_conns"
est=$((${#servers[@]} * (${#depths[@]} * (2 + rounds * (secs + 1)) + 15) + 10 * rounds))
echo "ws_bench: about $((est / 60 + 1)) min"

# ---- the rounds -----------------------------------------------------------------------------
: >"$tmp/runs.txt"
: >"$tmp/warm.txt"
for s in "${servers[@]}"; do
  start_server "$s" "$(free_port)"
  ready "$s"
done
echo "ws_bench: warm-up (1 s per case and server)"
for d in "${depths[@]}"; do
  for s in "${servers[@]}"; do run warm "$d" "$s" 1; done
done
for ((r = 1; r <= rounds; r++)); do
  wait_quiet 10
  echo "ws_bench: round $r/$rounds"
  n=${#servers[@]}
  order=()
  for ((i = 0; i < n; i++)); do order+=("${servers[$(((i + r - 1) % n))]}"); done
  for d in "${depths[@]}"; do
    for s in "${order[@]}"; do run "$r" "$d" "$s"; done
  done
done
for s in "${servers[@]}"; do
  stop "${pid[$s]}"
  unset "pid[$s]"
done
notes+=("retries of disturbed runs: $((${WS_BENCH_RETRIES:-18} - retries_left)) of at most ${WS_BENCH_RETRIES:-18}")

# ---- memory per idle WebSocket ---------------------------------------------------------------
vm_rss() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$1/status"; }
# stack_kib PID: resident KiB of corio's coroutine stacks in PID (bench/idle_conns.py's reading of smaps).
stack_kib() {
  python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); from idle_conns import stack_rss_kib
print(stack_rss_kib(int(sys.argv[2]), 256))' "$here" "$1" 2>/dev/null || echo 0
}
: >"$tmp/idle.txt"
for s in "${servers[@]}"; do
  start_server "$s" "$(free_port)"
  ready "$s"
  sleep 0.5
  before=$(vm_rss "${pid[$s]}")
  stk0=$(stack_kib "${pid[$s]}")
  : >"$tmp/idle.out"
  timeout 60 taskset -c "$ccpu" "$load" --port "${port[$s]}" --conns "$idle_conns" --idle 4 \
    >"$tmp/idle.out" 2>>"$tmp/load.err" &
  idle_pid=$!
  for ((i = 0; i < 400; i++)); do # up to 40 s for the handshakes (ws_load gives up after 30)
    grep -q '^ws_load ready' "$tmp/idle.out" && break
    kill -0 "$idle_pid" 2>/dev/null || break
    sleep 0.1
  done
  ready_line=$(grep '^ws_load ready' "$tmp/idle.out" || true)
  after="" stk1=0
  if [[ -n $ready_line ]]; then
    sleep 1.5
    after=$(vm_rss "${pid[$s]}")
    stk1=$(stack_kib "${pid[$s]}")
  fi
  wait "$idle_pid" || true
  idle_pid=""
  done_line=$(grep '^ws_load done' "$tmp/idle.out" || true)
  open=$(sed -n 's/.* open=\([0-9]*\).*/\1/p' <<<"$ready_line")
  early=$(sed -n 's/.*closed_early=\([0-9]*\).*/\1/p' <<<"$done_line")
  echo "$s ${open:-0} $before ${after:-0} ${early:--1} $((stk1 - stk0))" >>"$tmp/idle.txt"
  echo "  $s: idle open=${open:-0} VmRSS ${before} -> ${after:-?} KiB, closed early ${early:-?}"
  stop "${pid[$s]}"
  unset "pid[$s]"
done

# ---- the report -----------------------------------------------------------------------------
elapsed=$(($(date +%s) - started))
day=$(date +%F)
mkdir -p "$out_dir"
report=$out_dir/ws-$day.md
{
  echo "# WebSocket benchmark, $day"
  echo
  echo "\`bench/ws_bench.sh $* \` — $rounds round(s) of $secs s, finished in $((elapsed / 60)) min $((elapsed % 60)) s (how to read it: the header comment of bench/ws_bench.sh)."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -n1), $(nproc) CPUs"
  echo "- memory: $(awk '$1 == "MemTotal:" { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
  echo "- kernel: $(uname -sr) $(uname -m)"
  [[ -r /etc/debian_version ]] && echo "- Debian: $(cat /etc/debian_version)"
  echo "- tree: $(git -C "$root" log -1 --format='%h %s' 2>/dev/null | cut -c1-100); build $build ($(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt"))"
  echo "- load average at start: $load_avg"
  echo
  echo "## Servers"
  echo
  for s in "${servers[@]}"; do echo "- $s: ${version[$s]}"; done
  echo
  echo "One process each, pinned to CPU $scpu; the client (bench/ws_load, one thread, epoll) on CPU $ccpu; 127.0.0.1."
  echo
  bench_table "$tmp/runs.txt" "$tmp/idle.txt" "$conns" "$size" "${servers[*]}" "$tmp/warm.txt" <<'PY'
runs_file, idle_file, conns, size, order, warm_file = sys.argv[1:7]
order = order.split()
label = {"corio": "corio", "node": "Node ws", "uvicorn": "uvicorn + websockets"}
raw = []
for line in open(runs_file):
    p = line.split()
    if len(p) < 4:
        continue
    x = {}
    for kv in p[4:]:
        k, _, v = kv.partition("=")
        x[k] = float(v)
    x.update(round=int(p[0]), depth=int(p[1]), srv=p[2])
    x["other_pct"] = 100 * x.get("other_cpu_s", 0) / x["secs"]
    x["srv_pct"] = 100 * x.get("server_cpu_s", 0) / x["secs"]
    x["cli_pct"] = 100 * x["client_cpu_s"] / x["secs"]
    x["clean"] = (x["other_pct"] <= 10 and x["errors"] == 0
                  and (x["srv_pct"] >= 90 or x["cli_pct"] >= 90))  # as disturbed() in the script
    runs[(x["depth"], x["srv"])].append(x)
    raw.append(line.rstrip())
depths = sorted({k[0] for k in runs})
marks = set()  # the footnote marks used

def us(v):
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"

def paired_clean(a, b, f):
    """spread() of the paired ratios over the rounds where both runs are clean; else over every
    round, marked "²"."""
    both = {x["round"] for x in a if x["clean"]} & {x["round"] for x in b if x["clean"]}
    if both:
        return spread(paired([x for x in a if x["round"] in both],
                             [x for x in b if x["round"] in both], f))
    marks.add("²")
    return spread(paired(a, b, f)) + " ²"

def rng(rs, f, fmt):
    vs = [x[f] for x in rs]
    return f"{statistics.median(vs):{fmt}} ({min(vs):{fmt}}..{max(vs):{fmt}})"

print("## Echo round trips")
print()
print(f"{conns} connections, {size}-byte text messages, closed loop. A round trip is one message "
      "from the client and its echo from the server; server CPU per round trip covers both "
      "(per message, counting either way: half). Median over the clean runs (min..max); ×Node: "
      "paired ratios, round by round, median (min..max).")
for d in depths:
    print()
    print(f"### {d} message{'s' if d > 1 else ''} in flight per connection")
    print()
    print("| server | round trips/s | ×Node | server CPU µs/round trip | ×Node | p50 | p99 | "
          "server CPU | client CPU | ≥ 90 % busy | others | errors | clean runs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |")
    for s in order:
        if not runs[(d, s)]:
            continue
        rs = chosen(d, s)
        node = runs[(d, "node")] if s != "node" else []
        r_rps = paired_clean(runs[(d, s)], node, "rps") if node else ""
        r_cpu = paired_clean(runs[(d, s)], node, "server_us_per_rt") if node else ""
        nclean = sum(x["clean"] for x in runs[(d, s)])
        mark = "" if nclean else " ¹"
        marks.add(mark.strip())
        sp, cp = med(d, s, "srv_pct"), med(d, s, "cli_pct")
        bound = {(1, 1): "both", (1, 0): "server", (0, 1): "client"}.get((sp >= 90, cp >= 90), "neither")
        print(f"| {label[s]}{mark} | {rng(rs, 'rps', ',.0f')} | {r_rps} | "
              f"{rng(rs, 'server_us_per_rt', '.2f')} | {r_cpu} | "
              f"{us(med(d, s, 'p50_us'))} | {us(med(d, s, 'p99_us'))} | "
              f"{sp:.0f} % | {cp:.0f} % | {bound} | "
              f"{med(d, s, 'other_pct'):.0f} % | {sum(int(x['errors']) for x in runs[(d, s)])} | "
              f"{nclean}/{len(runs[(d, s)])} |")

print()
foot = {"¹": "¹ no clean run: the figures are the disturbed runs'.",
        "²": "² no round with both runs clean: the ratio pairs disturbed runs."}
if marks & set(foot):
    print()
    print(" ".join(foot[m] for m in foot if m in marks))
print()
print("## Memory per idle WebSocket")
print()
print("A fresh instance; VmRSS before, and 1.5 s after the last of the connections opened "
      "(handshake done, nothing sent since). corio's coroutine stacks: the resident pages of "
      "its stack mappings (bench/idle_conns.py's smaps reading), per connection.")
print()
print("| server | connections open | VmRSS before | VmRSS with them | KiB per idle WebSocket | "
      "of which coroutine stacks | ×Node | closed early |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
idle = {}
for line in open(idle_file):
    s, n, b, a, e, k = line.split()
    idle[s] = (int(n), int(b), int(a), int(e), int(k))
per = {s: (a - b) / n for s, (n, b, a, e, k) in idle.items() if n > 0 and a > 0}
for s in order:
    if s not in idle:
        continue
    n, b, a, e, k = idle[s]
    if s not in per:
        print(f"| {label[s]} | {n:,} | {b / 1024:.1f} MiB | - | - | | | {e} |")
        continue
    ratio = f"{per[s] / per['node']:.2f}" if per.get("node") else ""
    stk = f"{k / n:.2f}" if s == "corio" else "-"
    print(f"| {label[s]} | {n:,} | {b / 1024:.1f} MiB | {a / 1024:.1f} MiB | "
          f"{per[s]:.2f} | {stk} | {ratio} | {e if e >= 0 else '?'} |")
print()
print("## Every run")
print()
print("Round, depth, server, then ws_load's line (attempts: 2 or 3 when a disturbed run was run "
      "again). Columns above: server CPU, client CPU = their CPU time over the window as % of one "
      "CPU (≥ 90 % busy: which of the two was, the one that limits the round trips); others = "
      "the CPU time of other processes (all CPUs, % of one). A run is disturbed, and left out of "
      "the medians unless no run is clean, with errors, others > 10 %, or neither the server nor "
      "the client ≥ 90 % busy.")
print()
print("```")
for line in raw:
    print(line)
print("```")
print()
print("The warm-up runs (1 s each, before the rounds; not in the tables): warm, depth, server, ws_load's line.")
print()
print("```")
for line in open(warm_file):
    print(line.rstrip())
print("```")
PY
  if ((${#notes[@]})); then
    echo
    echo "## Notes"
    echo
    for n in "${notes[@]}"; do echo "- $n"; done
  fi
} >"$tmp/report.md"
cp "$tmp/report.md" "$report"
echo
cat "$report"
echo
echo "ws_bench: report in $report; $((elapsed / 60)) min $((elapsed % 60)) s"
