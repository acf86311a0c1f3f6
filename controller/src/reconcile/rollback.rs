//! `spec.onHealthFailure: rollback`: a revision that does not become healthy is recorded in
//! `status.failedRevision`, and the reconciles that follow apply the last healthy revision
//! (`status.lastHealthyRevision`) again, from Git, instead of the branch's head, until the head
//! moves to another commit, the spec changes, or `sealsync sync` asks for the failed one.

use kube::{Resource, ResourceExt};
use sealsync_core::{GitSync, HealthFailurePolicy, REQUESTED_AT_ANNOTATION};

/// The commit of a revision written as `<ref>@sha1:<hex>` or `sha1:<hex>`.
pub(super) fn commit_of(revision: &str) -> Option<&str> {
    revision.rsplit_once("sha1:").map(|(_, commit)| commit)
}

/// The revision to apply instead of the head `commit`: the last healthy one, when the head
/// is the revision that failed and nothing asks for it again.
pub(super) fn target(gs: &GitSync, head_commit: &str) -> Option<String> {
    if gs.spec.on_health_failure != HealthFailurePolicy::Rollback {
        return None;
    }
    let status = gs.status.as_ref()?;
    let failed = status.failed_revision.as_deref().and_then(commit_of)?;
    let healthy = status.last_healthy_revision.as_deref()?;
    if failed != head_commit || commit_of(healthy)? == head_commit {
        return None;
    }
    // A new spec, or `sealsync sync`, tries the head again.
    if status.observed_generation != gs.meta().generation {
        return None;
    }
    let requested = gs.annotations().get(REQUESTED_AT_ANNOTATION);
    if requested.is_some() && requested != status.last_handled_reconcile_at.as_ref() {
        return None;
    }
    Some(healthy.to_owned())
}

/// Whether a reconcile of `gs` that tried `attempted` and found it unhealthy rolls back: the
/// policy asks for it and a healthy revision other than it is known.
pub(super) fn rolls_back(gs: &GitSync, attempted: Option<&str>) -> bool {
    gs.spec.on_health_failure == HealthFailurePolicy::Rollback
        && gs
            .status
            .as_ref()
            .and_then(|s| s.last_healthy_revision.as_deref())
            .and_then(commit_of)
            .is_some_and(|healthy| attempted.and_then(commit_of) != Some(healthy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gitsync(policy: &str, status: serde_json::Value, annotations: serde_json::Value) -> GitSync {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1", "kind": "GitSync",
            "metadata": {"name": "shop", "namespace": "platform", "generation": 3,
                         "annotations": annotations},
            "spec": {"url": "https://git.example/shop.git", "interval": "1m",
                     "onHealthFailure": policy},
            "status": status,
        }))
        .expect("a GitSync")
    }

    #[test]
    fn the_failed_head_is_replaced_by_the_last_healthy_revision_until_asked_for() {
        let status = serde_json::json!({
            "observedGeneration": 3,
            "failedRevision": "main@sha1:bbbb",
            "lastHealthyRevision": "main@sha1:aaaa",
            "lastHandledReconcileAt": "t1",
        });
        let gs = gitsync("rollback", status.clone(), serde_json::json!({}));
        assert_eq!(target(&gs, "bbbb").as_deref(), Some("main@sha1:aaaa"));
        // A new commit is tried.
        assert_eq!(target(&gs, "cccc"), None);
        // Without the policy, the head is applied.
        assert_eq!(
            target(
                &gitsync("keep", status.clone(), serde_json::json!({})),
                "bbbb"
            ),
            None
        );
        // `sealsync sync` tries the failed revision again; a handled request does not.
        let asked = gitsync(
            "rollback",
            status.clone(),
            serde_json::json!({REQUESTED_AT_ANNOTATION: "t2"}),
        );
        assert_eq!(target(&asked, "bbbb"), None);
        let handled = gitsync(
            "rollback",
            status.clone(),
            serde_json::json!({REQUESTED_AT_ANNOTATION: "t1"}),
        );
        assert_eq!(target(&handled, "bbbb").as_deref(), Some("main@sha1:aaaa"));
        // A new spec too.
        let mut changed = status;
        changed["observedGeneration"] = serde_json::json!(2);
        assert_eq!(
            target(&gitsync("rollback", changed, serde_json::json!({})), "bbbb"),
            None
        );
    }

    #[test]
    fn a_rollback_needs_another_revision_that_was_healthy() {
        let gs = gitsync(
            "rollback",
            serde_json::json!({"lastHealthyRevision": "main@sha1:aaaa"}),
            serde_json::json!({}),
        );
        assert!(rolls_back(&gs, Some("main@sha1:bbbb")));
        assert!(!rolls_back(&gs, Some("main@sha1:aaaa")));
        let first = gitsync("rollback", serde_json::json!({}), serde_json::json!({}));
        assert!(!rolls_back(&first, Some("main@sha1:bbbb")));
    }
}
