//! Waves: the annotation `sealsync.dev/wave: "<integer>"` (default 0) splits a revision into
//! groups applied in order, each only once the one before it is healthy, as Argo CD's sync
//! waves. Within a wave the apply keeps its stages (definitions and Namespaces first, then
//! the rest in kind order) and is all or nothing; a wave that fails or does not become healthy
//! stops the revision there, and the waves written before it stay (they are healthy, and the
//! inventory records them, so a later revision prunes what it no longer holds).

use std::collections::{BTreeMap, HashMap};

use sealsync_core::{InventoryEntry, WAVE_ANNOTATION};
use serde_json::Value as Json;

use super::apply::{self, ApplyError, ApplyOptions, ApplyOutcome, Desired, Resolver};
use super::engine::SyncFailure;
use super::error::Error;
use crate::health::{Awaited, HealthWatches, Verdict};
use crate::support::SyncKey;

/// The wave of an object: its annotation, 0 without one.
pub(crate) fn wave_of(object: &Json, location: &str) -> Result<i64, ApplyError> {
    match object["metadata"]["annotations"][WAVE_ANNOTATION].as_str() {
        None => Ok(0),
        Some(text) => text.trim().parse().map_err(|_| ApplyError::Invalid {
            location: location.to_owned(),
            message: format!(
                "the annotation {WAVE_ANNOTATION}: {text:?} is not an integer (such as \"-1\", \"0\" or \"5\")"
            ),
        }),
    }
}

/// `desired`, in apply order, split into waves in order; the order within each is kept.
fn split(desired: Vec<Desired>) -> Result<BTreeMap<i64, Vec<Desired>>, ApplyError> {
    let mut waves: BTreeMap<i64, Vec<Desired>> = BTreeMap::new();
    for d in desired {
        let wave = wave_of(&d.object, &d.location)?;
        waves.entry(wave).or_default().push(d);
    }
    Ok(waves)
}

/// Refuses, before anything of the revision is written, a wave annotation that is not an
/// integer and every object the API server can judge already that it would refuse: those of
/// the waves after the first, and with `first` those of the first wave too (pre-sync hooks run
/// before it). Objects of a kind that a CRD of the revision defines or changes are judged in
/// their turn, against the CRD as it will be.
pub(crate) async fn check_ahead(
    client: &kube::Client,
    resolver: &mut Resolver,
    objects: &[Desired],
    (first, concurrency): (bool, usize),
) -> Result<(), ApplyError> {
    let mut waves: BTreeMap<i64, Vec<&Desired>> = BTreeMap::new();
    for d in objects {
        waves
            .entry(wave_of(&d.object, &d.location)?)
            .or_default()
            .push(d);
    }
    if waves.len() < 2 && !first {
        return Ok(());
    }
    let defined: Vec<(String, String)> = objects
        .iter()
        .filter(|d| d.object["kind"] == "CustomResourceDefinition")
        .filter_map(|d| apply::crd_kinds(&d.object))
        .flatten()
        .collect();
    let ahead: Vec<&Desired> = waves
        .values()
        .skip(usize::from(!first))
        .flatten()
        .copied()
        .filter(|d| {
            let api_version = d.object["apiVersion"].as_str().unwrap_or_default();
            let kind = d.object["kind"].as_str().unwrap_or_default();
            !defined.iter().any(|(v, k)| v == api_version && k == kind)
        })
        .collect();
    apply::validate_ahead(client, resolver, &ahead, concurrency).await
}

/// What the waits between waves need.
pub(crate) struct WaveGate<'a> {
    /// The health watches.
    pub(crate) health: &'a HealthWatches,
    /// The GitSync.
    pub(crate) key: &'a SyncKey,
    /// When a wait gives up.
    pub(crate) deadline: tokio::time::Instant,
    /// `spec.healthCheckExprs`, compiled.
    pub(crate) custom: &'a [std::sync::Arc<crate::health::CustomHealth>],
}

