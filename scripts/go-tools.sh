#!/usr/bin/env bash
# Builds Go command-line tools from a module directory of the project's own, whose go.mod and
# go.sum pin every module, into a cache outside the repository named after a hash of those
# two files: built once, then found. scripts/render-oracles.sh and scripts/interop-tools.sh
# name what they build through it.
#
# Usage: scripts/go-tools.sh MODULE_DIR CACHE_NAME [--print-dir] BINARY=PACKAGE...
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir="$1"
cache_name="$2"
shift 2
print_dir=0
if [ "${1:-}" = "--print-dir" ]; then
    print_dir=1
    shift
fi
digest="$(cat "$module_dir/go.mod" "$module_dir/go.sum" | sha256sum | cut -c1-16)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/$cache_name-$digest"
if [ "$print_dir" = 1 ]; then
    echo "$cache_dir"
    exit 0
fi
binaries=()
packages=()
for pair in "$@"; do
    binaries+=("${pair%%=*}")
    packages+=("${pair#*=}")
done
names="${binaries[*]}"
missing=0
for binary in "${binaries[@]}"; do
    [ -x "$cache_dir/$binary" ] || missing=1
done
if [ "$missing" = 0 ]; then
    echo "$names in $cache_dir"
    exit 0
fi
if ! command -v go >/dev/null 2>&1; then
    echo "go-tools.sh: the Go toolchain is needed to build $names; install Go 1.26 or newer" >&2
    exit 1
fi
echo "building $names with $(go version) (a few minutes the first time)"
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$module_dir/go.mod" "$module_dir/go.sum" "$work/"
(
    cd "$work"
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    mkdir -p bin
    go build -trimpath -ldflags "-s -w" -o bin/ "${packages[@]}"
)
mkdir -p "$cache_dir"
for binary in "${binaries[@]}"; do
    mv "$work/bin/$binary" "$cache_dir/"
done
echo "built $names in $cache_dir ($((SECONDS - started)) s)"
