//! Hooks: objects (a migration Job, mostly) that run around a revision rather than being part
//! of it, as Argo CD's resource hooks and Helm's hooks:
//! - `sealsync.dev/hook: pre-sync` runs before anything else of the revision is applied and
//!   must become healthy (a Job complete) first; if it fails, nothing else is applied;
//! - `post-sync` runs once every object of the revision is healthy;
//! - `sync-failed` runs when the revision fails.
//!
//! Helm's `pre-install`/`pre-upgrade` hooks are pre-sync hooks and its
//! `post-install`/`post-upgrade` hooks post-sync ones; `helm.sh/hook-weight` orders them as
//! `sealsync.dev/wave` orders sealsync's: each weight runs once the one before is healthy.
//!
//! `sealsync.dev/hook-delete-policy` (or `helm.sh/hook-delete-policy`), comma-separated:
//! `before-hook-creation` (the default) deletes the hook before it runs again;
//! `hook-succeeded` and `hook-failed` delete it once it has succeeded or failed.
//!
//! Hooks run once per revision: when a new commit, a new spec or `sealsync sync` is applied,
//! and again when a failed revision is retried, but not when an applied revision is planned
//! again. They stay in the inventory (a hook dropped from Git is pruned) but are not
//! self-healed: their deletion policies delete them.

use serde_json::Value as Json;

/// The annotation that makes an object a hook.
pub(crate) const HOOK_ANNOTATION: &str = "sealsync.dev/hook";
/// The annotation of a hook's delete policies.
pub(crate) const HOOK_DELETE_POLICY_ANNOTATION: &str = "sealsync.dev/hook-delete-policy";

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum HookPhase {
    /// Before the revision.
    PreSync,
    /// After the revision is healthy.
    PostSync,
    /// When the revision failed.
    SyncFailed,
}

impl HookPhase {
    /// As the annotation spells it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            HookPhase::PreSync => "pre-sync",
            HookPhase::PostSync => "post-sync",
            HookPhase::SyncFailed => "sync-failed",
        }
    }
}

/// What makes an object a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hook {
    /// When it runs.
    pub(crate) phase: HookPhase,
    /// Its order among the hooks of its phase.
    pub(crate) weight: i64,
    /// Delete it before it runs again.
    pub(crate) delete_before: bool,
    /// Delete it once it succeeded.
    pub(crate) delete_succeeded: bool,
    /// Delete it once it failed.
    pub(crate) delete_failed: bool,
}

/// Whether an object is a hook, and which; an error names what is wrong with its annotations.
pub(crate) fn hook_of(object: &Json) -> Result<Option<Hook>, String> {
    let annotations = &object["metadata"]["annotations"];
    let text = |key: &str| annotations[key].as_str();
    let (phase, weight, policies) = if let Some(value) = text(HOOK_ANNOTATION) {
        let phase = match value.trim() {
            "pre-sync" => HookPhase::PreSync,
            "post-sync" => HookPhase::PostSync,
            "sync-failed" => HookPhase::SyncFailed,
            other => {
                return Err(format!(
                    "the annotation {HOOK_ANNOTATION}: {other:?} is not pre-sync, post-sync or sync-failed"
                ))
            }
        };
        let weight = match text(sealsync_core::WAVE_ANNOTATION) {
            None => 0,
            Some(w) => w.trim().parse().map_err(|_| {
                format!(
                    "the annotation {}: {w:?} is not an integer",
                    sealsync_core::WAVE_ANNOTATION
                )
            })?,
        };
        (
            phase,
            weight,
            (
                HOOK_DELETE_POLICY_ANNOTATION,
                text(HOOK_DELETE_POLICY_ANNOTATION),
            ),
        )
    } else if let Some(events) = text("helm.sh/hook") {
        let events: Vec<&str> = events.split(',').map(str::trim).collect();
        let phase = if events
            .iter()
            .any(|e| matches!(*e, "pre-install" | "pre-upgrade"))
        {
            HookPhase::PreSync
        } else if events
            .iter()
            .any(|e| matches!(*e, "post-install" | "post-upgrade"))
        {
            HookPhase::PostSync
        } else {
            // Delete, rollback and test hooks never reach the apply; anything else is applied
            // as an ordinary object, as before Helm had hooks.
            return Ok(None);
        };
        // Helm reads a weight that is not a number as 0.
        let weight = text("helm.sh/hook-weight")
            .and_then(|w| w.trim().parse().ok())
            .unwrap_or(0);
        (
            phase,
            weight,
            (
                "helm.sh/hook-delete-policy",
                text("helm.sh/hook-delete-policy"),
            ),
        )
    } else {
        return Ok(None);
    };
    let mut hook = Hook {
        phase,
        weight,
        delete_before: policies.1.is_none(),
        delete_succeeded: false,
        delete_failed: false,
    };
    for policy in policies.1.unwrap_or_default().split(',').map(str::trim) {
        match policy {
            "" => {}
            "before-hook-creation" => hook.delete_before = true,
            "hook-succeeded" => hook.delete_succeeded = true,
            "hook-failed" => hook.delete_failed = true,
            other => {
                return Err(format!(
                    "the annotation {}: {other:?} is not before-hook-creation, hook-succeeded or hook-failed",
                    policies.0
                ))
            }
        }
    }
    Ok(Some(hook))
}

