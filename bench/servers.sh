# SPDX-License-Identifier: MIT
# The servers of bench/http_bench.sh, one start function each, all serving
# the two routes of examples/hello on 127.0.0.1:
#
#   GET /plaintext  ->  Hello, World!               (text/plain)
#   GET /json       ->  {"message":"Hello, World!"}  (application/json)
#
# Sourced after bench/lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/servers.sh"
#
#   pid=$(start_nginx "$tmp" "$port" "$cpu" [tls])
#   pid=$(start_h2o   "$tmp" "$port" "$cpu" [tls])
#   pid=$(start_kore  "$tmp" "$port" "$cpu")
#   pid=$(start_corio "$tmp" "$port" "$cpu" "$build" [tls])
#   pid=$(start_floor_uv    "$tmp" "$port" "$cpu" "$build")
#   pid=$(start_floor_epoll "$tmp" "$port" "$cpu" "$build")
#
# Each starts its server in the background under `taskset -c CPU`, with its
# files (config, pid file, error log, temp files) in TMP/NAME/ and its
# stdout and stderr in TMP/NAME.log (the log wait_ready shows when it exits),
# and prints the pid of the process that serves the connections: the one
# whose CPU time (cpu_ticks) and memory the benchmark samples.  It does not
# wait for the server to answer (wait_ready does).  Every server is one
# process with one thread (or worker) serving, except:
#   - Kore runs a parent, which only supervises, and one worker, its child,
#     which accepts and serves everything: start_kore prints the worker's pid.
#   - h2o with TLS keeps its private key in a child process (neverbleed),
#     which computes the signature of each full handshake for the server
#     process: the pid printed is the server's, and server_cpu_pids PID adds
#     the child, whose CPU time a handshake benchmark must add.
# Stopping the printed pid stops the whole server, for every server (lib.sh's
# stop works; server_stop also waits for the helper processes).  Being started
# inside $(...), the servers are not children of the caller's shell: when
# they exit, init reaps them, which here takes up to a second, and meanwhile
# kill -0 still succeeds on the zombie; server_alive and server_stop count a
# zombie as gone.
#
# tls=1 (nginx, h2o, corio): TLS 1.3 with the certificate and key in
# CORIO_BENCH_CERT and CORIO_BENCH_KEY, or a self-signed P-256 pair made in
# TMP/tls/ (bench_cert).  Session resumption (nginx, h2o; corio keeps its
# own defaults): CORIO_BENCH_TICKETS=on|off (session tickets, default on),
# CORIO_BENCH_SESSION_CACHE=on|off (a server-side session cache, default
# off; in TLS 1.3 it resumes with stateful tickets).  Both off: no resumption.
#
# /json: nginx sends a constant string; examples/hello (its JSON string
# escaper), the floors, h2o (mruby's JSON.generate) and Kore (kore_json)
# serialize on every request; CORIO_BENCH_JSON=const makes h2o and Kore send
# the constant instead.
#
# Also: servers_available [BUILD] (the servers that can run here),
# server_version NAME [BUILD] (one line for the results' machine
# description), bench_cert TMP, server_cpu_pids PID, server_alive PID,
# server_stop PID.
# shellcheck shell=bash

servers_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# _srv_err MESSAGE: print "NAME: MESSAGE" on stderr; status 1.
_srv_err() {
  echo "${bench_name:-servers}: $*" >&2
  return 1
}

# _srv_onoff VAR DEFAULT: print the value of the environment variable VAR (on or off; DEFAULT if unset).
_srv_onoff() {
  local v=${!1:-$2}
  [[ $v == on || $v == off ]] || _srv_err "$1 must be on or off, not '$v'" || return
  echo "$v"
}

# _srv_json: print the /json mode of h2o and Kore, CORIO_BENCH_JSON: serialize (the default) or const.
_srv_json() {
  local v=${CORIO_BENCH_JSON:-serialize}
  [[ $v == serialize || $v == const ]] || _srv_err "CORIO_BENCH_JSON must be serialize or const, not '$v'" || return
  echo "$v"
}

# _srv_launch NAME TMP CPU CMD...: run CMD under taskset -c CPU in the background, in TMP/NAME/ (its
# working directory) with stdin from /dev/null and stdout and stderr to TMP/NAME.log; print its pid.
# taskset and the subshell exec the command: the pid is the server's.
_srv_launch() {
  local name=$1 tmp=$2 cpu=$3
  shift 3
  command -v "$1" >/dev/null || _srv_err "$1 not found" || return
  (cd "$tmp/$name" && exec taskset -c "$cpu" "$@") </dev/null >"$tmp/$name.log" 2>&1 &
  echo $!
}

