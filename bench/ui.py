#!/usr/bin/env python3
"""`sealsync ui` at scale, in headless Chromium: 50 GitSyncs holding 10,000 objects.

- First paint: the first-contentful-paint of the GitSyncs page and of the largest GitSync's
  page (5,100 objects), the first visit (the object watches start) and later visits.
- Change -> page updated: a GitSync suspended or resumed with a PATCH, to the moment the live
  page swapped in the content that shows it (the page stamps `data-updated` when it swaps;
  one clock). On the list page and on the largest GitSync's page, 20 changes each.
  Target: p50 <= 1 s.
- `sealsync ui` memory (VmRSS, VmHWM) with both pages open.

Release builds, the real kube-apiserver by default. Not a test: run it by hand.
Usage: bench/ui.py [--server kube-apiserver|embedded] [--changes 20]
"""
import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from common import (REL, ROOT, GitRemote, free_port, rss_kib, run,  # noqa: E402
                    start_testcluster, stop_processes, wait_gitsync_ready)
from heal_and_idle import Controller, kubectl_apply, percentile  # noqa: E402

GITSYNCS = 50
LARGEST = 5100          # objects of the largest GitSync, across 5 namespaces
OTHERS = (10_000 - LARGEST) // (GITSYNCS - 1)  # 100 each for the other 49


class WebDriver:
    """Chromium over the W3C WebDriver protocol, as the Rust tests drive it."""

    def __init__(self, tmp, procs):
        port = free_port()
        # Its own process group, so that the browser it starts is stopped with it.
        self.driver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       start_new_session=True)
        procs.append(self.driver)
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while True:
            try:
                self.call("GET", "/status")
                break
            except OSError:
                if time.time() > deadline:
                    sys.exit("chromedriver did not start")
                time.sleep(0.1)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={os.path.join(tmp, 'chrome')}"]
        answer = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})
        self.session = answer["value"]["sessionId"]

    def quit(self):
        """Ends the session (the browser exits), then stops chromedriver's process group."""
        try:
            self.call("DELETE", f"/session/{self.session}")
        except OSError:
            pass
        try:
            os.killpg(self.driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=330) as response:
            return json.loads(response.read())

    def goto(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def js(self, script, *args):
        return self.call("POST", f"/session/{self.session}/execute/sync",
                         {"script": script, "args": list(args)})["value"]

    def first_paint_ms(self):
        """First contentful paint; headless Chromium records it once a frame is produced,
        which may be just after the navigation returns."""
        deadline = time.time() + 5
        while time.time() < deadline:
            paint = self.js("var p = performance.getEntriesByName('first-contentful-paint')[0];"
                            "return p ? p.startTime : null;")
            if paint is not None:
                return paint
            time.sleep(0.02)
        sys.exit("no first-contentful-paint entry")

    def screenshot(self, path):
        png = self.call("GET", f"/session/{self.session}/screenshot")["value"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))


def write_repo(remote):
    for i in range(GITSYNCS):
        d = os.path.join(remote.work, f"app{i:02}")
        os.makedirs(d, exist_ok=True)
        count = LARGEST if i == 0 else OTHERS
        docs = []
        for n in range(count):
            ns = f"big{n % 5}" if i == 0 else f"team{i % 10}"
            docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a{i:02}-c{n:05}\n"
                        f"  namespace: {ns}\ndata:\n  n: \"{n}\"\n")
        with open(os.path.join(d, "objects.yaml"), "w") as f:
            f.write("---\n".join(docs))
    return remote.commit("fleet")