/// Whether an object is a hook, for those that only need to know (self-heal, the wait).
pub(crate) fn is_hook(object: &Json) -> bool {
    matches!(hook_of(object), Ok(Some(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn annotated(annotations: Json) -> Json {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "migrate", "annotations": annotations}})
    }

    #[test]
    fn sealsync_hooks_have_a_phase_a_weight_and_policies() {
        let hook = hook_of(&annotated(json!({HOOK_ANNOTATION: "pre-sync"})))
            .expect("valid")
            .expect("a hook");
        assert_eq!(hook.phase, HookPhase::PreSync);
        assert_eq!(hook.weight, 0);
        assert!(hook.delete_before, "before-hook-creation is the default");
        assert!(!hook.delete_succeeded && !hook.delete_failed);

        let hook = hook_of(&annotated(json!({
            HOOK_ANNOTATION: "post-sync",
            "sealsync.dev/wave": "-2",
            HOOK_DELETE_POLICY_ANNOTATION: "hook-succeeded, hook-failed",
        })))
        .expect("valid")
        .expect("a hook");
        assert_eq!(hook.phase, HookPhase::PostSync);
        assert_eq!(hook.weight, -2);
        assert!(!hook.delete_before, "named policies replace the default");
        assert!(hook.delete_succeeded && hook.delete_failed);
        assert_eq!(
            hook_of(&annotated(json!({HOOK_ANNOTATION: "sync-failed"})))
                .expect("valid")
                .map(|h| h.phase),
            Some(HookPhase::SyncFailed)
        );
    }

    #[test]
    fn helm_hooks_map_onto_the_same_phases() {
        let hook = hook_of(&annotated(json!({
            "helm.sh/hook": "pre-install,pre-upgrade",
            "helm.sh/hook-weight": "-5",
        })))
        .expect("valid")
        .expect("a hook");
        assert_eq!(
            (hook.phase, hook.weight, hook.delete_before),
            (HookPhase::PreSync, -5, true)
        );
        let hook = hook_of(&annotated(json!({
            "helm.sh/hook": "post-upgrade",
            "helm.sh/hook-weight": "heavy",
            "helm.sh/hook-delete-policy": "hook-succeeded",
        })))
        .expect("valid")
        .expect("a hook");
        assert_eq!(
            (hook.phase, hook.weight, hook.delete_succeeded),
            (HookPhase::PostSync, 0, true)
        );
        let hook = hook_of(&annotated(json!({
            "helm.sh/hook": "post-install",
            "helm.sh/hook-weight": " 3 ",
            "helm.sh/hook-delete-policy": "hook-succeeded,before-hook-creation",
        })))
        .expect("valid")
        .expect("a hook");
        assert_eq!(hook.weight, 3);
        assert!(hook.delete_before && hook.delete_succeeded && !hook.delete_failed);
        assert_eq!(
            hook_of(&annotated(json!({"helm.sh/hook": "crd-install"}))),
            Ok(None)
        );
        assert_eq!(
            hook_of(&annotated(json!({"helm.sh/hook": "pre-delete"}))),
            Ok(None)
        );
        assert_eq!(hook_of(&annotated(json!({}))), Ok(None));
    }

    #[test]
    fn unknown_phases_and_policies_are_refused_by_name() {
        let error = hook_of(&annotated(json!({HOOK_ANNOTATION: "PreSync"}))).expect_err("refused");
        assert!(
            error.contains("\"PreSync\" is not pre-sync, post-sync or sync-failed"),
            "{error}"
        );
        let error = hook_of(&annotated(json!({
            HOOK_ANNOTATION: "pre-sync",
            HOOK_DELETE_POLICY_ANNOTATION: "always",
        })))
        .expect_err("refused");
        assert!(
            error.contains("\"always\" is not before-hook-creation"),
            "{error}"
        );
    }
}