# bench_cert TMP: print "CERT KEY", the paths of a certificate and its key: CORIO_BENCH_CERT and
# CORIO_BENCH_KEY if set, or else a self-signed P-256 pair for localhost and 127.0.0.1, made once in TMP/tls/.
bench_cert() {
  local dir=$1/tls cert=${CORIO_BENCH_CERT:-} key=${CORIO_BENCH_KEY:-}
  if [[ -n $cert || -n $key ]]; then
    [[ -r $cert && -r $key ]] ||
      _srv_err "CORIO_BENCH_CERT and CORIO_BENCH_KEY must both name readable PEM files" || return
    echo "$cert $key"
    return
  fi
  if [[ ! -s $dir/cert.pem || ! -s $dir/key.pem ]]; then
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
      -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
      -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$dir/openssl.log" 2>&1 ||
      _srv_err "openssl could not make a certificate: $(cat "$dir/openssl.log")" || return
  fi
  echo "$dir/cert.pem $dir/key.pem"
}

# start_nginx TMP PORT CPU [TLS]: nginx with bench/nginx.conf.in (bench/nginx_tls.conf.in when TLS is 1),
# one foreground process (master_process off); print its pid.
start_nginx() {
  local tmp=$1 port=$2 cpu=$3 tls=${4:-0} dir=$1/nginx tickets cache cert key
  mkdir -p "$dir"
  if [[ $tls == 1 ]]; then
    tickets=$(_srv_onoff CORIO_BENCH_TICKETS on) || return
    cache=$(_srv_onoff CORIO_BENCH_SESSION_CACHE off) || return
    [[ $cache == on ]] && cache=shared:corio_bench_tls:16m
    read -r cert key < <(bench_cert "$tmp") && [[ -n $key ]] || return 1
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" \
      -e "s|@TICKETS@|$tickets|g" -e "s|@CACHE@|$cache|g" \
      "$servers_dir/nginx_tls.conf.in" >"$dir/nginx.conf"
  else
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$servers_dir/nginx.conf.in" >"$dir/nginx.conf"
  fi
  # -p and -e keep every file nginx opens (even before it reads the config) in the temp dir.
  _srv_launch nginx "$tmp" "$cpu" nginx -p "$dir/" -e "$dir/error.log" -c "$dir/nginx.conf"
}

# start_h2o TMP PORT CPU [TLS]: h2o with bench/h2o.conf.in (num-threads 1, mruby handlers), in the
# foreground ("worker" mode, no master); print its pid: the server process, whose one event-loop
# thread serves every connection.  With TLS it has a child (neverbleed: see server_cpu_pids).
start_h2o() {
  local tmp=$1 port=$2 cpu=$3 tls=${4:-0} dir=$1/h2o tickets cache mode cert key json user
  local args=()
  mkdir -p "$dir"
  json=$(_srv_json) || return
  if [[ $json == const ]]; then
    json="'{\"message\":\"Hello, World!\"}'"
  else
    json='JSON.generate({"message" => "Hello, World!"})'
  fi
  # As root h2o switches to the user of its `user` directive, "nobody" if none: keep root.
  user=(-e "s|^user: @USER@\$|user: root|")
  [[ $(id -u) == 0 ]] || user=(-e '/^user: @USER@$/d')
  args=("${user[@]}" -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@JSON@|$json|g")
  if [[ $tls == 1 ]]; then
    tickets=$(_srv_onoff CORIO_BENCH_TICKETS on) || return
    cache=$(_srv_onoff CORIO_BENCH_SESSION_CACHE off) || return
    case $tickets$cache in
      onon) mode=all ;; onoff) mode=ticket ;; offon) mode=cache ;; *) mode=off ;;
    esac
    read -r cert key < <(bench_cert "$tmp") && [[ -n $key ]] || return 1
    args+=(-e 's|^#tls#||' -e "s|@CERT@|$cert|g" -e "s|@KEY@|$key|g" -e "s|@RESUMPTION@|$mode|g")
  else
    args+=(-e '/^#tls#/d')
  fi
  sed "${args[@]}" "$servers_dir/h2o.conf.in" >"$dir/h2o.conf"
  _srv_launch h2o "$tmp" "$cpu" h2o -c "$dir/h2o.conf"
}

