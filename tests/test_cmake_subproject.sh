#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# corio as a subproject: a parent project that does add_subdirectory(corio)
# keeps its own Release flags, and a target of its own linking corio::corio
# builds.  And corio on its own still gets its defaults (Release, -O2 -g).
#
#   tests/test_cmake_subproject.sh CORIO_SOURCE_DIR [CMAKE] [C_COMPILER]
#
# Three throwaway build trees in a temp dir (removed at exit):
#   1. the parent, configured with -DCMAKE_C_FLAGS_RELEASE="-O1 -DNDEBUG
#      -DPARENT_FLAGS_KEPT", builds its program (and with it the corio
#      library; corio's tests, examples and benchmarks off); the program
#      #errors when either define is missing, and it runs.  Its cache must
#      still hold the parent's flags.
#   2. the parent configured with CMake's default flags: its cache must still
#      hold -DNDEBUG (configure only).
#   3. corio alone, configure only: Release, CMAKE_C_FLAGS_RELEASE "-O2 -g".
set -euo pipefail

src=${1:?usage: test_cmake_subproject.sh CORIO_SOURCE_DIR [CMAKE] [C_COMPILER]}
cmake=${2:-cmake}
cc=${3:-cc}
src=$(cd "$src" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/corio-subproject.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
  echo "test_cmake_subproject: FAIL: $*" >&2
  exit 1
}

# cache_value BUILD VAR: the value of VAR in BUILD/CMakeCache.txt.
cache_value() {
  sed -n "s/^$2:[A-Z]*=//p" "$1/CMakeCache.txt"
}

mkdir -p "$tmp/parent"
cat >"$tmp/parent/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.18)
project(parent C)
# corio's tests, examples and benchmarks are off by default under a parent:
# nothing set here, and the build below checks that none was configured.
add_subdirectory("$src" corio)
add_executable(app main.c)
target_link_libraries(app PRIVATE corio::corio)
message(STATUS "parent: CMAKE_C_FLAGS_RELEASE=\${CMAKE_C_FLAGS_RELEASE}")
EOF
cat >"$tmp/parent/main.c" <<'EOF'
#ifndef NDEBUG
#error "the parent's -DNDEBUG was dropped from CMAKE_C_FLAGS_RELEASE"
#endif
#ifndef PARENT_FLAGS_KEPT
#error "the parent's CMAKE_C_FLAGS_RELEASE was replaced"
#endif
#include <corio/corio.h>

static int amain(void *arg) {
    (void)arg;
    return corio_sleep(1);
}

int main(void) {
    return corio_run(amain, NULL) < 0;
}
EOF

# 1. The parent's own flags, on its command line.
flags="-O1 -DNDEBUG -DPARENT_FLAGS_KEPT"
echo "test_cmake_subproject: parent with CMAKE_C_FLAGS_RELEASE=\"$flags\""
"$cmake" -S "$tmp/parent" -B "$tmp/b1" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
  "-DCMAKE_C_FLAGS_RELEASE=$flags" >"$tmp/b1.log" 2>&1 ||
  { cat "$tmp/b1.log"; fail "the parent does not configure"; }
for opt in CORIO_BUILD_TESTS CORIO_BUILD_EXAMPLES CORIO_BUILD_BENCH; do
  [ "$(cache_value "$tmp/b1" "$opt")" = OFF ] || fail "$opt is not OFF under a parent"
done
[ ! -e "$tmp/b1/corio/tests" ] || fail "corio's tests were configured under a parent"
got=$(cache_value "$tmp/b1" CMAKE_C_FLAGS_RELEASE)
[[ $got == "$flags" ]] || fail "parent's cached CMAKE_C_FLAGS_RELEASE is '$got', not '$flags'"
grep -qF "parent: CMAKE_C_FLAGS_RELEASE=$flags" "$tmp/b1.log" ||
  { cat "$tmp/b1.log"; fail "parent's CMAKE_C_FLAGS_RELEASE changed after add_subdirectory"; }
"$cmake" --build "$tmp/b1" --target app -j2 >"$tmp/b1-build.log" 2>&1 ||
  { tail -n 40 "$tmp/b1-build.log"; fail "the parent's program (linking corio::corio) does not build"; }
"$tmp/b1/app" || fail "the parent's program exits $?"
echo "test_cmake_subproject: ok: flags kept, app built with corio::corio and ran"

# 2. CMake's default Release flags (-O3 -DNDEBUG) in the parent, configure only.
"$cmake" -S "$tmp/parent" -B "$tmp/b2" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=Release \
  >"$tmp/b2.log" 2>&1 || { cat "$tmp/b2.log"; fail "the parent does not configure (defaults)"; }
got=$(cache_value "$tmp/b2" CMAKE_C_FLAGS_RELEASE)
[[ " $got " == *" -DNDEBUG "* ]] || fail "parent's default CMAKE_C_FLAGS_RELEASE is '$got': -DNDEBUG lost"
echo "test_cmake_subproject: ok: default parent flags kept ($got)"

# 3. corio on its own keeps its defaults.
"$cmake" -S "$src" -B "$tmp/b3" -DCMAKE_C_COMPILER="$cc" -DCORIO_BUILD_TESTS=OFF \
  -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF >"$tmp/b3.log" 2>&1 ||
  { cat "$tmp/b3.log"; fail "corio alone does not configure"; }
got=$(cache_value "$tmp/b3" CMAKE_C_FLAGS_RELEASE)
[[ $got == "-O2 -g" ]] || fail "corio alone: CMAKE_C_FLAGS_RELEASE is '$got', not '-O2 -g'"
got=$(cache_value "$tmp/b3" CMAKE_BUILD_TYPE)
[[ $got == Release ]] || fail "corio alone: CMAKE_BUILD_TYPE is '$got', not Release"
echo "test_cmake_subproject: ok: corio alone is Release with -O2 -g"
