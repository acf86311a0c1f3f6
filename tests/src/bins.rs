//! The workspace's own binaries, for tests that run them as processes.
//!
//! `cargo test --workspace` builds every binary before any test runs; a test run for one
//! package (`cargo test -p sealsync-tests`) does not, so a missing binary is built here once.
//! A binary that exists must be fresh: when a source file it was built from (as cargo's
//! dep-info file beside it lists them) is newer than the binary, the test fails and says to
//! run `cargo build --workspace --bins`. It cannot rebuild it itself: cargo holds its build
//! lock while tests run, so a rebuild from here would wait for ever.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

/// The directory cargo writes binaries to: the parent of the test executable's `deps/`.
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the test executable")?;
    let deps = exe
        .parent()
        .context("the test executable has no directory")?;
    let dir = if deps.ends_with("deps") {
        deps.parent().context("deps/ has no parent")?
    } else {
        deps
    };
    Ok(dir.to_path_buf())
}

/// The path of the workspace binary `name` from `package`, built if it is missing.
pub fn workspace_binary(package: &str, name: &str) -> Result<PathBuf> {
    static BUILD: Mutex<()> = Mutex::new(());
    let path = bin_dir()?.join(name);
    let _guard = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    if path.is_file() {
        check_fresh(&path)?;
        return Ok(path);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["build", "--locked", "-p", package, "--bin", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .with_context(|| format!("building {name}"))?;
    if !status.success() || !path.is_file() {
        bail!(
            "`cargo build -p {package} --bin {name}` did not produce {}",
            path.display()
        );
    }
    Ok(path)
}

/// Fails when a source file the binary at `path` was built from is newer than it.
fn check_fresh(path: &std::path::Path) -> Result<()> {
    let Ok(dep_info) = std::fs::read_to_string(path.with_extension("d")) else {
        // No dep-info (a binary put there by hand): nothing to compare with.
        return Ok(());
    };
    let built = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("reading the time of {}", path.display()))?;
    for source in dep_info_sources(&dep_info) {
        let Ok(modified) = std::fs::metadata(&source).and_then(|m| m.modified()) else {
            continue;
        };
        if modified > built {
            bail!(
                "{} is older than {}, which it is built from: run `cargo build --workspace --bins` \
                 (or `cargo test --workspace`, which builds it first) so that the test does not run \
                 a stale binary",
                path.display(),
                source.display()
            );
        }
    }
    Ok(())
}

/// The files a cargo dep-info file (`target: dep dep …`) lists; `\ ` escapes a space.
fn dep_info_sources(text: &str) -> Vec<PathBuf> {
    let Some(first) = text.lines().next() else {
        return Vec::new();
    };
    let Some((_, deps)) = first.split_once(": ") else {
        return Vec::new();
    };
    let mut sources = Vec::new();
    let mut current = String::new();
    let mut chars = deps.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => {
                current.push(' ');
                chars.next();
            }
            ' ' => {
                if !current.is_empty() {
                    sources.push(PathBuf::from(std::mem::take(&mut current)));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        sources.push(PathBuf::from(current));
    }
    sources
}

/// The `sealsync` CLI.
pub fn cli() -> Result<PathBuf> {
    workspace_binary("sealsync", "sealsync")
}

/// The `sealsync-controller` binary.
pub fn controller() -> Result<PathBuf> {
    workspace_binary("sealsync-controller", "sealsync-controller")
}

/// `sealsync-renderer`, the Go program that runs kustomize and Helm: `$SEALSYNC_RENDERER`, else
/// the one `scripts/renderer.sh` builds (and caches outside the repository), built here if
/// missing.
pub fn renderer() -> Result<PathBuf> {
    static RENDERER: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut found = RENDERER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = found.as_ref() {
        return Ok(path.clone());
    }
    if let Some(path) = std::env::var_os("SEALSYNC_RENDERER").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        *found = Some(path.clone());
        return Ok(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/renderer.sh");
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let printed = Command::new("bash")
        .arg(&script)
        .arg("--print-path")
        .output()
        .with_context(|| format!("running {} --print-path", script.display()))?;
    let path = PathBuf::from(String::from_utf8_lossy(&printed.stdout).trim());
    if !path.is_file() {
        bail!(
            "{} built no renderer at {}",
            script.display(),
            path.display()
        );
    }
    *found = Some(path.clone());
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dep_info_lists_every_source_with_escaped_spaces() {
        let text = "/t/debug/sealsync: /w/cli/src/main.rs /w/my\\ dir/lib.rs /w/Cargo.toml\n\n/w/cli/src/main.rs:\n";
        assert_eq!(
            dep_info_sources(text),
            [
                PathBuf::from("/w/cli/src/main.rs"),
                PathBuf::from("/w/my dir/lib.rs"),
                PathBuf::from("/w/Cargo.toml")
            ]
        );
    }
}
