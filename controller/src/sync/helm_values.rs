//! Helm values from `spec.helm.valuesFrom`: ConfigMaps and Secrets of the GitSync's namespace,
//! read as its service account, and sealed files of the repository, opened in memory with the
//! cluster keys. Their values reach the renderer through its standard input only.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::ResourceExt;
use sealsync_core::renderer::{join_in_repository, TreeFile, ValuesSource};
use sealsync_core::{GitSync, SealedSecretUsage, ValuesKind, ValuesReference};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::error::Error;
use super::sealedfile;
use crate::keys::KeyRing;

/// What reading one reference needs.
pub(crate) struct ValuesContext<'a> {
    pub client: &'a kube::Client,
    pub ring: &'a KeyRing,
    pub files: &'a [TreeFile],
    pub chart_path: &'a str,
    /// The GitSync's namespace: sealed values must be sealed for it (a user-chosen target
    /// namespace would let a GitSync open another namespace's files).
    pub owner_namespace: &'a str,
}

/// The values of every `valuesFrom` reference, in order, and the keys that opened the sealed
/// ones (they count as uses of those keys, as a SealedSecret's do).
pub(crate) async fn values_from(
    gs: &GitSync,
    context: &ValuesContext<'_>,
) -> Result<(Vec<ValuesSource>, Vec<SealedSecretUsage>), Error> {
    let Some(helm) = &gs.spec.helm else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut values = Vec::new();
    let mut usage = Vec::new();
    for (index, reference) in helm.values_from.iter().enumerate() {
        let place = format!("spec.helm.valuesFrom[{index}]");
        let key = reference.values_key.as_deref().unwrap_or("values.yaml");
        let secret = reference.kind != ValuesKind::ConfigMap;
        let (source, text) = match reference.kind {
            ValuesKind::ConfigMap | ValuesKind::Secret => {
                from_object(gs, context.client, reference, &place, key).await?
            }
            ValuesKind::Sealed => {
                let (source, text, used) = from_sealed(context, reference, &place, key)?;
                usage.extend(used);
                (source, text)
            }
        };
        let Some(text) = text else {
            continue;
        };
        let yaml = match &reference.target_path {
            Some(path) => at_path(path, &text)
                .map_err(|why| Error::Spec(format!("{place}.targetPath: {why}")))?,
            None => text,
        };
        values.push(ValuesSource {
            source,
            yaml,
            secret,
        });
    }
    Ok((values, usage))
}

/// A ConfigMap's or Secret's key; `None` when it is optional and missing.
async fn from_object(
    gs: &GitSync,
    client: &kube::Client,
    reference: &ValuesReference,
    place: &str,
    key: &str,
) -> Result<(String, Option<Zeroizing<String>>), Error> {
    let namespace = gs.namespace().unwrap_or_default();
    let name = reference.name.as_deref().ok_or_else(|| {
        Error::Spec(format!(
            "{place}: name is required for a {:?}",
            reference.kind
        ))
    })?;
    let kind = if reference.kind == ValuesKind::ConfigMap {
        "ConfigMap"
    } else {
        "Secret"
    };
    let source = format!("{kind} {namespace}/{name} key {key}");
    let read = |e: kube::Error| {
        Error::Spec(format!(
            "{place}: reading {kind} {namespace}/{name}: {}",
            sealsync_core::Chain(&e)
        ))
    };
    let value: Option<Zeroizing<String>> = if reference.kind == ValuesKind::ConfigMap {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
        api.get_opt(name)
            .await
            .map_err(read)?
            .and_then(|c| c.data.and_then(|mut d| d.remove(key)))
            .map(Zeroizing::new)
    } else {
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let secret = api.get_opt(name).await.map_err(read)?;
        match secret.and_then(|s| s.data).and_then(|mut d| d.remove(key)) {
            Some(mut bytes) => {
                let text = String::from_utf8(std::mem::take(&mut bytes.0)).map_err(|e| {
                    let mut raw = e.into_bytes();
                    zeroize::Zeroize::zeroize(&mut raw);
                    Error::Spec(format!("{place}: {source} is not UTF-8 text"))
                })?;
                Some(Zeroizing::new(text))
            }
            None => None,
        }
    };
    match value {
        Some(value) => Ok((source, Some(value))),
        None if reference.optional => Ok((source, None)),
        None => Err(Error::Spec(format!(
            "{place}: {source} does not exist; create it, or mark the reference optional: true"
        ))),
    }
}

/// What a sealed values file gave: its name in messages, the values (none when optional and
/// missing), and the keys that opened it.
type SealedValues = (String, Option<Zeroizing<String>>, Option<SealedSecretUsage>);

/// A sealed file's key, opened in memory. The file must be sealed for the GitSync's namespace:
/// a file sealed for another namespace cannot be turned into this chart's values.
fn from_sealed(
    context: &ValuesContext<'_>,
    reference: &ValuesReference,
    place: &str,
    key: &str,
) -> Result<SealedValues, Error> {
    let path = reference
        .path
        .as_deref()
        .ok_or_else(|| Error::Spec(format!("{place}: path is required for Sealed")))?;
    let file = join_in_repository(context.chart_path, path)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::Spec(format!(
                "{place}.path: {path:?} is not a path inside the repository"
            ))
        })?;
    let Some(found) = context.files.iter().find(|f| f.path == file) else {
        return if reference.optional {
            Ok((file, None, None))
        } else {
            Err(Error::Spec(format!(
                "{place}.path: {file} is not in this revision"
            )))
        };
    };
    let mut opened = sealedfile::open(
        (&file, &found.contents),
        context.ring,
        context.owner_namespace,
        (&format!("{place}.path"), "the GitSync's namespace"),
    )?;
    let usage = opened.usage.clone();
    let Some(bytes) = opened.values.remove(key) else {
        return if reference.optional {
            Ok((file, None, Some(usage)))
        } else {
            Err(Error::Spec(format!(
                "{place}: {file} has no key {key:?} (valuesKey)"
            )))
        };
    };
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Error::Spec(format!("{place}: {file} key {key:?} is not UTF-8 text")))?;
    Ok((
        format!("{file} key {key} (sealed)"),
        Some(Zeroizing::new(text.to_owned())),
        Some(usage),
    ))
}

/// `value` as a string at the dotted `path` of an otherwise empty values map, as JSON (which
/// Helm reads as YAML).
fn at_path(path: &str, value: &str) -> Result<Zeroizing<String>, &'static str> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err("not a dotted path such as database.password");
    }
    let mut nested = Json::String(value.to_owned());
    for part in parts.iter().rev() {
        let mut map = serde_json::Map::new();
        map.insert((*part).to_owned(), nested);
        nested = Json::Object(map);
    }
    let text = serde_json::to_string(&nested).map_err(|_| "the value cannot be written")?;
    sealsync_core::render::wipe_json(&mut nested);
    Ok(Zeroizing::new(text))
}

#[cfg(test)]
mod tests {
    use super::at_path;

    #[test]
    fn a_target_path_nests_the_value_as_a_string() {
        assert_eq!(
            at_path("database.password", "123").expect("valid").as_str(),
            r#"{"database":{"password":"123"}}"#
        );
        assert!(at_path("a..b", "x").is_err());
    }
}
