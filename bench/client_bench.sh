#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# HTTP client benchmark: corio's client (bench/client_bench.c) against curl
# (and hey, if installed) fetching examples/hello's /plaintext over
# keep-alive connections on 127.0.0.1.
#
#   bench/client_bench.sh [build-dir] [rounds]
#
# build-dir defaults to build and must hold a Release build of examples/hello
# and bench/client_bench (this script builds nothing).  rounds defaults to 3.
#
# hello runs pinned to CPU 0 (CORIO_BENCH_SERVER_CPU), every client to CPU 1
# (CORIO_BENCH_CLIENT_CPU).  Each round runs every case once, every other
# round in reverse order:
#
#   corio-1-task           client_bench -t 1: one task, corio_http_request +
#                          corio_await, one request after another
#   corio-1-task-exchange  the same with corio_http_open/_response_head/_read
#   curl-sequential        one curl, many URLs (reusing its connection):
#                          curl -s -o /dev/null -w '%{http_code}\n' 'URL#[1-N]'
#   hey-sequential         hey -c 1 -n N -cpus 1 URL
#   corio-64-tasks         client_bench -t 64: 64 tasks, each sequential
#   corio-64-tasks-exchange
#   curl-parallel-64       curl -Z --parallel-max 64 ... 'URL#[1-N]'
#   hey-64                 hey -c 64 -n N -cpus 1 URL
#
# (the '#[1-N]' glob makes N URLs whose fragments curl does not send: each
# request is GET /plaintext).  corio's runs last CORIO_BENCH_DURATION
# (default 5 s; at most 1,000,000 requests), after a warm-up of 2000
# requests on the same client; their req/s and CPU are client_bench's own
# (getrusage over the measured part).  curl and hey take a count, set so
# that a run lasts about as long from the rate of their warm-up run (each
# is bounded by `timeout` as well); their wall time and CPU (utime+stime of
# the finished child, from `times`) include their start-up.
#
# Columns: req/s; client CPU us/req; client CPU % (of one CPU: below 100 the
# client waits, for hello or the round trip); hello CPU us/req and % (at
# ~100% hello is the bottleneck, not the client); errors (non-200
# responses, failed transfers).  A run is disturbed when other processes
# took > 5% of CPU 0 or CPU 1 (/proc/stat minus hello and the client).
# Medians over the clean runs (all, when none is clean), and the ratios
# corio/curl and corio/hey within each round.
#
# CORIO_BENCH_QUIET_WAIT=N: wait up to N s before each run for a second in
# which the machine was < 10% busy.  Every run is bounded; a full run takes
# about 3 minutes (3 rounds), plus the waits.  The helpers shared with the
# other benchmarks are in bench/lib.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build=${1:-build}
rounds=${2:-3}
dur=${CORIO_BENCH_DURATION:-5s}
server_cpu=${CORIO_BENCH_SERVER_CPU:-0}
client_cpu=${CORIO_BENCH_CLIENT_CPU:-1}
quiet_wait=${CORIO_BENCH_QUIET_WAIT:-0}
path=/plaintext
body='Hello, World!'
max_n=1000000

hello_bin=$build/examples/hello/hello
bench_bin=$build/bench/client_bench
need_bins "$build" "$hello_bin" "$bench_bin"
need_tools "" curl taskset python3 timeout
have_hey=0
command -v hey >/dev/null && have_hey=1
check_rounds "$rounds"
[[ $dur =~ ^[0-9]+s?$ && ${dur%s} -ge 1 && ${dur%s} -le 60 ]] ||
  die "CORIO_BENCH_DURATION must be 1s..60s, not '$dur'"
dur_s=${dur%s}
warn_unless_release "$build"

bench_setup hpid # clk, tmp; on exit: stop hello, remove tmp

now_us() { echo $(($(date +%s%N) / 1000)); }

# ---- hello ------------------------------------------------------------------------------------

port=$(free_port)
taskset -c "$server_cpu" "$hello_bin" --host 127.0.0.1 --port "$port" --log-level warn \
  >"$tmp/hello.log" 2>&1 &
hpid=$!
wait_ready hello "$hpid" "$port" "$path"
check_body hello "$port" "$path" "$body"
[[ $(<"/proc/$hpid/comm") == hello ]] || die "pid $hpid is not hello"
url=http://127.0.0.1:$port$path

cases=(corio-1-task corio-1-task-exchange curl-sequential)
((have_hey)) && cases+=(hey-sequential)
cases+=(corio-64-tasks corio-64-tasks-exchange curl-parallel-64)
((have_hey)) && cases+=(hey-64)

