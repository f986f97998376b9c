#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# HTTP benchmark: corio (examples/hello) against its floors (libuv + llhttp,
# raw epoll) and its peers (nginx, h2o, Kore), on 127.0.0.1 only.  A thin
# wrapper kept for the old command line: the benchmark is bench/http_bench.py
# (its header comment says what it runs and how to read the results).
#
#   bench/http_bench.sh [build-dir] [rounds] [http_bench.py options...]
#
# build-dir defaults to build and must hold a Release build (this script
# builds nothing): cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake
# --build build.  rounds defaults to 3.  CORIO_BENCH_DURATION (e.g. 5s, the
# seconds per run) is passed on as --duration; CORIO_BENCH_SERVER_CPU and
# CORIO_BENCH_CLIENT_CPU are read by the Python script itself.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${1:-build}
(($# > 0)) && shift
args=("$build")
if [[ ${1:-} =~ ^[0-9]+$ ]]; then
  args+=(--rounds "$1")
  shift
fi
if [[ -n ${CORIO_BENCH_DURATION:-} ]]; then
  [[ $CORIO_BENCH_DURATION =~ ^([0-9]+)s?$ ]] ||
    { echo "http_bench: CORIO_BENCH_DURATION must be seconds, like 5s, not '$CORIO_BENCH_DURATION'" >&2; exit 1; }
  args+=(--duration "${BASH_REMATCH[1]}")
fi
exec python3 "$here/http_bench.py" "${args[@]}" "$@"
