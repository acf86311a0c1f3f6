//! The `keys` stage: the cluster's sealing identities and their lifecycle.
//!
//! Each key is a Secret of the controller's namespace (labelled `sealsync.dev/sealing-key` and
//! `sealsync.dev/key-id`, the identity under `identity.txt`) that only the controller reads,
//! and a [`sealsync_core::SealingKey`] of the same name that shows it without its private part.
//! On first start the controller generates the first key (`sealsync-key-1`). The public
//! recipients are published in the ConfigMap `sealsync-public-keys` and served at
//! `GET /v1/keys`, newest key first.
//!
//! - [`secrets`]: reading, generating and deleting key Secrets.
//! - [`usage`]: which synced documents each key opens, from the GitSyncs' status.
//! - [`backup`]: the backup of every key, encrypted to the recovery recipients.
//! - [`manager`]: the loop that answers rotation and retirement requests and keeps every
//!   SealingKey's status current.
//!
//! Private keys are never logged, never put in an event, status or metric, and never leave
//! the cluster.

mod automation;
pub(crate) mod backup;
mod keystatus;
pub(crate) mod manager;
mod retire;
pub(crate) mod secrets;
pub(crate) mod usage;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use sealsync_core::FIELD_MANAGER;
use sealsync_crypto::{Identity, KeyId, Recipient};
use tokio::sync::RwLock;

use crate::support::events::EventRecorder;
use crate::support::metrics::Metrics;
use crate::support::{Settings, Triggers};

pub(crate) use sealsync_core::keysecret::{KEY_LABEL, PUBLIC_KEYS_CONFIGMAP, RECIPIENTS_KEY};
pub(crate) use secrets::{load_or_create, StoredKey};

/// What the key manager works with.
pub(crate) struct KeyHandles {
    /// The controller's client.
    pub(crate) client: Client,
    /// The cluster keys every replica holds.
    pub(crate) keys: Arc<RwLock<KeyRing>>,
    /// The settings.
    pub(crate) settings: Arc<Settings>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events.
    pub(crate) recorder: Arc<EventRecorder>,
    /// Reconciles of GitSyncs that a new key may open now.
    pub(crate) triggers: Arc<Triggers>,
    /// Where key rotations are announced.
    pub(crate) notify: crate::notify::Notifications,
}

impl std::fmt::Debug for KeyHandles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyHandles").finish_non_exhaustive()
    }
}

/// The recipients file published for `namespace` (what `GET /v1/keys` serves), if there are
/// keys yet.
pub(crate) async fn recipients_file(keys: &RwLock<KeyRing>, namespace: &str) -> Option<String> {
    let keys = keys.read().await;
    if keys.identities().is_empty() {
        None
    } else {
        Some(keys.recipients_file(namespace))
    }
}

/// Why the keys could not be loaded or changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum KeysError {
    /// The API server failed.
    #[error("{action}")]
    Api {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A key Secret holds something that is not an identity. Its contents are never shown.
    #[error(transparent)]
    Corrupt(#[from] sealsync_core::keysecret::CorruptKeySecret),
    /// The recovery recipients file cannot be used.
    #[error(transparent)]
    Recovery(#[from] backup::RecoveryRecipientsError),
    /// The backup could not be encrypted.
    #[error("encrypting the key backup: {0}")]
    Backup(String),
}

pub(crate) fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KeysError {
    let action = action.into();
    move |source| KeysError::Api { action, source }
}

/// A loaded key without its private part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyMeta {
    /// The Secret's (and SealingKey's) name.
    pub name: String,
    /// When the key was generated (RFC 3339).
    pub created: String,
    /// The Secret's uid.
    pub uid: Option<String>,
    /// The key id.
    pub key_id: KeyId,
}

/// The identities the controller opens SealedSecrets with, the recipients it publishes, and
/// the ids of the keys that were retired.
#[derive(Default)]
pub(crate) struct KeyRing {
    /// Every loaded identity, newest first: the first is the current key. Documents are
    /// opened with the current key first, so that an old key shows as used only where the
    /// current one cannot open the document.
    identities: Vec<Identity>,
    /// The same keys, in the same order, without their private part.
    meta: Vec<KeyMeta>,
    /// Retired key ids and when they were retired, to tell a document sealed only to one of
    /// them from a document sealed to an unknown key.
    pub retired: BTreeMap<KeyId, String>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("key_ids", &self.key_ids())
            .field("retired", &self.retired.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// A ring of `keys`, which are sorted newest first here.
    pub(crate) fn new(mut keys: Vec<StoredKey>, retired: BTreeMap<KeyId, String>) -> Self {
        secrets::sort_newest_first(&mut keys);
        let mut ring = KeyRing {
            retired,
            ..KeyRing::default()
        };
        for key in keys {
            ring.meta.push(KeyMeta {
                name: key.name,
                created: key.created,
                uid: key.uid,
                key_id: key.identity.key_id().clone(),
            });
            ring.identities.push(key.identity);
        }
        ring
    }

    /// The identities, newest first.
    pub(crate) fn identities(&self) -> &[Identity] {
        &self.identities
    }

    /// The keys without their private part, newest first.
    pub(crate) fn keys(&self) -> &[KeyMeta] {
        &self.meta
    }

    /// The position of the key stored in Secret `name` (0: the current key).
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.meta.iter().position(|k| k.name == name)
    }

    /// Drops the key stored in Secret `name`.
    pub(crate) fn remove(&mut self, name: &str) {
        if let Some(index) = self.position(name) {
            self.meta.remove(index);
            self.identities.remove(index);
        }
    }

    /// The key ids, newest first.
    pub(crate) fn key_ids(&self) -> Vec<String> {
        self.meta.iter().map(|k| k.key_id.to_string()).collect()
    }

    /// The public recipients, newest first.
    pub(crate) fn recipients(&self) -> Vec<Recipient> {
        self.identities.iter().map(Identity::recipient).collect()
    }

    /// The recipients file the ConfigMap and `/v1/keys` publish: usable as
    /// `sealsync seal --recipients-file` and in `.sealsync.yaml`.
    pub(crate) fn recipients_file(&self, namespace: &str) -> String {
        let mut out = format!("# sealsync cluster recipients (controller namespace {namespace})\n");
        for (index, (meta, identity)) in self.meta.iter().zip(&self.identities).enumerate() {
            let r = identity.recipient();
            let role = if index == 0 { ", current" } else { "" };
            out.push_str(&format!(
                "# key id {} (created {}{role})\n{}\n",
                r.key_id(),
                meta.created,
                r.as_str()
            ));
        }
        out
    }
}

/// Writes the public recipients to the ConfigMap `sealsync-public-keys` by server-side apply.
pub(crate) async fn publish(
    client: &Client,
    namespace: &str,
    ring: &KeyRing,
) -> Result<(), KeysError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PUBLIC_KEYS_CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "sealsync"},
        },
        "data": {
            RECIPIENTS_KEY: ring.recipients_file(namespace),
            "keyIds": ring.key_ids().join(","),
        }
    });
    configmaps
        .patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(api_err(format!(
            "publishing the ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}"
        )))?;
    Ok(())
}

/// The time now, to the second, in RFC 3339 (`2026-12-01T19:30:00Z`).
pub(crate) fn now_rfc3339() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| now.to_string())
}
