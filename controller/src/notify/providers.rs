//! Each Notifier type's request: where it goes, its headers and its body. The Git providers
//! set a commit status on the commit a notice is about, under the context
//! `sealsync/<namespace>/<name>`; a notice without a commit (a drift correction) sets none.

use sealsync_core::giturl::is_repository_path;
use sealsync_core::{NotifierType, NotifyEvent};
use serde_json::{json, Value as Json};

use super::{payload, Notice};

/// One HTTP request to send.
pub(super) struct Request {
    pub(super) url: String,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values are tokens, and Slack's and Teams' URLs are credentials: never printed.
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Request")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// What a request needs besides the notice.
pub(super) struct Target<'a> {
    pub(super) kind: NotifierType,
    /// The URL (webhook, Slack, Teams) or the API's base URL.
    pub(super) address: Option<&'a str>,
    pub(super) token: Option<&'a [u8]>,
    /// `owner/name`, from the spec or the GitSync's URL.
    pub(super) repository: Option<&'a str>,
    /// The host of the GitSync's URL: a Git provider's token goes to its public API only
    /// when the repository is there.
    pub(super) git_host: Option<&'a str>,
    /// The reporting instance, for the webhook body.
    pub(super) instance: &'a str,
}

/// The longest description a commit status carries (GitHub's limit).
const MAX_DESCRIPTION: usize = 140;

/// The request for `notice`, `None` when this type has nothing to say about it, or why none
/// can be made.
pub(super) fn request(target: &Target<'_>, notice: &Notice) -> Result<Option<Request>, String> {
    let text = |what: &str| {
        format!(
            "{} {what} {} {}/{}: {}: {}",
            notice_icon(notice.event),
            notice.kind,
            notice.namespace,
            notice.name,
            notice.reason,
            notice.message
        )
    };
    let address = |default: Option<&str>| {
        target
            .address
            .or(default)
            .map(|a| a.trim_end_matches('/').to_owned())
            .ok_or_else(|| {
                "spec.address (or address in the Secret) is required for this type".to_owned()
            })
    };
    let json_request = |url: String, body: Json, headers: Vec<(&'static str, String)>| {
        let body = serde_json::to_vec(&body).map_err(|_| "not representable as JSON".to_owned())?;
        Ok(Some(Request { url, headers, body }))
    };
    match target.kind {
        NotifierType::Webhook => {
            let body = serde_json::to_vec(&payload::body(notice, target.instance))
                .map_err(|_| "not representable as JSON".to_owned())?;
            let mut headers = Vec::new();
            if let Some(token) = target.token {
                headers.push(("X-Signature", payload::signature(&body, token)));
            }
            Ok(Some(Request {
                url: address(None)?,
                headers,
                body,
            }))
        }
        NotifierType::Slack => json_request(
            address(None)?,
            json!({"text": format!("{}{}", text("sealsync:"), revision_line(notice))}),
            Vec::new(),
        ),
        NotifierType::Msteams => json_request(
            address(None)?,
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            {"type": "TextBlock", "weight": "Bolder", "wrap": true,
                             "text": format!("{} {}/{}: {}", notice.kind, notice.namespace, notice.name, notice.reason)},
                            {"type": "TextBlock", "wrap": true,
                             "text": format!("{}{}", notice.message, revision_line(notice))},
                        ],
                    },
                }],
            }),
            Vec::new(),
        ),
        NotifierType::Github | NotifierType::Gitlab | NotifierType::Gitea => {
            let Some(state) = commit_state(target.kind, notice.event) else {
                return Ok(None);
            };
            let Some(sha) = notice.revision.as_deref().and_then(commit_of) else {
                return Ok(None);
            };
            let repository = target
                .repository
                .filter(|r| is_repository_path(r))
                .ok_or_else(|| {
                    "the repository is unknown or not owner/name: set spec.repository".to_owned()
                })?;
            // Without spec.address the public service is used, and only for a repository
            // there: a self-hosted server's token never goes to the public one.
            let public = match target.kind {
                NotifierType::Github => ("github.com", "https://api.github.com"),
                NotifierType::Gitlab => ("gitlab.com", "https://gitlab.com"),
                _ => ("gitea.com", "https://gitea.com"),
            };
            if target.address.is_none() && target.git_host.is_some_and(|h| h != public.0) {
                return Err(format!(
                    "the GitSync's repository is not on {}: set spec.address to its server's API",
                    public.0
                ));
            }
            let token = target
                .token
                .and_then(|t| std::str::from_utf8(t).ok())
                .map(str::trim)
                .ok_or_else(|| "the Secret named by spec.secretRef has no token".to_owned())?;
            let context = format!("sealsync/{}/{}", notice.namespace, notice.name);
            let description = description(notice);
            match target.kind {
                NotifierType::Github => json_request(
                    format!(
                        "{}/repos/{repository}/statuses/{sha}",
                        address(Some(public.1))?
                    ),
                    json!({"state": state, "context": context, "description": description}),
                    vec![
                        ("Authorization", format!("Bearer {token}")),
                        ("Accept", "application/vnd.github+json".to_owned()),
                        ("User-Agent", "sealsync-controller".to_owned()),
                    ],
                ),
                NotifierType::Gitlab => json_request(
                    format!(
                        "{}/api/v4/projects/{}/statuses/{sha}",
                        address(Some(public.1))?,
                        encode_path(repository)
                    ),
                    json!({"state": state, "name": context, "description": description}),
                    vec![("PRIVATE-TOKEN", token.to_owned())],
                ),
                _ => json_request(
                    format!(
                        "{}/api/v1/repos/{repository}/statuses/{sha}",
                        address(Some(public.1))?
                    ),
                    json!({"state": state, "context": context, "description": description}),
                    vec![("Authorization", format!("token {token}"))],
                ),
            }
        }
    }
}

