//! What an incremental revision carries over and what it plans, without a cluster.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::ObjectMeta;
use kube::core::{ApiResource, GroupVersionKind};
use sealsync_core::{GitSync, GitSyncSpec, GitSyncStatus};
use serde_json::{json, Value as Json};

use super::*;
use crate::heal::{AppliedObject, TrackedSource};
use crate::support::Fingerprint;
use crate::sync::testing::{configmap, namespace, rendered};

fn gitsync() -> GitSync {
    let spec: GitSyncSpec =
        serde_json::from_value(json!({"url": "git://example.invalid/r.git", "interval": "1m"}))
            .expect("spec");
    let mut gs = GitSync::new("team", spec);
    gs.status = Some(GitSyncStatus::default());
    gs
}

/// An object of the applied revision, as self-heal knows it.
fn applied(file: &str, object: &Json) -> AppliedObject {
    let manifest = rendered(file, object.clone()).manifest.clone();
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let namespace = object["metadata"]["namespace"].as_str().map(str::to_owned);
    AppliedObject {
        source: Arc::new(TrackedSource {
            id: crate::sync::inventory::entry_of(object).id,
            resource: ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind)),
            namespaced: namespace.is_some(),
            namespace,
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            file: file.to_owned(),
            document: "document 1".to_owned(),
            manifest,
        }),
        synced: Fingerprint::of(&ObjectMeta::default()),
    }
}

fn kept(files: &[(&str, usize)]) -> KeptFiles {
    KeptFiles {
        paths: files.iter().map(|(p, n)| ((*p).to_owned(), *n)).collect(),
        kept: Kept::new(files.len(), 100, files.iter().map(|(_, n)| n).sum()),
    }
}

fn cm(name: &str, value: &str) -> Json {
    configmap("team", name, json!({"value": value}))
}

fn names(objects: &[SyncObject]) -> Vec<&str> {
    objects
        .iter()
        .map(|o| o.object["metadata"]["name"].as_str().unwrap_or_default())
        .collect()
}

fn crd(name: &str) -> Json {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": name}, "spec": {}})
}

#[test]
fn kept_files_are_carried_whole_and_only_changed_objects_of_read_files_are_planned() {
    let applied = vec![
        applied("a.yaml", &cm("a", "1")),
        applied("b.yaml", &cm("b1", "1")),
        applied("b.yaml", &cm("b2", "1")),
        applied("c.yaml", &cm("c", "1")),
    ];
    // a.yaml kept; b.yaml read (b2 changed); c.yaml gone; d.yaml new.
    let mut objects = vec![
        rendered("b.yaml", cm("b1", "1")),
        rendered("b.yaml", cm("b2", "2")),
        rendered("d.yaml", cm("d", "1")),
    ];
    let carried =
        split(&gitsync(), applied, &kept(&[("a.yaml", 1)]), &mut objects).expect("incremental");
    assert_eq!(names(&objects), ["b2", "d"]);
    let mut ids: Vec<&str> = carried.entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["team_a__ConfigMap", "team_b1__ConfigMap"]);
    assert_eq!(carried.sources.len(), 2);
    assert_eq!(carried.observed.len(), 2);
    let index = carried.index();
    assert_eq!(
        index.location_of("team_a__ConfigMap").as_deref(),
        Some("a.yaml: document 1")
    );
    assert_eq!(index.location_of("team_d__ConfigMap"), None);
}

#[test]
fn a_kept_file_whose_objects_are_not_all_watched_is_not_trusted() {
    let applied = vec![applied("a.yaml", &cm("a", "1"))];
    let mut objects = vec![rendered("b.yaml", cm("b", "1"))];
    let error = split(&gitsync(), applied, &kept(&[("a.yaml", 2)]), &mut objects)
        .expect_err("an object of a.yaml is missing");
    assert_eq!(error, "an object of an unchanged file is not watched");
    assert_eq!(objects.len(), 1, "nothing is taken out");
}

