#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# gzip compression benchmark: the CPU one server spends per request on a
# 10 KiB JSON response, sent as it is and gzip-compressed, corio
# (examples/compress, GET /data.json) beside nginx (Debian's, `gzip on;
# gzip_comp_level L`) serving the same 10,240 bytes from a file, on
# 127.0.0.1 only.
#
#   bench/compress_bench.sh [build-dir] [rounds]
#
# build-dir defaults to build and must hold a Release build of
# examples/compress (this script builds nothing; the example exists when
# zlib was found): cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake
# --build build --target compress.  rounds defaults to 3.
#
# Servers.  One corio process per level (--level L, one worker), and one
# nginx (one process, master_process off) whose locations /l1 ... /l9 set
# gzip_comp_level; both serve the body examples/compress makes (fetched
# from it, uncompressed, into nginx's root).  nginx as a static server
# configured for it: gzip_types application/json, gzip_min_length 1024 (as
# corio's default), gzip_vary on, open_file_cache (no open(2) per
# request), sendfile for identity responses; with gzip it reads the file
# (from the page cache) each time.  corio answers from memory.
#
# Cases, for each level L in CORIO_BENCH_LEVELS (default "1 6"):
#   identity  wrk without Accept-Encoding: the 10 KiB as they are (corio's
#             compressor still runs: it decides no and adds Vary)
#   gzip L    wrk -H "Accept-Encoding: gzip": compressed at level L
# each as wrk -t1 -cCONNS -dDURATION (CORIO_BENCH_CONNS, default 64;
# CORIO_BENCH_DURATION, default 5s).  Rounds interleave: every round runs
# every case against both servers back to back, the server that goes first
# alternating between rounds (lib.sh's run_interleaved).  Before the runs,
# each server is checked: the identity answer is the 10,240 bytes, the gzip
# answer has "Content-Encoding: gzip" and decodes to them.
#
# Placement: the servers on CPU 0 (CORIO_BENCH_SERVER_CPU), wrk on CPU 1
# (CORIO_BENCH_CLIENT_CPU).  Per run: wrk's requests/s, the server's CPU
# time per request (utime+stime from /proc/PID/stat before and after,
# divided by the requests wrk completed) and bytes per response (wrk's
# bytes read / requests: head + body on the wire).  A run is disturbed when
# other processes took more than 5% of CPU 0 or CPU 1 (/proc/stat minus the
# server's and wrk's time), as on a machine shared with builds.  The server
# need not be saturated: what is measured is its CPU per request, and one
# wrk thread cannot keep either server busy with identity responses (both
# face the same client; the busy share is printed per run).  The tables
# show medians over the clean runs (all runs when none is clean), the ratio
# gzip / identity for each server, and per-round paired ratios corio /
# nginx, as markdown.
#
# Other knobs: CORIO_BENCH_QUIET_WAIT (seconds to wait before each run for a
# quiet second on the machine, default 0).  A full run at the defaults
# takes about 2 minutes (3 rounds).  Helpers shared with the other
# benchmarks are in bench/lib.sh.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build=${1:-build}
rounds=${2:-3}
levels=${CORIO_BENCH_LEVELS:-1 6}
conns=${CORIO_BENCH_CONNS:-64}
dur=${CORIO_BENCH_DURATION:-5s}
server_cpu=${CORIO_BENCH_SERVER_CPU:-0}
client_cpu=${CORIO_BENCH_CLIENT_CPU:-1}
quiet_wait=${CORIO_BENCH_QUIET_WAIT:-0}
path=/data.json
size=10240

bin=$build/examples/compress/compress
need_bins "$build" "$bin"
need_tools "apt-get install wrk nginx-light util-linux python3 curl" wrk nginx taskset python3 curl
check_rounds "$rounds"
[[ $dur =~ ^[0-9]+s?$ ]] || die "CORIO_BENCH_DURATION must look like 5s, not '$dur'"
dur_s=${dur%s}
[[ $conns =~ ^[1-9][0-9]{0,3}$ ]] || die "CORIO_BENCH_CONNS must be 1..9999, not '$conns'"
for l in $levels; do
  [[ $l =~ ^[1-9]$ ]] || die "CORIO_BENCH_LEVELS: levels 1..9, not '$l'"
done
warn_unless_release "$build"

cpids=()
npid=
bench_setup npid # clk, tmp; on exit: stop nginx (the corio processes: below), remove tmp
stop_all() {
  local p
  for p in "${cpids[@]}"; do stop "$p"; done
  bench_cleanup
}
trap stop_all EXIT

# ---- servers ------------------------------------------------------------------------------------

declare -A cport cpid
for l in $levels; do
  cport[$l]=$(free_port)
  taskset -c "$server_cpu" "$bin" --host 127.0.0.1 --port "${cport[$l]}" --level "$l" \
    --log-level warn >"$tmp/corio$l.log" 2>&1 &
  cpid[$l]=$!
  cpids+=("${cpid[$l]}")
  wait_ready "corio$l" "${cpid[$l]}" "${cport[$l]}" "$path"
  [[ $(<"/proc/${cpid[$l]}/comm") == compress ]] || die "pid ${cpid[$l]} is not compress"
