//! One reconcile of one GitSync: the stages in order, atomic per revision.
//!
//! fetch → render → decrypt → resolve Vault references → restart checksums → prepare (owner
//! labels, namespaces) → apply (dry-run gated, as the GitSync's service account) → prune →
//! status. A failure at any stage leaves the cluster on the last good revision:
//! `lastAppliedRevision` and the inventory do not move, nothing is pruned, and the status
//! names the stage, the file and the document.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Resource, ResourceExt};
use sealsync_core::render::{self, normalize_path, RenderLimits};
use sealsync_core::{parse_duration, GitSync, Inventory, FINALIZER, REQUESTED_AT_ANNOTATION};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use crate::context::{Actor, Shared};
use crate::heal::{Fingerprint, HealSpec, SyncKey, TrackedSource};
use crate::support::metrics::ReasonLabels;
use crate::sync::apply::{self, ApplyOptions, Desired, Resolver};
use crate::sync::error::Error;
use crate::sync::fetch::{self, Credentials, FetchRequest, SourceLimits};
use crate::sync::prepare::{self, Owner};
use crate::{status, sync::decrypt, sync::inventory, sync::prune};

/// The longest reconcile timeout when `spec.timeout` is not set.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a successful reconcile did, for the status message and the event.
#[derive(Debug)]
struct Applied {
    revision: String,
    inventory: Inventory,
    usage: Vec<sealsync_core::SealedSecretUsage>,
    summary: String,
    changed: bool,
    /// The revision was applied but some stale objects could not be deleted.
    prune_error: Option<String>,
    /// What self-heal watches from now on: each object's manifest and state after the apply.
    heal: Option<HealHandover>,
}

/// Each applied object's manifest, and its state after the apply (by inventory id).
type HealHandover = (Vec<TrackedSource>, Vec<(String, Fingerprint)>);

impl Applied {
    /// The last applied revision, left as it is.
    fn unchanged(gs: &GitSync, revision: String, summary: &str) -> Self {
        let status = gs.status.clone().unwrap_or_default();
        Self {
            revision,
            inventory: status.inventory.unwrap_or_default(),
            usage: status.sealed_secrets,
            summary: summary.to_owned(),
            changed: false,
            prune_error: None,
            heal: None,
        }
    }
}

/// The entry point the controller runtime calls.
pub(crate) async fn reconcile(
    gs: Arc<GitSync>,
    ctx: Arc<Shared>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let namespace = gs.namespace().unwrap_or_default();
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, gs, |event| async {
        match event {
            FinalizerEvent::Apply(gs) => {
                let span = tracing::info_span!(
                    "reconcile",
                    gitsync = %format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any())
                );
                Ok(tracing::Instrument::instrument(reconcile_apply(gs, &ctx), span).await)
            }
            FinalizerEvent::Cleanup(gs) => cleanup(gs, &ctx).await,
        }
    })
    .await
}

/// Requeue after a failure that is not the GitSync's own (the finalizer could not be written).
pub(crate) fn error_policy(
    _gs: Arc<GitSync>,
    error: &kube::runtime::finalizer::Error<Error>,
    _ctx: Arc<Shared>,
) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn interval_of(gs: &GitSync) -> Result<Duration, Error> {
    let interval = parse_duration(&gs.spec.interval)
        .map_err(|e| Error::Spec(format!("spec.interval: {e}")))?;
    if interval < Duration::from_secs(1) {
        return Err(Error::Spec("spec.interval: at least 1s".to_owned()));
    }
    Ok(interval)
}

fn timeout_of(gs: &GitSync, interval: Duration) -> Result<Duration, Error> {
    match &gs.spec.timeout {
        Some(t) => {
            let timeout =
                parse_duration(t).map_err(|e| Error::Spec(format!("spec.timeout: {e}")))?;
            if timeout < Duration::from_secs(1) {
                return Err(Error::Spec("spec.timeout: at least 1s".to_owned()));
            }
            Ok(timeout)
        }
        None => Ok(interval.clamp(Duration::from_secs(30), MAX_DEFAULT_TIMEOUT)),
    }
}

