# SPDX-License-Identifier: MIT
# corio — thin wrapper around CMake/CTest. The real build lives in CMakeLists.txt.
#
#   make deps        install missing Debian packages (no apt at all when none is missing)
#   make build       Release build in build/
#   make run         run the hello server on 127.0.0.1:8080 (Ctrl-C stops it)
#   make run-todo    the todo API on throwaway PostgreSQL and Redis, on 127.0.0.1:8080
#   make test        ctest on the Release build (JOBS=N: N tests at a time, default nproc)
#   make test-asan   Debug build with ASan+UBSan in build-asan/, then ctest
#   make valgrind    every test binary under valgrind memcheck
#   make valgrind-integration  the HTTP integration scripts with their servers under memcheck
#   make test-ucontext  the tests again on the portable ucontext context switch
#   make bench       micro-benchmarks
#   make bench-compress  gzip's benchmark (bench/compress_bench.sh: corio against nginx's gzip)
#   make bench-ws    the WebSocket benchmark (bench/ws_bench.sh: corio against Node's ws and
#                    uvicorn + websockets; ~5 minutes)
#   make bench-http  the HTTP benchmark (bench/http_bench.py: corio against nginx, h2o, Kore and
#                    the libuv+llhttp and epoll floors; installs its peers, builds build-bench/,
#                    writes bench/results/ and docs/bench.svg; ROUNDS, default 3; ~15 minutes)
#   make soak        hello (plain, TLS), sse and upload under a mixed load for SOAK_SECONDS
#                    (1800); fails on growth, request errors or an unclean stop
#   make install     install into PREFIX (/usr/local), under DESTDIR if given
#   make clean       remove the build directories
#   make format      clang-format the sources
#   make static      clang-tidy + cppcheck over framework/, fails on any finding
#   make fuzz        libFuzzer over every tests/fuzz harness (FUZZ_SECONDS each), in build-fuzz/
#   make fuzz-test   the fuzz regression and a short fuzz: ctest -L fuzz on a clang
#                    CORIO_FUZZ=ON tree in build-fuzz-ci/ (FUZZ_TEST_SECONDS per harness)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

BUILD_DIR := build
ASAN_DIR  := build-asan
JOBS      := $(shell nproc 2>/dev/null || echo 2)

# Debian packages needed to build and test (override to install others: make deps PKGS=...).
PKGS := build-essential cmake pkg-config libuv1-dev libssl-dev libcmocka-dev node-llhttp \
        libjansson-dev valgrind python3 curl clang openssl wrk netcat-openbsd libpq-dev postgresql \
        libhiredis-dev zlib1g-dev python3-websockets node-ws redis-server doxygen yamllint clang-tidy cppcheck libfuzzer-14-dev

# -Werror in CI only; explicit OFF otherwise so a CI run does not stick in the CMake cache.
WERROR := $(if $(filter true,$(CI)),ON,OFF)

VALGRIND := valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=definite --track-fds=no

SOURCE_DIRS := framework include tests examples bench

.PHONY: deps build run run-todo test test-asan test-ucontext valgrind valgrind-integration bench bench-http bench-ws bench-compress clean format \
        static soak

# Install whichever of $(PKGS) is not installed yet; apt-get update only if something is.
deps:
	@missing=""; \
	for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q ' installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all packages installed"; exit 0; fi; \
	echo "deps: installing$$missing"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; \
	else echo "deps: missing$$missing, and not root with no sudo: install them as root" >&2; exit 1; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing

# Configure and build the Release tree in build/.
build: deps
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=Release -DCORIO_WERROR=$(WERROR)
	cmake --build $(BUILD_DIR) -j$(JOBS)

# Run the main demo: the hello HTTP server on 127.0.0.1:8080.
run: build
	./$(BUILD_DIR)/examples/hello/hello --host 127.0.0.1 --port 8080