/// Applies `desired` wave by wave, waiting for each wave but the last to be healthy, and for
/// the last too when `then` names what comes after it (`the post-sync hooks were not run`).
/// With one wave and nothing after, this is one apply, with no wait.
pub(crate) async fn apply_waves(
    client: &kube::Client,
    resolver: &mut Resolver,
    desired: Vec<Desired>,
    options: ApplyOptions<'_>,
    (gate, then): (&WaveGate<'_>, Option<&str>),
) -> Result<ApplyOutcome, SyncFailure> {
    let waves = split(desired).map_err(|e| SyncFailure::from(Error::Apply(e)))?;
    let numbers: Vec<i64> = waves.keys().copied().collect();
    let mut outcome = ApplyOutcome::default();
    // The objects of the waves already written: after a later failure they stay.
    let mut kept: Vec<InventoryEntry> = Vec::new();
    for (index, (wave, objects)) in waves.into_iter().enumerate() {
        let applied = apply::apply_all(client, resolver, &objects, options)
            .await
            .map_err(|failure| {
                let mut written = std::mem::take(&mut kept);
                written.extend(failure.written);
                SyncFailure {
                    error: Error::Apply(failure.error),
                    written,
                }
            })?;
        let later = &numbers[index + 1..];
        if !later.is_empty() || then.is_some() {
            let verdict = wait_healthy(client, resolver, &objects, &applied, gate).await;
            kept.extend(
                objects
                    .iter()
                    .map(|d| super::inventory::entry_of(&d.object)),
            );
            let (unhealthy, timed_out) = match verdict {
                Verdict::Healthy => (None, false),
                Verdict::Failed(list) => (Some(list), false),
                Verdict::TimedOut(list) => (Some(list), true),
            };
            if let Some(objects) = unhealthy {
                let list = later
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                let skipped = if later.is_empty() {
                    then.unwrap_or_default().to_owned()
                } else if later.len() == 1 {
                    format!("wave {list} was not applied")
                } else {
                    format!("waves {list} were not applied")
                };
                return Err(SyncFailure {
                    error: Error::Unhealthy {
                        wave,
                        objects,
                        timed_out,
                        skipped,
                    },
                    written: kept,
                });
            }
        }
        outcome.absorb(applied);
    }
    Ok(outcome)
}

/// Waits for `objects`, just applied (`applied`), to be healthy.
pub(crate) async fn wait_healthy(
    client: &kube::Client,
    resolver: &mut Resolver,
    objects: &[Desired],
    applied: &ApplyOutcome,
    gate: &WaveGate<'_>,
) -> Verdict {
    let seen: HashMap<&str, &crate::support::Fingerprint> = applied
        .observed
        .iter()
        .map(|(id, f)| (id.as_str(), f))
        .collect();
    let mut awaited = Vec::new();
    for d in objects {
        let api_version = d.object["apiVersion"].as_str().unwrap_or_default();
        let kind = d.object["kind"].as_str().unwrap_or_default();
        let Ok(Some((resource, namespaced))) = resolver.resolve(client, api_version, kind).await
        else {
            continue;
        };
        let Some(custom) = HealthWatches::judged_by(&resource, gate.custom) else {
            continue;
        };
        let id = super::inventory::entry_of(&d.object).id;
        awaited.push(Awaited {
            namespace: if namespaced {
                d.object["metadata"]["namespace"]
                    .as_str()
                    .map(str::to_owned)
            } else {
                None
            },
            name: d.object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            applied: seen.get(id.as_str()).map(|f| (*f).clone()),
            resource,
            foreign: None,
            custom,
        });
    }
    gate.health
        .wait(gate.key, &awaited, gate.deadline, &|_| {})
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired(name: &str, wave: Option<&str>) -> Desired {
        let mut object =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});
        if let Some(wave) = wave {
            object["metadata"]["annotations"] = json!({ WAVE_ANNOTATION: wave });
        }
        Desired {
            location: format!("{name}.yaml: document 1"),
            object,
        }
    }

    #[test]
    fn objects_are_split_into_waves_in_order_keeping_their_order_within_each() {
        let waves = split(vec![
            desired("a", None),
            desired("b", Some("2")),
            desired("c", Some("-1")),
            desired("d", Some(" 0 ")),
            desired("e", Some("2")),
        ])
        .expect("waves");
        let names: Vec<(i64, Vec<&str>)> = waves
            .iter()
            .map(|(w, ds)| {
                (
                    *w,
                    ds.iter()
                        .map(|d| d.object["metadata"]["name"].as_str().unwrap_or_default())
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![(-1, vec!["c"]), (0, vec!["a", "d"]), (2, vec!["b", "e"])]
        );
    }

    #[test]
    fn a_wave_that_is_not_an_integer_is_refused_naming_the_document() {
        let error = split(vec![desired("a", Some("first"))]).expect_err("refused");
        let message = error.to_string();
        assert!(
            message.starts_with(
                "a.yaml: document 1: the annotation sealsync.dev/wave: \"first\" is not an integer"
            ),
            "{message}"
        );
    }
}
