# SPDX-License-Identifier: MIT
# Helpers shared by bench/http_bench.sh, bench/proxy_bench.sh and
# bench/client_bench.sh, which source this file first:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Checks of the build and tools, process start and stop, the warm-up and the
# interleaved rounds (corio against nginx), the CPU accounting (/proc/PID/stat,
# /proc/stat, `times`), the quiet-wait, the parsing of wrk's output, and the
# Python helpers of the tables (medians over the clean runs, per-round
# ratios).  Messages start with the sourcing script's name.
# Not meant to be run on its own.
# shellcheck shell=bash disable=SC2034 # clk, tmp, wrk_awk: set here, used by the scripts

bench_name=$(basename "${BASH_SOURCE[1]}" .sh)

# die MESSAGE: print "NAME: MESSAGE" on stderr and exit 1.
die() {
  echo "$bench_name: $*" >&2
  exit 1
}

# need_bins BUILD BIN...: die unless each BIN (a path in BUILD) is executable.
need_bins() {
  local build=$1 b
  shift
  for b; do
    [[ -x $b ]] || die "$b not found; build it first (Release):
  cmake -S . -B $build -DCMAKE_BUILD_TYPE=Release && cmake --build $build -j2"
  done
}

# need_tools HINT TOOL...: die unless each TOOL is on PATH (HINT, if not empty, says how to get them).
need_tools() {
  local hint=$1 tool
  shift
  for tool; do
    command -v "$tool" >/dev/null || die "$tool not found${hint:+ ($hint)}"
  done
}

# check_rounds ROUNDS: die unless ROUNDS is 1..99.
check_rounds() {
  [[ $1 =~ ^[1-9][0-9]?$ ]] || die "rounds must be 1..99, not '$1'"
}

# warn_unless_release BUILD: warn on stderr unless BUILD's CMakeCache.txt is a Release build's.
warn_unless_release() {
  local type
  type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$1/CMakeCache.txt" 2>/dev/null || true)
  if [[ $type != Release ]]; then
    echo "$bench_name: warning: $1 is a '${type:-?}' build; figures are meant for Release" >&2
  fi
}

