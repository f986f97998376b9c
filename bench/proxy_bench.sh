#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Reverse-proxy benchmark: examples/proxy against nginx (Debian's), both in
# front of the same examples/hello, on 127.0.0.1 only.
#
#   bench/proxy_bench.sh [build-dir] [rounds]
#
# build-dir defaults to build and must hold a Release build of examples/proxy
# and examples/hello (this script builds nothing): cmake -S . -B build
# -DCMAKE_BUILD_TYPE=Release && cmake --build build.  rounds defaults to 3.
#
#   wrk -> proxy (corio's examples/proxy, or nginx) -> hello (examples/hello)
#
# nginx runs one worker (bench/nginx_proxy.conf.in): proxy_pass to an
# upstream block with `keepalive 64` (CORIO_BENCH_KEEPALIVE), HTTP/1.1 and
# Connection "" -- pooled upstream connections as corio's client keeps --
# and the same header work as examples/proxy (Host kept, X-Forwarded-*, Via).
# nginx keeps at most `keepalive` idle upstream connections: with more
# requests in flight than that (256 connections) it closes and reopens
# upstream connections thousands of times a second, which costs it and
# hello dearly; examples/proxy pools up to 1024 per upstream.  For the two
# proxies with pools of the same reach: CORIO_BENCH_KEEPALIVE=512.
#
# Placement: both proxies are pinned to CPU 0 (CORIO_BENCH_SERVER_CPU), wrk
# to CPU 1 (CORIO_BENCH_CLIENT_CPU), and hello to CPU 0 as well
# (CORIO_BENCH_UPSTREAM_CPU): the upstream shares the proxy's CPU, so req/s
# is the throughput of proxy + hello on one CPU, and hello's share (the same
# work whichever proxy is in front) dilutes the req/s ratio; the proxy's own
# cost is the "proxy CPU us/req" column, which counts the proxy process
# only.  Putting hello on CPU 1 instead makes wrk and hello compete there,
# and then both CPUs run near saturation: two coupled bottlenecks, where
# which side wins a run varies (CORIO_BENCH_UPSTREAM_CPU=1 to see it).  With
# hello beside the proxy there is one bottleneck, CPU 0, and wrk's CPU has
# room to spare.
#
# Cases: /plaintext through the proxy at 64 and 256 connections
# (CORIO_BENCH_CONNS, default "64 256"), each as
#   wrk -t1 -cN -d5s --latency URL
# interleaved: each round runs every case against both proxies back to back,
# and the proxy that goes first alternates between rounds.  For each run it
# records wrk's requests/s, p50 and p99 latency, errors (non-2xx responses
# plus socket errors), and the CPU time per request of the proxy process
# (utime+stime from /proc/PID/stat before and after, divided by the requests
# wrk completed), and of hello.  A run is disturbed when CPU 0 was less than
# 90% busy with the proxy and hello, or other processes took > 5% of CPU 0
# or of CPU 1 (/proc/stat minus our processes), as on a machine shared with
# builds.  The tables show medians over the clean runs (over all when none
# is clean) and per-round paired ratios corio/nginx, as markdown.
#
# "upstream conns" counts TCP connections opened on the machine during the
# run (/proc/net/snmp ActiveOpens) minus wrk's own: a proxy that keeps its
# upstream connections pooled opens few: those hello closed while idle (its
# keep-alive timeout is 5 s, so a pool refills after the other proxy's run)
# and, with nginx, those beyond its `keepalive` idle ones when more requests
# are in flight (at 256 connections nginx closes and reopens upstream
# connections all the time).  It is machine-wide: other processes'
# connections count too.
#
# Other knobs: CORIO_BENCH_DURATION (default 5s), CORIO_BENCH_QUIET_WAIT
# (seconds to wait before each run for a quiet second on the machine,
# default 0).  Every run is bounded; a full run takes about 1.5 minutes
# (3 rounds), plus the waits.  The helpers shared with the other benchmarks
# are in bench/lib.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
rounds=${2:-3}
dur=${CORIO_BENCH_DURATION:-5s}
conns_list=${CORIO_BENCH_CONNS:-64 256}
keepalive=${CORIO_BENCH_KEEPALIVE:-64}
server_cpu=${CORIO_BENCH_SERVER_CPU:-0}
client_cpu=${CORIO_BENCH_CLIENT_CPU:-1}
quiet_wait=${CORIO_BENCH_QUIET_WAIT:-0}
upstream_cpu=${CORIO_BENCH_UPSTREAM_CPU:-$server_cpu}
path=/plaintext
want='Hello, World!'

