//! `sealsync status [NAME]`: the GitSyncs of a namespace as a table, like
//! `flux get kustomizations`, then the objects each found not healthy when it last waited;
//! for one GitSync, every object it applied with its health now.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use kube::api::{Api, ListParams};
use kube::ResourceExt;
use sealsync_core::GitSync;

use crate::cluster::{self, ClusterArgs};
use crate::error::{CliError, CliResult};
use crate::output;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// One GitSync; all of the namespace without it.
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// The namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long = "all-namespaces", conflicts_with_all = ["namespace", "name"])]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    cluster::block_on(async move {
        let (client, default_ns) = args.cluster.connect().await?;
        let namespace = args.namespace.clone().unwrap_or(default_ns);
        let api: Api<GitSync> = if args.all_namespaces {
            Api::all(client.clone())
        } else {
            Api::namespaced(client.clone(), &namespace)
        };
        let items = match &args.name {
            Some(name) => vec![api
                .get_opt(name)
                .await
                .map_err(|e| cluster::api_error(&format!("GitSync {namespace}/{name}"), e))?
                .ok_or_else(|| {
                    CliError::new(format!("GitSync {namespace}/{name} not found"))
                        .with_hint("list them with `sealsync status`, or pass -n NAMESPACE")
                })?],
            None => {
                api.list(&ListParams::default())
                    .await
                    .map_err(|e| cluster::api_error("listing GitSyncs", e))?
                    .items
            }
        };
        if items.is_empty() {
            eprintln!("No GitSyncs found in namespace {namespace}.");
            return Ok(ExitCode::SUCCESS);
        }
        output::write_stdout(&table(&items, args.all_namespaces))?;
        output::write_stdout(&signers(&items))?;
        match (&args.name, items.first()) {
            // One GitSync: each of its objects with its health, read now.
            (Some(_), Some(gs)) => {
                output::write_stdout(&crate::commands::objects::health_table(&client, gs).await?)?
            }
            _ => output::write_stdout(&unhealthy(&items))?,
        }
        let all_ready = items.iter().all(|gs| ready(gs).0 == "True");
        Ok(if all_ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

/// `(status, message)` of the Ready condition; `Unknown` before the first reconcile.
pub fn ready(gs: &GitSync) -> (String, String) {
    gs.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.message.clone()))
        .unwrap_or_else(|| ("Unknown".to_owned(), "waiting to be reconciled".to_owned()))
}

fn table(items: &[GitSync], with_namespace: bool) -> String {
    let mut rows = vec![{
        let mut header = vec!["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE"];
        if with_namespace {
            header.insert(0, "NAMESPACE");
        }
        header.into_iter().map(str::to_owned).collect::<Vec<_>>()
    }];
    for gs in items {
        let (ready, message) = ready(gs);
        let revision = gs
            .status
            .as_ref()
            .and_then(|s| s.last_applied_revision.clone())
            .unwrap_or_default();
        let mut row = vec![
            gs.name_any(),
            revision,
            gs.spec.suspend.to_string(),
            ready,
            message.replace('\n', " "),
        ];
        if with_namespace {
            row.insert(0, gs.namespace().unwrap_or_default());
        }
        rows.push(row);
    }
    output::table(&rows)
}

/// For each GitSync with `spec.verify`, who signed the revision it applied.
fn signers(items: &[GitSync]) -> String {
    let mut out = String::new();
    for gs in items {
        let Some(status) = gs.status.as_ref().filter(|_| gs.spec.verify.is_some()) else {
            continue;
        };
        let name = format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any());
        if status.applied_signers.is_empty() {
            out.push_str(&format!(
                "\n{name}: the applied revision was not verified (spec.verify)\n"
            ));
            continue;
        }
        for signer in &status.applied_signers {
            out.push_str(&format!("\n{name}: {}", signer.describe()));
        }
        out.push('\n');
    }
    out
}

