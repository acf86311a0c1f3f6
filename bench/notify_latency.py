#!/usr/bin/env python3
"""How soon a commit status follows a sync, and what a provider that hangs costs the sync.

- Ready -> commit status: a GitSync with a `github` Notifier pointed at a local stand-in for
  the GitHub API. For each of 20 pushes (a reconcile requested through `requestedAt`), the time
  from the controller's `reconciled` log line (the status is written by then) to the arrival of
  the `success` status for that commit. Target: p50 <= 200 ms.
- A hanging provider: the reconcile time (the `reconciled` line's `seconds`) over 10 pushes
  with a `webhook` Notifier whose server accepts connections and never answers, against 10
  pushes without it. Target: no difference.

Release builds, the embedded test server by default. Not a test: run it by hand.
Usage: bench/notify_latency.py [--server embedded|kube-apiserver] [--pushes 20]
"""
import argparse
import http.server
import json
import os
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import REL, ROOT, GitRemote, run, start_testcluster, stop_processes  # noqa: E402
from heal_and_idle import Controller, kubectl_apply, percentile  # noqa: E402

STATUSES = []  # (arrival, path, state)


class FakeGitHub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        at = time.time()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        STATUSES.append((at, self.path, body.get("state")))
        self.send_response(201)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def serve_github():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"


def serve_hanging():
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    held = []

    def accept():
        while True:
            conn, _ = listener.accept()
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/hook"


def push(remote, kubectl, n):
    with open(os.path.join(remote.work, "apps", "settings.yaml"), "w") as f:
        f.write(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: apps\n"
                f"data:\n  n: \"{n}\"\n")
    commit = remote.commit(f"push {n}")
    run(kubectl + ["-n", "bench", "annotate", "--overwrite", "gitsync", "shop",
                   f"sealsync.dev/requestedAt=push-{n}"])
    return commit


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="embedded")
    ap.add_argument("--pushes", type=int, default=20)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kubeconfig, _api = start_testcluster(tmp, procs, args.server)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            for ns in ("sealsync-system", "bench", "apps"):
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            github = serve_github()
            kubectl_apply(kubectl, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gh\n  namespace: bench\n"
                                   "stringData:\n  token: bench-token\n")
            kubectl_apply(kubectl, "apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: github\n"
                                   f"  namespace: bench\nspec:\n  type: github\n  address: {github}\n"
                                   "  repository: acme/shop\n  secretRef: {name: gh}\n")
            remote = GitRemote(tmp, "shop")
            os.makedirs(os.path.join(remote.work, "apps"))
            with open(os.path.join(remote.work, "apps", "settings.yaml"), "w") as f:
                f.write("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n"
                        "  namespace: apps\ndata:\n  n: \"0\"\n")
            commit = remote.commit("first")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            ctl = Controller(tmp, kubeconfig)
            kubectl_apply(kubectl, "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: shop\n"
                                   f"  namespace: bench\nspec:\n  url: {remote.url()}\n  path: apps\n"
                                   "  interval: 1h\n")
            ctl.wait_log(lambda f: f.get("message") == "reconciled" and commit in f.get("revision", ""),
                         timeout=120)
            latencies = []
            for n in range(1, args.pushes + 1):
                commit = push(remote, kubectl, n)
                ready = ctl.wait_log(lambda f, c=commit: f.get("message") == "reconciled"
                                     and c in f.get("revision", ""), timeout=120)
                deadline = time.time() + 30
                arrival = None
                while time.time() < deadline and arrival is None:
                    arrival = next((at for at, path, state in STATUSES
                                    if commit in path and state == "success"), None)
                    time.sleep(0.002)
                if arrival is None:
                    sys.exit(f"no success status for {commit}")
                latencies.append((arrival - ready) * 1000)
            print(f"Ready -> commit status received ({args.pushes} pushes, {args.server}): "
                  f"p50 {percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
                  f"max {max(latencies):.0f} ms")

            def reconcile_seconds(count, start):
                seconds = []
                for n in range(start, start + count):
                    commit = push(remote, kubectl, n)
                    ctl.wait_log(lambda f, c=commit: f.get("message") == "reconciled"
                                 and c in f.get("revision", ""), timeout=120)
                    seconds.append(float(ctl.fields.get("seconds", 0)) * 1000)
                return seconds
            without = reconcile_seconds(10, 1000)
            kubectl_apply(kubectl, "apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: hanging\n"
                                   f"  namespace: bench\nspec:\n  type: webhook\n  address: {serve_hanging()}\n")
            time.sleep(1)
            hanging = reconcile_seconds(10, 2000)
            print(f"reconcile time without a hanging provider: p50 {percentile(without, 50):.0f} ms; "
                  f"with one: p50 {percentile(hanging, 50):.0f} ms")
            ctl.stop()
        finally:
            stop_processes(procs)


if __name__ == "__main__":
    main()
