//! `sealsync completion SHELL`.

use std::process::ExitCode;

use clap::{Args as ClapArgs, CommandFactory};
use clap_complete::Shell;

use crate::error::CliResult;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The shell to print a completion script for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run<C: CommandFactory>(args: Args) -> CliResult<ExitCode> {
    let mut cmd = C::command();
    let name = cmd.get_name().to_owned();
    clap_complete::generate(args.shell, &mut cmd, name, &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
