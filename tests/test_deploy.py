#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""deploy/ against the server it deploys: the facts that break a deployment
when they drift apart.

- every Kubernetes manifest parses (python3-yaml; yamllint too when it is
  installed), and kustomization.yaml lists every one of them;
- the probe paths answer on the server (examples/hello started here with
  the ConfigMap's settings): the liveness path 200, the readiness path
  200, on the admin listener; the container's ports are the ones the
  server is told to listen on (CORIO_PORT, CORIO_ADMIN), the probes use
  the admin port, the Service targets the main port by name and does not
  expose the admin port, and the Prometheus annotations name the admin
  port and /metrics, which answers there;
- terminationGracePeriodSeconds exceeds the preStop pause plus the drain
  deadline (CORIO_DRAIN_TIMEOUT of the ConfigMap), and CORIO_WORKERS equals
  the CPU limit (one worker per CPU);
- the pod and container security settings: non-root (a numeric uid, which
  the image's USER must match), read-only root, no privilege escalation,
  every capability dropped;
- systemd: the service's TimeoutStopSec exceeds its drain deadline, it is
  Type=notify with the hardening the docs promise, and socket activation
  works: systemd-socket-activate (Debian's systemd package) hands the
  server a listening socket the way systemd does, and it serves on it;
  and Type=notify's protocol: READY=1 once the server serves, STOPPING=1
  when it drains, from the main process only (one process, and a
  supervisor of workers).

Usage: test_deploy.py --hello build/examples/hello/hello"""
import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import harness
from harness import check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
K8S = os.path.join(ROOT, "deploy", "kubernetes")
SYSTEMD = os.path.join(ROOT, "deploy", "systemd")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
ARGS = None


def load_all():
    import yaml
    docs = {}
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name), encoding="utf-8") as f:
                docs[name] = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def by_kind(docs, kind):
    found = [d for ds in docs.values() for d in ds if d.get("kind") == kind]
    check(len(found) == 1, "exactly one %s (found %d)" % (kind, len(found)))
    return found[0]


def seconds(duration):
    """The runner's duration syntax: 500ms, 10s, 2m, or a number of ms."""
    m = re.fullmatch(r"(\d+)(ms|s|m)?", duration.strip())
    check(m is not None, "a duration: %r" % duration)
    n, unit = int(m.group(1)), m.group(2) or "ms"
    return n / 1000 if unit == "ms" else n if unit == "s" else n * 60


def get(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_manifests_parse():
    docs = load_all()
    check(docs, "manifests in deploy/kubernetes")
    with open(os.path.join(K8S, "kustomization.yaml"), encoding="utf-8") as f:
        import yaml
        listed = set(yaml.safe_load(f)["resources"])
    others = set(docs) - {"kustomization.yaml"}
    check(listed == others, "kustomization.yaml lists %s, the directory has %s"
          % (sorted(listed), sorted(others)))
    if shutil.which("yamllint"):
        p = subprocess.run(["yamllint", "-d", "{extends: default, rules: {line-length: {max: 100}, "
                            "document-start: disable}}", K8S], capture_output=True, text=True)
        check(p.returncode == 0, "yamllint:\n" + p.stdout + p.stderr)
    else:
        print("    yamllint not installed: parsed with python3-yaml only", flush=True)


def container(docs):
    dep = by_kind(docs, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    check(len(pod["containers"]) == 1, "one container")
    return dep, pod, pod["containers"][0]


def test_cross_file_facts():
    docs = load_all()
    dep, pod, c = container(docs)
    cm = by_kind(docs, "ConfigMap")["data"]
    svc = by_kind(docs, "Service")
    # the port: the ConfigMap tells the server, the container declares it,
    # the Service targets it by name
    ports = {p["name"]: p for p in c["ports"]}
    port, admin = ports["http"], ports["admin"]
    check(str(port["containerPort"]) == cm["CORIO_PORT"],
          "containerPort %s, CORIO_PORT %s" % (port["containerPort"], cm["CORIO_PORT"]))
    check(cm["CORIO_HOST"] in ("0.0.0.0", "::"), "the server listens on every interface")
    admin_host, admin_port = cm["CORIO_ADMIN"].rsplit(":", 1)
    check(admin_host in ("0.0.0.0", "[::]"), "the admin listener is reachable by the kubelet")
    check(str(admin["containerPort"]) == admin_port,
          "admin containerPort %s, CORIO_ADMIN %s" % (admin["containerPort"], cm["CORIO_ADMIN"]))
    check(len(svc["spec"]["ports"]) == 1, "the Service exposes one port")
    check(svc["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"]),
          "the Service targets the container's main port")
    check(svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"],
          "the Service selects the Deployment's pods")
    for probe in ("readinessProbe", "livenessProbe"):
        check(c[probe]["httpGet"]["port"] in (admin["name"], admin["containerPort"]),
              "%s on the admin port" % probe)
    ann = dep["spec"]["template"]["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/port") == admin_port and ann.get("prometheus.io/path"),
          "Prometheus scrapes the admin port: %r" % ann)
    # the shutdown budget
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    check(pre[0].endswith("sleep"), "preStop is a pause: %s" % pre)
    drain = seconds(cm["CORIO_DRAIN_TIMEOUT"])
    grace = pod["terminationGracePeriodSeconds"]
    check(grace > float(pre[1]) + drain,
          "grace %s s > preStop %s s + drain %s s" % (grace, pre[1], drain))
    # one worker per CPU of the limit
    cpu = str(c["resources"]["limits"]["cpu"])
    cpus = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    check(int(cm["CORIO_WORKERS"]) == int(cpus), "CORIO_WORKERS %s, CPU limit %s"
          % (cm["CORIO_WORKERS"], cpu))
    # security
    psc, csc = pod["securityContext"], c["securityContext"]
    check(psc.get("runAsNonRoot") is True and int(psc["runAsUser"]) > 0, "non-root pod")
    check(csc.get("readOnlyRootFilesystem") is True, "read-only root filesystem")
    check(csc.get("allowPrivilegeEscalation") is False, "no privilege escalation")
    check(csc.get("capabilities", {}).get("drop") == ["ALL"], "every capability dropped")
    # the image's user is the numeric uid the pod runs as (a name cannot be
    # checked against runAsNonRoot by the kubelet)
    users = re.findall(r"^USER\s+(\S+)", open(DOCKERFILE, encoding="utf-8").read(), re.M)
    check(users, "the Dockerfile sets a USER")
    uid = users[-1].split(":")[0]
    check(uid == str(psc["runAsUser"]), "the image's USER %s is the pod's runAsUser %s"
          % (uid, psc["runAsUser"]))
    # the command is the image's server
    check(c["command"][0].startswith("/usr/local/bin/"), "the image's binary")


def test_probes_answer():
    docs = load_all()
    _dep, _pod, c = container(docs)
    cm = by_kind(docs, "ConfigMap")["data"]
    dep = by_kind(docs, "Deployment")
    env = {k: v for k, v in cm.items() if k not in ("CORIO_HOST", "CORIO_PORT", "CORIO_ADMIN")}
    env["CORIO_WORKERS"] = "1"
    srv = harness.Server(ARGS.hello, "--host", "127.0.0.1", "--admin", "0", env=env,
                         env_drop=())
    try:
        admin = int(srv.wait_log(r"admin listener on 127\.0\.0\.1:(\d+)").group(1))
        for probe in ("livenessProbe", "readinessProbe"):
            path = c[probe]["httpGet"]["path"]
            st, body = get(admin, path)
            check(st == 200, "%s %s: %d %r" % (probe, path, st, body))
        path = dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"]
        st, body = get(admin, path)
        check(st == 200 and b"corio_http_requests_total" in body, "%s: %d" % (path, st))
        check(harness.stop_cleanly(srv), "stopped cleanly")
    finally:
        srv.kill()


def unit(name):
    keys = {}
    for line in open(os.path.join(SYSTEMD, name), encoding="utf-8"):
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            k, v = line.split("=", 1)
            keys.setdefault(k, []).append(v)
    return keys


def test_systemd_units():
    svc = unit("corio-hello.service")
    sock = unit("corio-hello.socket")
    check(svc["Type"] == ["notify"], "Type=notify")
    check(svc["KillSignal"] == ["SIGTERM"], "KillSignal=SIGTERM")
    env = dict(e.split("=", 1) for e in svc.get("Environment", []))
    check(seconds(svc["TimeoutStopSec"][0]) > seconds(env["CORIO_DRAIN_TIMEOUT"]),
          "TimeoutStopSec above the drain")
    for k, v in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                 ("PrivateTmp", "yes")):
        check(svc.get(k) == [v], "%s=%s" % (k, v))
    check("RestrictAddressFamilies" in svc, "RestrictAddressFamilies")
    check(any(s.endswith(".socket") for s in svc["Requires"]), "the service requires its socket")
    check(sock.get("ListenStream"), "the socket listens")
    if shutil.which("systemd-analyze"):
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            os.path.join(SYSTEMD, "corio-hello.socket"),
                            os.path.join(SYSTEMD, "corio-hello.service")],
                           capture_output=True, text=True)
        # verify checks ExecStart's binary, which is not installed here
        errors = [l for l in (p.stdout + p.stderr).splitlines()
                  if l.strip() and "/usr/local/bin/hello" not in l and "Failed to" not in l]
        check(not errors, "systemd-analyze verify:\n" + "\n".join(errors))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_socket_activation():
    exe = shutil.which("systemd-socket-activate")
    if not exe:
        print("    SKIP no systemd-socket-activate (Debian package systemd)", flush=True)
        return
    port = free_port()
    p = subprocess.Popen([exe, "-l", "127.0.0.1:%d" % port, ARGS.hello], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         env=harness.clean_env(), start_new_session=True)
    try:
        # The socket is systemd-socket-activate's from its start: a connect
        # made now queues on it until the server runs (no refused
        # connection), which is the point of socket activation.
        deadline = time.monotonic() + harness.DEADLINE
        while True:
            try:
                st, body = get(port, "/plaintext")
                break
            except OSError:
                check(time.monotonic() < deadline and p.poll() is None, "activation served")
                time.sleep(0.02)
        check(st == 200 and body == b"Hello, World!", "served on the inherited socket: %d" % st)
        p.terminate()
        p.wait(timeout=harness.DEADLINE)
        err = p.stderr.read().decode(errors="replace")
        check("inherited fd" in err, "the server says it took the socket:\n" + err)
        check(p.returncode == 0, "exit 0 on SIGTERM (%s)" % p.returncode)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def notify_case(workers, abstract):
    """The runner's READY=1 once it serves and STOPPING=1 at SIGTERM, on
    $NOTIFY_SOCKET, from the main process only (MAINPID), once each."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "corio-test-notify-%d-%d" % (os.getpid(), workers)
            sock.bind("\0" + name)
            where = "@" + name
        else:
            where = os.path.join(d, "notify")
            sock.bind(where)
        sock.settimeout(harness.DEADLINE)
        srv = harness.Server(ARGS.hello, "--workers", str(workers),
                             env={"NOTIFY_SOCKET": where}, env_drop=("CORIO_",))
        try:
            msg = sock.recv(4096).decode()
            check("READY=1" in msg.split("\n"), "READY=1: %r" % msg)
            check("MAINPID=%d" % srv.pid in msg, "from the main process: %r" % msg)
            st, _ = get(srv.port, "/plaintext")
            check(st == 200, "serving once READY")
            srv.proc.terminate()
            check(srv.proc.wait(timeout=harness.DEADLINE) == 0, "exit 0")
            # Every process has ended: what it sent is queued on the socket.
            sock.setblocking(False)
            rest = []
            while True:
                try:
                    rest.append(sock.recv(4096).decode())
                except BlockingIOError:
                    break
            check(len(rest) == 1 and "STOPPING=1" in rest[0].split("\n")
                  and "MAINPID=%d" % srv.pid in rest[0],
                  "after READY, one STOPPING=1 from the main process: %r" % rest)
        finally:
            srv.kill()
            sock.close()


def test_sd_notify_one_process():
    notify_case(1, abstract=False)


def test_sd_notify_supervisor_abstract_socket():
    notify_case(2, abstract=True)


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--hello", required=True)
    ARGS = harness.parse_args(ap)
    started = time.monotonic()
    passed = failed = 0
    for case in (test_manifests_parse, test_cross_file_facts, test_probes_answer,
                 test_systemd_units, test_socket_activation, test_sd_notify_one_process,
                 test_sd_notify_supervisor_abstract_socket):
        ok = harness.run_case(case.__name__, case)
        passed, failed = passed + ok, failed + (not ok)
    harness.kill_all()
    return harness.summary(passed, failed, started)


if __name__ == "__main__":
    sys.exit(main())
