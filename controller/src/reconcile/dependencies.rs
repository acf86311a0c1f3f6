//! `spec.dependsOn`: a GitSync is reconciled only once each GitSync it depends on is Ready at
//! the revision it last tried, as Flux's Kustomizations wait for theirs. Checked before the
//! fetch, so a waiting GitSync costs a few reads, not a sync. A GitSync that becomes Ready
//! wakes those waiting for it at once; they also look again every 10 s.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use kube::api::Api;
use kube::ResourceExt;
use sealsync_core::GitSync;

use super::Shared;
use crate::support::SyncKey;
use crate::sync::error::Error;

/// How often a waiting GitSync looks at its dependencies again without being woken.
pub(super) const RECHECK: Duration = Duration::from_secs(10);

/// The most GitSyncs a walk for cycles reads.
const MAX_WALK: usize = 64;

/// Who waits for whom, to wake the waiting.
#[derive(Debug, Default)]
pub(crate) struct Dependents {
    /// Each dependency, with the GitSyncs waiting for it.
    waiting: Mutex<HashMap<SyncKey, BTreeSet<SyncKey>>>,
}

impl Dependents {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SyncKey, BTreeSet<SyncKey>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `waiter` waits for exactly `dependencies` from now on.
    fn record(&self, waiter: &SyncKey, dependencies: &[SyncKey]) {
        let mut waiting = self.lock();
        waiting.retain(|dependency, waiters| {
            if !dependencies.contains(dependency) {
                waiters.remove(waiter);
            }
            !waiters.is_empty()
        });
        for dependency in dependencies {
            waiting
                .entry(dependency.clone())
                .or_default()
                .insert(waiter.clone());
        }
    }

