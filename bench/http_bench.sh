#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# HTTP benchmark: examples/hello against nginx (Debian's), on 127.0.0.1 only.
#
#   bench/http_bench.sh [build-dir] [rounds]
#
# build-dir defaults to build and must hold a Release build of examples/hello
# (this script builds nothing): cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
# && cmake --build build.  rounds defaults to 3.
#
# Both servers run pinned to one CPU (CORIO_BENCH_SERVER_CPU, default 0), wrk
# to another (CORIO_BENCH_CLIENT_CPU, default 1), as
#   wrk -t1 -c100 -d5s --latency URL                     (per path)
#   wrk -t1 -c100 -d5s --latency -s pipeline.lua URL -- 16   (pipelined /plaintext)
#   wrk -t1 -c1 -d5s --latency URL                       (c1: one request at a time)
#   rate_load PORT /plaintext RATE 100 5                 (rRATE: open loop, see below)
# interleaved: each round runs every case against both servers back to back,
# and the server that goes first alternates between rounds.  For each run it
# records requests/s, p50 and p99 latency, and the server's CPU time per
# request: utime+stime from /proc/PID/stat before and after the run, divided
# by the requests wrk completed.  The table shows medians over the rounds,
# taken over the clean runs only when there are any: a run is disturbed when
# the server used < 90% of its CPU or other processes took > 5% of the
# server's or wrk's CPU (/proc/stat), as on a machine shared with builds.
# Latencies are wrk's (per request) except for the pipelined runs, where
# wrk's percentiles are broken and pipeline.lua prints its own, per batch.
# On loopback the server's CPU time includes the softirq work of delivering
# its responses to wrk's sockets (the same for both servers).
#
# Reading the latencies: with 100 connections wrk saturates its CPU, and its
# percentiles measure the coupled wrk+server system more than the server.
# That system is bistable: a run settles either into small batches (a few
# events per epoll_wait, p50 ~350 us here) or into lockstep batches of
# nearly every connection (p50 ~900 us), whichever server it is, and two runs
# of one binary differ in p99 by 10-70%.  Hence the paired ratios (each
# round's runs back to back), the c1 case, one request at a time, where no
# queue forms and the latency is the server's own turnaround, and the rRATE
# cases: bench/rate_load sends RATE requests/s over 100 connections whatever
# the server does (CORIO_BENCH_RATES, default "40000 100000") and measures
# each latency from the request's due time, so the percentiles are the
# server's queueing at a load it sustains, with no coordinated omission.
#
# Then it measures memory per idle keep-alive connection (bench/idle_conns.py:
# CORIO_BENCH_IDLE connections, default 5000, one request each, then the
# server's VmRSS delta).
#
# Other knobs: CORIO_BENCH_DURATION (default 5s), CORIO_BENCH_CONNS (100),
# CORIO_BENCH_DEPTH (pipeline depth, 16), CORIO_BENCH_PERF=FILE (also record
# `perf record -e cpu-clock -g` of corio under the pipelined load into FILE).
# Every run is bounded; a full run takes about 4 minutes (3 rounds).
# The helpers shared with the other benchmarks are in bench/lib.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
rounds=${2:-3}
dur=${CORIO_BENCH_DURATION:-5s}
conns=${CORIO_BENCH_CONNS:-100}
depth=${CORIO_BENCH_DEPTH:-16}
idle_n=${CORIO_BENCH_IDLE:-5000}
server_cpu=${CORIO_BENCH_SERVER_CPU:-0}
client_cpu=${CORIO_BENCH_CLIENT_CPU:-1}
perf_out=${CORIO_BENCH_PERF:-}
paths=(/plaintext /json)

bin=$build/examples/hello/hello
rate_bin=$build/bench/rate_load
rates=${CORIO_BENCH_RATES:-40000 100000}
[[ -x $rate_bin ]] || die "$rate_bin not found; build the tree first (it is bench/rate_load.c)"
need_bins "$build" "$bin"
need_tools "apt-get install wrk nginx-light util-linux python3 curl" wrk nginx taskset python3 curl
check_rounds "$rounds"
[[ $dur =~ ^[0-9]+[smh]?$ ]] || die "CORIO_BENCH_DURATION must look like 5s, not '$dur'"
dur_s=${dur%[smh]}
case $dur in *m) dur_s=$((dur_s * 60)) ;; *h) dur_s=$((dur_s * 3600)) ;; esac
warn_unless_release "$build"
if [[ $(nproc) -lt 2 && $server_cpu == "$client_cpu" ]]; then
  echo "http_bench: warning: one CPU: server and wrk share it" >&2
