//! Watch self-tests: raw event framing, resume, 410 Expired, bookmarks, timeouts, dropped
//! watches, and kube-rs's watcher surviving dropped watches and restarts.

#![allow(clippy::unwrap_used)]

mod apiserver_common;

use std::time::Duration;

use apiserver_common::*;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt as _};
use sealsync_tests::apiserver::{RestartOptions, ServerOptions, TestApiServer};
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

fn rv_of(v: &Value) -> String {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string()
}

#[tokio::test]
async fn watch_streams_changes_as_ndjson() {
    let s = TestApiServer::start().await.expect("start");
    let u = s.url();
    post(u, CMS, &cm("before", json!({}))).await;
    let list_rv = get(u, CMS).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut w = watch(u, &format!("{CMS}?watch=true&resourceVersion={list_rv}")).await;
    assert_eq!(w.status, 200);
    assert_eq!(w.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(w.headers.get("transfer-encoding").unwrap(), "chunked");

    let created = post(u, CMS, &cm("a", json!({"x": "1"}))).await.json();
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "ConfigMap");
    assert_eq!(ev["object"]["apiVersion"], "v1");
    assert_eq!(rv_of(&ev["object"]), rv_of(&created));
    let mut upd = created.clone();
    upd["data"]["k"] = json!("changed");
    put(u, &format!("{CMS}/a"), &upd).await;
    assert_eq!(w.next().await.unwrap()["type"], "MODIFIED");
    delete(u, &format!("{CMS}/a")).await;
    let del = w.next().await.unwrap();
    assert_eq!(del["type"], "DELETED");
    assert!(
        rv_of(&del["object"]).parse::<u64>().unwrap() > rv_of(&created).parse::<u64>().unwrap()
    );

    // no resourceVersion: synthetic ADDED for what exists
    let mut w2 = watch(u, &format!("{CMS}?watch=1")).await;
    let ev = w2.next().await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("before"))
    );

    // resume from an old resourceVersion replays history
    let mut w3 = watch(u, &format!("{CMS}?watch=true&resourceVersion={list_rv}")).await;
    let kinds: Vec<String> = [
        w3.next().await.unwrap(),
        w3.next().await.unwrap(),
        w3.next().await.unwrap(),
    ]
    .iter()
    .map(|e| e["type"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);

    // legacy /watch/ path for a single object
    let mut w4 = watch(u, "/api/v1/watch/namespaces/default/configmaps/before").await;
    assert_eq!(
        w4.next().await.unwrap()["object"]["metadata"]["name"],
        "before"
    );
}

#[tokio::test]
async fn label_selector_watch_reports_objects_leaving_the_selection() {
    let s = TestApiServer::start().await.expect("start");
    let u = s.url();
    let rv = rv_of(&post(u, CMS, &cm("a", json!({"app": "web"}))).await.json());
    let mut w = watch(
        u,
        &format!("{CMS}?watch=true&labelSelector=app%3Dweb&resourceVersion={rv}"),
    )
    .await;
    let cur = get(u, &format!("{CMS}/a")).await.json();
    let mut moved = cur.clone();
    moved["metadata"]["labels"] = json!({"app": "api"});
    put(u, &format!("{CMS}/a"), &moved).await;
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    post(u, CMS, &cm("b", json!({"app": "other"}))).await;
    post(u, CMS, &cm("c", json!({"app": "web"}))).await;
    let ev = w.next().await.unwrap();
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("c"))
    );
}

