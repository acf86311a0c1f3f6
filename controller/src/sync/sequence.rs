//! The order of a revision's writes: its pre-sync hooks, then its waves, then its post-sync
//! hooks, each step only once the one before is healthy; its sync-failed hooks when a step
//! fails. See [`super::hooks`] for what a hook is and [`super::waves`] for waves.

use std::collections::BTreeMap;

use sealsync_core::InventoryEntry;

use super::apply::{self, ApplyError, ApplyOptions, ApplyOutcome, Desired, Resolver};
use super::engine::SyncFailure;
use super::error::Error;
use super::hooks::{hook_of, Hook, HookPhase};
use super::waves::{apply_waves, wait_healthy, WaveGate};
use crate::health::Verdict;

/// A revision's objects, hooks apart.
pub(crate) struct Sequence {
    /// The objects that are not hooks, in apply order.
    objects: Vec<Desired>,
    /// The hooks of each phase.
    hooks: BTreeMap<HookPhase, Vec<(Hook, Desired)>>,
}

impl Sequence {
    /// Sorts `desired` into hooks and the rest; an object with an invalid hook annotation
    /// fails the revision before anything is written.
    pub(crate) fn of(desired: Vec<Desired>) -> Result<Self, ApplyError> {
        let mut objects = Vec::with_capacity(desired.len());
        let mut hooks: BTreeMap<HookPhase, Vec<(Hook, Desired)>> = BTreeMap::new();
        for d in desired {
            match hook_of(&d.object) {
                Ok(None) => objects.push(d),
                Ok(Some(hook)) => hooks.entry(hook.phase).or_default().push((hook, d)),
                Err(message) => {
                    return Err(ApplyError::Invalid {
                        location: d.location.clone(),
                        message,
                    })
                }
            }
        }
        Ok(Self { objects, hooks })
    }

