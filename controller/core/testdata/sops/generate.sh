#!/usr/bin/env bash
# Regenerates the SOPS vectors of sealsync_core::sops with the real `sops` that
# scripts/interop-tools.sh builds. Each `NAME.plain.*` is the input; `NAME.sops.*` is what
# sops wrote for it, to a throwaway age identity (`identity.txt`), under the rule that names
# it. The tests decrypt every vector and compare it with its input.
set -euo pipefail
cd "$(dirname "$0")"
tools="$(../../../../scripts/interop-tools.sh --print-dir)"
../../../../scripts/interop-tools.sh >/dev/null
sops="$tools/sops"
rm -f identity.txt
age-keygen -o identity.txt 2>/dev/null
recipient="$(grep -o 'age1[0-9a-z]*' identity.txt | head -1)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# NAME RULE(yaml lines for .sops.yaml) TYPE
encrypt() {
    local name="$1" rule="$2" type="$3"
    printf 'creation_rules:\n  - age: %s\n%s\n' "$recipient" "$rule" > "$work/.sops.yaml"
    cp "$name.plain.$type" "$work/in.$type"
    (cd "$work" && SOPS_AGE_RECIPIENTS= "$sops" encrypt --input-type "$type" --output-type "$type" "in.$type") > "$name.sops.$type"
}

encrypt default '' yaml
encrypt secret '    encrypted_regex: ^(data|stringData)$' yaml
encrypt mac-only '    encrypted_regex: ^(data|stringData)$
    mac_only_encrypted: true' yaml
encrypt unencrypted-regex '    unencrypted_regex: ^(apiVersion|kind|metadata|type)$' yaml
encrypt encrypted-suffix '    encrypted_suffix: _secret' yaml
encrypt secret '    encrypted_regex: ^(data|stringData)$' json
encrypt multi '    encrypted_regex: ^(data|stringData)$' yaml
