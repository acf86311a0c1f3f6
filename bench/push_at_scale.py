#!/usr/bin/env python3
"""One changed object in a large repository: push (webhook) → applied, as the repository grows.

For each size (1,000, 5,000 and 20,000 ConfigMaps by default; past 5,000, four to a file) one GitSync syncs the whole
repository, then `--pushes` commits each change one ConfigMap and send a signed push webhook.
The time runs from the webhook request to the controller's `reconciled` log line for that
revision (its status is written by then). Two controllers, one after the other, on the same
cluster and repository:
- incremental: the default; only the changed object is planned and written;
- full: `--full-resync-period 0s`, which plans every object of every revision, as sealsync did
  before incremental revisions and as Flux's kustomize-controller does at every reconcile.

Target: incremental p50 <= 1 s at every size, and flat as the repository grows. Release
builds, the embedded test server. Not a test: run it by hand.
Usage: bench/push_at_scale.py [--sizes 1000,5000,20000] [--pushes 20]
"""
import argparse
import hashlib
import hmac
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, GitRemote, rss_kib, run, start_testcluster  # noqa: E402
from heal_and_idle import (TOKEN, Controller, configmap, kubectl_apply,  # noqa: E402
                           percentile, wait_ready)


# A path holds at most 10,000 files (the controller's limit): large repositories keep several
# objects per file, as multi-document manifests.
PER_FILE = 4


def write_files(work_dir, values, size, only=None):
    """Writes the objects, PER_FILE documents per file once past 5,000 objects; `only`
    rewrites just the file that holds that object."""
    per_file = 1 if size <= 5000 else PER_FILE
    files = range(0, size, per_file) if only is None else [only - only % per_file]
    for start in files:
        docs = [configmap("bench-scale", f"cm-{i:05}", values[i])
                for i in range(start, min(start + per_file, size))]
        with open(os.path.join(work_dir, f"cm-{start:05}.yaml"), "w") as f:
            f.write("---\n".join(docs))


def pushes(ctl, remote, work_dir, hook_path, count, size, tag, values):
    body = json.dumps({"ref": "refs/heads/main",
                       "repository": {"clone_url": remote.url()}}).encode()
    signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    latencies = []
    for i in range(count):
        # A different object each time, spread over the repository.
        n = (i * 7919) % size
        values[n] = f"{tag}-{i}"
        write_files(work_dir, values, size, only=n)
        commit = remote.commit(f"{tag} push {i}")
        start = time.time()
        ctl.post(hook_path, {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
                            "Content-Type": "application/json"}, body)
        done = ctl.wait_log(lambda f: f.get("message") == "reconciled"
                            and f.get("revision", "").endswith(commit), timeout=600)
        latencies.append(done - start)
    return latencies, commit


def measure(size, count):
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        ctl = None
        try:
            kubeconfig, api = start_testcluster(tmp, procs)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                       os.path.join(tmp, "kcache")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            for ns in ("sealsync-system", "bench-scale"):
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            kubectl_apply(kubectl, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hook\n"
                          f"  namespace: bench-scale\nstringData:\n  token: {TOKEN}\n")
            remote = GitRemote(tmp, "scale")
            work_dir = os.path.join(remote.work, "objects")
            os.makedirs(work_dir)
            values = {i: f"value-{i}" for i in range(size)}
            write_files(work_dir, values, size)
            first = remote.commit("objects")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            head = first
            results = {}
            for mode, extra in (("incremental", ()), ("full", ("--full-resync-period", "0s"))):
                ctl = Controller(tmp, kubeconfig, extra)
                start = time.time()
                kubectl_apply(kubectl, (
                    "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: scale\n"
                    f"  namespace: bench-scale\nspec:\n  url: {remote.url()}\n  interval: 1h\n"
                    "  path: objects\n  timeout: 30m\n  webhook:\n    secretRef:\n      name: hook\n"))
                # The controller's first reconcile (of every object, after its start) ends
                # before the first push.
                ctl.wait_log(lambda f: f.get("message") == "reconciled"
                             and f.get("revision", "").endswith(head), timeout=1800)
                first_sync = time.time() - start
                status = wait_ready(api, "bench-scale", "scale", head, timeout=1800)
                # Let the watches list before the first push.
                time.sleep(3)
                latencies, head = pushes(ctl, remote, work_dir, status["webhookPath"], count,
                                         size, mode, values)
                planned = ctl.metric(f'sealsync_revisions_planned_total{{mode="{mode}"}}')
                results[mode] = (latencies, first_sync, rss_kib(ctl.proc.pid, "VmHWM"), planned)
                ctl.stop()
                ctl = None
            return results
        finally:
            if ctl:
                ctl.stop()
            for p in reversed(procs):
                p.kill()
                p.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--pushes", type=int, default=20)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)
    for size in (int(s) for s in args.sizes.split(",")):
        results = measure(size, args.pushes)
        inc, full = results["incremental"], results["full"]
        p = {m: (percentile(r[0], 50), percentile(r[0], 95)) for m, r in results.items()}
        print(f"{size} objects, one changed per push, {args.pushes} pushes:")
        for mode, r in results.items():
            print(f"  {mode:11}: push -> applied p50 {p[mode][0]:.3f} s, p95 {p[mode][1]:.3f} s; "
                  f"sync after start {r[1]:.1f} s; peak RSS {r[2] / 1024:.1f} MiB; "
                  f"revisions planned {mode}: {r[3]:.0f}")
        print(f"  ratio p50 incremental / full: {p['incremental'][0] / p['full'][0]:.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