    /// The GitSyncs waiting for `dependency`.
    pub(super) fn waiting_for(&self, dependency: &SyncKey) -> Vec<SyncKey> {
        self.lock()
            .get(dependency)
            .map(|w| w.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// The dependencies of `gs`, as keys; an error for one in another namespace that `gs` may not
/// name.
fn dependencies_of(gs: &GitSync, ctx: &Shared) -> Result<Vec<SyncKey>, Error> {
    let own = gs.namespace().unwrap_or_default();
    let mut keys = Vec::with_capacity(gs.spec.depends_on.len());
    for (i, dependency) in gs.spec.depends_on.iter().enumerate() {
        let namespace = dependency.namespace.clone().unwrap_or_else(|| own.clone());
        if namespace != own && !ctx.settings.trusted_namespaces.contains(&own) {
            return Err(Error::Spec(format!(
                "spec.dependsOn[{i}].namespace: {namespace:?} is another namespace; only GitSyncs \
                 of the trusted namespaces ({}; --trusted-namespaces) may wait for a GitSync of \
                 another namespace",
                ctx.settings.trusted_namespaces.describe()
            )));
        }
        keys.push((namespace, dependency.name.clone()));
    }
    Ok(keys)
}

/// Ok when every dependency of `gs` is Ready at the revision it last tried; otherwise why not.
pub(super) async fn check(gs: &GitSync, ctx: &Shared, key: &SyncKey) -> Result<(), Error> {
    let dependencies = dependencies_of(gs, ctx)?;
    ctx.dependents.record(key, &dependencies);
    if dependencies.is_empty() {
        return Ok(());
    }
    if let Some(cycle) = find_cycle(ctx, key, &dependencies).await? {
        return Err(Error::DependencyCycle(cycle));
    }
    for dependency in &dependencies {
        let name = format!("{}/{}", dependency.0, dependency.1);
        let found = get(ctx, dependency).await?;
        let Some(found) = found else {
            return Err(Error::DependencyNotReady(format!(
                "waiting for GitSync {name} (spec.dependsOn), which does not exist"
            )));
        };
        if let Some(why) = not_ready(&found) {
            return Err(Error::DependencyNotReady(format!(
                "waiting for GitSync {name} (spec.dependsOn): {why}"
            )));
        }
    }
    Ok(())
}

/// Why `gs` does not count as Ready at its current revision, or `None` when it does.
fn not_ready(gs: &GitSync) -> Option<String> {
    let Some(status) = &gs.status else {
        return Some("it has not been reconciled yet".to_owned());
    };
    if gs.spec.suspend {
        return Some("it is suspended".to_owned());
    }
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    match ready {
        Some(c) if c.status == "True" => {}
        Some(c) => return Some(format!("it is not Ready ({})", c.reason)),
        None => return Some("it is not Ready yet".to_owned()),
    }
    if status.observed_generation != gs.metadata.generation {
        return Some("its latest spec is not reconciled yet".to_owned());
    }
    if status.last_applied_revision != status.last_attempted_revision {
        return Some(format!(
            "it is trying {} and has not applied it yet",
            status
                .last_attempted_revision
                .as_deref()
                .unwrap_or("a new revision")
        ));
    }
    None
}

async fn get(ctx: &Shared, key: &SyncKey) -> Result<Option<GitSync>, Error> {
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &key.0);
    api.get_opt(&key.1).await.map_err(|source| Error::Kube {
        action: "reading a GitSync of spec.dependsOn",
        source,
    })
}

/// A path from `start` back to itself through `spec.dependsOn`, as `a → b → a`, if any. The
/// walk reads at most [`MAX_WALK`] GitSyncs.
async fn find_cycle(
    ctx: &Shared,
    start: &SyncKey,
    first: &[SyncKey],
) -> Result<Option<String>, Error> {
    // Depth first, with the path that led to each GitSync.
    let mut stack: Vec<(SyncKey, Vec<SyncKey>)> = first
        .iter()
        .map(|d| (d.clone(), vec![start.clone(), d.clone()]))
        .collect();
    let mut seen: BTreeSet<SyncKey> = BTreeSet::new();
    while let Some((key, path)) = stack.pop() {
        if &key == start {
            let names: Vec<String> = path.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
            return Ok(Some(names.join(" → ")));
        }
        if !seen.insert(key.clone()) || seen.len() > MAX_WALK {
            continue;
        }
        let Some(found) = get(ctx, &key).await? else {
            continue;
        };
        let own = found.namespace().unwrap_or_default();
        let trusted = ctx.settings.trusted_namespaces.contains(&own);
        for dependency in &found.spec.depends_on {
            let next = (
                dependency.namespace.clone().unwrap_or_else(|| own.clone()),
                dependency.name.clone(),
            );
            if next.0 != own && !trusted {
                // A dependency that GitSync may not name: it is refused there, not followed.
                continue;
            }
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push((next, longer));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_are_recorded_and_replaced() {
        let dependents = Dependents::default();
        let a = ("platform".to_owned(), "a".to_owned());
        let b = ("platform".to_owned(), "b".to_owned());
        let c = ("platform".to_owned(), "c".to_owned());
        dependents.record(&c, &[a.clone(), b.clone()]);
        assert_eq!(dependents.waiting_for(&a), vec![c.clone()]);
        assert_eq!(dependents.waiting_for(&b), vec![c.clone()]);
        dependents.record(&c, std::slice::from_ref(&b));
        assert!(dependents.waiting_for(&a).is_empty());
        dependents.record(&c, &[]);
        assert!(dependents.waiting_for(&b).is_empty());
    }

    fn gitsync(status: serde_json::Value) -> GitSync {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1", "kind": "GitSync",
            "metadata": {"name": "infra", "namespace": "platform", "generation": 2},
            "spec": {"url": "https://git.example/infra.git", "interval": "1m"},
            "status": status,
        }))
        .expect("a GitSync")
    }

    #[test]
    fn a_dependency_counts_when_ready_at_the_revision_it_last_tried() {
        let ready = serde_json::json!({"type": "Ready", "status": "True", "reason": "Succeeded",
            "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"});
        let good = gitsync(serde_json::json!({
            "conditions": [ready], "observedGeneration": 2,
            "lastAppliedRevision": "main@sha1:aa", "lastAttemptedRevision": "main@sha1:aa"}));
        assert_eq!(not_ready(&good), None);
        let trying = gitsync(serde_json::json!({
            "conditions": [ready], "observedGeneration": 2,
            "lastAppliedRevision": "main@sha1:aa", "lastAttemptedRevision": "main@sha1:bb"}));
        assert!(not_ready(&trying).is_some_and(|w| w.contains("trying main@sha1:bb")));
        let stale = gitsync(serde_json::json!({
            "conditions": [ready], "observedGeneration": 1,
            "lastAppliedRevision": "main@sha1:aa", "lastAttemptedRevision": "main@sha1:aa"}));
        assert!(not_ready(&stale).is_some_and(|w| w.contains("latest spec")));
        let failed = gitsync(serde_json::json!({
            "conditions": [{"type": "Ready", "status": "False", "reason": "HealthCheckFailed",
                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
            "observedGeneration": 2}));
        assert_eq!(
            not_ready(&failed).as_deref(),
            Some("it is not Ready (HealthCheckFailed)")
        );
    }
}
