#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install and consume: `cmake --install` of the current build tree into a temp
# prefix, then examples/out-of-tree built against it four ways, each binary run
# on 127.0.0.1 port 0 and asked for / with curl:
#   1. CMake, find_package(corio CONFIG): corio::corio, the shared library
#   2. CMake with -DCORIO_USE_STATIC_LIBS=ON: libcorio.a
#   3. cc main.c $(pkg-config --cflags --libs corio): the shared library, found
#      through LD_LIBRARY_PATH (ldd must resolve libcorio.so.0.MINOR in the prefix)
#   4. pkg-config --static: libcorio.a (-l:libcorio.a) with Libs.private and
#      Requires.private
# and before that, what was installed: libcorio.a, libcorio.so -> .so.0.MINOR ->
# .so.<version> with SONAME libcorio.so.0.MINOR (before 1.0), the headers, the CMake package,
# corio.pc, and the symbols libcorio.so exports (the public API only); and a
# DESTDIR install (staged under DESTDIR, corio.pc naming the real prefix).
#
#   tests/test_install.sh --src DIR --build DIR [--cmake CMAKE] [--cc CC]
#                         [--features "postgresql redis"]
#
# --features: the optional clients the build has (the server's answer names
# them: CORIO_HAVE_PG / CORIO_HAVE_REDIS must reach the consumer).  A build
# with CORIO_SANITIZE works as it is: its CMake package and corio.pc add
# -fsanitize=... to the consumer's link.  Exits 77 (skipped) without curl or
# pkg-config.  Every step has a deadline; the temp dir and any server started
# are gone at exit, failure or not.
set -euo pipefail

src="" build="" cmake=cmake cc=cc features=""
while (($#)); do
  case $1 in
    --src) src=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --cmake) cmake=$2; shift 2 ;;
    --cc) cc=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    *) echo "test_install: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ -n $src && -n $build ]] || { echo "usage: test_install.sh --src DIR --build DIR ..." >&2; exit 2; }
src=$(cd "$src" && pwd)
build=$(cd "$build" && pwd)

for tool in curl pkg-config readelf nm ldd; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "test_install: SKIP: $tool not found"
    exit 77
  fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corio-install.XXXXXX")
server_pid=""
cleanup() {
  if [[ -n $server_pid ]]; then kill -KILL "$server_pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "test_install: FAIL: $*" >&2
  exit 1
}
ok() { echo "test_install: ok: $*"; }

# run LOG CMD...: CMD with a deadline, its output in LOG, shown on failure.
run() {
  local log=$1
  shift
  timeout 300 "$@" >"$log" 2>&1 || { tail -n 40 "$log" >&2; fail "$* (exit $?)"; }
}

version=$(sed -nE 's/^#define CORIO_VERSION_STRING "([^"]*)".*/\1/p' "$src/include/corio/corio.h")
major=${version%%.*}
# the SONAME's number (CMakeLists.txt): the major version, major.minor before 1.0
if [[ $major == 0 ]]; then
  major=$(cut -d. -f1,2 <<<"$version")
fi
[[ -n $version ]] || fail "no CORIO_VERSION_STRING in include/corio/corio.h"

# ---- install -------------------------------------------------------------------------
prefix=$tmp/prefix
run "$tmp/install.log" "$cmake" --install "$build" --prefix "$prefix"
lib=$prefix/lib
for f in lib/libcorio.a lib/libcorio.so "lib/libcorio.so.$major" "lib/libcorio.so.$version" \
         include/corio/corio.h include/corio/http.h lib/cmake/corio/corioConfig.cmake \
         lib/cmake/corio/corioConfigVersion.cmake lib/cmake/corio/corioTargets.cmake \
         lib/pkgconfig/corio.pc; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done
[[ $(readlink "$lib/libcorio.so") == "libcorio.so.$major" ]] || fail "libcorio.so does not link to .so.$major"
[[ $(readlink "$lib/libcorio.so.$major") == "libcorio.so.$version" ]] ||
  fail "libcorio.so.$major does not link to .so.$version"