done

# The body, as corio sends it uncompressed, is nginx's file.
first=${levels%% *}
mkdir -p "$tmp/nginx/www/data" "$tmp/nginx/logs"
curl -sf --max-time 2 -o "$tmp/nginx/www/data.json" "http://127.0.0.1:${cport[$first]}$path" ||
  die "cannot fetch $path from corio"
[[ $(stat -c %s "$tmp/nginx/www/data.json") == "$size" ]] || die "corio's $path is not $size bytes"

nport=$(free_port)
locations=""
for l in $levels; do
  locations+="        location = /l$l$path { gzip_comp_level $l; alias $tmp/nginx/www$path; }
"
done
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
worker_rlimit_nofile 65536;
pid $tmp/nginx/nginx.pid;
lock_file $tmp/nginx/nginx.lock;
error_log $tmp/nginx/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 75s;
    tcp_nodelay on;
    sendfile on;
    open_file_cache max=64 inactive=60s;
    open_file_cache_valid 60s;
    types { application/json json; }
    default_type application/octet-stream;
    gzip on;
    gzip_types application/json;
    gzip_min_length 1024;
    gzip_vary on;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$nport backlog=4096;
$locations    }
}
EOF
taskset -c "$server_cpu" nginx -p "$tmp/nginx/" -e "$tmp/nginx/error.log" \
  -c "$tmp/nginx/nginx.conf" >"$tmp/nginx.log" 2>&1 &
npid=$!
wait_ready nginx "$npid" "$nport" "/l$first$path"
[[ $(<"/proc/$npid/comm") == nginx ]] || die "pid $npid is not nginx"

# url SERVER LEVEL: the body's URL on that server at that level.
url() {
  if [[ $1 == corio ]]; then
    echo "http://127.0.0.1:${cport[$2]}$path"
  else
    echo "http://127.0.0.1:$nport/l$2$path"
  fi
}

# Both servers, every level: identity is the file's bytes, gzip decodes to them.
for l in $levels; do
  for srv in corio nginx; do
    u=$(url "$srv" "$l")
    if ! curl -sf --max-time 2 -o "$tmp/got" "$u" || ! cmp -s "$tmp/got" "$tmp/nginx/www/data.json"; then
      die "$srv $u: the identity body differs"
    fi
    curl -sf --max-time 2 -H 'Accept-Encoding: gzip' -D "$tmp/head" -o "$tmp/got.gz" "$u" ||
      die "$srv $u: gzip request failed"
    grep -qi '^content-encoding: gzip' "$tmp/head" || die "$srv $u: not compressed"
    python3 -c 'import gzip, sys; sys.exit(gzip.decompress(open(sys.argv[1], "rb").read()) != open(sys.argv[2], "rb").read())' \
      "$tmp/got.gz" "$tmp/nginx/www/data.json" || die "$srv $u: gzip does not decode to the body"
    echo "compress_bench: $srv level $l: $(stat -c %s "$tmp/got.gz") bytes gzip for $size"
  done
done

echo "compress_bench: corio $bin (levels $levels, pids ${cpids[*]}) and $(nginx -v 2>&1 | sed 's/.*: //')" \
  "(pid $npid, :$nport); zlib $(python3 -c 'import zlib; print(zlib.ZLIB_RUNTIME_VERSION)')"
echo "compress_bench: servers on CPU $server_cpu, wrk -t1 -c$conns -d$dur on CPU $client_cpu;" \
  "$rounds round(s), $(uname -m), $(nproc) CPUs, CLK_TCK $clk, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- one wrk run --------------------------------------------------------------------------------

results=$tmp/results.tsv
: >"$results"

