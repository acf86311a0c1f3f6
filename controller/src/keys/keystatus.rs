//! The status of each SealingKey, written only when it changed.

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use sealsync_core::{KeyState, SealingKey, SealingKeyStatus, FIELD_MANAGER, MAX_LISTED_DOCUMENTS};

use super::manager::Manager;
use super::usage::Usage;
use super::{api_err, now_rfc3339, KeysError};
use crate::status::set_condition;

impl Manager {
    /// Writes `sk`'s status when it differs from what the cache holds. `retire` records a
    /// decided request: `(request, retired, reason, message)`.
    pub(super) async fn write_status(
        &self,
        sk: &SealingKey,
        usage: Option<&Usage>,
        retire: Option<(Option<&str>, bool, &str, &str)>,
    ) -> Result<(), KeysError> {
        let name = sk.name_any();
        let old = sk.status.clone().unwrap_or_default();
        let mut status = old.clone();
        {
            let ring = self.handles.keys.read().await;
            match ring.position(&name) {
                Some(index) => {
                    let key = &ring.keys()[index];
                    let recipient = ring.identities()[index].recipient();
                    status.key_id = Some(recipient.key_id().to_string());
                    status.recipient = Some(recipient.as_str().to_owned());
                    status.state = Some(KeyState::Active);
                    status.current = index == 0;
                    status.created = Some(key.created.clone());
                    status.retired = None;
                    set_condition(
                        &mut status.conditions,
                        "Ready",
                        true,
                        "Loaded",
                        &format!(
                            "the controller opens documents with this key; its private part is in Secret {}/{name}",
                            self.namespace()
                        ),
                        None,
                    );
                }
                None if old.key_id.is_none() => return Ok(()),
                None => {
                    status.current = false;
                    let retired_now = matches!(retire, Some((_, true, _, _)));
                    // The ring records a retirement at once; the cache may not show it yet.
                    let retired_at = old
                        .key_id
                        .as_deref()
                        .and_then(|id| sealsync_crypto::KeyId::parse(id).ok())
                        .and_then(|id| ring.retired.get(&id).cloned());
                    if retired_now || old.state == Some(KeyState::Retired) || retired_at.is_some() {
                        status.state = Some(KeyState::Retired);
                        status.retired = old
                            .retired
                            .clone()
                            .or(retired_at)
                            .or_else(|| Some(now_rfc3339()));
                        set_condition(
                            &mut status.conditions,
                            "Ready",
                            false,
                            "Retired",
                            "the key is retired; its private part was deleted",
                            None,
                        );
                    } else {
                        status.state = Some(KeyState::Missing);
                        set_condition(
                            &mut status.conditions,
                            "Ready",
                            false,
                            "KeyMissing",
                            &format!(
                                "the Secret {}/{name} with the private key is gone although the key was never retired; restore it from a backup with `sealsync keys restore`",
                                self.namespace()
                            ),
                            None,
                        );
                    }
                }
            }
        }
        // Without the GitSyncs' usage (their cache has not listed yet) the usage fields keep
        // what they say.
        if let Some(usage) = usage {
            let uses = status
                .key_id
                .as_ref()
                .and_then(|id| usage.get(id))
                .cloned()
                .unwrap_or_default();
            status.documents = u32::try_from(uses.len()).unwrap_or(u32::MAX);
            status.used_by = uses.into_iter().take(MAX_LISTED_DOCUMENTS).collect();
            // The clock starts once the key is no longer current: a new current key opens nothing
            // yet, and must not look unused when the next rotation comes.
            status.unused_since = if status.state == Some(KeyState::Active)
                && !status.current
                && status.documents == 0
            {
                old.unused_since.clone().or_else(|| Some(now_rfc3339()))
            } else {
                None
            };
        }
        if let Some((request, retired, reason, message)) = retire {
            if let Some(request) = request {
                status.last_handled_retire_at = Some(request.to_owned());
            }
            set_condition(
                &mut status.conditions,
                "Retired",
                retired,
                reason,
                message,
                None,
            );
        }
        if same_status(&old, &status) {
            return Ok(());
        }
        let api: Api<SealingKey> = Api::namespaced(self.handles.client.clone(), self.namespace());
        let body = serde_json::json!({
            "apiVersion": SealingKey::api_version(&()),
            "kind": SealingKey::kind(&()),
            "metadata": {"name": name},
            "status": status,
        });
        match api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Deleted meanwhile: a key Secret without a view gets a new one next pass.
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(api_err(format!(
                "writing the status of SealingKey {}/{name}",
                self.namespace()
            ))(e)),
        }
    }
}

/// Statuses equal but for the conditions' transition times (which `set_condition` keeps when
/// a condition's status does not change, so this compares what a reader would see change).
fn same_status(a: &SealingKeyStatus, b: &SealingKeyStatus) -> bool {
    let strip = |s: &SealingKeyStatus| {
        let mut s = s.clone();
        for c in &mut s.conditions {
            c.last_transition_time = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            );
        }
        s
    };
    strip(a) == strip(b)
}
