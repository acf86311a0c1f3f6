//! Self-tests of the test API server's REST surface over raw HTTP: discovery, CRUD, lists,
//! Secrets, finalizers, the status subresource, CRDs, patches, server-side apply, faults
//! and tokens.

#![allow(clippy::unwrap_used)]

mod apiserver_common;

use std::time::{Duration, Instant};

use apiserver_common::*;
use sealsync_tests::apiserver::{RestartOptions, TestApiServer, TestCluster};
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn server() -> TestApiServer {
    TestApiServer::start().await.expect("start")
}

#[tokio::test]
async fn starts_fast_and_serves_discovery() {
    let t0 = Instant::now();
    let s = server().await;
    let v = get(s.url(), "/version").await;
    assert!(
        t0.elapsed() < Duration::from_millis(500),
        "start-up took {:?}",
        t0.elapsed()
    );
    assert_eq!(v.status, 200);
    assert!(v.json()["gitVersion"]
        .as_str()
        .unwrap()
        .starts_with("v1.33"));

    let api = get(s.url(), "/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));

    let core = get(s.url(), "/api/v1").await;
    assert_eq!(core.content_type(), "application/json");
    let core = core.json();
    let find = |doc: &Value, name: &str| -> Value {
        doc["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(find(&core, "configmaps")["shortNames"], json!(["cm"]));
    assert_eq!(find(&core, "namespaces")["namespaced"], json!(false));
    assert_eq!(find(&core, "serviceaccounts/token")["kind"], "TokenRequest");
    assert_eq!(find(&core, "secrets")["singularName"], "secret");

    let groups = get(s.url(), "/apis").await.json();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
        "coordination.k8s.io",
        "authentication.k8s.io",
    ] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    let apps = get(s.url(), "/apis/apps/v1").await.json();
    assert_eq!(apps["groupVersion"], "apps/v1");
    assert_eq!(find(&apps, "deployments")["shortNames"], json!(["deploy"]));
    assert!(find(&apps, "deployments/status")["verbs"]
        .as_array()
        .unwrap()
        .contains(&json!("patch")));

    let agg = request(
        s.url(),
        "GET",
        "/apis",
        &[(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )],
        None,
    )
    .await;
    assert_eq!(
        agg.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(agg.json()["kind"], "APIGroupDiscoveryList");
    assert_eq!(get(s.url(), "/apis/nope.example.com/v1").await.status, 404);
}

#[tokio::test]
async fn crud_statuses_match_kube_apiserver() {
    let s = server().await;
    let u = s.url();
    let created = post(u, CMS, &cm("a", json!({"app": "x"}))).await;
    assert_eq!(created.status, 201);
    let obj = created.json();
    assert!(!obj["metadata"]["uid"].as_str().unwrap().is_empty());
    assert!(obj["metadata"]["creationTimestamp"].is_string());
    let rv1: u64 = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let dup = post(u, CMS, &cm("a", json!({}))).await;
    assert_eq!(dup.status, 409);
    let st = dup.json();
    assert_eq!(st["kind"], "Status");
    assert_eq!(st["reason"], "AlreadyExists");
    assert_eq!(st["message"], "configmaps \"a\" already exists");
    assert_eq!(st["details"], json!({"name": "a", "kind": "configmaps"}));

    let missing_ns = post(u, "/api/v1/namespaces/nope/configmaps", &cm("a", json!({}))).await;
    assert_eq!(missing_ns.status, 404);
    assert_eq!(
        missing_ns.json()["message"],
        "namespaces \"nope\" not found"
    );
    assert_eq!(missing_ns.json()["details"]["kind"], "namespaces");

    let nf = get(u, "/apis/apps/v1/namespaces/default/deployments/zzz").await;
    assert_eq!(nf.status, 404);
    assert_eq!(nf.json()["message"], "deployments.apps \"zzz\" not found");
    assert_eq!(
        nf.json()["details"],
        json!({"name": "zzz", "group": "apps", "kind": "deployments"})
    );

    // generateName
    let g = post(
        u,
        CMS,
        &json!({"metadata": {"generateName": "gen-"}, "data": {}}),
    )
    .await;
    assert_eq!(g.status, 201);
    let gname = g.json()["metadata"]["name"].as_str().unwrap().to_string();
    assert!(gname.starts_with("gen-") && gname.len() == 9, "{gname}");

    // invalid name
    let bad = post(u, CMS, &cm("Bad_Name", json!({}))).await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["details"]["causes"][0]["field"], "metadata.name");

    // update with current rv, then with a stale one
    let mut upd = obj.clone();
    upd["data"]["k"] = json!("v2");
    let ok = put(u, &format!("{CMS}/a"), &upd).await;
    assert_eq!(ok.status, 200);
    let rv2: u64 = ok.json()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rv2 > rv1);
    let stale = put(u, &format!("{CMS}/a"), &upd).await;
    assert_eq!(stale.status, 409);
    assert_eq!(stale.json()["reason"], "Conflict");
    assert_eq!(
        stale.json()["message"],
        "Operation cannot be fulfilled on configmaps \"a\": the object has been modified; please apply your changes to the latest version and try again"
    );

    // cluster-scoped
    let ns = post(
        u,
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "team-a"}}),
    )
    .await;
    assert_eq!(ns.status, 201);
    assert_eq!(ns.json()["status"]["phase"], "Active");
    assert_eq!(
        post(
            u,
            "/api/v1/namespaces/team-a/configmaps",
            &cm("a", json!({}))
        )
        .await
        .status,
        201
    );

    // delete answers a Success Status for ConfigMaps, the object for ServiceAccounts
    let del = delete(u, &format!("{CMS}/a")).await;
    assert_eq!(del.status, 200);
    assert_eq!(del.json()["kind"], "Status");
    assert_eq!(del.json()["status"], "Success");
    assert_eq!(get(u, &format!("{CMS}/a")).await.status, 404);
    assert_eq!(delete(u, &format!("{CMS}/a")).await.status, 404);

    // dryRun create stores nothing
    let dry = post(u, &format!("{CMS}?dryRun=All"), &cm("dry", json!({}))).await;
    assert_eq!(dry.status, 201);
    assert_eq!(get(u, &format!("{CMS}/dry")).await.status, 404);

    // deleting a namespace removes its contents
    assert_eq!(delete(u, "/api/v1/namespaces/team-a").await.status, 200);
    assert_eq!(
        get(u, "/api/v1/namespaces/team-a/configmaps/a")
            .await
            .status,
        404
    );
    assert_eq!(get(u, "/api/v1/namespaces/team-a").await.status, 404);

    // 413 for oversized bodies
    let big = json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(3 * 1024 * 1024 + 10)}});
    let r = post(u, CMS, &big).await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["reason"], "RequestEntityTooLarge");
}

