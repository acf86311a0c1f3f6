//! The workspace's own binaries, for tests that run them as processes.
//!
//! `cargo test --workspace` builds every binary before any test runs; a test run for one
//! package (`cargo test -p sealsync-tests`) does not, so a missing binary is built here once.
//! A binary that exists is used as it is: after changing the CLI or the controller, run
//! `cargo build --workspace --bins` (or the whole workspace's tests) before one package's
//! tests, since cargo holds its build lock while tests run and a rebuild from here would wait
//! for ever.

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

/// The `sealsync` CLI.
pub fn cli() -> Result<PathBuf> {
    workspace_binary("sealsync", "sealsync")
}

/// The `sealsync-controller` binary.
pub fn controller() -> Result<PathBuf> {
    workspace_binary("sealsync-controller", "sealsync-controller")
}
