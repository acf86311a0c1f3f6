#!/usr/bin/env python3
"""Records the OpenAPI v3 definitions of the group-versions the embedded test server serves,
as the real kube-apiserver serves them, into tests/data/openapi/schemas.json.

It starts the real kube-apiserver (sealsync-testcluster --kube-apiserver, built by
scripts/kube-apiserver.sh) and downloads /openapi/v3/<group-version>. The served documents are
the source, not api/openapi-spec in the Kubernetes sources: the server adds the enums and
their descriptions ("Possible enum values") that the checked-in specification leaves out.

The embedded server serves these definitions at /openapi/v3, so that `kubectl explain` shows
what it shows against kube-apiserver. Run it after changing the Kubernetes version in
scripts/kube-apiserver/go.mod:

    scripts/kube-apiserver.sh && cargo build -p sealsync-tests --bins && scripts/openapi-schemas.py
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GROUP_VERSIONS = [
    "api/v1",
    "apis/apps/v1",
    "apis/batch/v1",
    "apis/networking.k8s.io/v1",
    "apis/policy/v1",
    "apis/rbac.authorization.k8s.io/v1",
    "apis/coordination.k8s.io/v1",
    "apis/events.k8s.io/v1",
    "apis/apiextensions.k8s.io/v1",
    "apis/authorization.k8s.io/v1",
    "apis/authentication.k8s.io/v1",
]


def kube_version():
    with open(os.path.join(ROOT, "scripts/kube-apiserver/go.mod")) as f:
        for line in f:
            m = re.match(r"\s*k8s.io/kubernetes (v\S+)", line)
            if m:
                return m.group(1)
    sys.exit("openapi-schemas.py: no k8s.io/kubernetes version in scripts/kube-apiserver/go.mod")


def served_group_versions():
    out = set()
    for gv in GROUP_VERSIONS:
        parts = gv.split("/")
        out.add(("", parts[1]) if parts[0] == "api" else (parts[1], parts[2]))
    return out


def v2_closure(definitions):
    """The v2 definitions of kinds in the served group-versions, and what they refer to."""
    served = served_group_versions()
    pending = [
        name
        for name, d in definitions.items()
        if any(
            (g.get("group", ""), g.get("version")) in served
            for g in d.get("x-kubernetes-group-version-kind", [])
        )
    ]
    out = {}
    while pending:
        name = pending.pop()
        if name in out or name not in definitions:
            continue
        out[name] = definitions[name]
        pending.extend(re.findall(r'"#/definitions/([^"]+)"', json.dumps(definitions[name])))
    return out


def main():
    version = kube_version()
    binary = os.path.join(ROOT, "target/debug/sealsync-testcluster")
    if not os.access(binary, os.X_OK):
        sys.exit("openapi-schemas.py: build it first: cargo build -p sealsync-tests --bins")
    schemas = {}
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = os.path.join(tmp, "kubeconfig")
        server = subprocess.Popen(
            [binary, "--kube-apiserver", "--listen", "127.0.0.1:0", "--kubeconfig-out", kubeconfig],
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.time() + 120
            while not os.path.exists(kubeconfig) and time.time() < deadline:
                time.sleep(0.5)
            for gv in GROUP_VERSIONS:
                raw = subprocess.run(
                    ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", f"/openapi/v3/{gv}"],
                    check=True, capture_output=True, text=True,
                ).stdout
                for key, definition in json.loads(raw)["components"]["schemas"].items():
                    if key in schemas and schemas[key] != definition:
                        sys.exit(f"openapi-schemas.py: {key} differs between group-versions")
                    schemas[key] = definition
            v2 = json.loads(
                subprocess.run(
                    ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/openapi/v2"],
                    check=True, capture_output=True, text=True,
                ).stdout
            )["definitions"]
        finally:
            server.terminate()
            server.wait()
    definitions_v2 = v2_closure(v2)
    out = {
        "source": f"kube-apiserver {version} /openapi/v3 (Kubernetes, Apache License 2.0)",
        "kubernetesVersion": version,
        "schemas": schemas,
        "definitionsV2": definitions_v2,
    }
    path = os.path.join(ROOT, "tests/data/openapi/schemas.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"), sort_keys=True)
        f.write("\n")
    print(
        f"{len(schemas)} OpenAPI v3 and {len(definitions_v2)} v2 definitions of Kubernetes "
        f"{version} written to {path}"
    )


if __name__ == "__main__":
    main()
