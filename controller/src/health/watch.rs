//! One full-object watch, each event reduced at once to the object's health.

use std::sync::Arc;

use kube::api::DynamicObject;
use kube::core::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use sealsync_core::health::health_of;
use sealsync_core::{OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL};
use serde_json::{json, Value as Json};

use super::{CustomHealth, Inner, ObjectKey, Observed, Source};
use crate::support::watchloop;

/// Starts following `source` with `client`; the task ends when aborted.
pub(super) fn spawn(
    inner: Arc<Inner>,
    source: Source,
    client: Client,
    judged_by: (ApiResource, Option<Arc<CustomHealth>>),
) -> tokio::task::AbortHandle {
    tokio::spawn(follow(inner, source, client, judged_by)).abort_handle()
}

async fn follow(
    inner: Arc<Inner>,
    source: Source,
    client: Client,
    (resource, custom): (ApiResource, Option<Arc<CustomHealth>>),
) {
    let reduce = |object: DynamicObject| reduce(&resource, custom.as_deref(), object);
    let (api, config): (Api<DynamicObject>, watcher::Config) = match &source {
        Source::Kind(_, None) => (
            Api::all_with(client, &resource),
            watcher::Config::default().labels(OWNER_NAME_LABEL),
        ),
        // Judged by one GitSync's expressions: only its objects.
        Source::Kind(_, Some(((namespace, name), _))) => (
            Api::all_with(client, &resource),
            watcher::Config::default().labels(&format!(
                "{OWNER_NAME_LABEL}={name},{OWNER_NAMESPACE_LABEL}={namespace}"
            )),
        ),
        Source::Object(_, (namespace, name), _, _) => (
            match namespace {
                Some(ns) => Api::namespaced_with(client, ns, &resource),
                None => Api::all_with(client, &resource),
            },
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        ),
    };
    watchloop::follow(
        api,
        config,
        ("health watch", &resource.plural),
        &inner.metrics,
        |event| match event {
            Event::Init => inner.relist_started(&source),
            Event::InitApply(object) => {
                let (key, observed) = reduce(object);
                inner.observe(&source, key, Some(observed), true);
            }
            Event::InitDone => inner.relist_done(&source),
            Event::Apply(object) => {
                let (key, observed) = reduce(object);
                inner.observe(&source, key, Some(observed), false);
            }
            Event::Delete(object) => {
                let (key, _) = reduce(object);
                inner.observe(&source, key, None, false);
            }
        },
        |error| inner.watch_failed(&source, error),
    )
    .await;
}

/// The object's key and health; the object itself is dropped here. List items may lack
/// `apiVersion` and `kind`, so they come from the resource watched.
fn reduce(
    resource: &ApiResource,
    custom: Option<&CustomHealth>,
    object: DynamicObject,
) -> (ObjectKey, Observed) {
    if let Some(custom) = custom {
        let mut whole = serde_json::to_value(&object).unwrap_or(Json::Null);
        whole["apiVersion"] = json!(resource.api_version);
        whole["kind"] = json!(resource.kind);
        let observed = Observed {
            resource_version: object
                .metadata
                .resource_version
                .as_deref()
                .and_then(|v| v.parse().ok()),
            generation: object.metadata.generation,
            uid: object.metadata.uid.clone().unwrap_or_default(),
            health: custom.judge(&whole),
        };
        return (
            (
                object.metadata.namespace,
                object.metadata.name.unwrap_or_default(),
            ),
            observed,
        );
    }
    let DynamicObject {
        metadata, mut data, ..
    } = object;
    let mut part = |field: &str| data.get_mut(field).map(Json::take).unwrap_or(Json::Null);
    let reduced = json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "metadata": {
            "generation": metadata.generation,
            "deletionTimestamp": metadata.deletion_timestamp.as_ref().map(|_| "set"),
        },
        "spec": part("spec"),
        "status": part("status"),
    });
    let observed = Observed {
        resource_version: metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok()),
        generation: metadata.generation,
        uid: metadata.uid.clone().unwrap_or_default(),
        health: health_of(&reduced),
    };
    (
        (metadata.namespace, metadata.name.unwrap_or_default()),
        observed,
    )
}