hello_bin=$build/examples/hello/hello
proxy_bin=$build/examples/proxy/proxy
need_bins "$build" "$hello_bin" "$proxy_bin"
need_tools "apt-get install wrk nginx-light util-linux python3 curl" wrk nginx taskset python3 curl
check_rounds "$rounds"
[[ $dur =~ ^[0-9]+s?$ ]] || die "CORIO_BENCH_DURATION must look like 5s, not '$dur'"
dur_s=${dur%s}
for c in $conns_list; do
  [[ $c =~ ^[1-9][0-9]{0,3}$ ]] || die "CORIO_BENCH_CONNS: 1..9999 each, not '$c'"
done
[[ $keepalive =~ ^[1-9][0-9]{0,4}$ ]] || die "CORIO_BENCH_KEEPALIVE must be a count, not '$keepalive'"
warn_unless_release "$build"

bench_setup cpid npid hpid # clk, tmp; on exit: stop both proxies and hello, remove tmp

# TCP connections opened by this machine so far (ActiveOpens of /proc/net/snmp).
tcp_opens() {
  awk '$1 == "Tcp:" && !h { for (i = 1; i <= NF; i++) if ($i == "ActiveOpens") c = i; h = 1; next }
       $1 == "Tcp:" { print $c }' /proc/net/snmp
}

# ---- servers ----------------------------------------------------------------------------------

hport=$(free_port)
taskset -c "$upstream_cpu" "$hello_bin" --host 127.0.0.1 --port "$hport" --log-level warn \
  >"$tmp/hello.log" 2>&1 &
hpid=$!
wait_ready hello "$hpid" "$hport" "$path"

cport=$(free_port)
taskset -c "$server_cpu" "$proxy_bin" --upstream "http://127.0.0.1:$hport" \
  --host 127.0.0.1 --port "$cport" --log-level warn >"$tmp/corio.log" 2>&1 &
cpid=$!

nport=$(free_port)
while [[ $nport == "$cport" || $nport == "$hport" ]]; do nport=$(free_port); done
mkdir -p "$tmp/nginx"
sed -e "s|@DIR@|$tmp/nginx|g" -e "s|@PORT@|$nport|g" -e "s|@UPSTREAM_PORT@|$hport|g" \
  -e "s|@KEEPALIVE@|$keepalive|g" "$here/nginx_proxy.conf.in" >"$tmp/nginx/nginx.conf"
# -p and -e keep every file nginx opens in the temp dir; the config makes it
# one foreground process, no master.
taskset -c "$server_cpu" nginx -p "$tmp/nginx/" -e "$tmp/nginx/error.log" \
  -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
npid=$!

wait_ready corio "$cpid" "$cport" "$path"
wait_ready nginx "$npid" "$nport" "$path"
[[ $(<"/proc/$hpid/comm") == hello ]] || die "pid $hpid is not hello"
[[ $(<"/proc/$cpid/comm") == proxy ]] || die "pid $cpid is not proxy"
[[ $(<"/proc/$npid/comm") == nginx ]] || die "pid $npid is not nginx"
for srv in corio nginx; do
  port=$cport
  [[ $srv == nginx ]] && port=$nport
  check_body "$srv" "$port" "$path" "$want"
  curl -sf --max-time 2 -D - -o /dev/null "http://127.0.0.1:$port$path" | grep -qi '^via: 1.1' ||
    die "$srv $path: no Via field: not proxied?"
done

