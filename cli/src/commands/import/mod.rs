//! `sealsync import`: secrets kept in another tool's format, opened offline with that tool's
//! keys and sealed to sealsync recipients, so that adopting sealsync is no re-encryption
//! project. Plaintext stays in memory; the output is written as `seal` writes it.

mod kubeseal;
mod sops;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};
use sealsync_crypto::Scope;

use crate::commands::seal::{emit, seal_inputs, Input, ScopeArg};
use crate::error::CliResult;
use crate::output::Format;
use crate::recipients::RecipientArgs;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Convert SOPS-encrypted Secrets (age) into sealsync sealed files, with an identity
    /// that opens them.
    Sops(sops::Args),
    /// Convert Bitnami SealedSecrets into sealsync sealed files, with the Sealed Secrets
    /// controller's exported private keys.
    Kubeseal(kubeseal::Args),
}

/// Where the sealed files go and to whom, as for `seal`.
#[derive(Debug, ClapArgs)]
pub struct SealTo {
    /// Where the sealed values may be opened: strict, namespace or cluster. Default: the
    /// scope the file had (kubeseal), else the .sealsync.yaml rule's, else strict.
    #[arg(long, value_enum)]
    pub scope: Option<ScopeArg>,
    #[command(flatten)]
    pub recipients: RecipientArgs,
    /// The path to match against .sealsync.yaml rules (default: the -w file, else each input
    /// file).
    #[arg(long, value_name = "PATH")]
    pub rules_path: Option<PathBuf>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// Write the output to FILE atomically instead of stdout.
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
}

pub fn run(command: Command) -> CliResult<ExitCode> {
    match command {
        Command::Sops(args) => sops::run(args),
        Command::Kubeseal(args) => kubeseal::run(args),
    }
}

/// The inputs `read` makes of each of `files` (directories read recursively), read in
/// parallel, in order; the first error stops it.
fn gather(
    files: &[PathBuf],
    read: impl Fn(&std::path::Path) -> CliResult<Vec<Input>> + Sync,
) -> CliResult<Vec<Input>> {
    use rayon::prelude::*;
    let files = crate::fsio::expand_paths(files)?;
    let per_file: Vec<CliResult<Vec<Input>>> = files.par_iter().map(|f| read(f)).collect();
    let mut inputs = Vec::new();
    for file_inputs in per_file {
        inputs.extend(file_inputs?);
    }
    Ok(inputs)
}

/// Seals `inputs` as `to` says and writes them.
fn seal_and_write(inputs: &[Input], to: &SealTo) -> CliResult<ExitCode> {
    let fixed_rules_path = to.rules_path.clone().or_else(|| to.write.clone());
    let docs = seal_inputs(
        inputs,
        to.scope.map(Scope::from),
        &to.recipients,
        fixed_rules_path.as_deref(),
    )?;
    emit(&docs, to.output, to.write.as_deref())
}
