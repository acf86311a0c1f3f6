//! A large inventory kept in ConfigMaps, through the real controller: the status names them
//! and vouches for them, a revision replaces only what changed, a restart reads them back,
//! nothing is pruned on the word of a ConfigMap someone changed, and they go with the
//! GitSync. The controller runs with `--inventory-inline-entries=4`, so ten objects are
//! "large".

mod controller_common;

use std::time::Duration;

use controller_common::*;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Where the GitSync lives (created by an administrator, not in Git).
const PLATFORM: &str = "platform";
/// The namespace the repository declares.
const TEAM: &str = "team";

/// The Namespace and one ConfigMap per file (`cm-NN.yaml`) for each number in `numbers`.
fn tree(numbers: &[usize]) -> Vec<(String, String)> {
    let mut files = vec![(
        "team/ns.yaml".to_owned(),
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TEAM}\n"),
    )];
    for n in numbers {
        files.push((
            format!("team/cm-{n:02}.yaml"),
            configmap_yaml(TEAM, &format!("cm-{n:02}"), "value", &format!("v{n}")),
        ));
    }
    files
}

fn ids(numbers: &[usize]) -> Vec<String> {
    let mut ids: Vec<String> = numbers
        .iter()
        .map(|n| format!("{TEAM}_cm-{n:02}__ConfigMap"))
        .collect();
    ids.push(format!("_{TEAM}__Namespace"));
    ids.sort();
    ids
}

/// A controller, and a GitSync that has applied ten ConfigMaps and their Namespace.
async fn ten_applied() -> (Env, Vec<usize>) {
    let env = Env::start_with(
        &[PLATFORM],
        &["--inventory-inline-entries=4".to_owned()],
        &[],
    )
    .await;
    let numbers: Vec<usize> = (0..10).collect();
    let first = env
        .repo
        .commit_tree(&tree(&numbers), "ten")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "team", json!({"interval": "1h", "path": "team"}))
        .await;
    env.wait_applied(PLATFORM, "team", &first).await;
    (env, numbers)
}

async fn sync(env: &Env, numbers: &[usize], message: &str) {
    let commit = env
        .repo
        .commit_tree(&tree(numbers), message)
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "team", "sealsync.dev/requestedAt", message)
        .await;
    env.wait_applied(PLATFORM, "team", &commit).await;
}

/// Commits `numbers` while no controller runs (the caller killed it, or it is killed here),
/// starts one and waits until it has applied the commit.
async fn restart_with_commit(env: &mut Env, numbers: &[usize], message: &str) {
    let _ = tokio::task::block_in_place(|| env.controller.kill());
    let commit = env
        .repo
        .commit_tree(&tree(numbers), message)
        .expect("commit");
    tokio::task::block_in_place(|| env.controller.restart()).expect("restart");
    env.wait_applied(PLATFORM, "team", &commit).await;
}

async fn exists(env: &Env, name: &str) -> bool {
    env.get("v1", "ConfigMap", Some(TEAM), name).await.is_some()
}

