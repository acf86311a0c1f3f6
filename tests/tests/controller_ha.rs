//! High availability and sharding with the real controller processes: leader election on a
//! Lease (a standby forwards pushes, takes over on SIGTERM at once and on SIGKILL within the
//! lease duration), and shards that split the GitSyncs by label.

mod controller_common;

use std::time::{Duration, Instant};

use controller_common::*;
use kube::api::Api;
use sealsync_tests::controller::ControllerProcess;
use serde_json::json;

const NS: &str = "ha";
const TOKEN: &str = "canary-ha-webhook-token-51c0aa";

async fn lease(env: &Env, name: &str) -> serde_json::Value {
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), CONTROLLER_NS);
    match api.get_opt(name).await.expect("get the Lease") {
        Some(lease) => serde_json::to_value(lease.spec).expect("json"),
        None => serde_json::Value::Null,
    }
}

async fn another_controller(env: &Env, dir: &str, args: &[&str]) -> ControllerProcess {
    let dir = env.dir.path().join(dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    start_controller(&env.kubeconfig, &dir, &args, &[]).await
}

fn reconciled(log: &str, gitsync: &str) -> bool {
    log.lines()
        .any(|l| l.contains("reconciled") && l.contains(gitsync))
}

/// Waits until `log()` holds the `reconciled` line of `gitsync`: the line follows the status
/// write, so a test that saw the status may read the log a moment before it.
async fn wait_reconciled(what: &str, log: impl Fn() -> String, gitsync: &str) {
    wait_for_value(
        what,
        Duration::from_secs(10),
        || async { reconciled(&log(), gitsync).then_some(()) },
        &log,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_a_standby_forwards_pushes_and_takes_over() {
    let mut env = Env::start_with(&[NS], &["--leader-elect".to_owned()], &[]).await;
    wait_for_value(
        "the first replica to lead",
        Duration::from_secs(20),
        || async {
            let spec = lease(&env, "sealsync-controller").await;
            spec["holderIdentity"].as_str().map(str::to_owned)
        },
        || env.controller.log_tail(20),
    )
    .await;
    let mut standby = another_controller(&env, "standby", &["--leader-elect"]).await;
    apply_yaml(&env.client, &secret_yaml(NS, "hook", "token", TOKEN)).await;
    let first = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "n", "v1"))],
            "first",
        )
        .expect("commit");
    // Hourly polls: only a push or a new leader's first pass can apply a later commit.
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "webhook": {"secretRef": {"name": "hook"}}}),
    )
    .await;
    let status = env.wait_applied(NS, "apps", &first).await;
    let path = status["webhookPath"]
        .as_str()
        .expect("webhookPath")
        .to_owned();
    assert!(
        !reconciled(&standby.log(), "ha/apps"),
        "the standby reconciled:\n{}",
        standby.log()
    );
    assert!(!standby.log().contains("controller: running"));
    assert!(metrics_of(&standby).contains("sealsync_leader{lease=\"sealsync-controller\"} 0"));
    assert!(
        metrics_of(&env.controller).contains("sealsync_leader{lease=\"sealsync-controller\"} 1")
    );

    // A push that reaches the standby (a Service picks any replica) is handed to the leader.
    let second = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "n", "v2"))],
            "second",
        )
        .expect("commit");
    let body = push_payload(&env.repo.git_url(), "refs/heads/main");
    let signature = github_signature(&body, TOKEN);
    let accepted = wait_for_value(
        "the standby to know the webhook",
        Duration::from_secs(20),
        || async {
            let (code, text) = standby
                .post(
                    &path,
                    &[
                        ("X-GitHub-Event", "push"),
                        ("X-Hub-Signature-256", &signature),
                    ],
                    &body,
                )
                .expect("POST");
            (code == 200).then_some(text)
        },
        || standby.log_tail(20),
    )
    .await;
    assert_eq!(accepted.trim(), "reconciling 1 GitSync(s)");
    env.wait_applied(NS, "apps", &second).await;
    assert!(standby.log().contains("asked the leader to reconcile"));
    assert!(!reconciled(&standby.log(), "ha/apps"));

    // SIGTERM: the leader stops, releases the Lease and exits 0; the standby leads at once.
    let holder_before = lease(&env, "sealsync-controller").await["holderIdentity"].clone();
    let stopped = Instant::now();
    let status = env
        .controller
        .terminate(Duration::from_secs(30))
        .expect("terminate")
        .unwrap_or_else(|| {
            panic!(
                "the leader did not exit on SIGTERM:\n{}",
                env.controller.log_tail(30)
            )
        });
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        env.controller.log_tail(30)
    );
    let leader_log = env.controller.log();
    assert!(leader_log.contains("released the lease"), "{leader_log}");
    let third = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "n", "v3"))],
            "third",
        )
        .expect("commit");
    wait_for(
        "the standby to apply the next commit after SIGTERM",
        Duration::from_secs(30),
        || async {
            let st = env.gitsync_status(NS, "apps").await;
            st["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&third))
        },
    )
    .await;
    let after_sigterm = stopped.elapsed();
    let spec = lease(&env, "sealsync-controller").await;
    assert_ne!(spec["holderIdentity"], holder_before);
    assert!(spec["leaseTransitions"].as_i64() >= Some(1), "{spec:#}");
    wait_reconciled("the standby's reconciled line", || standby.log(), "ha/apps").await;

    // SIGKILL: a third replica takes over once the lease expires (15 s).
    let third_replica = another_controller(&env, "third", &["--leader-elect"]).await;
    standby.kill().expect("kill");
    let killed = Instant::now();
    let fourth = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "n", "v4"))],
            "fourth",
        )
        .expect("commit");
    wait_for(
        "the third replica to apply the next commit after SIGKILL",
        Duration::from_secs(45),
        || async {
            let st = env.gitsync_status(NS, "apps").await;
            st["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&fourth))
        },
    )
    .await;
    let after_sigkill = killed.elapsed();
    wait_reconciled(
        "the third replica's reconciled line",
        || third_replica.log(),
        "ha/apps",
    )
    .await;
    eprintln!(
        "takeover: after SIGTERM {:.1} s, after SIGKILL {:.1} s",
        after_sigterm.as_secs_f64(),
        after_sigkill.as_secs_f64()
    );
    for log in [leader_log, standby.log(), third_replica.log()] {
        assert!(!log.contains(TOKEN), "the webhook token was logged");
    }
}

