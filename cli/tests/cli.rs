//! Snapshot tests of the CLI's output, including every user-facing error.
//!
//! Cases live in `tests/cmd/`: `*.md` files run read-only against `fixtures/` (each
//! `NAME.in` links there); `*.toml` cases that write files run in a sandbox copy.
//! Regenerate with `TRYCMD=overwrite cargo test -p sealsync --test cli`, then review.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new()
        .env("SEALSYNC_RENDERER", renderer().display().to_string())
        .case("tests/cmd/*.md")
        .case("tests/cmd/*.toml");
}

/// `sealsync-renderer` for `sealsync render` of kustomize and Helm paths: `$SEALSYNC_RENDERER`,
/// else the one `scripts/renderer.sh` builds (and caches outside the repository).
fn renderer() -> PathBuf {
    if let Some(path) = std::env::var_os("SEALSYNC_RENDERER").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/renderer.sh");
    let built = Command::new("bash")
        .arg(&script)
        .status()
        .expect("run scripts/renderer.sh");
    assert!(built.success(), "scripts/renderer.sh failed");
    let printed = Command::new("bash")
        .arg(&script)
        .arg("--print-path")
        .output()
        .expect("run scripts/renderer.sh --print-path");
    PathBuf::from(String::from_utf8_lossy(&printed.stdout).trim())
}
