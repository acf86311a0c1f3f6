//! `sealsync suspend NAME` and `sealsync resume NAME`: stop and restart the syncing (and
//! self-heal) of a GitSync, like `flux suspend` and `flux resume`. Resuming asks for a
//! reconcile at once, so the GitSync catches up without waiting for its interval.

use std::process::ExitCode;

use crate::cluster;
use crate::error::{CliError, CliResult};
use crate::gitsync_actions;

pub use crate::cluster::GitSyncArgs as Args;

/// Sets `spec.suspend` to `suspend`, then (on resume) asks for a reconcile.
pub fn run(args: Args, suspend: bool) -> CliResult<ExitCode> {
    cluster::block_on(async move {
        let (api, _, what) = args.connect().await?;
        let name = &args.name;
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
