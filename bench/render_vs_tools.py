#!/usr/bin/env python3
"""kustomize overlays and Helm charts: a cold sync through sealsync against the stock tools
piped into `kubectl apply --server-side`, on the same API server, in one run.

- Overlay: an overlay (namespace, name prefix, labels, a patch) over a base of 1,000 objects
  (ConfigMaps and ServiceAccounts), with its own Namespace. sealsync: a GitSync of the overlay,
  from its creation to Ready at the commit. Peer: `kustomize build DIR | kubectl apply
  --server-side -f -` of an identical overlay into another namespace.
- Chart: a chart of the repository rendering 500 objects. sealsync: a GitSync of the chart;
  peer: `helm template … | kubectl apply --server-side -f -` into another namespace.
- An unchanged poll after a render: renders and planned revisions counted over 20 s of
  polls every 2 s (expected: no render, no plan; an unchanged poll costs one ref listing).
- Controller peak RSS (VmHWM) after 10 GitSyncs have each synced the 1,000-object overlay
  into a namespace of their own (10,000 objects), and the renderer's limit.

The stock kustomize and helm are those of scripts/render-oracles.sh (the versions
sealsync-renderer is built from). Release builds (`cargo build --release -p
sealsync-controller -p sealsync-tests --bins`). Targets: ratio <= 1.0; unchanged poll: 0
renders; RSS <= 128 MiB. Not a test: run it by hand.
Usage: bench/render_vs_tools.py [--server kube-apiserver|embedded] [--objects 1000]
       [--chart-objects 500] [--gitsyncs 10]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import (ROOT, GitRemote, rss_kib, run, start_testcluster,  # noqa: E402
                    stop_processes, wait_gitsync_ready)
from heal_and_idle import Controller, kubectl_apply  # noqa: E402


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def write_overlays(work, objects, namespaces):
    names = []
    for i in range(objects):
        if i % 4 == 3:
            # Not Services: the test server's service IP range holds a few hundred.
            name = f"sa-{i:05}.yaml"
            write(os.path.join(work, "base", name),
                  f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa-{i:05}\n"
                  f"  labels: {{app: a{i}}}\n")
        else:
            name = f"cm-{i:05}.yaml"
            write(os.path.join(work, "base", name),
                  f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\n"
                  f"data:\n  value: v{i}\n  mode: base\n")
        names.append(name)
    write(os.path.join(work, "base", "kustomization.yaml"),
          "resources:\n" + "".join(f"- {n}\n" for n in names))
    for ns in namespaces:
        write(os.path.join(work, "overlays", ns, "kustomization.yaml"),
              f"namespace: {ns}\nnamePrefix: prod-\nresources:\n- namespace.yaml\n- ../../base\n"
              "labels:\n- pairs: {env: prod}\npatches:\n- target: {kind: ConfigMap}\n"
              "  patch: |-\n    - op: replace\n      path: /data/mode\n      value: prod\n")
        # The namespace file is the kustomization's own: the namespace transformer names it.
        write(os.path.join(work, "overlays", ns, "namespace.yaml"),
              f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")


def write_chart(work, objects):
    write(os.path.join(work, "chart", "Chart.yaml"), "apiVersion: v2\nname: bench\nversion: 1.0.0\n")
    write(os.path.join(work, "chart", "values.yaml"), f"count: {objects // 2}\nmode: chart\n")
    write(os.path.join(work, "chart", "templates", "objects.yaml"),
          "{{- range $i := until (int .Values.count) }}\n---\napiVersion: v1\nkind: ConfigMap\n"
          "metadata:\n  name: {{ $.Release.Name }}-cm-{{ $i }}\n  labels: {app: {{ $.Release.Name }}}\n"
          "data:\n  index: {{ $i | quote }}\n  mode: {{ $.Values.mode }}\n---\napiVersion: v1\n"
          "kind: ServiceAccount\nmetadata:\n  name: {{ $.Release.Name }}-sa-{{ $i }}\n"
          "  labels: {app: {{ $.Release.Name }}, index: {{ $i | quote }}}\n"
          "{{- end }}\n")


def gitsync(name, namespace, url, path, extra=""):
    return (f"apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: {name}\n"
            f"  namespace: {namespace}\nspec:\n  url: {url}\n  path: {path}\n  interval: 2s\n"
            f"  timeout: 10m\n{extra}")


def piped(producer, kubectl, env):
    """`producer | kubectl apply --server-side -f -`; the wall time."""
    start = time.time()
    built = subprocess.run(producer, capture_output=True, check=True, env=env)
    applied = subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"],
                             input=built.stdout, capture_output=True)
    if applied.returncode != 0:
        sys.exit(f"kubectl apply failed: {applied.stderr.decode()[-2000:]}")
    return time.time() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="kube-apiserver")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--chart-objects", type=int, default=500)
    ap.add_argument("--gitsyncs", type=int, default=10)
    args = ap.parse_args()
    oracles = run([os.path.join(ROOT, "scripts", "render-oracles.sh"), "--print-dir"]).strip()
    run([os.path.join(ROOT, "scripts", "render-oracles.sh")])
    run([os.path.join(ROOT, "scripts", "renderer.sh")])
    renderer = run([os.path.join(ROOT, "scripts", "renderer.sh"), "--print-path"]).strip()
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        try:
            kubeconfig, api = start_testcluster(tmp, procs, args.server)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            for ns in ("sealsync-system", "bench", "chart-sealsync", "chart-helm"):
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            remote = GitRemote(tmp, "render")
            spread = [f"spread-{i}" for i in range(args.gitsyncs)]
            write_overlays(remote.work, args.objects, ["ov-sealsync", "ov-kubectl", *spread])
            write_chart(remote.work, args.chart_objects)
            commit = remote.commit("overlays and a chart")
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            ctl = Controller(tmp, kubeconfig, ("--renderer", renderer))
            tool_env = {"HOME": tmp, "PATH": ""}
            results = {}

            start = time.time()
            kubectl_apply(kubectl, gitsync("overlay", "bench", remote.url(), "overlays/ov-sealsync"))
            wait_gitsync_ready(api, "bench", "overlay", commit, fail_fast=True)
            ours = time.time() - start
            theirs = piped([os.path.join(oracles, "kustomize"), "build",
                            os.path.join(remote.work, "overlays", "ov-kubectl")], kubectl, tool_env)
            results["overlay"] = (ours, theirs)

            start = time.time()
            kubectl_apply(kubectl, gitsync("chart", "bench", remote.url(), "chart",
                                           "  targetNamespace: chart-sealsync\n"
                                           "  helm: {releaseName: bench}\n"))
            wait_gitsync_ready(api, "bench", "chart", commit, fail_fast=True)
            ours = time.time() - start
            theirs = piped([os.path.join(oracles, "helm"), "template", "bench",
                            os.path.join(remote.work, "chart"), "--namespace", "chart-helm"],
                           kubectl + ["-n", "chart-helm"], tool_env)
            results["chart"] = (ours, theirs)

            renders = lambda: sum(ctl.metric(f'sealsync_renders_total{{engine="{e}",result="success"}}')
                                  for e in ("kustomize", "helm"))
            planned = lambda: sum(ctl.metric(f'sealsync_revisions_planned_total{{mode="{m}"}}')
                                  for m in ("full", "incremental"))
            unchanged = lambda: ctl.metric("sealsync_polls_unchanged_total")
            before = (renders(), planned(), unchanged())
            time.sleep(20)
            after = (renders(), planned(), unchanged())

            start = time.time()
            for i, ns in enumerate(spread):
                kubectl_apply(kubectl, gitsync(f"spread-{i}", "bench", remote.url(), f"overlays/{ns}"))
            for i in range(len(spread)):
                wait_gitsync_ready(api, "bench", f"spread-{i}", commit, timeout=1800, fail_fast=True)
            spread_time = time.time() - start
            rss = rss_kib(ctl.proc.pid, "VmHWM")
            ctl.stop()
        finally:
            stop_processes(procs)
    print(f"server: {args.server}")
    for what, (ours, theirs) in results.items():
        size = args.objects if what == "overlay" else args.chart_objects
        tool = "kustomize build" if what == "overlay" else "helm template"
        print(f"cold sync, {what} of {size} objects: sealsync {ours:.2f} s, "
              f"{tool} | kubectl apply --server-side {theirs:.2f} s, ratio {ours / theirs:.3f}")
    print(f"unchanged polls over 20 s: renders {after[0] - before[0]:.0f}, revisions planned "
          f"{after[1] - before[1]:.0f}, unchanged polls {after[2] - before[2]:.0f}")
    print(f"{len(spread)} more GitSyncs of {args.objects} objects each: all Ready in "
          f"{spread_time:.1f} s; controller peak RSS {rss / 1024:.0f} MiB (the renderer runs "
          f"beside it, bounded at 256 MiB each, two at a time)")


if __name__ == "__main__":
    main()
