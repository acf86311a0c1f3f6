//! `sealsync`: seal Kubernetes Secrets so they are safe to commit, and manage the keys.

mod cluster;
mod commands;
mod error;
mod fsio;
mod gitsync_actions;
mod habits;
mod output;
mod recipients;
mod rendered_as;
mod repository;
mod rewrap_client;
mod rules;
mod splice;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::error::CliError;

/// Seal Kubernetes Secrets for GitOps, check sealed files, and manage sealsync keys.
#[derive(Debug, Parser)]
#[command(name = "sealsync", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seal a Secret (from a file, stdin or flags) into a SealedSecret.
    Seal(commands::seal::Args),
    /// Open a SealedSecret with an identity file and print the Secret (break-glass use).
    Unseal(commands::unseal::Args),
    /// Re-wrap sealed files to the recipients .sealsync.yaml lists now (or re-key them).
    Reseal(commands::reseal::Args),
    /// Generate and inspect keys.
    #[command(subcommand)]
    Keys(commands::keys::Command),
    /// Convert secrets kept with sops or Sealed Secrets into sealsync sealed files.
    #[command(subcommand)]
    Import(commands::import::Command),
    /// Find plaintext Secrets, broken or tampered sealed files, and files on the wrong keys.
    Check(commands::check::Args),
    /// Show what the controller would apply from a directory, Secret values as ***.
    Render(commands::render::Args),
    /// Show the GitSyncs of a namespace: ready, revision, message.
    Status(commands::status::Args),
    /// Reconcile a GitSync now and wait for the result.
    Sync(commands::sync::Args),
    /// Stop syncing and healing a GitSync until it is resumed.
    Suspend(commands::suspend::Args),
    /// Resume a suspended GitSync and reconcile it now.
    Resume(commands::suspend::Args),
    /// Open a read-only web view of GitSyncs, their objects, drift and keys.
    Ui(commands::ui::Args),
    /// Print a shell completion script.
    Completion(commands::completion::Args),
    /// sops's word; refused with the sealsync equivalent.
    #[command(hide = true)]
    Decrypt(IgnoredArgs),
    /// sops's word; refused with the sealsync equivalent.
    #[command(hide = true)]
    Encrypt(IgnoredArgs),
}

/// Whatever follows a refused habit.
#[derive(Debug, clap::Args)]
struct IgnoredArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _rest: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Seal(args) => commands::seal::run(args),
        Command::Unseal(args) => commands::unseal::run(args),
        Command::Reseal(args) => commands::reseal::run(args),
        Command::Keys(cmd) => commands::keys::run(cmd),
        Command::Import(cmd) => commands::import::run(cmd),
        Command::Check(args) => commands::check::run(args),
        Command::Render(args) => commands::render::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Sync(args) => commands::sync::run(args),
        Command::Suspend(args) => commands::suspend::run(args, true),
        Command::Resume(args) => commands::suspend::run(args, false),
        Command::Ui(args) => commands::ui::run(args),
        Command::Completion(args) => commands::completion::run::<Cli>(args),
        Command::Decrypt(_) => Err(habits::refuse_sops_word("decrypt")),
        Command::Encrypt(_) => Err(habits::refuse_sops_word("encrypt")),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            report(&err);
            ExitCode::FAILURE
        }
    }
}

fn report(err: &CliError) {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "error: {}", err.message());
    if let Some(hint) = err.hint() {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}