#[tokio::test]
async fn lists_select_and_page() {
    let s = server().await;
    let u = s.url();
    for (name, labels) in [
        ("a", json!({"app": "web", "tier": "front"})),
        ("b", json!({"app": "api", "tier": "back"})),
        ("c", json!({"app": "db"})),
        ("d", json!({})),
    ] {
        assert_eq!(post(u, CMS, &cm(name, labels)).await.status, 201);
    }
    post(
        u,
        "/api/v1/namespaces/kube-system/configmaps",
        &cm("e", json!({"app": "web"})),
    )
    .await;

    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let list = get(u, CMS).await.json();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert!(list["metadata"]["resourceVersion"].is_string());
    assert_eq!(names(&list), ["a", "b", "c", "d"]);
    // typed lists omit item apiVersion/kind, as kube-apiserver's do
    assert!(list["items"][0].get("kind").is_none());

    for (sel, want) in [
        ("app%3Dweb", vec!["a"]),
        ("app%3D%3Dweb", vec!["a"]),
        ("app!%3Dweb", vec!["b", "c", "d"]),
        ("app%20in%20(web,api)", vec!["a", "b"]),
        ("app%20notin%20(web,api)", vec!["c", "d"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c", "d"]),
        ("app%3Dweb,tier%3Dfront", vec!["a"]),
    ] {
        let l = get(u, &format!("{CMS}?labelSelector={sel}")).await.json();
        assert_eq!(names(&l), want, "selector {sel}");
    }
    assert_eq!(
        get(u, &format!("{CMS}?labelSelector=app%20in%20web"))
            .await
            .status,
        400
    );
    let f = get(u, &format!("{CMS}?fieldSelector=metadata.name%3Db"))
        .await
        .json();
    assert_eq!(names(&f), ["b"]);
    let bad = get(u, &format!("{CMS}?fieldSelector=spec.x%3D1")).await;
    assert_eq!(bad.status, 400);
    // kube-apiserver v1.33's wording for kinds without field labels of their own, such as
    // ConfigMaps (Secrets, Pods, Services, … say "field label not supported: …").
    assert_eq!(
        bad.json()["message"],
        "\"spec.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );

    let all = get(u, "/api/v1/configmaps?labelSelector=app%3Dweb")
        .await
        .json();
    assert_eq!(names(&all), ["a", "e"]);
    let ns = get(
        u,
        "/api/v1/configmaps?fieldSelector=metadata.namespace%3Dkube-system",
    )
    .await
    .json();
    assert_eq!(names(&ns), ["e"]);

    let p1 = get(u, &format!("{CMS}?limit=3")).await.json();
    assert_eq!(names(&p1), ["a", "b", "c"]);
    assert_eq!(p1["metadata"]["remainingItemCount"], 1);
    let cont = p1["metadata"]["continue"].as_str().unwrap();
    let p2 = get(u, &format!("{CMS}?limit=3&continue={cont}"))
        .await
        .json();
    assert_eq!(names(&p2), ["d"]);
    assert!(p2["metadata"].get("continue").is_none());
    assert_eq!(
        p2["metadata"]["resourceVersion"],
        p1["metadata"]["resourceVersion"]
    );

    // Table for kubectl get
    let table = request(
        u,
        "GET",
        CMS,
        &[(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )],
        None,
    )
    .await
    .json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["columnDefinitions"][0]["name"], "Name");
    assert_eq!(table["rows"][0]["cells"][0], "a");
    assert_eq!(table["rows"][0]["object"]["kind"], "PartialObjectMetadata");
}

#[tokio::test]
async fn secrets_fold_string_data_and_refuse_bad_base64() {
    let s = server().await;
    let u = s.url();
    let p = "/api/v1/namespaces/default/secrets";
    let r = post(u, p, &json!({"metadata": {"name": "s"}, "data": {"a": "b2xk", "b": "eA=="}, "stringData": {"a": "new", "c": "plain"}})).await;
    assert_eq!(r.status, 201);
    let v = r.json();
    assert_eq!(
        v["data"],
        json!({"a": "bmV3", "b": "eA==", "c": "cGxhaW4="})
    );
    assert!(v.get("stringData").is_none());
    assert_eq!(v["type"], "Opaque");
    let bad = post(
        u,
        p,
        &json!({"metadata": {"name": "bad"}, "data": {"k": "not base64!"}}),
    )
    .await;
    assert_eq!(bad.status, 400);
    let st = bad.json();
    assert_eq!(st["reason"], "BadRequest");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("illegal base64 data at input byte"),
        "{st}"
    );
    assert_eq!(st["details"]["causes"][0]["field"], "data[k]");
    assert_eq!(get(u, &format!("{p}/bad")).await.status, 404);
}

#[tokio::test]
async fn finalizers_delay_deletion() {
    let s = server().await;
    let u = s.url();
    let mut obj = cm("f", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/keep"]);
    assert_eq!(post(u, CMS, &obj).await.status, 201);
    let d = delete(u, &format!("{CMS}/f")).await;
    assert_eq!(d.status, 200);
    let live = get(u, &format!("{CMS}/f")).await.json();
    assert!(live["metadata"]["deletionTimestamp"].is_string());
    // adding finalizers while deleting is refused
    let mut more = live.clone();
    more["metadata"]["finalizers"] = json!(["example.com/keep", "other"]);
    assert_eq!(put(u, &format!("{CMS}/f"), &more).await.status, 422);
    let mut done = live.clone();
    done["metadata"]["finalizers"] = json!([]);
    assert_eq!(put(u, &format!("{CMS}/f"), &done).await.status, 200);
    assert_eq!(get(u, &format!("{CMS}/f")).await.status, 404);
}

#[tokio::test]
async fn status_subresource_and_generation() {
    let s = server().await;
    let u = s.url();
    let p = "/apis/apps/v1/namespaces/default/deployments";
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 99},
    });
    let created = post(u, p, &dep).await.json();
    assert_eq!(created["metadata"]["generation"], 1);
    assert!(created.get("status").is_none() || created["status"].get("replicas").is_none());

    // main resource ignores status; spec change bumps generation
    let mut upd = created.clone();
    upd["spec"]["replicas"] = json!(3);
    upd["status"] = json!({"replicas": 5});
    let after = put(u, &format!("{p}/web"), &upd).await.json();
    assert_eq!(after["metadata"]["generation"], 2);
    assert!(after["status"].get("replicas").is_none());

    // /status changes only status, generation stays
    let mut st = after.clone();
    st["status"] = json!({"replicas": 3, "readyReplicas": 3});
    st["spec"]["replicas"] = json!(10);
    let s2 = put(u, &format!("{p}/web/status"), &st).await.json();
    assert_eq!(s2["status"]["readyReplicas"], 3);
    assert_eq!(s2["spec"]["replicas"], 3);
    assert_eq!(s2["metadata"]["generation"], 2);

    // a label change is a metadata change: no generation bump
    let mut lab = s2.clone();
    lab["metadata"]["labels"] = json!({"x": "y"});
    let s3 = put(u, &format!("{p}/web"), &lab).await.json();
    assert_eq!(s3["metadata"]["generation"], 2);
    assert_eq!(s3["status"]["readyReplicas"], 3);
}