echo "proxy_bench: corio $proxy_bin (pid $cpid, :$cport) and $(nginx -v 2>&1 | sed 's/.*: //')" \
  "(pid $npid, :$nport, upstream keepalive $keepalive), both in front of $hello_bin (pid $hpid, :$hport)"
echo "proxy_bench: proxies on CPU $server_cpu, hello on CPU $upstream_cpu, wrk -t1 -d$dur --latency" \
  "on CPU $client_cpu, connections: $conns_list; $rounds round(s), $(uname -m), $(nproc) CPUs," \
  "CLK_TCK $clk, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- one wrk run ------------------------------------------------------------------------------

results=$tmp/results.tsv
: >"$results"

# run ROUND CONNS SERVER [seconds]
run() {
  local round=$1 c=$2 srv=$3 d=${4:-$dur} pid=$cpid port=$cport out=$tmp/wrk.out line
  [[ $srv == nginx ]] && pid=$npid port=$nport
  [[ $round == warm ]] || wait_quiet "$quiet_wait"
  local p0 h0 b0 w0 k0 o0 p1 h1 b1 w1 k1 o1
  p0=$(cpu_ticks "$pid") h0=$(cpu_ticks "$hpid")
  b0=$(cpu_busy "$server_cpu") w0=$(cpu_busy "$client_cpu") o0=$(tcp_opens)
  children_cs >"$tmp/k0"
  taskset -c "$client_cpu" timeout 60 wrk -t1 "-c$c" "-d$d" --latency \
    "http://127.0.0.1:$port$path" >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
  p1=$(cpu_ticks "$pid") h1=$(cpu_ticks "$hpid")
  b1=$(cpu_busy "$server_cpu") w1=$(cpu_busy "$client_cpu") o1=$(tcp_opens)
  children_cs >"$tmp/k1"
  k0=$(<"$tmp/k0") k1=$(<"$tmp/k1")
  kill -0 "$pid" 2>/dev/null || die "$srv died (log: $(cat "$tmp/$srv.log"))"
  kill -0 "$hpid" 2>/dev/null || die "hello died (log: $(cat "$tmp/hello.log"))"
  [[ $round == warm ]] && return 0
  # Ticks of CPU 0 and CPU 1 that none of ours used: proxy, hello, wrk.
  local ours0=$((p1 - p0)) ours1=$(((k1 - k0) * clk / 100)) hello=$((h1 - h0))
  if [[ $upstream_cpu == "$server_cpu" ]]; then
    ours0=$((ours0 + hello))
  elif [[ $upstream_cpu == "$client_cpu" ]]; then
    ours1=$((ours1 + hello))
  fi
  line=$(awk -v round="$round" -v c="$c" -v srv="$srv" -v pt=$((p1 - p0)) -v ht="$hello" \
    -v clk="$clk" -v secs="$dur_s" -v busy0=$((b1 - b0)) -v ours0="$ours0" \
    -v other0=$((b1 - b0 - ours0)) -v other1=$((w1 - w0 - ours1)) -v opens=$((o1 - o0 - c)) \
    -v wt=$(((k1 - k0) * clk / 100)) "$wrk_awk"'
    $1 == "50%" { p50 = us($2) }
    $1 == "99%" { p99 = us($2) }
    END {
      if (!reqs) { print "error"; exit }
      printf "%s\tc%s\t%s\t%.0f\t%.0f\t%.0f\t%d\t%.3f\t%.3f\t%.0f\t%.0f\t%.0f\t%.0f\t%d\t%d\t%.0f\n",
        round, c, srv, rps, p50, p99, errs, pt / clk * 1e6 / reqs, ht / clk * 1e6 / reqs,
        100 * pt / clk / secs, 100 * ours0 / clk / secs,
        (other0 > 0 ? 100 * other0 / clk / secs : 0), (other1 > 0 ? 100 * other1 / clk / secs : 0),
        (opens > 0 ? opens : 0), reqs, 100 * wt / clk / secs
    }' "$out")
  [[ $line != error ]] || die "$srv c$c: cannot read wrk's output: $(cat "$out")"
  echo "$line" >>"$results"
  awk -F'\t' '{ printf "  round %s  %-5s %-6s %7s req/s  p50 %6s us  p99 %6s us  errors %s  proxy %6s us/req  hello %6s us/req  (cpu: proxy %s%%, proxy+hello %s%%, wrk %s%%, others on cpu0/cpu1 %s%%/%s%%; upstream conns %s)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $16, $12, $13, $14,
    ($11 < 90 || $12 > 5 || $13 > 5) ? "  <- disturbed" : "" }' <<<"$line"
}

