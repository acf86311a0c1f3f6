#!/usr/bin/env python3
"""A cold sync of N objects by sealsync-controller, side by side with `kubectl apply
--server-side` of the same objects, on the same test API server.

- sealsync: 1,000 objects (800 ConfigMaps, 200 SealedSecrets) committed to a local Git
  repository served by `git daemon`; the time runs from creating the GitSync until it is
  Ready with the revision applied. The controller fetches, renders, decrypts, dry-runs and
  applies; its peak RSS is read from /proc (VmHWM) at the end.
- kubectl: the same 1,000 objects, the 200 Secrets in plaintext, in one
  `kubectl apply --server-side -f DIR` into a fresh namespace.

With --impersonate, both sides act as a service account `deployer` of their namespace
(RBAC on ConfigMaps and Secrets there only): the controller with --default-service-account
deployer, kubectl with --as system:serviceaccount:NS:deployer. That measures what tenancy
costs.

Targets: time ratio (sealsync / kubectl) at most 0.5, controller peak RSS at most 64 MiB.
Release builds. Not a test: run it by hand.
Usage: bench/sync_vs_kubectl.py [--objects N] [--impersonate]
"""
import argparse, json, os, re, shutil, subprocess, sys, tempfile, time

from common import REL, ROOT, free_port, run, wait_for_line


