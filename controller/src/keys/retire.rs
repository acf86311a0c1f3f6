//! Retirement: a key leaves the cluster once no synced document needs it.

use kube::{Resource, ResourceExt};
use sealsync_core::{SealingKey, RETIRE_REQUESTED_AT_ANNOTATION};
use sealsync_crypto::KeyId;

use super::manager::Manager;
use super::usage::{self, Usage};
use super::{now_rfc3339, publish, secrets, KeysError};
use crate::status::event_on;

/// How many documents a retirement refusal names.
const REFUSAL_LISTED: usize = 10;

enum Decision {
    Refused(&'static str, String),
    Retired,
}

impl Manager {
    /// Decides the retirement request on `sk`'s annotation, if there is a new one. `true` when
    /// it did, and wrote `sk`'s status.
    pub(super) async fn retire_if_requested(
        &self,
        sk: &SealingKey,
        usage: &Usage,
    ) -> Result<bool, KeysError> {
        let Some(requested) = sk
            .annotations()
            .get(RETIRE_REQUESTED_AT_ANNOTATION)
            .cloned()
        else {
            return Ok(false);
        };
        let status = sk.status.clone().unwrap_or_default();
        if status.last_handled_retire_at.as_deref() == Some(requested.as_str()) {
            return Ok(false);
        }
        self.retire(sk, usage, Some(&requested)).await?;
        Ok(true)
    }

    /// Retires `sk`'s key: refused for the current key and for a key that a synced document
    /// needs; otherwise the key leaves the ring and its Secret is deleted. `request` is the
    /// annotation's value, or `None` for an automatic retirement (`--retire-unused-after`).
    pub(super) async fn retire(
        &self,
        sk: &SealingKey,
        usage: &Usage,
        request: Option<&str>,
    ) -> Result<(), KeysError> {
        let status = sk.status.clone().unwrap_or_default();
        let name = sk.name_any();
        let (position, key_id) = {
            let ring = self.handles.keys.read().await;
            let position = ring.position(&name);
            let key_id = position
                .map(|p| ring.keys()[p].key_id.to_string())
                .or(status.key_id.clone());
            (position, key_id)
        };
        let key_id_text = key_id.clone().unwrap_or_else(|| name.clone());
        let decision = match position {
            None if status.key_id.is_none() => Decision::Refused(
                "NoKey",
                format!("SealingKey {name} holds no key yet; wait for the controller to generate it"),
            ),
            Some(0) => Decision::Refused(
                "CurrentKey",
                format!(
                    "key {key_id_text} is the current key, which new documents are sealed to; run `sealsync keys rotate` first, reseal the documents and retire it then"
                ),
            ),
            // A Missing key (its Secret deleted by hand) is held to the same rule: it may still
            // be restored, and retiring it would make the documents that need it unrestorable
            // by default.
            _ => match key_id.as_ref().and_then(|id| usage.get(id)) {
                Some(uses) if !uses.is_empty() => Decision::Refused(
                    "InUse",
                    format!(
                        "key {key_id_text} is the only key that opens {} synced document(s): {}. Reseal them to the current key (`sealsync reseal`), let the GitSyncs apply them, then retire the key again",
                        uses.len(),
                        usage::describe(uses, REFUSAL_LISTED)
                    ),
                ),
                _ => Decision::Retired,
            },
        };
        let reference = sk.object_ref(&());
        match decision {
            Decision::Refused(reason, message) => {
                tracing::info!(key_id = %key_id_text, reason, "keys: retirement refused");
                event_on(
                    &self.handles.recorder,
                    &reference,
                    true,
                    "RetireRefused",
                    message.clone(),
                )
                .await;
                self.write_status(sk, Some(usage), Some((request, false, reason, &message)))
                    .await
            }
            Decision::Retired => {
                let stored = {
                    let ring = self.handles.keys.read().await;
                    ring.keys()
                        .iter()
                        .find(|k| k.name == name)
                        .map(|k| secrets::KeyHandle {
                            name: k.name.clone(),
                            uid: k.uid.clone(),
                        })
                };
                if let Some(handle) = &stored {
                    secrets::delete(&self.handles.client, self.namespace(), handle).await?;
                    {
                        let mut ring = self.handles.keys.write().await;
                        ring.remove(&name);
                        if let Some(id) = key_id.as_deref().and_then(|id| KeyId::parse(id).ok()) {
                            ring.retired.insert(id, now_rfc3339());
                        }
                    }
                    // Published under a read lock: decryption is not held up by the API call.
                    let ring = self.handles.keys.read().await;
                    publish(&self.handles.client, self.namespace(), &ring).await?;
                }
                let message = format!(
                    "key {key_id_text} is retired: its private key was deleted from the cluster, and documents sealed only to it no longer open"
                );
                tracing::info!(key_id = %key_id_text, "keys: retired");
                event_on(
                    &self.handles.recorder,
                    &reference,
                    false,
                    "Retired",
                    message.clone(),
                )
                .await;
                self.write_status(sk, Some(usage), Some((request, true, "Retired", &message)))
                    .await
            }
        }
    }
}
