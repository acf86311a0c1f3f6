#!/usr/bin/env bash
# The main job on a bundled local sandbox: the test Kubernetes API server, a local Git server
# (git daemon) and sealsync-controller as real processes. It fetches the cluster key, seals a
# Secret, commits it with a Deployment and a ConfigMap, shows the GitSync becoming Ready,
# changes a value, shows a manual edit being undone, resolves a Vault reference (when OpenBao
# is installed) and refreshes it without a commit, syncs a kustomize overlay with a sealed
# Secret and substitution and a Helm chart with sealed values, rotates the cluster key,
# re-wraps the files through the controller and retires the old key, and shows
# `sealsync status`, and serves the read-only web view (`sealsync ui`). Everything
# runs in a temporary directory and every process it starts is stopped at the end.
#
# With --ui it then keeps the sandbox running, so the web view can be opened in a browser,
# until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
keep_ui=0
[ "${1:-}" = "--ui" ] && keep_ui=1
for tool in git kubectl python3; do
    command -v "$tool" >/dev/null || { echo "sandbox: $tool is needed" >&2; exit 1; }
done
# The workspace's binaries with the workspace's features: what `cargo test --workspace` built
# already, so that CI's run after the tests compiles nothing again.
cargo build -q --workspace --bins
bin="$PWD/target/debug"
# kustomize and Helm run in sealsync-renderer, built from their Go modules (cached).
scripts/renderer.sh >/dev/null
SEALSYNC_RENDERER="$(scripts/renderer.sh --print-path)"
export SEALSYNC_RENDERER
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export KUBECONFIG="$work/kubeconfig"
export GIT_CONFIG_NOSYSTEM=1 HOME="$work/home"
mkdir -p "$HOME"
git config --global user.name sandbox
git config --global user.email sandbox@example.com
git config --global init.defaultBranch main
step() { printf '\n== %s\n' "$*"; }
wait_for() { # FILE NEEDLE: waits up to 30 s for NEEDLE in FILE
    for _ in $(seq 300); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    echo "sandbox: $1 never showed '$2':" >&2; tail -20 "$1" >&2; exit 1
}

step "1. a Kubernetes API (the bundled test server) with the sealsync CRDs"
"$bin/sealsync-testcluster" --listen 127.0.0.1:0 --kubeconfig-out "$KUBECONFIG" > "$work/cluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
kubectl apply --server-side -f deploy/crds/
for ns in sealsync-system shop; do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$ns" | kubectl apply --server-side -f -
done

step "2. sealsync-controller (its key is generated in the cluster on first start)"
"$bin/sealsync-controller" --namespace sealsync-system --http-addr 127.0.0.1:0 \
    --data-dir "$work/controller" > "$work/controller.log" 2>&1 &
pids+=($!)
wait_for "$work/controller.log" "controller: running"
grep -o 'http: listening.*' "$work/controller.log"

step "3. fetch the cluster's public key, as a developer would"
"$bin/sealsync" keys fetch -o "$work/cluster-recipients.txt"
cat "$work/cluster-recipients.txt"

step "4. a Git repository: seal the Secret by .sealsync.yaml rules, add a ConfigMap and a Deployment"
git init -q --bare "$work/git/apps.git"
git clone -q "$work/git/apps.git" "$work/repo" 2>/dev/null
mkdir -p "$work/repo/apps/shop"
{
    echo "clusters:"
    echo "  sandbox:"
    echo "    recipients: [$(grep '^age1' "$work/cluster-recipients.txt" | paste -sd, -)]"
    echo "creation_rules:"
    echo "  - path_regex: ^apps/"
    echo "    clusters: [sandbox]"
} > "$work/repo/.sealsync.yaml"
"$bin/sealsync" seal -f examples/secret.yaml -w "$work/repo/apps/shop/db-credentials.yaml"
cat > "$work/repo/apps/shop/settings.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data:
  mode: blue
