"""What the benchmarks share: running commands, waiting for log lines, a small API client for
the test server's kubeconfig (requests and watches), process memory and CPU from /proc, and a
local Git remote served by `git daemon` and by smart HTTP (`git http-backend`)."""
import base64
import http.client
import http.server
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
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
        self.url = urllib.parse.urlparse(cluster["server"])
        self.context = None
        if self.url.scheme == "https":
            self.context = ssl.create_default_context()
            ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
            self.context.load_verify_locations(cadata=ca)
        self.conn = self.connect()

    def connect(self):
        if self.context:
            return http.client.HTTPSConnection(self.url.hostname, self.url.port,
                                               context=self.context)
        return http.client.HTTPConnection(self.url.hostname, self.url.port)

    def watch(self, path, name):
        """A Watch of the object `name` in the collection at `path`."""
        return Watch(self, path, name)

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


class Watch:
    """Follows one object with a watch, on a thread of its own: every change arrives as it
    happens, and a large object is not read again and again as polling would."""

    def __init__(self, client, path, name):
        self.client, self.path, self.name = client, path, name
        self.events = []  # (arrival time, object)
        self.cond = threading.Condition()
        self.stopped = False
        threading.Thread(target=self.follow, daemon=True).start()

    def follow(self):
        version = ""
        while not self.stopped:
            conn = self.client.connect()
            query = urllib.parse.urlencode({
                "watch": "true", "fieldSelector": f"metadata.name={self.name}",
                "resourceVersion": version, "allowWatchBookmarks": "false"})
            try:
                conn.request("GET", f"{self.path}?{query}",
                             headers={"Authorization": f"Bearer {self.client.token}"})
                response = conn.getresponse()
                for line in response:
                    # Arrival, before the parse (a large object takes a while).
                    at = time.time()
                    event = json.loads(line)
                    obj = event.get("object", {})
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        with self.cond:
                            self.events.append((at, obj))
                            self.cond.notify_all()
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.1)
            finally:
                conn.close()

    def mark(self):
        """Where the next `wait` starts looking."""
        with self.cond:
            return len(self.events)

    def wait(self, predicate, since=0, timeout=600):
        """The arrival time of the first change from `since` on whose object `predicate`
        accepts."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for at, obj in self.events[since:]:
                    if predicate(obj):
                        return at
                since = len(self.events)
                # Only the newest object is needed again.
                if len(self.events) > 2:
                    self.events = self.events[-1:]
                    since = 1
                left = deadline - time.time()
                if left <= 0:
                    sys.exit(f"{self.path}/{self.name} did not reach the awaited state "
                             f"within {timeout} s")
                self.cond.wait(left)


class GitHttp(http.server.BaseHTTPRequestHandler):
    """Smart HTTP: `git http-backend` as a CGI program, as a Git host serves it."""
    root = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.cgi()

    def do_POST(self):
        self.cgi()

    def cgi(self):
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": self.root,
               "GIT_HTTP_EXPORT_ALL": "1", "REQUEST_METHOD": self.command,
               "PATH_INFO": urllib.parse.unquote(path), "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": "127.0.0.1",
               "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
               "GIT_PROTOCOL": self.headers.get("Git-Protocol", "")}
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key, value.strip()))
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


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

    def serve_http(self):
        """Serves the repositories over smart HTTP too (Flux fetches only http(s) and ssh)."""
        handler = type("Handler", (GitHttp,), {"root": self.repos})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.http_port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server

    def http_url(self):
        return f"http://127.0.0.1:{self.http_port}/{self.name}.git"


def applied_and_ready(commit):
    """A predicate on a GitSync or a Flux Kustomization (the same status fields): `commit`
    applied and Ready."""
    def check(obj):
        status = obj.get("status", {})
        ready = [c for c in status.get("conditions", []) if c.get("type") == "Ready"]
        return (status.get("lastAppliedRevision", "").endswith(commit)
                and bool(ready) and ready[0].get("status") == "True")
    return check


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


def start_testcluster(tmp, procs, server="embedded"):
    """Starts the test API server (release build), appends it to `procs`, and returns its
    kubeconfig path and a Client for it. `server` is `embedded` (the test server in the
    process) or `kube-apiserver` (the real kube-apiserver and etcd that
    scripts/kube-apiserver.sh builds); stop it with `stop_processes`."""
    kubeconfig = os.path.join(tmp, "kubeconfig")
    argv = [os.path.join(REL, "sealsync-testcluster"), "--kubeconfig-out", kubeconfig]
    if server == "kube-apiserver":
        run([os.path.join(ROOT, "scripts", "kube-apiserver.sh")])
        argv.append("--kube-apiserver")
    elif server != "embedded":
        sys.exit(f"unknown server {server!r}: embedded or kube-apiserver")
    url_path = os.path.join(tmp, "server.url")
    procs.append(subprocess.Popen(argv, stdout=open(url_path, "w"),
                                  stderr=open(os.path.join(tmp, "server.log"), "w")))
    # The URL is printed once the server answers.
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.exists(kubeconfig) and open(url_path).read().strip():
            return kubeconfig, Client(kubeconfig)
        if procs[-1].poll() is not None:
            sys.exit(f"the test server exited: {open(os.path.join(tmp, 'server.log')).read()[-2000:]}")
        time.sleep(0.02)
    sys.exit("the test server did not start within 120 s")


def stop_processes(procs):
    """Stops processes last first, politely (the test server stops kube-apiserver and etcd on
    SIGTERM), then for good."""
    for p in reversed(procs):
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
