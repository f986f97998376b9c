#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the top-level Dockerfile without a container engine.

    tests/test_dockerfile.py --build BUILD_DIR [--source SOURCE_DIR]

Static rules (the Dockerfile and deploy/README.md):
  - every FROM is pinned (a tag other than latest, or a digest), and the
    Debian stages are one release (the runtime must have the builder's sonames);
  - no ADD of a URL; every apt-get install runs with -y and
    --no-install-recommends after an apt-get update in the same RUN, which
    then removes /var/lib/apt/lists; the builder installs no test tools
    (valgrind, cmocka ...) and strips the binaries it ships;
  - the runtime (last) stage: a non-root USER, STOPSIGNAL SIGTERM, an exec-form
    CMD (the server is PID 1 and gets the signal), a server listening on all
    interfaces (--host or CORIO_HOST), EXPOSE of exactly the CMD's port, a
    HEALTHCHECK on that port, a drain (--drain-timeout, CORIO_DRAIN_TIMEOUT or
    the runner's default) shorter than docker stop's default 10 s;
  - deploy/README.md names the CMD's program as the default command, says
    0.0.0.0, and documents --stop-timeout N with N above the runner's default
    drain (and the image's);
  - every shared library the examples in BUILD_DIR/examples need (ldd) comes
    from a package in the closure of what the runtime stage installs (plus
    libc6, in every Debian image): dpkg -S, then Depends/Pre-Depends with
    dpkg-query; and the runtime's library packages are exactly those the
    builder's -dev packages depend on.  BUILD_DIR stands for the image's build:
    the two checks together make the builder install the -dev packages of every
    optional client the local build found (libpq-dev, libhiredis-dev ...).
Live check, as root in a network namespace of its own (unshare -n; skipped
otherwise): the CMD, with the image's ENV and the binary from BUILD_DIR,
listens on 0.0.0.0 at the EXPOSEd port, the HEALTHCHECK command passes against
it, and it exits 0 on the STOPSIGNAL.
"""
import argparse
import contextlib
import glob
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

DOCKER_STOP_DEFAULT_S = 10
TEST_ONLY_PACKAGES = {"valgrind", "libcmocka-dev", "gdb", "wrk", "curl", "clang", "postgresql",
                      "redis-server", "python3", "netcat-openbsd"}
IMPLICIT_PACKAGES = {"libc6"}  # in every Debian image, slim included

failures = []


def fail(msg):
    failures.append(msg)
    print(f"  FAIL {msg}")


def ok(msg):
    print(f"  ok   {msg}")


# ---- parsing -----------------------------------------------------------------------


def parse_dockerfile(text):
    """Stages as dicts {image, name, instr: [(KEYWORD, args, lineno)]}: line
    continuations joined, comment lines (also inside a continuation) dropped."""
    stages, logical, start = [], "", 0
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue
        if not logical:
            start = n
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        kw, _, args = logical.partition(" ")
        kw, args = kw.upper(), args.strip()
        logical = ""
        if kw == "FROM":
            words = args.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append({"image": words[0], "name": name, "instr": [], "line": start})
        elif not stages:
            if kw != "ARG":
                fail(f"line {start}: {kw} before the first FROM")
        else:
            stages[-1]["instr"].append((kw, args, start))
    return stages


def instrs(stage, kw):
    return [(a, n) for k, a, n in stage["instr"] if k == kw]


def exec_form(args):
    """The list of an exec-form (JSON) CMD/ENTRYPOINT/HEALTHCHECK CMD, else None."""
    try:
        v = json.loads(args)
    except ValueError:
        return None
    return v if isinstance(v, list) and all(isinstance(x, str) for x in v) else None


def stage_env(stage):
    env = {}
    for args, _ in instrs(stage, "ENV"):
        words = shlex.split(args)
        if words and "=" not in words[0]:  # legacy ENV KEY VALUE
            env[words[0]] = " ".join(words[1:])
            continue
        for w in words:
            k, _, v = w.partition("=")
            env[k] = v
    return env


def flag_value(argv, flag):
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a[len(flag) + 1:]
    return None


def duration_s(text):
    """Seconds in a runner duration (corio__parse_duration: N, Nms, Ns, Nm)."""
    m = re.fullmatch(r"(\d+)(ms|s|m)?", text.strip())
    if not m:
        return None
    return int(m.group(1)) * {None: 0.001, "ms": 0.001, "s": 1, "m": 60}[m.group(2)]


def apt_packages(run_args):
    """Packages named by apt-get install in one RUN's shell text."""
    pkgs = []
    for cmd in re.split(r"&&|;|\|\|", run_args):
        words = shlex.split(cmd)
        if "apt-get" in words and "install" in words:
            rest = words[words.index("install") + 1:]
            pkgs += [w for w in rest if not w.startswith("-")]
    return pkgs


def runner_default_drain_s(source):
    """The runner's default --drain-timeout, from framework/app/options.c (25 s)."""
    try:
        with open(os.path.join(source, "framework/app/options.c")) as f:
            m = re.search(r"drain_timeout_ms\s*=\s*(\d+)\s*;", f.read())
        if m:
            return int(m.group(1)) / 1000
    except OSError:
        pass
    return 25.0


# ---- Debian package metadata (this machine's dpkg) ----------------------------------------


def dpkg_owner(path):
    """The package owning a library path; Debian 12 is usr-merged, so try both spellings."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        if p.startswith("/usr/"):
            cands.append(p[4:])
        else:
            cands.append("/usr" + p)
    for p in cands:
        r = subprocess.run(["dpkg", "-S", p], capture_output=True, text=True)
        if r.returncode == 0 and r.stdout:
            return r.stdout.split(":")[0].split(",")[0].strip()
    return None


_status_cache = {}


def dpkg_status(pkg):
    """(installed?, its Depends and Pre-Depends text) from this machine's dpkg."""
    if pkg not in _status_cache:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}\\n${Depends}, ${Pre-Depends}", pkg],
                           capture_output=True, text=True)
        inst = r.returncode == 0 and r.stdout.startswith("install ok installed")
        _status_cache[pkg] = (inst, r.stdout.split("\n", 1)[1] if inst else "")
    return _status_cache[pkg]


def depends(pkg):
    """Installed packages that pkg depends on (every installed alternative); None if
    pkg is not installed here."""
    inst, text = dpkg_status(pkg)
    if not inst:
        return None
    deps = set()
    for group in text.split(","):
        for alt in group.split("|"):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name and dpkg_status(name)[0]:
                deps.add(name)
    return deps


def closure(pkgs):
    seen, todo = set(), list(pkgs)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo += sorted(depends(p) or ())
    return seen


# ---- the checks --------------------------------------------------------------------------


def check_static(stages, readme, source):
    final, builders = stages[-1], stages[:-1]
    stage_names = {s["name"] for s in stages if s["name"]}

    releases = set()
    for s in stages:
        img = s["image"]
        if img in stage_names:
            continue
        ref = img.split("@")[0]
        tag = ref.rsplit(":", 1)[1] if ":" in ref.rsplit("/", 1)[-1] else None
        if "@sha256:" in img or (tag and tag != "latest"):
            ok(f"FROM {img} is pinned")
        else:
            fail(f"line {s['line']}: FROM {img} is not pinned (a tag other than latest, or a digest)")
        if ref.split(":")[0] in ("debian", "docker.io/library/debian") and tag:
            releases.add({"bookworm": "12"}.get(tag.split("-")[0], tag.split(".")[0].split("-")[0]))
    if len(releases) > 1:
        fail(f"the stages are on different Debian releases {sorted(releases)}")

    for s in stages:
        for args, n in instrs(s, "ADD"):
            if re.search(r"(https?|ftp)://|git@|\.git\b", args):
                fail(f"line {n}: ADD of a URL ({args}): download in a RUN with a checksum")
        for args, n in instrs(s, "RUN"):
            if not re.search(r"apt-get\s+(-\S+\s+)*install", args):
                continue
            ins = args.index("install")
            if "--no-install-recommends" not in args:
                fail(f"line {n}: apt-get install without --no-install-recommends")
            if not re.search(r"\s-y\b|--yes|--assume-yes", args):
                fail(f"line {n}: apt-get install without -y")
            if "apt-get update" not in args[:ins]:
                fail(f"line {n}: apt-get install without apt-get update in the same RUN")
            if not re.search(r"rm\s+-r?f?r?\s*/var/lib/apt/lists", args[ins:]):
                fail(f"line {n}: apt-get install without rm -rf /var/lib/apt/lists/* after it")
    ok("apt-get and ADD rules checked")

    builder_pkgs = [p for s in builders for a, _ in instrs(s, "RUN") for p in apt_packages(a)]
    runtime_pkgs = [p for a, _ in instrs(final, "RUN") for p in apt_packages(a)]
    extra = sorted(TEST_ONLY_PACKAGES & set(builder_pkgs))
    if extra:
        fail(f"the builder installs {extra}, which building the examples does not need")
    if builders and not any(re.search(r"\bstrip\b", a) for s in builders
                            for a, _ in instrs(s, "RUN")):
        fail("the builder does not strip the binaries it ships")

    users = instrs(final, "USER")
    if not users:
        fail("the runtime stage has no USER: it runs as root")
    else:
        user = users[-1][0].split(":")[0]
        if user in ("root", "0"):
            fail(f"the runtime stage runs as {users[-1][0]}")
        else:
            ok(f"runtime USER {users[-1][0]}")
    sig = instrs(final, "STOPSIGNAL")
    if not sig or sig[-1][0].upper() not in ("SIGTERM", "15"):
        fail("the runtime stage has no STOPSIGNAL SIGTERM")

    cmds = instrs(final, "CMD")
    if not cmds:
        fail("the runtime stage has no CMD")
        return None
    argv = exec_form(cmds[-1][0])
    if argv is None:
        fail("the CMD is in shell form: /bin/sh would be PID 1 and not pass on SIGTERM")
        return None
    env = stage_env(final)
    port = flag_value(argv, "--port") or env.get("CORIO_PORT")
    host = flag_value(argv, "--host") or env.get("CORIO_HOST")
    if host not in ("0.0.0.0", "::"):
        fail(f"the CMD listens on {host or 'loopback (the default)'}: unreachable from outside")
    if env.get("CORIO_HOST") not in ("0.0.0.0", "::"):
        fail("no ENV CORIO_HOST=0.0.0.0: another example run in the image listens on loopback")
    exposed = {w.split("/")[0] for a, _ in instrs(final, "EXPOSE") for w in a.split()}
    if not port or exposed != {port}:
        fail(f"EXPOSE {sorted(exposed)} does not match the CMD's port {port}")
    else:
        ok(f"CMD {argv[0]} on {host}:{port}, EXPOSE {port}")
    hc = instrs(final, "HEALTHCHECK")
    hc_argv = None
    if not hc or hc[-1][0].upper() == "NONE":
        fail("the runtime stage has no HEALTHCHECK")
    else:
        m = re.search(r"\bCMD\s+(.*)$", hc[-1][0], re.S)
        hc_argv = exec_form(m.group(1)) if m else None
        if hc_argv is None:
            hc_argv = ["/bin/sh", "-c", m.group(1)] if m else None
        if not hc_argv or not port or not re.search(rf"\b{port}\b", " ".join(hc_argv)):
            fail(f"the HEALTHCHECK does not ask the CMD's port {port}")
        else:
            ok("HEALTHCHECK on the CMD's port")

    default_drain = runner_default_drain_s(source)
    drain_text = flag_value(argv, "--drain-timeout") or env.get("CORIO_DRAIN_TIMEOUT")
    drain = duration_s(drain_text) if drain_text else default_drain
    if drain is None:
        fail(f"cannot read the image's drain timeout '{drain_text}'")
        drain = default_drain
    if drain >= DOCKER_STOP_DEFAULT_S:
        fail(f"the image drains for {drain:g} s on SIGTERM, but docker stop kills after "
             f"{DOCKER_STOP_DEFAULT_S} s by default: set CORIO_DRAIN_TIMEOUT lower")
    documented = [int(x) for x in re.findall(r"--stop-timeout[ =](\d+)", readme)]
    need = max(drain, default_drain)
    if not documented or max(documented) <= need:
        fail(f"deploy/README.md documents no docker run --stop-timeout N with N > {need:g} "
             f"(the drain: {drain:g} s in the image, {default_drain:g} s by default); "
             f"found {documented}")
    else:
        ok(f"drain {drain:g} s in the image, --stop-timeout {max(documented)} documented")

    prog = os.path.basename(argv[0])
    examples = {os.path.basename(d) for d in glob.glob(os.path.join(source, "examples", "*"))
                if os.path.isdir(d)}
    for m in re.finditer(r"default command", readme, re.I):
        named = [w for w in re.findall(r"`([^`]+)`", readme[m.end():m.end() + 200])
                 if os.path.basename(w.split()[0]) in examples]
        if named and os.path.basename(named[0].split()[0]) != prog:
            fail(f"deploy/README.md says the default command is `{named[0]}`, "
                 f"the Dockerfile runs {prog}")
    if f"`{prog}`" not in readme:
        fail(f"deploy/README.md does not name the image's program `{prog}`")
    if "0.0.0.0" not in readme:
        fail("deploy/README.md does not say the server listens on all interfaces (0.0.0.0)")
    return {"argv": argv, "env": env, "port": port, "hc": hc_argv, "drain": drain,
            "builder_pkgs": builder_pkgs, "runtime_pkgs": runtime_pkgs, "prog": prog}


def example_binaries(build):
    """What the builder ships: every executable file under BUILD/examples but CMakeFiles."""
    out = []
    for root, dirs, files in os.walk(os.path.join(build, "examples")):
        dirs[:] = [d for d in dirs if d != "CMakeFiles"]
        for f in files:
            p = os.path.join(root, f)
            if os.access(p, os.X_OK):
                with open(p, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        out.append(p)
    return sorted(out)


def sanitized(build):
    """Whether BUILD is a sanitizer build (CORIO_SANITIZE in its CMake cache):
    its binaries need libasan and libubsan, which the image's Release build
    does not, so their libraries say nothing about the image."""
    try:
        with open(os.path.join(build, "CMakeCache.txt"), encoding="utf-8") as f:
            return any(re.match(r"CORIO_SANITIZE:\w+=\S", line) for line in f)
    except OSError:
        return False


def check_libraries(info, build):
    if sanitized(build):
        print(f"SKIP the libraries check: {build} is a sanitizer build (CORIO_SANITIZE), "
              "not what the image builds", flush=True)
        return
    bins = example_binaries(build)
    if not bins:
        fail(f"no example binaries under {build}/examples: build them first")
        return
    runtime = closure(set(info["runtime_pkgs"]) | IMPLICIT_PACKAGES)
    missing = {}
    for b in bins:
        r = subprocess.run(["ldd", b], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"ldd {b} failed: {r.stderr.strip()}")
            continue
        for line in r.stdout.splitlines():
            m = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if not m:
                if "not found" in line:
                    fail(f"{b}: {line.strip()}")
                continue
            path = m.group(1)
            pkg = dpkg_owner(path)
            if pkg is None:
                fail(f"{os.path.basename(b)} needs {path}, which no Debian package provides")
            elif pkg not in runtime:
                missing.setdefault(pkg, set()).add(f"{os.path.basename(b)}: {path}")
    # Name only the roots: a package another missing one depends on comes with it.
    below = {d for p in missing for d in closure({p}) - {p}}
    for pkg, who in sorted(missing.items()):
        if pkg in below:
            continue
        fail(f"the runtime stage does not install {pkg} (nor anything depending on it), "
             f"needed by {', '.join(sorted(who))}")
    if not missing:
        ok(f"{len(bins)} example binaries: every shared library from a runtime package")

    # The runtime's libraries are those the builder's -dev packages link against.
    built_against = set()
    for p in info["builder_pkgs"]:
        if not p.endswith("-dev"):
            continue
        deps = depends(p)
        if deps is None:
            print(f"  note {p} is not installed here: its runtime library is not checked")
            continue
        built_against |= {d for d in deps if d.startswith("lib") and not d.endswith("-dev")}
    for lib in sorted(built_against - runtime):
        fail(f"the builder links {lib} (a -dev package depends on it); the runtime lacks it")
    for p in info["runtime_pkgs"]:
        if p.startswith("lib") and depends(p) is not None and p not in built_against:
            fail(f"the runtime installs {p}, which no builder -dev package links")


# ---- live: the CMD and the HEALTHCHECK, in a network namespace of our own ----------------------


def live(info, build):
    """Run in a fresh network namespace (port 8080 of the host is not ours)."""
    prog = info["prog"]
    binary = os.path.join(build, "examples", prog, prog)
    argv = [binary] + info["argv"][1:]
    env = dict(os.environ, **info["env"])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    srv = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        deadline, rc = time.time() + 10, None
        while time.time() < deadline:
            rc = subprocess.run(info["hc"], capture_output=True, timeout=5).returncode
            if rc == 0 or srv.poll() is not None:
                break
            time.sleep(0.1)
        if rc != 0:
            fail(f"the HEALTHCHECK command exits {rc} against {' '.join(argv)}")
        else:
            ok("the HEALTHCHECK command passes against the CMD")
        ss = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        if not re.search(rf"(0\.0\.0\.0|\*|\[::\]):{info['port']}\s", ss):
            fail(f"the CMD does not listen on all interfaces at {info['port']}: {ss.strip()}")
        else:
            ok(f"the CMD listens on all interfaces at {info['port']}")
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(timeout=info["drain"] + 5)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = srv.wait()
            fail("the CMD did not exit within its drain after SIGTERM")
        out = srv.stdout.read()
    if rc != 0:
        fail(f"the CMD exits {rc} on SIGTERM; its output:\n{out}")
    else:
        ok("the CMD exits 0 on SIGTERM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="a build tree with the examples built")
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    build, source = os.path.abspath(args.build), os.path.abspath(args.source)
    with open(os.path.join(source, "Dockerfile")) as f:
        stages = parse_dockerfile(f.read())
    with open(os.path.join(source, "deploy", "README.md")) as f:
        readme = f.read()
    if not stages:
        fail("no FROM in the Dockerfile")
        return 1

    if args.in_netns:
        with contextlib.redirect_stdout(io.StringIO()):
            info = check_static(stages, readme, source)  # for its results only
        failures.clear()
        if info and info["hc"]:
            live(info, build)
        return 1 if failures else 0

    print("test_dockerfile: the Dockerfile's rules")
    info = check_static(stages, readme, source)
    if info:
        print("test_dockerfile: shared libraries of the examples")
        check_libraries(info, build)
        print("test_dockerfile: the CMD and HEALTHCHECK, live")
        if not info["hc"]:
            print("  skip no HEALTHCHECK to run")
        elif os.geteuid() == 0 and subprocess.run(
                ["unshare", "-n", "true"], capture_output=True).returncode == 0:
            r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                                "--build", build, "--source", source, "--in-netns"])
            if r.returncode != 0:
                fail("the live check failed (above)")
        else:
            print("  skip not root, or no unshare -n: the CMD is not run")
    if failures:
        print(f"test_dockerfile: {len(failures)} failure(s)")
        return 1
    print("test_dockerfile: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
