//! The engine in-process, against the embedded test API server: no child process, no Git.

use std::collections::BTreeSet;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value as Json};

use super::*;
use crate::support::testing::{test_api, TestApi};
use crate::sync::apply::Applied;
use crate::sync::object::Scope;
use crate::sync::testing::{
    configmap, namespace, rendered, revision_pass, run_revision, test_engine, test_target,
};

struct Fixture {
    /// Kept running for the test's length.
    _api: TestApi,
    client: kube::Client,
    engine: Engine,
    key: SyncKey,
}

async fn fixture() -> Fixture {
    let api = test_api().await;
    let client = api.client.clone();
    let engine = test_engine(&api);
    Fixture {
        _api: api,
        client,
        engine,
        key: ("apps".to_owned(), "shop".to_owned()),
    }
}

fn widget_crd() -> Json {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]
        }
    })
}

async fn get(
    client: &kube::Client,
    gvk: (&str, &str, &str),
    ns: Option<&str>,
    name: &str,
) -> Option<DynamicObject> {
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(gvk.0, gvk.1, gvk.2));
    let api: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name).await.expect("get")
}

fn revision_crds(objects: &[SyncObject]) -> Vec<Json> {
    objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| o.object.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_with_its_namespace_and_crd_applies_whole_and_again_changes_nothing() {
    let f = fixture().await;
    let actor = Actor::Controller;
    let objects = || {
        vec![
            rendered(
                "widget.yaml",
                json!({"apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w", "namespace": "team"}, "spec": {"size": 3}}),
            ),
            rendered(
                "cm.yaml",
                configmap("team", "settings", json!({"mode": "blue"})),
            ),
            rendered("crd.yaml", widget_crd()),
            rendered("ns.yaml", namespace("team")),
        ]
    };
    let first = objects();
    let crds = revision_crds(&first);
    let progress = Progress::default();
    let synced = f
        .engine
        .run(
            &Target {
                progress: Some(&progress),
                ..test_target(&f.key, &actor)
            },
            revision_pass(),
            first,
            &mut Resolver::default(),
            &crds,
        )
        .await
        .expect("the revision applies");
    assert_eq!(synced.outcome.created, 4, "{:?}", synced.outcome);
    // Progress counted each object's dry-run and write.
    let step = progress.now();
    assert_eq!(
        (step.stage, step.objects, step.validated, step.written),
        (SyncStage::Apply, 4, 4, 4)
    );
    assert_eq!(synced.inventory.entries.len(), 4);
    // Applied in order: the Namespace and the CRD before what needs them.
    let kinds: Vec<&str> = synced
        .objects
        .iter()
        .filter_map(|o| o.what.as_ref().map(|w| w.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "ConfigMap",
            "Widget"
        ]
    );
    // Every object knows its resource now, the Widget's too (served only after the apply).
    assert!(synced
        .objects
        .iter()
        .all(|o| o.scope.as_ref().is_some_and(|s| s.resource.is_some())));
    let widget = get(
        &f.client,
        ("example.com", "v1", "Widget"),
        Some("team"),
        "w",
    )
    .await;
    let labels = widget
        .expect("the Widget")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(
        labels
            .get(sealsync_core::OWNER_NAME_LABEL)
            .map(String::as_str),
        Some("shop")
    );

    let again = objects();
    let crds = revision_crds(&again);
    let synced = f
        .engine
        .run(
            &test_target(&f.key, &actor),
            revision_pass(),
            again,
            &mut Resolver::default(),
            &crds,
        )
        .await
        .expect("the same revision applies");
    assert_eq!(
        (
            synced.outcome.created,
            synced.outcome.configured,
            synced.outcome.unchanged
        ),
        (0, 0, 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_that_fails_leaves_nothing_it_wrote() {
    let f = fixture().await;
    // The Namespace is written in the first stage; the ConfigMap that cannot be stored fails
    // after it, in the last.
    let objects = vec![
        rendered("ns.yaml", namespace("fresh")),
        rendered("good.yaml", configmap("fresh", "good", json!({"k": "v"}))),
        rendered(
            "bad.yaml",
            configmap("fresh", "bad", json!({"k": {"not": "a string"}})),
        ),
    ];
    let failure = run_revision(&f.engine, &f.key, objects)
        .await
        .expect_err("the revision fails");
    assert_eq!(failure.error.reason(), "ApplyFailed", "{}", failure.error);
    assert!(
        failure.error.to_string().contains("bad.yaml"),
        "{}",
        failure.error
    );
    assert!(failure.written.is_empty(), "{:?}", failure.written);
    assert!(
        get(&f.client, ("", "v1", "ConfigMap"), Some("fresh"), "good")
            .await
            .is_none()
    );
    let ns = get(&f.client, ("", "v1", "Namespace"), None, "fresh").await;
    assert!(
        ns.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
        "the Namespace the failed revision created is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_of_objects_writes_each_alone_and_leaves_a_matching_object_alone() {
    let f = fixture().await;
    let actor = Actor::Controller;
    let first = vec![
        rendered("ns.yaml", namespace("apps")),
        rendered(
            "cm.yaml",
            configmap("apps", "settings", json!({"mode": "blue"})),
        ),
    ];
    run_revision(&f.engine, &f.key, first)
        .await
        .expect("applied");
    // A manual edit, then a correction of that one object.
    let api: Api<DynamicObject> = Api::namespaced_with(
        f.client.clone(),
        "apps",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
    );
    api.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"mode": "red"}})),
    )
    .await
    .expect("edit");
    let correction = || {
        let mut object = rendered(
            "cm.yaml",
            configmap("apps", "settings", json!({"mode": "blue"})),
        );
        object.scope = Some(Scope {
            resource: Some(ApiResource::from_gvk(&GroupVersionKind::gvk(
                "",
                "v1",
                "ConfigMap",
            ))),
            namespaced: true,
        });
        vec![object]
    };
    let none = BTreeSet::new();
    let pass = Pass::Objects {
        restart_secrets: &none,
    };
    let synced = f
        .engine
        .run(
            &test_target(&f.key, &actor),
            pass,
            correction(),
            &mut Resolver::default(),
            &[],
        )
        .await
        .expect("corrected");
    assert_eq!(synced.writes.len(), 1);
    assert_eq!(synced.writes[0].applied, Applied::Configured);
    let cm = get(&f.client, ("", "v1", "ConfigMap"), Some("apps"), "settings")
        .await
        .expect("cm");
    assert_eq!(cm.data["data"]["mode"], "blue");
    // Nothing to correct: nothing is written.
    let synced = f
        .engine
        .run(
            &test_target(&f.key, &actor),
            pass,
            correction(),
            &mut Resolver::default(),
            &[],
        )
        .await
        .expect("checked");
    assert_eq!(synced.writes[0].applied, Applied::Unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_secret_is_refused_before_anything_is_written() {
    let f = fixture().await;
    let actor = Actor::Controller;
    let mut strict = test_target(&f.key, &actor);
    strict.allow_plaintext = false;
    let objects = vec![
        rendered("ns.yaml", namespace("apps")),
        rendered(
            "secret.yaml",
            json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "namespace": "apps"}, "stringData": {"password": "canary-8c1f"}}),
        ),
    ];
    let failure = f
        .engine
        .run(
            &strict,
            revision_pass(),
            objects,
            &mut Resolver::default(),
            &[],
        )
        .await
        .expect_err("refused");
    assert_eq!(failure.error.reason(), "DecryptionFailed");
    let message = failure.error.to_string();
    assert!(
        message.contains("stringData.password") && !message.contains("canary-8c1f"),
        "{message}"
    );
    assert!(get(&f.client, ("", "v1", "Namespace"), None, "apps")
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_revision_drops_is_pruned_and_a_namespace_only_orphaned() {
    let f = fixture().await;
    let actor = Actor::Controller;
    let first = vec![
        rendered("ns.yaml", namespace("team")),
        rendered("a.yaml", configmap("team", "a", json!({"k": "v"}))),
        rendered("b.yaml", configmap("team", "b", json!({"k": "v"}))),
    ];
    let applied = run_revision(&f.engine, &f.key, first)
        .await
        .expect("first revision");
    // The next revision keeps only `a`: the Namespace's file and `b` are gone.
    let second = vec![rendered(
        "a.yaml",
        configmap("team", "a", json!({"k": "v"})),
    )];
    let mut resolver = Resolver::default();
    let kept = f
        .engine
        .run(
            &test_target(&f.key, &actor),
            revision_pass(),
            second,
            &mut resolver,
            &[],
        )
        .await
        .expect("second revision");
    let stale = crate::sync::inventory::stale(&applied.inventory, &kept.inventory);
    assert_eq!(stale.len(), 2, "{stale:?}");
    let scope = crate::sync::prune::PruneScope {
        owner_namespace: &f.key.0,
        owner_name: &f.key.1,
        controller_namespace: "sealsync-system",
    };
    let pruned = crate::sync::prune::prune(&f.client, &mut resolver, stale, scope).await;
    assert!(pruned.error.is_none(), "{:?}", pruned.error);
    assert_eq!(pruned.deleted.len(), 1, "{:?}", pruned.deleted);
    assert_eq!(pruned.orphaned.len(), 1, "{:?}", pruned.orphaned);
    assert!(get(&f.client, ("", "v1", "ConfigMap"), Some("team"), "b")
        .await
        .is_none());
    assert!(get(&f.client, ("", "v1", "ConfigMap"), Some("team"), "a")
        .await
        .is_some());
    // Deleting a Namespace deletes everything in it: without `sealsync.dev/prune: enabled` it
    // stays, dropped from the inventory.
    let ns = get(&f.client, ("", "v1", "Namespace"), None, "team")
        .await
        .expect("namespace");
    assert!(ns.metadata.deletion_timestamp.is_none());
}
