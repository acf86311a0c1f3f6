#!/usr/bin/env python3
"""What the adoption paths cost beside the tools users run today.

- SOPS during a sync: 200 Secrets encrypted by the real `sops` (scripts/interop-tools.sh) to the
  cluster's recipient and a user's, committed with 800 ConfigMaps and synced by a GitSync on
  the test API server. The controller's `reconciled` log line says how long the `decrypt`
  stage took (each file's MAC checked as written, then its rendered copy opened); the peer is
  `sops decrypt` of the same 200 files, one process per file, as a script or a pre-sync hook
  runs it, and its total.
- SealedSecret resources: 1,000 sealed files applied at once as resources with
  `kubectl apply --server-side` (as Argo CD applies them); from the start of the apply to each
  Secret written (the controller's log line), p50 and p99, and the controller's RSS after.
- kubeseal migration: 1,000 Secrets sealed by the real `kubeseal --cert` for a fresh 4096-bit
  key. `sealsync import kubeseal --key KEY -w OUT DIR` converts them in one process (opened
  and sealed to a sealsync recipient); the peer is `kubeseal --recovery-unseal` per file,
  which only opens them. Also `sealsync import kubeseal` per file, process for process.

Release builds. Not a test: run it by hand.
Usage: bench/adoption.py [--server embedded|kube-apiserver] [--sops 200] [--resources 1000]
                         [--kubeseal 1000]
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (REL, ROOT, GitRemote, rss_kib, run, start_testcluster,  # noqa: E402
                    stop_processes)
from heal_and_idle import Controller, kubectl_apply, percentile  # noqa: E402


def tools_dir():
    run([os.path.join(ROOT, "scripts", "interop-tools.sh")])
    return run([os.path.join(ROOT, "scripts", "interop-tools.sh"), "--print-dir"]).strip()


def age_keygen(path):
    run(["age-keygen", "-o", path])
    with open(path) as f:
        return re.search(r"age1[0-9a-z]+", f.read()).group(0)


def secret_yaml(namespace, name, value):
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"type: Opaque\nstringData:\n  password: {value}\n  user: app-{name}\n")


def sops_in_sync(tmp, server, count, tools):
    procs = []
    try:
        kubeconfig, _api = start_testcluster(tmp, procs, server)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
        run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
        for ns in ("sealsync-system", "bench"):
            kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
        ctl = Controller(tmp, kubeconfig)
        recipients = os.path.join(tmp, "recipients.txt")
        run([os.path.join(REL, "sealsync"), "keys", "fetch", "--kubeconfig", kubeconfig,
             "-o", recipients])
        cluster = re.findall(r"age1[0-9a-z]+", open(recipients).read())
        user_file = os.path.join(tmp, "user.txt")
        user = age_keygen(user_file)
        config_dir = os.path.join(tmp, "sops-config")
        os.makedirs(config_dir)
        with open(os.path.join(config_dir, ".sops.yaml"), "w") as f:
            f.write("creation_rules:\n  - encrypted_regex: ^(data|stringData)$\n"
                    f"    age: {','.join(cluster + [user])}\n")
        remote = GitRemote(tmp, "sops")
        path = os.path.join(remote.work, "apps")
        os.makedirs(path)
        with open(os.path.join(path, "namespace.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n")
        files = []
        for i in range(count):
            plain = secret_yaml("apps", f"db-{i:04}", f"bench-value-{i}")
            encrypted = subprocess.run(
                [os.path.join(tools, "sops"), "encrypt", "--input-type", "yaml", "--output-type",
                 "yaml", "/dev/stdin"], input=plain.encode(), cwd=config_dir, check=True,
                capture_output=True).stdout
            file = os.path.join(path, f"db-{i:04}.sops.yaml")
            with open(file, "wb") as f:
                f.write(encrypted)
            files.append(file)
        for i in range(1000 - count - 1):
            with open(os.path.join(path, f"cm-{i:04}.yaml"), "w") as f:
                f.write(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\n"
                        f"  namespace: apps\ndata:\n  value: \"{i}\"\n")
        commit = remote.commit("SOPS Secrets")
        procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
        started = time.time()
        kubectl_apply(kubectl, (
            "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: sops\n"
            f"  namespace: bench\nspec:\n  url: {remote.url()}\n  path: apps\n"
            "  interval: 1h\n  timeout: 10m\n"))
        ctl.wait_log(lambda f: f.get("message") == "reconciled" and commit in f.get("revision", ""),
                     timeout=600)
        total_s = time.time() - started
        stages = ctl.fields.get("stages", "")
        spent = {m.group(1).strip(", "): int(m.group(2))
                 for m in re.finditer(r"([a-zA-Z ]+?) (\d+) ms", stages)}
        whole = float(ctl.fields.get("seconds", total_s)) * 1000
        decrypt_ms = spent.get("decrypt", 0)
        ctl.stop()
        env = {**os.environ, "SOPS_AGE_KEY_FILE": user_file}
        start = time.perf_counter()
        for file in files:
            subprocess.run([os.path.join(tools, "sops"), "decrypt", file], env=env, check=True,
                           capture_output=True)
        peer_ms = (time.perf_counter() - start) * 1000
        print(f"SOPS during a sync ({count} SOPS Secrets among 1,000 objects, {server}):")
        print(f"  GitSync created -> reconciled: {total_s:.2f} s; the reconcile: {whole:.0f} ms")
        print(f"  stages: {stages}")
        print(f"  decrypt stage: {decrypt_ms} ms ({decrypt_ms / count:.3f} ms per file, "
              f"{100 * decrypt_ms / whole:.1f} % of the reconcile)")
        print(f"  sops decrypt, one process per file: {peer_ms:.0f} ms "
              f"({peer_ms / count:.1f} ms per file); ratio {peer_ms / max(decrypt_ms, 1):.0f}x")
    finally:
        stop_processes(procs)


def written_times(log_path, count, timeout=600):
    """The timestamps of the controller's first `count` "Secret written" lines."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        stamps = []
        with open(log_path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("fields", {}).get("message") == "sealed secret resource: Secret written":
                    stamp = entry["timestamp"].replace("Z", "+00:00")
                    stamps.append(datetime.datetime.fromisoformat(stamp).timestamp())
        if len(stamps) >= count:
            return stamps[:count]
        time.sleep(0.2)
    sys.exit(f"only {len(stamps)} of {count} Secrets were written within {timeout} s")


def resources_at_scale(tmp, server, count):
    procs = []
    try:
        kubeconfig, _api = start_testcluster(tmp, procs, server)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
        run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
        for ns in ("sealsync-system", "apps"):
            kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
        ctl = Controller(tmp, kubeconfig)
        recipients = os.path.join(tmp, "recipients.txt")
        run([os.path.join(REL, "sealsync"), "keys", "fetch", "--kubeconfig", kubeconfig,
             "-o", recipients])
        plain = os.path.join(tmp, "plain")
        os.makedirs(plain)
        for i in range(count):
            with open(os.path.join(plain, f"db-{i:04}.yaml"), "w") as f:
                f.write(secret_yaml("apps", f"db-{i:04}", f"bench-{i}"))
        sealed = os.path.join(tmp, "sealed.yaml")
        run([os.path.join(REL, "sealsync"), "seal", "--recipients-file", recipients, "-f", plain,
             "-w", sealed])
        started = time.time()
        run(kubectl + ["apply", "--server-side", "-f", sealed])
        applied = time.time() - started
        written = written_times(ctl.log_path, count)
        written = [at - started for at in written]
        rss = rss_kib(ctl.proc.pid)
        ctl.stop()
        print(f"SealedSecret resources ({count} applied at once, {server}):")
        print(f"  kubectl apply --server-side of the {count}: {applied:.2f} s")
        print(f"  start of the apply -> Secret written: p50 {percentile(written, 50):.2f} s, "
              f"p99 {percentile(written, 99):.2f} s, last {max(written):.2f} s")
        print(f"  controller RSS after: {rss / 1024:.0f} MiB")
    finally:
        stop_processes(procs)


def kubeseal_import(tmp, count, tools):
    key = os.path.join(tmp, "tls.key")
    cert = os.path.join(tmp, "tls.crt")
    run(["openssl", "req", "-x509", "-newkey", "rsa:4096", "-nodes", "-days", "2", "-subj",
         "/CN=sealed-secret/O=sealed-secret", "-keyout", key, "-out", cert])
    identity = os.path.join(tmp, "sealsync-id.txt")
    recipient = run([os.path.join(REL, "sealsync"), "keys", "generate", "-o", identity]).strip()
    src = os.path.join(tmp, "kubeseal")
    os.makedirs(src)
    files = []
    for i in range(count):
        sealed = subprocess.run([os.path.join(tools, "kubeseal"), "--cert", cert, "-o", "yaml"],
                                input=secret_yaml("apps", f"db-{i:04}", f"bench-{i}").encode(),
                                check=True, capture_output=True).stdout
        file = os.path.join(src, f"db-{i:04}.yaml")
        with open(file, "wb") as f:
            f.write(sealed)
        files.append(file)
    out = os.path.join(tmp, "imported.yaml")
    start = time.perf_counter()
    run([os.path.join(REL, "sealsync"), "import", "kubeseal", "--key", key, "-r", recipient,
         "-w", out, src])
    ours_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    for file in files:
        run([os.path.join(REL, "sealsync"), "import", "kubeseal", "--key", key, "-r", recipient,
             file])
    ours_each_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    for file in files:
        run([os.path.join(tools, "kubeseal"), "--recovery-unseal", "--recovery-private-key", key,
             "-f", file, "-o", "yaml"])
    peer_ms = (time.perf_counter() - start) * 1000
    print(f"kubeseal migration ({count} files, RSA-4096):")
    print(f"  sealsync import kubeseal, one process: {ours_ms:.0f} ms "
          f"({ours_ms / count:.2f} ms per file, opened and sealed)")
    print(f"  sealsync import kubeseal, per file: {ours_each_ms:.0f} ms")
    print(f"  kubeseal --recovery-unseal, per file: {peer_ms:.0f} ms (opened only)")
    print(f"  ratio (peer per file / sealsync one process): {peer_ms / ours_ms:.0f}x; "
          f"process for process: {peer_ms / ours_each_ms:.2f}x")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="embedded")
    ap.add_argument("--sops", type=int, default=200)
    ap.add_argument("--resources", type=int, default=1000)
    ap.add_argument("--kubeseal", type=int, default=1000)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "-p", "sealsync", "--bin", "sealsync-controller", "--bin", "sealsync-testcluster",
         "--bin", "sealsync"], cwd=ROOT)
    tools = tools_dir()
    with tempfile.TemporaryDirectory() as tmp:
        sops_in_sync(tmp, args.server, args.sops, tools)
    with tempfile.TemporaryDirectory() as tmp:
        resources_at_scale(tmp, args.server, args.resources)
    with tempfile.TemporaryDirectory() as tmp:
        kubeseal_import(tmp, args.kubeseal, tools)


if __name__ == "__main__":
    main()
