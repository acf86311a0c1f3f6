//! Optional automation, off by default: rotation once the current key reaches
//! `--key-rotation-period`, and retirement of keys that no synced document has needed for
//! `--retire-unused-after`. Both go through the same paths as a person's request, so the same
//! rules hold (a needed key is never retired).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::ResourceExt;
use sealsync_core::{KeyState, SealingKey, SealingKeySpec};

use super::manager::Manager;
use super::usage::Usage;
use super::{api_err, KeysError};

/// The annotation on a SealingKey the controller created to rotate on schedule.
const ROTATED_BY_ANNOTATION: &str = "sealsync.dev/rotated-by";

/// `time + period`, or `None` when `time` does not parse.
fn due(time: &str, period: Duration) -> Option<Timestamp> {
    let start: Timestamp = time.parse().ok()?;
    let period = SignedDuration::try_from(period).ok()?;
    start.checked_add(period).ok()
}

impl Manager {
    /// Rotates or retires what is due. Costs no request when nothing is.
    pub(super) async fn automate(&self, usage: &Usage) -> Result<(), KeysError> {
        let settings = &self.handles.settings;
        if let Some(period) = settings.key_rotation_period {
            self.rotate_if_due(period).await?;
        }
        if let Some(after) = settings.retire_unused_after {
            let now = Timestamp::now();
            for sk in self.sealing_keys.state() {
                let Some(status) = sk.status.as_ref() else {
                    continue;
                };
                let unused_long = status
                    .unused_since
                    .as_deref()
                    .and_then(|since| due(since, after))
                    .is_some_and(|at| at <= now);
                let loaded = self
                    .handles
                    .keys
                    .read()
                    .await
                    .position(&sk.name_any())
                    .is_some();
                if loaded
                    && status.state == Some(KeyState::Active)
                    && !status.current
                    && unused_long
                {
                    tracing::info!(key = %sk.name_any(), "keys: retiring a key no document needed for --retire-unused-after");
                    self.retire(&sk, usage, None).await?;
                }
            }
        }
        Ok(())
    }

    async fn rotate_if_due(&self, period: Duration) -> Result<(), KeysError> {
        let current_created = {
            let ring = self.handles.keys.read().await;
            match ring.keys().first() {
                Some(key) => key.created.clone(),
                None => return Ok(()),
            }
        };
        let Some(at) = due(&current_created, period) else {
            return Ok(());
        };
        if at > Timestamp::now() {
            return Ok(());
        }
        // A rotation already asked for and not yet served counts.
        let pending = self
            .sealing_keys
            .state()
            .iter()
            .any(|sk| sk.status.as_ref().and_then(|s| s.key_id.as_ref()).is_none());
        if pending {
            return Ok(());
        }
        // Named after the time it fell due, so that replicas asking at once ask once.
        let name = format!("sealsync-key-r{}", at.as_second());
        let api: Api<SealingKey> = Api::namespaced(self.handles.client.clone(), self.namespace());
        let request = SealingKey {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.namespace().to_owned()),
                annotations: Some(BTreeMap::from([(
                    ROTATED_BY_ANNOTATION.to_owned(),
                    "key-rotation-period".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: SealingKeySpec {},
            status: None,
        };
        match api.create(&PostParams::default(), &request).await {
            Ok(_) => {
                tracing::info!(sealing_key = %name, "keys: the current key reached --key-rotation-period; rotating");
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(api_err(format!(
                "creating the SealingKey {}/{name} for a scheduled rotation",
                self.namespace()
            ))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times() {
        let at = due("2026-12-01T00:00:00Z", Duration::from_secs(3600)).expect("due");
        assert_eq!(at.to_string(), "2026-12-01T01:00:00Z");
        assert!(due("not a time", Duration::from_secs(1)).is_none());
    }
}