DEPLOYER = """apiVersion: v1
kind: ServiceAccount
metadata: {{name: deployer, namespace: {ns}}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: deployer, namespace: {ns}}}
rules:
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: deployer, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}
subjects: [{{kind: ServiceAccount, name: deployer, namespace: {ns}}}]
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--sealed", type=int, default=200)
    ap.add_argument("--impersonate", action="store_true")
    args = ap.parse_args()
    if not shutil.which("kubectl") or not shutil.which("git"):
        sys.exit("kubectl and git are needed")
    run(["cargo", "build", "--release", "-q", "-p", "sealsync", "-p", "sealsync-controller",
         "-p", "sealsync-tests", "--bin", "sealsync", "--bin", "sealsync-controller",
         "--bin", "sealsync-testcluster"], cwd=ROOT)
    plain_count = args.objects - args.sealed

    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        procs = []
        try:
            server_log = open(os.path.join(tmp, "server.log"), "w")
            procs.append(subprocess.Popen(
                [os.path.join(REL, "sealsync-testcluster"), "--kubeconfig-out", kubeconfig],
                stdout=server_log, stderr=subprocess.STDOUT))
            deadline = time.time() + 30
            while not os.path.exists(kubeconfig) and time.time() < deadline:
                time.sleep(0.02)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir",
                       os.path.join(tmp, "kcache")]
            run(kubectl + ["apply", "--server-side", "-f",
                           os.path.join(ROOT, "deploy", "crds")])
            for ns in ["sealsync-system", "bench-kubectl", "bench-sealsync"]:
                subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"], check=True,
                               input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n",
                               text=True, capture_output=True)

            if args.impersonate:
                for ns in ["bench-kubectl", "bench-sealsync"]:
                    subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"], check=True,
                                   input=DEPLOYER.format(ns=ns), text=True, capture_output=True)

            # The controller.
            data_dir = os.path.join(tmp, "data")
            ctl_log_path = os.path.join(tmp, "controller.log")
            ctl_log = open(ctl_log_path, "w")
            controller = subprocess.Popen(
                [os.path.join(REL, "sealsync-controller"), "--kubeconfig", kubeconfig,
                 "--namespace", "sealsync-system", "--http-addr", "127.0.0.1:0",
                 "--data-dir", data_dir]
                + (["--default-service-account", "deployer"] if args.impersonate
                   else ["--trusted-namespaces=bench-sealsync"]),
                stdout=ctl_log, stderr=subprocess.STDOUT,
                env={**os.environ, "RUST_LOG": "info,kube=warn"})
            procs.append(controller)
            wait_for_line(ctl_log_path, "controller: running")
            recipients = os.path.join(tmp, "recipients.txt")
            run([os.path.join(REL, "sealsync"), "keys", "fetch", "--kubeconfig", kubeconfig,
                 "-o", recipients])

            # The objects, once in plaintext (kubectl) and once sealed (Git).
            plain = os.path.join(tmp, "plain")
            repo_work = os.path.join(tmp, "work")
            os.makedirs(plain)
            os.makedirs(os.path.join(repo_work, "apps"))
            secrets_dir = os.path.join(tmp, "secrets")
            os.makedirs(secrets_dir)
            for i in range(plain_count):
                cm = (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:04}\n"
                      f"data:\n  key: value-{i}\n  other: some text {i}\n")
                with open(os.path.join(plain, f"cm-{i:04}.yaml"), "w") as f:
                    f.write(cm.replace("metadata:\n", "metadata:\n  namespace: bench-kubectl\n"))
                with open(os.path.join(repo_work, "apps", f"cm-{i:04}.yaml"), "w") as f:
                    f.write(cm.replace("metadata:\n", "metadata:\n  namespace: bench-sealsync\n"))
            for i in range(args.sealed):
                secret = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s-{i:04}\n"
                          f"type: Opaque\nstringData:\n  password: pw-{i}-x9\n  user: u{i}\n")
                with open(os.path.join(plain, f"s-{i:04}.yaml"), "w") as f:
                    f.write(secret.replace("metadata:\n", "metadata:\n  namespace: bench-kubectl\n"))
                with open(os.path.join(secrets_dir, f"s-{i:04}.yaml"), "w") as f:
                    f.write(secret.replace("metadata:\n", "metadata:\n  namespace: bench-sealsync\n"))
            sealed = run([os.path.join(REL, "sealsync"), "seal", "--recipients-file", recipients,
                          "-f", secrets_dir])
            with open(os.path.join(repo_work, "apps", "secrets.sealed.yaml"), "w") as f:
                f.write(sealed)

            # kubectl apply --server-side of the same objects.
            start = time.perf_counter()
            as_user = (["--as", "system:serviceaccount:bench-kubectl:deployer"]
                       if args.impersonate else [])
            run(kubectl + as_user + ["apply", "--server-side", "-f", plain])
            kubectl_secs = time.perf_counter() - start

            # A Git repository served by git daemon.
            git_env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": tmp}
            bare = os.path.join(tmp, "repos", "apps.git")
            run(["git", "init", "-q", "--bare", "-b", "main", bare], env=git_env)
            run(["git", "init", "-q", "-b", "main", repo_work], env=git_env)
            run(["git", "-C", repo_work, "add", "-A"], env=git_env)
            run(["git", "-C", repo_work, "-c", "user.name=bench", "-c", "user.email=b@example.com",
                 "commit", "-q", "-m", "objects"], env=git_env)
            run(["git", "-C", repo_work, "push", "-q", bare, "HEAD:main"], env=git_env)
            commit = run(["git", "-C", repo_work, "rev-parse", "HEAD"], env=git_env).strip()
            port = free_port()
            daemon_log = open(os.path.join(tmp, "daemon.log"), "w")
            procs.append(subprocess.Popen(
                ["git", "daemon", "--reuseaddr", "--export-all", "--verbose",
                 "--listen=127.0.0.1", f"--port={port}",
                 f"--base-path={os.path.join(tmp, 'repos')}"],
                stdout=daemon_log, stderr=subprocess.STDOUT, env=git_env))
            wait_for_line(os.path.join(tmp, "daemon.log"), "Ready to rumble")

            gitsync = (f"apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: bench\n"
                       f"  namespace: bench-sealsync\nspec:\n  url: git://127.0.0.1:{port}/apps.git\n"
                       f"  interval: 10m\n  path: apps\n")
            start = time.perf_counter()
            subprocess.run(kubectl + ["apply", "--server-side", "-f", "-"], input=gitsync,
                           text=True, check=True, capture_output=True)
            want = f"main@sha1:{commit}"
            while True:
                out = run(kubectl + ["get", "gitsync", "bench", "-n", "bench-sealsync",
                                     "-o", "json"])
                status = json.loads(out).get("status", {})
                ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
                if status.get("lastAppliedRevision") == want and ready and ready[0]["status"] == "True":
                    break
                if ready and ready[0]["status"] == "False" and status.get("lastAttemptedRevision") == want:
                    sys.exit(f"the sync failed: {ready[0]['message']}")
                if time.perf_counter() - start > 600:
                    sys.exit("the sync did not finish within 10 minutes")
                time.sleep(0.05)
            sealsync_secs = time.perf_counter() - start
            with open(f"/proc/{controller.pid}/status") as f:
                hwm = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
            inventory = status["inventory"]
            # Past --inventory-inline-entries the inventory is kept in ConfigMaps; the status counts it.
            applied = (len(inventory["entries"]) if "entries" in inventory
                       else inventory["configMaps"]["count"])
        finally:
            for p in reversed(procs):
                p.kill()
                p.wait()

    mode = "as the service account deployer" if args.impersonate else "as the controller"
    print(f"objects: {args.objects} ({args.sealed} sealed), applied by the controller: {applied} ({mode})")
    print(f"kubectl apply --server-side : {kubectl_secs:7.2f} s")
    print(f"sealsync GitSync to Ready   : {sealsync_secs:7.2f} s (includes the up-to-0.05 s poll)")
    print(f"ratio sealsync / kubectl    : {sealsync_secs / kubectl_secs:7.2f} (target <= 0.5)")
    print(f"controller peak RSS         : {hwm / 1024:7.1f} MiB (target <= 64)")


if __name__ == "__main__":
    main()