#[tokio::test]
async fn crds_are_established_and_served() {
    let s = server().await;
    let u = s.url();
    let c = post(
        u,
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        &crd(),
    )
    .await;
    assert_eq!(c.status, 201);
    let conds = c.json()["status"]["conditions"].clone();
    let has = |t: &str| {
        conds
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    assert!(has("Established") && has("NamesAccepted"), "{conds}");
    assert_eq!(c.json()["status"]["acceptedNames"]["kind"], "Widget");

    let disc = get(u, "/apis/example.com/v1").await.json();
    assert_eq!(disc["resources"][0]["name"], "widgets");
    let p = "/apis/example.com/v1/namespaces/default/widgets";
    let w = post(u, p, &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})).await;
    assert_eq!(w.status, 201);
    let list = get(u, p).await.json();
    assert_eq!(list["kind"], "WidgetList");
    assert_eq!(list["items"][0]["kind"], "Widget");
    // strategic merge patch is not for custom resources
    let smp = patch(
        u,
        &format!("{p}/w"),
        "application/strategic-merge-patch+json",
        &json!({"spec": {"size": 2}}),
    )
    .await;
    assert_eq!(smp.status, 415);

    assert_eq!(
        delete(
            u,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com"
        )
        .await
        .status,
        200
    );
    assert_eq!(get(u, "/apis/example.com/v1").await.status, 404);
    // re-creating the CRD shows no old objects
    assert_eq!(
        post(
            u,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd()
        )
        .await
        .status,
        201
    );
    assert_eq!(get(u, p).await.json()["items"], json!([]));
}

