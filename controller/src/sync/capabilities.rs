//! What Helm's `.Capabilities` says of the cluster: its version and every API version it
//! serves (`group/version` and `group/version/Kind`, as `helm install` builds them from
//! discovery), so that a chart's `if .Capabilities.APIVersions.Has "…"` sees this cluster.
//! Read with the controller's client (discovery is open to every authenticated user) and kept
//! a few minutes: a render happens only for a new revision, and many GitSyncs share it.

use std::time::{Duration, Instant};

use kube::Client;
use tokio::sync::Mutex;

/// How long a reading is used.
const FRESH_FOR: Duration = Duration::from_secs(300);

/// The cluster's version and API versions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capabilities {
    /// `v1.33.2`.
    pub kube_version: Option<String>,
    /// `apps/v1`, `apps/v1/Deployment`, `v1`, `v1/ConfigMap`, …
    pub api_versions: Vec<String>,
}

/// The last reading, shared by every GitSync.
#[derive(Default)]
pub(crate) struct CapabilitiesCache {
    last: Mutex<Option<(Instant, Capabilities)>>,
}

impl CapabilitiesCache {
    /// The cluster's capabilities, read again when older than a few minutes. A failed read
    /// leaves Helm's defaults (and is logged): discovery is a hint for templates, not a
    /// reason to fail the revision.
    pub(crate) async fn get(&self, client: &Client) -> Capabilities {
        let mut last = self.last.lock().await;
        if let Some((at, capabilities)) = last.as_ref() {
            if at.elapsed() < FRESH_FOR {
                return capabilities.clone();
            }
        }
        match read(client).await {
            Ok(capabilities) => {
                *last = Some((Instant::now(), capabilities.clone()));
                capabilities
            }
            Err(e) => {
                tracing::warn!(error = %sealsync_core::Chain(&e), "could not read the cluster's API versions for Helm; rendering with what was read last, else Helm's defaults");
                // What was read before, if anything, stays the better guess; tried again at
                // the next render.
                last.as_ref()
                    .map(|(_, capabilities)| capabilities.clone())
                    .unwrap_or_default()
            }
        }
    }
}

async fn read(client: &Client) -> Result<Capabilities, kube::Error> {
    let version = client.apiserver_version().await?;
    let mut api_versions = Vec::new();
    let core = client.list_core_api_versions().await?;
    for version in &core.versions {
        let resources = client.list_core_api_resources(version).await?;
        add(&mut api_versions, version, &resources);
    }
    let groups = client.list_api_groups().await?;
    for group in &groups.groups {
        for version in &group.versions {
            match client
                .list_api_group_resources(&version.group_version)
                .await
            {
                Ok(resources) => add(&mut api_versions, &version.group_version, &resources),
                // An aggregated API that is down hides only its own kinds, as in Helm.
                Err(e) => {
                    tracing::debug!(group_version = %version.group_version, error = %e, "skipped")
                }
            }
        }
    }
    api_versions.sort();
    api_versions.dedup();
    Ok(Capabilities {
        kube_version: Some(version.git_version).filter(|v| !v.is_empty()),
        api_versions,
    })
}

fn add(
    out: &mut Vec<String>,
    group_version: &str,
    resources: &k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList,
) {
    out.push(group_version.to_owned());
    for resource in &resources.resources {
        // Subresources (`deployments/scale`) are not kinds of their own.
        if !resource.name.contains('/') {
            out.push(format!("{group_version}/{}", resource.kind));
        }
    }
}
