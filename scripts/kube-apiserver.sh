#!/usr/bin/env bash
# Builds the real kube-apiserver, kube-controller-manager and etcd that the end-to-end tests run
# against, from their Go modules, with this machine's Go toolchain. Nothing prebuilt is downloaded: the Go module
# proxy serves the sources, and scripts/kube-apiserver/go.sum pins every one of them.
#
# The versions are those of scripts/kube-apiserver/go.mod: Kubernetes v1.33 (the newest minor
# that both k8s-openapi 0.29 and the kubectl of these machines, 1.27 to 1.33, support) and the
# etcd release that Kubernetes release is tested with. The binaries are cached outside the
# repository, keyed by both versions, so a second run only checks them.
#
# Usage: scripts/kube-apiserver.sh [--print-dir]
#   --print-dir   print the cache directory and exit (nothing is built)
#
# Environment:
#   SEALSYNC_KUBE_BIN_DIR   the directory for the binaries (default: see cache_dir below)
#   SEALSYNC_NO_INSTALL=1   only check; exit non-zero when the binaries are missing
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=scripts/kube-apiserver
version_of() { sed -n "s#^[[:space:]]*$1 \(v[^ ]*\).*#\1#p" "$module_dir/go.mod" | head -n 1; }
kube_version="$(version_of k8s.io/kubernetes)"
etcd_version="$(version_of go.etcd.io/etcd/server/v3)"
if [ -z "$kube_version" ] || [ -z "$etcd_version" ]; then
    echo "kube-apiserver.sh: cannot read the versions from $module_dir/go.mod" >&2
    exit 1
fi

# The same rule as tests/src/kubeapiserver/binaries.rs, which finds the binaries for the tests.
cache_dir="${SEALSYNC_KUBE_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/kube-$kube_version-etcd-$etcd_version}"

if [ "${1:-}" = "--print-dir" ]; then
    echo "$cache_dir"
    exit 0
fi

have_binaries() {
    [ -x "$cache_dir/kube-apiserver" ] && [ -x "$cache_dir/kube-controller-manager" ] &&
        [ -x "$cache_dir/etcd" ] &&
        "$cache_dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $kube_version" &&
        "$cache_dir/kube-controller-manager" --version 2>/dev/null | grep -qx "Kubernetes $kube_version"
}

if have_binaries; then
    echo "kube-apiserver and kube-controller-manager $kube_version and etcd $etcd_version in $cache_dir"
    exit 0
fi
if [ "${SEALSYNC_NO_INSTALL:-0}" = 1 ]; then
    echo "kube-apiserver.sh: kube-apiserver and kube-controller-manager $kube_version are not built in $cache_dir" \
        "(run scripts/kube-apiserver.sh)" >&2
    exit 1
fi
if ! command -v go >/dev/null 2>&1; then
    echo "kube-apiserver.sh: the Go toolchain is needed to build kube-apiserver, kube-controller-manager and etcd;" \
        "install Go 1.24 or newer and put it on PATH" >&2
    exit 1
fi

echo "building kube-apiserver and kube-controller-manager $kube_version and etcd $etcd_version with $(go version) (several minutes the first time)"
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$module_dir/go.mod" "$module_dir/go.sum" "$work/"
mkdir -p "$work/bin"
minor="${kube_version#v1.}"
minor="${minor%%.*}"
ldflags="-s -w"
ldflags+=" -X k8s.io/component-base/version.gitVersion=$kube_version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=1"
ldflags+=" -X k8s.io/component-base/version.gitMinor=$minor"
ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
(
    cd "$work"
    # -mod=readonly: the checked-in go.sum must already hold every module; GOTOOLCHAIN=local:
    # never fetch another Go toolchain.
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    # A build cache of its own, deleted with $work: it would keep 2.3 GB for a build that
    # runs once per version.
    export GOCACHE="$work/go-build"
    go build -trimpath -ldflags "$ldflags" -o bin/kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags "$ldflags" -o bin/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-controller-manager
    go build -trimpath -ldflags "-s -w" -o bin/etcd go.etcd.io/etcd/server/v3
)
mkdir -p "$cache_dir"
# Move into place only once all exist, so an interrupted build never leaves half a set.
mv -f "$work/bin/etcd" "$cache_dir/etcd"
mv -f "$work/bin/kube-controller-manager" "$cache_dir/kube-controller-manager"
mv -f "$work/bin/kube-apiserver" "$cache_dir/kube-apiserver"
if ! have_binaries; then
    echo "kube-apiserver.sh: the built kube-apiserver does not report $kube_version" >&2
    exit 1
fi
echo "built kube-apiserver and kube-controller-manager $kube_version and etcd $etcd_version in $((SECONDS - started)) s: $cache_dir ($(du -sh "$cache_dir" | cut -f1))"