#[tokio::test]
async fn patches_and_server_side_apply() {
    let s = server().await;
    let u = s.url();
    assert_eq!(post(u, CMS, &cm("p", json!({}))).await.status, 201);
    let m = patch(
        u,
        &format!("{CMS}/p"),
        "application/merge-patch+json",
        &json!({"data": {"m": "1"}}),
    )
    .await;
    assert_eq!(m.status, 200, "{}", String::from_utf8_lossy(&m.body));
    assert_eq!(m.json()["data"]["m"], "1");
    let j = patch(
        u,
        &format!("{CMS}/p"),
        "application/json-patch+json",
        &json!([{"op": "add", "path": "/data/j", "value": "2"}]),
    )
    .await;
    assert_eq!(j.status, 200, "{}", String::from_utf8_lossy(&j.body));
    assert_eq!(j.json()["data"]["j"], "2");
    let sm = patch(
        u,
        &format!("{CMS}/p"),
        "application/strategic-merge-patch+json",
        &json!({"data": {"s": "3"}}),
    )
    .await;
    assert_eq!(sm.status, 200, "{}", String::from_utf8_lossy(&sm.body));
    assert_eq!(sm.json()["data"]["s"], "3");
    assert_eq!(
        patch(
            u,
            &format!("{CMS}/missing"),
            "application/merge-patch+json",
            &json!({})
        )
        .await
        .status,
        404
    );
    assert_eq!(
        patch(u, &format!("{CMS}/p"), "text/plain", &json!({}))
            .await
            .status,
        415
    );

    // apply: fieldManager is required
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "1"}});
    let r = patch(
        u,
        &format!("{CMS}/ssa"),
        "application/apply-patch+yaml",
        &applied,
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["message"], "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch");

    // dryRun apply stores nothing
    let r = patch(
        u,
        &format!("{CMS}/ssa?fieldManager=alice&dryRun=All"),
        "application/apply-patch+yaml",
        &applied,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(get(u, &format!("{CMS}/ssa")).await.status, 404);

    // apply creates
    let r = patch(
        u,
        &format!("{CMS}/ssa?fieldManager=alice"),
        "application/apply-patch+yaml",
        &applied,
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let mf = r.json()["metadata"]["managedFields"].clone();
    assert_eq!(mf[0]["manager"], "alice");
    assert_eq!(mf[0]["operation"], "Apply");

    // a second manager changing the same field conflicts
    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"x": "2"}});
    let r = patch(
        u,
        &format!("{CMS}/ssa?fieldManager=bob"),
        "application/apply-patch+yaml",
        &bob,
    )
    .await;
    assert_eq!(r.status, 409);
    let st = r.json();
    assert_eq!(st["reason"], "Conflict");
    assert_eq!(
        st["message"],
        "Apply failed with 1 conflict: conflict with \"alice\": .data.x"
    );
    assert_eq!(
        st["details"]["causes"][0],
        json!({"reason": "FieldManagerConflict", "message": "conflict with \"alice\"", "field": ".data.x"})
    );

    // force takes it over
    let r = patch(
        u,
        &format!("{CMS}/ssa?fieldManager=bob&force=true"),
        "application/apply-patch+yaml",
        &bob,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"]["x"], "2");

    // an Update manager is named with its apiVersion
    let mut upd = r.json();
    upd["data"]["x"] = json!("3");
    assert_eq!(
        request(
            u,
            "PUT",
            &format!("{CMS}/ssa"),
            &[("user-agent", "kubectl/v1.32.0 (linux/amd64)")],
            Some(&upd)
        )
        .await
        .status,
        200
    );
    let r = patch(
        u,
        &format!("{CMS}/ssa?fieldManager=bob"),
        "application/apply-patch+yaml",
        &bob,
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["details"]["causes"][0]["message"],
        "conflict with \"kubectl\" using v1"
    );

    // force on a non-apply patch is refused
    assert_eq!(
        patch(
            u,
            &format!("{CMS}/ssa?force=true"),
            "application/merge-patch+json",
            &json!({})
        )
        .await
        .status,
        422
    );
}

