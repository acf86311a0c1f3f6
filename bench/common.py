"""What the benchmarks share: running commands, waiting for log lines, a small API client for
the test server's kubeconfig, process memory and CPU from /proc, and a local Git remote
served by `git daemon`."""
import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse

import yaml  # PyYAML: kubeconfigs are YAML

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REL = os.path.join(ROOT, "target", "release")


def run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def wait_for_line(path, needle, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            for line in f:
                if needle in line:
                    return line
        time.sleep(0.02)
    sys.exit(f"{path} never logged {needle!r}")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """User plus system CPU time of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
    return (int(fields[11]) + int(fields[12])) / ticks


class Client:
    """Requests to the server a kubeconfig names, with its bearer token."""

    def __init__(self, kubeconfig):
        with open(kubeconfig) as f:
            config = yaml.safe_load(f)
        cluster = config["clusters"][0]["cluster"]
        self.token = config["users"][0]["user"]["token"]
        url = urllib.parse.urlparse(cluster["server"])
        if url.scheme == "https":
            context = ssl.create_default_context()
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            context.load_verify_locations(cadata=ca)
            self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context)
        else:
            self.conn = http.client.HTTPConnection(url.hostname, url.port)

    def request(self, method, path, body=None, content_type="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            sys.exit(f"{method} {path}: {response.status} {payload[:300]!r}")
        return payload


class GitRemote:
    """A work tree pushed to a bare repository that `git daemon` serves."""

    def __init__(self, tmp, name="apps"):
        self.env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": tmp}
        self.repos = os.path.join(tmp, "repos")
        self.bare = os.path.join(self.repos, f"{name}.git")
        self.work = os.path.join(tmp, f"{name}-work")
        os.makedirs(self.work, exist_ok=True)
        run(["git", "init", "-q", "--bare", "-b", "main", self.bare], env=self.env)
        run(["git", "init", "-q", "-b", "main", self.work], env=self.env)
        self.name = name
        self.daemon = None
        self.port = None

    def commit(self, message):
        """Commits everything in the work tree, pushes it, returns the commit id."""
        run(["git", "-C", self.work, "add", "-A"], env=self.env)
        run(["git", "-C", self.work, "-c", "user.name=bench", "-c", "user.email=b@example.com",
             "commit", "-q", "--allow-empty", "-m", message], env=self.env)
        run(["git", "-C", self.work, "push", "-q", self.bare, "HEAD:main"], env=self.env)
        return run(["git", "-C", self.work, "rev-parse", "HEAD"], env=self.env).strip()

    def serve(self, log_path):
        self.port = free_port()
        log = open(log_path, "w")
        self.daemon = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--export-all", "--verbose",
             "--listen=127.0.0.1", f"--port={self.port}", f"--base-path={self.repos}"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        wait_for_line(log_path, "Ready to rumble")
        return self.daemon

    def url(self):
        return f"git://127.0.0.1:{self.port}/{self.name}.git"


def wait_gitsync_ready(api, namespace, name, commit, timeout=600, fail_fast=False):
    """Waits until the GitSync has applied `commit` and is Ready; its status. With
    `fail_fast`, a Ready=False condition ends the run with its message."""
    want = f"main@sha1:{commit}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        gs = json.loads(api.request(
            "GET", f"/apis/sealsync.dev/v1/namespaces/{namespace}/gitsyncs/{name}"))
        status = gs.get("status", {})
        ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
        if fail_fast and ready and ready[0]["status"] == "False":
            sys.exit(f"{namespace}/{name}: {ready[0]['message']}")
        if status.get("lastAppliedRevision") == want and ready and ready[0]["status"] == "True":
            return status
        time.sleep(0.05)
    sys.exit(f"GitSync {namespace}/{name} did not apply {commit}")


def start_testcluster(tmp, procs):
    """Starts the embedded test API server (release build), appends it to `procs`, and returns
    its kubeconfig path and a Client for it."""
    kubeconfig = os.path.join(tmp, "kubeconfig")
    procs.append(subprocess.Popen(
        [os.path.join(REL, "sealsync-testcluster"), "--kubeconfig-out", kubeconfig],
        stdout=open(os.path.join(tmp, "server.log"), "w"), stderr=subprocess.STDOUT))
    deadline = time.time() + 30
    while not os.path.exists(kubeconfig) and time.time() < deadline:
        time.sleep(0.02)
    return kubeconfig, Client(kubeconfig)
