//! `sealsync suspend NAME` and `sealsync resume NAME`: stop and restart the syncing (and
//! self-heal) of a GitSync, like `flux suspend` and `flux resume`. Resuming asks for a
//! reconcile at once, so the GitSync catches up without waiting for its interval.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use kube::api::Api;
use sealsync_core::GitSync;

use crate::cluster::{self, ClusterArgs};
use crate::error::{CliError, CliResult};
use crate::gitsync_actions;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The GitSync.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Sets `spec.suspend` to `suspend`, then (on resume) asks for a reconcile.
pub fn run(args: Args, suspend: bool) -> CliResult<ExitCode> {
    cluster::block_on(async move {
        let (client, default_ns) = args.cluster.connect().await?;
        let namespace = args.namespace.clone().unwrap_or(default_ns);
        let name = &args.name;
        let what = format!("GitSync {namespace}/{name}");
        let api: Api<GitSync> = Api::namespaced(client, &namespace);
        match gitsync_actions::set_suspended(&api, name, suspend).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(CliError::new(format!("{what} not found"))
                    .with_hint("list them with `sealsync status`, or pass -n NAMESPACE"))
            }
            Err(e) => return Err(cluster::api_error(&what, e)),
        }
        if suspend {
            eprintln!("✔ suspended {what}");
        } else {
            gitsync_actions::request_reconcile(&api, name)
                .await
                .map_err(|e| cluster::api_error(&what, e))?;
            eprintln!("✔ resumed {what}; a reconcile was asked for");
        }
        Ok(ExitCode::SUCCESS)
    })
}
