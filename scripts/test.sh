#!/usr/bin/env bash
# Runs every sealsync test. Installs the external tools the tests drive (Go age, OpenBao,
# git, kubectl check) first, so a fresh machine needs nothing by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-test-tools.sh
cargo test --workspace --locked "$@"