/// For each GitSync whose last wait found objects not healthy, those objects as a table.
fn unhealthy(items: &[GitSync]) -> String {
    let mut out = String::new();
    for gs in items {
        let Some(health) = gs
            .status
            .as_ref()
            .map(|s| &s.health)
            .filter(|h| !h.is_empty())
        else {
            continue;
        };
        out.push_str(&format!(
            "\n{}/{}: {} object(s) not healthy\n",
            gs.namespace().unwrap_or_default(),
            gs.name_any(),
            health.len()
        ));
        let mut rows = vec![["KIND", "OBJECT", "HEALTH", "MESSAGE"]
            .map(str::to_owned)
            .to_vec()];
        for object in health {
            rows.push(vec![
                object.kind.clone(),
                match &object.namespace {
                    Some(ns) => format!("{ns}/{}", object.name),
                    None => object.name.clone(),
                },
                object.status.clone(),
                object.message.replace('\n', " "),
            ]);
        }
        out.push_str(&output::table(&rows));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::{GitSyncStatus, UnhealthyObject};

    fn gitsync(name: &str, health: Vec<UnhealthyObject>) -> GitSync {
        let mut gs: GitSync = serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1",
            "kind": "GitSync",
            "metadata": {"name": name, "namespace": "platform"},
            "spec": {"url": "https://git.example/apps.git", "interval": "1m"},
        }))
        .expect("a GitSync");
        gs.status = Some(GitSyncStatus {
            health,
            ..Default::default()
        });
        gs
    }

    #[test]
    fn objects_not_healthy_are_listed_under_their_gitsync() {
        let job = UnhealthyObject {
            api_version: "batch/v1".to_owned(),
            kind: "Job".to_owned(),
            namespace: Some("db".to_owned()),
            name: "migrate".to_owned(),
            status: "Failed".to_owned(),
            message: "the Job failed".to_owned(),
        };
        let crd = UnhealthyObject {
            api_version: "apiextensions.k8s.io/v1".to_owned(),
            kind: "CustomResourceDefinition".to_owned(),
            namespace: None,
            name: "widgets.example.com".to_owned(),
            status: "InProgress".to_owned(),
            message: "the definition is not established".to_owned(),
        };
        let items = [gitsync("web", Vec::new()), gitsync("db", vec![job, crd])];
        assert_eq!(
            unhealthy(&items),
            "\nplatform/db: 2 object(s) not healthy\n\
             KIND                       OBJECT                HEALTH       MESSAGE\n\
             Job                        db/migrate            Failed       the Job failed\n\
             CustomResourceDefinition   widgets.example.com   InProgress   the definition is not established\n"
        );
        assert_eq!(unhealthy(&items[..1]), "");
    }

    #[test]
    fn who_signed_the_applied_revision_is_named_under_the_table() {
        let signer = |object: &str, method: &str, fingerprint: &str, identity: Option<&str>| {
            sealsync_core::RevisionSigner {
                object: object.to_owned(),
                id: "5d1e0c2a9b7f4e3d2c1b0a998877665544332211".to_owned(),
                method: method.to_owned(),
                fingerprint: fingerprint.to_owned(),
                primary_fingerprint: None,
                key: format!("{method}-team"),
                identity: identity.map(str::to_owned),
            }
        };
        let mut verified = gitsync("web", Vec::new());
        verified.spec.verify = serde_json::from_value(
            serde_json::json!({"mode": "TagAndHEAD", "secretRef": {"name": "keys"}}),
        )
        .expect("spec.verify");
        let mut pending = verified.clone();
        pending.metadata.name = Some("db".to_owned());
        if let Some(status) = verified.status.as_mut() {
            status.applied_signers = vec![
                signer("tag", "openpgp", "3A9F00", Some("Release <r@example.com>")),
                signer("commit", "ssh", "SHA256:abc", None),
            ];
        }
        let unverified = gitsync("docs", Vec::new());
        assert_eq!(
            signers(&[verified, pending, unverified]),
            "\nplatform/web: tag 5d1e0c2a9b7f signed by OpenPGP key 3A9F00 (openpgp-team, Release <r@example.com>)\
             \nplatform/web: commit 5d1e0c2a9b7f signed by SSH key SHA256:abc (ssh-team)\n\
             \nplatform/db: the applied revision was not verified (spec.verify)\n"
        );
    }
}