fn notice_icon(event: NotifyEvent) -> &'static str {
    match event.severity() {
        sealsync_core::Severity::Info => "ok:",
        sealsync_core::Severity::Error => "FAILED:",
    }
}

fn revision_line(notice: &Notice) -> String {
    notice
        .revision
        .as_deref()
        .map(|r| format!("\nrevision {r}"))
        .unwrap_or_default()
}

/// The commit status an event sets, in the provider's words; `None` for events that set none.
fn commit_state(kind: NotifierType, event: NotifyEvent) -> Option<&'static str> {
    let gitlab = kind == NotifierType::Gitlab;
    Some(match event {
        NotifyEvent::Progressing => {
            if gitlab {
                "running"
            } else {
                "pending"
            }
        }
        NotifyEvent::Applied => "success",
        NotifyEvent::Failed | NotifyEvent::Unhealthy | NotifyEvent::VerificationFailed => {
            if gitlab {
                "failed"
            } else {
                "failure"
            }
        }
        // Applied says success already (an unhealthy revision is never announced as applied).
        NotifyEvent::DriftCorrected | NotifyEvent::Healthy | NotifyEvent::KeyRotated => {
            return None
        }
    })
}

/// The commit of `main@sha1:<hex>` (or a bare commit id).
fn commit_of(revision: &str) -> Option<&str> {
    let sha = revision
        .rsplit_once("sha1:")
        .or_else(|| revision.rsplit_once("sha256:"))
        .map_or(revision, |(_, sha)| sha);
    (sha.len() >= 7 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// `reason: message`, cut to what a commit status holds.
fn description(notice: &Notice) -> String {
    let text = format!("{}: {}", notice.reason, notice.message);
    if text.len() <= MAX_DESCRIPTION {
        return text;
    }
    let mut end = MAX_DESCRIPTION - 1;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// A GitLab project path as its API takes it in a URL: every `/` encoded.
fn encode_path(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(event: NotifyEvent, revision: Option<&str>) -> Notice {
        Notice {
            kind: "GitSync",
            namespace: "team".to_owned(),
            name: "shop".to_owned(),
            uid: "u".to_owned(),
            labels: None,
            url: None,
            event,
            reason: "DecryptionFailed".to_owned(),
            message: "shop/db.yaml: document 1: tampered".to_owned(),
            revision: revision.map(str::to_owned),
            at: String::new(),
        }
    }

    #[test]
    fn commit_statuses_take_each_provider_s_shape() {
        let sha = "5d1e2a0b9c8f7e6d5c4b3a291807f6e5d4c3b2a1";
        let revision = format!("main@sha1:{sha}");
        let failed = notice(NotifyEvent::Failed, Some(&revision));
        let target = |kind| Target {
            kind,
            address: None,
            token: Some(b"tok".as_slice()),
            repository: Some("group/sub/shop"),
            git_host: None,
            instance: "pod",
        };
        let github = request(&target(NotifierType::Github), &failed)
            .expect("ok")
            .expect("a request");
        assert_eq!(
            github.url,
            format!("https://api.github.com/repos/group/sub/shop/statuses/{sha}")
        );
        let body: Json = serde_json::from_slice(&github.body).expect("json");
        assert_eq!(body["state"], "failure");
        assert_eq!(body["context"], "sealsync/team/shop");
        assert!(github
            .headers
            .contains(&("Authorization", "Bearer tok".to_owned())));
        let gitlab = request(&target(NotifierType::Gitlab), &failed)
            .expect("ok")
            .expect("a request");
        assert_eq!(
            gitlab.url,
            format!("https://gitlab.com/api/v4/projects/group%2Fsub%2Fshop/statuses/{sha}")
        );
        let body: Json = serde_json::from_slice(&gitlab.body).expect("json");
        assert_eq!(body["state"], "failed");
        assert_eq!(body["name"], "sealsync/team/shop");
        let gitea = request(
            &target(NotifierType::Gitea),
            &notice(NotifyEvent::Progressing, Some(&revision)),
        )
        .expect("ok")
        .expect("a request");
        assert!(gitea
            .headers
            .contains(&("Authorization", "token tok".to_owned())));
        let body: Json = serde_json::from_slice(&gitea.body).expect("json");
        assert_eq!(body["state"], "pending");
        // No commit, no status.
        assert!(request(
            &target(NotifierType::Github),
            &notice(NotifyEvent::DriftCorrected, Some(&revision))
        )
        .expect("ok")
        .is_none());
        assert!(request(
            &target(NotifierType::Github),
            &notice(NotifyEvent::Failed, None)
        )
        .expect("ok")
        .is_none());
        let long = Notice {
            message: "x".repeat(500),
            ..failed
        };
        let body: Json = serde_json::from_slice(
            &request(&target(NotifierType::Github), &long)
                .expect("ok")
                .expect("req")
                .body,
        )
        .expect("json");
        assert!(body["description"].as_str().expect("text").chars().count() <= 140);
    }

    #[test]
    fn slack_and_teams_get_their_webhooks_shapes() {
        let failed = notice(NotifyEvent::Failed, Some("main@sha1:5d1e2a0b9c8f"));
        let target = |kind| Target {
            kind,
            address: Some("https://hooks.example/services/T/B/secret"),
            token: None,
            repository: None,
            git_host: None,
            instance: "pod",
        };
        let slack = request(&target(NotifierType::Slack), &failed)
            .expect("ok")
            .expect("req");
        assert_eq!(slack.url, "https://hooks.example/services/T/B/secret");
        let body: Json = serde_json::from_slice(&slack.body).expect("json");
        let text = body["text"].as_str().expect("text");
        assert!(
            text.contains("GitSync team/shop: DecryptionFailed")
                && text.contains("main@sha1:5d1e2a0b9c8f"),
            "{text}"
        );
        let teams = request(&target(NotifierType::Msteams), &failed)
            .expect("ok")
            .expect("req");
        let body: Json = serde_json::from_slice(&teams.body).expect("json");
        assert_eq!(body["type"], "message");
        let card = &body["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert!(card["content"]["body"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("DecryptionFailed")));
        // Without an address there is nothing to post to.
        let none = Target {
            address: None,
            ..target(NotifierType::Slack)
        };
        assert!(request(&none, &failed).is_err());
    }

    #[test]
    fn a_self_hosted_repository_never_sends_its_token_to_the_public_service() {
        let failed = notice(NotifyEvent::Failed, Some("main@sha1:5d1e2a0b9c8f"));
        let target = |address, host| Target {
            kind: NotifierType::Github,
            address,
            token: Some(b"tok".as_slice()),
            repository: Some("acme/shop"),
            git_host: host,
            instance: "pod",
        };
        let error = request(&target(None, Some("ghe.example")), &failed).expect_err("refused");
        assert!(error.contains("set spec.address"), "{error}");
        assert!(request(&target(None, Some("github.com")), &failed)
            .expect("ok")
            .is_some());
        let ghe = request(
            &target(Some("https://ghe.example/api/v3"), Some("ghe.example")),
            &failed,
        )
        .expect("ok")
        .expect("req");
        assert!(ghe
            .url
            .starts_with("https://ghe.example/api/v3/repos/acme/shop/"));
        for bad in ["acme/shop?x=1", "acme/../shop", "acme", "acme/sh op"] {
            let t = Target {
                repository: Some(bad),
                ..target(None, Some("github.com"))
            };
            assert!(request(&t, &failed).is_err(), "{bad}");
        }
    }
}