echo "client_bench: $hello_bin (pid $hpid, $url) on CPU $server_cpu; clients on CPU $client_cpu;" \
  "$(curl --version | head -1 | cut -d' ' -f1-2)$( ((have_hey)) && echo ", hey $(dpkg-query -W -f='${Version}' hey 2>/dev/null || echo '?')" || echo ", no hey")"
echo "client_bench: $rounds round(s) of ${dur_s} s runs, $(uname -m), $(nproc) CPUs, CLK_TCK $clk," \
  "load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- one run ------------------------------------------------------------------------------------

results=$tmp/results.tsv
: >"$results"
declare -A count # case -> request count for curl and hey (from the warm-up's rate)

# run ROUND CASE: appends a line to $results (unless ROUND is warm).
run() {
  local round=$1 case=$2 out=$tmp/out n h0 h1 b0 b1 w0 w1 k0 k1 t0 t1 line
  n=${count[$case]:-2000}
  [[ $round == warm ]] || wait_quiet "$quiet_wait"
  if [[ $round == warm ]]; then
    case $case in curl-sequential | hey-sequential) n=1024 ;; *) n=5120 ;; esac
  fi
  h0=$(cpu_ticks "$hpid") b0=$(cpu_busy "$server_cpu") w0=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k0"
  t0=$(now_us)
  local rc=0
  case $case in
  corio-*)
    local tasks=1 api=request secs=$dur_s
    [[ $case == corio-64-* ]] && tasks=64
    [[ $case == *-exchange ]] && api=exchange
    [[ $round == warm ]] && secs=1
    taskset -c "$client_cpu" timeout $((secs + 30)) "$bench_bin" -a "$api" -t "$tasks" \
      -n "$max_n" -s "$secs" "$url" >"$out" 2>"$tmp/err" || rc=$?
    ;;
  curl-*)
    local par=()
    [[ $case == curl-parallel-64 ]] && par=(-Z --parallel-max 64)
    taskset -c "$client_cpu" timeout $((dur_s * 4 + 30)) curl -s --no-progress-meter "${par[@]}" \
      --max-time 10 -o /dev/null -w '%{http_code}\n' "$url#[1-$n]" >"$out" 2>"$tmp/err" || rc=$?
    ;;
  hey-*) # hey gives each of its c workers n/c requests: n is a multiple of 64
    local c=1
    [[ $case == hey-64 ]] && c=64
    taskset -c "$client_cpu" timeout $((dur_s * 4 + 30)) hey -n "$n" -c "$c" -cpus 1 -t 10 \
      "$url" >"$out" 2>"$tmp/err" || rc=$?
    ;;
  esac
  t1=$(now_us)
  h1=$(cpu_ticks "$hpid") b1=$(cpu_busy "$server_cpu") w1=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k1"
  k0=$(<"$tmp/k0") k1=$(<"$tmp/k1")
  kill -0 "$hpid" 2>/dev/null || die "hello died (log: $(cat "$tmp/hello.log"))"
  if ((rc != 0)) && [[ $case != corio-* || ! -s $out ]]; then
    die "$case exited with status $rc: $(head -c 2000 "$tmp/err")"
  fi
  # ok requests, errors, wall seconds, client CPU seconds of the measured part
  local ok errs wall ccpu
  wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e6 }')
  ccpu=$(awk -v a="$k0" -v b="$k1" 'BEGIN { printf "%.2f", (b - a) / 100 }')
  case $case in
  corio-*)
    read -r ok errs wall ccpu < <(awk '$1 == "client_bench" {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%d %d %s %.6f\n", v["requests"], v["errors"], v["secs"],
               v["cpu_us_per_req"] * v["requests"] / 1e6 }' "$out")
    [[ -n ${ok:-} ]] || die "$case: no result line: $(cat "$out" "$tmp/err")"
    ;;
  curl-*)
    ok=$(grep -c '^200$' "$out" || true)
    errs=$((n - ok))
    ;;
  hey-*)
    ok=$(awk '$1 == "[200]" { print $2 }' "$out")
    ok=${ok:-0}
    errs=$((n - ok))
    ;;
  esac
  if [[ $round == warm ]]; then
    # count for the measured runs of curl and hey: the warm-up's rate times the duration
    if [[ $case != corio-* ]]; then
      count[$case]=$(awk -v ok="$ok" -v w="$wall" -v d="$dur_s" -v m="$max_n" \
        'BEGIN { n = int(ok / w * d); n = n < 1000 ? 1000 : n > m ? m : n; print n - n % 64 }')
    fi
    return 0
  fi
  line=$(awk -v round="$round" -v case="$case" -v ok="$ok" -v errs="$errs" -v wall="$wall" \
    -v ccpu="$ccpu" -v ht=$((h1 - h0)) -v clk="$clk" -v span="$(awk -v a="$t0" -v b="$t1" \
    'BEGIN { print (b - a) / 1e6 }')" -v busy0=$((b1 - b0)) -v busy1=$((w1 - w0)) \
    -v kt=$(((k1 - k0) * clk / 100)) 'BEGIN {
      o0 = busy0 - ht; o1 = busy1 - kt
      printf "%s\t%s\t%.0f\t%.3f\t%.0f\t%.3f\t%.0f\t%d\t%d\t%.0f\t%.0f\n", round, case, ok / wall,
        ccpu * 1e6 / (ok ? ok : 1), 100 * ccpu / wall, ht / clk * 1e6 / (ok ? ok : 1),
        100 * ht / clk / span, ok, errs, (o0 > 0 ? 100 * o0 / clk / span : 0),
        (o1 > 0 ? 100 * o1 / clk / span : 0) }')
  echo "$line" >>"$results"
  awk -F'\t' '{ printf "  round %s  %-24s %7s req/s  client %7s us/req (%s%% CPU)  hello %6s us/req (%s%%)  %s requests, %s errors  (others on cpu0/cpu1 %s%%/%s%%)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, ($10 > 5 || $11 > 5) ? "  <- disturbed" : "" }' <<<"$line"
}