soname=$(readelf -d "$lib/libcorio.so.$version" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
[[ $soname == "libcorio.so.$major" ]] || fail "SONAME is '$soname', not libcorio.so.$major"
if [[ -d $prefix/include/llhttp || -n $(find "$prefix" -name '*llhttp*') ]]; then
  fail "llhttp installed: it belongs inside libcorio"
fi
ok "installed $version: libcorio.a, libcorio.so -> .so.$major -> .so.$version (SONAME $soname), headers, package, corio.pc"

# The shared library exports the public API and the two helpers CORIO_WITH
# expands to: no corio__ internals, no llhttp.
exported=$(nm -D --defined-only "$lib/libcorio.so.$version" | awk '{print $3}')
extra=$(grep -vE '^corio_[a-z0-9]|^corio__scope_(enter|leave)$' <<<"$exported" || true)
[[ -z $extra ]] || fail "libcorio.so exports more than the API: $(head -n 5 <<<"$extra" | paste -sd ' ')"
grep -qx corio_http_app_main <<<"$exported" || fail "libcorio.so does not export corio_http_app_main"
ok "libcorio.so exports $(wc -l <<<"$exported") symbols, the public API only"

# A DESTDIR install: everything under DESTDIR, corio.pc naming the real prefix.
DESTDIR=$tmp/stage run "$tmp/install-destdir.log" "$cmake" --install "$build" --prefix /opt/corio
[[ -e $tmp/stage/opt/corio/lib/libcorio.so.$version && -e $tmp/stage/opt/corio/include/corio/corio.h ]] ||
  fail "DESTDIR install: files not under DESTDIR/opt/corio"
grep -qx 'prefix=/opt/corio' "$tmp/stage/opt/corio/lib/pkgconfig/corio.pc" ||
  fail "DESTDIR install: corio.pc's prefix is not /opt/corio"
ok "DESTDIR install staged under DESTDIR, corio.pc prefix=/opt/corio"

# ---- the consumer, four ways -----------------------------------------------------------
# serve NAME BIN [ENV...]: runs BIN --host 127.0.0.1 --port 0, reads its port
# from its "listening on" line, asks for / with curl, checks the answer, stops
# it with SIGTERM (exit 0, no sanitizer report).
serve() {
  local name=$1 bin=$2
  shift 2
  local log=$tmp/$name.server.log port="" body rc
  env "$@" "$bin" --host 127.0.0.1 --port 0 2>"$log" >&2 &
  server_pid=$!
  for _ in $(seq 100); do
    port=$(sed -nE 's/.*listening on 127\.0\.0\.1:([0-9]+).*/\1/p' "$log" | head -n 1)
    [[ -n $port ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $port ]] || { cat "$log" >&2; fail "$name: no 'listening on 127.0.0.1:PORT' line"; }
  body=$(curl -sS --max-time 10 "http://127.0.0.1:$port/") || { cat "$log" >&2; fail "$name: curl failed"; }
  local want="Hello from outside corio's tree (corio $version:${features:+ $features})"
  [[ $body == "$want" ]] || fail "$name: answered '$body', not '$want'"
  kill -TERM "$server_pid"
  rc=0
  for _ in $(seq 100); do
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2>/dev/null; then
    cat "$log" >&2
    fail "$name: still running 10 s after SIGTERM"
  fi
  wait "$server_pid" || rc=$?
  server_pid=""
  [[ $rc -eq 0 ]] || { cat "$log" >&2; fail "$name: exit $rc after SIGTERM"; }
  if grep -qE 'Sanitizer|runtime error' "$log"; then
    cat "$log" >&2
    fail "$name: sanitizer report"
  fi
  ok "$name: port $port answered '$body', exit 0 on SIGTERM"
}

# links_corio BIN: the path libcorio.so.N resolves to in ldd's output ("" if none).
links_corio() {
  env "${@:2}" ldd "$1" | sed -nE "s/^[[:space:]]*libcorio\.so\.$major => ([^ ]+) .*/\1/p"
}

oot=$src/examples/out-of-tree

# 1. and 2. CMake.
for kind in shared static; do
  args=()
  [[ $kind == static ]] && args=(-DCORIO_USE_STATIC_LIBS=ON)
  run "$tmp/cmake-$kind.log" "$cmake" -S "$oot" -B "$tmp/cmake-$kind" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release "${args[@]}"
  run "$tmp/cmake-$kind-build.log" "$cmake" --build "$tmp/cmake-$kind"
  bin=$tmp/cmake-$kind/out-of-tree
  got=$(links_corio "$bin")
  if [[ $kind == shared ]]; then
    [[ $got == "$lib/libcorio.so.$major" ]] || fail "cmake-shared: libcorio resolves to '$got'"
  else
    [[ -z $got ]] || fail "cmake-static: linked to a shared libcorio ($got)"
  fi
  serve "cmake-$kind" "$bin"
done

# 3. and 4. pkg-config.
export PKG_CONFIG_PATH=$lib/pkgconfig
[[ $(pkg-config --modversion corio) == "$version" ]] || fail "pkg-config --modversion corio is not $version"
read -ra cflags <<<"$(pkg-config --cflags corio)"
read -ra libs <<<"$(pkg-config --libs corio)"
run "$tmp/pc-shared.log" "$cc" "$oot/main.c" "${cflags[@]}" "${libs[@]}" -o "$tmp/pc-shared"
got=$(links_corio "$tmp/pc-shared" LD_LIBRARY_PATH="$lib")
[[ $got == "$lib/libcorio.so.$major" ]] ||
  fail "pc-shared: libcorio.so.$major resolves to '$got', not the prefix's (LD_LIBRARY_PATH=$lib)"
serve pc-shared "$tmp/pc-shared" LD_LIBRARY_PATH="$lib"

read -ra libs <<<"$(pkg-config --static --libs corio)"
libs=("${libs[@]/#-lcorio/-l:libcorio.a}")
run "$tmp/pc-static.log" "$cc" "$oot/main.c" "${cflags[@]}" "${libs[@]}" -o "$tmp/pc-static"
[[ -z $(links_corio "$tmp/pc-static" LD_LIBRARY_PATH="$lib") ]] || fail "pc-static: linked to a shared libcorio"
serve pc-static "$tmp/pc-static"

echo "test_install: all passed"
