//! One SealedSecret resource, one stage per function: the template checked, the Secret it
//! describes guarded against other owners, its values opened with the cluster keys, the
//! Secret written (owned by the resource, exactly as described) when it differs, and the
//! outcome reported.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};
use sealsync_core::render::wipe_json;
use sealsync_core::{
    SealedSecretResource, MANAGED_ANNOTATION, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL,
    SEALED_SECRET_LABEL,
};
use serde_json::Value as Json;
use zeroize::Zeroize;

use super::error::ResourceError;
use super::{status, Resources};
use crate::support::metrics::ResultLabels;
use crate::sync::decrypt::{self, Opened};

/// The field manager of the Secrets written for SealedSecret resources.
pub(crate) const FIELD_MANAGER: &str = "sealsync-sealedsecrets";
/// How often a Ready resource is compared with its Secret anyway.
const RESYNC: Duration = Duration::from_secs(600);
/// The first retry of a failure that may pass by itself; it doubles up to [`RESYNC`].
const RETRY: Duration = Duration::from_secs(10);
/// Secret types a SealedSecret may not create: a service-account token Secret would have the
/// token controller mint a token for any service account of the namespace.
const REFUSED_TYPES: [&str; 1] = ["kubernetes.io/service-account-token"];
/// Label and annotation prefixes a template may not set: sealsync's own (a GitSync's owner
/// labels, the managed annotation) and the service-account binding of token Secrets.
const REFUSED_PREFIXES: [&str; 2] = ["sealsync.dev/", "kubernetes.io/service-account."];

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
    let mut opened_by = None;
    let outcome = write_secret(&resource, &ctx, (&namespace, &name, &what), &mut opened_by).await;
    let result = match &outcome {
        Ok(w) if w.written => "written",
        Ok(_) => "unchanged",
        Err(e) => e.metric_label(),
    };
    ctx.metrics
        .sealed_secret_resources
        .get_or_create(&ResultLabels { result })
        .inc();
    status::write(&ctx.client, &resource, &outcome, opened_by).await?;
    let reference = resource.object_ref(&());
    let key = resource.uid().unwrap_or_default();
    match outcome {
        Ok(w) => {
            ctx.failures(&key, false);
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
            // A key restored or rotated in may open values that did not open; a conflict may
            // be resolved by hand: retried, backing off, up to the resync interval.
            let retried = e.is_transient() || matches!(e, ResourceError::Decrypt(_));
            let failures = ctx.failures(&key, true);
            Ok(Action::requeue(if retried {
                RETRY.saturating_mul(1 << failures.min(6)).min(RESYNC)
            } else {
                RESYNC
            }))
        }
    }
}

async fn write_secret(
    resource: &SealedSecretResource,
    ctx: &Resources,
    (namespace, name, what): (&str, &str, &str),
    opened_by: &mut Option<Vec<String>>,
) -> Result<Written, ResourceError> {
    check_template(resource, what)?;
    let client = ctx.client_for(namespace).map_err(ResourceError::Invalid)?;
    let object = serde_json::to_value(resource)
        .map_err(|_| ResourceError::Invalid(format!("{what}: not representable as JSON")))?;
    let (mut desired, key_ids) = open(&object, ctx, namespace, what).await?;
    *opened_by = Some(key_ids.clone());
    desired["metadata"]["ownerReferences"] = serde_json::json!([owner_reference(resource)]);
    desired["metadata"]["labels"][SEALED_SECRET_LABEL] = Json::from(name);
    let secrets: Api<Secret> = Api::namespaced(client, namespace);
    let result = write(&secrets, resource, (namespace, name), &mut desired).await;
    wipe_json(&mut desired);
    Ok(Written {
        written: result?,
        key_ids,
    })
}

/// The `template` stage: nothing the template asks for may reach beyond a Secret's values.
fn check_template(resource: &SealedSecretResource, what: &str) -> Result<(), ResourceError> {
    let Some(template) = resource.spec.template.as_ref() else {
        return Ok(());
    };
    if let Some(refused) = template
        .type_
        .as_deref()
        .filter(|t| REFUSED_TYPES.contains(t))
    {
        return Err(ResourceError::Invalid(format!(
            "{what}: spec.template.type {refused} is refused: the token controller would mint a token for a service account of the namespace"
        )));
    }
    let metadata = template.metadata.as_ref();
    let keys = metadata
        .into_iter()
        .flat_map(|m| m.labels.keys().chain(m.annotations.keys()));
    for key in keys {
        if REFUSED_PREFIXES.iter().any(|p| key.starts_with(p)) {
            return Err(ResourceError::Invalid(format!(
                "{what}: spec.template.metadata sets {key}, which the controller sets itself or which binds a service account; remove it"
            )));
        }
    }
    Ok(())
}

