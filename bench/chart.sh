#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Draws the README's bench chart (docs/bench.svg) from a results table
# (default bench/results/http_cpu.dat, which bench/http_bench.py writes: CPU
# microseconds per request, one row per workload, one column per server,
# "?" where a server cannot do the workload), with gnuplot (Debian
# gnuplot-nox).
#
#   bench/chart.sh [DATA] [OUT.svg]
#
# The columns are named by the data's header line (the last comment line
# that reads "# workload NAME..."); every column with at least one figure is
# drawn, in the file's order, each server in a colour of its own (corio,
# floor_uv, floor_epoll, nginx, h2o, Kore; any other name in olive).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
data=${1:-$here/results/http_cpu.dat}
out=${2:-$here/../docs/bench.svg}
command -v gnuplot >/dev/null || { echo "chart.sh: no gnuplot (Debian package gnuplot-nox)" >&2; exit 1; }
[[ -r $data ]] || { echo "chart.sh: no data file $data" >&2; exit 1; }

header=$(grep -E '^#[[:space:]]*workload[[:space:]]' "$data" | tail -n1 || true)
[[ -n $header ]] || { echo "chart.sh: $data has no '# workload NAME...' header line" >&2; exit 1; }
read -r -a names <<<"${header#*workload}"
((${#names[@]})) || { echo "chart.sh: $data names no columns" >&2; exit 1; }

plot=()
for ((i = 0; i < ${#names[@]}; i++)); do
  col=$((i + 2))
  # Skip a column without a single figure (gnuplot cannot draw an empty series).
  awk -v c="$col" '!/^#/ && NF >= c && $c != "?" { found = 1 } END { exit !found }' "$data" || continue
  case ${names[i]} in
    corio) title=corio color='#1f77b4' ;;
    floor_uv) title='libuv + llhttp' color='#8c564b' ;;
    floor_epoll) title='epoll floor' color='#7f7f7f' ;;
    nginx) title=nginx color='#2ca02c' ;;
    h2o) title=h2o color='#ff7f0e' ;;
    kore | Kore) title=Kore color='#9467bd' ;;
    *) title=${names[i]} color='#bcbd22' ;;
  esac
  if ((${#plot[@]} == 0)); then
    plot+=("\"$data\" using $col:xtic(1) title \"$title\" lc rgb \"$color\"")
  else
    plot+=("\"\" using $col title \"$title\" lc rgb \"$color\"")
  fi
done
((${#plot[@]})) || { echo "chart.sh: no figures in $data" >&2; exit 1; }
plot_cmd=$(printf '%s, \\\n     ' "${plot[@]}")
plot_cmd=${plot_cmd%, \\$'\n'     }

gnuplot <<GP
set terminal svg size 840,360 dynamic font "sans,12" background rgb "white"
set output "$out"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
set ylabel "CPU µs per request (lower is better)"
set title "One worker, 256 connections (bench/http_bench.py)"
set key outside right top
set termoption noenhanced
set yrange [0:*]
plot $plot_cmd
GP
echo "chart.sh: $out"
