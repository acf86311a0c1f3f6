//! `spec.verify` end to end: commits and tags signed by `git` itself, with SSH keys
//! (`ssh-keygen`) and OpenPGP keys (GnuPG), verified by the real controller before anything is
//! rendered, decrypted or applied. Every failure checks that the cluster keeps the last
//! verified revision and that a sealed canary of the rejected revision was never decrypted.

mod controller_common;

use controller_common::*;
use sealsync_tests::git::BareRepo;
use sealsync_tests::signing::{GitSigner, OpenPgpOptions};
use serde_json::json;
use std::time::Duration;

const NS: &str = "platform";
const CANARY: &str = "canary-s1gned-77f0";
const REJECTED_CANARY: &str = "canary-rej3cted-4b1e";
const TOKEN: &str = "canary-webhook-token-5a2d";

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

/// The keys Secret: one entry per trusted key.
fn keys_secret_yaml(name: &str, entries: &[(String, Vec<u8>)]) -> String {
    use base64::Engine as _;
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    serde_json::to_string(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": data,
    }))
    .expect("json")
}

/// A team's tree: its Namespace, settings and a sealed Secret, under `shop/`.
fn tree(env: &Env, mode: &str, secret: &str, value: &str) -> Vec<(String, String)> {
    vec![
        ("shop/namespace.yaml".to_owned(), namespace_yaml("shop")),
        (
            "shop/settings.yaml".to_owned(),
            configmap_yaml("shop", "settings", "mode", mode),
        ),
        (
            format!("shop/{secret}.yaml"),
            env.seal(&secret_yaml("shop", secret, "password", value)),
        ),
    ]
}

