#!/usr/bin/env bash
# Runs every sealsync test. Installs the external tools the tests drive (Go age, OpenBao,
# git, kubectl check) and builds the real kube-apiserver and etcd and the kustomize and Helm
# renderer, sops and kubeseal from their Go modules (scripts/kube-apiserver.sh,
# scripts/renderer.sh, scripts/interop-tools.sh; cached, so only the first run pays) first, so a fresh machine
# needs nothing by hand.
#
# The end-to-end suites run against the real kube-apiserver (SEALSYNC_TEST_APISERVER); set
# SEALSYNC_TEST_APISERVER=embedded to run them against the embedded test server instead, or
# SEALSYNC_E2E_KUBECONFIG to run them against another cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-test-tools.sh
scripts/kube-apiserver.sh
scripts/renderer.sh
SEALSYNC_RENDERER="$(scripts/renderer.sh --print-path)"
export SEALSYNC_RENDERER
# The stock kustomize and helm of the same versions, which the render tests compare with.
scripts/render-oracles.sh
# The real sops and kubeseal, whose files the adoption tests read and write.
scripts/interop-tools.sh
export SEALSYNC_TEST_APISERVER="${SEALSYNC_TEST_APISERVER:-kube-apiserver}"
cargo test --workspace --locked "$@"
