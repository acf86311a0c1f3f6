//! The key backup: every private key of the cluster, encrypted only to the recovery
//! recipients the cluster admin configured (`--recovery-recipients-file`), kept current in the
//! Secret `sealsync-key-backup` after every change of keys.
//!
//! No caller chooses the recipients: they come from the controller's own configuration, read
//! from a file (a ConfigMap mounted in-cluster). Without that file no backup is written, and
//! private keys never leave the cluster in any form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::Api;
use sealsync_core::keysecret::{
    BACKUP_DATA_KEY, BACKUP_KEY_IDS_ANNOTATION, BACKUP_RECIPIENTS_ANNOTATION, BACKUP_SECRET,
    BACKUP_WRITTEN_ANNOTATION,
};
use sealsync_core::Chain;
use sealsync_core::FIELD_MANAGER;
use sealsync_crypto::{parse_recipients_file, seal_backup, BackupKey, Recipient, MAX_IDENTITIES};

use super::{api_err, now_rfc3339, KeyRing, KeysError};

/// A recovery recipients file larger than this is refused.
const MAX_RECIPIENTS_FILE_BYTES: u64 = 64 * 1024;

/// Why a recipients file of the controller's configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{flag} {path}: {reason}")]
pub(crate) struct RecoveryRecipientsError {
    /// The flag that names the file.
    pub flag: &'static str,
    /// The file.
    pub path: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Reads and checks the recovery recipients file: one `age1…` a line, `#` comments.
pub(crate) fn read_recovery_recipients(
    path: &Path,
) -> Result<Vec<Recipient>, RecoveryRecipientsError> {
    read_recipients_setting("--recovery-recipients-file", path)
}

/// Reads and checks the recipients file that `flag` names.
pub(crate) fn read_recipients_setting(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<Recipient>, RecoveryRecipientsError> {
    let fail = |reason: String| RecoveryRecipientsError {
        flag,
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    if meta.len() > MAX_RECIPIENTS_FILE_BYTES {
        return Err(fail(format!(
            "larger than {MAX_RECIPIENTS_FILE_BYTES} bytes"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read it: {e}")))?;
    // A private key here would mean an admin pasted the wrong half: say so without echoing it.
    if sealsync_crypto::looks_like_identity(&text) {
        return Err(fail(
            "it holds a private identity (AGE-SECRET-KEY-1…); it must hold only the public age1… recipients, and that identity should be treated as exposed".to_owned(),
        ));
    }
    let recipients = parse_recipients_file(&text).map_err(|e| fail(e.to_string()))?;
    if recipients.is_empty() {
        return Err(fail("it lists no recipient".to_owned()));
    }
    if recipients.len() > MAX_IDENTITIES {
        return Err(fail(format!("more than {MAX_IDENTITIES} recipients")));
    }
    Ok(recipients)
}

/// What a backup holds: the key ids (newest first) and the recovery recipients' key ids.
type Contents = (Vec<String>, Vec<String>);

/// Keeps the backup Secret current.
#[derive(Debug)]
pub(crate) struct BackupWriter {
    file: Option<PathBuf>,
    /// What the backup Secret is known to hold; `None` until read or written once.
    written: Option<Contents>,
}

impl BackupWriter {
    /// A writer for the recipients in `file`; without one, backups are off.
    pub(crate) fn new(file: Option<PathBuf>) -> Self {
        Self {
            file,
            written: None,
        }
    }

    /// Writes the backup when the keys or the recovery recipients changed since it was last
    /// written. Costs no request when nothing changed.
    pub(crate) async fn ensure(
        &mut self,
        client: &kube::Client,
        namespace: &str,
        ring: &KeyRing,
    ) -> Result<(), KeysError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if ring.identities().is_empty() {
            return Ok(());
        }
        let recipients = read_recovery_recipients(file).map_err(KeysError::Recovery)?;
        let mut recipient_ids: Vec<String> =
            recipients.iter().map(|r| r.key_id().to_string()).collect();
        recipient_ids.sort();
        let wanted: Contents = (ring.key_ids(), recipient_ids);
        if self.written.as_ref() == Some(&wanted) {
            return Ok(());
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        if self.written.is_none() {
            let current = secrets
                .get_metadata_opt(BACKUP_SECRET)
                .await
                .map_err(api_err(format!(
                    "reading the backup Secret {namespace}/{BACKUP_SECRET}"
                )))?;
            let annotations = current
                .and_then(|m| m.metadata.annotations)
                .unwrap_or_default();
            let held = |key: &str| -> Vec<String> {
                annotations
                    .get(key)
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            if (
                held(BACKUP_KEY_IDS_ANNOTATION),
                held(BACKUP_RECIPIENTS_ANNOTATION),
            ) == wanted
            {
                self.written = Some(wanted);
                return Ok(());
            }
        }
        let written_at = now_rfc3339();
        let keys: Vec<BackupKey> = ring
            .keys()
            .iter()
            .zip(ring.identities())
            .map(|(meta, identity)| BackupKey {
                name: meta.name.clone(),
                created: meta.created.clone(),
                identity: identity.clone(),
            })
            .collect();
        let armored = seal_backup(
            &keys,
            &format!("controller namespace {namespace}\nwritten {written_at}"),
            &recipients,
        )
        .map_err(|e| KeysError::Backup(Chain(&e).to_string()))?;
        drop(keys);
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": BACKUP_SECRET,
                "namespace": namespace,
                "labels": {"app.kubernetes.io/managed-by": "sealsync"},
                "annotations": BTreeMap::from([
                    (BACKUP_KEY_IDS_ANNOTATION, wanted.0.join(",")),
                    (BACKUP_RECIPIENTS_ANNOTATION, wanted.1.join(",")),
                    (BACKUP_WRITTEN_ANNOTATION, written_at),
                ]),
            },
            "type": "Opaque",
            "stringData": {BACKUP_DATA_KEY: armored},
        });
        secrets
            .patch(
                BACKUP_SECRET,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(api_err(format!(
                "writing the backup Secret {namespace}/{BACKUP_SECRET}"
            )))?;
        tracing::info!(
            key_ids = ?wanted.0,
            recovery_recipients = ?wanted.1,
            "keys: backup written"
        );
        self.written = Some(wanted);
        Ok(())
    }
}