YAML
cat > "$work/repo/apps/shop/web.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.27
        envFrom:
        - secretRef: {name: db-credentials}
YAML
"$bin/sealsync" check "$work/repo"
git -C "$work/repo" add -A
git -C "$work/repo" commit -q -m "shop: database credentials, settings, web"
git -C "$work/repo" push -q origin HEAD:main
git -C "$work/repo" log --oneline -1

step "5. serve it with git daemon and create the GitSync"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
git daemon --reuseaddr --export-all --verbose --listen=127.0.0.1 --port="$port" \
    --base-path="$work/git" > "$work/daemon.log" 2>&1 &
pids+=($!)
wait_for "$work/daemon.log" "Ready to rumble"
# The shop team's GitSync applies as its own service account: outside the trusted namespaces
# (--trusted-namespaces) a GitSync never gets the controller's permissions.
kubectl apply --server-side -f - <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: shop-deployer, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: shop-deployer, namespace: shop}
rules:
- apiGroups: ["", apps]
  resources: [secrets, configmaps, deployments]
  verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: shop-deployer, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: shop-deployer}
subjects:
- {kind: ServiceAccount, name: shop-deployer, namespace: shop}
YAML
cat > "$work/gitsync.yaml" <<YAML
apiVersion: sealsync.dev/v1
kind: GitSync
metadata:
  name: shop
  namespace: shop
spec:
  url: git://127.0.0.1:$port/apps.git
  ref: {branch: main}
  path: apps/shop
  interval: 5s
  serviceAccountName: shop-deployer
YAML
cat "$work/gitsync.yaml"
kubectl apply --server-side -f "$work/gitsync.yaml"
kubectl wait gitsync/shop -n shop --for=condition=Ready --timeout=60s
"$bin/sealsync" status -n shop
kubectl get secrets,configmaps,deployments -n shop -l sealsync.dev/gitsync-name=shop

step "6. change a value (no decrypt access needed) and push"
before="$(kubectl get secret db-credentials -n shop -o jsonpath='{.data.password}' | sha256sum | cut -c1-16)"
"$bin/sealsync" seal --merge-into "$work/repo/apps/shop/db-credentials.yaml" \
    --from-literal password=a-new-example-password
git -C "$work/repo" commit -q -am "shop: rotate the database password"
git -C "$work/repo" push -q origin HEAD:main
"$bin/sealsync" sync shop -n shop
after="$(kubectl get secret db-credentials -n shop -o jsonpath='{.data.password}' | sha256sum | cut -c1-16)"
echo "password digest before: $before  after: $after"

step "7. a manual edit is undone"
kubectl patch configmap settings -n shop --type merge -p '{"data":{"mode":"edited-by-hand"}}'
kubectl get configmap settings -n shop -o jsonpath='mode={.data.mode}{"\n"}'
"$bin/sealsync" sync shop -n shop
kubectl get configmap settings -n shop -o jsonpath='mode={.data.mode}{"\n"}'

step "8. a value kept in Vault (OpenBao): resolved during the sync, refreshed without a commit"
if command -v bao >/dev/null; then
    bao_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    export BAO_ADDR="http://127.0.0.1:$bao_port"
    BAO_TOKEN="sandbox-root-$(python3 -c 'import secrets; print(secrets.token_hex(8))')"
    export BAO_TOKEN
    BAO_DEV_ROOT_TOKEN_ID="$BAO_TOKEN" bao server -dev -dev-no-store-token \
        -dev-listen-address="127.0.0.1:$bao_port" > "$work/bao.log" 2>&1 &
    pids+=($!)
    wait_for "$work/bao.log" "Development mode should NOT be used"
    for _ in $(seq 100); do bao kv put -mount=secret shop/api key=first-example-key >/dev/null 2>&1 && break; sleep 0.1; done
    kubectl create secret generic vault-token -n shop --from-literal=token="$BAO_TOKEN"
    cat > "$work/repo/apps/shop/api-key.yaml" <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: api-key
  namespace: shop
