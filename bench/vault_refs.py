#!/usr/bin/env python3
"""How long the controller takes to resolve 1,000 Vault references of one revision, and how
many requests it sends, against a local OpenBao dev server; side by side with a sequential
client that reads the same paths one after another on one keep-alive connection (as the Argo CD
Vault Plugin reads them).

Two shapes: 1,000 references to 1,000 distinct paths (100 Secrets of 10 keys), and 1,000
references to 100 paths (10 keys of each path). Then a refresh of the same references with
nothing changed in Vault: it must write nothing.

Targets: under 1 s for 1,000 references; one read per distinct path and version. Release
builds, the embedded test server, `bao` on PATH (scripts/ensure-test-tools.sh). Not a test:
run it by hand.
Usage: bench/vault_refs.py [--refs 1000]
"""
import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from common import (REL, ROOT, GitRemote, free_port, run, start_testcluster, wait_for_line,
                    wait_gitsync_ready)

ROOT_TOKEN = "bench-root-token"


class Bao:
    def __init__(self, tmp):
        self.port = free_port()
        log = os.path.join(tmp, "bao.log")
        self.proc = subprocess.Popen(
            [shutil.which("bao") or sys.exit("bao is not installed: run scripts/ensure-test-tools.sh"),
             "server", "-dev", f"-dev-root-token-id={ROOT_TOKEN}",
             f"-dev-listen-address=127.0.0.1:{self.port}"],
            stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.addr = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                status, _ = self.request("GET", "/v1/secret/data/readiness-probe")
                if status in (200, 404):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit("OpenBao did not start")

    def request(self, method, path, body=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port)
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"X-Vault-Token": ROOT_TOKEN})
        response = conn.getresponse()
        payload = response.read()
        if own:
            conn.close()
        return response.status, payload

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def metric(port, sample):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/metrics")
    total = 0.0
    found = False
    for line in conn.getresponse().read().decode().splitlines():
        if line.startswith(sample):
            rest = line[len(sample):]
            if rest[:1] in (" ", "{", ","):
                total += float(line.split()[-1])
                found = True
    return total if found else 0.0


def secrets_yaml(namespace, refs, paths):
    """`refs` references over `paths` distinct paths, 10 keys a Secret."""
    docs = []
    per_path = refs // paths
    for s in range(refs // 10):
        lines = [f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-{s:04}\n  namespace: {namespace}\nstringData:"]
        for k in range(10):
            i = s * 10 + k
            path = i // per_path
            key = i % per_path
            lines.append(f"  k{k}: ref+vault://secret/bench/p-{path:04}#key-{key:02}")
        docs.append("\n".join(lines))
    return "\n---\n".join(docs) + "\n"


def sequential_reads(bao, paths, rounds=3):
    best = None
    for _ in range(rounds):
        conn = http.client.HTTPConnection("127.0.0.1", bao.port)
        start = time.perf_counter()
        for p in range(paths):
            status, _ = bao.request("GET", f"/v1/secret/data/bench/p-{p:04}", conn=conn)
            assert status == 200, status
        elapsed = time.perf_counter() - start
        conn.close()
        best = elapsed if best is None else min(best, elapsed)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--refs", type=int, default=1000)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)
    shapes = [("distinct", args.refs), ("shared", args.refs // 10)]
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        bao = Bao(tmp)
        try:
            kubeconfig, api = start_testcluster(tmp, procs)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])

            conn = http.client.HTTPConnection("127.0.0.1", bao.port)
            for p in range(args.refs):
                data = {f"key-{k:02}": f"value-{p}-{k}" for k in range(10)}
                status, _ = bao.request("POST", f"/v1/secret/data/bench/p-{p:04}", {"data": data}, conn)
                assert status == 200, status

            remote = GitRemote(tmp, "vault")
            for shape, paths in shapes:
                ns = f"bench-{shape}"
                os.makedirs(os.path.join(remote.work, shape))
                with open(os.path.join(remote.work, shape, "secrets.yaml"), "w") as f:
                    f.write(secrets_yaml(ns, args.refs, paths))
            commit = remote.commit("references")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))

            for ns in ["sealsync-system"] + [f"bench-{s}" for s, _ in shapes]:
                subprocess.run(kubectl + ["create", "namespace", ns], capture_output=True, check=True)
            port = free_port()
            log = os.path.join(tmp, "controller.log")
            procs.append(subprocess.Popen(
                [os.path.join(REL, "sealsync-controller"), "--kubeconfig", kubeconfig,
                 "--namespace", "sealsync-system", "--http-addr", f"127.0.0.1:{port}",
                 "--data-dir", os.path.join(tmp, "data"),
                 # The benchmark's GitSyncs are the platform's own, in several namespaces.
                 "--trusted-namespaces=*"],
                stdout=open(log, "w"), stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": "info,kube=warn"}))
            wait_for_line(log, "controller: running")

            print(f"{args.refs} references, OpenBao dev server on loopback, release build")
            for shape, paths in shapes:
                ns = f"bench-{shape}"
                subprocess.run(kubectl + ["-n", ns, "create", "secret", "generic", "vault",
                                          f"--from-literal=token={ROOT_TOKEN}"],
                               capture_output=True, check=True)
                before_sum = metric(port, "sealsync_vault_resolve_seconds_sum")
                before_reads = metric(port, "sealsync_vault_requests_total{operation=\"read\"")
                before_mounts = metric(port, "sealsync_vault_requests_total{operation=\"mount\"")
                gitsync = (f"apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: refs\n"
                           f"  namespace: {ns}\nspec:\n  url: {remote.url()}\n  interval: 1h\n"
                           f"  path: {shape}\n  vault:\n    address: {bao.addr}\n"
                           f"    refreshInterval: 10s\n    token:\n      secretRef:\n        name: vault\n")
                subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"], input=gitsync,
                               text=True, check=True, capture_output=True)
                wait_gitsync_ready(api, ns, "refs", commit, timeout=300, fail_fast=True)
                resolve = metric(port, "sealsync_vault_resolve_seconds_sum") - before_sum
                reads = metric(port, "sealsync_vault_requests_total{operation=\"read\"") - before_reads
                mounts = metric(port, "sealsync_vault_requests_total{operation=\"mount\"") - before_mounts
                peer = sequential_reads(bao, paths)
                print(f"  {shape:9} {paths:5} paths: resolved in {resolve:.3f} s with {int(reads)} reads "
                      f"and {int(mounts)} mount lookups; sequential client {peer:.3f} s "
                      f"({peer / resolve:.1f}x the controller's time)")

            # A refresh with nothing changed: every reference read again, nothing written.
            writes_before = metric(port, "sealsync_apply_writes_total{source=\"vault\"}")
            sum_before = metric(port, "sealsync_vault_resolve_seconds_sum")
            count_before = metric(port, "sealsync_vault_resolve_seconds_count")
            time.sleep(12)
            refreshes = metric(port, "sealsync_vault_resolve_seconds_count") - count_before
            spent = metric(port, "sealsync_vault_resolve_seconds_sum") - sum_before
            writes = metric(port, "sealsync_apply_writes_total{source=\"vault\"}") - writes_before
            print(f"  refresh, nothing changed: {int(refreshes)} refreshes in {spent:.3f} s, "
                  f"{int(writes)} writes")
        finally:
            for p in procs:
                p.kill()
            bao.stop()


if __name__ == "__main__":
    main()
