#!/usr/bin/env bash
# Regenerates the SOPS vector of sealsync_crypto::sops with the real `sops` that
# scripts/interop-tools.sh builds: a Secret encrypted to a throwaway age identity, only
# `data` and `stringData` encrypted, as Kubernetes users configure sops.
set -euo pipefail
cd "$(dirname "$0")"
sops="$(../../../scripts/interop-tools.sh --print-dir)/sops"
../../../scripts/interop-tools.sh >/dev/null
rm -f identity.txt
age-keygen -o identity.txt 2>/dev/null
recipient="$(grep -o 'age1[0-9a-z]*' identity.txt | head -1)"
plain="$(mktemp)"
trap 'rm -f "$plain"' EXIT
printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\ntype: Opaque\nstringData:\n  password: canary-s0ps-vector-7c1d\n  port: "5432"\n' > "$plain"
"$sops" encrypt --age "$recipient" --encrypted-regex '^(data|stringData)$' \
    --input-type yaml --output-type yaml "$plain" > secret.sops.yaml