stringData:
  key: ref+vault://secret/shop/api#key
YAML
    "$bin/sealsync" check "$work/repo/apps/shop/api-key.yaml"
    git -C "$work/repo" add -A
    git -C "$work/repo" commit -q -m "shop: the API key, from Vault"
    git -C "$work/repo" push -q origin HEAD:main
    kubectl patch gitsync shop -n shop --type merge -p "{\"spec\":{\"vault\":{\"address\":\"$BAO_ADDR\",\"refreshInterval\":\"5s\",\"token\":{\"secretRef\":{\"name\":\"vault-token\"}}}}}"
    "$bin/sealsync" sync shop -n shop
    digest() { kubectl get secret api-key -n shop -o jsonpath='{.data.key}' | sha256sum | cut -c1-16; }
    before="$(digest)"
    bao kv put -mount=secret shop/api key=rotated-example-key >/dev/null
    for _ in $(seq 150); do [ "$(digest)" != "$before" ] && break; sleep 0.1; done
    echo "api-key digest before: $before  after the change in Vault (no commit): $(digest)"
else
    echo "skipped: OpenBao is not installed (scripts/ensure-test-tools.sh installs it)"
fi

step "9. a kustomize overlay with a sealed Secret and substitution, a Helm chart with sealed values"
mkdir -p "$work/repo/apps/web/base" "$work/repo/apps/web/prod" "$work/repo/apps/chart/templates"
cat > "$work/repo/apps/web/base/kustomization.yaml" <<'YAML'
resources: [settings.yaml]
YAML
cat > "$work/repo/apps/web/base/settings.yaml" <<'YAML'
apiVersion: v1
kind: ConfigMap
metadata: {name: web-settings}
data: {region: "${region}", tier: "${tier:=standard}"}
YAML
cat > "$work/repo/apps/web/prod/kustomization.yaml" <<'YAML'
namespace: shop
namePrefix: prod-
resources: [../base, db.sealed.yaml]
YAML
# The overlay renames what it builds: the Secret `web-db` becomes shop/prod-web-db, the identity
# `sealsync render` shows and the Secret is sealed for.
printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: web-db}\nstringData: {password: an-example-password}\n' |
    "$bin/sealsync" seal --recipients-file "$work/cluster-recipients.txt" --rendered-as shop/prod-web-db \
    -w "$work/repo/apps/web/prod/db.sealed.yaml"
"$bin/sealsync" render "$work/repo/apps/web/prod"
cat > "$work/repo/apps/chart/Chart.yaml" <<'YAML'
apiVersion: v2
name: api
version: 1.0.0
YAML
printf 'replicas: 1\ndatabase: {password: ""}\n' > "$work/repo/apps/chart/values.yaml"
cat > "$work/repo/apps/chart/templates/secret.yaml" <<'YAML'
apiVersion: v1
kind: Secret
metadata: {name: {{ .Release.Name }}-db}
stringData: {password: {{ .Values.database.password | quote }}}
YAML
# Sealed values: a Secret whose key values.yaml holds values, sealed for the GitSync's namespace.
printf 'apiVersion: v1\nkind: Secret\nmetadata: {name: api-values, namespace: shop}\nstringData:\n  values.yaml: |\n    database: {password: an-example-chart-password}\n' |
    "$bin/sealsync" seal --recipients-file "$work/cluster-recipients.txt" -w "$work/repo/apps/chart/values.sealed.yaml"
"$bin/sealsync" check "$work/repo/apps"
git -C "$work/repo" add -A
git -C "$work/repo" commit -q -m "web: a prod overlay; api: a chart with sealed values"
git -C "$work/repo" push -q origin HEAD:main
kubectl apply --server-side -f - <<YAML
apiVersion: sealsync.dev/v1
kind: GitSync
metadata: {name: web-prod, namespace: shop}
spec:
  url: git://127.0.0.1:$port/apps.git
  path: apps/web/prod
  interval: 1m
  serviceAccountName: shop-deployer
  postBuild: {substitute: {region: eu-west-1}}