fi

bench_setup cpid npid # clk, tmp; on exit: stop corio and nginx, remove tmp

# ---- servers ------------------------------------------------------------------------------

cport=$(free_port)
taskset -c "$server_cpu" "$bin" --host 127.0.0.1 --port "$cport" --log-level warn \
  >"$tmp/corio.log" 2>&1 &
cpid=$!

nport=$(free_port)
while [[ $nport == "$cport" ]]; do nport=$(free_port); done
mkdir -p "$tmp/nginx"
sed -e "s|@DIR@|$tmp/nginx|g" -e "s|@PORT@|$nport|g" "$here/nginx.conf.in" >"$tmp/nginx/nginx.conf"
# -p and -e keep every file nginx opens (even before it reads the config) in
# the temp dir; the config makes it one foreground process, no master.
taskset -c "$server_cpu" nginx -p "$tmp/nginx/" -e "$tmp/nginx/error.log" \
  -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
npid=$!

wait_ready corio "$cpid" "$cport" /plaintext
wait_ready nginx "$npid" "$nport" /plaintext
[[ $(<"/proc/$cpid/comm") == hello ]] || die "pid $cpid is not hello"
[[ $(<"/proc/$npid/comm") == nginx ]] || die "pid $npid is not nginx"
for srv in corio nginx; do
  port=$cport
  [[ $srv == nginx ]] && port=$nport
  check_body "$srv" "$port" /plaintext 'Hello, World!'
  check_body "$srv" "$port" /json '{"message":"Hello, World!"}'
done

echo "http_bench: corio $bin (pid $cpid, :$cport) and $(nginx -v 2>&1 | sed 's/.*: //') (pid $npid, :$nport)"
echo "http_bench: servers on CPU $server_cpu, wrk -t1 -c$conns -d$dur on CPU $client_cpu," \
  "$rounds round(s), pipeline depth $depth, $(uname -m), $(nproc) CPUs, CLK_TCK $clk," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- one wrk run ----------------------------------------------------------------------------

results=$tmp/results.tsv
printf 'round\tcase\tserver\trps\tp50_us\tp99_us\tcpu_us_per_req\trequests\tcpu_pct\terrors\tother_pct\tclient_other_pct\n' >"$results"

