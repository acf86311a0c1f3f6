#!/usr/bin/env python3
"""The key lifecycle against its peers, on the embedded test API server (release build).

- rotate and retire: whole-command latency, from `sealsync keys rotate` to the new key current,
  and from `sealsync keys retire` to the old key gone;
- re-wrapping N sealed files to the new key: `sealsync reseal --controller` (no identity on the
  developer's machine; the controller's POST /v1/rewrap), offline `sealsync reseal -i` with the
  recovery key, and the peer a SOPS or age user runs, Go `age -d | age -r` once per file
  (one data key per file, as `sops updatekeys` does);
- backup and restore: `sealsync keys backup`, Go `age -d` of it, and `sealsync keys restore`
  into a second test server.
"""
import argparse
import os
import subprocess
import tempfile
import time

from common import REL, ROOT, free_port, run, start_testcluster, wait_for_line

NS = "sealsync-system"


def timed(argv, **kw):
    start = time.perf_counter()
    run(argv, **kw)
    return time.perf_counter() - start


def start_controller(tmp, kubeconfig, name, extra=()):
    port = free_port()
    log = os.path.join(tmp, f"{name}.log")
    proc = subprocess.Popen(
        [os.path.join(REL, "sealsync-controller"), "--kubeconfig", kubeconfig, "--namespace", NS,
         "--http-addr", f"127.0.0.1:{port}", "--data-dir", os.path.join(tmp, f"{name}-data"),
         *extra],
        stdout=open(log, "w"), stderr=subprocess.STDOUT,
        env={**os.environ, "RUST_LOG": "info,kube=warn"})
    wait_for_line(log, "controller: running")
    return proc, port


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1000)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync", "-p", "sealsync-controller",
         "-p", "sealsync-tests", "--bin", "sealsync", "--bin", "sealsync-controller",
         "--bin", "sealsync-testcluster"], cwd=ROOT)
    cli = os.path.join(REL, "sealsync")
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        try:
            kubeconfig, _ = start_testcluster(tmp, procs)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            run(kubectl + ["create", "namespace", NS])
            recovery = os.path.join(tmp, "recovery.key")
            recovery_recipient = run([cli, "keys", "generate", "-o", recovery]).strip()
            recovery_file = os.path.join(tmp, "recovery-recipients.txt")
            with open(recovery_file, "w") as f:
                f.write(recovery_recipient + "\n")
            proc, port = start_controller(tmp, kubeconfig, "controller",
                                          ["--recovery-recipients-file", recovery_file,
                                           "--rewrap-rate", "50"])
            procs.append(proc)
            k = ["--kubeconfig", kubeconfig]
            time.sleep(1)

            # N files sealed to the first key and the recovery recipient.
            cluster = os.path.join(tmp, "cluster.txt")
            run([cli, "keys", "fetch", "-o", cluster] + k)
            with open(cluster) as f:
                first = [l.strip() for l in f if l.startswith("age1")][0]
            sealed = os.path.join(tmp, "sealed")
            os.makedirs(sealed)
            for i in range(args.files):
                secret = (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n  namespace: apps\n"
                          f"stringData:\n  password: value-{i}\n")
                out = run([cli, "seal", "-r", first, "-r", recovery_recipient], input=secret)
                with open(os.path.join(sealed, f"s{i:04}.sealed.yaml"), "w") as f:
                    f.write(out)

            rotate = timed([cli, "keys", "rotate"] + k)
            run([cli, "keys", "fetch", "-o", cluster] + k)
            with open(cluster) as f:
                new = [l.strip() for l in f if l.startswith("age1")][0]

            # Re-wrap all files to the new key and the recovery recipient, three ways.
            targets = ["-r", new, "-r", recovery_recipient]
            via_controller_dir = os.path.join(tmp, "via-controller")
            offline_dir = os.path.join(tmp, "offline")
            run(["cp", "-r", sealed, via_controller_dir])
            run(["cp", "-r", sealed, offline_dir])
            via_controller = timed([cli, "reseal", "--controller", "--controller-url",
                                    f"http://127.0.0.1:{port}", via_controller_dir] + targets + k)
            offline = timed([cli, "reseal", "-i", recovery, offline_dir] + targets)
            # The peer: one data key per file, opened and wrapped again by Go age.
            wrapped = os.path.join(tmp, "age")
            os.makedirs(wrapped)
            for i in range(args.files):
                subprocess.run(["age", "-r", first, "-r", recovery_recipient, "-o",
                                os.path.join(wrapped, f"{i}.age")], input=os.urandom(32), check=True)
            start = time.perf_counter()
            for i in range(args.files):
                src = os.path.join(wrapped, f"{i}.age")
                subprocess.run(f"age -d -i {recovery} {src} | age -r {new} -r {recovery_recipient} "
                               f"-o {src}.new", shell=True, check=True)
            peer = time.perf_counter() - start

            # Retire the first key once nothing needs it (no GitSync here).
            first_id = [l.split()[3] for l in open(cluster) if l.startswith("# key id")][-1]
            retire = timed([cli, "keys", "retire", first_id] + k)

            backup_file = os.path.join(tmp, "backup.age")
            backup = timed([cli, "keys", "backup", "-o", backup_file] + k)
            age_open = timed(["age", "-d", "-i", recovery, "-o", os.devnull, backup_file])
            tmp2 = os.path.join(tmp, "second")
            os.makedirs(tmp2)
            kubeconfig2, _ = start_testcluster(tmp2, procs)
            kubectl2 = ["kubectl", "--kubeconfig", kubeconfig2, "--cache-dir", os.path.join(tmp2, "kc")]
            run(kubectl2 + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            run(kubectl2 + ["create", "namespace", NS])
            proc2, _ = start_controller(tmp2, kubeconfig2, "controller2")
            procs.append(proc2)
            time.sleep(1)
            restore = timed([cli, "keys", "restore", "-f", backup_file, "-i", recovery,
                             "--kubeconfig", kubeconfig2])

            n = args.files
            print(f"key lifecycle, {n} sealed files, embedded test server, release build")
            print(f"  keys rotate (until the new key is current): {rotate:.2f} s")
            print(f"  re-wrap {n} files: reseal --controller {via_controller:.2f} s, "
                  f"reseal -i (offline) {offline:.2f} s, "
                  f"Go age -d | age -r per file {peer:.2f} s "
                  f"(peer / controller = {peer / via_controller:.1f}x)")
            print(f"  keys retire: {retire:.2f} s; keys backup: {backup:.2f} s "
                  f"(age -d of it {age_open:.3f} s); keys restore into a second cluster: {restore:.2f} s")
        finally:
            for p in procs:
                p.kill()


if __name__ == "__main__":
    main()