async fn inventory_config_maps(env: &Env) -> Vec<String> {
    let status = env.gitsync_status(PLATFORM, "team").await;
    status["inventory"]["configMaps"]["names"]
        .as_array()
        .map(|n| {
            n.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_inventory_lives_in_configmaps_that_survive_a_restart_and_go_with_the_gitsync() {
    let (mut env, mut numbers) = ten_applied().await;
    let status = env.gitsync_status(PLATFORM, "team").await;
    assert!(status["inventory"]["entries"].is_null(), "{status}");
    assert_eq!(status["inventory"]["configMaps"]["count"], 11, "{status}");
    assert_eq!(
        env.inventory_ids(PLATFORM, "team")
            .await
            .expect("vouched for"),
        ids(&numbers)
    );

    // A changed value changes no entry: the same ConfigMaps stay.
    let before = inventory_config_maps(&env).await;
    let mut changed = tree(&numbers);
    changed[1].1 = configmap_yaml(TEAM, "cm-00", "value", "changed");
    let commit = env.repo.commit_tree(&changed, "one value").expect("commit");
    env.annotate_gitsync(PLATFORM, "team", "sealsync.dev/requestedAt", "one value")
        .await;
    env.wait_applied(PLATFORM, "team", &commit).await;
    assert_eq!(inventory_config_maps(&env).await, before);

    // After a restart the inventory is read back from its ConfigMaps: a removed file is pruned.
    numbers.retain(|n| *n != 7);
    restart_with_commit(&mut env, &numbers, "drop seven").await;
    assert!(!exists(&env, "cm-07").await, "cm-07 left Git and is pruned");
    assert_eq!(
        env.inventory_ids(PLATFORM, "team")
            .await
            .expect("vouched for"),
        ids(&numbers)
    );

    // Down to four entries: listed in the status again, and no ConfigMap is left.
    numbers.truncate(3);
    sync(&env, &numbers, "three").await;
    let status = env.gitsync_status(PLATFORM, "team").await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(4),
        "{status}"
    );
    assert_eq!(
        env.inventory_ids(PLATFORM, "team").await.expect("listed"),
        ids(&numbers)
    );
    assert!(!exists(&env, "cm-05").await);

    // Large again, then the GitSync is deleted: its objects and its ConfigMaps go.
    numbers = (0..8).collect();
    sync(&env, &numbers, "eight").await;
    assert!(
        !inventory_config_maps(&env).await.is_empty(),
        "{}\n{}",
        env.gitsync_status(PLATFORM, "team").await,
        env.controller.log_tail(20)
    );
    let gitsyncs = dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(PLATFORM)).await;
    gitsyncs
        .delete("team", &Default::default())
        .await
        .expect("delete the GitSync");
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), PLATFORM);
    wait_for(
        "the objects and the inventory ConfigMaps to go",
        Duration::from_secs(60),
        || async {
            let left = config_maps
                .list(&ListParams::default().labels("sealsync.dev/inventory-of"))
                .await
                .expect("list")
                .items
                .len();
            left == 0
                && !exists(&env, "cm-00").await
                && env
                    .get("sealsync.dev/v1", "GitSync", Some(PLATFORM), "team")
                    .await
                    .is_none()
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_pruned_on_the_word_of_a_changed_or_deleted_inventory_configmap() {
    let (mut env, mut numbers) = ten_applied().await;

    // Someone who may edit ConfigMaps in the GitSync's namespace adds an object of theirs
    // choosing to the inventory: one that carries the GitSync's owner labels, so prune would
    // delete it once the next revision does not hold it.
    let victims: Api<ConfigMap> = Api::namespaced(env.client.clone(), TEAM);
    let victim: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "victim", "labels": {
            "sealsync.dev/gitsync-name": "team",
            "sealsync.dev/gitsync-namespace": PLATFORM,
        }},
        "data": {"keep": "me"},
    }))
    .expect("ConfigMap");
    victims
        .create(&PostParams::default(), &victim)
        .await
        .expect("create the victim");
    let names = inventory_config_maps(&env).await;
    tokio::task::block_in_place(|| env.controller.kill()).expect("kill");
    let shards: Api<ConfigMap> = Api::namespaced(env.client.clone(), PLATFORM);
    let shard = shards.get(&names[0]).await.expect("shard");
    let text = shard
        .data
        .and_then(|d| d.get("entries").cloned())
        .expect("entries");
    shards
        .patch(
            &names[0],
            &PatchParams::default(),
            &Patch::Merge(
                json!({"data": {"entries": format!("{text}{TEAM}_victim__ConfigMap v1\n")}}),
            ),
        )
        .await
        .expect("tamper");

    // The next revision, found by a new controller (the running one trusts the inventory it
    // wrote, kept in memory), drops cm-09: it is applied, the victim stays, and so does cm-09
    // (the inventory that listed it cannot be trusted).
    numbers.retain(|n| *n != 9);
    restart_with_commit(&mut env, &numbers, "drop nine").await;
    assert!(
        exists(&env, "victim").await,
        "the victim was pruned\n{}",
        env.controller.log_tail(40)
    );
    assert!(
        exists(&env, "cm-09").await,
        "{}",
        env.controller.log_tail(40)
    );
    let events = events_json(&env, PLATFORM).await;
    assert!(
        events.contains("InventoryLost")
            && events.contains("changed by someone other than the controller"),
        "{events}"
    );
    // A fresh inventory, vouched for, and the tampered ConfigMap is gone.
    assert_eq!(
        env.inventory_ids(PLATFORM, "team")
            .await
            .expect("vouched for"),
        ids(&numbers)
    );

    // From there prune works again.
    numbers.retain(|n| *n != 8);
    sync(&env, &numbers, "drop eight").await;
    assert!(!exists(&env, "cm-08").await, "cm-08 is pruned");

    // A deleted inventory ConfigMap: the same, said as such.
    let names = inventory_config_maps(&env).await;
    tokio::task::block_in_place(|| env.controller.kill()).expect("kill");
    shards
        .delete(&names[0], &Default::default())
        .await
        .expect("delete a shard");
    numbers.retain(|n| *n != 6);
    restart_with_commit(&mut env, &numbers, "drop six").await;
    assert!(exists(&env, "cm-06").await);
    assert!(exists(&env, "victim").await);
    let events = events_json(&env, PLATFORM).await;
    assert!(
        events.contains(&format!("{} was deleted", names[0])),
        "{events}"
    );
    assert_eq!(
        env.inventory_ids(PLATFORM, "team")
            .await
            .expect("vouched for"),
        ids(&numbers)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_that_cannot_go_to_configmaps_stays_in_the_status() {
    let env = Env::start_with(
        &[PLATFORM],
        &["--inventory-inline-entries=4".to_owned()],
        &[],
    )
    .await;
    // Creating ConfigMaps in the GitSync's namespace is refused, as it is for a controller
    // installed without the RBAC for them.
    env.faults().fail_next(
        10_000,
        Some("POST"),
        &format!("/api/v1/namespaces/{PLATFORM}/configmaps"),
        403,
    );
    let mut numbers: Vec<usize> = (0..10).collect();
    let first = env
        .repo
        .commit_tree(&tree(&numbers), "ten")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "team", json!({"interval": "1h", "path": "team"}))
        .await;
    env.wait_applied(PLATFORM, "team", &first).await;
    let status = env.gitsync_status(PLATFORM, "team").await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(11),
        "{status}"
    );
    let events = events_json(&env, PLATFORM).await;
    assert!(
        events.contains("InventoryConfigMapsFailed")
            && events.contains("grant the controller get, create, delete and deletecollection"),
        "{events}"
    );

    // Once allowed, the next revision moves it to ConfigMaps, and prune knew every object.
    env.faults().clear_faults();
    numbers.retain(|n| *n != 3);
    sync(&env, &numbers, "drop three").await;
    assert!(!exists(&env, "cm-03").await, "cm-03 is pruned");
    assert!(!inventory_config_maps(&env).await.is_empty());
    assert_eq!(
        env.inventory_ids(PLATFORM, "team")
            .await
            .expect("vouched for"),
        ids(&numbers)
    );
}
