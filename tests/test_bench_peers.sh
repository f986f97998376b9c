#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Functional check of the benchmark's peer servers (bench/servers.sh): no load,
# a few curl requests each.
#
#   tests/test_bench_peers.sh [build-dir]
#
# Starts every server servers_available lists (nginx, h2o, kore; with a
# build dir also corio, floor_uv and floor_epoll when built) on a free port,
# plain, and nginx, h2o (and corio) over TLS with session tickets off and on
# (and the session cache alone),
# through its start function, and checks:
#   - both routes answer 200 with the body and Content-Type of examples/hello
#     (over TLS with curl -k, TLS 1.3; TLS 1.2 refused by nginx and h2o);
#   - the pid printed is alive, is the server (its /proc/PID/comm) and is
#     pinned to the CPU given;
#   - over TLS (nginx, h2o), a second connection resumes the first's session
#     when tickets are on, or the session cache, and does not when both are
#     off (openssl s_client);
#   - after server_stop, the server and its helpers are gone (no process has
#     the temp dir as its working directory or in its command line) and the
#     port is closed.
# Skips (status 77) when none of nginx, h2o and kore is installed.
set -euo pipefail
# shellcheck source=lib.sh source-path=SCRIPTDIR/../bench
source "$(dirname "${BASH_SOURCE[0]}")/../bench/lib.sh"
# shellcheck source=servers.sh source-path=SCRIPTDIR/../bench
source "$(dirname "${BASH_SOURCE[0]}")/../bench/servers.sh"

build=${1:-}
cpu=0
need_tools "apt-get install curl openssl python3 util-linux" curl openssl python3 taskset
mapfile -t avail < <(servers_available "$build")
if ! printf '%s\n' "${avail[@]}" | grep -qxE 'nginx|h2o|kore'; then
  echo "$bench_name: SKIP: none of nginx, h2o, kore is installed (apt-get install nginx-light h2o kore)"
  exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/$bench_name.XXXXXX")
