//! The Leases this replica runs for: its shard's, and the keys' (shared by every shard).

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::startup::wait_until_owned;
use crate::leader;
use crate::support::metrics::{LeaseLabels, Metrics};
use crate::support::Leading;

/// The elections of this replica.
pub(super) struct Elections {
    client: Client,
    namespace: String,
    identity: String,
    metrics: Arc<Metrics>,
    /// Says that nothing reconciles any more, so that the Leases may be released.
    finished: watch::Receiver<bool>,
    running: Vec<JoinHandle<()>>,
}

impl Elections {
    /// None yet; Leases live in `namespace`.
    pub(super) fn new(
        client: Client,
        namespace: String,
        metrics: Arc<Metrics>,
        finished: watch::Receiver<bool>,
    ) -> Self {
        Self {
            client,
            namespace,
            identity: leader::identity(),
            metrics,
            finished,
            running: Vec::new(),
        }
    }

    /// Runs for the Lease `name`; the receiver says whether this replica holds it, and the
    /// `sealsync_leader` gauge follows it.
    pub(super) fn elect(&mut self, name: String) -> Leading {
        let (tx, rx) = watch::channel(false);
        let gauge = self
            .metrics
            .leader
            .get_or_create(&LeaseLabels {
                lease: name.clone(),
            })
            .clone();
        let mut observed = rx.clone();
        tokio::spawn(async move {
            loop {
                gauge.set(i64::from(*observed.borrow_and_update()));
                if observed.changed().await.is_err() {
                    return;
                }
            }
        });
        let election = leader::Election {
            namespace: self.namespace.clone(),
            name,
            identity: self.identity.clone(),
        };
        self.running.push(tokio::spawn(leader::run(
            self.client.clone(),
            election,
            tx,
            wait_until_owned(self.finished.clone(), true),
        )));
        rx
    }

    /// Waits (briefly) for each election to release its Lease.
    pub(super) async fn release(self) {
        for election in self.running {
            let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
        }
    }
}
