//! Which Notifiers a notice goes to: those of the GitSync's own namespace whose selector,
//! events and severity take it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use sealsync_core::{Notifier, Severity};

use super::Notice;

/// Whether `notifier` takes `notice`.
pub(crate) fn takes(notifier: &Notifier, notice: &Notice) -> bool {
    notifier.namespace().as_deref() == Some(notice.namespace.as_str())
        && notifier.metadata.deletion_timestamp.is_none()
        // A selector picks GitSyncs; a key rotation concerns them all.
        && (notice.kind != "GitSync" || notifier
            .spec
            .selector
            .as_ref()
            .is_none_or(|s| selects(s, notice.labels.as_ref().unwrap_or(&BTreeMap::new()))))
        && (notifier.spec.events.is_empty() || notifier.spec.events.contains(&notice.event))
        && notice.event.severity() >= notifier.spec.severity.unwrap_or(Severity::Info)
}

/// A label selector's meaning: every `matchLabels` pair and every `matchExpressions` term.
/// An operator it does not know selects nothing.
fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let terms = selector.match_expressions.iter().flatten().all(|term| {
        let value = labels.get(&term.key);
        let values = term.values.as_deref().unwrap_or_default();
        match term.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    pairs && terms
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::NotifyEvent;

    fn notifier(namespace: &str, spec: serde_json::Value) -> Notifier {
        let mut spec = spec;
        spec["type"] = "webhook".into();
        spec["address"] = "https://hooks.example/x".into();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1", "kind": "Notifier",
            "metadata": {"name": "n", "namespace": namespace}, "spec": spec,
        }))
        .expect("notifier")
    }

    fn notice(event: NotifyEvent, labels: &[(&str, &str)]) -> Notice {
        Notice {
            kind: "GitSync",
            namespace: "team".to_owned(),
            name: "shop".to_owned(),
            uid: "u".to_owned(),
            url: None,
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            event,
            reason: "r".to_owned(),
            message: "m".to_owned(),
            revision: None,
            at: String::new(),
        }
    }

    #[test]
    fn a_notifier_takes_its_own_namespace_s_selected_events_only() {
        let all = notifier("team", serde_json::json!({}));
        assert!(takes(&all, &notice(NotifyEvent::Applied, &[])));
        assert!(!takes(
            &notifier("other", serde_json::json!({})),
            &notice(NotifyEvent::Applied, &[])
        ));
        let errors = notifier("team", serde_json::json!({"severity": "error"}));
        assert!(!takes(&errors, &notice(NotifyEvent::Applied, &[])));
        assert!(takes(
            &errors,
            &notice(NotifyEvent::VerificationFailed, &[])
        ));
        let drift = notifier("team", serde_json::json!({"events": ["drift-corrected"]}));
        assert!(takes(&drift, &notice(NotifyEvent::DriftCorrected, &[])));
        assert!(!takes(&drift, &notice(NotifyEvent::Failed, &[])));
        let selected = notifier(
            "team",
            serde_json::json!({"selector": {"matchLabels": {"tier": "prod"},
                "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]},
                                     {"key": "skip", "operator": "DoesNotExist"}]}}),
        );
        assert!(takes(
            &selected,
            &notice(NotifyEvent::Applied, &[("tier", "prod"), ("team", "a")])
        ));
        assert!(!takes(
            &selected,
            &notice(NotifyEvent::Applied, &[("tier", "prod"), ("team", "c")])
        ));
        assert!(!takes(
            &selected,
            &notice(
                NotifyEvent::Applied,
                &[("tier", "prod"), ("team", "a"), ("skip", "1")]
            )
        ));
        assert!(!takes(
            &selected,
            &notice(NotifyEvent::Applied, &[("team", "a")])
        ));
    }
}