/// The `write` stage: created if absent (someone else's Secret created meanwhile is never
/// overwritten), replaced as a whole at the version read if it differs, recreated if it is
/// immutable. Whether it was written.
async fn write(
    secrets: &Api<Secret>,
    resource: &SealedSecretResource,
    (namespace, name): (&str, &str),
    desired: &mut Json,
) -> Result<bool, ResourceError> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    let mut live = secrets
        .get_opt(name)
        .await
        .map_err(ResourceError::api(format!(
            "reading Secret {namespace}/{name}"
        )))?;
    let result = async {
        let Some(current) = live.as_ref() else {
            return create(
                secrets,
                &params,
                to_secret(desired, (namespace, name))?,
                (namespace, name),
            )
            .await;
        };
        guard(current, resource, namespace, name)?;
        if holds(current, desired, resource) {
            return Ok(false);
        }
        if current.immutable == Some(true) {
            // Its values cannot change: it is ours, so it is deleted and written again.
            let uid = current.metadata.uid.clone();
            secrets
                .delete(
                    name,
                    &DeleteParams {
                        preconditions: Some(Preconditions {
                            uid,
                            resource_version: current.metadata.resource_version.clone(),
                        }),
                        ..DeleteParams::default()
                    },
                )
                .await
                .map_err(ResourceError::api(format!(
                    "deleting immutable Secret {namespace}/{name}"
                )))?;
            return create(
                secrets,
                &params,
                to_secret(desired, (namespace, name))?,
                (namespace, name),
            )
            .await;
        }
        desired["metadata"]["resourceVersion"] = Json::from(
            current
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
        );
        let mut secret = to_secret(desired, (namespace, name))?;
        let replaced = secrets.replace(name, &params, &secret).await;
        wipe_secret(&mut secret);
        replaced
            .map(|mut replaced| {
                wipe_secret(&mut replaced);
                true
            })
            .map_err(ResourceError::api(format!(
                "writing Secret {namespace}/{name}"
            )))
    }
    .await;
    if let Some(live) = live.as_mut() {
        wipe_secret(live);
    }
    result
}

/// `desired` as a typed Secret.
fn to_secret(desired: &Json, (namespace, name): (&str, &str)) -> Result<Secret, ResourceError> {
    serde_json::from_value(desired.clone()).map_err(|_| {
        ResourceError::Invalid(format!("Secret {namespace}/{name}: not a valid Secret"))
    })
}

/// Creates `secret`; one created by someone else meanwhile is never overwritten.
async fn create(
    secrets: &Api<Secret>,
    params: &PostParams,
    mut secret: Secret,
    (namespace, name): (&str, &str),
) -> Result<bool, ResourceError> {
    let created = secrets.create(params, &secret).await;
    wipe_secret(&mut secret);
    created
        .map(|mut created| {
            wipe_secret(&mut created);
            true
        })
        .map_err(|e| match e {
            kube::Error::Api(s) if s.code == 409 => ResourceError::Conflict(format!(
                "Secret {namespace}/{name} was created by someone else meanwhile"
            )),
            e => ResourceError::api(format!("creating Secret {namespace}/{name}"))(e),
        })
}

fn wipe_secret(secret: &mut Secret) {
    for value in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        value.0.zeroize();
    }
    for value in secret.string_data.iter_mut().flat_map(|d| d.values_mut()) {
        value.zeroize();
    }
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
    live: &Secret,
    resource: &SealedSecretResource,
    namespace: &str,
    name: &str,
) -> Result<(), ResourceError> {
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
        .type_
        .as_deref()
        .is_some_and(|t| REFUSED_TYPES.contains(&t))
    {
        return Err(ResourceError::Conflict(format!(
            "Secret {namespace}/{name} is a service-account token, which a SealedSecret never takes over"
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

/// Whether `live` is exactly what `desired` says: the same values, no others, the same type,
/// labels and annotations, owned by the resource. Anything else is written again.
fn holds(live: &Secret, desired: &Json, resource: &SealedSecretResource) -> bool {
    let empty = std::collections::BTreeMap::new();
    let live_data = live.data.as_ref().unwrap_or(&empty);
    let desired_data = desired["data"].as_object();
    let desired_len = desired_data.map_or(0, serde_json::Map::len);
    let same_values = live.string_data.is_none()
        && live_data.len() == desired_len
        && desired_data.into_iter().flatten().all(|(key, value)| {
            let decoded = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
                .map(zeroize::Zeroizing::new);
            live_data.get(key).map(|b| &b.0) == decoded.as_deref()
        });
    let same_map = |live: &std::collections::BTreeMap<String, String>, want: &Json| {
        let want = want.as_object();
        live.len() == want.map_or(0, serde_json::Map::len)
            && want
                .into_iter()
                .flatten()
                .all(|(k, v)| live.get(k).map(String::as_str) == v.as_str())
    };
    let owned = live
        .owner_references()
        .iter()
        .any(|o| Some(&o.uid) == resource.uid().as_ref());
    same_values
        && owned
        && live.type_.as_deref() == desired["type"].as_str().or(Some("Opaque"))
        && live.immutable == desired["immutable"].as_bool()
        && same_map(live.labels(), &desired["metadata"]["labels"])
        && same_map(live.annotations(), &desired["metadata"]["annotations"])
}
