#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs corio's micro-benchmarks pinned to one CPU and prints their table.
#
#   bench/run_micro.sh [build-dir] [scale]
#
# build-dir defaults to build (configure it Release: the default build type).
# scale multiplies every iteration count (e.g. 0.1 for a quick look).
# CORIO_BENCH_CPU picks the CPU (default: the last one the shell may use).
set -euo pipefail

build=${1:-build}
bin=$build/bench/bench_micro
if [[ ! -x $bin ]]; then
  echo "run_micro: $bin not found; build first: cmake -S . -B $build && cmake --build $build" >&2
  exit 1
fi

type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
if [[ $type != Release ]]; then
  echo "run_micro: warning: $build is a '${type:-?}' build; figures are meant for Release" >&2
fi

cpus=$(taskset -pc $$ | sed 's/.*: //')  # e.g. 0-1 or 0,2
cpu=${CORIO_BENCH_CPU:-$(awk -F'[,-]' '{print $NF}' <<<"$cpus")}
echo "run_micro: $bin, pinned to CPU $cpu ($(uname -m), $(nproc) CPUs online)"
exec taskset -c "$cpu" "$bin" "${@:2}"
