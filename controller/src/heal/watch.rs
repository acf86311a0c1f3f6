//! One metadata-only watch per resource in use, filtered by the owner label.

use std::sync::Arc;

use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use sealsync_core::OWNER_NAME_LABEL;

use super::Inner;
use crate::support::{watchloop, Gvr};

/// Starts following `resource`; the task ends when aborted.
pub(super) fn spawn(
    inner: Arc<Inner>,
    gvr: Gvr,
    resource: ApiResource,
) -> tokio::task::AbortHandle {
    tokio::spawn(follow(inner, gvr, resource)).abort_handle()
}

async fn follow(inner: Arc<Inner>, gvr: Gvr, resource: ApiResource) {
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(inner.client.clone(), &resource);
    let config = watcher::Config::default().labels(OWNER_NAME_LABEL);
    watchloop::follow(
        api,
        config,
        ("self-heal watch", &resource.plural),
        &inner.metrics,
        |event| match event {
            Event::Init => inner.relist_started(&gvr),
            Event::InitApply(object) => inner.observe(&gvr, &object.metadata, false, true),
            Event::InitDone => inner.relist_done(&gvr),
            Event::Apply(object) => inner.observe(&gvr, &object.metadata, false, false),
            Event::Delete(object) => inner.observe(&gvr, &object.metadata, true, false),
        },
        |_| inner.watch_failed(&gvr),
    )
    .await;
}
