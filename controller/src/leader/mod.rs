//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! does it: optimistic writes guarded by `resourceVersion`, expiry judged by the local clock
//! from when the lease record was last seen to change (so clock skew between nodes does not
//! matter), and a leader that cannot renew within the renew deadline stops leading.
//!
//! kube-lease-manager was evaluated and not used: a leader whose renewals fail keeps
//! reporting itself leader past its lease's expiry, and expiry is computed from the holder's
//! `renewTime` against the local clock, so skew between nodes shortens or stretches leases.

pub(crate) mod standby;

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use sealsync_core::Chain;
use tokio::sync::watch;

/// How long a lease is valid after its last renewal (client-go's default).
pub(crate) const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How long a leader may go without renewing before it stops leading; shorter than the lease,
/// so that it stops before a standby may take over.
pub(crate) const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a leader renews and a standby looks.
pub(crate) const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// One Lease to compete for.
#[derive(Debug, Clone)]
pub(crate) struct Election {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// Who this process is in `spec.holderIdentity`: unique per process.
    pub identity: String,
}

pub(crate) use crate::support::Leading;

/// A receiver that always says "leading", for a controller run without leader election.
pub(crate) fn always() -> Leading {
    let (tx, rx) = watch::channel(true);
    // Kept alive for the process' lifetime: a dropped sender would end `changed()` loops.
    std::mem::forget(tx);
    rx
}

/// This process' identity in Leases: the pod's name (or the host's), the process id and the
/// start time, so that a restarted container never mistakes an old record for its own.
pub(crate) fn identity() -> String {
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "sealsync-controller".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{host}_{}_{started:x}", std::process::id())
}

/// The Lease of one shard: the base name alone without a selector, else the base name and a
/// digest of the selector, so that each shard elects its own leader (as Flux names its
/// shards' leases).
pub(crate) fn lease_name(base: &str, selector: Option<&str>) -> String {
    match selector.map(str::trim).filter(|s| !s.is_empty()) {
        None => base.to_owned(),
        Some(selector) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, selector.as_bytes());
            let hex: String = digest.as_ref()[..4]
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{base}-{hex}")
        }
    }
}

/// Competes for the lease until `stop` resolves, then releases it if held. `leading` is set
/// to `true` once the lease is acquired and to `false` when it is lost.
pub(crate) async fn run(
    client: Client,
    election: Election,
    leading: watch::Sender<bool>,
    stop: impl std::future::Future<Output = ()>,
) {
    let api: Api<Lease> = Api::namespaced(client, &election.namespace);
    let mut elector = Elector {
        api,
        election,
        observed: None,
        last_renewed: None,
    };
    tokio::pin!(stop);
    loop {
        let held = elector.try_acquire_or_renew().await;
        let was_leading = *leading.borrow();
        let now_leading = leads_after(
            matches!(held, Ok(true)),
            was_leading,
            elector.last_renewed,
            Instant::now(),
        );
        if let Err(e) = &held {
            tracing::warn!(lease = %elector.election.name, error = %Chain(&e), "leader election: could not read or write the Lease");
        }
        if now_leading != was_leading {
            if now_leading {
                tracing::info!(lease = %elector.election.name, identity = %elector.election.identity, "leader election: became the leader");
            } else {
                tracing::error!(lease = %elector.election.name, "leader election: lost the lease");
                elector.last_renewed = None;
            }
            leading.send_replace(now_leading);
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(jittered(RETRY_PERIOD, now_leading)) => {}
        }
    }
    if *leading.borrow() {
        match elector.release().await {
            Ok(()) => {
                tracing::info!(lease = %elector.election.name, "leader election: released the lease")
            }
            Err(e) => {
                tracing::warn!(lease = %elector.election.name, error = %Chain(&e), "leader election: could not release the lease; it expires on its own")
            }
        }
        leading.send_replace(false);
    }
}

/// Whether this process leads after an attempt to acquire or renew at `now`: it does when the
/// attempt succeeded; a leader whose renewal failed (an error, or another writer won) keeps
/// leading only until the renew deadline after its last renewal, as client-go's leader does.
fn leads_after(
    renewed: bool,
    was_leading: bool,
    last_renewed: Option<Instant>,
    now: Instant,
) -> bool {
    match last_renewed {
        _ if renewed => true,
        Some(at) if was_leading => now.saturating_duration_since(at) < RENEW_DEADLINE,
        _ => false,
    }
}