echo "client_bench: warm-up (one short run per case; sets curl's and hey's counts)"
for c in "${cases[@]}"; do
  run warm "$c"
done
for c in "${cases[@]}"; do
  [[ -n ${count[$c]:-} ]] && echo "  $c: $((count[$c])) requests per run"
done

for ((r = 1; r <= rounds; r++)); do
  echo "client_bench: round $r/$rounds"
  order=("${cases[@]}")
  if ((r % 2 == 0)); then # every other round in reverse order
    order=()
    for ((i = ${#cases[@]} - 1; i >= 0; i--)); do order+=("${cases[i]}"); done
  fi
  for c in "${order[@]}"; do
    run "$r" "$c"
  done
done

# ---- table -------------------------------------------------------------------------------------

bench_table "$results" "$rounds" "$url" <<'EOF'
results, rounds, url = sys.argv[1], sys.argv[2], sys.argv[3]
order = []
with open(results) as f:
    for line in f:
        r, case, rps, cus, cpct, hus, hpct, ok, errs, o0, o1 = line.rstrip("\n").split("\t")
        if case not in order:
            order.append(case)
        runs[case].append(dict(round=r, rps=float(rps), cus=float(cus), cpct=float(cpct),
                               hus=float(hus), hpct=float(hpct), ok=int(ok), errs=int(errs),
                               clean=float(o0) <= 5 and float(o1) <= 5))
canon = ["corio-1-task", "corio-1-task-exchange", "curl-sequential", "hey-sequential",
         "corio-64-tasks", "corio-64-tasks-exchange", "curl-parallel-64", "hey-64"]
cases = [c for c in canon if c in runs] + [c for c in order if c not in canon]

print()
print(f"GET {url} over keep-alive; medians over {rounds} round(s), over the clean runs")
print("(runs: clean/all); client CPU: the client process's utime+stime per request")
print()
print("| client | req/s | client CPU µs/req | client CPU % | hello CPU µs/req | hello CPU % "
      "| requests/run | errors | runs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for c in cases:
    rs = runs[c]
    print(f"| {c} | {med(c, 'rps'):.0f} | {med(c, 'cus'):.2f} | {med(c, 'cpct'):.0f}"
          f" | {med(c, 'hus'):.2f} | {med(c, 'hpct'):.0f} | {med(c, 'ok'):.0f}"
          f" | {sum(x['errs'] for x in rs)} | {sum(x['clean'] for x in rs)}/{len(rs)} |")
pairs = [("corio-1-task", "curl-sequential"), ("corio-1-task", "hey-sequential"),
         ("corio-64-tasks", "curl-parallel-64"), ("corio-64-tasks", "hey-64")]
pairs = [p for p in pairs if p[0] in runs and p[1] in runs]
if pairs:
    print()
    print("ratios within each round: median (min..max) over the rounds")
    print()
    print("| pair | req/s | client CPU/req |")
    print("|---|---:|---:|")
    for a, b in pairs:
        cols = [spread(paired(runs[a], runs[b], key)) for key in ("rps", "cus")]
        print(f"| {a} / {b} | {cols[0]} | {cols[1]} |")
EOF