# run ROUND CASE SERVER [seconds]: CASE is a path, pipe:PATH, c1:PATH (one
# connection) or rRATE:PATH (rate_load at RATE requests/s).
run() {
  local round=$1 case=$2 srv=$3 d=${4:-$dur} pid port path out t0 t1 line
  pid=$cpid port=$cport
  [[ $srv == nginx ]] && pid=$npid port=$nport
  path=${case#*:}
  out=$tmp/wrk.out
  local c=$conns
  [[ $case == c1:* ]] && c=1
  local args=(-t1 "-c$c" "-d$d" --latency)
  [[ $case == pipe:* ]] && args+=(-s "$here/pipeline.lua")
  t0=$(cpu_ticks "$pid")
  b0=$(cpu_busy "$server_cpu")
  children_cs >"$tmp/k0"
  w0=$(cpu_busy "$client_cpu")
  if [[ $case == pipe:* ]]; then
    CORIO_BENCH_WRK_CONNS=$conns taskset -c "$client_cpu" wrk "${args[@]}" \
      "http://127.0.0.1:$port$path" -- "$depth" >"$out" 2>&1
  elif [[ $case =~ ^r([0-9]+): ]]; then
    local secs=${d%[smh]}
    case $d in *m) secs=$((secs * 60)) ;; *h) secs=$((secs * 3600)) ;; esac
    taskset -c "$client_cpu" "$rate_bin" "$port" "$path" "${BASH_REMATCH[1]}" "$conns" "$secs" \
      >"$out" 2>&1 || true # its line counts the errors
  else
    taskset -c "$client_cpu" wrk "${args[@]}" "http://127.0.0.1:$port$path" >"$out" 2>&1
  fi
  t1=$(cpu_ticks "$pid")
  b1=$(cpu_busy "$server_cpu")
  w1=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k1"
  k0=$(<"$tmp/k0") k1=$(<"$tmp/k1")
  kill -0 "$pid" 2>/dev/null || die "$srv died during $case (log: $(cat "$tmp/$srv.log"))"
  [[ $round == warm ]] && return 0
  line=$(awk -v round="$round" -v case="$case" -v srv="$srv" -v ticks=$((t1 - t0)) \
    -v clk="$clk" -v secs="$dur_s" -v other=$((b1 - b0 - (t1 - t0))) \
    -v cother=$(((w1 - w0) - (k1 - k0) * clk / 100)) "$wrk_awk"'
    $1 == "50%" && !batch { p50 = us($2) }
    $1 == "99%" && !batch { p99 = us($2) }
    $1 == "batch_latency_us" { batch = 1; p50 = $3; p99 = $7 } # pipeline.lua: see there
    $1 == "rate_load" {
      for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
      reqs = v["done"]; rps = v["rate"]; p50 = v["p50_us"]; p99 = v["p99_us"]; errs += v["errors"]
    }
    END {
      if (!reqs) { print "error"; exit }
      cpu = ticks / clk
      printf "%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%.3f\t%d\t%.0f\t%d\t%.0f\t%.0f\n", round, case, srv, rps, p50, p99,
        cpu * 1e6 / reqs, reqs, 100 * cpu / secs, errs, (other > 0 ? 100 * other / clk / secs : 0),
        (cother > 0 ? 100 * cother / clk / secs : 0)
    }' "$out")
  [[ $line != error ]] || die "$srv $case: cannot read wrk's output: $(cat "$out")"
  echo "$line" >>"$results"
  awk -F'\t' '{ printf "  round %s  %-18s %-6s %9s req/s  p50 %6s us  p99 %7s us  cpu %6s us/req  (%s requests, server cpu %s%%, others on its/wrk cpu %s%%/%s%%, errors %s)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $11, $12, $10,
    (($9 < 90 && $2 !~ /^(c1|r[0-9]+):/) || $11 > 5 || $12 > 5) ? "  <- disturbed" : "" }' <<<"$line"
}

cases=("${paths[@]}" "pipe:/plaintext" "c1:/plaintext")
for r in $rates; do
  cases+=("r$r:/plaintext")
done

run_interleaved "$rounds" server "${cases[@]}"

# ---- idle keep-alive memory ---------------------------------------------------------------------

idle=$tmp/idle.txt
: >"$idle"
echo "http_bench: idle keep-alive memory ($idle_n connections, one request each)"
for srv in corio nginx; do
  pid=$cpid port=$cport
  [[ $srv == nginx ]] && pid=$npid port=$nport
  sleep 1 # connections of the last wrk run are gone
  if line=$(python3 "$here/idle_conns.py" --pid "$pid" --port "$port" --conns "$idle_n"); then
    echo "$srv $line" >>"$idle"
    echo "  $srv: $line"
  else
    echo "  $srv: idle measurement failed" >&2
  fi
  kill -0 "$pid" 2>/dev/null || die "$srv died during the idle measurement"
done

# ---- optional profile ---------------------------------------------------------------------------

if [[ -n $perf_out ]]; then
  command -v perf >/dev/null || die "perf not found (apt-get install linux-perf)"
  echo "http_bench: perf record of corio under pipelined /plaintext -> $perf_out"
  perf record -q -e cpu-clock -g -p "$cpid" -o "$perf_out" -- sleep 4 >/dev/null 2>&1 &
  perf_pid=$!
  taskset -c "$client_cpu" wrk -t1 "-c$conns" -d5s -s "$here/pipeline.lua" \
    "http://127.0.0.1:$cport/plaintext" -- "$depth" >/dev/null 2>&1
  wait "$perf_pid" || echo "http_bench: perf record failed" >&2
  echo "  perf report --stdio -i $perf_out --no-children | head -60"
fi

# ---- table ----------------------------------------------------------------------------------------