# shellcheck disable=SC2086 # one case per connection count
run_interleaved "$rounds" proxy $conns_list

for srv in corio nginx hello; do
  if [[ -s $tmp/$srv.log ]]; then
    echo "proxy_bench: $srv's log (last 5 lines):"
    tail -n 5 "$tmp/$srv.log" | sed 's/^/  /'
  fi
done
if grep -qv '^\s*$' "$tmp/nginx/error.log" 2>/dev/null; then
  echo "proxy_bench: nginx error.log (last 5 lines):"
  tail -n 5 "$tmp/nginx/error.log" | sed 's/^/  /'
fi

# ---- tables ------------------------------------------------------------------------------------

bench_table "$results" "$rounds" "$path" <<'EOF'
results, rounds, path = sys.argv[1], sys.argv[2], sys.argv[3]
with open(results) as f:
    for line in f:
        (r, case, srv, rps, p50, p99, errs, pcpu, hcpu, ppct, cpu0pct,
         other0, other1, opens, reqs, wrkpct) = line.rstrip("\n").split("\t")
        runs[(case, srv)].append(dict(round=r, rps=float(rps), p50=float(p50), p99=float(p99),
                                      errs=int(errs), cpu=float(pcpu), hcpu=float(hcpu),
                                      pct=float(ppct), opens=int(opens),
                                      clean=float(cpu0pct) >= 90 and float(other0) <= 5
                                      and float(other1) <= 5))

cases = list(dict.fromkeys(case for case, _ in runs))
print()
print(f"wrk -> proxy -> hello, GET {path}; medians over {rounds} round(s), over the clean runs "
      "(runs: clean/all; all runs when none is clean)")
print("proxy CPU: the proxy process's utime+stime per request; hello CPU: the upstream's, per request")
print("errors: wrk's non-2xx responses + socket errors, summed over the runs; upstream conns: median")
print("TCP connections opened per run beyond wrk's (machine-wide)")
print()
print("| conns | proxy | req/s | p50 | p99 | errors | proxy CPU µs/req | hello CPU µs/req "
      "| proxy CPU % | upstream conns | runs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for case in cases:
    for srv in ("corio", "nginx"):
        if (case, srv) not in runs:
            continue
        rs = runs[(case, srv)]
        print(f"| {case[1:]} | {srv} | {med(case, srv, 'rps'):.0f} | {med(case, srv, 'p50'):.0f} µs"
              f" | {med(case, srv, 'p99'):.0f} µs | {sum(x['errs'] for x in rs)}"
              f" | {med(case, srv, 'cpu'):.2f} | {med(case, srv, 'hcpu'):.2f}"
              f" | {med(case, srv, 'pct'):.0f} | {med(case, srv, 'opens'):.0f}"
              f" | {sum(x['clean'] for x in rs)}/{len(rs)} |")
print()
print("paired ratios corio/nginx, run by run within a round: median (min..max) over the rounds")
print()
print("| conns | req/s | proxy CPU/req | p50 | p99 |")
print("|---|---:|---:|---:|---:|")
for case in cases:
    a, b = runs[(case, "corio")], runs[(case, "nginx")]
    if not {x["round"] for x in a} & {x["round"] for x in b}:
        continue
    cols = [spread(paired(a, b, key)) for key in ("rps", "cpu", "p50", "p99")]
    print(f"| {case[1:]} | " + " | ".join(cols) + " |")
EOF
