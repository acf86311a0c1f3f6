//! The status of a SealedSecret resource: `Ready` with a GitSync's reasons, the generation it
//! describes, and the keys that opened it (what key retirement counts).

use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use sealsync_core::SealedSecretResource;

use super::error::ResourceError;
use super::reconcile::Written;

/// Writes the outcome of a pass into the resource's status, keeping `lastTransitionTime` while
/// `Ready` keeps its value. The key ids are those that opened the values (`opened_by`), even
/// when the Secret could not be written; else the last ones (the Secret may still hold the
/// values they opened).
pub(crate) async fn write(
    client: &kube::Client,
    resource: &SealedSecretResource,
    outcome: &Result<Written, ResourceError>,
    opened_by: Option<Vec<String>>,
) -> Result<(), ResourceError> {
    let previous = resource.status.as_ref();
    let (ready, reason, message, key_ids) = match outcome {
        Ok(w) => (
            "True",
            "Succeeded",
            format!(
                "Secret {}/{} holds the values of generation {}",
                resource.namespace().unwrap_or_default(),
                resource.name_any(),
                resource.metadata.generation.unwrap_or_default()
            ),
            w.key_ids.clone(),
        ),
        Err(e) => (
            "False",
            e.reason(),
            sealsync_core::Chain(e).to_string(),
            opened_by.unwrap_or_else(|| previous.map(|s| s.key_ids.clone()).unwrap_or_default()),
        ),
    };
    let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
    crate::status::set_condition(
        &mut conditions,
        "Ready",
        ready == "True",
        reason,
        &message,
        resource.metadata.generation,
    );
    let Some(condition) = conditions.iter().find(|c| c.type_ == "Ready").cloned() else {
        return Ok(());
    };
    let unchanged = previous.is_some_and(|s| {
        s.observed_generation == resource.metadata.generation
            && s.key_ids == key_ids
            && s.condition("Ready").is_some_and(|c| {
                c.status == condition.status
                    && c.reason == condition.reason
                    && c.message == condition.message
            })
    });
    if unchanged {
        return Ok(());
    }
    let patch = serde_json::json!({
        "status": {
            "conditions": [condition],
            "observedGeneration": resource.metadata.generation,
            "keyIds": key_ids,
        }
    });
    let api: Api<SealedSecretResource> =
        Api::namespaced(client.clone(), &resource.namespace().unwrap_or_default());
    api.patch_status(
        &resource.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(drop)
    .map_err(ResourceError::api(format!(
        "writing the status of SealedSecret {}/{}",
        resource.namespace().unwrap_or_default(),
        resource.name_any()
    )))
}
