//! `sealsync keys fetch`: the cluster's public recipients, like `kubeseal --fetch-cert`.

use std::process::ExitCode;

use crate::error::CliResult;
use crate::fsio;
use crate::output;

use super::FetchArgs;

use sealsync_core::keysecret::{PUBLIC_KEYS_CONFIGMAP, RECIPIENTS_KEY};

pub fn run(args: FetchArgs) -> CliResult<ExitCode> {
    use crate::cluster;
    use crate::error::CliError;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;

    let namespace = args.controller_namespace.clone();
    let text = cluster::block_on(async {
        let (client, _) = args.cluster.connect().await?;
        let what = format!("ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}");
        let configmaps: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let cm = configmaps
            .get_opt(PUBLIC_KEYS_CONFIGMAP)
            .await
            .map_err(|e| cluster::api_error(&what, e))?
            .ok_or_else(|| {
                CliError::new(format!("{what} not found")).with_hint(format!(
                    "is sealsync-controller running in namespace {namespace}? Pass \
                     --controller-namespace NS if it runs elsewhere"
                ))
            })?;
        cm.data
            .and_then(|mut d| d.remove(RECIPIENTS_KEY))
            .ok_or_else(|| {
                CliError::new(format!("{what} has no {RECIPIENTS_KEY}"))
                    .with_hint("restart sealsync-controller: it publishes its recipients on start")
            })
    })?;
    // Never pass on something that is not a recipients file (it could be anything written
    // into the ConfigMap by hand).
    let recipients = sealsync_crypto::parse_recipients_file(&text).map_err(|e| {
        CliError::from_crypto(&e).context(format!("ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}"))
    })?;
    if recipients.is_empty() {
        return Err(CliError::new(format!(
            "ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP} lists no recipients"
        ))
        .with_hint("restart sealsync-controller: it publishes its recipients on start"));
    }
    match args.output {
        Some(path) => {
            fsio::write_atomic(&path, text.as_bytes())?;
            eprintln!(
                "Wrote {} recipient(s) of the cluster to {}",
                recipients.len(),
                path.display()
            );
        }
        None => output::write_stdout(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