#[tokio::test]
async fn faults_through_library_and_control_api() {
    let s = server().await;
    let u = s.url();
    s.fail_next(2, Some("GET"), "/api/v1/namespaces/default/configmaps", 503);
    let r = get(u, CMS).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "ServiceUnavailable");
    assert_eq!(get(u, CMS).await.status, 503);
    assert_eq!(get(u, CMS).await.status, 200);

    let r = post(u, "/_testcluster/faults/failures", &json!({"method": "POST", "pathPrefix": "/api/v1/namespaces/default/secrets", "status": 500, "count": 1})).await;
    assert_eq!(r.status, 200);
    let r = post(
        u,
        "/api/v1/namespaces/default/secrets",
        &json!({"metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["reason"], "InternalError");
    assert_eq!(
        post(
            u,
            "/api/v1/namespaces/default/secrets",
            &json!({"metadata": {"name": "x"}})
        )
        .await
        .status,
        201
    );

    s.add_latency(Some("GET"), "/version", Duration::from_millis(200));
    let t0 = Instant::now();
    get(u, "/version").await;
    assert!(t0.elapsed() >= Duration::from_millis(200));
    assert_eq!(delete(u, "/_testcluster/faults").await.status, 200);

    // restart keeping state, then wiping it
    post(u, CMS, &cm("keep", json!({}))).await;
    s.restart(RestartOptions::default());
    assert_eq!(get(u, &format!("{CMS}/keep")).await.status, 200);
    s.restart(RestartOptions {
        wipe: true,
        down_for: Duration::ZERO,
    });
    assert_eq!(get(u, &format!("{CMS}/keep")).await.status, 404);
    assert_eq!(get(u, "/api/v1/namespaces/kube-system").await.status, 200);
    let r = post(u, "/_testcluster/restart", &json!({"wipe": false})).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn service_account_tokens_and_token_review() {
    let s = server().await;
    let u = s.url();
    let token = s
        .issue_service_account_token("apps", "robot", &["vault"])
        .expect("token");
    let review = |tok: &str, aud: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": tok, "audiences": aud}});
    let r = post(
        u,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &review(&token, json!(["vault"])),
    )
    .await;
    assert_eq!(r.status, 201);
    let st = r.json()["status"].clone();
    assert_eq!(st["authenticated"], true);
    assert_eq!(st["user"]["username"], "system:serviceaccount:apps:robot");
    assert_eq!(
        st["user"]["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:apps",
            "system:authenticated"
        ])
    );
    assert_eq!(st["audiences"], json!(["vault"]));
    let sa = get(u, "/api/v1/namespaces/apps/serviceaccounts/robot")
        .await
        .json();
    assert_eq!(st["user"]["uid"], sa["metadata"]["uid"]);

    let wrong_aud = post(
        u,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &review(&token, json!(["other"])),
    )
    .await
    .json();
    assert_ne!(wrong_aud["status"]["authenticated"], true);
    let garbage = post(
        u,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &review("abc.def.ghi", json!([])),
    )
    .await
    .json();
    assert_ne!(garbage["status"]["authenticated"], true);
    assert!(garbage["status"]["error"].is_string());

    // TokenRequest subresource
    let tr = post(u, "/api/v1/namespaces/apps/serviceaccounts/robot/token", &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": ["vault"], "expirationSeconds": 600}})).await;
    assert_eq!(tr.status, 201);
    let tok2 = tr.json()["status"]["token"].as_str().unwrap().to_string();
    let payload = tok2.split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "system:serviceaccount:apps:robot");
    assert_eq!(claims["kubernetes.io"]["serviceaccount"]["name"], "robot");
    assert_eq!(claims["iss"], s.issuer());
    for k in ["exp", "iat", "nbf"] {
        assert!(claims[k].is_i64(), "{k}");
    }
    assert_eq!(
        post(
            u,
            "/api/v1/namespaces/apps/serviceaccounts/ghost/token",
            &json!({"spec": {}})
        )
        .await
        .status,
        404
    );

    // deleting the service account invalidates its tokens
    delete(u, "/api/v1/namespaces/apps/serviceaccounts/robot").await;
    let after = post(
        u,
        "/apis/authentication.k8s.io/v1/tokenreviews",
        &review(&token, json!(["vault"])),
    )
    .await
    .json();
    assert_ne!(after["status"]["authenticated"], true);

    let oidc = get(u, "/.well-known/openid-configuration").await.json();
    assert_eq!(oidc["issuer"], s.issuer());
    let jwks = get(u, "/openid/v1/jwks").await.json();
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
}

#[tokio::test]
async fn test_cluster_start_embedded_uses_in_process_server() {
    let c = TestCluster::start_embedded().await.expect("cluster");
    assert!(!c.is_real());
    assert!(c.kubeconfig_path().is_file());
    let url = c.url().expect("url");
    assert_eq!(get(&url, "/version").await.status, 200);
    assert!(c.server().is_ok());
    assert!(c.faults().is_ok());
    assert!(c.kube_apiserver().is_none());
}

/// The managedFields entry of `manager` with `operation` (and `subresource`, "" for none).
fn mf_entry(obj: &Value, manager: &str, operation: &str, subresource: &str) -> Option<Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| {
            e["manager"] == manager
                && e["operation"] == operation
                && e["subresource"].as_str().unwrap_or_default() == subresource
        })
        .cloned()
}