pid=
cleanup() {
  server_stop "$pid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0

# fetch SCHEME PORT PATH WANT_BODY WANT_TYPE: die unless the answer is 200 with that body and type.
fetch() {
  local scheme=$1 port=$2 path=$3 body=$4 type=$5 out got
  out=$tmp/body
  got=$(curl -sk --max-time 2 -o "$out" -w '%{http_code} %{content_type}' "$scheme://127.0.0.1:$port$path") ||
    die "$what $path: request failed"
  [[ $got == "200 $type" || $got == "200 $type; charset="* ]] ||
    die "$what $path: status and Content-Type '$got', not '200 $type'"
  [[ $(<"$out") == "$body" ]] || die "$what $path: unexpected body '$(<"$out")'"
}

# wait_ready_tls NAME PID PORT: up to 5 s for a 200 on https://127.0.0.1:PORT/plaintext.
wait_ready_tls() {
  local i
  for ((i = 0; i < 50; i++)); do
    server_alive "$2" || die "$1 exited at start (log: $(cat "$tmp/$1.log" 2>/dev/null))"
    curl -skf --max-time 2 -o /dev/null "https://127.0.0.1:$3/plaintext" && return 0
    sleep 0.1
  done
  die "$1 is not answering TLS on 127.0.0.1:$3"
}

# resumed PORT: print New or Reused: whether a second TLS connection resumed the first's session.
resumed() {
  local req=$'GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' sess=$tmp/sess.pem
  rm -f "$sess"
  # -ign_eof: read to the end of the answer, after the TLS 1.3 tickets, which follow the handshake.
  timeout 5 openssl s_client -connect "127.0.0.1:$1" -sess_out "$sess" -ign_eof <<<"$req" >/dev/null 2>&1 || true
  [[ -s $sess ]] || { echo None; return 0; }
  timeout 5 openssl s_client -connect "127.0.0.1:$1" -sess_in "$sess" -ign_eof <<<"$req" 2>/dev/null |
    awk '/^(New|Reused),/ { sub(/,.*/, ""); print; exit }'
}

# case_run NAME TLS [TICKETS [CACHE]]: start NAME (TLS 0 or 1; CORIO_BENCH_TICKETS, CORIO_BENCH_SESSION_CACHE
# on or off), check it, stop it.
case_run() {
  local name=$1 tls=$2 tickets=${3:-} cache=${4:-off} port scheme=http comm args=() procs=() p got want leftover
  what=$name
  if [[ $tls == 1 ]]; then
    scheme=https
    what+=" tls${tickets:+ tickets=$tickets cache=$cache}"
  fi
  port=$(free_port)
  args=("$tmp" "$port" "$cpu")
  case $name in corio | floor_*) args+=("$build") ;; esac
  [[ $tls == 1 ]] && args+=(1)
  pid=$(CORIO_BENCH_TICKETS=${tickets:-on} CORIO_BENCH_SESSION_CACHE=$cache "start_$name" "${args[@]}") || die "$what: start_$name failed"
  [[ $pid =~ ^[0-9]+$ ]] || die "$what: start_$name printed '$pid', not a pid"
  if [[ $tls == 1 ]]; then wait_ready_tls "$name" "$pid" "$port"; else wait_ready "$name" "$pid" "$port" /plaintext; fi

  fetch "$scheme" "$port" /plaintext 'Hello, World!' text/plain
  fetch "$scheme" "$port" /json '{"message":"Hello, World!"}' application/json

  server_alive "$pid" || die "$what: pid $pid is not running"
  comm=$(<"/proc/$pid/comm")
  want=$name
  [[ $name == corio ]] && want=hello
  [[ $comm == "$want" ]] || die "$what: pid $pid is '$comm', not $want"
  got=$(awk '/^Cpus_allowed_list:/ { print $2 }' "/proc/$pid/status")
  [[ $got == "$cpu" ]] || die "$what: pid $pid runs on CPUs $got, not $cpu"
  mapfile -t procs < <(server_cpu_pids "$pid")
  if [[ $name == kore ]]; then
    # The worker: its parent is kore too (the supervisor), bound to the same CPU.
    p=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$pid/stat")
    [[ $(<"/proc/$p/comm") == kore ]] || die "$what: the parent of worker $pid is not kore"
  fi

  local extra=""
  if [[ $tls == 1 ]]; then
    if [[ $name == nginx || $name == h2o ]]; then
      curl -sk --max-time 2 --tls-max 1.2 -o /dev/null "https://127.0.0.1:$port/plaintext" 2>/dev/null &&
        die "$what: TLS 1.2 accepted"
      got=$(resumed "$port")
      want=New
      [[ $tickets == on || $cache == on ]] && want=Reused
      [[ $got == "$want" ]] || die "$what: second connection: '$got', not $want"
      extra=", resumption: $got"
    fi
  fi

  server_stop "$pid"
  for p in "${procs[@]}"; do
    server_alive "$p" && die "$what: pid $p still running after server_stop"
  done
  # Any process left of this server (helpers included): its working directory or command line in tmp.
  leftover=$(for d in /proc/[0-9]*; do
    [[ -r $d/stat ]] || continue
    server_alive "${d#/proc/}" || continue
    if [[ $(readlink "$d/cwd" 2>/dev/null) == "$tmp"* ]] || tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF "$tmp/"; then
      echo "${d#/proc/} $(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)"
    fi
  done)
  [[ -z $leftover ]] || die "$what: processes left: $leftover"
  curl -sk --max-time 1 -o /dev/null "$scheme://127.0.0.1:$port/plaintext" 2>/dev/null &&
    die "$what: port $port still answers after server_stop"
  echo "ok  $what: pid $pid ($comm, cpu $cpu, cpu pids ${procs[*]})$extra; $(server_version "$name" "$build")"
  pid=
  passed=$((passed + 1))
}

for name in "${avail[@]}"; do
  case_run "$name" 0
  case $name in
    nginx | h2o)
      case_run "$name" 1 off
      case_run "$name" 1 on
      case_run "$name" 1 off on
      ;;
    corio) case_run corio 1 ;;
  esac
done
echo "$bench_name: all $passed cases passed"
