//! The elector against the embedded test API server, with faults injected: who holds the
//! Lease, hand-over on release, expiry on the local clock, and failed or lost renewals.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};

use super::*;
use crate::support::testing::{test_api, TestApi};

const NS: &str = "leader";
const LEASE: &str = "sealsync-test";

async fn setup() -> TestApi {
    let api = test_api().await;
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(NS.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(api.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("namespace");
    api
}

fn elector(client: &Client, identity: &str) -> Elector {
    Elector {
        api: Api::namespaced(client.clone(), NS),
        election: Election {
            namespace: NS.to_owned(),
            name: LEASE.to_owned(),
            identity: identity.to_owned(),
        },
        observed: None,
        last_renewed: None,
    }
}

async fn lease(client: &Client) -> LeaseSpec {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .expect("spec")
}

fn lease_path() -> String {
    format!("/apis/coordination.k8s.io/v1/namespaces/{NS}/leases")
}

#[tokio::test]
async fn one_candidate_leads_and_its_release_hands_over_at_once() {
    let api = setup().await;
    let mut a = elector(&api.client, "a");
    let mut b = elector(&api.client, "b");
    assert!(a.try_acquire_or_renew().await.expect("a acquires"));
    assert!(!b.try_acquire_or_renew().await.expect("b looks"));
    assert!(a.try_acquire_or_renew().await.expect("a renews"));
    assert_eq!(
        lease(&api.client).await.holder_identity.as_deref(),
        Some("a")
    );

    a.release().await.expect("release");
    let released = lease(&api.client).await;
    assert_eq!(released.holder_identity, None);
    // No wait for the lease's duration: the freed lease is taken on the next look.
    assert!(b.try_acquire_or_renew().await.expect("b acquires"));
    let taken = lease(&api.client).await;
    assert_eq!(taken.holder_identity.as_deref(), Some("b"));
    assert_eq!(taken.lease_transitions, Some(1));
    assert!(!a.try_acquire_or_renew().await.expect("a looks"));
    // Releasing a lease one does not hold changes nothing.
    a.release().await.expect("release by a non-holder");
    assert_eq!(
        lease(&api.client).await.holder_identity.as_deref(),
        Some("b")
    );
}

/// A holder that died leaves its record; the standby takes it once the record has not changed
/// for its duration on the standby's own clock, whatever `renewTime` claims (a holder whose
/// clock runs an hour ahead does not keep it).
#[tokio::test]
async fn a_dead_holders_lease_expires_on_the_local_clock() {
    let api = setup().await;
    let ahead = k8s_openapi::jiff::Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_hours(1))
        .expect("time");
    let record = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.to_owned()),
            namespace: Some(NS.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("gone".to_owned()),
            lease_duration_seconds: Some(1),
            renew_time: Some(MicroTime(ahead)),
            ..LeaseSpec::default()
        }),
    };
    Api::<Lease>::namespaced(api.client.clone(), NS)
        .create(&PostParams::default(), &record)
        .await
        .expect("the dead holder's lease");
    let mut b = elector(&api.client, "b");
    assert!(!b.try_acquire_or_renew().await.expect("first look"));
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert!(b.try_acquire_or_renew().await.expect("second look"));
    assert_eq!(
        lease(&api.client).await.holder_identity.as_deref(),
        Some("b")
    );
}

#[tokio::test]
async fn failed_and_lost_renewals_are_told_apart() {
    let api = setup().await;
    let mut a = elector(&api.client, "a");
    assert!(a.try_acquire_or_renew().await.expect("acquire"));
    let renewed = a.last_renewed.expect("renewed");

    // The API server fails: an error, and the last renewal stays as it was.
    api.server.fail_next(1, Some("PUT"), &lease_path(), 500);
    assert!(a.try_acquire_or_renew().await.is_err());
    api.server.fail_next(1, Some("GET"), &lease_path(), 500);
    assert!(a.try_acquire_or_renew().await.is_err());
    assert_eq!(a.last_renewed, Some(renewed));
    // A lone 503 is retried by the client itself: the renewal goes through.
    api.server.fail_next(1, Some("GET"), &lease_path(), 503);
    assert!(a.try_acquire_or_renew().await.expect("renew after a 503"));
    let renewed = a.last_renewed.expect("renewed");

    // Another writer won the write (409): not leading by this attempt, and no error.
    api.server.fail_next(1, Some("PUT"), &lease_path(), 409);
    assert!(!a.try_acquire_or_renew().await.expect("a lost write"));

    // The API server is back: the renewal goes through.
    assert!(a.try_acquire_or_renew().await.expect("renew"));
    assert!(a.last_renewed > Some(renewed));
}
