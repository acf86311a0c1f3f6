//! Reading KV secrets: which mount a path is on and its KV version (`sys/internal/ui/mounts`,
//! as vals finds it), then one read per distinct path and version.

use std::collections::BTreeMap;

use sealsync_core::vaultref::{RefSyntax, VaultRef};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::error::ReadError;
use super::transport::{CallError, Reply, Transport};

/// The values of one secret (one path at one version).
pub(super) type SecretData = BTreeMap<String, Zeroizing<String>>;

/// What is read: a path at a version, as a reference names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ReadKey {
    /// The reference's path.
    pub path: String,
    /// The KV v2 version.
    pub version: Option<u64>,
    /// `true` for `<path:…>`, whose path is the API path.
    pub api_path: bool,
}

impl ReadKey {
    /// The read a reference needs.
    pub(crate) fn of(reference: &VaultRef) -> Self {
        Self {
            path: reference.path.clone(),
            version: reference.version,
            api_path: reference.syntax == RefSyntax::Avp,
        }
    }
}

/// A secrets engine mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    /// Its path, without a trailing `/`.
    pub path: String,
    /// Its KV version.
    pub version: u8,
}

impl Mount {
    /// Whether `path` lies on this mount.
    pub(super) fn holds(&self, path: &str) -> bool {
        path == self.path
            || path
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// The mount of `path` with the KV version given in the spec: the first path segment.
pub(super) fn assumed_mount(path: &str, version: u8) -> Mount {
    Mount {
        path: path.split('/').next().unwrap_or_default().to_owned(),
        version,
    }
}

fn unreachable(transport: &Transport, e: CallError) -> ReadError {
    ReadError::Unreachable {
        address: transport.address().to_owned(),
        reason: e.to_string(),
    }
}

/// A non-2xx answer about `path`, in words.
pub(super) fn refusal(transport: &Transport, path: &str, reply: &Reply) -> ReadError {
    match reply.status {
        403 => ReadError::Forbidden {
            path: path.to_owned(),
        },
        404 => ReadError::NotFound {
            path: path.to_owned(),
        },
        // Sealed, or a standby without an active node.
        503 | 429 | 472 | 473 => ReadError::Unavailable {
            address: transport.address().to_owned(),
            status: reply.status,
        },
        status => ReadError::Status {
            path: path.to_owned(),
            status,
            errors: reply.errors(),
        },
    }
}

/// Asks Vault which mount `path` is on and its KV version.
pub(super) async fn detect_mount(
    transport: &Transport,
    token: &str,
    path: &str,
) -> Result<Mount, ReadError> {
    let reply = transport
        .raw(
            reqwest::Method::GET,
            &format!("sys/internal/ui/mounts/{path}"),
            Some(token),
            None,
        )
        .await
        .map_err(|e| unreachable(transport, e))?;
    if !reply.ok() {
        return Err(match refusal(transport, path, &reply) {
            // Vault answers 403 when the token may use nothing under the mount.
            ReadError::Forbidden { path } | ReadError::NotFound { path } => {
                ReadError::Forbidden { path }
            }
            other => other,
        });
    }
    let answer: Json = serde_json::from_slice(&reply.body).map_err(|_| ReadError::BadResponse {
        path: path.to_owned(),
        reason: "the mount lookup is not JSON".to_owned(),
    })?;
    let data = &answer["data"];
    let mount_path = data["path"]
        .as_str()
        .map(|p| p.trim_end_matches('/').to_owned())
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ReadError::BadResponse {
            path: path.to_owned(),
            reason: "the mount lookup names no mount".to_owned(),
        })?;
    let kind = data["type"].as_str().unwrap_or_default();
    if kind != "kv" && kind != "generic" {
        return Err(ReadError::Mount(format!(
            "{mount_path} is a {kind:?} secrets engine; only KV (version 1 or 2) is read"
        )));
    }
    let version = match data["options"]["version"].as_str() {
        Some("2") => 2,
        _ => 1,
    };
    Ok(Mount {
        path: mount_path,
        version,
    })
}

/// The path of `key` inside `mount` (without `data/` on KV v2): two references that name the
/// same secret in the two syntaxes have the same one, and are read once.
pub(super) fn path_in_mount(mount: &Mount, key: &ReadKey) -> Result<String, ReadError> {
    let rest = key
        .path
        .strip_prefix(mount.path.as_str())
        .map(|r| r.trim_start_matches('/'))
        .unwrap_or_default();
    if mount.version == 2 && key.api_path {
        // `<path:secret/data/db#key>`: AVP writes the API path.
        return rest.strip_prefix("data/").map(str::to_owned).ok_or_else(|| {
            ReadError::Mount(format!(
                "{} is on KV v2 mount {}, whose paths in <path:…> include data/: <path:{}/data/{rest}#KEY>",
                key.path, mount.path, mount.path
            ))
        });
    }
    if mount.version != 2 {
        if let Some(v) = key.version {
            return Err(ReadError::Mount(format!(
                "{} is on KV v1 mount {}, which keeps no versions; remove version {v}",
                key.path, mount.path
            )));
        }
    }
    Ok(rest.to_owned())
}

/// Reads `rest` (from [`path_in_mount`]) at `version` on `mount`.
pub(super) async fn read(
    transport: &Transport,
    token: &str,
    mount: &Mount,
    rest: &str,
    version: Option<u64>,
) -> Result<SecretData, ReadError> {
    let (reply, api_path) = if mount.version == 2 {
        let request = vaultrs::api::kv2::requests::ReadSecretRequest {
            mount: mount.path.clone(),
            path: rest.to_owned(),
            version,
        };
        let api_path = format!("{}/data/{rest}", mount.path);
        (transport.call(&request, Some(token)).await, api_path)
    } else {
        let request = vaultrs::api::kv1::requests::GetSecretRequest {
            mount: mount.path.clone(),
            path: rest.to_owned(),
        };
        (
            transport.call(&request, Some(token)).await,
            format!("{}/{rest}", mount.path),
        )
    };
    let reply = reply.map_err(|e| unreachable(transport, e))?;
    let shown = match version {
        Some(v) => format!("{api_path}?version={v}"),
        None => api_path.clone(),
    };
    if !reply.ok() {
        return Err(refusal(transport, &shown, &reply));
    }
    let mut answer: Json =
        serde_json::from_slice(&reply.body).map_err(|_| ReadError::BadResponse {
            path: shown.clone(),
            reason: "the answer is not JSON".to_owned(),
        })?;
    let result = values_of(&mut answer, mount.version, &shown, version);
    sealsync_core::render::wipe_json(&mut answer);
    result
}

/// The values of a read answer: `data.data` on KV v2, `data` on v1.
fn values_of(
    answer: &mut Json,
    kv_version: u8,
    shown: &str,
    version: Option<u64>,
) -> Result<SecretData, ReadError> {
    let data = &mut answer["data"];
    let values = if kv_version == 2 {
        if data["data"].is_null() {
            // A deleted or destroyed version answers with its metadata only.
            let destroyed = data["metadata"]["destroyed"].as_bool() == Some(true);
            let version = version
                .map(|v| v.to_string())
                .or_else(|| data["metadata"]["version"].as_u64().map(|v| v.to_string()))
                .unwrap_or_else(|| "latest".to_owned());
            return Err(ReadError::VersionGone {
                path: shown.to_owned(),
                version,
                what: if destroyed { "destroyed" } else { "deleted" },
            });
        }
        &mut data["data"]
    } else {
        data
    };
    let Json::Object(map) = values else {
        return Err(ReadError::BadResponse {
            path: shown.to_owned(),
            reason: "the secret is not a map of keys".to_owned(),
        });
    };
    let mut out = SecretData::new();
    for (k, v) in map.iter_mut() {
        let text = match v {
            Json::String(s) => Zeroizing::new(std::mem::take(s)),
            Json::Null => Zeroizing::new(String::new()),
            // Numbers and booleans as JSON spells them; nested maps and lists as JSON.
            other => Zeroizing::new(other.to_string()),
        };
        out.insert(k.clone(), text);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kv2_values_and_gone_versions() {
        let mut answer = json!({"data": {"data": {"a": "x", "n": 5, "m": {"k": true}}, "metadata": {"version": 3}}});
        let values = values_of(&mut answer, 2, "secret/data/db", None).expect("values");
        assert_eq!(values["a"].as_str(), "x");
        assert_eq!(values["n"].as_str(), "5");
        assert_eq!(values["m"].as_str(), r#"{"k":true}"#);
        let mut deleted = json!({"data": {"data": null, "metadata": {"version": 2, "destroyed": false, "deletion_time": "2026-01-01T00:00:00Z"}}});
        let err =
            values_of(&mut deleted, 2, "secret/data/db?version=2", Some(2)).expect_err("gone");
        assert_eq!(
            err.to_string(),
            "version 2 of secret/data/db?version=2 was deleted"
        );
        let mut destroyed =
            json!({"data": {"data": null, "metadata": {"version": 4, "destroyed": true}}});
        let err = values_of(&mut destroyed, 2, "secret/data/db", None).expect_err("gone");
        assert!(err.to_string().contains("version 4") && err.to_string().ends_with("destroyed"));
    }

    #[test]
    fn kv1_values() {
        let mut answer = json!({"data": {"user": "u"}});
        let values = values_of(&mut answer, 1, "kv/db", None).expect("values");
        assert_eq!(values["user"].as_str(), "u");
    }

    #[test]
    fn mounts_hold_their_paths_only() {
        let m = Mount {
            path: "team/kv".into(),
            version: 2,
        };
        assert!(m.holds("team/kv/db"));
        assert!(!m.holds("team/kvx/db"));
        assert_eq!(assumed_mount("secret/db/x", 1).path, "secret");
    }
}
