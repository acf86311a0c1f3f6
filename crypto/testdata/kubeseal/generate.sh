#!/usr/bin/env bash
# Regenerates the Bitnami Sealed Secrets vectors of sealsync_crypto::kubeseal with the real
# `kubeseal` that scripts/interop-tools.sh builds, sealing offline with --cert as a user does:
# - keys.yaml: the controller's keys as `kubectl get secret -l
#   sealedsecrets.bitnami.com/sealed-secrets-key -o yaml` prints them (a List of
#   kubernetes.io/tls Secrets, tls.key in PKCS#1), an old key first and the current one second;
# - current.pkcs8.pem: the current key in PKCS#8;
# - strict.yaml, namespace-wide.yaml, cluster-wide.yaml: secret.yaml sealed in each scope.
set -euo pipefail
cd "$(dirname "$0")"
tools="$(../../../scripts/interop-tools.sh --print-dir)"
../../../scripts/interop-tools.sh >/dev/null
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for key in old current; do
    openssl req -x509 -newkey rsa:4096 -nodes -days 36500 -subj "/CN=sealed-secret/O=sealed-secret" \
        -keyout "$work/$key.pkcs8.pem" -out "$work/$key.crt" 2>/dev/null
    openssl rsa -in "$work/$key.pkcs8.pem" -traditional -out "$work/$key.pkcs1.pem" 2>/dev/null
done
cp "$work/current.pkcs8.pem" current.pkcs8.pem
{
    printf 'apiVersion: v1\nkind: List\nitems:\n'
    for key in old current; do
        printf -- '- apiVersion: v1\n  kind: Secret\n  type: kubernetes.io/tls\n  metadata:\n    name: sealed-secrets-key%s\n    namespace: kube-system\n    labels:\n      sealedsecrets.bitnami.com/sealed-secrets-key: active\n  data:\n' "$key"
        printf '    tls.crt: %s\n' "$(base64 -w0 < "$work/$key.crt")"
        printf '    tls.key: %s\n' "$(base64 -w0 < "$work/$key.pkcs1.pem")"
    done
} > keys.yaml
for scope in strict namespace-wide cluster-wide; do
    "$tools/kubeseal" --cert "$work/current.crt" --scope "$scope" -o yaml < secret.yaml > "$scope.yaml"
done
