#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the top-level Dockerfile without a container engine.

    tests/test_dockerfile.py --build BUILD_DIR [--source SOURCE_DIR] [--configure-only]

Static rules (the Dockerfile and deploy/README.md):
  - every FROM is pinned (a tag other than latest, or a digest), and the
    Debian stages are one release (the runtime must have the builder's sonames);
  - no ADD of a URL; every apt-get install runs with -y and
    --no-install-recommends after an apt-get update in the same RUN, which
    then removes /var/lib/apt/lists; the builder installs no test tools
    (valgrind, cmocka ...) and strips the binaries it ships;
  - the runtime (last) stage: a non-root USER, STOPSIGNAL SIGTERM, an exec-form
    CMD (the server is PID 1 and gets the signal), a server listening on all
    interfaces (--host or CORIO_HOST), EXPOSE of exactly the CMD's port (its
    --port, else CORIO_PORT in ENV), a HEALTHCHECK on that port (when the port
    is CORIO_PORT, as $CORIO_PORT or ${CORIO_PORT:-PORT}: docker run -e
    CORIO_PORT=... moves the server, and the check must follow it), a drain
    (--drain-timeout, CORIO_DRAIN_TIMEOUT or the runner's default) shorter
    than docker stop's default 10 s; no CMD flag for a setting the stage's ENV
    sets (--port beside CORIO_PORT ...): the flag wins, and docker run -e would
    be silently ignored;
  - deploy/README.md names the CMD's program as the default command (and a
    default command it spells out with arguments is the CMD's argv exactly),
    says 0.0.0.0, and documents --stop-timeout N with N above the runner's
    default drain (and the image's);
  - every shared library the examples in BUILD_DIR/examples need (ldd) comes
    from a package in the closure of what the runtime stage installs (plus
    libc6, in every Debian image): dpkg -S, then Depends/Pre-Depends with
    dpkg-query; and the runtime's library packages are exactly those the
    builder's -dev packages depend on.  BUILD_DIR stands for the image's build:
    the two checks together make the builder install the -dev packages of every
    optional client the local build found (libpq-dev, libhiredis-dev ...).
The builder's build context, without a container engine: the paths the
builder stage's COPY lines name (COPY --from excepted; src relative to the
context, SOURCE_DIR; dest relative to WORKDIR) are copied from SOURCE_DIR into
a temporary directory standing for the builder's filesystem, and the RUN's
cmake configure command (its own arguments, -S and -B moved into that
directory) runs there with the stage's ENV and a clean environment otherwise:
a file the build reads that no COPY brings in (an include(), a version script,
a configure_file template, a source of add_library) fails it with CMake's
message.  Then the RUN's cmake --build runs there, at -j2: everything the image
builds (9 to 18 s on 2 cores, most of it the library, which hello alone needs as
well; building hello alone would miss a file only the shared library reads,
cmake/corio.map).  CORIO_DOCKERFILE_CONFIGURE_ONLY=1 or --configure-only skips
the build.  It runs last, bounded (CONTEXT_BUDGET_S, and a failure before
ctest's TIMEOUT would kill the test); the directory is removed whatever
happens.  .dockerignore is not applied (there is none): with one, docker's
context could lack a file this check has.
Live check, as root in a network namespace of its own (unshare -n; skipped
otherwise): the CMD, with the image's ENV and the binary from BUILD_DIR,
listens on 0.0.0.0 at the EXPOSEd port, the HEALTHCHECK command (with the
image's ENV) passes against it, and it exits 0 on the STOPSIGNAL; when the
port is CORIO_PORT, the same again with CORIO_PORT changed (docker run -e
CORIO_PORT=...): the server listens there and the HEALTHCHECK follows it.
"""
import argparse
import contextlib
import glob
import io
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DOCKER_STOP_DEFAULT_S = 10
TEST_ONLY_PACKAGES = {"valgrind", "libcmocka-dev", "gdb", "wrk", "curl", "clang", "postgresql",
                      "redis-server", "python3", "netcat-openbsd"}
IMPLICIT_PACKAGES = {"libc6"}  # in every Debian image, slim included
# The PATH of the debian:12 image: the builder's commands run with it and the
# stage's ENV, nothing else of ours (no CC, CFLAGS, MAKEFLAGS, CMAKE_GENERATOR).
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Configure and build in the builder's context, together (measured: 1 s and 9 to
# 18 s at -j2 on 2 cores; make test runs other tests beside this one), and no
# later than CTEST_TIMEOUT_S - CTEST_MARGIN_S after the test started, so that it
# fails with CMake's output, and its directory removed, before ctest kills it.
CONTEXT_BUDGET_S = 75
CONTEXT_JOBS = 2
CTEST_TIMEOUT_S = 120  # tests/CMakeLists.txt: set_tests_properties(test_dockerfile ... TIMEOUT)
CTEST_MARGIN_S = 8
STARTED = time.monotonic()

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
    # A flag wins over its variable (include/corio/app.h): with both, docker run
    # -e CORIO_PORT=9000 would be ignored without a word.
    for var in sorted(k for k in env if k.startswith("CORIO_")):
        flag = "--" + var[len("CORIO_"):].lower().replace("_", "-")
        if flag_value(argv, flag) is not None or flag in argv:
            fail(f"the CMD passes {flag}, which wins over the image's ENV {var}: "
                 f"docker run -e {var}=... would be ignored; leave the flag out")
    port_flag = flag_value(argv, "--port")
    port = port_flag or env.get("CORIO_PORT")
    port_from_env = port_flag is None and port is not None
    host = flag_value(argv, "--host") or env.get("CORIO_HOST")
    if host not in ("0.0.0.0", "::"):
        fail(f"the CMD listens on {host or 'loopback (the default)'}: unreachable from outside")
    if env.get("CORIO_HOST") not in ("0.0.0.0", "::"):
        fail("no ENV CORIO_HOST=0.0.0.0: another example run in the image listens on loopback")
    exposed = {w.split("/")[0] for a, _ in instrs(final, "EXPOSE") for w in a.split()}
    if not port:
        fail("the CMD has no port: neither --port nor ENV CORIO_PORT (the image must say "
             "which port it EXPOSEs)")
    elif exposed != {port}:
        fail(f"EXPOSE {sorted(exposed)} does not match the CMD's port {port} "
             f"({'ENV CORIO_PORT' if port_from_env else '--port'})")
    else:
        ok(f"CMD {' '.join(argv)} on {host}:{port} "
           f"({'ENV CORIO_PORT' if port_from_env else '--port'}), EXPOSE {port}")
    hc = instrs(final, "HEALTHCHECK")
    hc_argv = None
    if not hc or hc[-1][0].upper() == "NONE":
        fail("the runtime stage has no HEALTHCHECK")
    else:
        m = re.search(r"\bCMD\s+(.*)$", hc[-1][0], re.S)
        hc_argv = exec_form(m.group(1)) if m else None
        if hc_argv is None:
            hc_argv = ["/bin/sh", "-c", m.group(1)] if m else None
        hc_text = " ".join(hc_argv or [])
        # ${CORIO_PORT:-8080}, ${CORIO_PORT-8080}, ${CORIO_PORT}, $CORIO_PORT
        m_var = re.search(r"\$\{CORIO_PORT(?::?-(\w*))?\}|\$CORIO_PORT\b", hc_text)
        var_ok = m_var and port_from_env and m_var.group(1) in (None, port)
        literal = port and re.search(rf"(?<![\w-]){port}\b", hc_text)
        if not hc_argv:
            fail("the HEALTHCHECK has no command")
        elif not port:
            pass  # failed above: no port to ask
        elif m_var and not var_ok:
            fail(f"the HEALTHCHECK asks {m_var.group(0)}, not the CMD's port {port}"
                 + ("" if port_from_env else " (its --port, which CORIO_PORT does not change)"))
        elif var_ok:
            ok(f"HEALTHCHECK on the CMD's port ({m_var.group(0)}, as docker run -e sets it)")
        elif not literal:
            fail(f"the HEALTHCHECK does not ask the CMD's port {port}")
        elif port_from_env:
            fail(f"the HEALTHCHECK asks port {port} literally: after docker run -e CORIO_PORT=... "
                 f"the server listens elsewhere and the container turns unhealthy; "
                 f"ask ${{CORIO_PORT:-{port}}}")
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
                 if w.split() and os.path.basename(w.split()[0]) in examples]
        if named and os.path.basename(named[0].split()[0]) != prog:
            fail(f"deploy/README.md says the default command is `{named[0]}`, "
                 f"the Dockerfile runs {prog}")
        # One spelled out with its arguments must be the CMD's, or the reader is
        # told of flags (--port ...) the image does not pass, or not of some it does.
        for w in named:
            words = shlex.split(w)
            if (len(words) > 1 and os.path.basename(words[0]) == prog
                    and words[1:] != argv[1:]):
                fail(f"deploy/README.md gives the default command as `{w}`; "
                     f"the Dockerfile's CMD is `{' '.join(argv)}`")
    if f"`{prog}`" not in readme:
        fail(f"deploy/README.md does not name the image's program `{prog}`")
    if "0.0.0.0" not in readme:
        fail("deploy/README.md does not say the server listens on all interfaces (0.0.0.0)")
    return {"argv": argv, "env": env, "port": port, "port_from_env": port_from_env,
            "hc": hc_argv, "drain": drain, "builder_pkgs": builder_pkgs,
            "runtime_pkgs": runtime_pkgs, "prog": prog}


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


# ---- the builder's build context: configure and build from only what its COPY lines bring --


def copy_args(args):
    """(flags, sources, dest) of a COPY's arguments, shell or JSON form."""
    m = re.match(r"((?:--\S+\s+)*)(.*)$", args, re.S)
    flags, rest = m.group(1).split(), m.group(2).strip()
    parts = exec_form(rest) if rest.startswith("[") else None
    if parts is None:
        parts = rest.split()
    return flags, parts[:-1], parts[-1] if parts else None


def image_path(workdir, path):
    """An absolute path in the image: relative ones are from WORKDIR."""
    return posixpath.normpath(posixpath.join(workdir, path))


def under(root, path):
    """Where an absolute image path lives in the reproduction."""
    return os.path.join(root, path.lstrip("/"))


def docker_copy(source, root, workdir, sources, dest, n):
    """What docker build's COPY sources... dest does, from the context SOURCE into
    ROOT; an error message (docker build would fail too) or None."""
    dest_path = image_path(workdir, dest)
    into_dir = dest.endswith("/") or len(sources) > 1
    target = under(root, dest_path)
    for src in sources:
        rel = posixpath.normpath("/" + src).lstrip("/") or "."  # docker keeps it in the context
        if re.search(r"[*?\[]", rel):
            found = sorted(glob.glob(rel, root_dir=source))
            into_dir = into_dir or len(found) > 1
        else:
            found = [rel] if os.path.lexists(os.path.join(source, rel)) else []
        if not found:
            return f"line {n}: COPY {src}: not in the build context ({source}): docker build fails"
        for f in found:
            p = os.path.join(source, f)
            if os.path.isdir(p) and not os.path.islink(p):
                # A directory's contents, not the directory itself.
                shutil.copytree(p, target, symlinks=True, dirs_exist_ok=True)
            else:
                t = (os.path.join(target, os.path.basename(f))
                     if into_dir or os.path.isdir(target) else target)
                os.makedirs(os.path.dirname(t), exist_ok=True)
                shutil.copy2(p, t, follow_symlinks=False)
    return None


def shell_commands(run_args):
    return [c.strip() for c in re.split(r"&&|\|\||;|\|", run_args) if c.strip()]


def is_cmake_configure(words):
    return (bool(words) and os.path.basename(words[0]) == "cmake"
            and not {"--build", "--install", "-E", "-P", "--version", "--help"} & set(words))


def builder_configure(stages):
    """The first builder stage whose RUN configures with cmake, as (stage, RUN index,
    the configure command's words, the words of the cmake --build after it in
    that RUN or None, lineno); None if no stage does."""
    for s in stages[:-1]:
        for i, (kw, args, n) in enumerate(s["instr"]):
            if kw != "RUN":
                continue
            cmds = [shlex.split(c) for c in shell_commands(args)]
            for k, words in enumerate(cmds):
                if is_cmake_configure(words):
                    build = next((w for w in cmds[k + 1:] if w and os.path.basename(w[0]) ==
                                  "cmake" and "--build" in w), None)
                    return s, i, words, build, n
    return None


def relocate_build(words, root, workdir, jobs):
    """A cmake --build command's arguments with its directory moved under ROOT and
    its parallelism (-j"$(nproc)") made JOBS; a string on what cannot be redone."""
    out, i = [], 1
    while i < len(words):
        w = words[i]
        if w in ("-j", "--parallel"):
            if i + 1 < len(words) and re.fullmatch(r"\d+|\$\S*", words[i + 1]):
                i += 1
        elif re.match(r"(-j|--parallel=?)\S", w):
            pass
        elif w == "--build":
            out += [w, under(root, image_path(workdir, words[i + 1]))]
            i += 1
        elif re.search(r"[$`]", w):
            return f"cannot reproduce `{' '.join(words)}`: it expands a variable"
        else:
            out.append(w)
        i += 1
    return out + ["-j", str(jobs)]


def relocate_cmake(words, root, workdir):
    """The configure command's arguments with its paths (-S, -B, a bare source
    directory) moved under ROOT; (args, source dir, build dir) or an error."""
    out, src, bld, i = [], None, None, 1
    if any(re.search(r"[$`]", w) for w in words):
        return f"cannot reproduce `{' '.join(words)}`: it expands a variable", None, None
    while i < len(words):
        w = words[i]
        for opt in ("-S", "-B"):
            if w == opt or (w.startswith(opt) and len(w) > 2):
                val = words[i + 1] if w == opt else w[2:]
                i += 1 if w == opt else 0
                path = under(root, image_path(workdir, val))
                out += [opt, path]
                src, bld = (path, bld) if opt == "-S" else (src, path)
                break
        else:
            if words[i - 1] == "-C":  # an initial-cache script, in the image
                out.append(under(root, image_path(workdir, w)))
            elif not w.startswith("-") and words[i - 1] not in ("-D", "-U", "-G", "-T", "-A"):
                src = under(root, image_path(workdir, w))  # cmake <source>
                out.append(src)
            else:
                out.append(w)
        i += 1
    src = src or under(root, image_path(workdir, "."))
    bld = bld or under(root, image_path(workdir, "."))
    return out, src, bld


def run_bounded(argv, cwd, env, timeout):
    """(exit status or None on the timeout, stdout and stderr together); the
    command's whole process group is killed on a timeout or an interruption."""
    p = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace",
                         start_new_session=True)
    try:
        out, _ = p.communicate(timeout=max(timeout, 1))
        return p.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        raise


def cmake_error(out, root=None, lines=60):
    """CMake's message: from its first error on, else the output's tail."""
    text = out.splitlines()
    if root:
        text = [l.replace(root, "") for l in text]  # the image's paths: /src/..., /build/...
    first = next((k for k, l in enumerate(text)
                  if re.match(r"CMake Error|.*\berror:|.*\*\*\* No rule to make", l)), None)
    keep = text[first:first + lines] if first is not None else text[-lines:]
    return "\n".join("      " + l for l in keep)


def check_build_context(stages, source, configure_only):
    """Configure, then build as the builder's RUN does, in a copy of what the
    builder's COPY lines bring."""
    found = builder_configure(stages)
    if found is None:
        fail("no builder stage runs a cmake configure (cmake -S ... -B ...)")
        return
    stage, run_index, words, build_words, run_line = found
    cmake = shutil.which(words[0], path=IMAGE_PATH)
    if cmake is None:
        print(f"  skip no {words[0]} here: the build context is not checked")
        return
    if os.path.exists(os.path.join(source, ".dockerignore")):
        print("  note .dockerignore is not applied: docker's context may be smaller than this")
    start = time.monotonic()
    budget = min(CONTEXT_BUDGET_S, STARTED + CTEST_TIMEOUT_S - CTEST_MARGIN_S - start)
    with tempfile.TemporaryDirectory(prefix="corio-dockerfile-", ignore_cleanup_errors=True) as tmp:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        env = {"PATH": IMAGE_PATH, "HOME": os.path.join(tmp, "home")}
        workdir, copied = "/", []
        for kw, args, n in stage["instr"][:run_index]:
            if kw == "WORKDIR":
                workdir = image_path(workdir, args.strip())
                os.makedirs(under(root, workdir), exist_ok=True)
            elif kw == "ENV":
                env.update(stage_env({"instr": [(kw, args, n)]}))
            elif kw in ("COPY", "ADD"):
                flags, srcs, dest = copy_args(args)
                if any(f.startswith("--from") for f in flags):
                    continue  # from another stage or image, not the context
                odd = [f for f in flags if not re.match(r"--(chown|chmod|link)\b", f)]
                if odd or kw == "ADD" or dest is None or not srcs:
                    fail(f"line {n}: cannot reproduce `{kw} {args}`")
                    return
                err = docker_copy(source, root, workdir, srcs, dest, n)
                if err:
                    fail(err)
                    return
                copied += [f"{s} -> {image_path(workdir, dest)}" for s in srcs]
        cmd, _src, bld = relocate_cmake(words, root, workdir)
        if isinstance(cmd, str):
            fail(f"line {run_line}: {cmd}")
            return
        shown = " ".join(words[1:])
        print(f"  ..   the builder's context (its COPY lines): {', '.join(copied)}", flush=True)
        rc, out = run_bounded([cmake] + cmd, under(root, workdir), env, budget)
        t_conf = time.monotonic() - start
        if rc is None:
            fail(f"line {run_line}: `cmake {shown}` did not finish in {budget:.0f} s "
                 f"in the builder's context:\n{cmake_error(out, root)}")
            return
        if rc != 0:
            fail(f"line {run_line}: `cmake {shown}` fails in the builder's context (only the "
                 f"COPY lines' paths: {', '.join(copied)}); docker build would fail the same "
                 f"way. CMake says:\n{cmake_error(out, root)}")
            return
        ok(f"the builder's COPY lines carry what `cmake {shown}` reads: "
           f"it configures ({t_conf:.1f} s)")
        if configure_only:
            print("  skip the build there (--configure-only, CORIO_DOCKERFILE_CONFIGURE_ONLY=1)")
            return
        if build_words is None:
            build_words = ["cmake", "--build", "/" + os.path.relpath(bld, root)]
        bcmd = relocate_build(build_words, root, workdir, CONTEXT_JOBS)
        if isinstance(bcmd, str):
            fail(f"line {run_line}: {bcmd}")
            return
        shown = " ".join(build_words[1:])
        left = budget - (time.monotonic() - start)
        rc, out = run_bounded([cmake] + bcmd, under(root, workdir), env, left)
        t_build = time.monotonic() - start - t_conf
        if rc is None:
            fail(f"line {run_line}: `cmake {shown}` did not finish within {budget:.0f} s "
                 f"in all (configure {t_conf:.1f} s) in the builder's context; the tail:\n"
                 f"{cmake_error(out, root, 12)}")
        elif rc != 0:
            fail(f"line {run_line}: `cmake {shown}` fails in the builder's context (only the "
                 f"COPY lines' paths): docker build would fail the same way:\n"
                 f"{cmake_error(out, root)}")
        else:
            ok(f"and `cmake {shown}` builds there ({t_build:.1f} s, -j{CONTEXT_JOBS})")


# ---- live: the CMD and the HEALTHCHECK, in a network namespace of our own ----------------------


def live(info, build):
    """Run in a fresh network namespace (port 8080 of the host is not ours)."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    # The image's environment: ours without the runner's variables, then its ENV.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORIO_")}
    env.update(info["env"])
    serve_and_probe(info, build, env, info["port"], "the CMD")
    if info["port_from_env"]:
        # docker run -e CORIO_PORT=9000: the server and its HEALTHCHECK move there.
        other = "9000" if info["port"] != "9000" else "9001"
        serve_and_probe(info, build, dict(env, CORIO_PORT=other), other,
                        f"the CMD with -e CORIO_PORT={other}")


def serve_and_probe(info, build, env, port, what):
    prog = info["prog"]
    binary = os.path.join(build, "examples", prog, prog)
    argv = [binary] + info["argv"][1:]
    srv = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        deadline, rc = time.time() + 10, None
        while time.time() < deadline:
            # Docker runs the HEALTHCHECK in the container: with its environment.
            rc = subprocess.run(info["hc"], env=env, capture_output=True, timeout=5).returncode
            if rc == 0 or srv.poll() is not None:
                break
            time.sleep(0.1)
        if rc != 0:
            fail(f"the HEALTHCHECK command exits {rc} against {what} ({' '.join(argv)})")
        else:
            ok(f"the HEALTHCHECK command passes against {what}")
        ss = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        if not re.search(rf"(0\.0\.0\.0|\*|\[::\]):{port}\s", ss):
            fail(f"{what} does not listen on all interfaces at {port}: {ss.strip()}")
        else:
            ok(f"{what} listens on all interfaces at {port}")
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(timeout=info["drain"] + 5)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = srv.wait()
            fail(f"{what} did not exit within its drain after SIGTERM")
        out = srv.stdout.read()
    if rc != 0:
        fail(f"{what} exits {rc} on SIGTERM; its output:\n{out}")
    else:
        ok(f"{what} exits 0 on SIGTERM")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True, help="a build tree with the examples built")
    ap.add_argument("--source", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--configure-only", action="store_true",
                    default=os.environ.get("CORIO_DOCKERFILE_CONFIGURE_ONLY", "") not in ("", "0"),
                    help="in the builder's build context, configure but do not build "
                         "(default: CORIO_DOCKERFILE_CONFIGURE_ONLY=1 in the environment)")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    # SIGTERM or ^C: unwind, so that the build context's directory goes (ctest's
    # TIMEOUT kills with SIGKILL: the check's budget ends it before that).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
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
        if info and info["hc"] and info["port"]:
            live(info, build)
        return 1 if failures else 0

    print("test_dockerfile: the Dockerfile's rules")
    info = check_static(stages, readme, source)
    if info:
        print("test_dockerfile: shared libraries of the examples")
        check_libraries(info, build)
        print("test_dockerfile: the CMD and HEALTHCHECK, live")
        if not info["hc"] or not info["port"]:
            print("  skip no HEALTHCHECK or no port: nothing to run")
        elif os.geteuid() == 0 and subprocess.run(
                ["unshare", "-n", "true"], capture_output=True).returncode == 0:
            sys.stdout.flush()
            r = subprocess.run(["unshare", "-n", sys.executable, os.path.abspath(__file__),
                                "--build", build, "--source", source, "--in-netns"])
            if r.returncode != 0:
                fail("the live check failed (above)")
        else:
            print("  skip not root, or no unshare -n: the CMD is not run")
    # Last: the slowest, bounded by what is left of ctest's timeout.
    print("test_dockerfile: the builder's build context (its COPY lines), configured and built",
          flush=True)
    check_build_context(stages, source, args.configure_only)
    if failures:
        print(f"test_dockerfile: {len(failures)} failure(s)")
        return 1
    print("test_dockerfile: all passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
