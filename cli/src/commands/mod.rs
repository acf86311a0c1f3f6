//! One module per subcommand.

pub mod check;
pub mod completion;
pub mod import;
pub mod keys;
pub mod objects;
pub mod render;
pub mod reseal;
pub mod seal;
pub mod status;
pub mod suspend;
pub mod sync;
pub mod ui;
pub mod unseal;

use std::path::PathBuf;

use sealsync_crypto::{parse_identity_file, Identity};

use crate::error::{CliError, CliResult};
use crate::fsio;

/// The environment variables that name an identity file when no `-i` is given, in order:
/// ours, then the one sops users already have set.
pub const IDENTITY_ENV: [&str; 2] = ["SEALSYNC_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE"];

/// Reads every `-i` identity file, or the one `SEALSYNC_AGE_KEY_FILE` (else
/// `SOPS_AGE_KEY_FILE`) names. Warns, as ssh does, when a file is readable by others.
pub fn load_identities(files: &[PathBuf]) -> CliResult<Vec<Identity>> {
    let from_env;
    let files = if files.is_empty() {
        from_env = IDENTITY_ENV
            .iter()
            .find_map(|var| std::env::var_os(var).filter(|v| !v.is_empty()))
            .map(PathBuf::from);
        match &from_env {
            Some(file) => std::slice::from_ref(file),
            None => {
                return Err(CliError::new("no identity given").with_hint(
                    "pass -i IDENTITY_FILE (a recovery key or a cluster key backup), or set \
                     SEALSYNC_AGE_KEY_FILE",
                ))
            }
        }
    } else {
        files
    };
    let mut out = Vec::new();
    for file in files {
        warn_if_exposed(file);
        let text = fsio::read_input(Some(file))?;
        let ids = parse_identity_file(&text)
            .map_err(|e| CliError::from_crypto(&e).context(file.display()))?;
        out.extend(ids);
        if out.len() > sealsync_crypto::MAX_IDENTITIES {
            return Err(CliError::new(format!(
                "more than {} identities given",
                sealsync_crypto::MAX_IDENTITIES
            ))
            .with_hint("pass only the identities that open these files"));
        }
    }
    Ok(out)
}

/// The most key-against-recipient trials that opening one file may cost: each is an X25519
/// operation, about a tenth of a millisecond, so a file of junk recipients cannot stall a run.
pub const MAX_TRIALS_PER_FILE: usize = 16_384;

/// Refuses to open a file whose recipient stanzas, tried against every identity, would cost
/// more than [`MAX_TRIALS_PER_FILE`].
pub fn check_open_budget(stanzas: usize, identities: usize, place: &str) -> CliResult<()> {
    let trials = stanzas.saturating_mul(identities.max(1));
    if trials > MAX_TRIALS_PER_FILE {
        return Err(CliError::new(format!(
            "{place}: opening it would try {trials} key-recipient pairs ({stanzas} recipient \
             stanzas × {identities} identities), more than the limit of {MAX_TRIALS_PER_FILE}"
        ))
        .with_hint("pass only the identities that open this file, or split the file"));
    }
    Ok(())
}

fn warn_if_exposed(file: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(file) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: identity file {} is readable by group or others (mode {mode:04o}); \
                 run `chmod 600 {}`",
                file.display(),
                file.display()
            );
        }
    }
}