async fn reconcile_apply(gs: Arc<GitSync>, ctx: &Shared) -> Action {
    let started = Instant::now();
    let uid = gs.uid().unwrap_or_default();
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &namespace);
    let key: SyncKey = (namespace.clone(), name.clone());

    if gs.spec.webhook.is_none() {
        ctx.webhooks.unregister(&namespace, &name);
    } else if ctx.webhooks.path_of(&namespace, &name).is_none() {
        // Until its Secret exists, every poll looks for it (quietly: the warning Event comes
        // from full reconciles only).
        register_webhook(&gs, ctx, false).await;
    }
    if gs.spec.suspend || !gs.spec.self_heal {
        ctx.healer.forget(&key);
    }
    if gs.spec.suspend {
        // Nothing is applied while suspended, Vault refreshes included.
        ctx.vault.forget(&key);
    }
    if gs.spec.suspend {
        tracing::info!(gitsync = %format!("{namespace}/{name}"), "suspended; not reconciling");
        return Action::await_change();
    }
    let (interval, timeout) = match interval_of(&gs).and_then(|i| Ok((i, timeout_of(&gs, i)?))) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = finish(ctx, &api, &gs, Err(e), None, Vec::new(), started).await;
            return Action::await_change();
        }
    };

    let actor = match ctx.actor(&namespace, gs.spec.service_account_name.as_deref()) {
        Ok(actor) => actor,
        Err(e) => {
            let _ = finish(ctx, &api, &gs, Err(e), None, Vec::new(), started).await;
            return Action::await_change();
        }
    };

    let _slow_fetch_turn = match ctx.fetch_gate.enter(&key) {
        fetch::FetchTurn::Wait => {
            // Its server did not answer last time and another slow GitSync is fetching: wait
            // without holding a reconcile slot, so the others keep moving.
            tracing::debug!("the last fetch timed out; waiting for the slow-server slot");
            return Action::requeue(Duration::from_secs(2));
        }
        turn => turn,
    };
    let mut attempted = None;
    let mut written = Vec::new();
    let run = run(&gs, ctx, &actor, &mut attempted, &mut written);
    let mut timed_out = false;
    let mut result = match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => {
            timed_out = true;
            Err(Error::Apply(apply::ApplyError::Transient {
                location: "the reconcile".to_owned(),
                message: format!("did not finish within the timeout of {timeout:?}"),
            }))
        }
    };
    match &result {
        Err(Error::Source(e)) => ctx.fetch_gate.record(&key, e.is_slow_server()),
        // Timed out before the fetch had finished.
        Err(_) if timed_out && attempted.is_none() => ctx.fetch_gate.record(&key, true),
        _ if attempted.is_some() => ctx.fetch_gate.record(&key, false),
        _ => {}
    }
    let mut failed = result.as_ref().map_or(true, |a| a.prune_error.is_some());
    let mut terminal = result.as_ref().err().is_some_and(Error::is_terminal);
    let heal = result.as_mut().ok().and_then(|a| a.heal.take());
    let written_ids: Vec<String> = written.iter().map(|e| e.id.clone()).collect();
    let full = heal.is_some();
    let revision = result.as_ref().ok().map(|a| a.revision.clone());
    if !finish(ctx, &api, &gs, result, attempted, written, started).await {
        failed = true;
        terminal = false;
    }
    match (heal, revision) {
        (Some((sources, observed)), Some(revision)) if gs.spec.self_heal => {
            let spec = HealSpec {
                uid: uid.clone(),
                generation: gs.meta().generation,
                revision,
                force: gs.spec.force,
                allow_plaintext: gs.spec.allow_plaintext_secrets,
                default_namespace: default_namespace(&gs),
                actor: actor.clone(),
            };
            ctx.healer.record(&key, spec, sources, observed);
        }
        _ if !full => ctx.healer.end_failed(&key, &written_ids),
        _ => {}
    }

    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            let n = map.entry(uid).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            map.remove(&uid);
            0
        }
    };
    if failed && !terminal {
        // Transient failures retry with exponential backoff: 2 s, 4 s, … up to the interval.
        let backoff = Duration::from_secs(2u64.saturating_pow(failures.min(16)));
        Action::requeue(backoff.min(interval))
    } else {
        Action::requeue(interval)
    }
}

