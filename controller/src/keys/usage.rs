//! Which synced documents each key opens, read from the GitSyncs' `status.sealedSecrets`.
//!
//! The decrypt stage opens each document with the newest key that can, so a document counts
//! for an old key only where no newer key opens it: exactly the documents that retiring the
//! old key would break.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kube::runtime::reflector::Store;

use kube::ResourceExt;
use sealsync_core::{GitSync, KeyUse, SealedSecretResource};

/// For each key id, the documents it opened, sorted.
pub(crate) type Usage = BTreeMap<String, Vec<KeyUse>>;

/// The usage the GitSyncs report. A GitSync being deleted no longer counts: its objects are
/// about to be pruned.
pub(crate) fn from_gitsyncs<'a>(gitsyncs: impl IntoIterator<Item = &'a GitSync>) -> Usage {
    let mut usage = Usage::new();
    for gs in gitsyncs {
        if gs.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(status) = gs.status.as_ref() else {
            continue;
        };
        let git_sync = format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any());
        for doc in &status.sealed_secrets {
            for key_id in &doc.key_ids {
                usage.entry(key_id.clone()).or_default().push(KeyUse {
                    git_sync: git_sync.clone(),
                    file: doc.file.clone(),
                    secret: doc.secret.clone(),
                });
            }
        }
    }
    for uses in usage.values_mut() {
        uses.sort();
        uses.dedup();
    }
    usage
}

/// What the key manager reads of the resources: the cache, and whether the kind is served at
/// all (without the CRD there is nothing to count, and nothing to wait for).
#[derive(Clone)]
pub(crate) struct ResourceCache {
    /// Every SealedSecret resource.
    pub(crate) store: Store<SealedSecretResource>,
    /// Set when the API server does not serve the kind.
    pub(crate) absent: Arc<AtomicBool>,
}

impl ResourceCache {
    /// Whether the cache can be counted on: listed, or the kind not served.
    pub(crate) fn ready(&self) -> bool {
        self.absent.load(Ordering::Relaxed) || crate::support::cache::listed(&self.store)
    }
}

/// Adds what SealedSecret resources use, as `SealedSecret ns/name (resource)` with no
/// GitSync: the keys that opened each, or, for one no key has opened yet, every key its
/// envelopes list (it may need any of them). One being deleted no longer counts.
pub(crate) fn add_resources<'a>(
    usage: &mut Usage,
    resources: impl IntoIterator<Item = &'a SealedSecretResource>,
) {
    for resource in resources {
        if resource.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let opened = resource
            .status
            .as_ref()
            .map(|s| s.key_ids.clone())
            .unwrap_or_default();
        let key_ids: Vec<String> = if opened.is_empty() {
            resource
                .spec
                .envelopes
                .iter()
                .flat_map(|e| e.recipients.iter().cloned())
                .collect()
        } else {
            opened
        };
        let id = format!(
            "{}/{}",
            resource.namespace().unwrap_or_default(),
            resource.name_any()
        );
        for key_id in &key_ids {
            usage.entry(key_id.clone()).or_default().push(KeyUse {
                git_sync: String::new(),
                file: format!("SealedSecret {id} (resource)"),
                secret: id.clone(),
            });
        }
    }
    for uses in usage.values_mut() {
        uses.sort();
        uses.dedup();
    }
}

/// `GitSync ns/name: file (Secret ns/name)` lines for a refusal message, at most `limit`.
pub(crate) fn describe(uses: &[KeyUse], limit: usize) -> String {
    let mut lines: Vec<String> = uses
        .iter()
        .take(limit)
        .map(|u| {
            if u.git_sync.is_empty() {
                format!("{} (Secret {})", u.file, u.secret)
            } else {
                format!("GitSync {}: {} (Secret {})", u.git_sync, u.file, u.secret)
            }
        })
        .collect();
    if uses.len() > limit {
        lines.push(format!("and {} more", uses.len() - limit));
    }
    lines.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::{GitSyncStatus, SealedSecretUsage};

    fn gitsync(name: &str, docs: &[(&str, &[&str])], deleting: bool) -> GitSync {
        let mut gs: GitSync = serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1", "kind": "GitSync",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"url": "git://h/r", "interval": "1m"},
        }))
        .expect("gitsync");
        if deleting {
            gs.metadata.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                ));
        }
        gs.status = Some(GitSyncStatus {
            sealed_secrets: docs
                .iter()
                .map(|(file, keys)| SealedSecretUsage {
                    file: (*file).to_owned(),
                    secret: format!("team/{file}"),
                    key_ids: keys.iter().map(|k| (*k).to_owned()).collect(),
                })
                .collect(),
            ..GitSyncStatus::default()
        });
        gs
    }

    #[test]
    fn documents_are_counted_per_key_and_deleted_gitsyncs_do_not_count() {
        let a = gitsync("a", &[("db.yaml", &["old"]), ("api.yaml", &["new"])], false);
        let b = gitsync("b", &[("db.yaml", &["old", "new"])], false);
        let gone = gitsync("gone", &[("x.yaml", &["old"])], true);
        let usage = from_gitsyncs([&a, &b, &gone]);
        assert_eq!(usage["old"].len(), 2);
        assert_eq!(usage["new"].len(), 2);
        assert_eq!(
            describe(&usage["old"], 1),
            "GitSync team/a: db.yaml (Secret team/db.yaml); and 1 more"
        );
    }

    fn resource(name: &str, listed: &[&str], opened: Option<&[&str]>) -> SealedSecretResource {
        let mut resource: SealedSecretResource = serde_json::from_value(serde_json::json!({
            "apiVersion": "sealsync.dev/v1", "kind": "SealedSecret",
            "metadata": {"name": name, "namespace": "team"},
            "spec": {"scope": "strict", "encryptedData": {},
                     "envelopes": [{"id": "e", "recipients": listed, "wrappedKey": "x"}]},
        }))
        .expect("resource");
        if let Some(opened) = opened {
            resource.status = Some(sealsync_core::SealedSecretStatus {
                key_ids: opened.iter().map(|k| (*k).to_owned()).collect(),
                ..Default::default()
            });
        }
        resource
    }

    #[test]
    fn a_resource_counts_for_the_key_that_opened_it_or_every_key_it_lists() {
        let opened = resource("opened", &["new", "old"], Some(&["new"]));
        let waiting = resource("waiting", &["new", "old"], None);
        let mut usage = from_gitsyncs([]);
        add_resources(&mut usage, [&opened]);
        assert_eq!(usage.keys().collect::<Vec<_>>(), ["new"]);
        assert_eq!(usage["new"][0].file, "SealedSecret team/opened (resource)");
        assert_eq!(
            describe(&usage["new"], 5),
            "SealedSecret team/opened (resource) (Secret team/opened)"
        );
        add_resources(&mut usage, [&waiting]);
        assert_eq!(
            usage["old"].len(),
            1,
            "not opened yet: it may need the old key"
        );
        assert_eq!(usage["new"].len(), 2);
    }
}
