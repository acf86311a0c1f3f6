//! Writes the CRDs that sealsync installs: `crdgen > deploy/crds/sealsync.yaml`. A test fails
//! when the checked-in copy differs from what the Rust types generate.

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let yaml = sealsync_core::crds_yaml()?;
    std::io::stdout().lock().write_all(yaml.as_bytes())?;
    Ok(())
}
