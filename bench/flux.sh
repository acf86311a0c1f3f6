#!/usr/bin/env bash
# Builds Flux's source-controller and kustomize-controller from their Go modules, for the
# benchmarks that run them side by side with sealsync. Nothing prebuilt is downloaded: the Go
# module proxy serves the sources, and bench/flux/*/go.sum pins every one of them. The
# binaries and Flux's CRDs (from the same modules) are cached outside the repository, keyed
# by both versions, so a second run only checks them.
#
# Usage: bench/flux.sh [--print-dir]
#   --print-dir   print the cache directory and exit (nothing is built)
set -euo pipefail
cd "$(dirname "$0")/.."

version_of() { sed -n "s#^[[:space:]]*github.com/fluxcd/$1 \(v[^ ]*\).*#\1#p" "bench/flux/$1/go.mod" | head -n 1; }
source_version="$(version_of source-controller)"
kustomize_version="$(version_of kustomize-controller)"
if [ -z "$source_version" ] || [ -z "$kustomize_version" ]; then
    echo "flux.sh: cannot read the versions from bench/flux/*/go.mod" >&2
    exit 1
fi
cache_dir="${SEALSYNC_FLUX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/flux-source-$source_version-kustomize-$kustomize_version}"
if [ "${1:-}" = "--print-dir" ]; then
    echo "$cache_dir"
    exit 0
fi
have_binaries() { [ -x "$cache_dir/source-controller" ] && [ -x "$cache_dir/kustomize-controller" ]; }
if have_binaries && [ -s "$cache_dir/crds.yaml" ]; then
    echo "source-controller $source_version and kustomize-controller $kustomize_version in $cache_dir"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "flux.sh: the Go toolchain is needed to build Flux; install Go 1.26 or newer" >&2
    exit 1
fi

started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache_dir"
# GOTOOLCHAIN=local: never fetch another Go toolchain; -mod=readonly: go.sum must already hold
# every module. A build cache of its own, deleted with $work.
export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0 GOCACHE="$work/go-build"
if ! have_binaries; then
    echo "building source-controller $source_version and kustomize-controller $kustomize_version with $(go version) (several minutes the first time)"
fi
: >"$work/crds.yaml"
for controller in source-controller kustomize-controller; do
    cp "bench/flux/$controller/go.mod" "bench/flux/$controller/go.sum" "$work/"
    (
        cd "$work"
        if ! have_binaries; then
            go build -trimpath -ldflags "-s -w" -o "bin/$controller" "github.com/fluxcd/$controller"
        fi
        go mod download "github.com/fluxcd/$controller"
        module_dir="$(go list -m -f '{{.Dir}}' "github.com/fluxcd/$controller")"
        # Every CRD of the controller: it waits for the informers of all its kinds.
        for crd in "$module_dir"/config/crd/bases/*.yaml; do
            { echo "---"; cat "$crd"; } >>crds.yaml
        done
    )
    rm "$work/go.mod" "$work/go.sum"
done
if ! have_binaries; then
    mv "$work/bin/source-controller" "$work/bin/kustomize-controller" "$cache_dir/"
fi
mv "$work/crds.yaml" "$cache_dir/crds.yaml"
echo "ready in $((SECONDS - started)) s in $cache_dir"
