//! `sealsync keys`: offline identities, and the cluster's keys as a security team manages
//! them (one module per subcommand).

mod backup;
mod fetch;
mod generate;
mod lifecycle;
mod restore;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args as ClapArgs, Subcommand};

use crate::error::CliResult;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an offline identity (for recovery or break-glass) and print its recipient.
    Generate(GenerateArgs),
    /// Print the cluster's recipients (like `kubeseal --fetch-cert`), ready for
    /// --recipients-file or .sealsync.yaml.
    Fetch(FetchArgs),
    /// List the cluster's sealing keys: id, state, creation time and the synced documents
    /// each one opens.
    List(ListArgs),
    /// Have the controller generate a new key inside the cluster; it becomes the current
    /// key, and the old ones keep decrypting until they are retired.
    Rotate(RotateArgs),
    /// Retire a key: its private part is deleted from the cluster. Refused while a synced
    /// document opens only with it, or while it is the current key.
    Retire(RetireArgs),
    /// Copy out the controller's backup of every cluster key: an armored age file encrypted
    /// only to the recovery recipients the cluster admin configured.
    Backup(BackupArgs),
    /// Load the keys of a backup into a cluster (a rebuilt one, after a disaster), opening it
    /// here with a recovery identity.
    Restore(RestoreArgs),
}

/// Where the controller runs, and how long to wait for it.
#[derive(Debug, ClapArgs)]
pub struct ControllerArgs {
    /// The namespace sealsync-controller runs in.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    /// How long to wait for the controller to act.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub timeout: String,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

#[derive(Debug, ClapArgs)]
pub struct ListArgs {
    /// Output format: a table without it, or the SealingKeys as `yaml` or `json`.
    #[arg(short = 'o', long = "output", value_enum, value_name = "FORMAT")]
    pub output: Option<crate::output::Format>,
    /// The namespace sealsync-controller runs in.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

#[derive(Debug, ClapArgs)]
pub struct RotateArgs {
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, ClapArgs)]
pub struct RetireArgs {
    /// The key id (as `keys list` shows it) or the SealingKey's name.
    #[arg(value_name = "KEYID")]
    pub key: String,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, ClapArgs)]
pub struct FetchArgs {
    /// The namespace sealsync-controller runs in.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    /// Write the recipients to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: crate::cluster::ClusterArgs,
}

#[derive(Debug, ClapArgs)]
pub struct GenerateArgs {
    /// Write the identity to FILE (mode 0600; refuses to overwrite) and print the recipient
    /// on stdout. Without it the identity goes to stdout, like age-keygen.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(cmd: Command) -> CliResult<ExitCode> {
    match cmd {
        Command::Generate(args) => generate::run(args),
        Command::Fetch(args) => fetch::run(args),
        Command::List(args) => lifecycle::list(args),
        Command::Rotate(args) => lifecycle::rotate(args),
        Command::Retire(args) => lifecycle::retire(args),
        Command::Backup(args) => backup::run(args),
        Command::Restore(args) => restore::run(args),
    }
}

#[derive(Debug, ClapArgs)]
pub struct BackupArgs {
    /// Write the backup to FILE instead of stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub controller: ControllerArgs,
}

#[derive(Debug, ClapArgs)]
pub struct RestoreArgs {
    /// The backup, as `keys backup` wrote it (or any age file of an identity file).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// The recovery identity that opens it. Repeatable. Default: the file that
    /// SEALSYNC_AGE_KEY_FILE, else SOPS_AGE_KEY_FILE, names.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// Also restore keys that this cluster retired.
    #[arg(long)]
    pub include_retired: bool,
    #[command(flatten)]
    pub controller: ControllerArgs,
}