---
apiVersion: sealsync.dev/v1
kind: GitSync
metadata: {name: api, namespace: shop}
spec:
  url: git://127.0.0.1:$port/apps.git
  path: apps/chart
  interval: 1m
  serviceAccountName: shop-deployer
  helm: {valuesFrom: [{kind: Sealed, path: values.sealed.yaml}]}
YAML
kubectl wait gitsync/web-prod gitsync/api -n shop --for=condition=Ready --timeout=60s
kubectl get configmap prod-web-settings -n shop -o jsonpath='region={.data.region} tier={.data.tier}{"\n"}'
kubectl get secrets prod-web-db api-db -n shop

step "10. rotate the cluster key, re-wrap the files through the controller, retire the old key"
old_key="$(kubectl get sealingkeys -n sealsync-system -o jsonpath='{.items[0].status.keyId}')"
"$bin/sealsync" keys rotate
"$bin/sealsync" keys fetch -o "$work/cluster-recipients.txt"
current="$(grep -m1 '^age1' "$work/cluster-recipients.txt")"
sed -i "s|recipients: \[.*\]|recipients: [$current]|" "$work/repo/.sealsync.yaml"
controller_url="http://$(grep -o 'http: listening addr=[0-9.:]*' "$work/controller.log" | cut -d= -f2)"
"$bin/sealsync" reseal --controller --controller-url "$controller_url" "$work/repo/apps"
git -C "$work/repo" diff --stat
git -C "$work/repo" commit -q -am "shop: re-wrap to the new cluster key"
git -C "$work/repo" push -q origin HEAD:main
"$bin/sealsync" sync shop -n shop
old_name="$(kubectl get sealingkeys -n sealsync-system -o jsonpath="{.items[?(@.status.keyId=='$old_key')].metadata.name}")"
"$bin/sealsync" sync web-prod -n shop
"$bin/sealsync" sync api -n shop
kubectl wait "sealingkey/$old_name" -n sealsync-system --for=jsonpath='{.status.documents}'=0 --timeout=30s
"$bin/sealsync" keys list
"$bin/sealsync" keys retire "$old_key"
"$bin/sealsync" keys list

step "11. sealsync status"
"$bin/sealsync" status -n shop
kubectl get gitsync -n shop

step "12. the web view: sealsync ui (loopback only; the pages follow the cluster live)"
"$bin/sealsync" ui --listen 127.0.0.1:0 > "$work/ui.url" 2> "$work/ui.log" &
pids+=($!)
wait_for "$work/ui.url" "http://"
ui_url="$(head -1 "$work/ui.url")"
echo "sealsync ui is serving $ui_url"
python3 - "$ui_url" <<'PY'
import html, re, sys, urllib.request
base = sys.argv[1]
page = urllib.request.urlopen(base).read().decode()
for row in re.findall(r'<tr data-gitsync=.*?</tr>', page, re.S):
    cells = [html.unescape(re.sub(r'<[^>]+>', ' ', c)).split() for c in re.findall(r'<t[hd][^>]*>(.*?)</t[hd]>', row, re.S)]
    print("  " + " | ".join(" ".join(c) for c in cells[:7]))
one = urllib.request.urlopen(base + "gitsyncs/shop/shop").read().decode()
count = re.search(r'<p class="count">(.*?)</p>', one)
print("  /gitsyncs/shop/shop: " + (count.group(1) if count else "no objects listed"))
PY
if [ "$keep_ui" = 1 ]; then
    echo
    echo "Open $ui_url in a browser. Press Ctrl-C to stop the sandbox."
    wait "${pids[-1]}"
fi