/// The stages. `attempted` receives the fetched revision as soon as it is known.
async fn run(
    gs: &GitSync,
    ctx: &Shared,
    actor: &Actor,
    attempted: &mut Option<String>,
    written: &mut Vec<sealsync_core::InventoryEntry>,
) -> Result<Applied, Error> {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let revision = gs.spec.revision()?;
    let path = normalize_path(gs.spec.path.as_deref().unwrap_or("")).map_err(Error::Render)?;
    fetch::check_url(&gs.spec.url)?;
    if gs.spec.secret_ref.is_some() && !gs.spec.url.starts_with("https://") {
        // Basic auth and bearer tokens over http:// or git:// travel in clear text.
        return Err(Error::Spec(
            "spec.secretRef: credentials are sent only over https://; use the repository's https URL"
                .to_owned(),
        ));
    }
    gs.spec
        .check_secret_namespaces(&namespace)
        .map_err(Error::Spec)?;
    let credentials = credentials(gs, ctx).await?;
    // Applies and prunes go through the GitSync's service account when it has one: its RBAC,
    // not the controller's, bounds what the repository may change.
    let client = ctx.client_as(actor)?;
    let key: SyncKey = (namespace.clone(), name.clone());
    // A poll of an unchanged revision whose objects are watched (or need no healing) reads
    // nothing more than the remote's refs.
    let known_commit = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .filter(|applied| {
            if ctx.take_replan(&key) {
                tracing::info!(
                    reason = "a Vault refresh changed a Secret that workloads restart on",
                    "re-planning every object"
                );
                return false;
            }
            if !unchanged_since_last_apply(gs, applied) {
                return false;
            }
            if !gs.spec.self_heal {
                return true;
            }
            match ctx.healer.armed(&key, gs.meta().generation, applied) {
                Ok(()) => true,
                Err(why) => {
                    tracing::info!(reason = why, "re-planning every object");
                    false
                }
            }
        })
        .and_then(|applied| applied.rsplit_once("sha1:").map(|(_, c)| c.to_owned()));

    // 1. Fetch.
    let snapshot = fetch::fetch(FetchRequest {
        url: gs.spec.url.clone(),
        revision,
        path: path.clone(),
        credentials,
        repo_dir: ctx
            .settings
            .data_dir
            .join(gs.uid().unwrap_or_else(|| format!("{namespace}_{name}"))),
        limits: SourceLimits::default(),
        timeout: Duration::from_secs(120),
        known_commit: known_commit.clone(),
    })
    .await?;
    *attempted = Some(snapshot.revision.clone());

    if known_commit.as_deref() == Some(snapshot.commit.as_str()) {
        ctx.metrics.polls_unchanged.inc();
        // Without selfHeal, drift stays until the next commit, a spec change or `sealsync
        // sync` (Argo CD's selfHeal: false); with it, the watches have found none.
        let summary = if gs.spec.self_heal {
            "unchanged revision; every object watched and in sync"
        } else {
            "unchanged revision; selfHeal is off, so drift is not corrected"
        };
        return Ok(Applied::unchanged(gs, snapshot.revision.clone(), summary));
    }

    // A full reconcile: self-heal stands aside until it ends, and the webhook's Secret is
    // read again (a rotated token takes effect here).
    ctx.healer.begin(&key);
    // A Vault refresh of this GitSync waits until the new revision is applied (or failed).
    let _refresh_guard = ctx.vault.refresher.lock(&key).await;
    if gs.spec.webhook.is_some() {
        register_webhook(gs, ctx, true).await;
    }

    // 2. Render.
    let mut manifests = render::render(&snapshot.files, &path, &RenderLimits::default())?;

    // 3. Decrypt.
    let default_namespace = default_namespace(gs);
    let mut decrypted = {
        let keys = ctx.keys.read().await;
        decrypt::decrypt(
            &manifests,
            &keys,
            &default_namespace,
            gs.spec.allow_plaintext_secrets,
        )
        .inspect_err(|e| {
            if matches!(
                e,
                decrypt::DecryptError::Open { .. } | decrypt::DecryptError::RetiredKey { .. }
            ) {
                ctx.metrics.decrypt_failures.inc();
            }
        })?
    };

    // 4. Resolve Vault references, every one before anything is applied.
    let sealed: Vec<bool> = manifests.iter().map(decrypt::is_sealed).collect();
    let vault = crate::vault::resolve_revision(
        ctx,
        gs,
        &default_namespace,
        &mut decrypted.objects,
        &sealed,
    )
    .await?;

    // 5. Restarts: opted-in workloads carry a checksum of the Secrets they use, in Git and
    // in what self-heal re-applies.
    let restarts = crate::sync::restarts::annotate(
        &mut decrypted.objects,
        &ctx.checksum_key,
        gs.spec.restart_on_secret_change,
        &default_namespace,
    );
    for (index, checksum) in &restarts.annotated {
        if let Some(manifest) = manifests.get_mut(*index) {
            crate::sync::restarts::set_template_annotation(&mut manifest.object, checksum);
        }
    }

    // 6. Prepare: owner labels, namespaces by scope.
    let mut resolver = Resolver::default();
    let mut desired = Vec::with_capacity(decrypted.objects.len());
    let mut sources = Vec::new();
    let revision_crds: Vec<Json> = decrypted
        .objects
        .iter()
        .filter(|(_, o)| o["kind"] == "CustomResourceDefinition")
        .map(|(_, o)| o.clone())
        .collect();
    let owner = Owner {
        namespace: &namespace,
        name: &name,
        default_namespace: &default_namespace,
        controller_namespace: &ctx.settings.namespace,
    };
    // Decryption yields one object per rendered manifest, in order.
    for ((location, object), manifest) in decrypted.objects.iter().zip(&manifests) {
        let namespaced =
            is_namespaced(ctx, &mut resolver, object, &revision_crds, location).await?;
        let object = prepare::prepare(object.clone(), location, namespaced, owner)?;
        if gs.spec.self_heal {
            sources.push(PendingSource {
                namespaced,
                manifest: serde_json::to_vec(&manifest.object).unwrap_or_default(),
                file: manifest.file.clone(),
                document: manifest.document.clone(),
                id: inventory::entry_of(&object).id,
                api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
                kind: object["kind"].as_str().unwrap_or_default().to_owned(),
                namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
                name: object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        desired.push(Desired {
            location: location.clone(),
            object,
        });
    }
    drop(manifests);
    let usage = decrypted.usage.clone();
    drop(decrypted);
    apply::sort_for_apply(&mut desired);
    // Two documents that become the same object once namespaces are filled in (or a
    // SealedSecret and a Secret of one name) would fight over it on every apply.
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for d in &desired {
        let id = inventory::entry_of(&d.object).id;
        if let Some(first) = seen.insert(id.clone(), d.location.as_str()) {
            return Err(Error::Render(render::RenderError::Duplicate {
                id,
                first: first.to_owned(),
                second: d.location.clone(),
            }));
        }
    }
    drop(seen);
    let new_inventory = inventory::of_objects(desired.iter().map(|d| &d.object));

    // 7. Apply.
    let outcome = match apply::apply_all(
        &client,
        &mut resolver,
        &desired,
        ApplyOptions {
            force: gs.spec.force,
            concurrency: ctx.settings.apply_concurrency,
            ready_timeout: ctx.settings.ready_timeout,
            self_heal: gs.spec.self_heal,
        },
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(failure) => {
            *written = failure.written;
            return Err(Error::Apply(failure.error));
        }
    };
    drop(desired);
    ctx.metrics.count_applies(
        "reconcile",
        outcome.created + outcome.configured + outcome.recreated,
        outcome.unchanged,
    );
    ctx.metrics.count_objects("created", outcome.created);
    ctx.metrics
        .count_objects("configured", outcome.configured + outcome.recreated);
    ctx.metrics.count_objects("unchanged", outcome.unchanged);

    // 8. Prune what the last applied revision had and this one has not.
    let old_inventory = gs
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default();
    let stale = inventory::stale(&old_inventory, &new_inventory);
    let mut final_inventory = new_inventory;
    let mut pruned = 0;
    let mut prune_error = None;
    if gs.spec.prune && !stale.is_empty() {
        let scope = prune::PruneScope {
            owner_namespace: &namespace,
            owner_name: &name,
            controller_namespace: &ctx.settings.namespace,
        };
        let result = prune::prune(&client, &mut resolver, stale, scope).await;
        report_orphaned(ctx, gs, &result.orphaned).await;
        pruned = result.deleted.len();
        ctx.metrics.count_objects("pruned", pruned);
        if result.error.is_some() {
            // Objects whose deletion failed stay listed, so the next reconcile retries them.
            final_inventory.entries.extend(result.retained);
            final_inventory.entries.sort();
            final_inventory.entries.dedup_by(|a, b| a.id == b.id);
        }
        prune_error = result.error;
    }
    let changed = outcome.created + outcome.configured + outcome.recreated + pruned > 0;
    let summary = format!(
        "{} created, {} configured, {} unchanged, {} pruned{}",
        outcome.created,
        outcome.configured + outcome.recreated,
        outcome.unchanged,
        pruned,
        if outcome.skipped > 0 {
            format!(", {} skipped (reconcile disabled)", outcome.skipped)
        } else {
            String::new()
        }
    );
    let heal = if gs.spec.self_heal {
        let mut tracked = Vec::with_capacity(sources.len());
        for pending in sources {
            if let Some(source) = pending.resolve(ctx, &mut resolver).await {
                tracked.push(source);
            }
        }
        Some((tracked, outcome.observed))
    } else {
        Some((Vec::new(), Vec::new()))
    };
    match vault.refresh_interval {
        Some(interval) => ctx.vault.refresher.register(
            &key,
            crate::vault::RefreshEntry::new(
                vault.secrets,
                interval,
                snapshot.revision.clone(),
                default_namespace.clone(),
                gs.spec.force,
                restarts.secrets,
                actor.clone(),
            ),
        ),
        None => ctx.vault.forget(&key),
    }
    Ok(Applied {
        revision: snapshot.revision.clone(),
        inventory: final_inventory,
        usage,
        summary,
        changed,
        prune_error,
        heal,
    })
}

/// An applied object's manifest, before its kind's resource is known (a CRD of the revision
/// may serve it only after the apply).
struct PendingSource {
    namespaced: bool,
    manifest: Vec<u8>,
    file: String,
    document: String,
    id: String,
    api_version: String,
    kind: String,
    namespace: Option<String>,
    name: String,
}

impl PendingSource {
    async fn resolve(self, ctx: &Shared, resolver: &mut Resolver) -> Option<TrackedSource> {
        let (resource, _) = resolver
            .resolve(&ctx.client, &self.api_version, &self.kind)
            .await
            .ok()
            .flatten()?;
        Some(TrackedSource {
            id: self.id,
            resource,
            namespaced: self.namespaced,
            namespace: self.namespace,
            name: self.name,
            file: self.file,
            document: self.document,
            manifest: self.manifest,
        })
    }
}

/// The namespace of namespaced objects whose manifests name none.
fn default_namespace(gs: &GitSync) -> String {
    gs.spec
        .target_namespace
        .clone()
        .unwrap_or_else(|| gs.namespace().unwrap_or_default())
}

/// The revision, the spec and any `requestedAt` were all handled by the last successful apply.
fn unchanged_since_last_apply(gs: &GitSync, revision: &str) -> bool {
    let Some(status) = &gs.status else {
        return false;
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    // An absent annotation asks for nothing (it may have been dropped by a re-apply).
    let requested_handled = match gs.annotations().get(REQUESTED_AT_ANNOTATION) {
        None => true,
        Some(requested) => status.last_handled_reconcile_at.as_ref() == Some(requested),
    };
    ready
        && status.last_applied_revision.as_deref() == Some(revision)
        && status.observed_generation == gs.meta().generation
        && requested_handled
}

/// Whether `object` is namespaced: from discovery, or from a CRD in the same revision.
async fn is_namespaced(
    ctx: &Shared,
    resolver: &mut Resolver,
    object: &Json,
    revision_crds: &[Json],
    location: &str,
) -> Result<bool, Error> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let resolved = resolver
        .resolve(&ctx.client, api_version, kind)
        .await
        .map_err(|e| {
            Error::Apply(apply::ApplyError::Transient {
                location: location.to_owned(),
                message: e.to_string(),
            })
        })?;
    if let Some((_, namespaced)) = resolved {
        return Ok(namespaced);
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let crd = revision_crds
        .iter()
        .find(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind);
    match crd {
        Some(crd) => Ok(crd["spec"]["scope"] != "Cluster"),
        None => Err(Error::Apply(apply::ApplyError::UnknownKind {
            location: location.to_owned(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })),
    }
}

/// Reads `spec.secretRef` from the GitSync's namespace.
async fn credentials(gs: &GitSync, ctx: &Shared) -> Result<Option<Credentials>, Error> {
    let Some(secret_ref) = &gs.spec.secret_ref else {
        return Ok(None);
    };
    let namespace = gs.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await
        .map_err(|source| Error::Kube {
            action: "reading the Secret named by spec.secretRef",
            source,
        })?
        .ok_or_else(|| {
            Error::Credentials(format!(
                "spec.secretRef: Secret {namespace}/{} not found",
                secret_ref.name
            ))
        })?;
    let mut data = secret.data.unwrap_or_default();
    let mut take = |key: &str| -> Option<Zeroizing<String>> {
        let mut bytes = data.remove(key)?;
        let text = String::from_utf8(std::mem::take(&mut bytes.0)).ok()?;
        Some(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    };
    let bearer = take("bearerToken");
    let username = take("username");
    let password = take("password");
    for (_, mut v) in data {
        zeroize::Zeroize::zeroize(&mut v.0);
    }
    match (bearer, username, password) {
        (Some(token), _, _) => Ok(Some(Credentials::Bearer(token))),
        (None, Some(username), Some(password)) => Ok(Some(Credentials::Basic {
            username: username.as_str().to_owned(),
            password,
        })),
        _ => Err(Error::Credentials(format!(
            "spec.secretRef: Secret {namespace}/{} has neither bearerToken nor username and password",
            secret_ref.name
        ))),
    }
}

/// Registers the GitSync's push webhook with the token from its Secret, or forgets it. A
/// missing Secret or key does not fail the sync (polling goes on); it is reported as a
/// warning Event, and `status.webhookPath` stays empty until the Secret exists.
pub(crate) async fn register_webhook(gs: &GitSync, ctx: &Shared, report: bool) {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let Some(webhook) = &gs.spec.webhook else {
        ctx.webhooks.unregister(&namespace, &name);
        return;
    };
    let key = webhook.secret_ref.key.as_deref().unwrap_or("token");
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let found = match secrets.get_opt(&webhook.secret_ref.name).await {
        Ok(secret) => secret,
        Err(e) => {
            // Keep the registered hook: the API being down says nothing about the token.
            tracing::warn!(error = %e, "reading the webhook Secret");
            return;
        }
    };
    let token = found.and_then(|s| {
        let mut data = s.data.unwrap_or_default();
        let token = data.remove(key).map(|b| Zeroizing::new(b.0));
        for (_, mut v) in data {
            zeroize::Zeroize::zeroize(&mut v.0);
        }
        token
    });
    match token.filter(|t| !t.is_empty()) {
        Some(token) => {
            ctx.webhooks.register(&namespace, &name, token);
        }
        None => {
            ctx.webhooks.unregister(&namespace, &name);
            if !report {
                return;
            }
            status::event(
                &ctx.recorder,
                gs,
                true,
                "WebhookSecretMissing",
                format!(
                    "spec.webhook.secretRef: Secret {namespace}/{} has no key {key:?}; create it with the webhook's token",
                    webhook.secret_ref.name
                ),
            )
            .await;
        }
    }
}

/// Writes the status, the event and the metrics of a finished reconcile.
async fn finish(
    ctx: &Shared,
    api: &Api<GitSync>,
    gs: &GitSync,
    result: Result<Applied, Error>,
    attempted: Option<String>,
    written: Vec<sealsync_core::InventoryEntry>,
    started: Instant,
) -> bool {
    let generation = gs.meta().generation;
    let mut st = gs.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    if let Some(requested) = gs.annotations().get(REQUESTED_AT_ANNOTATION) {
        st.last_handled_reconcile_at = Some(requested.clone());
    }
    st.webhook_path = ctx
        .webhooks
        .path_of(&gs.namespace().unwrap_or_default(), &gs.name_any());
    if attempted.is_some() {
        st.last_attempted_revision = attempted;
    }
    let reason = match &result {
        Ok(a) if a.prune_error.is_some() => "PruneFailed",
        Ok(_) => "Succeeded",
        Err(e) => e.reason(),
    };
    let label = result.as_ref().err().map_or(reason, Error::metric_label);
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ReasonLabels { reason: label })
        .observe(started.elapsed().as_secs_f64());
    match result {
        Ok(applied) => {
            if let Some(pushed) = ctx
                .webhooks
                .take_push(&gs.namespace().unwrap_or_default(), &gs.name_any())
            {
                ctx.metrics
                    .push_to_applied
                    .observe(pushed.elapsed().as_secs_f64());
            }
            match &applied.prune_error {
                None => {
                    let message = format!("Applied revision: {}", applied.revision);
                    status::set_condition(
                        &mut st.conditions,
                        "Ready",
                        true,
                        "Succeeded",
                        &message,
                        generation,
                    );
                    status::remove_condition(&mut st.conditions, "Reconciling");
                }
                Some(error) => {
                    let message = format!(
                        "Applied revision {}, but prune failed: {error}; the objects stay in the inventory and are retried",
                        applied.revision
                    );
                    status::set_failed(
                        &mut st.conditions,
                        "PruneFailed",
                        &message,
                        false,
                        generation,
                    );
                    status::event(&ctx.recorder, gs, true, "PruneFailed", message).await;
                }
            }
            status::remove_condition(&mut st.conditions, "Stalled");
            let new_revision =
                st.last_applied_revision.as_deref() != Some(applied.revision.as_str());
            st.last_applied_revision = Some(applied.revision.clone());
            st.inventory = Some(applied.inventory);
            st.sealed_secrets = applied.usage;
            tracing::info!(
                gitsync = %format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any()),
                revision = %applied.revision,
                result = %applied.summary,
                "reconciled"
            );
            if applied.changed || new_revision {
                status::event(
                    &ctx.recorder,
                    gs,
                    false,
                    "ReconciliationSucceeded",
                    format!("{}: {}", applied.revision, applied.summary),
                )
                .await;
            }
        }
        Err(error) => {
            // Objects a failed attempt created join the inventory, so that a later revision
            // without them prunes them; nothing leaves it.
            if !written.is_empty() {
                let mut inventory = st.inventory.take().unwrap_or_default();
                inventory.entries.extend(written);
                inventory.entries.sort();
                inventory.entries.dedup_by(|a, b| a.id == b.id);
                st.inventory = Some(inventory);
            }
            let message = error.to_string();
            tracing::warn!(
                gitsync = %format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any()),
                reason,
                error = %message,
                "reconcile failed"
            );
            status::set_failed(
                &mut st.conditions,
                reason,
                &message,
                error.is_terminal(),
                generation,
            );
            status::event(&ctx.recorder, gs, true, reason, message).await;
        }
    }
    if gs.status.as_ref() != Some(&st) {
        if let Err(e) = status::write(api, gs, &st).await {
            // Without the status the inventory is lost; the caller retries with backoff.
            tracing::warn!(error = %e, "could not write the status");
            return false;
        }
    }
    true
}

/// A warning Event for the objects prune left in place, each with the reason.
async fn report_orphaned(ctx: &Shared, gs: &GitSync, orphaned: &[String]) {
    if orphaned.is_empty() {
        return;
    }
    for what in orphaned {
        tracing::warn!(object = %what, "left in place by prune");
    }
    status::event(
        &ctx.recorder,
        gs,
        true,
        "PruneSkipped",
        format!(
            "{} object(s) left in place and dropped from the inventory: {}",
            orphaned.len(),
            orphaned.join("; ")
        ),
    )
    .await;
}

/// The bare repository of a deleted GitSync goes with it.
fn remove_repository(gs: &GitSync, ctx: &Shared) {
    if let Some(uid) = gs.uid() {
        let _ = std::fs::remove_dir_all(ctx.settings.data_dir.join(uid));
    }
}

/// Deletes every object of a deleted GitSync's inventory when `spec.prune` is on.
async fn cleanup(gs: Arc<GitSync>, ctx: &Shared) -> Result<Action, Error> {
    // Deleting the inventory below must not look like drift.
    ctx.healer
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.vault
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.webhooks
        .unregister(&gs.namespace().unwrap_or_default(), &gs.name_any());
    ctx.fetch_gate
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    if !gs.spec.prune {
        remove_repository(&gs, ctx);
        return Ok(Action::await_change());
    }
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let entries = gs
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default()
        .entries;
    let client = match ctx
        .actor(&namespace, gs.spec.service_account_name.as_deref())
        .and_then(|actor| ctx.client_as(&actor))
    {
        Ok(client) => client,
        Err(e) => {
            // Nothing was ever applied as an invalid service account; pruning as the
            // controller instead could delete what the GitSync's account may not.
            tracing::warn!(error = %e, "not pruning the deleted GitSync's objects");
            remove_repository(&gs, ctx);
            return Ok(Action::await_change());
        }
    };
    let mut resolver = Resolver::default();
    let scope = prune::PruneScope {
        owner_namespace: &namespace,
        owner_name: &name,
        controller_namespace: &ctx.settings.namespace,
    };
    let result = prune::prune(&client, &mut resolver, entries, scope).await;
    report_orphaned(ctx, &gs, &result.orphaned).await;
    match result.error {
        Some(e) => Err(Error::Prune(e)),
        None => {
            remove_repository(&gs, ctx);
            Ok(Action::await_change())
        }
    }
}
