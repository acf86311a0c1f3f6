#!/usr/bin/env bash
# Builds the stock `kustomize` and `helm` CLIs at the versions sealsync-renderer is built from,
# from their Go modules (scripts/render-oracles/go.mod; go.sum pins every module): the oracles
# the render tests compare sealsync's output with, and the peers of the render benchmarks.
# Cached outside the repository under a name that hashes the module files.
#
# Usage: scripts/render-oracles.sh [--print-dir]
set -euo pipefail
exec "$(dirname "$0")/go-tools.sh" scripts/render-oracles render-oracles "$@" \
    kustomize=sigs.k8s.io/kustomize/kustomize/v5 helm=helm.sh/helm/v4/cmd/helm
