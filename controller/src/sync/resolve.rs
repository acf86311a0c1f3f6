//! The `resolve` stage: Vault references read and put in place, every one of them before
//! anything is applied, so that a set of objects is resolved in full or not at all.

use std::time::Duration;

use sealsync_core::VaultSpec;
use serde_json::Value as Json;

use super::engine::{Engine, Target};
use super::object::{Stage, SyncObject};
use crate::vault::{References, VaultConfig, VaultError};

/// Which Vault session reads the references.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Login<'a> {
    /// The GitSync's own settings (a whole revision): a new login when they changed.
    Spec {
        /// `spec.vault`.
        vault: Option<&'a VaultSpec>,
        /// `spec.serviceAccountName`.
        service_account: Option<&'a str>,
    },
    /// The session of the last whole revision (a drift correction, a refresh).
    Existing,
}

/// What the stage found.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// The objects with references as they were before the values went in, each with the
    /// digest of the values applied now: what a refresh reads again.
    pub(crate) templates: Vec<SyncObject>,
    /// How often to read them again; `None` when there are no references.
    pub(crate) refresh_interval: Option<Duration>,
}

/// Resolves the references of the opened `objects` in place. Objects opened from
/// SealedSecrets are never read as references. With `keep_templates`, the unresolved form of
/// each object with references is kept for later refreshes.
pub(crate) async fn resolve(
    engine: &Engine,
    target: &Target<'_>,
    login: Login<'_>,
    objects: &mut [SyncObject],
    keep_templates: bool,
) -> Result<Resolved, VaultError> {
    let mut pairs: Vec<(String, Json)> = objects
        .iter_mut()
        .map(|o| (String::new(), std::mem::take(&mut o.object)))
        .collect();
    for (pair, object) in pairs.iter_mut().zip(objects.iter()) {
        pair.0.clone_from(&object.location);
    }
    let sealed: Vec<bool> = objects.iter().map(|o| o.sealed).collect();
    let result = resolve_pairs(
        engine,
        target,
        login,
        &mut pairs,
        &sealed,
        keep_templates.then_some(&*objects),
    )
    .await;
    // The objects go back whatever happened, so that they are wiped on drop.
    for (object, (_, value)) in objects.iter_mut().zip(pairs) {
        object.object = value;
        if object.stage < Stage::Resolved {
            object.stage = Stage::Resolved;
        }
    }
    let (references, refresh_interval) = result?;
    let mut templates = Vec::new();
    for (index, template) in references {
        let digest = engine.vault.digest(&objects[index].object);
        objects[index].vault_digest = Some(digest);
        if let Some(mut template) = template {
            template.vault_digest = Some(digest);
            templates.push(template);
        }
    }
    Ok(Resolved {
        templates,
        refresh_interval,
    })
}

/// The positions of the objects with references, each with its unresolved copy.
type Found = Vec<(usize, Option<SyncObject>)>;

async fn resolve_pairs(
    engine: &Engine,
    target: &Target<'_>,
    login: Login<'_>,
    pairs: &mut [(String, Json)],
    sealed: &[bool],
    templates_of: Option<&[SyncObject]>,
) -> Result<(Found, Option<Duration>), VaultError> {
    let references = References::find(pairs, sealed, target.default_namespace)?;
    if references.is_empty() {
        return Ok((Vec::new(), None));
    }
    let (session, refresh_interval) = match login {
        Login::Spec {
            vault,
            service_account,
        } => {
            let config = VaultConfig::resolve(
                vault,
                service_account,
                &target.key.0,
                &engine.vault.defaults,
                &engine.settings.trusted_namespaces,
            )?
            .ok_or_else(|| references.not_configured())?;
            let interval = config.refresh_interval;
            (engine.vault.session(target.key, config)?, Some(interval))
        }
        Login::Existing => {
            let session = engine.vault.existing(target.key).ok_or_else(|| {
                VaultError::Spec("no Vault session; the next full reconcile logs in".to_owned())
            })?;
            (session, None)
        }
    };
    let found: Found = references
        .indices()
        .map(|index| {
            let template = templates_of.map(|objects| {
                let mut template = objects[index].template();
                template.object = pairs[index].1.clone();
                template
            });
            (index, template)
        })
        .collect();
    engine
        .vault
        .read_into(
            &engine.clients.client,
            &engine.metrics,
            &session,
            &references,
            pairs,
        )
        .await?;
    Ok((found, refresh_interval))
}