# run ROUND CASE SERVER [DURATION]: CASE is identityL or gzipL.
run() {
  local round=$1 case=$2 srv=$3 d=${4:-$dur} l pid out=$tmp/wrk.out line hdr=()
  l=${case//[a-z]/}
  [[ $case == gzip* ]] && hdr=(-H "Accept-Encoding: gzip")
  pid=$npid
  [[ $srv == corio ]] && pid=${cpid[$l]}
  [[ $round == warm ]] || wait_quiet "$quiet_wait"
  local p0 b0 w0 k0 p1 b1 w1 k1
  p0=$(cpu_ticks "$pid") b0=$(cpu_busy "$server_cpu") w0=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k0"
  taskset -c "$client_cpu" timeout 60 wrk -t1 "-c$conns" "-d$d" "${hdr[@]}" "$(url "$srv" "$l")" \
    >"$out" 2>&1 || die "wrk failed: $(cat "$out")"
  p1=$(cpu_ticks "$pid") b1=$(cpu_busy "$server_cpu") w1=$(cpu_busy "$client_cpu")
  children_cs >"$tmp/k1"
  k0=$(<"$tmp/k0") k1=$(<"$tmp/k1")
  kill -0 "$pid" 2>/dev/null || die "$srv died (log: $(cat "$tmp/$srv$l.log" "$tmp/nginx.log" 2>/dev/null))"
  [[ $round == warm ]] && return 0
  local pt=$((p1 - p0)) wt=$(((k1 - k0) * clk / 100))
  line=$(awk -v round="$round" -v c="$case" -v srv="$srv" -v pt="$pt" -v clk="$clk" \
    -v secs="$dur_s" -v other0=$((b1 - b0 - pt)) -v other1=$((w1 - w0 - wt)) "$wrk_awk"'
    / read$/ {
      v = $(NF - 1); u = v; gsub(/[0-9.]/, "", u); v += 0
      bytes = v * (u == "GB" ? 2^30 : u == "MB" ? 2^20 : u == "KB" ? 2^10 : 1)
    }
    END {
      if (!reqs) { print "error"; exit }
      printf "%s\t%s\t%s\t%.0f\t%.3f\t%.0f\t%d\t%.0f\t%.0f\t%.0f\n", round, c, srv, rps,
        pt / clk * 1e6 / reqs, bytes / reqs, errs, 100 * pt / clk / secs,
        (other0 > 0 ? 100 * other0 / clk / secs : 0), (other1 > 0 ? 100 * other1 / clk / secs : 0)
    }' "$out")
  [[ $line != error ]] || die "$srv $case: cannot read wrk's output: $(cat "$out")"
  echo "$line" >>"$results"
  awk -F'\t' '{ printf "  round %s  %-9s %-5s %7s req/s  %7s us/req  %6s B/resp  errors %s  (cpu: server %s%%, others on cpu0/cpu1 %s%%/%s%%)%s\n",
    $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, ($9 > 5 || $10 > 5) ? "  <- disturbed" : "" }' <<<"$line"
}

cases=()
for l in $levels; do cases+=("identity$l" "gzip$l"); done
run_interleaved "$rounds" "server" "${cases[@]}"

for f in "$tmp"/corio*.log "$tmp/nginx/error.log"; do
  if grep -qv '^\s*$' "$f" 2>/dev/null; then
    echo "compress_bench: $(basename "$f") (last 5 lines):"
    tail -n 5 "$f" | sed 's/^/  /'
  fi
done

# ---- tables -------------------------------------------------------------------------------------

bench_table "$results" "$rounds" "$conns" "$dur" <<'EOF'
results, rounds, conns, dur = sys.argv[1:5]
with open(results) as f:
    for line in f:
        r, case, srv, rps, cpu, bpr, errs, pct, other0, other1 = line.rstrip("\n").split("\t")
        runs[(case, srv)].append(dict(round=r, rps=float(rps), cpu=float(cpu), bpr=float(bpr),
                                      errs=int(errs),
                                      clean=float(other0) <= 5 and float(other1) <= 5))

cases = list(dict.fromkeys(case for case, _ in runs))
levels = list(dict.fromkeys(re.sub(r"\D", "", c) for c in cases))
print()
print(f"GET of a 10 KiB JSON body (10,240 bytes), wrk -t1 -c{conns} -d{dur}; medians over "
      f"{rounds} round(s), over the clean runs (runs: clean/all)")
print("CPU: the server process's utime+stime per request; B/resp: bytes on the wire per "
      "response (head + body)")
print()
print("| body | server | req/s | CPU µs/req | B/resp | errors | runs |")
print("|---|---|---:|---:|---:|---:|---:|")
for case in cases:
    name = "gzip level " + case[4:] if case.startswith("gzip") else "identity"
    if case.startswith("identity") and len(levels) > 1 and case != f"identity{levels[0]}":
        name += f" (corio --level {case[8:]})"
    for srv in ("corio", "nginx"):
        rs = runs[(case, srv)]
        print(f"| {name} | {srv} | {med(case, srv, 'rps'):.0f} | {med(case, srv, 'cpu'):.2f}"
              f" | {med(case, srv, 'bpr'):.0f} | {sum(x['errs'] for x in rs)}"
              f" | {sum(x['clean'] for x in rs)}/{len(rs)} |")
print()
print("gzip / identity, CPU per request (medians of each), and corio / nginx paired run by run "
      "within a round: median (min..max)")
print()
print("| level | corio gzip/identity | nginx gzip/identity | corio/nginx identity "
      "| corio/nginx gzip | corio/nginx bytes gzip |")
print("|---|---:|---:|---:|---:|---:|")
for l in levels:
    i, g = f"identity{l}", f"gzip{l}"
    cells = [f"{med(g, s, 'cpu') / med(i, s, 'cpu'):.2f}" for s in ("corio", "nginx")]
    cells += [spread(paired(runs[(c, "corio")], runs[(c, "nginx")], k))
              for c, k in ((i, "cpu"), (g, "cpu"), (g, "bpr"))]
    print(f"| {l} | " + " | ".join(cells) + " |")
EOF
