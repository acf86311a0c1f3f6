//! The `plan` stage: each object's scope (from discovery, or from a CRD of the same
//! revision), prepared for its owner, no two documents for one object, in apply order.

use std::collections::HashMap;

use sealsync_core::render::RenderError;
use sealsync_core::Chain;
use serde_json::Value as Json;

use super::apply::{self, ApplyError, Resolver};
use super::engine::{Engine, Target};
use super::error::Error;
use super::inventory;
use super::object::{Identity, Scope, Stage, SyncObject};
use super::prepare::{self, Owner};

/// The objects of a revision that are not planned again (an incremental revision carries them
/// over): no object planned may be one of them.
pub(crate) trait CarriedObjects: Sync + std::fmt::Debug {
    /// Where the carried object with inventory id `id` comes from (`file: document`), if there
    /// is one.
    fn location_of(&self, id: &str) -> Option<String>;
}

/// Plans the resolved `objects` (those left unchanged stay as they are). `revision_crds` are
/// the CRDs of the revision, which say the scope of kinds discovery does not serve yet;
/// `carried`, the revision's objects that are not planned again.
pub(crate) async fn plan(
    engine: &Engine,
    target: &Target<'_>,
    resolver: &mut Resolver,
    objects: &mut [SyncObject],
    revision_crds: &[Json],
    carried: Option<&dyn CarriedObjects>,
) -> Result<(), Error> {
    let owner = Owner {
        namespace: &target.key.0,
        name: &target.key.1,
        default_namespace: target.default_namespace,
        controller_namespace: &engine.settings.namespace,
    };
    for object in objects.iter_mut().filter(|o| o.stage == Stage::Resolved) {
        let scope = match object.scope.take() {
            Some(scope) => scope,
            None => scope_of(engine, resolver, object, revision_crds).await?,
        };
        let body = std::mem::take(&mut object.object);
        object.object = prepare::prepare(body, &object.location, scope.namespaced, owner)?;
        object.scope = Some(scope);
        object.id = inventory::entry_of(&object.object).id;
        object.what = Some(Identity::of(&object.object));
        object.stage = Stage::Prepared;
    }
    objects.sort_by_cached_key(|o| apply::apply_order(&o.object));
    // Two documents that become the same object once namespaces are filled in (or a
    // SealedSecret and a Secret of one name) would fight over it on every apply.
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for object in objects.iter().filter(|o| o.stage == Stage::Prepared) {
        let earlier = carried.and_then(|c| c.location_of(&object.id));
        let first =
            earlier.or_else(|| seen.insert(&object.id, &object.location).map(str::to_owned));
        if let Some(first) = first {
            return Err(Error::Render(RenderError::Duplicate {
                id: object.id.clone(),
                first,
                second: object.location.clone(),
            }));
        }
    }
    Ok(())
}

/// Whether `object`'s kind is namespaced, and its resource when discovery serves it.
async fn scope_of(
    engine: &Engine,
    resolver: &mut Resolver,
    object: &SyncObject,
    revision_crds: &[Json],
) -> Result<Scope, Error> {
    let (api_version, kind) = (object.api_version(), object.kind());
    let resolved = resolver
        .resolve(&engine.clients.client, api_version, kind)
        .await
        .map_err(|e| {
            Error::Apply(ApplyError::Transient {
                location: object.location.clone(),
                message: Chain(&e).to_string(),
            })
        })?;
    if let Some((resource, namespaced)) = resolved {
        return Ok(Scope {
            resource: Some(resource),
            namespaced,
        });
    }
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let crd = revision_crds
        .iter()
        .find(|crd| crd["spec"]["group"] == group && crd["spec"]["names"]["kind"] == kind);
    match crd {
        Some(crd) => Ok(Scope {
            resource: None,
            namespaced: crd["spec"]["scope"] != "Cluster",
        }),
        None => Err(Error::Apply(ApplyError::UnknownKind {
            location: object.location.clone(),
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        })),
    }
}
