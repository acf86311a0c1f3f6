//! One metadata-only watch per resource in use, filtered by the owner label.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use sealsync_core::OWNER_NAME_LABEL;

use super::{Gvr, Inner};
use crate::support::metrics::WatchLabels;

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
    let mut delay = Duration::from_millis(500);
    let mut first = true;
    loop {
        // A fresh watcher lists before it watches: whatever changed while the last one was
        // down is found by comparing the list.
        let mut stream = watcher::watcher(api.clone(), config.clone()).boxed();
        if !first {
            inner
                .metrics
                .watch_restarts
                .get_or_create(&WatchLabels {
                    resource: resource.plural.clone(),
                })
                .inc();
        }
        first = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(Event::Init) => inner.relist_started(&gvr),
                Ok(Event::InitApply(object)) => inner.observe(&gvr, &object.metadata, false, true),
                Ok(Event::InitDone) => {
                    inner.relist_done(&gvr);
                    delay = Duration::from_millis(500);
                }
                Ok(Event::Apply(object)) => inner.observe(&gvr, &object.metadata, false, false),
                Ok(Event::Delete(object)) => inner.observe(&gvr, &object.metadata, true, false),
                Err(e) => {
                    tracing::warn!(
                        resource = %resource.plural,
                        group = %resource.group,
                        error = %e,
                        retry_in = ?delay,
                        "self-heal watch failed; listing again"
                    );
                    inner.watch_failed(&gvr);
                    break;
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