#[test]
fn a_definition_added_changed_or_removed_plans_everything_and_a_kept_one_does_not() {
    let base = || {
        vec![
            applied("crd.yaml", &crd("widgets.example.dev")),
            applied("ns.yaml", &namespace("team")),
            applied("a.yaml", &cm("a", "1")),
        ]
    };
    // Kept: the CRD and the Namespace are carried over.
    let mut objects = vec![rendered("a.yaml", cm("a", "2"))];
    let kept_both = kept(&[("crd.yaml", 1), ("ns.yaml", 1)]);
    split(&gitsync(), base(), &kept_both, &mut objects).expect("incremental");
    assert_eq!(names(&objects), ["a"]);
    // Changed in a file that was read.
    let mut changed = crd("widgets.example.dev");
    changed["spec"] = json!({"group": "example.dev"});
    let mut objects = vec![rendered("crd.yaml", changed)];
    let error =
        split(&gitsync(), base(), &kept(&[("ns.yaml", 1)]), &mut objects).expect_err("changed CRD");
    assert_eq!(error, "a CustomResourceDefinition or Namespace changed");
    // Removed with its file.
    let mut objects = vec![rendered("a.yaml", cm("a", "2"))];
    let error = split(&gitsync(), base(), &kept(&[("crd.yaml", 1)]), &mut objects)
        .expect_err("removed Namespace");
    assert_eq!(error, "a CustomResourceDefinition or Namespace changed");
}

#[test]
fn a_secret_with_vault_references_is_planned_even_when_unchanged() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db", "namespace": "team"},
        "stringData": {"password": "ref+vault://secret/team/db#password"}});
    let applied = vec![
        applied("db.yaml", &secret),
        applied("a.yaml", &cm("a", "1")),
    ];
    let mut objects = vec![
        rendered("db.yaml", secret.clone()),
        rendered("a.yaml", cm("a", "1")),
    ];
    let carried = split(&gitsync(), applied, &kept(&[]), &mut objects).expect("incremental");
    assert_eq!(names(&objects), ["db"]);
    assert_eq!(carried.entries.len(), 1);

    // Its file is never kept: the next fetch reads it again.
    let objects = vec![
        rendered("db.yaml", secret),
        rendered("a.yaml", cm("a", "1")),
    ];
    let census = Census::of(&objects);
    let blob = |n: u8| gix::ObjectId::from_bytes_or_panic(&[n; 20]);
    let blobs: HashMap<String, gix::ObjectId> = [
        ("db.yaml".to_owned(), blob(1)),
        ("a.yaml".to_owned(), blob(2)),
    ]
    .into_iter()
    .collect();
    let index = census.index_of(&gitsync(), "main@sha1:1", &[], &blobs, None);
    assert_eq!(index.blobs.keys().collect::<Vec<_>>(), ["a.yaml"]);
    assert_eq!(index.objects.get("db.yaml"), Some(&1));
}

#[test]
fn the_index_of_an_incremental_revision_keeps_the_counts_of_the_files_it_did_not_read() {
    let blob = |n: u8| gix::ObjectId::from_bytes_or_panic(&[n; 20]);
    let previous = FileIndex {
        revision: "main@sha1:1".to_owned(),
        generation: Some(1),
        blobs: Arc::new(
            [
                ("a.yaml".to_owned(), blob(1)),
                ("b.yaml".to_owned(), blob(2)),
            ]
            .into_iter()
            .collect(),
        ),
        objects: [("a.yaml".to_owned(), 3), ("b.yaml".to_owned(), 1)]
            .into_iter()
            .collect(),
    };
    // b.yaml was read (now two objects); a.yaml kept.
    let census = Census::of(&[
        rendered("b.yaml", cm("b1", "1")),
        rendered("b.yaml", cm("b2", "1")),
    ]);
    let kept_files = [KeptFile {
        path: "a.yaml".to_owned(),
        blob: blob(1),
        bytes: 10,
    }];
    let blobs: HashMap<String, gix::ObjectId> = [
        ("a.yaml".to_owned(), blob(1)),
        ("b.yaml".to_owned(), blob(3)),
    ]
    .into_iter()
    .collect();
    let index = census.index_of(
        &gitsync(),
        "main@sha1:2",
        &kept_files,
        &blobs,
        Some(&previous),
    );
    assert_eq!(index.revision, "main@sha1:2");
    assert_eq!(index.objects.get("a.yaml"), Some(&3));
    assert_eq!(index.objects.get("b.yaml"), Some(&2));
    assert_eq!(index.blobs.get("b.yaml"), Some(&blob(3)));
}
