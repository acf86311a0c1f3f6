//! `sealsync sync NAME`: asks the controller to reconcile a GitSync now and waits for the
//! result, like `flux reconcile kustomization`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args as ClapArgs;
use sealsync_core::parse_duration;

use crate::cluster::{self, GitSyncArgs};
use crate::commands::status::ready;
use crate::error::{CliError, CliResult};
use crate::gitsync_actions;

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    pub gitsync: GitSyncArgs,
    /// How long to wait for the reconcile, as a duration (`30s`, `5m`).
    #[arg(long, default_value = "5m")]
    pub timeout: String,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let timeout = parse_duration(&args.timeout).map_err(|e| {
        CliError::new(format!("--timeout: {e}")).with_hint("pass a duration such as 30s or 5m")
    })?;
    cluster::block_on(async move {
        let (api, namespace, what) = args.gitsync.connect().await?;
        let name = &args.gitsync.name;
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| cluster::api_error(&what, e))?
            .ok_or_else(|| {
                CliError::new(format!("{what} not found"))
                    .with_hint("list them with `sealsync status`, or pass -n NAMESPACE")
            })?;
        if current.spec.suspend {
            return Err(
                CliError::new(format!("{what} is suspended")).with_hint(format!(
                    "resume it first: sealsync resume {name} -n {namespace}"
                )),
            );
        }
        let requested = gitsync_actions::request_reconcile(&api, name)
            .await
            .map_err(|e| cluster::api_error(&what, e))?;
        eprintln!("► asked for a reconcile of {what}");
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let gs = api
                .get(name)
                .await
                .map_err(|e| cluster::api_error(&what, e))?;
            let handled = gs
                .status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some(requested.as_str());
            if handled {
                let (status, message) = ready(&gs);
                return if status == "True" {
                    eprintln!("✔ {message}");
                    Ok(ExitCode::SUCCESS)
                } else {
                    Err(CliError::new(format!("{what} is not ready: {message}"))
                        .with_hint("fix what the message names and push; `sealsync status` shows the state"))
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::new(format!(
                    "{what} was not reconciled within {}",
                    args.timeout
                ))
                .with_hint("check that sealsync-controller is running: its /readyz and its log"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
