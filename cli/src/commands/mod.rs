//! One module per subcommand.

pub mod check;
pub mod completion;
pub mod keys;
pub mod reseal;
pub mod seal;
pub mod unseal;

use std::path::PathBuf;

use sealsync_crypto::{parse_identity_file, Identity};

use crate::error::{CliError, CliResult};
use crate::fsio;

/// Reads every `-i` identity file.
pub fn load_identities(files: &[PathBuf]) -> CliResult<Vec<Identity>> {
    if files.is_empty() {
        return Err(CliError::new("no identity given")
            .with_hint("pass -i IDENTITY_FILE (a recovery key or a cluster key backup)"));
    }
    let mut out = Vec::new();
    for file in files {
        let text = fsio::read_input(Some(file))?;
        let ids = parse_identity_file(&text)
            .map_err(|e| CliError::from_crypto(&e).context(file.display()))?;
        out.extend(ids);
    }
    Ok(out)
}