const APPLY: &str = "application/apply-patch+yaml";

#[tokio::test]
async fn scale_subresource_of_deployments_and_statefulsets() {
    let s = server().await;
    let u = s.url();

    // Discovery lists the subresource, legacy and aggregated.
    let apps = get(u, "/apis/apps/v1").await.json();
    for plural in ["deployments", "statefulsets"] {
        let r = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == format!("{plural}/scale"))
            .cloned()
            .unwrap_or_else(|| panic!("{plural}/scale missing: {apps}"));
        assert_eq!(
            r,
            json!({"name": format!("{plural}/scale"), "singularName": "", "namespaced": true,
                   "group": "autoscaling", "version": "v1", "kind": "Scale",
                   "verbs": ["get", "patch", "update"]})
        );
    }
    let agg = request(
        u,
        "GET",
        "/apis",
        &[(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        )],
        None,
    )
    .await
    .json();
    let apps_group = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .cloned()
        .unwrap();
    let deployments = apps_group["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .cloned()
        .unwrap();
    assert_eq!(
        deployments["subresources"],
        json!([
            {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]},
            {"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "verbs": ["get", "patch", "update"]},
        ])
    );
    // Kinds without it answer 404.
    assert_eq!(post(u, CMS, &cm("c", json!({}))).await.status, 201);
    assert_eq!(get(u, &format!("{CMS}/c/scale")).await.status, 404);

    let p = "/apis/apps/v1/namespaces/default/deployments";
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    });
    let r = patch(u, &format!("{p}/web?fieldManager=owner"), APPLY, &dep).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let created = r.json();
    let sp = format!("{p}/web/scale");
    assert_eq!(get(u, &format!("{p}/nope/scale")).await.status, 404);

    let scale = get(u, &sp).await.json();
    assert_eq!(
        scale,
        json!({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": "web", "namespace": "default",
                "uid": created["metadata"]["uid"],
                "resourceVersion": created["metadata"]["resourceVersion"],
                "creationTimestamp": created["metadata"]["creationTimestamp"],
            },
            "spec": {"replicas": 2},
            "status": {"replicas": 0, "selector": "app=web"},
        })
    );

    // Merge patch (what `kubectl scale` sends), manager from the User-Agent.
    let r = request(
        u,
        "PATCH",
        &sp,
        &[
            ("content-type", "application/merge-patch+json"),
            (
                "user-agent",
                "kubectl/v1.32.0 (linux/amd64) kubernetes/70d3cc9",
            ),
        ],
        Some(&json!({"spec": {"replicas": 5}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let after = r.json();
    assert_eq!(after["kind"], "Scale");
    assert_eq!(after["spec"]["replicas"], 5);
    assert!(after["metadata"].get("managedFields").is_none());
    let dep_now = get(u, &format!("{p}/web")).await.json();
    assert_eq!(dep_now["spec"]["replicas"], 5);
    assert_eq!(dep_now["metadata"]["generation"], 2);
    assert_eq!(
        after["metadata"]["resourceVersion"],
        dep_now["metadata"]["resourceVersion"]
    );
    assert_eq!(
        mf_entry(&dep_now, "kubectl", "Update", "scale"),
        Some(
            json!({"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                    "subresource": "scale"})
        )
    );
    // The applier lost spec.replicas to the scale write.
    let owner = mf_entry(&dep_now, "owner", "Apply", "").expect("owner entry");
    assert!(
        owner["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{owner}"
    );
    assert!(
        owner["fieldsV1"]["f:spec"].get("f:selector").is_some(),
        "{owner}"
    );
    // ...so its next apply of the old count conflicts with the scale manager.
    let r = patch(u, &format!("{p}/web?fieldManager=owner"), APPLY, &dep).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
    );
    assert_eq!(
        r.json()["details"]["causes"][0]["message"],
        "conflict with \"kubectl\" with subresource \"scale\" using apps/v1"
    );

    // JSON patch and strategic merge patch.
    let r = patch(
        u,
        &format!("{sp}?fieldManager=jp"),
        "application/json-patch+json",
        &json!([{"op": "replace", "path": "/spec/replicas", "value": 6}]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["replicas"], 6);
    let r = patch(
        u,
        &format!("{sp}?fieldManager=smp"),
        "application/strategic-merge-patch+json",
        &json!({"spec": {"replicas": 7}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let dep_now = get(u, &format!("{p}/web")).await.json();
    assert_eq!(dep_now["spec"]["replicas"], 7);
    assert_eq!(dep_now["metadata"]["generation"], 4);
    assert!(mf_entry(&dep_now, "smp", "Update", "scale").is_some());
    assert!(mf_entry(&dep_now, "jp", "Update", "scale").is_none());
    assert!(mf_entry(&dep_now, "kubectl", "Update", "scale").is_none());

    // PUT with the current resourceVersion; a stale one is a conflict.
    let mut put_body = get(u, &sp).await.json();
    put_body["spec"]["replicas"] = json!(3);
    let r = request(
        u,
        "PUT",
        &format!("{sp}?fieldManager=hpa"),
        &[],
        Some(&put_body),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["spec"]["replicas"], 3);
    let r = put(u, &sp, &put_body).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );
    let mut bad_uid = json!({"spec": {"replicas": 3}, "metadata": {"name": "web", "uid": "other"}});
    let r = put(u, &sp, &bad_uid).await;
    assert_eq!(r.status, 409);
    bad_uid["metadata"].as_object_mut().unwrap().remove("uid");
    bad_uid["spec"]["replicas"] = json!(-1);
    let r = put(u, &sp, &bad_uid).await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.json()["message"],
        "Scale.autoscaling \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0"
    );

    // Server-side apply of a Scale.
    let applied = json!({"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": "web", "namespace": "default"}, "spec": {"replicas": 4}});
    let r = patch(u, &format!("{sp}?fieldManager=scaler"), APPLY, &applied).await;
    assert_eq!(r.status, 409, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(
        r.json()["message"],
        "Apply failed with 1 conflict: conflict with \"hpa\" with subresource \"scale\" using autoscaling/v1: .spec.replicas"
    );
    let r = patch(
        u,
        &format!("{sp}?fieldManager=scaler&force=true"),
        APPLY,
        &applied,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let dep_now = get(u, &format!("{p}/web")).await.json();
    assert_eq!(dep_now["spec"]["replicas"], 4);
    let entry = mf_entry(&dep_now, "scaler", "Apply", "scale").expect("apply entry");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let wrong_kind = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    assert_eq!(
        patch(u, &format!("{sp}?fieldManager=scaler"), APPLY, &wrong_kind)
            .await
            .status,
        400
    );
    // Dry run changes nothing.
    let r = patch(
        u,
        &format!("{sp}?dryRun=All"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 9}}),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["spec"]["replicas"], 9);
    assert_eq!(get(u, &sp).await.json()["spec"]["replicas"], 4);

    // StatefulSets too.
    let sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "postgres"}]}}},
    });
    let sp = "/apis/apps/v1/namespaces/default/statefulsets";
    assert_eq!(post(u, sp, &sts).await.status, 201);
    let r = patch(
        u,
        &format!("{sp}/db/scale"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 3}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["status"]["selector"], "app=db");
    let db = get(u, &format!("{sp}/db")).await.json();
    assert_eq!(db["spec"]["replicas"], 3);
    assert_eq!(db["metadata"]["generation"], 2);
    assert!(mf_entry(&db, "apiserver-selftest", "Update", "scale").is_some());
}