    /// Applies the revision. With `run_hooks` off (an applied revision planned again) its
    /// hooks are left as they are.
    pub(crate) async fn apply(
        mut self,
        client: &kube::Client,
        resolver: &mut Resolver,
        options: ApplyOptions<'_>,
        (gate, run_hooks): (&WaveGate<'_>, bool),
    ) -> Result<ApplyOutcome, SyncFailure> {
        if !run_hooks {
            self.hooks.clear();
        }
        let failed_hooks = self
            .hooks
            .remove(&HookPhase::SyncFailed)
            .unwrap_or_default();
        let mut result = self.apply_steps(client, resolver, options, gate).await;
        if let Err(failure) = &mut result {
            if !failed_hooks.is_empty() {
                let entries = run_failure_hooks(client, resolver, failed_hooks, options).await;
                failure.written.extend(entries);
            }
        }
        result
    }

    async fn apply_steps(
        mut self,
        client: &kube::Client,
        resolver: &mut Resolver,
        options: ApplyOptions<'_>,
        gate: &WaveGate<'_>,
    ) -> Result<ApplyOutcome, SyncFailure> {
        let mut outcome = ApplyOutcome::default();
        let mut written: Vec<InventoryEntry> = Vec::new();
        // What the server can judge is judged before anything is written: before a pre-sync
        // migration runs, and before the first wave.
        super::waves::check_ahead(
            client,
            resolver,
            &self.objects,
            (
                self.hooks.contains_key(&HookPhase::PreSync),
                options.concurrency,
            ),
        )
        .await
        .map_err(|e| SyncFailure::from(Error::Apply(e)))?;
        if let Some(pre) = self.hooks.remove(&HookPhase::PreSync) {
            // A hook in a Namespace the revision declares needs it first.
            let needed: Vec<String> = pre
                .iter()
                .filter_map(|(_, d)| d.object["metadata"]["namespace"].as_str())
                .map(str::to_owned)
                .collect();
            let (namespaces, rest): (Vec<Desired>, Vec<Desired>) =
                std::mem::take(&mut self.objects)
                    .into_iter()
                    .partition(|d| {
                        d.object["apiVersion"] == "v1"
                            && d.object["kind"] == "Namespace"
                            && d.object["metadata"]["name"]
                                .as_str()
                                .is_some_and(|name| needed.iter().any(|n| n == name))
                    });
            self.objects = rest;
            if !namespaces.is_empty() {
                let applied = apply::apply_all(client, resolver, &namespaces, options)
                    .await
                    .map_err(|failure| SyncFailure {
                        error: Error::Apply(failure.error),
                        written: failure.written,
                    })?;
                outcome.absorb(applied);
                written.extend(
                    namespaces
                        .iter()
                        .map(|d| super::inventory::entry_of(&d.object)),
                );
            }
            let (applied, entries) = run_hooks(
                client,
                resolver,
                pre,
                options,
                (gate, "nothing else of the revision was applied"),
            )
            .await
            .map_err(|mut failure| {
                failure.written.extend(written.iter().cloned());
                failure
            })?;
            outcome.absorb(applied);
            written.extend(entries);
        }
        let post = self.hooks.remove(&HookPhase::PostSync);
        let then = post.as_ref().map(|_| "the post-sync hooks were not run");
        // Should a post-sync hook fail, every object of the revision is written and stays.
        let revision: Vec<InventoryEntry> = match post {
            Some(_) => self
                .objects
                .iter()
                .map(|d| super::inventory::entry_of(&d.object))
                .collect(),
            None => Vec::new(),
        };
        let waves = apply_waves(client, resolver, self.objects, options, (gate, then))
            .await
            .map_err(|mut failure| {
                failure.written.extend(written.iter().cloned());
                failure
            })?;
        outcome.absorb(waves);
        if let Some(post) = post {
            let (applied, _) = run_hooks(
                client,
                resolver,
                post,
                options,
                (gate, "the revision is applied and healthy"),
            )
            .await
            .map_err(|mut failure| {
                failure.written.extend(written.iter().cloned());
                failure.written.extend(revision);
                failure
            })?;
            outcome.absorb(applied);
        }
        Ok(outcome)
    }
}

/// Runs the hooks of one phase, weight by weight, each weight once the one before has
/// succeeded. Returns what was applied and the inventory entries of the hooks that exist.
async fn run_hooks(
    client: &kube::Client,
    resolver: &mut Resolver,
    hooks: Vec<(Hook, Desired)>,
    options: ApplyOptions<'_>,
    (gate, skipped): (&WaveGate<'_>, &'static str),
) -> Result<(ApplyOutcome, Vec<InventoryEntry>), SyncFailure> {
    let phase = hooks.first().map_or("pre-sync", |(h, _)| h.phase.name());
    let mut by_weight: BTreeMap<i64, Vec<(Hook, Desired)>> = BTreeMap::new();
    for (hook, d) in hooks {
        by_weight.entry(hook.weight).or_default().push((hook, d));
    }
    let mut outcome = ApplyOutcome::default();
    let mut written: Vec<InventoryEntry> = Vec::new();
    let fail = |error: Error, written: &[InventoryEntry]| SyncFailure {
        error,
        written: written.to_vec(),
    };
    for (_, group) in by_weight {
        for (hook, d) in &group {
            if hook.delete_before {
                apply::delete_and_wait(client, resolver, d)
                    .await
                    .map_err(|e| fail(Error::Apply(e), &written))?;
            }
        }
        let (hooks, objects): (Vec<Hook>, Vec<Desired>) = group.into_iter().unzip();
        // A hook kept from an earlier run (no `before-hook-creation`) whose new manifest
        // changes an immutable field (a Job's template) is recreated, not refused.
        let options = ApplyOptions {
            force: true,
            ..options
        };
        let applied = apply::apply_all(client, resolver, &objects, options)
            .await
            .map_err(|failure| {
                let mut kept = written.clone();
                kept.extend(failure.written);
                SyncFailure {
                    error: Error::Apply(failure.error),
                    written: kept,
                }
            })?;
        written.extend(
            objects
                .iter()
                .map(|d| super::inventory::entry_of(&d.object)),
        );
        let verdict = wait_healthy(client, resolver, &objects, &applied, gate).await;
        outcome.absorb(applied);
        let (unhealthy, timed_out) = match verdict {
            Verdict::Healthy => (None, false),
            Verdict::Failed(list) => (Some(list), false),
            Verdict::TimedOut(list) => (Some(list), true),
        };
        let succeeded = unhealthy.is_none();
        for (hook, d) in hooks.iter().zip(&objects) {
            let delete = if succeeded {
                hook.delete_succeeded
            } else {
                hook.delete_failed
            };
            if delete {
                if let Err(e) = apply::delete_and_wait(client, resolver, d).await {
                    tracing::warn!(error = %sealsync_core::Chain(&e), "deleting a hook by its delete policy");
                }
            }
        }
        if let Some(objects) = unhealthy {
            return Err(fail(
                Error::HookFailed {
                    phase,
                    objects,
                    timed_out,
                    skipped,
                },
                &written,
            ));
        }
    }
    Ok((outcome, written))
}

/// Applies the sync-failed hooks of a revision that failed, without waiting for them: the
/// revision's failure is what is reported. Returns the inventory entries of those applied.
async fn run_failure_hooks(
    client: &kube::Client,
    resolver: &mut Resolver,
    hooks: Vec<(Hook, Desired)>,
    options: ApplyOptions<'_>,
) -> Vec<InventoryEntry> {
    for (hook, d) in &hooks {
        if hook.delete_before {
            if let Err(e) = apply::delete_and_wait(client, resolver, d).await {
                tracing::warn!(error = %sealsync_core::Chain(&e), "deleting a sync-failed hook before it runs");
            }
        }
    }
    let objects: Vec<Desired> = hooks.into_iter().map(|(_, d)| d).collect();
    match apply::apply_all(client, resolver, &objects, options).await {
        Ok(_) => {
            tracing::info!(hooks = objects.len(), "ran the sync-failed hooks");
            objects
                .iter()
                .map(|d| super::inventory::entry_of(&d.object))
                .collect()
        }
        Err(failure) => {
            tracing::warn!(
                error = %sealsync_core::Chain(&failure.error),
                "the sync-failed hooks could not be applied"
            );
            failure.written
        }
    }
}
