#!/usr/bin/env python3
"""Seconds, not minutes: push → applied through the webhook, manual edit → corrected by the
watches, and the cost of 10 idle GitSyncs, side by side with polling at Flux's and Argo CD's
defaults.

- push → applied: a commit is pushed to a repository served by `git daemon`, then a signed
  GitHub push webhook is sent to the controller. The time runs from the webhook request to the
  controller's `reconciled` log line for that revision (the status is written by then).
  Polling at Flux's GitRepository default (1m) and Argo CD's (120 s + up to 60 s jitter) is
  simulated: a push lands at a random moment and waits for the next poll.
- edit → corrected: a `kubectl edit`-style merge patch of a distinct ConfigMap each time;
  the time runs from the PATCH to the controller's `drift corrected` log line. Flux undoes
  drift only at the next Kustomization interval (its docs recommend 60m for production).
- idle: 10 GitSyncs of 1,000 ConfigMaps each, polling every minute, nothing changing. The
  test server counts the requests it receives; the controller's CPU is read from /proc. Then
  the same with `--full-resync-period 0s`, which re-plans every object at every poll as Flux's
  kustomize-controller does at each interval.
- memory: the controller's RSS with those 10,000 objects applied and watched.

Targets: push → applied p50 <= 1 s; edit → corrected p50 <= 1 s; zero idle writes; RSS <= 96
MiB. Release builds, the embedded test server. Not a test: run it by hand.
Usage: bench/heal_and_idle.py [--pushes 20] [--edits 20] [--gitsyncs 10] [--objects 1000]
       [--idle-minutes 3]
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

from common import (REL, ROOT, GitRemote, cpu_seconds, free_port, rss_kib, run,
                    start_testcluster, wait_for_line, wait_gitsync_ready)

TOKEN = "bench-webhook-token"


def percentile(values, p):
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def configmap(namespace, name, value):
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            f"data:\n  mode: {value}\n  url: https://example.com/{name}\n")


class Controller:
    """The controller as a process, with JSON logs to follow."""

    def __init__(self, tmp, kubeconfig, extra=()):
        self.port = free_port()
        self.log_path = os.path.join(tmp, f"controller-{self.port}.log")
        self.proc = subprocess.Popen(
            [os.path.join(REL, "sealsync-controller"), "--kubeconfig", kubeconfig,
             "--namespace", "sealsync-system", "--http-addr", f"127.0.0.1:{self.port}",
             "--data-dir", os.path.join(tmp, f"data-{self.port}"), "--log-format", "json",
             # The benchmark's GitSyncs are the platform's own, in many namespaces.
             "--trusted-namespaces=*", *extra],
            stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("BENCH_RUST_LOG", "info,kube=warn")})
        wait_for_line(self.log_path, "controller: running")
        self.offset = 0
        self.fields = {}

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        # BENCH_KEEP_LOGS=DIR keeps each controller's log for a closer look.
        keep = os.environ.get("BENCH_KEEP_LOGS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.log_path, keep)

    def wait_log(self, predicate, timeout=60):
        """The timestamp (epoch seconds) of the first new JSON log line `predicate` accepts;
        its fields stay in `self.fields`."""
        deadline = time.time() + timeout
        with open(self.log_path) as f:
            f.seek(self.offset)
            buffer = ""
            while time.time() < deadline:
                chunk = f.read()
                if not chunk:
                    time.sleep(0.005)
                    continue
                buffer += chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    try:
                        entry = json.loads(line)
                    except ValueError:
                        continue
                    if predicate(entry.get("fields", {})):
                        self.fields = entry.get("fields", {})
                        self.offset = f.tell() - len(buffer.encode())
                        stamp = entry["timestamp"].replace("Z", "+00:00")
                        return datetime.datetime.fromisoformat(stamp).timestamp()
        sys.exit(f"the controller did not log what was awaited within {timeout} s")

    def post(self, path, headers, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        if response.status != 200:
            sys.exit(f"POST {path}: {response.status} {text}")
        return text

    def metric(self, sample):
        conn = http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request("GET", "/metrics")
        for line in conn.getresponse().read().decode().splitlines():
            if line.startswith(sample + " "):
                return float(line.split()[-1])
        return 0.0


def kubectl_apply(kubectl, text):
    subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"], input=text, text=True,
                   check=True, capture_output=True)


def wait_ready(api, namespace, name, commit, timeout=600):
    return wait_gitsync_ready(api, namespace, name, commit, timeout)


def stats(api):
    return json.loads(api.request("GET", "/_testcluster/stats"))["requests"]


def simulate_polling(period, jitter, samples=100_000):
    """Seconds from a push at a random moment to the next poll of a loop that waits
    `period` plus up to `jitter` between polls."""
    rng = random.Random(7)
    waits = []
    for _ in range(samples):
        gap = period + rng.uniform(0, jitter)
        waits.append(rng.uniform(0, gap))
    return percentile(waits, 50), percentile(waits, 95)


def push_to_applied(args, ctl, remote, work_dir, hook_path):
    body = json.dumps({"ref": "refs/heads/main",
                       "repository": {"clone_url": remote.url()}}).encode()
    signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
    latencies = []
    for i in range(args.pushes):
        with open(os.path.join(work_dir, "cm.yaml"), "w") as f:
            f.write(configmap("bench-push", "pushed", f"v{i}"))
        commit = remote.commit(f"push {i}")
        start = time.time()
        ctl.post(hook_path, {"X-GitHub-Event": "push", "X-Hub-Signature-256": signature,
                            "Content-Type": "application/json"}, body)
        done = ctl.wait_log(lambda f: f.get("message") == "reconciled"
                            and f.get("revision", "").endswith(commit))
        latencies.append(done - start)
    return latencies


def edit_to_corrected(args, ctl, api, patched):
    latencies = []
    for i in range(args.edits):
        name = f"edit-{i:02}"
        start = time.time()
        api.request("PATCH", f"/api/v1/namespaces/bench-push/configmaps/{name}"
                    "?fieldManager=kubectl-edit", {"data": {"mode": "edited"}},
                    content_type="application/merge-patch+json")
        patched.append(time.time() - start)
        done = ctl.wait_log(lambda f: f.get("message") == "drift corrected"
                            and f.get("object") == f"ConfigMap bench-push/{name}")
        latencies.append(done - start)
        time.sleep(0.2)
    return latencies


def idle(ctl, api, minutes):
    """Requests, writes, CPU seconds and unchanged polls in `minutes`, scaled to an hour."""
    before_requests, before_cpu = stats(api), cpu_seconds(ctl.proc.pid)
    before_polls = ctl.metric("sealsync_polls_unchanged_total")
    time.sleep(minutes * 60)
    after_requests, after_cpu = stats(api), cpu_seconds(ctl.proc.pid)
    scale = 60 / minutes
    return {
        "requests": (after_requests["total"] - before_requests["total"]) * scale,
        "writes": (after_requests["writes"] - before_requests["writes"]) * scale,
        "cpu": (after_cpu - before_cpu) * scale,
        "polls": (ctl.metric("sealsync_polls_unchanged_total") - before_polls) * scale,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--gitsyncs", type=int, default=10)
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--idle-minutes", type=float, default=3)
    ap.add_argument("--log-dir", help="copy the controller and server logs here")
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)

    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        ctl = None
        try:
            kubeconfig, api = start_testcluster(tmp, procs)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                       os.path.join(tmp, "kcache")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            namespaces = ["sealsync-system", "bench-push"] + [
                f"bench-idle-{k}" for k in range(args.gitsyncs)]
            for ns in namespaces:
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            kubectl_apply(kubectl, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hook\n"
                          f"  namespace: bench-push\nstringData:\n  token: {TOKEN}\n")

            # Two repositories: push/ in one for the webhook and edits, idle-K/ in the other for
            # the idle GitSyncs, which the pushes must not change.
            remote = GitRemote(tmp, "push")
            idle_remote = GitRemote(tmp, "idle")
            push_dir = os.path.join(remote.work, "push")
            os.makedirs(push_dir)
            for i in range(args.edits):
                with open(os.path.join(push_dir, f"edit-{i:02}.yaml"), "w") as f:
                    f.write(configmap("bench-push", f"edit-{i:02}", "blue"))
            for k in range(args.gitsyncs):
                d = os.path.join(idle_remote.work, f"idle-{k}")
                os.makedirs(d)
                for i in range(args.objects):
                    with open(os.path.join(d, f"cm-{i:04}.yaml"), "w") as f:
                        f.write(configmap(f"bench-idle-{k}", f"cm-{i:04}", f"value-{i}"))
            first = remote.commit("objects")
            idle_first = idle_remote.commit("objects")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            idle_remote.port = remote.port

            ctl = Controller(tmp, kubeconfig)
            start = time.time()
            kubectl_apply(kubectl, (
                "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: pushed\n"
                f"  namespace: bench-push\nspec:\n  url: {remote.url()}\n  interval: 1h\n"
                "  path: push\n  webhook:\n    secretRef:\n      name: hook\n"))
            for k in range(args.gitsyncs):
                kubectl_apply(kubectl, (
                    "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: idle\n"
                    f"  namespace: bench-idle-{k}\nspec:\n  url: {idle_remote.url()}\n  interval: 1m\n"
                    f"  path: idle-{k}\n"))
            for k in range(args.gitsyncs):
                wait_ready(api, f"bench-idle-{k}", "idle", idle_first)
            first_sync = time.time() - start
            hook_path = wait_ready(api, "bench-push", "pushed", first)["webhookPath"]

            checks = ctl.metric('sealsync_apply_noops_total{source="heal"}')
            pushes = push_to_applied(args, ctl, remote, push_dir, hook_path)
            patched = []
            edits = edit_to_corrected(args, ctl, api, patched)

            # Idle: let every GitSync poll once after its watches listed.
            time.sleep(65)
            quiet = idle(ctl, api, args.idle_minutes)
            rss, hwm = rss_kib(ctl.proc.pid), rss_kib(ctl.proc.pid, "VmHWM")
            ctl.stop()

            # Flux's way: every object re-planned (GET and dry-run) at every poll.
            ctl = Controller(tmp, kubeconfig, ["--full-resync-period", "0s"])
            time.sleep(65)
            replan = idle(ctl, api, args.idle_minutes)
        finally:
            if ctl:
                ctl.stop()
            for p in reversed(procs):
                p.kill()
                p.wait()
            if args.log_dir:
                os.makedirs(args.log_dir, exist_ok=True)
                for name in os.listdir(tmp):
                    if name.endswith(".log"):
                        shutil.copy(os.path.join(tmp, name), args.log_dir)

    flux_push = simulate_polling(60, 0)
    argo_push = simulate_polling(120, 60)
    print(f"push -> applied over {len(pushes)} webhooks: p50 {percentile(pushes, 50):.3f} s, "
          f"p95 {percentile(pushes, 95):.3f} s (target p50 <= 1 s)")
    print(f"  polling, Flux GitRepository 1m : p50 {flux_push[0]:.1f} s, p95 {flux_push[1]:.1f} s")
    print(f"  polling, Argo CD 120 s + jitter : p50 {argo_push[0]:.1f} s, p95 {argo_push[1]:.1f} s")
    print(f"  ratio p50 sealsync / Flux poll  : {percentile(pushes, 50) / flux_push[0]:.4f}")
    print(f"edit -> corrected over {len(edits)} edits: p50 {percentile(edits, 50):.3f} s, "
          f"p95 {percentile(edits, 95):.3f} s (target p50 <= 1 s)")
    for interval in (10, 60):
        p50, p95 = simulate_polling(interval * 60, 0)
        print(f"  Flux Kustomization {interval}m interval : p50 {p50:.0f} s, p95 {p95:.0f} s")
    total = args.gitsyncs * args.objects
    print(f"first sync of {args.gitsyncs} GitSyncs x {args.objects} objects (and 21 more): "
          f"{first_sync:.1f} s; self-heal checks that wrote nothing by then: {checks:.0f}")
    print(f"idle, per hour, {args.gitsyncs} GitSyncs polling every minute, watched:")
    print(f"  API requests {quiet['requests']:.0f}, writes {quiet['writes']:.0f}, "
          f"CPU {quiet['cpu']:.2f} s, unchanged polls {quiet['polls']:.0f}")
    print(f"idle, per hour, re-planned at every poll (--full-resync-period 0s, Flux's way):")
    print(f"  API requests {replan['requests']:.0f}, writes {replan['writes']:.0f}, "
          f"CPU {replan['cpu']:.2f} s")
    print(f"controller RSS with {total} objects watched: {rss / 1024:.1f} MiB "
          f"(peak {hwm / 1024:.1f} MiB; target <= 96)")
    print(f"push latencies: {[round(x, 3) for x in pushes]}")
    print(f"edit latencies: {[round(x, 3) for x in edits]}")
    print(f"  of which the PATCH itself: {[round(x, 3) for x in patched]}")


if __name__ == "__main__":
    main()
