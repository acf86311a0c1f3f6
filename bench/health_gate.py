#!/usr/bin/env python3
"""Health gating (`spec.wait`) of 1,000 Deployments: what it costs in API requests, and how
soon Ready follows the last object turning healthy.

kube-apiserver runs no Deployment controller, so the benchmark plays it: it writes each
Deployment's status subresource (a complete rollout), as the tests do.

- Requests: the same 1,000 Deployments (and their Namespace) synced by two GitSyncs, one
  without `wait` and one with it, each into a namespace of its own. kube-apiserver's
  `apiserver_request_total` by verb and resource over each sync: the difference is what
  health gating adds, beside the benchmark's own requests (a GET and a status PATCH per
  Deployment, GitSync reads). Target: the watches only (a list and a watch per kind waited
  for), nothing per object.
- Latency: with the waiting GitSync applied and healthy, a commit changes one Deployment;
  once the controller is waiting for it (the `Reconciling` message says `999 of 1000`… or
  1,000 with the Namespace), the benchmark completes its rollout and notes the time; the
  controller's `reconciled` log line (written once the status says Ready) ends the sample.
  Target: p50 <= 100 ms.

Release builds (`cargo build --release -p sealsync-controller -p sealsync-tests --bins`).
Not a test: run it by hand.
Usage: bench/health_gate.py [--server kube-apiserver|embedded] [--objects 1000] [--samples 10]
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (ROOT, GitRemote, run, start_testcluster,  # noqa: E402
                    stop_processes)
from heal_and_idle import Controller, kubectl_apply, percentile  # noqa: E402


class Counted:
    """The API client, counting its own requests."""

    def __init__(self, api):
        self.api = api
        self.count = 0

    def request(self, *args, **kw):
        self.count += 1
        return self.api.request(*args, **kw)


def deployment(namespace, name, image):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\nspec:\n  replicas: 1\n  selector:\n"
            f"    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n"
            f"      labels: {{app: {name}}}\n    spec:\n      containers:\n"
            f"      - name: app\n        image: {image}\n")


def write_tree(work, namespace, objects, image_of):
    path = os.path.join(work, namespace)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "namespace.yaml"), "w") as f:
        f.write(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n")
    for i in range(objects):
        with open(os.path.join(path, f"d-{i:05}.yaml"), "w") as f:
            f.write(deployment(namespace, f"d-{i:05}", image_of(i)))


def gitsync(name, url, path, wait):
    return (f"apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: {name}\n"
            f"  namespace: bench\nspec:\n  url: {url}\n  path: {path}\n  interval: 1h\n"
            f"  timeout: 10m\n  wait: {'true' if wait else 'false'}\n")


def gitsync_status(api, name):
    return json.loads(api.request(
        "GET", f"/apis/sealsync.dev/v1/namespaces/bench/gitsyncs/{name}")).get("status", {})


def condition(status, kind):
    found = [c for c in status.get("conditions", []) if c["type"] == kind]
    return found[0] if found else {}


def roll_out(api, namespace, name):
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    generation = json.loads(api.request("GET", path))["metadata"]["generation"]
    status = {"status": {
        "observedGeneration": generation, "replicas": 1, "updatedReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "Bench",
                        "message": "up", "lastUpdateTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}
    api.request("PATCH", path + "/status", status, "application/merge-patch+json")


def requests_by_kind(api):
    """kube-apiserver's request counts by (verb, resource, subresource), from its /metrics."""
    counts = {}
    for line in api.request("GET", "/metrics").decode().splitlines():
        if not line.startswith("apiserver_request_total{"):
            continue
        labels, value = line.rsplit(" ", 1)
        fields = dict(part.split("=", 1) for part in labels[len("apiserver_request_total{"):-1]
                      .split(",") if "=" in part)
        fields = {k: v.strip('"') for k, v in fields.items()}
        if not fields.get("resource"):
            continue
        key = (fields.get("verb", ""), fields["resource"], fields.get("subresource", ""))
        counts[key] = counts.get(key, 0) + float(value)
    return counts


def delta(after, before):
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0}