fn metrics_of(controller: &ControllerProcess) -> String {
    controller.get("/metrics").expect("GET /metrics").1
}

async fn apply_sharded_gitsync(env: &Env, name: &str, path: &str, shard: Option<&str>) {
    let labels = match shard {
        Some(shard) => json!({"sealsync.dev/shard": shard}),
        None => json!({}),
    };
    env.apply_labelled_gitsync(NS, name, labels, json!({"path": path}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_split_the_gitsyncs_by_label_each_with_its_own_lease() {
    let shard_a = [
        "--leader-elect".to_owned(),
        "--watch-label-selector".to_owned(),
        "sealsync.dev/shard=a".to_owned(),
    ];
    let env = Env::start_with(&[NS], &shard_a, &[]).await;
    let shard_b = another_controller(
        &env,
        "shard-b",
        &[
            "--leader-elect",
            "--watch-label-selector",
            "sealsync.dev/shard=b",
        ],
    )
    .await;
    let commit = env
        .repo
        .commit_files(
            &[
                ("a/cm.yaml", configmap_yaml(NS, "from-a", "shard", "a")),
                ("b/cm.yaml", configmap_yaml(NS, "from-b", "shard", "b")),
                (
                    "rest/cm.yaml",
                    configmap_yaml(NS, "from-rest", "shard", "none"),
                ),
            ],
            "shards",
        )
        .expect("commit");
    apply_sharded_gitsync(&env, "team-a", "a", Some("a")).await;
    apply_sharded_gitsync(&env, "team-b", "b", Some("b")).await;
    apply_sharded_gitsync(&env, "unsharded", "rest", None).await;
    env.wait_applied(NS, "team-a", &commit).await;
    env.wait_applied(NS, "team-b", &commit).await;

    wait_reconciled(
        "shard a's reconciled line",
        || env.controller.log(),
        "ha/team-a",
    )
    .await;
    wait_reconciled("shard b's reconciled line", || shard_b.log(), "ha/team-b").await;
    let log_a = env.controller.log();
    let log_b = shard_b.log();
    assert!(
        reconciled(&log_a, "ha/team-a") && !reconciled(&log_a, "ha/team-b"),
        "{log_a}"
    );
    assert!(
        reconciled(&log_b, "ha/team-b") && !reconciled(&log_b, "ha/team-a"),
        "{log_b}"
    );
    // No shard selects the unlabelled GitSync: nobody touches it.
    assert_eq!(
        env.gitsync_status(NS, "unsharded").await,
        serde_json::Value::Null
    );
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "from-rest")
        .await
        .is_none());

    // One Lease per shard, one for the keys: each shard has a leader; one replica holds the
    // keys.
    let api: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), CONTROLLER_NS);
    let leases = api.list(&Default::default()).await.expect("leases");
    let mut names: Vec<String> = leases
        .items
        .iter()
        .filter_map(|l| l.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(
        names.contains(&"sealsync-controller-keys".to_owned()),
        "{names:?}"
    );
    for lease in &leases.items {
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        assert!(holder.is_some_and(|h| !h.is_empty()), "{lease:?}");
    }
    let shard_holders: std::collections::BTreeSet<_> = leases
        .items
        .iter()
        .filter(|l| l.metadata.name.as_deref() != Some("sealsync-controller-keys"))
        .filter_map(|l| l.spec.as_ref()?.holder_identity.clone())
        .collect();
    assert_eq!(
        shard_holders.len(),
        2,
        "each shard's Lease has its own holder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_abandons_an_apply_that_outlasts_the_shutdown_timeout() {
    let mut env = Env::start_with(
        &[NS],
        &[
            "--leader-elect".to_owned(),
            "--shutdown-timeout=2s".to_owned(),
        ],
        &[],
    )
    .await;
    let first = env
        .repo
        .commit_files(
            &[("cm-00.yaml", configmap_yaml(NS, "cm-00", "k", "v"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &first).await;

    // Every ConfigMap write (dry-runs included) now takes 3 s: the next revision's apply
    // lasts far longer than the shutdown timeout.
    env.faults().add_latency(
        Some("PATCH"),
        &format!("/api/v1/namespaces/{NS}/configmaps"),
        Duration::from_secs(3),
    );
    let files: Vec<(String, String)> = (0..30)
        .map(|i| {
            (
                format!("cm-{i:02}.yaml"),
                configmap_yaml(NS, &format!("cm-{i:02}"), "k", "second"),
            )
        })
        .collect();
    let second = env.repo.commit_files(&files, "thirty").expect("commit");
    // The 2 s poll finds the commit; its dry-runs alone take about 12 s. The sync publishes
    // its progress while it runs: the apply of the new revision is under way.
    wait_for(
        "the new revision's apply to be under way",
        Duration::from_secs(30),
        || async {
            let status = env.gitsync_status(NS, "apps").await;
            condition(&status, "Reconciling").is_some_and(|c| {
                let message = c["message"].as_str().unwrap_or_default();
                c["status"] == "True" && message.starts_with("apply:") && message.contains(&second)
            })
        },
    )
    .await;
    let asked = Instant::now();
    let status = env
        .controller
        .terminate(Duration::from_secs(30))
        .expect("terminate")
        .unwrap_or_else(|| panic!("no exit on SIGTERM:\n{}", env.controller.log_tail(30)));
    let took = asked.elapsed();
    assert!(
        status.success(),
        "{status:?}\n{}",
        env.controller.log_tail(30)
    );
    // The 2 s bound, the Lease's release and the exit; never the apply's ~30 s.
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let log = env.controller.log();
    assert!(log.contains("were abandoned"), "{log}");
    assert!(log.contains("released the lease"), "{log}");
    let st = env.gitsync_status(NS, "apps").await;
    assert!(
        st["lastAppliedRevision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&first)),
        "the abandoned revision was recorded as applied: {st:#}"
    );

    // The next leader applies the revision again, whole.
    env.faults().clear_faults();
    let next = another_controller(&env, "next", &["--leader-elect"]).await;
    let st = wait_for_value(
        "the next leader to apply the abandoned revision",
        Duration::from_secs(60),
        || async {
            let st = env.gitsync_status(NS, "apps").await;
            st["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&second))
                .then_some(st)
        },
        || next.log_tail(20),
    )
    .await;
    assert_eq!(
        st["inventory"]["entries"].as_array().map(Vec::len),
        Some(30)
    );
    eprintln!(
        "SIGTERM during an apply: exited after {:.1} s",
        took.as_secs_f64()
    );
}
