//! Finding a revision's references and putting their values in place. Every reference is
//! read before any value is written, so a revision is resolved in full or not at all.

use std::collections::BTreeSet;

use base64::Engine as _;
use sealsync_core::vaultref::{
    reference_outside_secret, secret_values, SecretValue, Segment, ValueSource,
};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::error::{ReadError, VaultError};
use super::kv::ReadKey;
use super::session::ReadResults;

/// A Secret of the revision whose values hold references.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    /// Its position among the revision's objects.
    pub index: usize,
    /// `file: document`.
    pub location: String,
    /// `namespace/name`, for messages.
    pub secret: String,
    /// The values that hold references.
    pub values: Vec<SecretValue>,
}

/// Finds the references of `objects`; `sealed[i]` says the object was opened from a
/// SealedSecret, whose values are taken as they were sealed. A reference outside a plain
/// Secret's values, or a malformed one, fails the whole revision.
pub(super) fn plan(
    objects: &[(String, Json)],
    sealed: &[bool],
    default_namespace: &str,
) -> Result<Vec<Planned>, VaultError> {
    let mut planned = Vec::new();
    for (index, (location, object)) in objects.iter().enumerate() {
        // A sealed Secret's labels and annotations come from its template, in clear text.
        if let Some(field) = reference_outside_secret(object) {
            return Err(VaultError::Outside {
                location: location.clone(),
                field,
            });
        }
        if sealed.get(index).copied().unwrap_or(false) {
            continue;
        }
        let values = secret_values(object).map_err(|source| VaultError::Malformed {
            location: location.clone(),
            source,
        })?;
        if values.references.is_empty() {
            continue;
        }
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(default_namespace);
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        planned.push(Planned {
            index,
            location: location.clone(),
            secret: format!("{namespace}/{name}"),
            values: values.references,
        });
    }
    Ok(planned)
}

/// Every distinct read `planned` needs.
pub(super) fn reads_of(planned: &[Planned]) -> BTreeSet<ReadKey> {
    planned
        .iter()
        .flat_map(|p| &p.values)
        .flat_map(|v| &v.segments)
        .filter_map(|s| match s {
            Segment::Ref(r) => Some(ReadKey::of(r)),
            Segment::Literal(_) => None,
        })
        .collect()
}