#[tokio::test]
async fn status_writes_are_recorded_for_the_status_subresource() {
    let s = server().await;
    let u = s.url();
    let p = "/apis/apps/v1/namespaces/default/deployments";
    let dep = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
        "status": {"replicas": 7},
    });
    // The main resource ignores status: not stored, not owned.
    let r = patch(u, &format!("{p}/web?fieldManager=deployer"), APPLY, &dep).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let live = r.json();
    assert!(live["status"].get("replicas").is_none(), "{live}");
    let entry = mf_entry(&live, "deployer", "Apply", "").expect("deployer entry");
    assert!(entry["fieldsV1"].get("f:status").is_none(), "{entry}");

    // Apply to /status: only status changes, under an entry with `subresource: status`.
    let status = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 9},
        "status": {"replicas": 1, "readyReplicas": 1},
    });
    let r = patch(
        u,
        &format!("{p}/web/status?fieldManager=controller"),
        APPLY,
        &status,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let live = r.json();
    assert_eq!(live["status"]["readyReplicas"], 1);
    assert_eq!(live["spec"]["replicas"], 1);
    assert_eq!(live["metadata"]["generation"], 1);
    let entry = mf_entry(&live, "controller", "Apply", "status").expect("status apply entry");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:replicas": {}, "f:readyReplicas": {}}})
    );

    // PUT /status records an Update entry for the status subresource.
    let mut upd = live.clone();
    upd["status"]["readyReplicas"] = json!(0);
    let r = request(
        u,
        "PUT",
        &format!("{p}/web/status?fieldManager=other-controller"),
        &[],
        Some(&upd),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let live = r.json();
    let entry = mf_entry(&live, "other-controller", "Update", "status").expect("update entry");
    assert_eq!(
        entry["fieldsV1"],
        json!({"f:status": {"f:readyReplicas": {}}})
    );
    // The status applier now conflicts with the status updater, named with its subresource.
    let r = patch(
        u,
        &format!("{p}/web/status?fieldManager=controller"),
        APPLY,
        &status,
    )
    .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Apply failed with 1 conflict: conflict with \"other-controller\" with subresource \"status\" using apps/v1: .status.readyReplicas"
    );
}