def measure_changes(browser, api, name, changes, badge):
    """Suspends and resumes `name` in turn; for each, the ms from the PATCH to the swap that
    made the badge `badge` selects read Suspended (or Ready again)."""
    latencies = []
    for n in range(changes):
        suspend = n % 2 == 0
        since = time.time()
        api.request("PATCH", f"/apis/sealsync.dev/v1/namespaces/bench/gitsyncs/{name}",
                    {"spec": {"suspend": suspend}}, content_type="application/merge-patch+json")
        want = "Suspended" if suspend else "Ready"
        deadline = time.time() + 30
        while True:
            stamp = browser.js(
                "var b = document.querySelector(arguments[0]);"
                "return b && b.innerText.trim() === arguments[1] ?"
                " Number(document.getElementById('main').getAttribute('data-updated') || 0)"
                " : null;", badge, want)
            if stamp:
                latencies.append(stamp - since * 1000)
                break
            if time.time() > deadline:
                sys.exit(f"{name} never showed {want}")
            time.sleep(0.01)
    return latencies


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", default="kube-apiserver")
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    run(["cargo", "build", "--release", "-q", "-p", "sealsync", "-p", "sealsync-controller",
         "-p", "sealsync-tests", "--bin", "sealsync", "--bin", "sealsync-controller",
         "--bin", "sealsync-testcluster"], cwd=ROOT)
    procs = []
    procs_browser = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kubeconfig, api = start_testcluster(tmp, procs, args.server)
            kubectl = ["kubectl", "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(tmp, "kc")]
            run(kubectl + ["apply", "--server-side", "-f", os.path.join(ROOT, "deploy", "crds")])
            namespaces = ["sealsync-system", "bench"] + [f"big{i}" for i in range(5)] + \
                [f"team{i}" for i in range(10)]
            for ns in namespaces:
                kubectl_apply(kubectl, f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
            remote = GitRemote(tmp, "fleet")
            commit = write_repo(remote)
            procs.append(remote.serve(os.path.join(tmp, "daemon.log")))
            ctl = Controller(tmp, kubeconfig)
            for i in range(GITSYNCS):
                kubectl_apply(kubectl, "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n"
                                       f"  name: app{i:02}\n  namespace: bench\nspec:\n"
                                       f"  url: {remote.url()}\n  path: app{i:02}\n  interval: 1h\n")
            started = time.time()
            for i in range(GITSYNCS):
                wait_gitsync_ready(api, "bench", f"app{i:02}", commit, fail_fast=True)
            print(f"{GITSYNCS} GitSyncs, 10,000 objects applied in {time.time() - started:.1f} s")

            ui_log = open(os.path.join(tmp, "ui.log"), "w")
            ui = subprocess.Popen([os.path.join(REL, "sealsync"), "ui", "--listen", "127.0.0.1:0",
                                   "--kubeconfig", kubeconfig],
                                  stdout=subprocess.PIPE, stderr=ui_log, text=True)
            procs.append(ui)
            url = ui.stdout.readline().strip()
            browser = WebDriver(tmp, procs)
            procs_browser.append(browser)

            def paints(page, visits=5):
                out = []
                for _ in range(visits):
                    browser.goto("about:blank")
                    browser.goto(url + page)
                    out.append(browser.first_paint_ms())
                return out
            list_paints = paints("")
            big = "gitsyncs/bench/app00"
            big_first = paints(big, 1)[0]
            big_later = paints(big, 5)
            print(f"first paint, GitSyncs page ({GITSYNCS} rows): "
                  f"first {list_paints[0]:.0f} ms, then p50 {percentile(list_paints[1:], 50):.0f} ms")
            print(f"first paint, largest GitSync ({LARGEST} objects): first visit "
                  f"{big_first:.0f} ms (its watches start), later p50 "
                  f"{percentile(big_later, 50):.0f} ms")
            shots = os.path.join(ROOT, "target", "ui-screenshots")
            os.makedirs(shots, exist_ok=True)
            browser.screenshot(os.path.join(shots, "bench-largest.png"))

            # Change -> page updated, on the largest page (open now) and on the list.
            big_latency = measure_changes(browser, api, "app00", args.changes,
                                          "dd.ready .badge")
            browser.goto(url)
            time.sleep(1)
            list_latency = measure_changes(browser, api, "app07", args.changes,
                                           'tr[data-gitsync="bench/app07"] .ready .badge')
            for label, values in (("GitSyncs page", list_latency),
                                  (f"largest GitSync page ({LARGEST} objects)", big_latency)):
                print(f"change -> page updated, {label}: p50 {percentile(values, 50):.0f} ms, "
                      f"p95 {percentile(values, 95):.0f} ms, max {max(values):.0f} ms "
                      f"({len(values)} changes)")
            print(f"sealsync ui memory: VmRSS {rss_kib(ui.pid) / 1024:.0f} MiB, "
                  f"peak VmHWM {rss_kib(ui.pid, 'VmHWM') / 1024:.0f} MiB")
            ctl.stop()
        finally:
            for browser in procs_browser:
                browser.quit()
            stop_processes(procs)


if __name__ == "__main__":
    main()
