#!/usr/bin/env bash
# The main job on a bundled local sandbox: generate a throwaway key, seal the example Secret,
# show what would be committed, check it, and open it again. Nothing is written outside a
# temporary directory, and no plaintext goes to disk there (the sealed file only).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p sealsync -p sealsync-tests --bins
sealsync="$PWD/target/debug/sealsync"
testcluster="$PWD/target/debug/sealsync-testcluster"
work="$(mktemp -d)"
cluster_pid=""
cleanup() {
    [ -n "$cluster_pid" ] && kill "$cluster_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

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

echo "== 3. add one value without decrypt access: the diff is one value line and one envelope"
cp "$work/repo/apps/shop/db-credentials.yaml" "$work/before.yaml"
"$sealsync" seal --merge-into "$work/repo/apps/shop/db-credentials.yaml" --from-literal api-token=example-token
diff -u "$work/before.yaml" "$work/repo/apps/shop/db-credentials.yaml" | cut -c1-120 || true

echo "== 4. check the repository as a pre-commit hook would"
"$sealsync" check "$work/repo"

echo "== 5. open it again with the identity (break-glass)"
"$sealsync" unseal -i "$work/identity.txt" -f "$work/repo/apps/shop/db-credentials.yaml"

if command -v kubectl >/dev/null 2>&1; then
    echo "== 6. what the controller will do in the cluster: apply the opened Secret (local test API server)"
    "$testcluster" --listen 127.0.0.1:0 --kubeconfig-out "$work/kubeconfig" > "$work/cluster.out" &
    cluster_pid=$!
    for _ in $(seq 50); do [ -s "$work/kubeconfig" ] && break; sleep 0.1; done
    export KUBECONFIG="$work/kubeconfig"
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n' | kubectl apply --server-side -f -
    "$sealsync" unseal -i "$work/identity.txt" -f "$work/repo/apps/shop/db-credentials.yaml" \
        | kubectl apply --server-side --field-manager=sealsync -f -
    kubectl get secrets -n shop
fi
