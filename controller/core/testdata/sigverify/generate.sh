#!/usr/bin/env bash
# Regenerates the signature test vectors of sealsync_core::sigverify with the distribution's
# ssh-keygen and GnuPG. Keys are throwaway, made for these vectors only. Times are faked so
# that expiry can be tested at a fixed `now` (2024-06-01, Unix 1717200000).
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n\nsigned content\n' > payload
printf 'tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\nauthor A <a@example.com> 1700000000 +0000\ncommitter A <a@example.com> 1700000000 +0000\n\nother content\n' > other-payload

# SSH: a trusted key, an untrusted one, and signatures in and out of the git namespace.
ssh-keygen -q -t ed25519 -N '' -C 'alice@example.com' -f "$work/alice"
ssh-keygen -q -t ed25519 -N '' -C 'mallory@example.com' -f "$work/mallory"
ssh-keygen -q -t rsa -b 3072 -N '' -C 'rsa@example.com' -f "$work/rsa"
cp "$work/alice.pub" ssh-alice.pub
cp "$work/rsa.pub" ssh-rsa.pub
ssh-keygen -q -Y sign -n git -f "$work/alice" < payload > ssh-alice.sig
ssh-keygen -q -Y sign -n git -f "$work/rsa" < payload > ssh-rsa.sig
ssh-keygen -q -Y sign -n file -f "$work/alice" < payload > ssh-alice-file-namespace.sig
ssh-keygen -q -Y sign -n git -f "$work/mallory" < payload > ssh-mallory.sig

# OpenPGP, all made on 2024-01-01.
at=20240101T000000
g() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' --faked-system-time "$at!" "$@"; }
# An Ed25519 primary key that signs, with an encryption subkey (GnuPG's default).
g --quick-gen-key 'Bob <bob@example.com>' ed25519 sign,cert never
g --quick-add-key "$(g --list-keys --with-colons 'bob@' | awk -F: '/^fpr/{print $10; exit}')" cv25519 encr never
bob="$(g --list-keys --with-colons 'bob@' | awk -F: '/^fpr/{print $10; exit}')"
g --armor --export "$bob" > pgp-bob.asc
g --armor --local-user "$bob!" --detach-sign < payload > pgp-bob.sig
g --armor --local-user "$bob!" --digest-algo SHA1 --detach-sign < payload > pgp-bob-sha1.sig
# An RSA primary key for certification only, with a signing subkey that is later revoked,
# and a second signing subkey that stays.
g --quick-gen-key 'Carol <carol@example.com>' rsa3072 cert never
carol="$(g --list-keys --with-colons 'carol@' | awk -F: '/^fpr/{print $10; exit}')"
g --quick-add-key "$carol" rsa3072 sign never
g --quick-add-key "$carol" ed25519 sign never
subs=($(g --list-keys --with-colons "$carol" | awk -F: '/^fpr/{print $10}' | tail -n +2))
g --armor --local-user "${subs[0]}!" --detach-sign < payload > pgp-carol-rsa-sub.sig
g --armor --local-user "${subs[1]}!" --detach-sign < payload > pgp-carol-ed-sub.sig
g --armor --export "$carol" > pgp-carol.asc
at=20240301T000000
printf 'key 1\nrevkey\ny\n0\n\ny\nsave\n' | g --command-fd 0 --status-fd 2 --edit-key "$carol" 2>/dev/null
g --armor --export "$carol" > pgp-carol-sub1-revoked.asc
# A key that expires on 2024-02-01, and one revoked as a whole.
at=20240101T000000
g --quick-gen-key 'Dave <dave@example.com>' ed25519 sign,cert 2024-02-01
dave="$(g --list-keys --with-colons 'dave@' | awk -F: '/^fpr/{print $10; exit}')"
g --armor --export "$dave" > pgp-dave-expiring.asc
g --armor --local-user "$dave!" --detach-sign < payload > pgp-dave.sig
g --quick-gen-key 'Erin <erin@example.com>' ed25519 sign,cert never
erin="$(g --list-keys --with-colons 'erin@' | awk -F: '/^fpr/{print $10; exit}')"
g --armor --local-user "$erin!" --detach-sign < payload > pgp-erin.sig
g --armor --export "$erin" > pgp-erin.asc
# GnuPG keeps a revocation certificate for each key it makes, its armor line escaped.
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$erin.rev" > "$work/erin.rev"
g --import "$work/erin.rev" 2>/dev/null
g --armor --export "$erin" > pgp-erin-revoked.asc
# An untrusted key.
g --quick-gen-key 'Mallory <mallory@example.com>' ed25519 sign,cert never
mallory="$(g --list-keys --with-colons 'mallory@' | awk -F: '/^fpr/{print $10; exit}')"
g --armor --local-user "$mallory!" --detach-sign < payload > pgp-mallory.sig
printf '%s\n' "$bob" > pgp-bob.fpr
printf '%s\n' "${subs[0]}" > pgp-carol-sub1.fpr
printf '%s\n' "${subs[1]}" > pgp-carol-sub2.fpr
printf '%s\n' "$carol" > pgp-carol.fpr
printf '%s\n' "$dave" > pgp-dave.fpr
printf '%s\n' "$mallory" > pgp-mallory.fpr
ssh-keygen -lf ssh-alice.pub | awk '{print $2}' > ssh-alice.fpr
ssh-keygen -lf "$work/mallory.pub" | awk '{print $2}' > ssh-mallory.fpr
ls -l