async fn settings_mode(env: &Env) -> String {
    let live = env
        .get("v1", "ConfigMap", Some("shop"), "settings")
        .await
        .expect("the ConfigMap");
    live.data["data"]["mode"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn ready_reason(status: &serde_json::Value) -> (String, String) {
    let c = condition(status, "Ready").cloned().unwrap_or_default();
    (
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Waits until the GitSync's Ready condition satisfies `want` (reason, message); its status.
/// On timeout, the last status and the controller's log say what it said instead.
async fn wait_ready_condition(
    env: &Env,
    what: &str,
    want: impl Fn(&str, &str) -> bool,
) -> serde_json::Value {
    let last = std::sync::Mutex::new(serde_json::Value::Null);
    wait_for_value(
        what,
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(NS, "shop").await;
            let (reason, message) = ready_reason(&status);
            let matched = want(&reason, &message);
            *last.lock().expect("lock") = status.clone();
            matched.then_some(status)
        },
        || {
            format!(
                "{}\nlast status: {:#}",
                env.controller.log_tail(30),
                last.lock().expect("lock")
            )
        },
    )
    .await
}

/// Waits until the GitSync reports `VerificationFailed` for `commit`; its status.
async fn wait_rejected(env: &Env, name: &str, commit: &str) -> serde_json::Value {
    let status = env.wait_failed(NS, name, commit).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "VerificationFailed", "{status:#}");
    let verified = condition(&status, "SourceVerified").expect("SourceVerified");
    assert_eq!(verified["status"], "False", "{status:#}");
    assert_eq!(verified["reason"], "VerificationFailed");
    assert_eq!(verified["message"].as_str(), Some(message.as_str()));
    status
}

/// Nothing of the rejected revision reached the cluster: the last verified revision is still
/// the applied one, its settings are live, and the Secret only the rejected revision holds was
/// never written (so never decrypted).
async fn assert_kept(env: &Env, name: &str, applied: &str, mode: &str) {
    let status = env.gitsync_status(NS, name).await;
    assert!(
        status["lastAppliedRevision"]
            .as_str()
            .is_some_and(|r| r.ends_with(applied)),
        "{status:#}"
    );
    assert_eq!(settings_mode(env).await, mode);
    assert!(
        env.get("v1", "Secret", Some("shop"), "rejected")
            .await
            .is_none(),
        "a Secret of a rejected revision was written"
    );
}

async fn assert_no_canary(env: &Env) {
    let log = env.controller.log();
    for canary in [CANARY, REJECTED_CANARY, TOKEN] {
        assert!(!log.contains(canary), "the log holds {canary}");
        let status = env.gitsync_status(NS, "shop").await.to_string();
        assert!(!status.contains(canary), "the status holds {canary}");
        assert!(!events_json(env, NS).await.contains(canary));
        assert!(!metrics_text(env).contains(canary));
    }
}

fn request_sync(n: u32) -> String {
    format!("sync-{n}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_commits_signed_by_a_trusted_ssh_key_are_decrypted_and_applied() {
    let env = Env::start(&[NS]).await;
    let (alice, mallory) = tokio::task::spawn_blocking(|| {
        (
            GitSigner::ssh("alice@example.com").expect("alice"),
            GitSigner::ssh("mallory@example.com").expect("mallory"),
        )
    })
    .await
    .expect("join");
    let entry = alice.trusted_entry("alice").expect("alice's key");
    apply_yaml(&env.client, &keys_secret_yaml("trusted", &[entry])).await;
    apply_yaml(&env.client, &secret_yaml(NS, "hook", "token", TOKEN)).await;
    let signed = env
        .repo
        .commit_files_signed(&tree(&env, "blue", "db", CANARY), "blue", &alice)
        .expect("commit");
    env.apply_gitsync(
        NS,
        "shop",
        json!({"path": "shop", "interval": "1h", "webhook": {"secretRef": {"name": "hook"}},
               "verify": {"mode": "HEAD", "secretRef": {"name": "trusted"}}}),
    )
    .await;
    let status = env.wait_applied(NS, "shop", &signed).await;
    let verified = condition(&status, "SourceVerified").expect("SourceVerified");
    assert_eq!(verified["status"], "True", "{status:#}");
    assert!(
        verified["message"]
            .as_str()
            .is_some_and(|m| m.contains(alice.fingerprint()) && m.contains("alice.sshpub")),
        "{status:#}"
    );
    assert!(status["verifiedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&signed)));
    let signer = &status["appliedSigners"][0];
    assert_eq!(signer["object"], "commit", "{status:#}");
    assert_eq!(signer["id"], signed.as_str());
    assert_eq!(signer["method"], "ssh");
    assert_eq!(signer["fingerprint"], alice.fingerprint());
    assert_eq!(signer["key"], "alice.sshpub");
    assert_eq!(signer["identity"], "alice@example.com");
    assert!(env.get("v1", "Secret", Some("shop"), "db").await.is_some());

    // `sealsync status` names who signed the applied revision.
    let stdout = run_cli_ok(&[
        "status",
        "--kubeconfig",
        &env.kubeconfig_arg(),
        "-n",
        NS,
        "shop",
    ]);
    assert!(
        stdout.contains(alice.fingerprint()) && stdout.contains("alice.sshpub"),
        "{stdout}"
    );

    // Each of these reaches nothing: not its ConfigMap, not its sealed Secret.
    let mut sync = 0;
    let mut rejected = Vec::new();
    let unsigned = env
        .repo
        .commit_files(&tree(&env, "red", "rejected", REJECTED_CANARY), "unsigned")
        .expect("commit");
    rejected.push((unsigned, "is not signed".to_owned()));
    let by_mallory = env
        .repo
        .commit_files_signed(
            &tree(&env, "red", "rejected", REJECTED_CANARY),
            "mallory",
            &mallory,
        )
        .expect("commit");
    rejected.push((
        by_mallory,
        format!(
            "{}, which is not among the trusted keys",
            mallory.fingerprint()
        ),
    ));
    // Alice's good signature, copied onto other content.
    let other = env
        .repo
        .commit_files(
            &tree(&env, "red", "rejected", REJECTED_CANARY),
            "other content",
        )
        .expect("commit");
    let grafted = env.repo.graft_signature(&signed, &other).expect("graft");
    env.repo
        .set_branch("main", &grafted)
        .expect("push the graft");
    rejected.push((grafted, "does not match its content".to_owned()));
    for (commit, why) in &rejected {
        env.repo.set_branch("main", commit).expect("move main");
        sync += 1;
        env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", &request_sync(sync))
            .await;
        let status = wait_rejected(&env, "shop", commit).await;
        let (_, message) = ready_reason(&status);
        assert!(
            message.contains(&format!("commit {commit}")) && message.contains(why.as_str()),
            "{message}"
        );
        assert_kept(&env, "shop", &signed, "blue").await;
        assert!(status["verifiedRevision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&signed)));
    }
    assert!(events_json(&env, NS).await.contains("VerificationFailed"));
    assert!(
        metric_value(
            &env,
            "sealsync_verification_failures_total{reason=\"untrusted_key\"}"
        ) >= 1.0
    );
    assert!(
        metric_value(
            &env,
            "sealsync_verification_failures_total{reason=\"unsigned\"}"
        ) >= 1.0
    );

    // Self-heal keeps healing toward the last verified revision while the head is rejected.
    let api = dynamic_api(&env.client, "v1", "ConfigMap", Some("shop")).await;
    api.patch(
        "settings",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({"data": {"mode": "edited"}})),
    )
    .await
    .expect("edit the ConfigMap");
    wait_for(
        "self-heal to undo the edit",
        Duration::from_secs(60),
        || async { settings_mode(&env).await == "blue" },
    )
    .await;

    // A force-push back to an unsigned commit after a signed one, announced by a webhook.
    let path = env.gitsync_status(NS, "shop").await["webhookPath"]
        .as_str()
        .expect("webhookPath")
        .to_owned();
    env.repo.create_branch("side", &signed).expect("branch");
    let side = env
        .repo
        .commit_files_on(
            "side",
            &tree(&env, "green", "rejected", REJECTED_CANARY),
            "unsigned",
        )
        .expect("commit");
    env.repo.set_branch("main", &side).expect("force-push");
    let (code, text) = post_github_push(&env, &path, "refs/heads/main", TOKEN);
    assert_eq!((code, text.trim()), (200, "reconciling 1 GitSync(s)"));
    let status = wait_rejected(&env, "shop", &side).await;
    assert!(ready_reason(&status).1.contains("is not signed"));
    assert_kept(&env, "shop", &signed, "blue").await;

    // A signed commit on top is applied again.
    let fixed = env
        .repo
        .commit_files_signed(&tree(&env, "green", "db", CANARY), "green", &alice)
        .expect("commit");
    sync += 1;
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", &request_sync(sync))
        .await;
    let status = env.wait_applied(NS, "shop", &fixed).await;
    assert_eq!(
        condition(&status, "SourceVerified").expect("condition")["status"],
        "True"
    );
    assert_eq!(settings_mode(&env).await, "green");
    assert_no_canary(&env).await;
}

/// Makes a signed commit on a branch of its own, to be pushed to `main` later (after its key
/// changed).
fn signed_aside(
    repo: &BareRepo,
    branch: &str,
    files: &[(String, String)],
    signer: &GitSigner,
) -> String {
    repo.create_branch(branch, "main").expect("branch");
    repo.commit_files_signed_on(branch, files, branch, signer)
        .expect("commit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openpgp_keys_subkeys_expiry_and_revocation_are_honoured() {
    let env = Env::start(&[NS]).await;
    let (bob, carol, dave) = tokio::task::spawn_blocking(|| {
        (
            GitSigner::openpgp("Bob", "bob@example.com", OpenPgpOptions::default()).expect("bob"),
            GitSigner::openpgp(
                "Carol",
                "carol@example.com",
                OpenPgpOptions {
                    signing_subkey: true,
                    ..Default::default()
                },
            )
            .expect("carol"),
            GitSigner::openpgp(
                "Dave",
                "dave@example.com",
                OpenPgpOptions {
                    expired: true,
                    ..Default::default()
                },
            )
            .expect("dave"),
        )
    })
    .await
    .expect("join");
    let entries = vec![
        bob.trusted_entry("bob").expect("bob"),
        carol.trusted_entry("carol").expect("carol"),
        dave.trusted_entry("dave").expect("dave"),
    ];
    apply_yaml(&env.client, &keys_secret_yaml("trusted", &entries)).await;
    let by_bob = env
        .repo
        .commit_files_signed(&tree(&env, "blue", "db", CANARY), "bob", &bob)
        .expect("commit");
    env.apply_gitsync(
        NS,
        "shop",
        json!({"path": "shop", "verify": {"secretRef": {"name": "trusted"}}}),
    )
    .await;
    let status = env.wait_applied(NS, "shop", &by_bob).await;
    let signer = &status["appliedSigners"][0];
    assert_eq!(signer["method"], "openpgp", "{status:#}");
    assert_eq!(signer["fingerprint"], bob.fingerprint());
    assert_eq!(signer["identity"], "Bob <bob@example.com>");

    // A signing subkey: the subkey's fingerprint, and its primary key's.
    let by_carol = env
        .repo
        .commit_files_signed(&tree(&env, "green", "db", CANARY), "carol", &carol)
        .expect("commit");
    let status = env.wait_applied(NS, "shop", &by_carol).await;
    let signer = &status["appliedSigners"][0];
    assert_eq!(signer["fingerprint"], carol.fingerprint(), "{status:#}");
    assert!(signer["primaryFingerprint"].is_string(), "{status:#}");
    assert_eq!(signer["key"], "carol.asc");

    // An expired key: its signature is good, the key is not.
    let by_dave = env
        .repo
        .commit_files_signed(
            &tree(&env, "red", "rejected", REJECTED_CANARY),
            "dave",
            &dave,
        )
        .expect("commit");
    let status = wait_rejected(&env, "shop", &by_dave).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains(dave.fingerprint()) && message.contains("expired"),
        "{message}"
    );
    assert_kept(&env, "shop", &by_carol, "green").await;

    // Carol's subkey signs a commit, then is revoked; the keys Secret learns of it, and the
    // commit pushed afterwards is refused.
    let pending = signed_aside(
        &env.repo,
        "pending",
        &tree(&env, "red", "rejected", REJECTED_CANARY),
        &carol,
    );
    let revoked = tokio::task::spawn_blocking(move || {
        let exported = carol.revoke_signing_subkey().expect("revoke");
        (carol, exported)
    })
    .await
    .expect("join");
    let (carol, exported) = revoked;
    let entries = vec![
        bob.trusted_entry("bob").expect("bob"),
        ("carol.asc".to_owned(), exported),
    ];
    apply_yaml(&env.client, &keys_secret_yaml("trusted", &entries)).await;
    env.repo.set_branch("main", &pending).expect("push");
    let status = wait_rejected(&env, "shop", &pending).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains(carol.fingerprint()) && message.contains("revoked"),
        "{message}"
    );
    assert_kept(&env, "shop", &by_carol, "green").await;
    assert!(
        metric_value(
            &env,
            "sealsync_verification_failures_total{reason=\"revoked_key\"}"
        ) >= 1.0
    );
    assert_no_canary(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_tags_are_verified_in_tag_and_tag_and_head_modes() {
    let env = Env::start(&[NS]).await;
    let (alice, bob) = tokio::task::spawn_blocking(|| {
        (
            GitSigner::ssh("alice@example.com").expect("alice"),
            GitSigner::openpgp("Bob", "bob@example.com", OpenPgpOptions::default()).expect("bob"),
        )
    })
    .await
    .expect("join");
    let entries = vec![
        alice.trusted_entry("alice").expect("alice"),
        bob.trusted_entry("bob").expect("bob"),
    ];
    apply_yaml(&env.client, &keys_secret_yaml("trusted", &entries)).await;
    // An unsigned commit under a tag signed by Alice (SSH).
    let unsigned = env
        .repo
        .commit_files(&tree(&env, "blue", "db", CANARY), "unsigned")
        .expect("commit");
    let tag = env
        .repo
        .create_signed_tag("v1", &unsigned, "release 1", &alice)
        .expect("tag");
    // Each apply states the whole spec: server-side apply drops the fields it leaves out.
    let spec = |git_ref: serde_json::Value, mode: &str| {
        json!({"path": "shop", "ref": git_ref,
               "verify": {"mode": mode, "secretRef": {"name": "trusted"}}})
    };
    env.apply_gitsync(NS, "shop", spec(json!({"tag": "v1"}), "Tag"))
        .await;
    let status = env.wait_applied(NS, "shop", &unsigned).await;
    let signer = &status["appliedSigners"][0];
    assert_eq!(signer["object"], "tag", "{status:#}");
    assert_eq!(signer["id"], tag.as_str());
    assert_eq!(signer["fingerprint"], alice.fingerprint());

    // Push access alone: v1 re-pointed, as a lightweight tag, at a commit of the attacker's;
    // back at the signed tag; then at that commit again, which the controller holds by now.
    env.repo.create_branch("evil", &unsigned).expect("branch");
    let evil = env
        .repo
        .commit_files_on(
            "evil",
            &tree(&env, "red", "rejected", REJECTED_CANARY),
            "evil",
        )
        .expect("commit");
    env.repo.point_tag("v1", &evil).expect("re-point v1");
    let status = wait_rejected(&env, "shop", &evil).await;
    assert!(
        ready_reason(&status).1.contains("lightweight tag"),
        "{status:#}"
    );
    env.repo.point_tag("v1", &tag).expect("re-point v1");
    env.wait_applied(NS, "shop", &unsigned).await;
    env.repo.point_tag("v1", &evil).expect("re-point v1");
    wait_rejected(&env, "shop", &evil).await;
    assert_kept(&env, "shop", &unsigned, "blue").await;
    // A signed tag of another name, or of another commit, pushed under v1.
    let other = env
        .repo
        .create_signed_tag("v0-rc", &evil, "a candidate", &alice)
        .expect("tag");
    env.repo.point_tag("v1", &other).expect("re-point v1");
    // The same commit as the last refusal: wait for the new reason.
    wait_ready_condition(
        &env,
        "a tag signed under another name to be refused",
        |reason, message| {
            reason == "VerificationFailed" && message.contains("it was signed as tag \"v0-rc\"")
        },
    )
    .await;
    assert_kept(&env, "shop", &unsigned, "blue").await;
    env.repo.point_tag("v1", &tag).expect("re-point v1");
    env.wait_applied(NS, "shop", &unsigned).await;

    // TagAndHEAD also wants the commit signed.
    env.apply_gitsync(NS, "shop", spec(json!({"tag": "v1"}), "TagAndHEAD"))
        .await;
    wait_ready_condition(
        &env,
        "TagAndHEAD to refuse the unsigned commit",
        |reason, message| {
            reason == "VerificationFailed"
                && message.contains(&format!("commit {unsigned}: it is not signed"))
        },
    )
    .await;

    // A signed commit under a tag signed by Bob (OpenPGP): both signers are recorded.
    let signed = env
        .repo
        .commit_files_signed(&tree(&env, "green", "db", CANARY), "signed", &alice)
        .expect("commit");
    env.repo
        .create_signed_tag("v2", &signed, "release 2", &bob)
        .expect("tag");
    env.apply_gitsync(NS, "shop", spec(json!({"tag": "v2"}), "TagAndHEAD"))
        .await;
    let status = env.wait_applied(NS, "shop", &signed).await;
    let signers = status["appliedSigners"].as_array().expect("signers");
    assert_eq!(signers.len(), 2, "{status:#}");
    assert_eq!(signers[0]["object"], "tag");
    assert_eq!(signers[0]["method"], "openpgp");
    assert_eq!(signers[1]["object"], "commit");
    assert_eq!(signers[1]["method"], "ssh");

    // A lightweight tag has no signature to check.
    let lightweight = env
        .repo
        .commit_files_signed(
            &tree(&env, "red", "rejected", REJECTED_CANARY),
            "signed",
            &alice,
        )
        .expect("commit");
    env.repo.create_tag("v3", &lightweight).expect("tag");
    env.apply_gitsync(NS, "shop", spec(json!({"tag": "v3"}), "TagAndHEAD"))
        .await;
    let status = wait_rejected(&env, "shop", &lightweight).await;
    assert!(
        ready_reason(&status).1.contains("lightweight tag"),
        "{status:#}"
    );
    assert_kept(&env, "shop", &signed, "green").await;

    // Tag modes need a tag.
    env.apply_gitsync(NS, "shop", spec(json!({"branch": "main"}), "TagAndHEAD"))
        .await;
    wait_ready_condition(
        &env,
        "a branch in TagAndHEAD mode to be refused",
        |_, message| message.contains("set spec.ref.tag"),
    )
    .await;
    assert_no_canary(&env).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_verified_sources_refuses_gitsyncs_without_verify_and_bad_keys_are_named() {
    let env = Env::start_with(&[NS], &["--require-verified-sources".to_owned()], &[]).await;
    let alice = tokio::task::spawn_blocking(|| GitSigner::ssh("alice@example.com").expect("alice"))
        .await
        .expect("join");
    let signed = env
        .repo
        .commit_files_signed(&tree(&env, "blue", "db", CANARY), "signed", &alice)
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop"})).await;
    wait_ready_condition(
        &env,
        "the GitSync without spec.verify to be refused",
        |reason, message| reason == "InvalidSpec" && message.contains("--require-verified-sources"),
    )
    .await;
    assert!(env.get("v1", "Namespace", None, "shop").await.is_none());

    // The keys Secret is missing, then holds an entry of neither format.
    env.apply_gitsync(
        NS,
        "shop",
        json!({"path": "shop", "verify": {"secretRef": {"name": "trusted"}}}),
    )
    .await;
    wait_ready_condition(
        &env,
        "the missing keys Secret to be named",
        |reason, message| {
            reason == "VerificationFailed" && message.contains("Secret platform/trusted not found")
        },
    )
    .await;
    let (_, public) = alice.trusted_entry("alice").expect("key");
    apply_yaml(
        &env.client,
        &keys_secret_yaml("trusted", &[("alice.pub".to_owned(), public.clone())]),
    )
    .await;
    wait_ready_condition(&env, "the misnamed entry to be named", |_, message| {
        message.contains("entry \"alice.pub\"")
    })
    .await;
    assert!(env.get("v1", "Namespace", None, "shop").await.is_none());
    apply_yaml(
        &env.client,
        &keys_secret_yaml("trusted", &[("alice.sshpub".to_owned(), public)]),
    )
    .await;
    env.wait_applied(NS, "shop", &signed).await;
    assert_no_canary(&env).await;
}
