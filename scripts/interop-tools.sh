#!/usr/bin/env bash
# Builds the peers of the adoption paths from their Go modules (scripts/interop-tools/go.mod;
# go.sum pins every module): `sops` (getsops/sops v3), whose files a GitSync decrypts, and
# `kubeseal` (bitnami-labs/sealed-secrets), whose files `sealsync import kubeseal` converts.
# The interoperability tests seal and encrypt with them. Cached outside the repository under a
# name that hashes the module files.
#
# Usage: scripts/interop-tools.sh [--print-dir]
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=scripts/interop-tools
digest="$(cat "$module_dir/go.mod" "$module_dir/go.sum" | sha256sum | cut -c1-16)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/interop-tools-$digest"
if [ "${1:-}" = "--print-dir" ]; then
    echo "$cache_dir"
    exit 0
fi
if [ -x "$cache_dir/sops" ] && [ -x "$cache_dir/kubeseal" ]; then
    echo "sops and kubeseal in $cache_dir"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "interop-tools.sh: the Go toolchain is needed to build sops and kubeseal; install Go 1.26 or newer" >&2
    exit 1
fi
echo "building sops and kubeseal with $(go version) (a few minutes the first time)"
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$module_dir/go.mod" "$module_dir/go.sum" "$work/"
(
    cd "$work"
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    mkdir -p bin
    go build -trimpath -ldflags "-s -w" -o bin/ \
        github.com/getsops/sops/v3/cmd/sops \
        github.com/bitnami-labs/sealed-secrets/cmd/kubeseal
)
mkdir -p "$cache_dir"
mv "$work/bin/sops" "$work/bin/kubeseal" "$cache_dir/"
echo "built sops and kubeseal in $cache_dir ($((SECONDS - started)) s)"
