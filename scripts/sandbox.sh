#!/usr/bin/env bash
# The main job on a bundled local sandbox: generate a throwaway key, seal the example Secret,
# show what would be committed, check it, and open it again. Nothing is written outside a
# temporary directory, and no plaintext goes to disk there (the sealed file only).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p sealsync
sealsync="$PWD/target/debug/sealsync"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== 1. a cluster key (here: a throwaway offline identity)"
recipient="$("$sealsync" keys generate -o "$work/identity.txt")"
echo "recipient: $recipient"

echo "== 2. seal examples/secret.yaml -> $work/repo/apps/shop/db-credentials.yaml"
mkdir -p "$work/repo/apps/shop"
cat > "$work/repo/.sealsync.yaml" <<RULES
clusters:
  sandbox:
    recipients: [$recipient]
creation_rules:
  - path_regex: ^apps/
    clusters: [sandbox]
RULES
"$sealsync" seal -f examples/secret.yaml -w "$work/repo/apps/shop/db-credentials.yaml"
cat "$work/repo/apps/shop/db-credentials.yaml"

echo "== 3. add one value without decrypt access (one new value line, one new envelope)"
"$sealsync" seal --merge-into "$work/repo/apps/shop/db-credentials.yaml" --from-literal api-token=example-token

echo "== 4. check the repository as a pre-commit hook would"
"$sealsync" check "$work/repo"

echo "== 5. open it again with the identity (break-glass)"
"$sealsync" unseal -i "$work/identity.txt" -f "$work/repo/apps/shop/db-credentials.yaml"
