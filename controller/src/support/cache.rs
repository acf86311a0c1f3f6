//! Whether a reflector's cache has listed once.
//!
//! `Store::wait_until_ready` wakes only the last task that polled it (its one-shot channel
//! keeps one waker), so tasks that share a cache ask here instead.

use std::time::Duration;

use futures::FutureExt;
use kube::runtime::reflector::Store;

/// Whether `store` has listed once, without waiting.
pub(crate) fn listed<K: kube::Resource + Clone + 'static>(store: &Store<K>) -> bool
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// Waits until `store` has listed once.
pub(crate) async fn until_listed<K: kube::Resource + Clone + 'static>(store: &Store<K>)
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    while !listed(store) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