# examples/todo against a throwaway PostgreSQL and Redis (examples/todo/run.sh).
run-todo: build
	BUILD_DIR=$(BUILD_DIR) examples/todo/run.sh

# Run the test suite on the Release build; print (and log) a one-line summary.
test: build
	@rc=0; ctest --test-dir $(BUILD_DIR) --output-on-failure --no-tests=error -j$(JOBS) \
	  | tee $(BUILD_DIR)/ctest.log || rc=$$?; \
	line=$$(grep -E '^[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' \
	  $(BUILD_DIR)/ctest.log || true); \
	if [ -n "$$line" ]; then \
	  failed=$$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$$line"); \
	  total=$$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$$line"); \
	  skipped=$$(sed -nE 's/^[[:space:]]*[0-9]+ - ([^ ]+) \(Skipped\)$$/\1/p' \
	    $(BUILD_DIR)/ctest.log | sort -u | paste -sd ' ' -); \
	  nskip=$$(wc -w <<<"$$skipped"); \
	  echo "ctest: $$((total - failed - nskip)) passed, $$failed failed" | tee -a $(BUILD_DIR)/ctest.log; \
	  if [ "$$nskip" -gt 0 ]; then \
	    echo "ctest: $$nskip skipped: $$skipped" | tee -a $(BUILD_DIR)/ctest.log; \
	  fi; \
	fi; \
	exit $$rc

# Debug build with AddressSanitizer + UBSan in build-asan/, then the test suite.
test-asan: deps
	cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCORIO_SANITIZE=address,undefined \
	  -DCORIO_WERROR=ON -DCORIO_BUILD_BENCH=OFF
	cmake --build $(ASAN_DIR) -j$(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(ASAN_DIR) --output-on-failure --no-tests=error -j$(JOBS)

# The test suite on the portable ucontext backend (what non-x86-64/aarch64 targets use).
test-ucontext: deps
	cmake -S . -B build-ucontext -DCMAKE_BUILD_TYPE=Release -DCORIO_CORO_BACKEND=ucontext \
	  -DCORIO_WERROR=$(WERROR) -DCORIO_BUILD_BENCH=OFF
	cmake --build build-ucontext -j$(JOBS)
	ctest --test-dir build-ucontext --output-on-failure --no-tests=error -j$(JOBS)

# Every build/tests/test_* binary under valgrind memcheck (logs in build/valgrind/).
# CORIO_TEST_UNDER_VALGRIND=1 makes the tests skip what valgrind cannot run (stack overflow).
valgrind: build
	@mkdir -p $(BUILD_DIR)/valgrind; pass=0; fail=0; \
	for t in $(BUILD_DIR)/tests/test_*; do \
	  [ -f "$$t" ] && [ -x "$$t" ] || continue; \
	  name=$$(basename "$$t"); log=$(CURDIR)/$(BUILD_DIR)/valgrind/$$name.log; \
	  if (cd $(BUILD_DIR)/tests && CORIO_TEST_UNDER_VALGRIND=1 \
	        timeout 900 $(VALGRIND) ./$$name) >"$$log" 2>&1; then \
	    echo "valgrind: PASS $$name"; pass=$$((pass + 1)); \
	  else \
	    echo "valgrind: FAIL $$name (exit $$?), log $$log:"; cat "$$log"; fail=$$((fail + 1)); \
	  fi; \
	done; \
	echo "valgrind: $$pass passed, $$fail failed"; \
	if [ $$((pass + fail)) -eq 0 ]; then echo "valgrind: no test binaries in $(BUILD_DIR)/tests" >&2; exit 1; fi; \
	[ $$fail -eq 0 ]

# The HTTP integration scripts with every server they start under valgrind memcheck
# (--wrap): a valgrind error in a server's output (a definite leak included, found at its
# SIGTERM exit, which must be 0: --error-exitcode) fails its case, and any failure fails the
# target.  Cases that mean nothing under valgrind (load) say SKIP.  Logs in build/valgrind/.
VALGRIND_IT_SCRIPTS := test_http test_http_examples test_http_hostile test_http_static test_proxy \
                       test_techempower test_todo test_admin test_http_smuggling test_hostile_load \
                       test_websocket
valgrind-integration: build
	@mkdir -p $(BUILD_DIR)/valgrind; fail=0; b=$(abspath $(BUILD_DIR)); \
	rest=""; [ -x "$$b/examples/rest/rest" ] && rest="--rest $$b/examples/rest/rest"; \
	for s in $(VALGRIND_IT_SCRIPTS); do \
	  py=python3; \
	  case $$s in \
	    test_http) args="--hello $$b/examples/hello/hello --server $$b/tests/http_test_server";; \
	    test_http_examples) args="$$rest --sse $$b/examples/sse/sse --upload $$b/examples/upload/upload";; \
	    test_http_hostile) args="--hello $$b/examples/hello/hello --server $$b/tests/http_test_server";; \
	    test_http_static) args="--static $$b/examples/static/static";; \
	    test_proxy) args="--proxy $$b/examples/proxy/proxy --hello $$b/examples/hello/hello";; \
	    test_techempower) args="--server $$b/examples/techempower/techempower";; \
	    test_todo) args="--server $$b/examples/todo/todo";; \
	    test_http_smuggling) args="--hello $$b/examples/hello/hello --server $$b/tests/http_test_server --proxy $$b/examples/proxy/proxy";; \
	    test_admin) args="--hello $$b/examples/hello/hello --echo $$b/examples/echo/echo --server $$b/tests/http_test_server";; \
	    test_hostile_load) args="--hello $$b/examples/hello/hello --server $$b/tests/http_test_server --flood $$b/tests/flood_client";; \
	    test_websocket) py=/usr/bin/python3; args="--chat-ws $$b/examples/chat-ws/chat-ws";; \
	  esac; \
	  log=$$b/valgrind/$$s.py.log; \
	  if timeout 900 $$py tests/$$s.py $$args --wrap "$(VALGRIND)" >"$$log" 2>&1; then \
	    echo "valgrind-integration: PASS $$s.py ($$(tail -n 1 "$$log"))"; \
	    grep -E '^ *SKIP' "$$log" | sed "s/^ */valgrind-integration:   $$s.py: /" || true; \
	  else \
	    echo "valgrind-integration: FAIL $$s.py (exit $$?), log $$log:"; cat "$$log"; fail=1; \
	  fi; \
	done; \
	[ $$fail -eq 0 ]