# _srv_children PID: print the pids of PID's child processes, one a line.
_srv_children() {
  local f
  for f in /proc/"$1"/task/*/children; do
    [[ -r $f ]] && tr ' ' '\n' <"$f" | sed '/^$/d'
  done
  [[ -e /proc/$1/task/$1/children ]] || pgrep -P "$1" || true
}

# start_kore TMP PORT CPU: Kore with bench/kore/kore.conf.in and the module bench/kore/hello.c, compiled
# into TMP/kore/hello.so; print the pid of its worker.  Kore always forks: a parent, which binds the
# port and only supervises, and (workers 1) one worker, which accepts and serves every connection and
# so uses the CPU time to measure: that is the pid printed (the parent's child; stopping either stops
# both).  No TLS here (Kore's TLS needs its keymgr process, a third one).
start_kore() {
  local tmp=$1 port=$2 cpu=$3 tls=${4:-0} dir=$1/kore features=() json nofile ppid wpid i
  [[ $tls == 1 ]] && { _srv_err "start_kore: no TLS variant"; return 1; }
  mkdir -p "$dir"
  # The -D flags Debian's kore was built with (KORE_USE_PGSQL, KORE_USE_TASKS): struct
  # http_request has members under them, so the module must see the same layout.
  [[ -r /usr/share/kore/features ]] && read -r -a features </usr/share/kore/features
  json=$(_srv_json) || return
  [[ $json == serialize ]] || features+=(-DHELLO_JSON_CONST)
  cc -O2 -shared -fPIC "${features[@]}" -o "$dir/hello.so" "$servers_dir/kore/hello.c" \
    >"$tmp/kore.log" 2>&1 || _srv_err "cannot compile the Kore module: $(cat "$tmp/kore.log")" || return
  nofile=$(ulimit -Hn)
  if [[ $nofile == unlimited ]] || ((nofile > 65600)); then nofile=65600; fi
  nofile=$((nofile - 64))
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@NOFILE@|$nofile|g" \
    "$servers_dir/kore/kore.conf.in" >"$dir/kore.conf"
  # -f: foreground, log on stdout (stdbuf: line by line, or a fork copies the unwritten buffer);
  # -n: no chroot; -r: no privilege drop (as root Kore otherwise needs a runas user).
  ppid=$(_srv_launch kore "$tmp" "$cpu" stdbuf -oL kore -f -n -r -c "$dir/kore.conf") || return
  for ((i = 0; i < 100; i++)); do
    wpid=$(_srv_children "$ppid" | head -n1)
    [[ -n $wpid ]] && { echo "$wpid"; return 0; }
    kill -0 "$ppid" 2>/dev/null || break
    sleep 0.05
  done
  kill -TERM "$ppid" 2>/dev/null || true
  _srv_err "kore started no worker (log: $(cat "$tmp/kore.log"))"
}

# start_corio TMP PORT CPU BUILD [TLS]: BUILD/examples/hello/hello; print its pid.
start_corio() {
  local tmp=$1 port=$2 cpu=$3 build=$4 tls=${5:-0} bin cert key
  local args=(--host 127.0.0.1 --port "$port" --log-level warn)
  bin=$build/examples/hello/hello
  [[ -x $bin ]] || _srv_err "$bin not found; build the tree first" || return
  mkdir -p "$tmp/corio"
  if [[ $tls == 1 ]]; then
    read -r cert key < <(bench_cert "$tmp") && [[ -n $key ]] || return 1
    args+=(--tls-cert "$cert" --tls-key "$key")
  fi
  _srv_launch corio "$tmp" "$cpu" "$(cd "$(dirname "$bin")" && pwd)/hello" "${args[@]}"
}

# _srv_floor NAME TMP PORT CPU BUILD: BUILD/bench/NAME --port PORT; print its pid.
_srv_floor() {
  local name=$1 tmp=$2 port=$3 cpu=$4 build=$5 bin
  bin=$build/bench/$name
  [[ -x $bin ]] || _srv_err "$bin not found; build the tree first" || return
  mkdir -p "$tmp/$name"
  _srv_launch "$name" "$tmp" "$cpu" "$(cd "$(dirname "$bin")" && pwd)/$name" --port "$port"
}

# start_floor_uv TMP PORT CPU BUILD, start_floor_epoll TMP PORT CPU BUILD: the floor servers (no TLS).
start_floor_uv() { _srv_floor floor_uv "$@"; }
start_floor_epoll() { _srv_floor floor_epoll "$@"; }

# servers_available [BUILD]: print, one a line, the servers that can run here: nginx, h2o, kore (its
# binary, headers and a C compiler), and given BUILD, corio, floor_uv and floor_epoll when built.
servers_available() {
  local build=${1:-}
  command -v nginx >/dev/null && echo nginx
  command -v h2o >/dev/null && echo h2o
  command -v kore >/dev/null && command -v cc >/dev/null && [[ -r /usr/include/kore/http.h ]] && echo kore
  if [[ -n $build ]]; then
    [[ -x $build/examples/hello/hello ]] && echo corio
    [[ -x $build/bench/floor_uv ]] && echo floor_uv
    [[ -x $build/bench/floor_epoll ]] && echo floor_epoll
  fi
  return 0
}

# _srv_deb BIN: print "Debian VERSION" for the package that holds BIN, if dpkg knows it.
_srv_deb() {
  local pkg v
  pkg=$(dpkg-query -S "$(readlink -f "$(command -v "$1")")" 2>/dev/null | head -n1) || return 0
  pkg=${pkg%%:*}
  [[ -n $pkg ]] || return 0
  v=$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null) && echo "Debian $pkg $v"
}

# server_version NAME [BUILD]: print a one-line version string of the server NAME.
server_version() {
  local name=$1 build=${2:-} v deb
  case $name in
    nginx)
      v=$(nginx -v 2>&1 | sed 's/^nginx version: //')
      deb=$(_srv_deb nginx)
      echo "$v${deb:+ ($deb)}"
      ;;
    h2o)
      # h2o --version: "h2o version 2.2.5", "OpenSSL: OpenSSL 3.0.19 ...", "mruby: YES"
      v=$(h2o --version 2>&1 | awk '
        NR == 1 { ver = $NF } /^OpenSSL:/ { sub(/^OpenSSL: /, ""); ssl = $0 } /^mruby:/ { mruby = $2 }
        END { printf "h2o/%s (%s, mruby %s", ver, ssl, mruby }')
      deb=$(_srv_deb h2o)
      echo "$v${deb:+, $deb})"
      ;;
    kore)
      # kore -v: "4.1.0 pgsql tasks" (the version, then the features it was built with)
      v=$(kore -v 2>&1 | awk '{ f = ""; for (i = 2; i <= NF; i++) f = f (i > 2 ? " " : "") $i
                               printf "kore/%s (built with: %s", $1, f }')
      deb=$(_srv_deb kore)
      echo "$v${deb:+, $deb})"
      ;;
    corio)
      [[ -x $build/examples/hello/hello ]] || _srv_err "server_version corio: no $build/examples/hello/hello" || return
      "$build/examples/hello/hello" --version 2>&1 | head -n1
      ;;
    floor_uv | floor_epoll)
      # Not run (it might not know --version and serve instead): its path, and libuv's version.
      [[ -x $build/bench/$name ]] || _srv_err "server_version $name: no $build/bench/$name" || return
      v=$name
      if [[ $name == floor_uv ]] && command -v pkg-config >/dev/null; then
        v="$v (libuv $(pkg-config --modversion libuv 2>/dev/null || echo '?'))"
      fi
      echo "$v"
      ;;
    *) _srv_err "server_version: unknown server '$name'" ;;
  esac
}

# server_alive PID: status 0 while PID runs (a zombie, exited but not yet reaped, counts as gone).
server_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != [ZX] ]]
}

# server_cpu_pids PID: print PID and its child processes of the same name (h2o's neverbleed, which
# signs the TLS handshakes), one a line: the processes whose CPU time is the server's.  Other
# children (h2o's perl crash handler) are idle.
server_cpu_pids() {
  local c comm
  echo "$1"
  comm=$(cat "/proc/$1/comm" 2>/dev/null) || return 0
  for c in $(_srv_children "$1"); do
    [[ $(cat "/proc/$c/comm" 2>/dev/null) == "$comm" ]] && echo "$c"
  done
  return 0
}

# server_stop PID: stop the server whose pid a start function printed, and its helper processes (its
# children; Kore's parent): TERM, then KILL after 3 s; bounded.
server_stop() {
  local pid=$1 p i left procs=()
  [[ -n $pid ]] && server_alive "$pid" || return 0
  mapfile -t procs < <(echo "$pid"; _srv_children "$pid")
  p=$(awk '{ sub(/.*\) /, ""); print $2 }' "/proc/$pid/stat" 2>/dev/null || true)
  # Kore's parent: the worker's parent, the same program (not the caller's shell).
  if [[ -n $p && $p != 1 && $p != "$$" && $(cat "/proc/$p/comm" 2>/dev/null) == "$(cat "/proc/$pid/comm" 2>/dev/null)" ]]; then
    procs+=("$p")
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    left=0
    for p in "${procs[@]}"; do server_alive "$p" && left=1; done
    ((left)) || break
    sleep 0.1
  done
  for p in "${procs[@]}"; do
    server_alive "$p" && kill -KILL "$p" 2>/dev/null
  done
  wait "$pid" 2>/dev/null || true
  return 0
}
