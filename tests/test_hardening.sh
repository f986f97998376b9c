#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The hardening flags of cmake/hardening.cmake took effect, checked with
# readelf on the built programs, as checksec would:
#   PIE             the program is ET_DYN with DF_1_PIE (libcorio.so: no TEXTREL)
#   full RELRO      a GNU_RELRO segment and BIND_NOW (DT_FLAGS BIND_NOW or DF_1_NOW)
#   no exec stack   GNU_STACK present and not executable
#   stack protector __stack_chk_fail referenced
#   fortify         some __*_chk function of glibc referenced (besides __stack_chk_fail)
# The objects are corio's own: hello links libcorio.a statically, so what it
# references it references for corio's code (and its own main.c).
#
#   tests/test_hardening.sh --hardening=ON|OFF --config=BUILD_TYPE --hello PATH [--lib PATH]
#
# Exits 77 (skipped) where hardening is not asked for: CORIO_HARDENING off
# (or not defined: a CMakeLists.txt without the include) or a build type
# other than Release and RelWithDebInfo.
set -euo pipefail

hardening="" config="" hello="" lib=""
while [ $# -gt 0 ]; do
    case $1 in
    --hardening=*) hardening=${1#*=} ;;
    --config=*) config=${1#*=} ;;
    --hello) hello=$2; shift ;;
    --lib) lib=$2; shift ;;
    *) echo "test_hardening: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ -n "$hello" ] || { echo "usage: $0 --hardening=ON|OFF --config=TYPE --hello PATH [--lib PATH]" >&2; exit 2; }

case ${hardening^^} in
ON | TRUE | YES | 1) ;;
*) echo "test_hardening: skipped: CORIO_HARDENING is '${hardening}'"; exit 77 ;;
esac
case $config in
Release | RelWithDebInfo) ;;
*) echo "test_hardening: skipped: build type '${config}' is not hardened"; exit 77 ;;
esac
command -v readelf >/dev/null || { echo "test_hardening: skipped: no readelf (binutils)"; exit 77; }

failures=0
check() { # check FILE WHAT CONDITION...
    local file=$1 what=$2
    shift 2
    if "$@"; then
        echo "ok   $(basename "$file"): $what"
    else
        echo "FAIL $(basename "$file"): $what" >&2
        failures=$((failures + 1))
    fi
}

# common FILE: the checks a program and a shared library share.
common() {
    local f=$1 dyn phdr syms
    dyn=$(readelf -dW "$f")
    phdr=$(readelf -lW "$f")
    syms=$(readelf --dyn-syms -W "$f")
    check "$f" "GNU_RELRO segment" grep -q 'GNU_RELRO' <<<"$phdr"
    check "$f" "BIND_NOW (full RELRO)" \
        grep -qE '\(FLAGS\)[[:space:]]+.*BIND_NOW|\(FLAGS_1\)[[:space:]]+Flags:.* NOW' <<<"$dyn"
    check "$f" "GNU_STACK present" grep -q 'GNU_STACK' <<<"$phdr"
    check "$f" "stack not executable" \
        bash -c '! grep -E "GNU_STACK" | grep -qE "RWE|[[:space:]]E[[:space:]]"' <<<"$phdr"
    check "$f" "__stack_chk_fail referenced (stack protector)" \
        grep -qE ' UND __stack_chk_fail(@|$)' <<<"$syms"
    check "$f" "a fortified __*_chk function referenced (_FORTIFY_SOURCE)" \
        bash -c 'grep -E " UND __[a-z0-9_]+_chk(@|$)" | grep -qv __stack_chk_fail' <<<"$syms"
}

[ -f "$hello" ] || { echo "test_hardening: $hello: no such file" >&2; exit 1; }
check "$hello" "ELF type DYN (position-independent executable)" \
    grep -qE 'Type:[[:space:]]+DYN' <<<"$(readelf -hW "$hello")"
check "$hello" "DF_1_PIE" grep -qE '\(FLAGS_1\)[[:space:]]+Flags:.*PIE' <<<"$(readelf -dW "$hello")"
common "$hello"

if [ -n "$lib" ]; then
    [ -f "$lib" ] || { echo "test_hardening: $lib: no such file" >&2; exit 1; }
    check "$lib" "ELF type DYN (shared object)" grep -qE 'Type:[[:space:]]+DYN' <<<"$(readelf -hW "$lib")"
    check "$lib" "no TEXTREL (position-independent code)" \
        bash -c '! grep -q TEXTREL' <<<"$(readelf -dW "$lib")"
    common "$lib"
fi

if [ "$failures" -gt 0 ]; then
    echo "test_hardening: $failures check(s) failed" >&2
    exit 1
fi
echo "test_hardening: all checks passed"
