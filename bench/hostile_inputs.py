#!/usr/bin/env python3
"""Time and peak memory of `sealsync seal` and `sealsync check` on hostile and very large
inputs, each just inside or just past the documented limits. The goal: no input takes more than
about a second or 200 MiB. As a reference point, `git hash-object` reads the same file (it only
hashes it), so a ratio shows what the parse costs over reading.

Not a test: run it by hand (release build). Usage: bench/hostile_inputs.py
"""
import os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(argv, stdin_path=None):
    """Wall seconds and peak RSS (KiB, through GNU time) of one run; the exit code is kept."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdin=stdin,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    said = [l for l in lines[:-1] if l.startswith("error:") or l.startswith("checked")]
    return wall, int(lines[-1]), proc.returncode, (said[0] if said else "")


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "sealsync"], cwd=ROOT, check=True)
    bin_ = os.path.join(ROOT, "target", "release", "sealsync")
    tmp = tempfile.mkdtemp(prefix="sealsync-hostile-")
    key = os.path.join(tmp, "id")
    recipient = subprocess.run([bin_, "keys", "generate", "-o", key], capture_output=True,
                               text=True, check=True).stdout.strip()
    head = "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\n"

    bomb = [head, "x0: &x0 [a, a, a, a, a, a, a, a, a, a]\n"]
    for i in range(1, 10):
        bomb.append(f"x{i}: &x{i} [" + ",".join([f"*x{i-1}"] * 10) + "]\n")
    long_str = [head, "x0: &x0 " + "a" * 1_000_000 + "\n", "x1: [" + ",".join(["*x0"] * 5000) + "]\n"]
    deep = "[" * 100_000 + "]" * 100_000
    flow_deep = "{a: " * 50_000 + "b" + "}" * 50_000
    keys = ["apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n"] + [
        f"  k{i}: v\n" for i in range(490_000)]
    docs = []
    for i in range(5_500):
        docs.append(f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s{i}, namespace: app}}\n"
                    f"stringData:\n  password: {'p' * 2800}\n")
    cases = [
        ("alias bomb (10^9 nodes), %d KB" % (len("".join(bomb)) // 1024), "".join(bomb)),
        ("1 MB scalar aliased 5,000 times", "".join(long_str)),
        ("100,000 nested [", deep),
        ("50,000 nested {a:", flow_deep),
        ("490,000 keys in one map", "".join(keys)),
        ("5,500 Secrets, 15.5 MB", "".join(docs)),
    ]
    print(f"{'input':40} {'size':>9} {'command':>6} {'wall s':>7} {'RSS MiB':>8} {'git s':>6}  result")
    worst_wall, worst_rss = 0.0, 0
    for name, text in cases:
        path = write(os.path.join(tmp, "in.yaml"), text)
        git_wall, _, _, _ = run(["git", "hash-object", path])
        for cmd, argv in [("seal", [bin_, "seal", "-r", recipient, "-f", path]),
                          ("check", [bin_, "check", path])]:
            wall, rss, code, last = run(argv)
            worst_wall, worst_rss = max(worst_wall, wall), max(worst_rss, rss)
            outcome = (last or f"exit {code}")[:90]
            print(f"{name:40} {len(text) // 1024:>7}KB {cmd:>6} {wall:7.2f} {rss / 1024:8.1f} "
                  f"{git_wall:6.2f}  {outcome}")
    # The rules file goes through the same reader.
    repo = os.path.join(tmp, "repo")
    os.makedirs(os.path.join(repo, ".git"), exist_ok=True)
    write(os.path.join(repo, ".sealsync.yaml"), "".join(bomb))
    secret = write(os.path.join(tmp, "s.yaml"), head + "stringData: {a: b}\n")
    wall, rss, code, last = run([bin_, "seal", "-f", secret, "--rules-path",
                                 os.path.join(repo, "x.yaml")])
    worst_wall, worst_rss = max(worst_wall, wall), max(worst_rss, rss)
    print(f"{'alias bomb as .sealsync.yaml':40} {'':>9} {'seal':>6} {wall:7.2f} {rss / 1024:8.1f} "
          f"{'':>6}  {last[:70]}")
    print(f"\nworst: {worst_wall:.2f} s, {worst_rss / 1024:.1f} MiB (goal: about 1 s, 200 MiB)")


if __name__ == "__main__":
    sys.exit(main())
