//! One SealedSecret resource, one stage per function: the Secret it describes guarded against
//! other owners, its values opened with the cluster keys, the Secret written (owned by the
//! resource) when it differs, and the outcome reported.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use sealsync_core::render::wipe_json;
use sealsync_core::{
    SealedSecretResource, MANAGED_ANNOTATION, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL,
    SEALED_SECRET_LABEL,
};
use serde_json::Value as Json;

use super::error::ResourceError;
use super::{status, Resources};
use crate::support::metrics::ResultLabels;
use crate::sync::decrypt::{self, Opened};

/// The field manager of the Secrets written for SealedSecret resources.
pub(crate) const FIELD_MANAGER: &str = "sealsync-sealedsecrets";
/// How often a Ready resource is compared with its Secret anyway.
const RESYNC: Duration = Duration::from_secs(600);
/// How soon a failure that may pass by itself (the API, a conflict resolved by hand) is
/// retried.
const RETRY: Duration = Duration::from_secs(10);
/// How soon values that did not open are tried again: a key restored or rotated in may open
/// them.
const RETRY_DECRYPT: Duration = Duration::from_secs(60);

/// What a successful pass did.
#[derive(Debug)]
pub(crate) struct Written {
    /// Whether the Secret was written (else it held these values already).
    pub(crate) written: bool,
    /// The cluster keys that opened the values.
    pub(crate) key_ids: Vec<String>,
}

/// Reconciles one resource. Failures are reported in its status and Events; the error
/// returned is only a failed status write.
pub(crate) async fn reconcile(
    resource: Arc<SealedSecretResource>,
    ctx: Arc<Resources>,
) -> Result<Action, ResourceError> {
    if resource.metadata.deletion_timestamp.is_some() {
        // The Secret goes with it: it is owned by the resource.
        return Ok(Action::await_change());
    }
    let namespace = resource.namespace().unwrap_or_default();
    let name = resource.name_any();
    let what = format!("SealedSecret {namespace}/{name}");
    let outcome = write_secret(&resource, &ctx, &namespace, &name, &what).await;
    let result = match &outcome {
        Ok(w) if w.written => "written",
        Ok(_) => "unchanged",
        Err(e) => e.metric_label(),
    };
    ctx.metrics
        .sealed_secret_resources
        .get_or_create(&ResultLabels { result })
        .inc();
    status::write(&ctx.client, &resource, &outcome).await?;
    let reference = resource.object_ref(&());
    match outcome {
        Ok(w) => {
            if w.written {
                tracing::info!(resource = %what, "sealed secret resource: Secret written");
                let note = format!("Secret {namespace}/{name} written");
                let _ = ctx
                    .recorder
                    .publish(&reference, false, "Applied", "Write", &note)
                    .await;
            }
            Ok(Action::requeue(RESYNC))
        }
        Err(e) => {
            let message = sealsync_core::Chain(&e).to_string();
            tracing::warn!(resource = %what, reason = e.reason(), error = %message, "sealed secret resource: not written");
            if matches!(e, ResourceError::Decrypt(_)) {
                ctx.metrics.decrypt_failures.inc();
            }
            let _ = ctx
                .recorder
                .publish(&reference, true, e.reason(), "Write", &message)
                .await;
            Ok(Action::requeue(match e {
                ResourceError::Decrypt(_) => RETRY_DECRYPT,
                _ if e.is_transient() => RETRY,
                _ => RESYNC,
            }))
        }
    }
}

async fn write_secret(
    resource: &SealedSecretResource,
    ctx: &Resources,
    namespace: &str,
    name: &str,
    what: &str,
) -> Result<Written, ResourceError> {
    let object = serde_json::to_value(resource)
        .map_err(|_| ResourceError::Invalid(format!("{what}: not representable as JSON")))?;
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let live = secrets
        .get_opt(name)
        .await
        .map_err(ResourceError::api(format!(
            "reading Secret {namespace}/{name}"
        )))?;
    guard(live.as_ref(), resource, namespace, name)?;
    let (mut desired, key_ids) = open(&object, ctx, namespace, what).await?;
    desired["metadata"]["ownerReferences"] = serde_json::json!([owner_reference(resource)]);
    desired["metadata"]["labels"][SEALED_SECRET_LABEL] = Json::from(name);
    let result = if live.as_ref().is_some_and(|l| holds(l, &desired, resource)) {
        Ok(false)
    } else {
        secrets
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&desired),
            )
            .await
            .map(|_| true)
            .map_err(ResourceError::api(format!(
                "writing Secret {namespace}/{name}"
            )))
    };
    wipe_json(&mut desired);
    Ok(Written {
        written: result?,
        key_ids,
    })
}