const MAP_LIST_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "pools.example.com"},
  "spec": {
    "group": "example.com",
    "scope": "Namespaced",
    "names": {"plural": "pools", "singular": "pool", "kind": "Pool"},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {
        "type": "object",
        "properties": {
          "spec": {"type": "object", "properties": {
            "members": {
              "type": "array",
              "x-kubernetes-list-type": "map",
              "x-kubernetes-list-map-keys": ["name"],
              "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string"}, "weight": {"type": "integer"}}}
            }
          }},
          "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }
      }}
    }]
  }
}"#;

#[tokio::test]
async fn custom_resources_use_the_crd_schema_for_server_side_apply() {
    let s = server().await;
    let u = s.url();
    let crd: Value = serde_json::from_str(MAP_LIST_CRD).unwrap();
    assert_eq!(
        post(
            u,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd
        )
        .await
        .status,
        201
    );
    let p = "/apis/example.com/v1/namespaces/default/pools";
    let pool = |member: &str, weight: i64| {
        json!({"apiVersion": "example.com/v1", "kind": "Pool", "metadata": {"name": "p"},
               "spec": {"members": [{"name": member, "weight": weight}]},
               "status": {"ready": true}})
    };
    let r = patch(
        u,
        &format!("{p}/p?fieldManager=alice"),
        APPLY,
        &pool("a", 1),
    )
    .await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    // Status sent to the main resource of a CRD with the status subresource is ignored.
    let live = r.json();
    assert!(live.get("status").is_none(), "{live}");
    let alice = mf_entry(&live, "alice", "Apply", "").expect("alice");
    assert!(alice["fieldsV1"].get("f:status").is_none(), "{alice}");

    // A second manager applies another item of the map-list: both are kept, each owned by
    // its applier (an atomic list would conflict).
    let r = patch(u, &format!("{p}/p?fieldManager=bob"), APPLY, &pool("b", 2)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let live = r.json();
    assert_eq!(
        live["spec"]["members"],
        json!([{"name": "a", "weight": 1}, {"name": "b", "weight": 2}])
    );
    let bob = mf_entry(&live, "bob", "Apply", "").expect("bob");
    assert_eq!(
        bob["fieldsV1"]["f:spec"]["f:members"],
        json!({"k:{\"name\":\"b\"}": {".": {}, "f:name": {}, "f:weight": {}}})
    );
    // Changing alice's item is a conflict on that item only.
    let r = patch(u, &format!("{p}/p?fieldManager=bob"), APPLY, &pool("a", 5)).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["message"],
        "Apply failed with 1 conflict: conflict with \"alice\": .spec.members[name=\"a\"].weight"
    );

    // Status goes through /status, with its own entry.
    let r = patch(
        u,
        &format!("{p}/p/status?fieldManager=ctrl"),
        APPLY,
        &pool("a", 1),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let live = r.json();
    assert_eq!(live["status"], json!({"ready": true}));
    assert_eq!(
        mf_entry(&live, "ctrl", "Apply", "status").expect("ctrl")["fieldsV1"],
        json!({"f:status": {"f:ready": {}}})
    );
}

#[tokio::test]
async fn apply_with_managed_fields_is_a_bad_request() {
    let s = server().await;
    let u = s.url();
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mf", "managedFields": [{"manager": "x", "operation": "Apply"}]},
        "data": {"k": "v"}});
    let r = patch(u, &format!("{CMS}/mf?fieldManager=m"), APPLY, &applied).await;
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(r.json()["message"], "metadata.managedFields must be nil");
}