bench_table "$results" "$idle" "$rounds" <<'EOF'
results, idle, rounds = sys.argv[1], sys.argv[2], sys.argv[3]
with open(results) as f:
    next(f)
    for line in f:
        r, case, srv, rps, p50, p99, cpu, reqs, pct, errs, other, cother = line.rstrip("\n").split("\t")
        runs[(case, srv)].append(dict(round=r, rps=float(rps), p50=float(p50), p99=float(p99),
                                      cpu=float(cpu), pct=float(pct), errs=int(errs),
                                      clean=(float(pct) >= 90 or re.match(r"(c1|r[0-9]+):", case) is not None)
                                      and float(other) <= 5
                                      and float(cother) <= 5))

cases = list(dict.fromkeys(case for case, _ in runs))
print()
print(f"medians over {rounds} round(s); p50/p99: wrk's, per request; pipe: per batch of requests,")
print("without wrk's coordinated-omission correction (see bench/pipeline.lua)")
print("c1: one connection, one request at a time: the server's own turnaround, no queueing")
print("rN: bench/rate_load, N requests/s whatever the answers (open loop, latency from each")
print("    request's due time): the server's queueing at a load it sustains")
print("a run is clean when the server used >= 90% of its CPU (c1, rN: any) and other processes <= 5% of its")
print("CPU and of wrk's;")
print("medians are over the clean runs (runs column: clean/all; all runs when none is clean)")
print(f"{'path':<18} | {'server':<6} | {'req/s':>9} | {'p50':>8} | {'p99':>8} | {'CPU us/req':>10} | {'srv CPU':>7} | runs | errors")
print("-" * 99)
for case in cases:
    for srv in ("corio", "nginx"):
        if (case, srv) not in runs:
            continue
        errs = sum(x["errs"] for x in runs[(case, srv)])
        print(f"{case:<18} | {srv:<6} | {med(case, srv, 'rps'):9.0f} | {med(case, srv, 'p50'):6.0f}us"
              f" | {med(case, srv, 'p99'):6.0f}us | {med(case, srv, 'cpu'):10.3f} | {med(case, srv, 'pct'):6.0f}% |"
              f" {sum(x['clean'] for x in runs[(case, srv)])}/{len(runs[(case, srv)])}  | {errs}")
print()
print(f"{'path':<18} | corio/nginx req/s | corio/nginx CPU/req | corio/nginx p99")
print("-" * 78)
for case in cases:
    if (case, "corio") in runs and (case, "nginx") in runs:
        r = med(case, "corio", "rps") / med(case, "nginx", "rps")
        c = med(case, "corio", "cpu") / med(case, "nginx", "cpu")
        p = med(case, "corio", "p99") / med(case, "nginx", "p99")
        print(f"{case:<18} | {r:17.2f} | {c:19.2f} | {p:15.2f}")
# Paired: corio/nginx within each round (the two runs back to back), so
# that what slows the whole machine for a while cancels out; the median over
# the rounds, with the smallest and largest ratio.
print()
print("paired ratios corio/nginx, run by run within a round: median (min..max) over the rounds")
print(f"{'path':<18} | {'req/s':>17} | {'CPU/req':>17} | {'p50':>17} | {'p99':>17}")
print("-" * 98)
for case in cases:
    a, b = runs[(case, "corio")], runs[(case, "nginx")]
    if not {x["round"] for x in a} & {x["round"] for x in b}:
        continue
    cols = [spread(paired(a, b, key), "5.2f") for key in ("rps", "cpu", "p50", "p99")]
    print(f"{case:<18} | " + " | ".join(f"{c:>17}" for c in cols))
with open(idle) as f:
    lines = [l.split() for l in f if l.strip()]
if lines:
    print()
    print(f"{'idle keep-alive':<18} | {'conns':>6} | {'VmRSS KiB/conn':>14} | {'stacks KiB/conn':>15} | {'other KiB/conn':>14}")
    print("-" * 80)
    for parts in lines:
        kv = dict(p.split("=", 1) for p in parts[1:])
        print(f"{parts[0]:<18} | {kv['open']:>6} | {float(kv['rss_kib_per_conn']):14.2f} | "
              f"{float(kv['stack_kib_per_conn']):15.2f} | {float(kv['other_kib_per_conn']):14.2f}")
EOF
