#!/usr/bin/env python3
"""What `spec.verify` costs per revision, beside `git verify-commit`, and its share of a cold
sync of 1,000 objects.

- Per revision: commits signed by git itself with an Ed25519 SSH key, an Ed25519 OpenPGP key
  and an RSA-3072 OpenPGP subkey (GnuPG). sealsync's verifier (`verify_signature`, the
  example of sealsync-core: the object split as git splits it and the signature checked
  against the parsed trusted keys, as the controller does once it holds them) runs 2,000
  times per commit; `git verify-commit` (which runs `ssh-keygen -Y verify` or `gpg
  --verify`, as Argo CD does) runs 30 times. Target: under 5 ms per revision.
- Share of a sync: 1,000 ConfigMaps and their Namespace in one signed commit, synced by a
  GitSync with `spec.verify` on the test API server. The controller's `reconciled` log line
  says how long each stage took; the `verify` stage (reading the keys Secret, parsing it,
  checking the signature) against the whole reconcile. Target: under 1 %.

Release builds. Not a test: run it by hand.
Usage: bench/verify_cost.py [--server embedded|kube-apiserver] [--objects 1000]
"""
import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import REL, ROOT, GitRemote, run, start_testcluster, stop_processes  # noqa: E402
from heal_and_idle import Controller, kubectl_apply, percentile  # noqa: E402


def gpg_wrapper(tmp):
    home = os.path.join(tmp, "gnupg")
    os.makedirs(home, mode=0o700)
    wrapper = os.path.join(tmp, "gpg-bench")
    with open(wrapper, "w") as f:
        f.write(f"#!/bin/sh\nexec gpg --homedir '{home}' --batch --pinentry-mode loopback "
                "--passphrase '' \"$@\"\n")
    os.chmod(wrapper, 0o755)
    return wrapper


def fingerprints(gpg, who):
    listing = run([gpg, "--list-keys", "--with-colons", who])
    return [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]


def make_signers(tmp):
    """(name, git -c options, keys entry name, keys entry content) for each signer."""
    ssh_key = os.path.join(tmp, "id_ed25519")
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@example.com", "-f", ssh_key])
    gpg = gpg_wrapper(tmp)
    run([gpg, "--quick-gen-key", "Bench <bench@example.com>", "ed25519", "sign,cert", "never"])
    primary = fingerprints(gpg, "bench@example.com")[0]
    run([gpg, "--quick-add-key", primary, "rsa3072", "sign", "never"])
    subkey = fingerprints(gpg, primary)[1]
    exported = run([gpg, "--armor", "--export", primary]).encode()
    return gpg, [
        ("SSH Ed25519", ["-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_key}"],
         "bench.sshpub", open(ssh_key + ".pub", "rb").read()),
        ("OpenPGP Ed25519", ["-c", "gpg.format=openpgp", "-c", f"gpg.program={gpg}",
                             "-c", f"user.signingkey={primary}!"], "bench.asc", exported),
        ("OpenPGP RSA-3072 subkey", ["-c", "gpg.format=openpgp", "-c", f"gpg.program={gpg}",
                                     "-c", f"user.signingkey={subkey}!"], "bench.asc", exported),
    ], ssh_key


def time_git_verify(work, env, commit, options, iterations):
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        subprocess.run(["git", "-C", work, *options, "verify-commit", commit], env=env,
                       check=True, capture_output=True)
        samples.append((time.perf_counter() - start) * 1e6)
    return percentile(samples, 50)


