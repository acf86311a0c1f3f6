//! What a `webhook` Notifier posts: the fields Flux's events carry, so that receivers built
//! for Flux work unchanged, signed as Flux's `generic-hmac` provider signs.

use ring::hmac;
use serde_json::{json, Value as Json};

use super::Notice;

/// The body of one notification.
pub(crate) fn body(notice: &Notice, instance: &str) -> Json {
    let mut metadata = serde_json::Map::new();
    if let Some(revision) = &notice.revision {
        metadata.insert("revision".to_owned(), Json::from(revision.as_str()));
    }
    metadata.insert("event".to_owned(), Json::from(notice.event.name()));
    json!({
        "involvedObject": {
            "apiVersion": "sealsync.dev/v1",
            "kind": notice.kind,
            "namespace": notice.namespace,
            "name": notice.name,
            "uid": notice.uid,
        },
        "severity": notice.event.severity().name(),
        "timestamp": notice.at,
        "message": notice.message,
        "reason": notice.reason,
        "metadata": metadata,
        "reportingController": "sealsync-controller",
        "reportingInstance": instance,
    })
}

/// `sha256=<hex>`: HMAC-SHA256 of `body` with `key`, as `X-Signature` carries it.
pub(crate) fn signature(body: &[u8], key: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::NotifyEvent;

    #[test]
    fn the_body_has_flux_s_fields_and_the_signature_is_hmac_sha256() {
        let notice = Notice {
            kind: "GitSync",
            namespace: "team".to_owned(),
            name: "shop".to_owned(),
            uid: "u-1".to_owned(),
            labels: None,
            url: None,
            event: NotifyEvent::Failed,
            reason: "DecryptionFailed".to_owned(),
            message: "shop/db.yaml: document 1: tampered".to_owned(),
            revision: Some("main@sha1:abc".to_owned()),
            at: "2026-12-07T10:00:00Z".to_owned(),
        };
        let body = body(&notice, "pod-1");
        assert_eq!(body["involvedObject"]["kind"], "GitSync");
        assert_eq!(body["severity"], "error");
        assert_eq!(body["reason"], "DecryptionFailed");
        assert_eq!(body["metadata"]["revision"], "main@sha1:abc");
        assert_eq!(body["reportingController"], "sealsync-controller");
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"what do ya want for nothing?", b"Jefe"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
