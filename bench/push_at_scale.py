#!/usr/bin/env python3
"""One changed object in a large repository: push → applied, as the repository grows, side by
side with Flux and with `kubectl apply --server-side` of the whole repository.

For each size (1,000, 5,000 and 20,000 ConfigMaps by default; past 5,000, four to a file) the
repository is synced once from nothing (the cold sync), then `--pushes` commits each change
one ConfigMap. Every peer runs against the same API server and the same repository, served by
smart HTTP, one after the other:
- sealsync, incremental: the default. A signed push webhook starts the sync; only the changed
  file is read and only the changed object planned and written.
- sealsync, full: `--full-resync-period 0s`, which plans every object of every revision, as
  sealsync did before incremental revisions.
- Flux: source-controller and kustomize-controller built from their Go modules
  (bench/flux.sh). A push asks the GitRepository to reconcile, as Flux's webhook Receiver
  does; the Kustomization applies the new artifact (into a namespace of its own).
- kubectl: `kubectl apply --server-side` of the whole repository after each push.
Flux and kubectl take seconds to minutes per push at the larger sizes: they get
`--flux-pushes` (5) and `--kubectl-pushes` (2) pushes.
The time runs from the request (webhook, annotation or kubectl start) to the moment the
GitSync's or the Kustomization's status, followed by a watch, says the commit is applied and
Ready. Peak RSS is the controllers' VmHWM (both of Flux's together).

Target: sealsync incremental p50 <= 1 s at every size, and flat as the repository grows; cold
sync no slower than before and faster than Flux. Release builds. Not a test: run it by hand.
Usage: bench/push_at_scale.py [--sizes 1000,5000,20000] [--pushes 20]
       [--peers incremental,full,flux,kubectl] [--server kube-apiserver|embedded]
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
from common import (ROOT, GitRemote, applied_and_ready, rss_kib, run,  # noqa: E402
                    start_testcluster, stop_processes)
from fluxpeer import KUSTOMIZATIONS, Flux  # noqa: E402
from heal_and_idle import TOKEN, Controller, configmap, kubectl_apply, percentile  # noqa: E402

# A path holds at most 10,000 files (the controller's limit): large repositories keep several
# objects per file, as multi-document manifests.
PER_FILE = 4
NAMESPACE = "bench-scale"
GITSYNCS = f"/apis/sealsync.dev/v1/namespaces/{NAMESPACE}/gitsyncs"
MODES = {"incremental": (), "full": ("--full-resync-period", "0s")}


def write_files(work_dir, values, size, only=None):
    """Writes the objects, PER_FILE documents per file once past 5,000 objects; `only`
    rewrites just the file that holds that object."""
    per_file = 1 if size <= 5000 else PER_FILE
    files = range(0, size, per_file) if only is None else [only - only % per_file]
    for start in files:
        docs = [configmap(NAMESPACE, f"cm-{i:05}", values[i])
                for i in range(start, min(start + per_file, size))]
        with open(os.path.join(work_dir, f"cm-{start:05}.yaml"), "w") as f:
            f.write("---\n".join(docs))


class Repository:
    """The repository every peer syncs, and the pushes that change it."""

    def __init__(self, tmp, size):
        self.remote = GitRemote(tmp, "scale")
        self.work_dir = os.path.join(self.remote.work, "objects")
        os.makedirs(self.work_dir)
        self.size = size
        self.values = {i: f"value-{i}" for i in range(size)}
        write_files(self.work_dir, self.values, size)
        self.head = self.remote.commit("objects")
        self.pushed = 0

    def push(self, tag):
        """Commits a change of one object, a different one each time, spread over the
        repository; the new commit."""
        n = (self.pushed * 7919) % self.size
        self.pushed += 1
        self.values[n] = f"{tag}-{self.pushed}"
        write_files(self.work_dir, self.values, self.size, only=n)
        self.head = self.remote.commit(f"{tag} push {self.pushed}")
        return self.head


def run_sealsync(tmp, kubeconfig, kubectl, api, repo, mode, pushes, cold):
    ctl = Controller(tmp, kubeconfig, MODES[mode])
    watch = api.watch(GITSYNCS, "scale")
    try:
        start = time.time()
        kubectl_apply(kubectl, (
            "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: scale\n"
            f"  namespace: {NAMESPACE}\nspec:\n  url: {repo.remote.http_url()}\n"
            "  interval: 1h\n  path: objects\n  timeout: 30m\n  webhook:\n    secretRef:\n"
            "      name: hook\n"))
        first = watch.wait(applied_and_ready(repo.head), timeout=1800) - start
        hook = watch.events[-1][1]["status"]["webhookPath"]
        # Let the watches list before the first push.
        time.sleep(3)
        body = json.dumps({"ref": "refs/heads/main",
                           "repository": {"clone_url": repo.remote.http_url()}}).encode()
        headers = {"X-GitHub-Event": "push", "Content-Type": "application/json",
                   "X-Hub-Signature-256": "sha256=" + hmac.new(
                       TOKEN.encode(), body, hashlib.sha256).hexdigest()}
        latencies, stages = [], []
        for _ in range(pushes):
            commit = repo.push(mode)
            mark = watch.mark()
            start = time.time()
            ctl.post(hook, headers, body)
            latencies.append(watch.wait(applied_and_ready(commit), since=mark) - start)
            ctl.wait_log(lambda f: f.get("message") == "reconciled"
                         and f.get("revision", "").endswith(commit), timeout=600)
            f = ctl.fields
            stages.append((latencies[-1], f"{f.get('stages', '')}, status {f.get('status_ms')} ms"))
        planned = ctl.metric(f'sealsync_revisions_planned_total{{mode="{mode}"}}')
        stages.sort()
        # Only the first controller syncs from nothing; the next one finds it all applied.
        return {"latencies": latencies, "first": first if cold else None,
                "rss": rss_kib(ctl.proc.pid, "VmHWM"),
                "note": f"revisions planned {mode}: {planned:.0f}; median push's stages: "
                        f"{stages[len(stages) // 2][1]}"}
    finally:
        watch.stopped = True
        ctl.stop()


def run_flux(tmp, kubeconfig, kubectl, api, repo, pushes):
    kubectl_apply(kubectl, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bench-flux\n")
    flux = Flux(tmp, kubeconfig, kubectl)
    watch = api.watch(KUSTOMIZATIONS, "bench")
    try:
        start = time.time()
        flux.sync(repo.remote.http_url(), "objects", "bench-flux")
        first = watch.wait(applied_and_ready(repo.head), timeout=3600) - start
        latencies = []
        for _ in range(pushes):
            commit = repo.push("flux")
            mark = watch.mark()
            start = time.time()
            flux.request_reconcile(api)
            latencies.append(watch.wait(applied_and_ready(commit), since=mark, timeout=1800) - start)
        return {"latencies": latencies, "first": first, "rss": flux.peak_rss_kib(), "note": ""}
    finally:
        watch.stopped = True
        flux.stop()


def run_kubectl(kubectl, repo, pushes):
    latencies = []
    for _ in range(pushes):
        repo.push("kubectl")
        start = time.time()
        run(kubectl + ["apply", "--server-side", "--force-conflicts", "--field-manager=bench",
                       "-R", "-f", repo.work_dir])
        latencies.append(time.time() - start)
    return {"latencies": latencies, "first": None, "rss": None, "note": ""}


def measure(size, args):
    peers = args.peers.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        try:
            kubeconfig, api = start_testcluster(tmp, procs, args.server)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                       os.path.join(tmp, "kcache")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            for ns in ("sealsync-system", NAMESPACE):
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            kubectl_apply(kubectl, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: hook\n"
                          f"  namespace: {NAMESPACE}\nstringData:\n  token: {TOKEN}\n")
            repo = Repository(tmp, size)
            procs.append(repo.remote.serve(os.path.join(tmp, "daemon.log")))
            repo.remote.serve_http()
            results = {}
            for peer in peers:
                if peer in MODES:
                    cold = not any(p in MODES for p in results)
                    results[peer] = run_sealsync(tmp, kubeconfig, kubectl, api, repo, peer,
                                                 args.pushes, cold)
                elif peer == "flux":
                    results[peer] = run_flux(tmp, kubeconfig, kubectl, api, repo,
                                             min(args.pushes, args.flux_pushes))
                elif peer == "kubectl":
                    results[peer] = run_kubectl(kubectl, repo, min(args.pushes, args.kubectl_pushes))
                else:
                    sys.exit(f"unknown peer {peer}")
            return results
        finally:
            stop_processes(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,5000,20000")
    ap.add_argument("--pushes", type=int, default=20)
    ap.add_argument("--kubectl-pushes", type=int, default=2)
    ap.add_argument("--flux-pushes", type=int, default=5)
    ap.add_argument("--peers", default="incremental,full,flux,kubectl")
    ap.add_argument("--server", default="kube-apiserver")
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)
    for size in (int(s) for s in args.sizes.split(",")):
        results = measure(size, args)
        print(f"{size} objects, one changed per push, {args.pushes} pushes, on {args.server}:")
        p50 = {}
        for peer, r in results.items():
            p50[peer] = percentile(r["latencies"], 50)
            line = (f"  {peer:11}: push -> applied p50 {p50[peer]:.3f} s, "
                    f"p95 {percentile(r['latencies'], 95):.3f} s ({len(r['latencies'])} pushes)")
            if r["first"] is not None:
                line += f"; cold sync {r['first']:.1f} s"
            if r["rss"] is not None:
                line += f"; peak RSS {r['rss'] / 1024:.1f} MiB"
            print(line)
            if r["note"]:
                print(f"  {'':11}  {r['note']}")
        if "incremental" in p50:
            ratios = [f"{peer} {p50['incremental'] / p50[peer]:.3f}"
                      for peer in p50 if peer != "incremental"]
            print(f"  p50 ratio incremental / peer: {', '.join(ratios)}")
        if "incremental" in results and "flux" in results:
            inc, flux = results["incremental"], results["flux"]
            print(f"  cold sync sealsync / Flux: {inc['first'] / flux['first']:.3f}; "
                  f"peak RSS sealsync / Flux: {inc['rss'] / flux['rss']:.3f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
