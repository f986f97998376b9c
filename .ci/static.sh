#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Static analysis of the library (framework/): clang-tidy 14 with the checks
# of .clang-tidy, then cppcheck 2.10 with .ci/cppcheck-suppressions.txt.
# Fails on any finding of either.  The compile database comes from a
# configure-only CMake tree (nothing is built): STATIC_BUILD_DIR, default
# build-static/.  JOBS=N runs N clang-tidy processes (default nproc).
# About 2 minutes on 2 CPUs, nearly all of it clang-tidy's analyzer.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
dir=${STATIC_BUILD_DIR:-build-static}
case $dir in /*) ;; *) dir=$root/$dir ;; esac # cppcheck finds no file through a relative --project
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
tidy=${CLANG_TIDY:-$(command -v clang-tidy-14 || command -v clang-tidy || true)}
cppcheck=${CPPCHECK:-$(command -v cppcheck || true)}
[ -n "$tidy" ] || { echo "static: clang-tidy not found (Debian: clang-tidy-14)" >&2; exit 1; }
[ -n "$cppcheck" ] || { echo "static: cppcheck not found (Debian: cppcheck)" >&2; exit 1; }

# Configure only: the library's compile commands, as the Release build
# compiles them (with libpq and hiredis where installed, so their clients
# are checked too).
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
    -DCORIO_BUILD_TESTS=OFF -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF >"$dir.cmake.log" 2>&1 ||
    { cat "$dir.cmake.log" >&2; exit 1; }
rm -f "$dir.cmake.log"
db=$dir/compile_commands.json
mapfile -t files < <(python3 - "$db" "$root/framework/" <<'EOF'
import json, sys
db, prefix = sys.argv[1], sys.argv[2]
for f in sorted({e["file"] for e in json.load(open(db))}):
    if f.startswith(prefix) and f.endswith(".c"):
        print(f)
EOF
)
[ ${#files[@]} -gt 0 ] || { echo "static: no framework/*.c in $db" >&2; exit 1; }

fail=0
start=$(date +%s)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One clang-tidy per file, JOBS at a time; -quiet drops the "N warnings
# suppressed" chatter, so every line left is a finding or its context.
printf '%s\n' "${files[@]}" |
    xargs -P "$jobs" -n 1 "$tidy" -p "$dir" --quiet --use-color=false >"$out" 2>&1 || fail=1
grep -vE '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$|^Suppressed [0-9]+ warnings' "$out" |
    grep -vE '^Use -header-filter|^$' >"$out.f" || true
mv "$out.f" "$out"
n=$(grep -cE '(warning|error): .*\[[^]]+\]$' "$out" || true)
if [ "$n" -gt 0 ] || [ -s "$out" ]; then
    cat "$out"
    echo "static: clang-tidy: $n finding(s) in ${#files[@]} files" >&2
    fail=1
else
    echo "static: clang-tidy: ${#files[@]} files clean ($(($(date +%s) - start))s)"
fi

# cppcheck on the same translation units.  The configuration is the one
# built: the architecture macro the compile commands leave to the compiler
# (framework/coro/ctx_asm.c has an #error for others).
start=$(date +%s)
arch=$(uname -m)
if ! "$cppcheck" --project="$db" --file-filter="$root/framework/*" -j "$jobs" --quiet \
    --enable=warning,style,performance,portability --std=c11 --library=posix \
    --platform=unix64 "-D__${arch}__" --inline-suppr \
    --suppressions-list=.ci/cppcheck-suppressions.txt --error-exitcode=1 \
    --template='{file}:{line}:{column}: {severity}: {message} [{id}]' >"$out" 2>&1; then
    fail=1
fi
if [ -s "$out" ]; then
    cat "$out"
    echo "static: cppcheck: $(grep -c '\[[A-Za-z0-9_]*\]$' "$out" || true) finding(s)" >&2
    fail=1
else
    echo "static: cppcheck: clean ($(($(date +%s) - start))s)"
fi
exit $fail
