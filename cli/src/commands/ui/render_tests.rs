//! The pages rendered from hostile cluster data: every name, message and revision is text,
//! never markup, and no Secret value can be on a page because none is ever held.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use sealsync_core::health::Health;
use sealsync_core::inventory::InventoryEntry;
use sealsync_core::{GitSync, GitSyncStatus, SealedSecretUsage};

use super::cache::Access;
use super::objects_view::{Group, GroupState, ObjectsView};
use super::state::{EventRow, Scope, State};
use super::{page_gitsync, page_gitsyncs};

const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'&";

fn hostile_gitsync() -> GitSync {
    let spec = serde_json::from_value(serde_json::json!({
        "url": "https://github.com/acme/shop.git",
        "interval": "1m",
        "path": HOSTILE,
    }))
    .expect("spec");
    let mut gs = GitSync::new("web", spec);
    gs.metadata.namespace = Some("shop".to_owned());
    gs.status = Some(GitSyncStatus {
        conditions: vec![Condition {
            type_: "Ready".to_owned(),
            status: "False".to_owned(),
            reason: HOSTILE.to_owned(),
            message: format!("app/{HOSTILE}.yaml: tampered"),
            last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }],
        last_applied_revision: Some(format!("{HOSTILE}@sha1:{HOSTILE}")),
        last_attempted_revision: Some(
            "main@sha1:5d1e2a0b9c8f7e6d5c4b3a291807f6e5d4c3b2a1".to_owned(),
        ),
        sealed_secrets: vec![SealedSecretUsage {
            file: HOSTILE.to_owned(),
            secret: "shop/db".to_owned(),
            key_ids: vec![HOSTILE.to_owned()],
        }],
        vault_secrets: vec!["shop/api".to_owned()],
        drift_corrections: 3,
        ..GitSyncStatus::default()
    });
    gs
}

fn assert_inert(page: &str) {
    assert!(!page.contains("<img"), "{page}");
    assert!(!page.contains("onerror=alert(1)>"), "{page}");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
}

#[tokio::test]
async fn hostile_names_messages_and_revisions_stay_text() {
    let state = State::for_tests(Scope::All);
    let gs = Arc::new(hostile_gitsync());
    state.gitsyncs.set(
        BTreeMap::from([(("shop".to_owned(), "web".to_owned()), gs.clone())]),
        Access::Ready,
    );
    state.events.set(
        BTreeMap::from([(
            ("shop".to_owned(), "e1".to_owned()),
            EventRow {
                gitsync: ("shop".to_owned(), "web".to_owned()),
                warning: true,
                reason: "DriftCorrected".to_owned(),
                message: HOSTILE.to_owned(),
                count: 3,
                last: "2026-12-07T10:00:00Z".to_owned(),
            },
        )]),
        Access::Ready,
    );
    let list = page_gitsyncs::render(&state).html();
    assert_inert(&list);
    assert!(list.contains("<td class=\"drift\">3</td>"), "{list}");
    // A revision that is not `<ref>@sha1:<hex>` is never linked.
    assert!(
        !list.contains("href=\"https://github.com/acme/shop/commit/&lt;"),
        "{list}"
    );
    assert!(
        list.contains("https://github.com/acme/shop/commit/5d1e2a0b9c8f"),
        "{list}"
    );

    let secret = |name: &str| InventoryEntry::new(Some("shop"), name, "", "Secret", "v1");
    let view = ObjectsView::fixed(
        vec![secret("db"), secret("api"), secret(HOSTILE)],
        BTreeMap::from([(
            Group {
                group: String::new(),
                version: "v1".to_owned(),
                kind: "Secret".to_owned(),
                namespace: Some("shop".to_owned()),
            },
            (
                vec!["db".to_owned(), "api".to_owned(), HOSTILE.to_owned()],
                GroupState {
                    access: Access::Ready,
                    health: HashMap::from([
                        ("db".to_owned(), Health::Current),
                        ("api".to_owned(), Health::Failed(HOSTILE.to_owned())),
                    ]),
                },
            ),
        )]),
    );
    let page = page_gitsync::render(&state, &gs, &view).html();
    assert_inert(&page);
    let row = |name: &str| {
        page.lines()
            .find(|l| l.contains(&format!("data-object=\"Secret/{name}\"")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        row("db").contains(">sealed<") && !row("db").contains(">Vault<"),
        "{page}"
    );
    assert!(
        row("api").contains(">Vault<") && row("api").contains("Failed"),
        "{page}"
    );
    assert!(
        page.contains("Missing"),
        "an object not in the cluster is said to be missing"
    );
    assert!(page.contains("name=\"csrf\" value=\"token\""), "{page}");
}

#[tokio::test]
async fn a_refused_list_says_forbidden_and_shows_nothing() {
    let state = State::for_tests(Scope::Namespace {
        name: "shop".to_owned(),
        why: Some("gitsyncs is forbidden at the cluster scope".to_owned()),
    });
    let gs = Arc::new(hostile_gitsync());
    state.gitsyncs.set(
        BTreeMap::from([(("shop".to_owned(), "web".to_owned()), gs)]),
        Access::Forbidden("user cannot list gitsyncs".to_owned()),
    );
    let list = page_gitsyncs::render(&state).html();
    assert!(
        list.contains("forbidden: you may not list GitSyncs here"),
        "{list}"
    );
    assert!(list.contains("every namespace is forbidden"), "{list}");
    assert!(!list.contains("data-gitsync"), "{list}");
}