def wait_for(what, check, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    sys.exit(f"timed out waiting for {what}")


def applied(api, name, commit):
    status = gitsync_status(api, name)
    ready = condition(status, "Ready")
    if ready.get("status") == "False":
        sys.exit(f"{name}: {ready.get('message')}")
    return (status.get("lastAppliedRevision", "").endswith(commit)
            and ready.get("status") == "True")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="kube-apiserver")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        try:
            kubeconfig, raw = start_testcluster(tmp, procs, args.server)
            api = Counted(raw)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            for ns in ("sealsync-system", "bench"):
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            remote = GitRemote(tmp, "health")
            for ns in ("plain", "waited"):
                write_tree(remote.work, ns, args.objects, lambda i: "app:1")
            commit = remote.commit("1,000 Deployments twice")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            ctl = Controller(tmp, kubeconfig)

            # Without wait: applied is Ready. Requests by kind, over the sync.
            before = requests_by_kind(raw)
            kubectl_apply(kubectl, gitsync("plain", remote.url(), "plain", False))
            wait_for("the plain GitSync", lambda: applied(api, "plain", commit))
            plain = delta(requests_by_kind(raw), before)

            # With wait: the benchmark completes every rollout once the controller waits.
            before = requests_by_kind(raw)
            start = time.time()
            kubectl_apply(kubectl, gitsync("waited", remote.url(), "waited", True))
            wait_for("the wait", lambda: "health check" in condition(
                gitsync_status(api, "waited"), "Reconciling").get("message", ""))
            for i in range(args.objects):
                roll_out(api, "waited", f"d-{i:05}")
            wait_for("the waiting GitSync", lambda: applied(api, "waited", commit))
            waited_seconds = time.time() - start
            waited = delta(requests_by_kind(raw), before)

            # Latency: one Deployment changes; the last object turning healthy to Ready.
            samples = []
            for n in range(args.samples):
                write_tree(remote.work, "waited", args.objects,
                           lambda i, n=n: f"app:{n + 2}" if i == 0 else "app:1")
                commit = remote.commit(f"sample {n}")
                raw.request("PATCH", "/apis/sealsync.dev/v1/namespaces/bench/gitsyncs/waited",
                            {"metadata": {"annotations": {"sealsync.dev/requestedAt": f"s{n}"}}},
                            "application/merge-patch+json")
                total = args.objects + 1  # the Namespace too
                wait_for("the controller to wait for one Deployment", lambda: (
                    f"{total - 1} of {total} object(s) healthy" in condition(
                        gitsync_status(api, "waited"), "Reconciling").get("message", "")
                    and commit in condition(gitsync_status(api, "waited"),
                                            "Reconciling").get("message", "")))
                healthy_at = time.time()
                roll_out(api, "waited", "d-00000")
                ready_at = ctl.wait_log(lambda f: f.get("message") == "reconciled"
                                        and commit in f.get("revision", ""))
                samples.append((ready_at - healthy_at) * 1000)
                wait_for("Ready", lambda: applied(api, "waited", commit))

            print(f"objects per GitSync: {args.objects} Deployments and their Namespace")
            print(f"sync with wait: {waited_seconds:.1f} s, the benchmark's "
                  f"{args.objects} status writes included")
            print("API requests by verb/resource, sync without wait -> with wait "
                  "(the benchmark's own GETs of Deployments and status PATCHes, and its GitSync "
                  "reads, are in both columns where they apply):")
            for key in sorted(set(plain) | set(waited)):
                a, b = plain.get(key, 0), waited.get(key, 0)
                if a or b:
                    verb, resource, sub = key
                    name = f"{verb} {resource}{'/' + sub if sub else ''}"
                    print(f"  {name:40} {a:7.0f} -> {b:7.0f}")
            print(f"last object healthy -> Ready (ms), {len(samples)} samples: "
                  f"p50 {percentile(samples, 50):.0f}, p90 {percentile(samples, 90):.0f}, "
                  f"max {max(samples):.0f}")
            ctl.stop()
        finally:
            stop_processes(procs)


if __name__ == "__main__":
    main()
