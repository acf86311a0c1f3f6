#!/usr/bin/env bash
# Builds the stock `kustomize` and `helm` CLIs at the versions sealsync-renderer is built from,
# from their Go modules (scripts/render-oracles/go.mod; go.sum pins every module): the oracles
# the render tests compare sealsync's output with, and the peers of the render benchmarks.
# Cached outside the repository under a name that hashes the module files.
#
# Usage: scripts/render-oracles.sh [--print-dir]
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=scripts/render-oracles
digest="$(cat "$module_dir/go.mod" "$module_dir/go.sum" | sha256sum | cut -c1-16)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/render-oracles-$digest"
if [ "${1:-}" = "--print-dir" ]; then
    echo "$cache_dir"
    exit 0
fi
if [ -x "$cache_dir/kustomize" ] && [ -x "$cache_dir/helm" ]; then
    echo "kustomize and helm in $cache_dir"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "render-oracles.sh: the Go toolchain is needed to build kustomize and helm; install Go 1.26 or newer" >&2
    exit 1
fi
echo "building kustomize and helm with $(go version) (a few minutes the first time)"
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$module_dir/go.mod" "$module_dir/go.sum" "$work/"
(
    cd "$work"
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    mkdir -p bin
    go build -trimpath -ldflags "-s -w" -o bin/ sigs.k8s.io/kustomize/kustomize/v5 helm.sh/helm/v4/cmd/helm
)
mkdir -p "$cache_dir"
mv "$work/bin/kustomize" "$work/bin/helm" "$cache_dir/"
echo "built kustomize and helm in $cache_dir ($((SECONDS - started)) s)"
