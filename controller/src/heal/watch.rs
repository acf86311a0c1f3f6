//! One metadata-only watch per resource in use, filtered by the owner label.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DynamicObject, PartialObjectMeta};
use kube::core::ApiResource;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use sealsync_core::Chain;
use sealsync_core::OWNER_NAME_LABEL;

use super::Inner;
use crate::support::metrics::WatchLabels;
use crate::support::retry::Backoff;
use crate::support::Gvr;

/// How soon a failed watch lists again.
const WATCH_RESTART: Backoff =
    Backoff::new(Duration::from_millis(500), 2.0, Duration::from_secs(30)).jittered();

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
    let mut failures = 0;
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
                    failures = 0;
                }
                Ok(Event::Apply(object)) => inner.observe(&gvr, &object.metadata, false, false),
                Ok(Event::Delete(object)) => inner.observe(&gvr, &object.metadata, true, false),
                Err(e) => {
                    tracing::warn!(
                        resource = %resource.plural,
                        group = %resource.group,
                        error = %Chain(&e),
                        retry_in = ?WATCH_RESTART.delay(failures + 1),
                        "self-heal watch failed; listing again"
                    );
                    inner.watch_failed(&gvr);
                    break;
                }
            }
        }
        failures += 1;
        tokio::time::sleep(WATCH_RESTART.delay(failures)).await;
    }
}
