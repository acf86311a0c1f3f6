//! Key backups: every private key of a cluster in one ASCII-armored age file, encrypted only
//! to recovery recipients.
//!
//! The plaintext is an age identity file with one `# key NAME KEYID created TIME` comment
//! before each identity, so that `age -d -i recovery.key backup.age` gives a file that
//! `age -d -i`, `sealsync unseal -i` and `sealsync keys restore` all read.

use std::io::{Read, Write};

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::keys::{parse_identity_file, Identity, Recipient, MAX_IDENTITIES};
use crate::names::is_object_name;

/// The first line of a backup's plaintext.
pub const BACKUP_HEADER: &str = "# sealsync key backup";
/// Backups larger than this are refused: a real one is well under a kilobyte a key.
pub const MAX_BACKUP_BYTES: usize = 1024 * 1024;

/// One key of a backup.
pub struct BackupKey {
    /// The name of the Secret (and SealingKey) that held it.
    pub name: String,
    /// When it was generated (RFC 3339); empty when the backup does not say.
    pub created: String,
    /// The private key.
    pub identity: Identity,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey")
            .field("name", &self.name)
            .field("key_id", self.identity.key_id())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn backup_error(reason: impl Into<String>) -> Error {
    Error::Backup {
        reason: reason.into(),
    }
}

/// Encrypts `keys` to `recipients` as an armored age file. `about` goes into the plaintext's
/// header comments (such as the cluster's namespace and the time).
pub fn seal_backup(keys: &[BackupKey], about: &str, recipients: &[Recipient]) -> Result<String> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    if keys.is_empty() || keys.len() > MAX_IDENTITIES {
        return Err(backup_error(format!(
            "a backup holds 1 to {MAX_IDENTITIES} keys, not {}",
            keys.len()
        )));
    }
    let mut plaintext = Zeroizing::new(format!("{BACKUP_HEADER}\n"));
    for line in about.lines() {
        plaintext.push_str(&format!("# {line}\n"));
    }
    for key in keys {
        if !is_object_name(&key.name) || key.created.contains(char::is_whitespace) {
            return Err(backup_error(format!(
                "key {}: its name or creation time cannot be written",
                key.identity.key_id()
            )));
        }
        let created = if key.created.is_empty() {
            "-"
        } else {
            &key.created
        };
        plaintext.push_str(&format!(
            "# key {} {} created {created}\n{}\n",
            key.name,
            key.identity.key_id(),
            key.identity.to_secret_string().as_str()
        ));
    }
    let encryptor = age::Encryptor::with_recipients(
        recipients.iter().map(|r| r.as_age() as &dyn age::Recipient),
    )
    .map_err(|e| Error::Wrap(Box::new(e)))?;
    let mut out = Vec::new();
    let armored = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    let mut writer = encryptor
        .wrap_output(armored)
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    writer
        .write_all(plaintext.as_bytes())
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    writer
        .finish()
        .and_then(|armored| armored.finish())
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    String::from_utf8(out).map_err(|e| Error::Wrap(Box::new(e)))
}

/// Opens a backup (armored or binary) with `identities` and reads its keys.
pub fn open_backup(file: &[u8], identities: &[Identity]) -> Result<Vec<BackupKey>> {
    if file.len() > MAX_BACKUP_BYTES {
        return Err(Error::LimitExceeded {
            what: "the key backup".to_owned(),
            limit: format!("{MAX_BACKUP_BYTES} bytes"),
        });
    }
    let reader = age::armor::ArmoredReader::new(file);
    let decryptor = age::Decryptor::new_buffered(reader).map_err(|_| {
        backup_error("not an age file (a backup starts with -----BEGIN AGE ENCRYPTED FILE-----)")
    })?;
    let mut stream = match decryptor.decrypt(identities.iter().map(|i| i.as_age() as &dyn age::Identity)) {
        Ok(stream) => stream,
        Err(age::DecryptError::NoMatchingKeys) => {
            return Err(backup_error(
                "none of the given identities opens it; it is encrypted to the recovery recipients the controller was configured with (--recovery-recipients-file)",
            ))
        }
        Err(_) => return Err(Error::Tampered { what: "the key backup".to_owned() }),
    };
    let mut plaintext = Zeroizing::new(Vec::new());
    stream
        .by_ref()
        .take(MAX_BACKUP_BYTES as u64 + 1)
        .read_to_end(&mut plaintext)
        .map_err(|_| Error::Tampered {
            what: "the key backup".to_owned(),
        })?;
    if plaintext.len() > MAX_BACKUP_BYTES {
        return Err(Error::LimitExceeded {
            what: "the key backup's contents".to_owned(),
            limit: format!("{MAX_BACKUP_BYTES} bytes"),
        });
    }
    let text =
        std::str::from_utf8(&plaintext).map_err(|_| backup_error("its contents are not text"))?;
    parse_backup_text(text)
}

