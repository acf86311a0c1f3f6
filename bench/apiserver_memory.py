#!/usr/bin/env python3
"""Memory of the embedded test server per stored object, and its peak while serving a large
list, side by side with the real kube-apiserver and etcd (scripts/kube-apiserver.sh).

For each server: start it with sealsync-testcluster, create N ConfigMaps over HTTP (each with
labels, an annotation and three data keys, written with a field manager, so each carries
managedFields as a GitOps-applied object does), read the resident memory before and after,
then LIST all N at once and read the peak.

    cargo build --release -p sealsync-tests --bin sealsync-testcluster
    bench/apiserver_memory.py [--objects 10000] [--binary target/release/sealsync-testcluster]

The real server's figures add kube-apiserver's and etcd's memory (kube-controller-manager is
left out: it is not what stores or serves objects).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import Client, rss_kib


def children(pid):
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except OSError:
            continue
    return out


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def config_map(namespace, i):
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"settings-{i:05d}",
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "demo", "sealsync.dev/gitsync-name": "apps"},
            "annotations": {"sealsync.dev/source": f"apps/settings-{i:05d}.yaml"},
        },
        "data": {"mode": "blue", "replicas": str(i % 7), "url": f"https://example.com/{i}"},
    }


def measure(binary, kube_apiserver, objects):
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        args = [binary, "--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig]
        if kube_apiserver:
            args.insert(1, "--kube-apiserver")
        server = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        try:
            deadline = time.time() + 120
            while not os.path.exists(kubeconfig) and time.time() < deadline:
                time.sleep(0.2)
            time.sleep(1)
            if kube_apiserver:
                pids = [p for p in children(server.pid) if comm(p) in ("kube-apiserver", "etcd")]
            else:
                pids = [server.pid]
            client = Client(kubeconfig)
            client.request("POST", "/api/v1/namespaces", {"metadata": {"name": "bench"}})
            time.sleep(1)
            before = sum(rss_kib(p) for p in pids)
            started = time.time()
            for i in range(objects):
                client.request(
                    "POST",
                    "/api/v1/namespaces/bench/configmaps?fieldManager=sealsync",
                    config_map("bench", i),
                )
            created_in = time.time() - started
            time.sleep(2)
            after = sum(rss_kib(p) for p in pids)
            peak_before = sum(rss_kib(p, "VmHWM") for p in pids)
            started = time.time()
            body = client.request("GET", "/api/v1/namespaces/bench/configmaps")
            listed_in = time.time() - started
            items = len(json.loads(body)["items"])
            peak = max(sum(rss_kib(p, "VmHWM") for p in pids), peak_before)
            return {
                "per_object_bytes": (after - before) * 1024 / objects,
                "after_mib": after / 1024,
                "peak_mib": peak / 1024,
                "list_items": items,
                "create_per_s": objects / created_in,
                "list_s": listed_in,
                "list_body_mib": len(body) / 2**20,
            }
        finally:
            server.terminate()
            server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10000)
    parser.add_argument("--binary", default="target/release/sealsync-testcluster")
    parser.add_argument("--embedded-only", action="store_true")
    args = parser.parse_args()
    rows = [("embedded", measure(args.binary, False, args.objects))]
    if not args.embedded_only:
        rows.append(("kube-apiserver + etcd", measure(args.binary, True, args.objects)))
    print(f"{args.objects} ConfigMaps\n")
    print("| server | bytes per object | RSS after | peak (list) | creates/s | list |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(
            f"| {name} | {r['per_object_bytes']:.0f} | {r['after_mib']:.0f} MiB | "
            f"{r['peak_mib']:.0f} MiB | {r['create_per_s']:.0f} | {r['list_s']:.2f} s "
            f"({r['list_body_mib']:.1f} MiB) |"
        )
    if len(rows) == 2:
        e, k = rows[0][1], rows[1][1]
        print(
            f"\nratios (embedded / real): bytes per object {e['per_object_bytes'] / k['per_object_bytes']:.2f}, "
            f"peak {e['peak_mib'] / k['peak_mib']:.2f}"
        )


if __name__ == "__main__":
    main()