#[tokio::test]
async fn too_old_resource_version_gets_410_expired() {
    let s = TestApiServer::start_with(ServerOptions {
        history: 3,
        ..ServerOptions::default()
    })
    .await
    .expect("start");
    let u = s.url();
    let first = rv_of(&post(u, CMS, &cm("a", json!({}))).await.json());
    for n in ["b", "c", "d", "e"] {
        post(u, CMS, &cm(n, json!({}))).await;
    }
    let mut w = watch(u, &format!("{CMS}?watch=true&resourceVersion={first}")).await;
    assert_eq!(w.status, 200);
    let ev = w.next().await.unwrap();
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert_eq!(ev["object"]["reason"], "Expired");
    assert!(ev["object"]["message"]
        .as_str()
        .unwrap()
        .starts_with(&format!("too old resource version: {first} (")));
    assert!(w.next().await.is_none(), "stream ends after the error");
}

#[tokio::test]
async fn bookmarks_timeouts_initial_events_and_dropped_watches() {
    let s = TestApiServer::start_with(ServerOptions {
        bookmark_interval: Duration::from_millis(100),
        ..ServerOptions::default()
    })
    .await
    .expect("start");
    let u = s.url();
    let rv = rv_of(&post(u, CMS, &cm("a", json!({}))).await.json());
    let mut w = watch(
        u,
        &format!("{CMS}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"),
    )
    .await;
    let bm = w.next().await.unwrap();
    assert_eq!(bm["type"], "BOOKMARK");
    assert_eq!(bm["object"]["kind"], "ConfigMap");
    assert_eq!(rv_of(&bm["object"]), rv);

    let t0 = std::time::Instant::now();
    let mut t = watch(
        u,
        &format!("{CMS}?watch=true&timeoutSeconds=1&resourceVersion={rv}"),
    )
    .await;
    assert!(t.next_within(Duration::from_secs(5)).await.is_none());
    assert!(t0.elapsed() >= Duration::from_millis(900));

    let mut init = watch(u, &format!("{CMS}?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan")).await;
    assert_eq!(init.next().await.unwrap()["type"], "ADDED");
    let end = init.next().await.unwrap();
    assert_eq!(end["type"], "BOOKMARK");
    assert_eq!(
        end["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );

    let mut d = watch(u, &format!("{CMS}?watch=true&resourceVersion={rv}")).await;
    s.drop_watches();
    assert!(d.next().await.is_none());
    let mut d2 = watch(u, &format!("{CMS}?watch=true&resourceVersion={rv}")).await;
    assert_eq!(
        post(u, "/_testcluster/watches/drop", &json!({}))
            .await
            .status,
        200
    );
    assert!(d2.next().await.is_none());
}

async fn kube_client(s: &TestApiServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&s.kubeconfig_yaml().expect("yaml"))
        .expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

fn cm_named(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).expect("cm")
}

async fn wait_for_name<S>(stream: &mut S, name: &str)
where
    S: futures::Stream<Item = Result<watcher::Event<ConfigMap>, watcher::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ev = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {name}"))
            .expect("stream ended");
        match ev {
            Ok(watcher::Event::Apply(o)) | Ok(watcher::Event::InitApply(o))
                if o.metadata.name.as_deref() == Some(name) =>
            {
                return
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn kube_watcher_survives_dropped_watches_and_restarts() {
    let s = TestApiServer::start().await.expect("start");
    let client = kube_client(&s).await;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &cm_named("a"))
        .await
        .expect("create a");
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    wait_for_name(&mut stream, "a").await;
    api.create(&PostParams::default(), &cm_named("b"))
        .await
        .expect("create b");
    wait_for_name(&mut stream, "b").await;
    s.drop_watches();
    api.create(&PostParams::default(), &cm_named("c"))
        .await
        .expect("create c");
    wait_for_name(&mut stream, "c").await;
    s.restart(RestartOptions {
        wipe: false,
        down_for: Duration::from_millis(200),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    api.create(&PostParams::default(), &cm_named("d"))
        .await
        .expect("create d");
    wait_for_name(&mut stream, "d").await;

    // streaming lists (sendInitialEvents) work too
    let mut streaming = watcher(api.clone(), watcher::Config::default().streaming_lists())
        .default_backoff()
        .boxed();
    wait_for_name(&mut streaming, "d").await;
}