# bench_setup PIDVAR...: set clk and tmp (a temp dir); on exit, stop the pids in PIDVAR... in order, remove tmp.
bench_setup() {
  clk=$(getconf CLK_TCK)
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$bench_name.XXXXXX")
  bench_pid_vars=("$@")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# bench_cleanup: the EXIT trap of bench_setup.
bench_cleanup() {
  local v
  for v in "${bench_pid_vars[@]}"; do
    stop "${!v:-}"
  done
  rm -rf "$tmp"
}

# stop PID: TERM, then KILL after 3 s; bounded (nothing to do when PID is empty or gone).
stop() {
  local pid=$1 i
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# run_interleaved ROUNDS WHAT CASE...: warm-up, then ROUNDS rounds of `run ROUND CASE SERVER` (corio, nginx).
run_interleaved() {
  # The warm-up runs each case for 1 s on both servers; each round then runs every
  # case on both back to back, and the server that goes first alternates between rounds.
  local rounds=$1 what=$2 c r srv order
  shift 2
  echo "$bench_name: warm-up (1 s per case and $what)"
  for c; do
    run warm "$c" corio 1s
    run warm "$c" nginx 1s
  done

  for ((r = 1; r <= rounds; r++)); do
    echo "$bench_name: round $r/$rounds"
    if ((r % 2)); then order=(corio nginx); else order=(nginx corio); fi
    for c; do
      for srv in "${order[@]}"; do
        run "$r" "$c" "$srv"
      done
    done
  done
}

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready NAME PID PORT PATH: up to 5 s for a 200 on PATH; die (with $tmp/NAME.log) if PID exits.
wait_ready() {
  local i
  for ((i = 0; i < 50; i++)); do
    kill -0 "$2" 2>/dev/null || die "$1 exited at start (log: $(cat "$tmp/$1.log" 2>/dev/null))"
    curl -sf -o /dev/null "http://127.0.0.1:$3$4" && return 0
    sleep 0.1
  done
  die "$1 is not answering on 127.0.0.1:$3"
}

# check_body NAME PORT PATH WANT: die unless GET PATH answers 200 with the body WANT.
check_body() {
  local got
  got=$(curl -sf --max-time 2 "http://127.0.0.1:$2$3") || die "$1 $3: request failed"
  [[ $got == "$4" ]] || die "$1 $3: unexpected body '$got'"
}

# cpu_ticks PID: its utime + stime so far, in clock ticks (fields 14 and 15 of /proc/PID/stat).
cpu_ticks() {
  local stat
  stat=$(<"/proc/$1/stat")
  stat=${stat##*) } # the command name, field 2, may hold spaces: cut after its ')'
  # shellcheck disable=SC2086
  set -- $stat # field 3 is now $1
  echo $((${12} + ${13}))
}

# cpu_busy CPU: busy ticks of one CPU (all but idle and iowait; steal included), from /proc/stat.
cpu_busy() {
  awk -v cpu="cpu$1" '$1 == cpu { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# children_cs: hundredths of CPU seconds used by this shell's finished children; call it as `children_cs >FILE`.
children_cs() {
  # The second line of `times` ("0m1.234s 0m0.567s"); `times` must run in this shell, not in a
  # $(...) subshell, which has children of its own.
  times >"$tmp/times"
  awk 'NR == 2 { t = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); t += a[1] * 60 + a[2] }
                 printf "%d\n", t * 100 }' "$tmp/times"
}

# wait_quiet SECONDS: wait up to SECONDS (0: none) for a second in which the machine's CPUs were < 10% busy.
wait_quiet() {
  local i a b
  for ((i = 0; i < $1; i++)); do
    a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    sleep 1
    b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
    awk -v a="$a" -v b="$b" 'BEGIN { split(a, x); split(b, y); busy = y[1] - x[1]; idle = y[2] - x[2]
                                     exit !(busy + idle > 0 && busy < 0.1 * (busy + idle)) }' && return 0
  done
  (($1 == 0)) || echo "  (no quiet second in $1 s: running anyway)"
}

# wrk_awk: awk rules put before a script's own to read wrk's output: us(), reqs, rps, errs.
# shellcheck disable=SC2016 # awk's $1 and so on
wrk_awk='
    function us(v) { # wrk latency: 1.23us, 4.56ms, 1.02s
      if (v ~ /us$/) return v + 0
      if (v ~ /ms$/) return v * 1000
      if (v ~ /m$/) return v * 60e6
      if (v ~ /s$/) return v * 1e6
      return v + 0
    }
    / requests in / { reqs = $1 }
    /^Requests\/sec:/ { rps = $2 }
    /Socket errors:/ { gsub(/[^0-9 ]/, " "); errs += $1 + $2 + $3 + $4 }
    /Non-2xx or 3xx responses:/ { errs += $NF }
'

# bench_py: Python put before each script's table program by bench_table: runs, chosen, med, paired, spread.
read -r -d '' bench_py <<'PY' || true # read's status is 1 at the end of its input
import re, statistics, sys
from collections import defaultdict

runs = defaultdict(list) # a case's key -> its runs, dicts with at least "round" and "clean"

def chosen(*key):
    """The clean runs of a case (runs[key]; runs[key[0]] for a one-part key), or all if none is."""
    rs = runs[key[0] if len(key) == 1 else key]
    clean = [x for x in rs if x["clean"]]
    return clean or rs

def med(*key_field):
    """The median of a field over chosen(key): med(case, srv, "rps"), med(case, "rps")."""
    return statistics.median(x[key_field[-1]] for x in chosen(*key_field[:-1]))

def paired(a, b, field):
    """The ratios a/b of a field, round by round, over the rounds both lists of runs have."""
    ra = {x["round"]: x for x in a}
    rb = {x["round"]: x for x in b}
    return [ra[r][field] / rb[r][field] for r in ra if r in rb and rb[r][field] > 0]

def spread(vs, fmt=".2f"):
    """Ratios as "median (min..max)", the median in fmt; "-" when there are none."""
    return f"{statistics.median(vs):{fmt}} ({min(vs):.2f}..{max(vs):.2f})" if vs else "-"
PY

# bench_table ARG...: run the Python program on stdin after bench_py, with sys.argv[1:] = ARG...
bench_table() {
  python3 -c "$bench_py"$'\n'"$(cat)" "$@"
}