/// Writes the values `results` hold into the planned Secrets of `objects`. Fails on the
/// first reference (in revision order) that has no value, before anything is written.
pub(super) fn substitute(
    planned: &[Planned],
    results: &ReadResults,
    objects: &mut [(String, Json)],
) -> Result<(), VaultError> {
    let mut resolved: Vec<(usize, ValueSource, String, Zeroizing<String>)> = Vec::new();
    for p in planned {
        for value in &p.values {
            let mut text = Zeroizing::new(String::new());
            for segment in &value.segments {
                match segment {
                    Segment::Literal(literal) => text.push_str(literal),
                    Segment::Ref(reference) => {
                        let failed = |source: ReadError| VaultError::Read {
                            location: p.location.clone(),
                            secret: p.secret.clone(),
                            field: format!("{}.{}", value.source.field(), value.key),
                            reference: reference.to_string(),
                            source: Box::new(source),
                        };
                        let data = match results.get(&ReadKey::of(reference)) {
                            Some(Ok(data)) => data,
                            Some(Err(e)) => return Err(failed(e.clone())),
                            None => {
                                return Err(failed(ReadError::BadResponse {
                                    path: reference.path.clone(),
                                    reason: "it was not read".to_owned(),
                                }))
                            }
                        };
                        let found = data.get(&reference.key).ok_or_else(|| {
                            failed(ReadError::MissingKey {
                                path: reference.path.clone(),
                                key: reference.key.clone(),
                            })
                        })?;
                        text.push_str(found);
                    }
                }
            }
            resolved.push((p.index, value.source, value.key.clone(), text));
        }
    }
    for (index, source, key, text) in resolved {
        let Some(map) = objects
            .get_mut(index)
            .and_then(|(_, o)| o.get_mut(source.field()))
            .and_then(Json::as_object_mut)
        else {
            continue;
        };
        let encoded = match source {
            ValueSource::StringData => text.as_str().to_owned(),
            ValueSource::Data => base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
        };
        map.insert(key, Json::String(encoded));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn objects() -> Vec<(String, Json)> {
        vec![
            (
                "db.yaml: document 1 (Secret db)".to_owned(),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
                    "stringData": {"url": "pg://ref+vault://secret/db#user+:ref+vault://secret/db#pass+@h", "plain": "x"},
                    "data": {"token": "cmVmK3ZhdWx0Oi8va3YvYXBwI3Rva2Vu"}}),
            ),
            (
                "sealed.yaml: document 1 (SealedSecret s)".to_owned(),
                json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                    "stringData": {"v": "ref+vault://secret/db#pass"}}),
            ),
        ]
    }

    #[test]
    fn plans_skip_sealed_values_and_read_each_path_once() {
        let objects = objects();
        let planned = plan(&objects, &[false, true], "apps").expect("planned");
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].secret, "apps/db");
        let reads = reads_of(&planned);
        let paths: Vec<_> = reads.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, vec!["kv/app", "secret/db"]);
    }

    #[test]
    fn substitutes_all_or_nothing() {
        let mut objects = objects();
        let planned = plan(&objects, &[false, true], "apps").expect("planned");
        let mut results = ReadResults::new();
        let db = [("user", "u"), ("pass", "p@ss")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Zeroizing::new(v.to_owned())))
            .collect();
        let keys: Vec<_> = reads_of(&planned).into_iter().collect();
        results.insert(keys[1].clone(), Ok(db));
        results.insert(
            keys[0].clone(),
            Err(ReadError::Forbidden {
                path: "kv/app".into(),
            }),
        );
        let before = objects[0].1.clone();
        let err = substitute(&planned, &results, &mut objects).expect_err("forbidden");
        assert_eq!(
            sealsync_core::Chain(&err).to_string(),
            "db.yaml: document 1 (Secret db): Secret apps/db, data.token: reference kv/app#token: permission denied reading kv/app: the Vault policy of this login does not allow it"
        );
        // The message names the place; the cause is its source, not repeated.
        assert!(!err.to_string().contains("permission denied"), "{err}");
        assert_eq!(objects[0].1, before, "nothing written");

        let app = [("token", "t0k")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Zeroizing::new(v.to_owned())))
            .collect();
        results.insert(keys[0].clone(), Ok(app));
        substitute(&planned, &results, &mut objects).expect("resolved");
        assert_eq!(objects[0].1["stringData"]["url"], "pg://u:p@ss@h");
        assert_eq!(objects[0].1["stringData"]["plain"], "x");
        assert_eq!(objects[0].1["data"]["token"], "dDBr");
        assert_eq!(
            objects[1].1["stringData"]["v"],
            "ref+vault://secret/db#pass"
        );
    }

    #[test]
    fn a_sealed_secret_template_is_checked_too() {
        let objects = vec![(
            "sealed.yaml: document 1 (SealedSecret s)".to_owned(),
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "annotations": {"dsn": "ref+vault://secret/db#pass"}},
                "stringData": {"v": "sealed text"}}),
        )];
        let err = plan(&objects, &[true], "apps").expect_err("refused");
        assert!(
            err.to_string()
                .contains("metadata.annotations.dsn holds a Vault reference"),
            "{err}"
        );
    }

    #[test]
    fn references_elsewhere_fail_the_revision() {
        let objects = vec![(
            "cm.yaml: document 1 (ConfigMap c)".to_owned(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "<path:secret/data/x#y>"}}),
        )];
        let err = plan(&objects, &[false], "apps").expect_err("refused");
        assert!(
            err.to_string()
                .starts_with("cm.yaml: document 1 (ConfigMap c): data.k holds a Vault reference"),
            "{err}"
        );
        assert!(err.is_terminal());
    }
}