def per_revision(tmp):
    gpg, signers, ssh_key = make_signers(tmp)
    work = os.path.join(tmp, "signed-work")
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": tmp}
    run(["git", "init", "-q", "-b", "main", work], env=env)
    allowed = os.path.join(tmp, "allowed_signers")
    with open(allowed, "w") as f:
        f.write("bench@example.com " + open(ssh_key + ".pub").read())
    rows = []
    for n, (name, options, entry, content) in enumerate(signers):
        with open(os.path.join(work, "file.txt"), "w") as f:
            f.write(f"revision {n}\n")
        run(["git", "-C", work, "add", "-A"], env=env)
        run(["git", "-C", work, "-c", "user.name=bench", "-c", "user.email=bench@example.com",
             *options, "commit", "-q", "-S", "-m", name], env=env)
        commit = run(["git", "-C", work, "rev-parse", "HEAD"], env=env).strip()
        raw = os.path.join(tmp, f"commit-{n}.raw")
        with open(raw, "wb") as f:
            f.write(subprocess.run(["git", "-C", work, "cat-file", "commit", commit], env=env,
                                   check=True, capture_output=True).stdout)
        keys = os.path.join(tmp, f"keys-{n}")
        os.makedirs(keys)
        with open(os.path.join(keys, entry), "wb") as f:
            f.write(content)
        ours = json.loads(run([os.path.join(REL, "examples", "verify_signature"), keys, raw,
                               "commit", "2000"]))
        peer_options = options + ["-c", f"gpg.ssh.allowedSignersFile={allowed}"]
        peer = time_git_verify(work, env, commit, peer_options, 30)
        rows.append((name, ours, peer))
    print("per revision (verification of one signed commit)")
    print(f"  {'signature':<26} {'keys parsed once':>17} {'verify p50':>11} {'verify p99':>11}"
          f" {'git verify-commit p50':>22} {'ratio':>7}")
    for name, ours, peer in rows:
        print(f"  {name:<26} {ours['parse_us'] / 1000:>14.2f} ms {ours['verify_us_p50'] / 1000:>8.3f} ms"
              f" {ours['verify_us_p99'] / 1000:>8.3f} ms {peer / 1000:>19.2f} ms"
              f" {peer / ours['verify_us_p50']:>6.0f}x")
    return signers


def sync_share(tmp, server, objects, signers):
    procs = []
    try:
        kubeconfig, api = start_testcluster(tmp, procs, server)
        kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
        run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
        for ns in ("sealsync-system", "bench"):
            kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
        name, options, entry, content = signers[0]
        data = {entry: base64.b64encode(content).decode()}
        kubectl_apply(kubectl, json.dumps({"apiVersion": "v1", "kind": "Secret",
                                           "metadata": {"name": "trusted", "namespace": "bench"},
                                           "data": data}))
        remote = GitRemote(tmp, "signed")
        path = os.path.join(remote.work, "objects")
        os.makedirs(path)
        with open(os.path.join(path, "namespace.yaml"), "w") as f:
            f.write("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: objects\n")
        for i in range(objects - 1):
            with open(os.path.join(path, f"cm-{i:05}.yaml"), "w") as f:
                f.write(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\n"
                        f"  namespace: objects\ndata:\n  value: \"{i}\"\n")
        run(["git", "-C", remote.work, "add", "-A"], env=remote.env)
        run(["git", "-C", remote.work, "-c", "user.name=bench", "-c",
             "user.email=bench@example.com", *options, "commit", "-q", "-S", "-m", "signed"],
            env=remote.env)
        run(["git", "-C", remote.work, "push", "-q", remote.bare, "HEAD:main"], env=remote.env)
        commit = run(["git", "-C", remote.work, "rev-parse", "HEAD"], env=remote.env).strip()
        procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
        ctl = Controller(tmp, kubeconfig)
        started = time.time()
        kubectl_apply(kubectl, (
            "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: signed\n"
            f"  namespace: bench\nspec:\n  url: {remote.url()}\n  path: objects\n"
            "  interval: 1h\n  timeout: 10m\n"
            "  verify:\n    mode: HEAD\n    secretRef: {name: trusted}\n"))
        ctl.wait_log(lambda f: f.get("message") == "reconciled" and commit in f.get("revision", ""),
                     timeout=600)
        total_s = time.time() - started
        stages = ctl.fields.get("stages", "")
        spent = {m.group(1): int(m.group(2)) for m in re.finditer(r"([a-zA-Z ]+?) (\d+) ms", stages)}
        spent = {k.strip(", "): v for k, v in spent.items()}
        whole = float(ctl.fields.get("seconds", total_s)) * 1000
        verify_ms = spent.get("verify", 0)
        print(f"cold sync of {objects} objects ({name} signature, {server}):")
        print(f"  GitSync created -> reconciled: {total_s:.2f} s; the reconcile: {whole:.0f} ms")
        print(f"  stages: {stages}")
        if verify_ms == 0:
            # The log counts whole milliseconds.
            print(f"  verify: under 1 ms = under {100 / whole:.2f} % of the reconcile")
        else:
            print(f"  verify: {verify_ms} ms = {100 * verify_ms / whole:.2f} % of the reconcile")
        ctl.stop()
    finally:
        stop_processes(procs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="embedded")
    ap.add_argument("--objects", type=int, default=1000)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-controller", "-p", "sealsync-tests",
         "--bin", "sealsync-controller", "--bin", "sealsync-testcluster"], cwd=ROOT)
    run(["cargo", "build", "--release", "-q", "-p", "sealsync-core", "--example",
         "verify_signature"], cwd=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        signers = per_revision(tmp)
        sync_share(tmp, args.server, args.objects, signers)


if __name__ == "__main__":
    main()