/// Reads the keys of a backup's plaintext (also a plain identity file: keys without a
/// `# key` comment get the name `sealsync-key-<key id>`).
pub fn parse_backup_text(text: &str) -> Result<Vec<BackupKey>> {
    let mut keys = Vec::new();
    let mut pending: Option<(usize, String, String, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("# key ") {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let [name, id, "created", created] = fields.as_slice() else {
                return Err(backup_error(format!(
                    "line {}: not `# key NAME KEYID created TIME`",
                    index + 1
                )));
            };
            let created = if *created == "-" { "" } else { created };
            pending = Some((
                index + 1,
                (*name).to_owned(),
                (*id).to_owned(),
                created.to_owned(),
            ));
            continue;
        }
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parsed = parse_identity_file(line).map_err(|e| match e {
            Error::InvalidIdentity { reason } => Error::InvalidIdentity {
                reason: format!("line {}: {reason}", index + 1),
            },
            other => other,
        })?;
        let Some(identity) = parsed.pop() else {
            continue;
        };
        let (name, created) = match pending.take() {
            Some((at, name, id, created)) => {
                if id != identity.key_id().as_str() {
                    return Err(backup_error(format!(
                        "line {at}: the comment names key id {id}, but the key below it is {}",
                        identity.key_id()
                    )));
                }
                if !is_object_name(&name) {
                    return Err(backup_error(format!(
                        "line {at}: {name:?} is not a Secret name"
                    )));
                }
                (name, created)
            }
            None => (format!("sealsync-key-{}", identity.key_id()), String::new()),
        };
        if keys.len() == MAX_IDENTITIES {
            return Err(Error::LimitExceeded {
                what: "the keys of one backup".to_owned(),
                limit: MAX_IDENTITIES.to_string(),
            });
        }
        keys.push(BackupKey {
            name,
            created,
            identity,
        });
    }
    if keys.is_empty() {
        return Err(backup_error("it holds no key"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> BackupKey {
        BackupKey {
            name: name.to_owned(),
            created: "2026-12-01T19:00:00Z".to_owned(),
            identity: Identity::generate(),
        }
    }

    #[test]
    fn a_backup_opens_only_with_a_recovery_identity_and_keeps_names_and_times() {
        let recovery = Identity::generate();
        let keys = vec![key("sealsync-key-1"), key("sealsync-key-x7k2p")];
        let armored =
            seal_backup(&keys, "namespace sealsync-system", &[recovery.recipient()]).expect("seal");
        assert!(
            armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
            "{armored}"
        );
        for k in &keys {
            assert!(!armored.contains(k.identity.to_secret_string().as_str()));
        }
        let opened = open_backup(armored.as_bytes(), &[recovery]).expect("open");
        assert_eq!(opened.len(), 2);
        for (a, b) in keys.iter().zip(&opened) {
            assert_eq!(a.name, b.name);
            assert_eq!(a.created, b.created);
            assert_eq!(a.identity.key_id(), b.identity.key_id());
        }
        let err = open_backup(armored.as_bytes(), &[Identity::generate()]).expect_err("wrong key");
        assert!(err.to_string().contains("recovery recipients"), "{err}");
        let err = open_backup(b"not a backup", &[Identity::generate()]).expect_err("junk");
        assert!(err.to_string().contains("not an age file"), "{err}");
    }

    #[test]
    fn a_plain_identity_file_reads_as_a_backup_and_a_lying_comment_is_refused() {
        let identity = Identity::generate();
        let plain = format!("{}\n", identity.to_secret_string().as_str());
        let keys = parse_backup_text(&plain).expect("plain");
        assert_eq!(keys[0].name, format!("sealsync-key-{}", identity.key_id()));
        let lying = format!("# key sealsync-key-1 0000000000000000 created -\n{plain}");
        let err = parse_backup_text(&lying).expect_err("lying");
        assert!(
            err.to_string().contains("names key id 0000000000000000"),
            "{err}"
        );
        assert!(!err.to_string().contains("AGE-SECRET-KEY"), "{err}");
    }
}
