//! The `health` stage: with `spec.wait` or `spec.healthChecks`, wait until the objects the
//! revision applied are healthy, one fails, or the reconcile's time runs out.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kube::core::ApiResource;
use sealsync_core::{GitSync, Inventory, InventoryEntry, UnhealthyObject};

use super::Shared;
use crate::health::{Awaited, CustomHealth, HealthWatches, Verdict};
use crate::support::metrics::ResultLabels;
use crate::support::{Actor, Fingerprint, SyncKey};
use crate::sync::apply::Resolver;
use crate::sync::error::Error;
use crate::sync::progress::{Progress, SyncStage};

/// What the GitSync applied, and how, for the health stage.
pub(super) struct AppliedObjects<'a> {
    /// The revision's inventory.
    pub(super) inventory: &'a Inventory,
    /// Each object's state after the apply, by inventory id.
    pub(super) observed: HashMap<&'a str, &'a Fingerprint>,
    /// The inventory ids of the revision's hooks, which `wait` does not wait for (they ran,
    /// and their delete policies may have deleted them).
    pub(super) hooks: BTreeSet<&'a str>,
    /// Who applied them: objects the revision does not hold are read as them.
    pub(super) actor: &'a Actor,
    /// Their client.
    pub(super) client: &'a kube::Client,
    /// The namespace of namespaced objects whose manifests name none.
    pub(super) default_namespace: &'a str,
    /// `spec.healthCheckExprs`, compiled.
    pub(super) custom: &'a [Arc<CustomHealth>],
}

/// Waits for the health of what `gs` asks to wait for; `None` when it waits for nothing.
pub(super) async fn check_health(
    gs: &GitSync,
    ctx: &Shared,
    key: &SyncKey,
    applied: &AppliedObjects<'_>,
    resolver: &mut Resolver,
    (deadline, progress): (tokio::time::Instant, &Progress),
) -> Result<Option<Verdict>, Error> {
    if !gs.spec.wait && gs.spec.health_checks.is_empty() {
        ctx.engine.health.forget(key);
        return Ok(None);
    }
    let (awaited, missing) = awaited(gs, applied, resolver).await?;
    progress.enter(SyncStage::Health, awaited.len() + missing.len());
    let started = Instant::now();
    let verdict = if missing.is_empty() {
        ctx.engine
            .health
            .wait(key, &awaited, deadline, &|healthy| {
                progress.healthy(healthy)
            })
            .await
    } else {
        // A kind the cluster does not serve cannot become healthy by waiting.
        Verdict::Failed(missing)
    };
    let result = match &verdict {
        Verdict::Healthy => "healthy",
        Verdict::Failed(_) => "failed",
        Verdict::TimedOut(_) => "timeout",
    };
    ctx.metrics
        .health_checks
        .get_or_create(&ResultLabels { result })
        .inc();
    ctx.metrics
        .health_wait
        .observe(started.elapsed().as_secs_f64());
    Ok(Some(verdict))
}

/// The objects to wait for, and the `healthChecks` entries whose kind is not served.
async fn awaited(
    gs: &GitSync,
    applied: &AppliedObjects<'_>,
    resolver: &mut Resolver,
) -> Result<(Vec<Awaited>, Vec<UnhealthyObject>), Error> {
    let held: BTreeSet<&str> = applied
        .inventory
        .entries
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    let mut seen = BTreeSet::new();
    let mut awaited = Vec::new();
    let mut missing = Vec::new();
    if gs.spec.wait {
        for entry in &applied.inventory.entries {
            let (Some((namespace, name, _, kind)), Some(api_version)) =
                (entry.parts(), entry.api_version())
            else {
                continue;
            };
            let Some((resource, _)) = resolve(applied, resolver, &api_version, kind).await? else {
                continue;
            };
            let Some(custom) = HealthWatches::judged_by(&resource, applied.custom) else {
                continue;
            };
            if applied.hooks.contains(entry.id.as_str()) || !seen.insert(entry.id.clone()) {
                continue;
            }
            awaited.push(Awaited {
                custom,
                resource,
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
                applied: applied
                    .observed
                    .get(entry.id.as_str())
                    .map(|f| (*f).clone()),
                foreign: None,
            });
        }
    }
    for check in &gs.spec.health_checks {
        let Some((resource, namespaced)) =
            resolve(applied, resolver, &check.api_version, &check.kind).await?
        else {
            missing.push(UnhealthyObject {
                api_version: check.api_version.clone(),
                kind: check.kind.clone(),
                namespace: check.namespace.clone(),
                name: check.name.clone(),
                status: "NotFound".to_owned(),
                message: format!(
                    "the cluster does not serve {} {}",
                    check.api_version, check.kind
                ),
            });
            continue;
        };
        let namespace = namespaced.then(|| {
            check
                .namespace
                .clone()
                .unwrap_or_else(|| applied.default_namespace.to_owned())
        });
        let id = InventoryEntry::new(
            namespace.as_deref(),
            &check.name,
            &resource.group,
            &resource.kind,
            &resource.version,
        )
        .id;
        // A kind healthy on sight is still waited for when named: it must exist. Secrets
        // are never watched.
        let is_secret = resource.group.is_empty() && resource.kind == "Secret";
        let Some(custom) = HealthWatches::judged_by(&resource, applied.custom)
            .or_else(|| (!is_secret).then_some(None))
        else {
            continue;
        };
        if !seen.insert(id.clone()) {
            continue;
        }
        let foreign = (!held.contains(id.as_str()))
            .then(|| (applied.client.clone(), applied.actor.to_string()));
        awaited.push(Awaited {
            resource,
            namespace,
            name: check.name.clone(),
            applied: applied.observed.get(id.as_str()).map(|f| (*f).clone()),
            foreign,
            custom,
        });
    }
    Ok((awaited, missing))
}

async fn resolve(
    applied: &AppliedObjects<'_>,
    resolver: &mut Resolver,
    api_version: &str,
    kind: &str,
) -> Result<Option<(ApiResource, bool)>, Error> {
    resolver
        .resolve(applied.client, api_version, kind)
        .await
        .map_err(|source| Error::Kube {
            action: "discovering the kinds to check the health of",
            source,
        })
}
