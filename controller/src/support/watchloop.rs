//! A watch that never ends: a fresh watcher lists before it watches, so whatever changed while
//! the last one was down is found by comparing the list; a failed one lists again after a
//! jittered backoff, counted in `sealsync_watch_restarts_total`. Self-heal's metadata watches
//! and the health watches run on it.

use std::fmt::Debug;
use std::time::Duration;

use futures::StreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use sealsync_core::Chain;
use serde::de::DeserializeOwned;

use super::metrics::{Metrics, WatchLabels};
use super::retry::Backoff;

/// How soon a failed watch lists again.
const RESTART: Backoff =
    Backoff::new(Duration::from_millis(500), 2.0, Duration::from_secs(30)).jittered();

/// Follows `api` with `config` until the task is aborted, handing every event to `on_event`
/// and each failure to `on_failure` (before it lists again). `what` names the
/// watch in the log; `plural` in the metric.
pub(crate) async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    (what, plural): (&str, &str),
    metrics: &Metrics,
    mut on_event: impl FnMut(Event<K>),
    mut on_failure: impl FnMut(&watcher::Error),
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut failures = 0;
    let mut first = true;
    loop {
        let mut stream = watcher::watcher(api.clone(), config.clone()).boxed();
        if !first {
            metrics
                .watch_restarts
                .get_or_create(&WatchLabels {
                    resource: plural.to_owned(),
                })
                .inc();
        }
        first = false;
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => {
                    if matches!(event, Event::InitDone) {
                        failures = 0;
                    }
                    on_event(event);
                }
                Err(e) => {
                    tracing::warn!(
                        resource = %plural,
                        error = %Chain(&e),
                        retry_in = ?RESTART.delay(failures + 1),
                        "{what} failed; listing again"
                    );
                    on_failure(&e);
                    break;
                }
            }
        }
        failures += 1;
        tokio::time::sleep(RESTART.delay(failures)).await;
    }
}
