#!/usr/bin/env bash
# Builds the peers of the adoption paths from their Go modules (scripts/interop-tools/go.mod;
# go.sum pins every module): `sops` (getsops/sops v3), whose files a GitSync decrypts,
# `kubeseal` (bitnami-labs/sealed-secrets), whose files `sealsync import kubeseal` converts,
# and `glua` (yuin/gopher-lua, the Lua that Argo CD runs health checks in), which runs the
# shipped Argo CD health check in the tests.
# Cached outside the repository under a name that hashes the module files.
#
# Usage: scripts/interop-tools.sh [--print-dir]
set -euo pipefail
exec "$(dirname "$0")/go-tools.sh" scripts/interop-tools interop-tools "$@" \
    sops=github.com/getsops/sops/v3/cmd/sops \
    kubeseal=github.com/bitnami-labs/sealed-secrets/cmd/kubeseal \
    glua=github.com/yuin/gopher-lua/cmd/glua
