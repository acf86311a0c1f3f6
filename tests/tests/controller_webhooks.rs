//! Push webhooks end to end: the real controller process, a real `git daemon`, signed GitHub
//! and GitLab requests. The GitSync polls once an hour, so only the webhook can make it apply
//! a new commit within the test.

mod controller_common;

use controller_common::*;
use serde_json::json;

const NS: &str = "hooks";
/// The webhook token: it must never appear in a response, the log, an event or the status.
const TOKEN: &str = "canary-webhook-token-9d41c2";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_push_applies_the_new_commit_at_once_and_bad_requests_are_refused() {
    let env = Env::start(&[NS]).await;
    apply_yaml(&env.client, &secret_yaml(NS, "hook", "token", TOKEN)).await;
    let first = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "blue"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "webhook": {"secretRef": {"name": "hook"}}}),
    )
    .await;
    let status = env.wait_applied(NS, "apps", &first).await;
    let path = status["webhookPath"]
        .as_str()
        .unwrap_or_else(|| panic!("status.webhookPath: {status:#}"))
        .to_owned();
    assert!(path.starts_with("/hook/") && path.len() == 6 + 64, "{path}");

    // Refused: unknown path, no signature, a wrong signature, SHA-1 only.
    let repo_url = env.repo.git_url();
    let body = push_payload(&repo_url, "refs/heads/main");
    let refusals = [
        (
            "/hook/0000",
            vec![("X-GitHub-Event", "push".to_owned())],
            404,
        ),
        (
            path.as_str(),
            vec![("X-GitHub-Event", "push".to_owned())],
            401,
        ),
        (
            path.as_str(),
            vec![
                ("X-GitHub-Event", "push".to_owned()),
                (
                    "X-Hub-Signature-256",
                    github_signature(&body, "wrong-token"),
                ),
            ],
            401,
        ),
        (
            path.as_str(),
            vec![
                ("X-GitHub-Event", "push".to_owned()),
                ("X-Hub-Signature", "sha1=0123".to_owned()),
            ],
            401,
        ),
        (
            path.as_str(),
            vec![
                ("X-Gitlab-Event", "Push Hook".to_owned()),
                ("X-Gitlab-Token", "wrong-token".to_owned()),
            ],
            401,
        ),
    ];
    for (p, headers, want) in &refusals {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (code, text) = env.controller.post(p, &headers, &body).expect("POST");
        assert_eq!(code, *want, "{p}: {text}");
        assert!(!text.contains(TOKEN));
    }

    // A body over the 1 MiB bound is refused before anything else is read.
    let huge = vec![b' '; 1024 * 1024 + 1024];
    let (code, _) = env
        .controller
        .post(&path, &[("X-GitHub-Event", "push")], &huge)
        .expect("POST");
    assert_eq!(code, 413);

    // A ping is answered.
    let ping = br#"{"zen":"Keep it logically awesome."}"#;
    let (code, text) = env
        .controller
        .post(
            &path,
            &[
                ("X-GitHub-Event", "ping"),
                ("X-Hub-Signature-256", &github_signature(ping, TOKEN)),
            ],
            ping,
        )
        .expect("ping");
    assert_eq!((code, text.trim()), (200, "pong"));

    // A push of another branch reconciles nothing.
    let (code, text) = post_github_push(&env, &path, "refs/heads/feature", TOKEN);
    assert_eq!((code, text.trim()), (200, "reconciling 0 GitSync(s)"));

    // A push of main applies the new commit long before the hourly poll.
    let second = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "green"))],
            "second",
        )
        .expect("commit");
    let (code, text) = post_github_push(&env, &path, "refs/heads/main", TOKEN);
    assert_eq!((code, text.trim()), (200, "reconciling 1 GitSync(s)"));
    env.wait_applied(NS, "apps", &second).await;

    // GitLab's token header works the same way.
    let third = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "red"))],
            "third",
        )
        .expect("commit");
    let gitlab = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "project": {"git_http_url": repo_url},
    }))
    .expect("json");
    let (code, text) = env
        .controller
        .post(
            &path,
            &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", TOKEN)],
            &gitlab,
        )
        .expect("gitlab push");
    assert_eq!((code, text.trim()), (200, "reconciling 1 GitSync(s)"));
    env.wait_applied(NS, "apps", &third).await;

    // A burst beyond the hook's rate limit gets 429 (and is counted as refused).
    let mut limited = 0;
    for _ in 0..15 {
        let (code, _) = env
            .controller
            .post(&path, &[("X-GitHub-Event", "push")], &body)
            .expect("POST");
        if code == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "no request of the burst was rate-limited");

    // Metrics count both; the token is nowhere.
    let (_, metrics) = env.controller.get("/metrics").expect("metrics");
    assert!(
        metrics.contains(r#"sealsync_webhooks_received_total{kind="push"} 3"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sealsync_webhooks_rejected_total{kind="bad_signature"} 2"#),
        "{metrics}"
    );
    // Both pushes that reached a GitSync were timed from the request to their apply.
    assert!(
        metrics.contains("sealsync_push_to_applied_seconds_count 2"),
        "{metrics}"
    );
    let status = env.gitsync_status(NS, "apps").await;
    assert!(!status.to_string().contains(TOKEN));
    assert!(!env.controller.log().contains(TOKEN));
    assert!(!metrics.contains(TOKEN));
}
