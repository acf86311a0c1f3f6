"""Flux as a benchmark peer: source-controller and kustomize-controller, built from their Go
modules by bench/flux.sh, run as processes against the same API server as sealsync, with a
GitRepository and a Kustomization that sync the same repository."""
import os
import subprocess
import time

from common import ROOT, free_port, rss_kib, run

FLUX_NAMESPACE = "flux-system"


def flux_dir():
    run([os.path.join(ROOT, "bench", "flux.sh")])
    return run([os.path.join(ROOT, "bench", "flux.sh"), "--print-dir"]).strip()


class Flux:
    """The two controllers, their CRDs installed, each as a process with its log in `tmp`."""

    def __init__(self, tmp, kubeconfig, kubectl):
        self.kubectl = kubectl
        directory = flux_dir()
        run(kubectl + ["apply", "--server-side", "-f", os.path.join(directory, "crds.yaml")])
        subprocess.run(kubectl + ["create", "namespace", FLUX_NAMESPACE], capture_output=True)
        run(kubectl + ["wait", "--for=condition=Established", "--timeout=60s",
                       "crd/gitrepositories.source.toolkit.fluxcd.io",
                       "crd/kustomizations.kustomize.toolkit.fluxcd.io"])
        env = {**os.environ, "KUBECONFIG": kubeconfig, "RUNTIME_NAMESPACE": FLUX_NAMESPACE}
        storage = free_port()
        os.makedirs(os.path.join(tmp, "flux-storage"), exist_ok=True)
        self.procs = []
        for name, extra in (
            ("source-controller", [f"--storage-path={os.path.join(tmp, 'flux-storage')}",
                                   f"--storage-addr=127.0.0.1:{storage}",
                                   f"--storage-adv-addr=127.0.0.1:{storage}"]),
            ("kustomize-controller", []),
        ):
            log = open(os.path.join(tmp, f"{name}.log"), "w")
            self.procs.append(subprocess.Popen(
                [os.path.join(directory, name), "--enable-leader-election=false",
                 f"--metrics-addr=127.0.0.1:{free_port()}",
                 f"--health-addr=127.0.0.1:{free_port()}", "--log-encoding=json",
                 "--events-addr=", *extra],
                stdout=log, stderr=subprocess.STDOUT, env=env))
        self.log_dir = tmp

    def sync(self, url, path, target_namespace, interval="60m"):
        """Creates the GitRepository and the Kustomization that apply `path` of `url`'s main
        branch into `target_namespace`, with pruning and no waiting for health (as the
        sealsync GitSync they are compared with)."""
        manifest = f"""apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata:
  name: bench
  namespace: {FLUX_NAMESPACE}
spec:
  url: {url}
  interval: {interval}
  timeout: 5m
  ref:
    branch: main
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: bench
  namespace: {FLUX_NAMESPACE}
spec:
  sourceRef:
    kind: GitRepository
    name: bench
  path: ./{path}
  interval: {interval}
  timeout: 30m
  prune: true
  wait: false
  targetNamespace: {target_namespace}
"""
        subprocess.run(self.kubectl + ["apply", "--server-side", "-f", "-"], input=manifest,
                       text=True, check=True, capture_output=True)

    def request_reconcile(self, api):
        """What Flux's webhook Receiver does on a push: asks the GitRepository to reconcile now."""
        stamp = f"{time.time_ns()}"
        api.request("PATCH", f"{GIT_REPOSITORIES}/bench",
                    {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": stamp}}},
                    content_type="application/merge-patch+json")

    def peak_rss_kib(self):
        return sum(rss_kib(p.pid, "VmHWM") for p in self.procs)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


KUSTOMIZATIONS = f"/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/{FLUX_NAMESPACE}/kustomizations"
GIT_REPOSITORIES = f"/apis/source.toolkit.fluxcd.io/v1/namespaces/{FLUX_NAMESPACE}/gitrepositories"