# Install the Release build under $(PREFIX) (default /usr/local), staged under $(DESTDIR)
# when given: libcorio.a, libcorio.so.0.MINOR, include/corio/, lib/cmake/corio/, lib/pkgconfig/corio.pc.
PREFIX ?= /usr/local
.PHONY: install
install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD_DIR) --prefix "$(PREFIX)"

# clang-tidy (.clang-tidy) and cppcheck (.ci/cppcheck-suppressions.txt) over framework/;
# a configure-only tree in build-static/; about 1.5-3 min on 2 CPUs.
static: deps
	JOBS=$(JOBS) STATIC_BUILD_DIR=build-static .ci/static.sh

# Fuzzing with Clang's libFuzzer (tests/fuzz/README.md).  The gcc builds above replay every
# harness's corpus already (ctest test_fuzz_<name>, and make valgrind).
#   make fuzz: tests/fuzz/run.sh over every harness (or the names in FUZZ_ARGS), FUZZ_SECONDS
#     each, one at a time, in build-fuzz/; FUZZ_ARGS="--merge" adds the inputs that bring new
#     coverage to the committed corpora, "--jobs 2" fuzzes with two processes.
#   make fuzz-test (CI): the corpora replayed under libFuzzer, then each harness fuzzed for
#     FUZZ_TEST_SECONDS (ctest -L fuzz; new inputs stay in build-fuzz-ci/).
FUZZ_SECONDS      := 60
FUZZ_ARGS         :=
FUZZ_TEST_SECONDS := 20
FUZZ_CC           := clang-14

