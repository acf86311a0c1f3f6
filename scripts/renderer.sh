#!/usr/bin/env bash
# Builds sealsync-renderer, the small Go program that runs kustomize and Helm for the controller
# and the CLI (renderer/), from its Go modules with this machine's Go toolchain. Nothing
# prebuilt is downloaded: the Go module proxy serves the sources and renderer/go.sum pins every
# one of them.
#
# The binary is cached outside the repository under a name that hashes the renderer's sources,
# so a second run only checks it and a changed source builds a new one.
#
# Usage: scripts/renderer.sh [--print-path]
#   --print-path   print where the binary is (or would be) and exit (nothing is built)
#
# Environment:
#   SEALSYNC_RENDERER        use this binary instead (the controller and the tests honour it too)
#   SEALSYNC_NO_INSTALL=1    only check; exit non-zero when the binary is missing
set -euo pipefail
cd "$(dirname "$0")/.."

module_dir=renderer
sources=("$module_dir/go.mod" "$module_dir/go.sum")
while IFS= read -r file; do sources+=("$file"); done < <(find "$module_dir" -maxdepth 1 -name '*.go' ! -name '*_test.go' | LC_ALL=C sort)
digest="$(cat "${sources[@]}" | sha256sum | cut -c1-16)"
version_of() { sed -n "s#^[[:space:]]*$1 \(v[^ ]*\).*#\1#p" "$module_dir/go.mod" | head -n 1; }
kustomize_version="$(version_of sigs.k8s.io/kustomize/api)"
helm_version="$(version_of helm.sh/helm/v4)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/renderer-kustomize-$kustomize_version-helm-$helm_version-$digest"
binary="${SEALSYNC_RENDERER:-$cache_dir/sealsync-renderer}"

if [ "${1:-}" = "--print-path" ]; then
    echo "$binary"
    exit 0
fi

expected="sealsync-renderer kustomize $kustomize_version helm $helm_version"
if [ -x "$binary" ] && [ "$("$binary" --version 2>/dev/null)" = "$expected" ]; then
    echo "$expected in $binary"
    exit 0
fi
if [ -n "${SEALSYNC_RENDERER:-}" ] || [ "${SEALSYNC_NO_INSTALL:-0}" = 1 ]; then
    echo "renderer.sh: $binary is not $expected (run scripts/renderer.sh without SEALSYNC_RENDERER)" >&2
    exit 1
fi
if ! command -v go >/dev/null 2>&1; then
    echo "renderer.sh: the Go toolchain is needed to build sealsync-renderer; install Go 1.26 or newer and put it on PATH" >&2
    exit 1
fi

echo "building $expected with $(go version) (a few minutes the first time)"
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "${sources[@]}" "$work/"
(
    cd "$work"
    # -mod=readonly: the checked-in go.sum must already hold every module; GOTOOLCHAIN=local:
    # never fetch another Go toolchain. CGO off: one static binary, as the image needs.
    export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" CGO_ENABLED=0
    go build -trimpath -ldflags "-s -w" -o sealsync-renderer .
)
mkdir -p "$cache_dir"
mv "$work/sealsync-renderer" "$binary"
"$binary" --version | grep -qx "$expected"
echo "built $expected in $binary ($((SECONDS - started)) s)"
