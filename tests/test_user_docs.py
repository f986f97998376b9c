#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""What README.md tells a new user to run works, and make test honours JOBS.

    tests/test_user_docs.py --build BUILD_DIR [--source SOURCE_DIR]

- Dependencies: every package of the Makefile's PKGS (what `make deps`
  installs) is named, and the ones only the tests need are in the item that
  says "tests only".
- The certificate: README's `openssl req -x509 ...` command, run in a temp
  dir, makes the files README's `--tls-cert`/`--tls-key` name, and
  examples/hello serves TLS with them to a client that trusts cert.pem.
- The bench: README's cmake command configures the build tree that
  bench/http_bench.sh is then given.
- wrk: README's plain and pipelined wrk commands, run for 1 s against
  examples/hello; the pipelined one (bench/pipeline.lua), with no
  CORIO_BENCH_WRK_CONNS in its environment, prints its batch_latency_us line.
- `make -n test JOBS=7` runs ctest with -j7.
"""
import argparse
import os
import re
import shlex
import socket
import ssl
import subprocess
import sys
import tempfile
import time

TESTS_ONLY = ["libcmocka-dev", "python3", "clang", "postgresql", "redis-server"]
failures = []


def check(cond, msg):
    print(("  ok   " if cond else "  FAIL ") + msg)
    if not cond:
        failures.append(msg)
    return cond


def section(readme, title):
    """The text of the section whose heading is `title`, up to the next heading
    of the same or a higher level."""
    m = re.search(rf"^(#+) {re.escape(title)}\n", readme, re.M)
    if not m:
        return ""
    level = len(m.group(1))
    end = re.compile(rf"^#{{1,{level}}} ", re.M).search(readme, m.end())
    return readme[m.end():end.start() if end else len(readme)]


def shell_lines(text):
    """Commands of the ```sh blocks in text, continuation lines joined, comments cut."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#\s.*$", "", line).strip()
            if line:
                cmds.append(line)
    return cmds


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv):
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = int(argv[argv.index("--port") + 1])
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return p
        except OSError:
            if p.poll() is not None:
                break
            time.sleep(0.05)
    p.kill()
    p.wait()
    return None


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def make_pkgs(source):
    text = open(os.path.join(source, "Makefile")).read().replace("\\\n", " ")
    m = re.search(r"^PKGS\s*:?=(.*)$", text, re.M)
    return m.group(1).split() if m else []


def check_dependencies(readme, source):
    deps = section(readme, "Dependencies")
    pkgs = make_pkgs(source)
    check(pkgs, f"the Makefile's PKGS: {len(pkgs)} packages")
    missing = [p for p in pkgs if f"`{p}`" not in deps]
    check(not missing, f"README's Dependencies names every package make deps installs (missing {missing})")
    items = re.split(r"\n- ", deps)
    tests_item = next((i for i in items if re.search(r"tests only", i, re.I)), "")
    check(tests_item, "README's Dependencies has an item for the tests only")
    not_there = [p for p in TESTS_ONLY if p in pkgs and f"`{p}`" not in tests_item]
    check(not not_there, f"the tests-only item names {TESTS_ONLY} (missing {not_there})")


def check_certificate(readme, build):
    cmds = shell_lines(readme)
    req = [c for c in cmds if c.startswith("openssl req") and "-x509" in c]
    if not check(req, "README gives an `openssl req -x509` command for a self-signed certificate"):
        return
    flags = re.search(r"--tls-cert (\S+) --tls-key (\S+)", readme)
    if not check(flags, "README passes --tls-cert FILE --tls-key FILE"):
        return
    cert, key = flags.group(1), flags.group(2)
    with tempfile.TemporaryDirectory() as d:
        r = subprocess.run(req[0], shell=True, cwd=d, capture_output=True, text=True, timeout=60)
        made = r.returncode == 0 and os.path.exists(os.path.join(d, cert)) and os.path.exists(
            os.path.join(d, key))
        if not check(made, f"README's openssl command makes {cert} and {key} ({r.stderr.strip()[-200:]})"):
            return
        port = free_port()
        p = start([os.path.join(build, "examples/hello/hello"), "--host", "127.0.0.1", "--port",
                   str(port), "--tls-cert", os.path.join(d, cert), "--tls-key", os.path.join(d, key)])
        if not check(p, "examples/hello starts with that certificate"):
            return
        try:
            ctx = ssl.create_default_context(cafile=os.path.join(d, cert))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s, \
                    ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                got = b""
                while chunk := t.recv(4096):
                    got += chunk
            check(got.startswith(b"HTTP/1.1 200") and got.endswith(b"Hello, World!"),
                  "https://localhost/plaintext verified against cert.pem answers 200")
        except (OSError, ssl.SSLError) as e:
            check(False, f"a TLS client trusting {cert} cannot talk to hello: {e}")
        finally:
            stop(p)


def check_bench_build(readme):
    meas = section(readme, "Measuring it")
    cmds = shell_lines(meas)
    conf = [re.search(r"cmake -S \. -B (\S+) .*-DCMAKE_BUILD_TYPE=Release.*cmake --build (\S+)", c)
            for c in cmds]
    conf = [m for m in conf if m and m.group(1) == m.group(2)]
    run = [re.search(r"bench/http_bench\.sh (\S+)", c) for c in cmds]
    run = [m.group(1) for m in run if m]
    check(conf and run and run[0] == conf[0].group(1),
          "README's Measuring section builds (cmake -S . -B DIR Release, cmake --build DIR) "
          "the tree it gives bench/http_bench.sh")


def wrk_argv(cmd, port):
    """README's wrk command, without taskset, for 1 s against our port."""
    argv = shlex.split(cmd)
    argv = argv[argv.index("wrk"):]
    argv = [re.sub(r"^-d\S+$", "-d1s", a) for a in argv]
    argv = [re.sub(r"^http://127\.0\.0\.1:\d+", f"http://127.0.0.1:{port}", a) for a in argv]
    return argv


def check_wrk(readme, build, source):
    meas = section(readme, "Measuring it")
    cmds = [c for c in shell_lines(meas) if re.search(r"(^|\s)wrk\s", c)]
    plain = [c for c in cmds if " -s " not in c]
    piped = [c for c in cmds if "-s bench/pipeline.lua" in c]
    check(plain and piped, "README shows wrk plain and pipelined with bench/pipeline.lua")
    if subprocess.run(["sh", "-c", "command -v wrk"], capture_output=True).returncode != 0:
        print("  skip wrk is not installed: the commands are not run")
        return
    port = free_port()
    p = start([os.path.join(build, "examples/hello/hello"), "--host", "127.0.0.1", "--port",
               str(port)])
    if not check(p, "examples/hello starts"):
        return
    env = {k: v for k, v in os.environ.items() if k != "CORIO_BENCH_WRK_CONNS"}
    try:
        for cmd, what in ([(plain[0], "plain")] if plain else []) + \
                         ([(piped[0], "pipelined")] if piped else []):
            argv = wrk_argv(cmd, port)
            r = subprocess.run(argv, cwd=source, env=env, capture_output=True, text=True,
                               timeout=60)
            ok = r.returncode == 0 and "Requests/sec" in r.stdout
            if what == "pipelined":
                ok = ok and re.search(r"^batch_latency_us p50 \d+ p90 \d+ p99 \d+ max \d+ "
                                      r"samples [1-9]\d*$", r.stdout, re.M)
            check(ok, f"README's {what} wrk command ({' '.join(argv)}) "
                  + ("prints batch_latency_us" if what == "pipelined" else "runs")
                  + ("" if ok else f":\n{r.stdout}{r.stderr}"))
    finally:
        stop(p)


def check_make_jobs(source):
    for target in ("test", "test-asan", "test-ucontext"):
        r = subprocess.run(["make", "-n", "-C", source, target, "JOBS=7"], capture_output=True,
                           text=True, timeout=60)
        ctest = [l for l in r.stdout.splitlines() if "ctest --test-dir" in l]
        check(ctest and re.search(r"\s-j7(\s|$)", ctest[0]),
              f"make {target} JOBS=7 runs ctest -j7 "
              f"({ctest[0].strip() if ctest else r.stderr.strip()})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()
    build, source = os.path.abspath(a.build), os.path.abspath(a.source)
    readme = open(os.path.join(source, "README.md")).read()
    print("test_user_docs: README's Dependencies")
    check_dependencies(readme, source)
    print("test_user_docs: the TLS certificate")
    check_certificate(readme, build)
    print("test_user_docs: the bench and wrk")
    check_bench_build(readme)
    check_wrk(readme, build, source)
    print("test_user_docs: make test JOBS")
    check_make_jobs(source)
    print(f"test_user_docs: {len(failures)} failure(s)" if failures else "test_user_docs: all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