.PHONY: fuzz fuzz-test
fuzz: deps
	BUILD_DIR=build-fuzz CC=$(FUZZ_CC) WERROR=$(WERROR) tests/fuzz/run.sh $(FUZZ_ARGS) $(FUZZ_SECONDS)

fuzz-test: deps
	cmake -S . -B build-fuzz-ci -DCMAKE_C_COMPILER=$(FUZZ_CC) -DCMAKE_BUILD_TYPE=Release \
	  -DCORIO_FUZZ=ON -DCORIO_FUZZ_SECONDS=$(FUZZ_TEST_SECONDS) -DCORIO_WERROR=$(WERROR) \
	  -DCORIO_BUILD_TESTS=OFF -DCORIO_BUILD_EXAMPLES=OFF -DCORIO_BUILD_BENCH=OFF -DCORIO_INSTALL=OFF
	cmake --build build-fuzz-ci -j$(JOBS) --target fuzzers
	ctest --test-dir build-fuzz-ci -L fuzz --output-on-failure --no-tests=error -j$(JOBS)

# Micro-benchmarks (built with the project, never run by ctest).
bench: build
	bash bench/run_micro.sh $(BUILD_DIR)

# The HTTP benchmark's peers and tools, installed by bench-http only (not by make deps).
BENCH_PKGS := wrk nginx-light h2o kore gnuplot-nox strace
ROUNDS := 3

bench-http:
	$(MAKE) deps PKGS="$(PKGS) $(BENCH_PKGS)"
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
	cmake --build build-bench -j$(JOBS)
	bash bench/http_bench.sh build-bench $(ROUNDS)

# gzip compression's benchmark (bench/compress_bench.sh): a 10 KiB JSON body, identity and gzip
# levels 1 and 6, corio's compress example against nginx's gzip (~3 minutes).
bench-compress:
	$(MAKE) deps PKGS="$(PKGS) $(BENCH_PKGS)"
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
	cmake --build build-bench -j$(JOBS) --target compress
	bash bench/compress_bench.sh build-bench $(ROUNDS)

# The WebSocket benchmark (bench/ws_bench.sh): corio's chat-ws /echo against Node's ws and
# uvicorn + websockets, 64 connections, closed loop; memory per idle WebSocket (~5 minutes).
bench-ws:
	$(MAKE) deps PKGS="$(PKGS) python3-uvicorn"
	cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
	cmake --build build-bench -j$(JOBS) --target chat-ws ws_load
	bash bench/ws_bench.sh build-bench $(ROUNDS)

# The soak (bench/soak.py): the example servers under a mixed load for SOAK_SECONDS; fails on
# RSS/fd/task growth, any unexpected request failure, counts not back at baseline, or an unclean
# stop.  Writes the samples to $(BUILD_DIR)/soak.csv.
SOAK_SECONDS ?= 1800
soak: build
	python3 bench/soak.py --build $(BUILD_DIR) --seconds $(SOAK_SECONDS) --csv $(BUILD_DIR)/soak.csv

# Remove the build directories.
clean:
	rm -rf $(BUILD_DIR) $(ASAN_DIR) build-ucontext build-fuzz build-fuzz-ci build-bench

# Reformat every C source and header with .clang-format (installs clang-format if needed).
format:
	@command -v clang-format >/dev/null 2>&1 || $(MAKE) --no-print-directory deps PKGS=clang-format
	find $(SOURCE_DIRS) -type f \( -name '*.c' -o -name '*.h' \) -print0 | xargs -0 -r clang-format -i

# The API reference from the headers' contract comments (docs/Doxyfile): build/docs/html.
.PHONY: docs
docs:
	@command -v doxygen >/dev/null 2>&1 || $(MAKE) --no-print-directory deps PKGS=doxygen
	doxygen docs/Doxyfile
	@echo "docs: build/docs/html/index.html"
