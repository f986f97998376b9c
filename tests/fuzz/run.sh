#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzzes corio's harnesses for a while: tests/fuzz/run.sh [OPTIONS] [SECONDS] [HARNESS...]
# (a number is SECONDS wherever it comes)
#
# Configures and builds a libFuzzer tree (Clang, CORIO_FUZZ=ON, nothing else
# built) in BUILD_DIR (default build-fuzz/ at the repository's root), then
# fuzzes each HARNESS ("url" or "fuzz_url"; default: every tests/fuzz/fuzz_*.c)
# for SECONDS (default 60), one harness after the other, with its dictionary,
# starting from its committed corpus.  New inputs go to
# BUILD_DIR/tests/fuzz/run/<name>/corpus, kept from run to run (a later run
# goes on from there); the committed corpus changes only with --merge.
#
# Options:
#   --merge    afterwards, merge the new inputs that add coverage into the
#              committed corpus tests/fuzz/corpus/<name>/ (libFuzzer -merge=1)
#   --jobs N   N fuzzing processes per harness (libFuzzer -fork=N); default 1,
#              which leaves the second of two CPUs to others
# Environment: BUILD_DIR; CC (for a new tree: clang-14, else clang);
# BUILD_JOBS (build parallelism, default 2); FUZZ_FLAGS (more libFuzzer flags,
# e.g. -use_value_profile=1); WERROR (ON/OFF, default OFF).
#
# Prints per harness the seconds fuzzed, the executions, the corpus (committed
# + new in the run directory) and the findings (crash-, leak-, timeout-, oom-
# files written to BUILD_DIR/tests/fuzz/run/<name>/, whose path is printed;
# replay one with BUILD_DIR/tests/fuzz/fuzz_<name> FILE).  Exits 1 if any
# harness had a finding, 2 on a usage or build error.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
fuzz_src=$root/tests/fuzz
build=$(realpath -m "${BUILD_DIR:-$root/build-fuzz}")
merge=0
jobs=1
seconds=60

usage() {
    sed -n '3,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

harnesses=()
while [ $# -gt 0 ]; do
    case $1 in
    --merge) merge=1 ;;
    --jobs)
        [ $# -ge 2 ] || usage
        jobs=$2
        shift
        ;;
    --jobs=*) jobs=${1#--jobs=} ;;
    -h | --help) usage ;;
    -*) usage ;;
    *)
        if [[ $1 =~ ^[0-9]+$ ]]; then
            seconds=$1
        else
            harnesses+=("${1#fuzz_}")
        fi
        ;;
    esac
    shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || usage
if [ ${#harnesses[@]} -eq 0 ]; then
    for f in "$fuzz_src"/fuzz_*.c; do
        n=$(basename "$f" .c)
        harnesses+=("${n#fuzz_}")
    done
fi
for h in "${harnesses[@]}"; do
    if [ ! -f "$fuzz_src/fuzz_$h.c" ]; then
        echo "run.sh: no harness tests/fuzz/fuzz_$h.c" >&2
        exit 2
    fi
done

# ---- the tree ----------------------------------------------------------------------------
configure=(-DCMAKE_BUILD_TYPE=Release -DCORIO_FUZZ=ON -DCORIO_BUILD_TESTS=OFF
    -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF -DCORIO_INSTALL=OFF
    "-DCORIO_WERROR=${WERROR:-OFF}")
if [ ! -f "$build/CMakeCache.txt" ]; then
    cc=${CC:-$(command -v clang-14 || command -v clang || true)}
    if [ -z "$cc" ]; then
        echo "run.sh: no clang: install the Debian packages clang-14 and libfuzzer-14-dev" >&2
        exit 2
    fi
    configure+=("-DCMAKE_C_COMPILER=$cc")
fi
mkdir -p "$build"
cmake -S "$root" -B "$build" "${configure[@]}" >"$build/run-configure.log" 2>&1 ||
    {
        cat "$build/run-configure.log" >&2
        exit 2
    }
cmake --build "$build" -j"${BUILD_JOBS:-2}" --target fuzzers >"$build/run-build.log" 2>&1 ||
    {
        tail -n 50 "$build/run-build.log" >&2
        exit 2
    }

# ---- fuzzing ------------------------------------------------------------------------------
count_files() {
    if [ -d "$1" ]; then
        find "$1" -maxdepth 1 -type f ! -name '.*' | wc -l
    else
        echo 0
    fi
}

findings_total=0
report=()
for h in "${harnesses[@]}"; do
    bin=$build/tests/fuzz/fuzz_$h
    run=$build/tests/fuzz/run/$h
    committed=$fuzz_src/corpus/$h
    log=$run.log
    mkdir -p "$run/corpus"
    before=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$run/")
    [ -f "$fuzz_src/$h.dict" ] && args+=(-dict="$fuzz_src/$h.dict")
    [ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
    # shellcheck disable=SC2206 # FUZZ_FLAGS is a list of flags
    args+=(${FUZZ_FLAGS:-})
    dirs=("$run/corpus")
    [ -d "$committed" ] && dirs+=("$committed")
    echo "run.sh: fuzzing $h for ${seconds}s (log $log)"
    start=$(date +%s)
    rc=0
    (cd "$run" && "$bin" "${args[@]}" "${dirs[@]}") >"$log" 2>&1 || rc=$?
    took=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    [ -n "$execs" ] || execs=0
    after=$(find "$run" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' \
        -o -name 'timeout-*' -o -name 'oom-*' \) | sort)
    new_findings=$(comm -13 <(echo "$before") <(echo "$after") | sed '/^$/d')
    nfind=$(echo -n "$new_findings" | grep -c . || true)
    if [ "$rc" -ne 0 ] && [ "$nfind" -eq 0 ]; then
        nfind=1 # a failure that left no input behind: the log says what
        new_findings="(exit $rc, no input saved: see $log)"
    fi
    if [ "$nfind" -gt 0 ]; then
        echo "run.sh: $h: finding(s):"
        echo "$new_findings" | sed 's/^/    /'
        grep -E 'ERROR|invariant violated|SUMMARY' "$log" | head -n 5 | sed 's/^/    /' || true
    fi
    merged=""
    if [ "$merge" -eq 1 ]; then
        mkdir -p "$committed"
        n0=$(count_files "$committed")
        "$bin" -merge=1 -timeout=10 -rss_limit_mb=2048 "$committed" "$run/corpus" \
            >"$run.merge.log" 2>&1 || {
            echo "run.sh: $h: merge failed (log $run.merge.log)" >&2
            nfind=$((nfind + 1))
        }
        merged=" +$(($(count_files "$committed") - n0)) merged"
    fi
    findings_total=$((findings_total + nfind))
    report+=("$(printf '%-22s %7s %12s %9s %9s %8s%s' "$h" "$took" "$execs" \
        "$(count_files "$committed")" "$(count_files "$run/corpus")" "$nfind" "$merged")")
done

echo
printf '%-22s %7s %12s %9s %9s %8s\n' harness seconds execs committed new findings
printf '%s\n' "${report[@]}"
[ "$findings_total" -eq 0 ]