/// Standbys look a little later than every retry period, so that they do not all write at
/// once when the lease frees up; the leader renews on time.
fn jittered(period: Duration, leading: bool) -> Duration {
    if leading {
        return period;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    period + Duration::from_millis(u64::from(nanos % 1_000_000) * 1_200 / 1_000_000)
}

struct Elector {
    api: Api<Lease>,
    election: Election,
    /// The lease record last seen, and when it was first seen: expiry counts from then on
    /// this process' own clock.
    observed: Option<(LeaseSpec, Instant)>,
    /// When this process last renewed its lease.
    last_renewed: Option<Instant>,
}

impl Elector {
    /// Takes the lease when free or expired, renews it when held; `Ok(false)` when another
    /// holder's lease is valid or another candidate won the write.
    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let me = self.election.identity.clone();
        let duration_seconds = LEASE_DURATION.as_secs() as i32;
        let Some(mut lease) = self.api.get_opt(&self.election.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.election.name.clone()),
                    namespace: Some(self.election.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(duration_seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.renewed(created.spec.unwrap_or_default());
                    Ok(true)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(s, _)| s) != Some(&spec) {
            self.observed = Some((spec.clone(), Instant::now()));
        }
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let held_by_me = holder.as_deref() == Some(me.as_str());
        if let (Some(_), false) = (&holder, held_by_me) {
            let valid_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            );
            let seen = self
                .observed
                .as_ref()
                .map_or_else(Instant::now, |(_, at)| *at);
            if seen.elapsed() < valid_for {
                return Ok(false);
            }
        }
        let mut next = spec.clone();
        if !held_by_me {
            next.acquire_time = Some(now.clone());
            next.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        next.holder_identity = Some(me);
        next.lease_duration_seconds = Some(duration_seconds);
        next.renew_time = Some(now);
        lease.spec = Some(next);
        // The resourceVersion read above makes this write fail if anyone wrote in between.
        match self
            .api
            .replace(&self.election.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                self.renewed(written.spec.unwrap_or_default());
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn renewed(&mut self, spec: LeaseSpec) {
        let now = Instant::now();
        self.observed = Some((spec, now));
        self.last_renewed = Some(now);
    }

    /// Frees the lease for a standby at once: an empty holder, as client-go's
    /// `ReleaseOnCancel` leaves it.
    async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.election.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.election.identity.as_str()) {
            return Ok(());
        }
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..spec
        });
        self.api
            .replace(&self.election.name, &PostParams::default(), &lease)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "elector_tests.rs"]
mod elector_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_whose_renewals_fail_stops_at_the_renew_deadline() {
        let renewed_at = Instant::now();
        let after = |secs: u64| renewed_at + Duration::from_secs(secs);
        assert!(leads_after(true, false, None, renewed_at));
        assert!(leads_after(true, true, Some(renewed_at), after(60)));
        // Failed renewals: still leading within the deadline, not after it.
        assert!(leads_after(false, true, Some(renewed_at), after(9)));
        assert!(!leads_after(false, true, Some(renewed_at), after(10)));
        // A standby never leads by a failed attempt.
        assert!(!leads_after(false, false, Some(renewed_at), after(1)));
        assert!(!leads_after(false, true, None, after(1)));
    }

    #[test]
    fn each_shard_has_its_own_lease() {
        assert_eq!(
            lease_name("sealsync-controller", None),
            "sealsync-controller"
        );
        assert_eq!(
            lease_name("sealsync-controller", Some("")),
            "sealsync-controller"
        );
        let a = lease_name("sealsync-controller", Some("sealsync.dev/shard=a"));
        let b = lease_name("sealsync-controller", Some("sealsync.dev/shard=b"));
        assert_ne!(a, b);
        assert!(
            a.starts_with("sealsync-controller-") && a.len() == "sealsync-controller-".len() + 8
        );
    }

    #[test]
    fn identities_differ_between_processes_of_one_pod() {
        let first = identity();
        std::thread::sleep(Duration::from_millis(2));
        assert_ne!(first, identity());
    }
}
