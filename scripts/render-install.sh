#!/usr/bin/env bash
# Renders the kustomize base in deploy/ into the single file deploy/install.yaml (for
# `kubectl apply -f` without kustomize). tests/tests/install.rs fails when it is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
{
  echo "# sealsync: the whole install in one file, rendered from deploy/ by scripts/render-install.sh."
  echo "# Do not edit: change deploy/ and run the script again."
  kubectl kustomize deploy/
} > deploy/install.yaml
