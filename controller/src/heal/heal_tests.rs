//! Self-heal in-process, against the embedded test API server: the registry, its watches
//! and the corrections, as the controller wires them after a full reconcile.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use super::*;
use crate::support::events::EventRecorder;
use crate::support::metrics::KindLabels;
use crate::support::testing::{test_api, TestApi};
use crate::support::Actor;
use crate::sync::engine::Engine;
use crate::sync::testing::{configmap, namespace, rendered, run_revision, test_engine};

struct Healing {
    api: TestApi,
    engine: Engine,
    configmaps: Api<ConfigMap>,
}

/// Applies a Namespace and a ConfigMap as a full reconcile does, then hands them to a
/// healer whose corrections run in the background.
async fn applied_and_healed() -> Healing {
    let api = test_api().await;
    let engine = test_engine(&api);
    let key: SyncKey = ("apps".to_owned(), "shop".to_owned());
    let actor = Actor::Controller;
    let handover = apply_settings(&engine, &key).await;
    let (healer, queue) = Healer::new(
        api.client.clone(),
        Arc::clone(&engine.metrics),
        Duration::from_secs(3600),
    );
    let corrections = Arc::new(Corrections {
        engine: engine.clone(),
        healer: healer.clone(),
        metrics: Arc::clone(&engine.metrics),
        recorder: Arc::new(EventRecorder::new(
            api.client.clone(),
            "sealsync-controller",
            None,
        )),
        notify: crate::notify::Notifications::disabled(Arc::clone(&engine.metrics)),
        status: Arc::new(crate::status::StatusWriter::new(api.client.clone())),
    });
    tokio::spawn(run_corrections(corrections, queue));
    let spec = HealSpec {
        uid: "0b5e7a1c-0000-4000-8000-000000000001".to_owned(),
        generation: Some(1),
        revision: "main@sha1:1".to_owned(),
        force: false,
        allow_plaintext: true,
        default_namespace: "apps".to_owned(),
        actor,
    };
    healer.record(&key, spec, handover, true);
    let configmaps = Api::namespaced(api.client.clone(), "apps");
    Healing {
        api,
        engine,
        configmaps,
    }
}

/// Applies a Namespace and the ConfigMap `settings` as a full reconcile does: what it hands
/// self-heal.
async fn apply_settings(
    engine: &Engine,
    key: &SyncKey,
) -> (Vec<Arc<TrackedSource>>, Vec<(String, Fingerprint)>) {
    let objects = vec![
        rendered("ns.yaml", namespace("apps")),
        rendered(
            "cm.yaml",
            configmap("apps", "settings", json!({"mode": "blue"})),
        ),
    ];
    let synced = run_revision(engine, key, objects)
        .await
        .expect("the revision applies");
    let observed = synced.outcome.observed.clone();
    let sources = synced
        .objects
        .into_iter()
        .filter_map(TrackedSource::applied)
        .map(Arc::new)
        .collect();
    (sources, observed)
}

async fn mode(configmaps: &Api<ConfigMap>) -> Option<String> {
    let live = configmaps.get_opt("settings").await.expect("read")?;
    live.data?.get("mode").cloned()
}

/// Changes the value as a person with kubectl would, by a PUT: the controller's own writes
/// are server-side apply PATCHes, so faults injected on PATCH reach only the controller.
async fn edit(configmaps: &Api<ConfigMap>, value: &str) {
    let mut live = configmaps.get("settings").await.expect("read");
    live.data
        .get_or_insert_with(Default::default)
        .insert("mode".to_owned(), value.to_owned());
    let params = PostParams {
        field_manager: Some("kubectl-edit".to_owned()),
        ..PostParams::default()
    };
    configmaps
        .replace("settings", &params, &live)
        .await
        .expect("edit");
}

/// Waits (bounded) until the ConfigMap holds the manifest's value again.
async fn undone(configmaps: &Api<ConfigMap>, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while mode(configmaps).await.as_deref() != Some("blue") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} was not undone within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn corrections(engine: &Engine) -> u64 {
    engine
        .metrics
        .drift_corrections
        .get_or_create(&KindLabels {
            kind: "ConfigMap".to_owned(),
        })
        .get()
}

#[tokio::test]
async fn an_edit_a_deletion_and_an_edit_after_dropped_watches_are_undone() {
    let h = applied_and_healed().await;

    edit(&h.configmaps, "red").await;
    undone(&h.configmaps, "an edit").await;

    h.configmaps
        .delete("settings", &DeleteParams::default())
        .await
        .expect("delete");
    undone(&h.configmaps, "a deletion").await;

    // The server ends every watch; they resume, and drift is still caught.
    h.api.server.drop_watches();
    edit(&h.configmaps, "yellow").await;
    undone(&h.configmaps, "an edit after dropped watches").await;

    assert_eq!(corrections(&h.engine), 3, "one correction per drift");
}

/// A correction that fails at the API server is retried; the object ends as the manifest says.
#[tokio::test]
async fn a_correction_refused_by_the_api_server_is_retried() {
    let h = applied_and_healed().await;
    h.api
        .server
        .fail_next(2, Some("PATCH"), "/api/v1/namespaces/apps/configmaps", 500);
    edit(&h.configmaps, "red").await;
    undone(&h.configmaps, "an edit whose first corrections failed").await;
    assert_eq!(corrections(&h.engine), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_revision_does_not_restart_the_full_resync_period() {
    let api = test_api().await;
    let engine = test_engine(&api);
    let key: SyncKey = ("apps".to_owned(), "shop".to_owned());
    let (sources, observed) = apply_settings(&engine, &key).await;
    let full_resync = Duration::from_secs(3);
    let (healer, _queue) =
        Healer::new(api.client.clone(), Arc::clone(&engine.metrics), full_resync);
    let spec = HealSpec {
        uid: "0b5e7a1c-0000-4000-8000-000000000002".to_owned(),
        generation: Some(1),
        revision: "main@sha1:1".to_owned(),
        force: false,
        allow_plaintext: true,
        default_namespace: "apps".to_owned(),
        actor: Actor::Controller,
    };
    let record = |planned_fully: bool| {
        healer.record(
            &key,
            spec.clone(),
            (sources.clone(), observed.clone()),
            planned_fully,
        );
    };
    let armed = || healer.armed(&key, Some(1), "main@sha1:1");
    record(true);
    let started = tokio::time::Instant::now();
    while armed().is_err() {
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", armed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Incremental revisions come and go; the period runs from the last full plan.
    tokio::time::sleep(Duration::from_millis(1600)).await;
    record(false);
    assert_eq!(armed(), Ok(()));
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(armed(), Err("the full-resync period passed"));
    // A full plan restarts it.
    record(true);
    assert_eq!(armed(), Ok(()));
}
