#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Draws the README's bench chart (docs/bench.svg) from a results table
# (default bench/results/http_cpu.dat: CPU microseconds per request, one
# row per workload, one column per server, "?" where a server cannot do the
# workload), with gnuplot (Debian gnuplot-nox).
#
#   bench/chart.sh [DATA] [OUT.svg]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data=${1:-$here/results/http_cpu.dat}
out=${2:-$here/../docs/bench.svg}
command -v gnuplot >/dev/null || { echo "chart.sh: no gnuplot (Debian package gnuplot-nox)" >&2; exit 1; }
[[ -r $data ]] || { echo "chart.sh: no data file $data" >&2; exit 1; }
gnuplot <<GP
set terminal svg size 720,360 dynamic font "sans,12" background rgb "white"
set output "$out"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set ylabel "CPU µs per request (lower is better)"
set title "One worker, 256 connections (bench/http_bench.sh)"
set key top right
set termoption noenhanced
set yrange [0:*]
plot "$data" using 2:xtic(1) title "corio" lc rgb "#1f77b4", \
     "" using 3 title "nginx" lc rgb "#2ca02c", \
     "" using 4 title "h2o" lc rgb "#ff7f0e", \
     "" using 5 title "Kore" lc rgb "#9467bd"
GP
echo "chart.sh: $out"
