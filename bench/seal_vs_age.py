#!/usr/bin/env python3
"""Whole-process speed and memory of `sealsync seal`, side by side with Go `age`.

(a) one Secret with 5 keys sealed to 2 recipients, against one `age` encryption process of the
    same plaintext to the same 2 recipients (target: at most 1.5x);
(b) a directory of 1,000 such Secrets in one `sealsync seal -f DIR` run, against `age` run once
    per file and once over all of them concatenated (target: at least 2,000 Secrets/s).

Prints a table and the ratios. Uses a release build. Not a test: run it by hand or from CI logs.
Usage: bench/seal_vs_age.py [--runs N]
"""
import argparse, os, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(argv, stdout=subprocess.DEVNULL):
    """Runs argv once; returns wall seconds."""
    start = time.perf_counter()
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(argv)}\n{proc.stderr.decode()}")
    return wall


def max_rss_kib(argv):
    """Peak RSS of argv, through GNU time: a child forked from Python would inherit Python's
    high-water mark across exec, so its own rusage over-reports."""
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(argv)}\n{proc.stderr}")
    return int(proc.stderr.strip().splitlines()[-1])


def repeat(argv, runs):
    """Median wall time over runs, and the peak RSS of one more run."""
    samples = [measure(argv) for _ in range(runs)]
    return statistics.median(samples), max_rss_kib(argv)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--secrets", type=int, default=1000)
    args = ap.parse_args()
    age = shutil.which("age")
    keygen = shutil.which("age-keygen")
    if not age or not keygen:
        sys.exit("Go age is missing: run scripts/ensure-test-tools.sh")
    if not os.path.exists("/usr/bin/time"):
        sys.exit("GNU time is missing: apt-get install time")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sealsync"], cwd=ROOT, check=True)
    sealsync = os.path.join(ROOT, "target", "release", "sealsync")

    with tempfile.TemporaryDirectory() as tmp:
        recipients = []
        for i in range(2):
            out = subprocess.run([keygen], capture_output=True, text=True, check=True)
            recipients += [l.split(": ")[1] for l in out.stderr.splitlines() if "Public key" in l]
        secret = (
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: app{i}\n  namespace: bench\n"
            "type: Opaque\nstringData:\n"
            + "".join(f"  key{k}: value-{k}-{{i}}-0123456789abcdef0123456789abcdef\n" for k in range(5))
        )
        one = os.path.join(tmp, "one.yaml")
        with open(one, "w") as f:
            f.write(secret.format(i=0))
        rflags = sum((["-r", r] for r in recipients), [])

        # (a) one Secret, 5 keys, 2 recipients.
        seal_one = repeat([sealsync, "seal", "-f", one] + rflags, args.runs)
        age_one = repeat([age] + rflags + ["-o", os.devnull, one], args.runs)

        # (b) a directory of N Secrets.
        d = os.path.join(tmp, "dir")
        os.mkdir(d)
        for i in range(args.secrets):
            with open(os.path.join(d, f"s{i:04}.yaml"), "w") as f:
                f.write(secret.format(i=i))
        with open(os.path.join(tmp, "all.yaml"), "w") as f:
            for i in range(args.secrets):
                f.write("---\n" + secret.format(i=i))
        dir_runs = max(3, args.runs // 10)
        seal_dir = repeat([sealsync, "seal", "-f", d] + rflags, dir_runs)
        age_cat = repeat([age] + rflags + ["-o", os.devnull, os.path.join(tmp, "all.yaml")], dir_runs)
        start = time.perf_counter()
        for name in sorted(os.listdir(d)):
            measure([age] + rflags + ["-o", os.devnull, os.path.join(d, name)])
        age_loop = time.perf_counter() - start

    n = args.secrets
    print(f"machine: {os.cpu_count()} cores; median of {args.runs} runs (a), {dir_runs} runs (b)")
    print(f"{'case':58} {'wall':>10} {'peak RSS':>10}")
    rows = [
        ("(a) sealsync seal: 1 Secret, 5 keys, 2 recipients", seal_one),
        ("(a) age: same plaintext, 2 recipients", age_one),
        (f"(b) sealsync seal -f DIR: {n} Secrets", seal_dir),
        (f"(b) age once over all {n} Secrets concatenated", age_cat),
        (f"(b) age once per file, {n} processes", (age_loop, 0)),
    ]
    for label, (wall, rss) in rows:
        print(f"{label:58} {wall*1000:8.1f}ms {rss/1024:8.1f}MiB" if rss else f"{label:58} {wall*1000:8.1f}ms {'-':>10}")
    ratio_a = seal_one[0] / age_one[0]
    rate_b = n / seal_dir[0]
    print(f"(a) sealsync/age time ratio: {ratio_a:.2f}x (target <= 1.5x) {'OK' if ratio_a <= 1.5 else 'MISSED'}")
    print(f"(b) sealsync throughput: {rate_b:,.0f} Secrets/s (target >= 2,000) {'OK' if rate_b >= 2000 else 'MISSED'}")
    print(f"(b) vs age per file: {age_loop / seal_dir[0]:.1f}x faster; vs one age over the concatenation: {seal_dir[0] / age_cat[0]:.2f}x its time")


if __name__ == "__main__":
    main()