/// The `open` stage: the values, with the newest cluster key that opens them. The Secret is
/// bound to the resource's own namespace and name, as a GitSync's would be.
async fn open(
    object: &Json,
    ctx: &Resources,
    namespace: &str,
    what: &str,
) -> Result<(Json, Vec<String>), ResourceError> {
    let keys = ctx.keys.read().await;
    let mut opened = decrypt::open(object, what, what, &keys, namespace, true)
        .map_err(|e| ResourceError::Decrypt(Box::new(e)))?;
    match &mut opened {
        Opened::Sealed { secret, usage } => Ok((std::mem::take(secret), usage.key_ids.clone())),
        Opened::Plain => Err(ResourceError::Invalid(format!(
            "{what}: not a sealsync.dev/v1 SealedSecret"
        ))),
    }
}

/// The `guard` stage: a Secret that a GitSync applies, that another object owns, or that
/// exists unowned (unless annotated to be taken over) is never written.
fn guard(
    live: Option<&Secret>,
    resource: &SealedSecretResource,
    namespace: &str,
    name: &str,
) -> Result<(), ResourceError> {
    let Some(live) = live else {
        return Ok(());
    };
    let labels = live.labels();
    if let Some(owner) = labels.get(OWNER_NAME_LABEL) {
        let owner_namespace = labels
            .get(OWNER_NAMESPACE_LABEL)
            .map(String::as_str)
            .unwrap_or_default();
        return Err(ResourceError::Conflict(format!(
            "Secret {namespace}/{name} is applied by GitSync {owner_namespace}/{owner}; a Secret is written either by a GitSync or by a SealedSecret resource, never both: remove it from one of them"
        )));
    }
    let uid = resource.uid();
    if let Some(owner) = live
        .owner_references()
        .iter()
        .find(|o| o.controller == Some(true))
    {
        if Some(&owner.uid) == uid.as_ref() {
            return Ok(());
        }
        return Err(ResourceError::Conflict(format!(
            "Secret {namespace}/{name} is owned by {} {}; delete it, or this SealedSecret, so that one of them owns it",
            owner.kind, owner.name
        )));
    }
    if live
        .annotations()
        .get(MANAGED_ANNOTATION)
        .map(String::as_str)
        == Some("true")
    {
        return Ok(());
    }
    Err(ResourceError::Conflict(format!(
        "Secret {namespace}/{name} exists and no SealedSecret owns it; delete it, or annotate it {MANAGED_ANNOTATION}=\"true\" to let this SealedSecret take it over"
    )))
}

fn owner_reference(resource: &SealedSecretResource) -> Json {
    serde_json::json!({
        "apiVersion": "sealsync.dev/v1",
        "kind": "SealedSecret",
        "name": resource.name_any(),
        "uid": resource.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `live` holds everything `desired` says: its values, type, labels, annotations and
/// owner. An unchanged Secret is not written again at every resync.
fn holds(live: &Secret, desired: &Json, resource: &SealedSecretResource) -> bool {
    let live_data = live.data.clone().unwrap_or_default();
    let desired_data = desired["data"].as_object().cloned().unwrap_or_default();
    let same_values = live_data.len() == desired_data.len()
        && desired_data.iter().all(|(key, value)| {
            let decoded = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok());
            live_data.get(key).map(|b| &b.0) == decoded.as_ref()
        });
    let contains = |live: &std::collections::BTreeMap<String, String>, want: &Json| {
        want.as_object().is_none_or(|m| {
            m.iter()
                .all(|(k, v)| live.get(k).map(String::as_str) == v.as_str())
        })
    };
    let owned = live
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == resource.uid().as_ref());
    same_values
        && owned
        && live.type_.as_deref() == desired["type"].as_str().or(Some("Opaque"))
        && live.immutable == desired["immutable"].as_bool()
        && contains(live.labels(), &desired["metadata"]["labels"])
        && contains(live.annotations(), &desired["metadata"]["annotations"])
}
