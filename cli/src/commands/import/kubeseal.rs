//! `sealsync import kubeseal`: Bitnami SealedSecrets (`bitnami.com/v1alpha1`) opened offline
//! with the Sealed Secrets controller's exported private keys and sealed to sealsync
//! recipients, keeping name, namespace, labels, annotations, type and scope.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use base64::Engine as _;
use clap::Args as ClapArgs;
use sealsync_core::manifest::{read_documents, Document, Limits};
use sealsync_core::Chain;
use sealsync_crypto::{
    is_dns_label, is_object_name, open_kubeseal_value, validate_data_key, KubesealKey, PlainSecret,
    Scope, SecretData, MAX_KUBESEAL_KEYS,
};
use serde_yaml::Value;
use zeroize::Zeroizing;

use super::SealTo;
use crate::commands::seal::Input;
use crate::error::{CliError, CliResult};
use crate::fsio;

/// The annotations that set a Bitnami SealedSecret's scope, honoured only as `"true"`.
const NAMESPACE_WIDE: &str = "sealedsecrets.bitnami.com/namespace-wide";
const CLUSTER_WIDE: &str = "sealedsecrets.bitnami.com/cluster-wide";
/// Annotations of the Sealed Secrets controller, which mean nothing to sealsync.
const BITNAMI_PREFIX: &str = "sealedsecrets.bitnami.com/";

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The Sealed Secrets controller's private keys: the output of `kubectl get secret -n
    /// kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`, or PEM files.
    /// Repeatable; every key is tried.
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// Bitnami SealedSecret manifests; directories are read recursively.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub to: SealTo,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    if let Some(path) = &args.to.write {
        fsio::writable_target(path)?;
    }
    let keys = read_keys(&args.keys)?;
    let inputs = super::gather(&args.files, |file| read_file(file, &keys))?;
    super::seal_and_write(&inputs, &args.to)
}

/// Every key in `files`: PEM, or the controller's `kubernetes.io/tls` Secrets (a `List` or
/// documents), whose `tls.key` holds the PEM.
fn read_keys(files: &[PathBuf]) -> CliResult<Vec<KubesealKey>> {
    let mut keys = Vec::new();
    for file in files {
        let source = file.display().to_string();
        let text = fsio::read_input(Some(file))?;
        if text.trim_start().starts_with("-----BEGIN") {
            keys.push(
                KubesealKey::from_pem(&text, &source)
                    .map_err(|e| CliError::from_crypto(&e).with_hint(KEY_HINT))?,
            );
        } else {
            let docs = read_documents(&text, Limits::default())
                .map_err(|e| CliError::from_manifest(&e).context(&source))?;
            for doc in &docs {
                let place = format!("{source}: {}", doc.describe());
                let encoded = doc
                    .value
                    .get("data")
                    .and_then(|d| d.get("tls.key"))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        CliError::new(format!("{place}: no data.tls.key")).with_hint(KEY_HINT)
                    })?;
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .map(Zeroizing::new)
                    .ok_or_else(|| {
                        CliError::new(format!("{place}: data.tls.key is not base64 of a PEM key"))
                            .with_hint(KEY_HINT)
                    })?;
                keys.push(
                    KubesealKey::from_pem(&pem, &format!("{place}: data.tls.key"))
                        .map_err(|e| CliError::from_crypto(&e).with_hint(KEY_HINT))?,
                );
            }
        }
        if keys.len() > MAX_KUBESEAL_KEYS {
            return Err(CliError::new(format!(
                "more than {MAX_KUBESEAL_KEYS} Sealed Secrets keys given"
            ))
            .with_hint("pass only the keys of the cluster these files were sealed for"));
        }
    }
    if keys.is_empty() {
        return Err(CliError::new("the --key files hold no key").with_hint(KEY_HINT));
    }
    Ok(keys)
}

const KEY_HINT: &str = "export the keys with `kubectl get secret -n kube-system -l sealedsecrets.bitnami.com/sealed-secrets-key -o yaml`";

fn read_file(file: &Path, keys: &[KubesealKey]) -> CliResult<Vec<Input>> {
    let source = file.display().to_string();
    let text = fsio::read_input(Some(file))?;
    let docs = read_documents(&text, Limits::secrets())
        .map_err(|e| CliError::from_manifest(&e).context(&source))?;
    docs.iter()
        .map(|doc| {
            let place = format!("{source}: {}", doc.describe());
            let (secret, scope) = open_document(doc, keys, &place)?;
            Ok(Input {
                secret,
                place,
                rules_path: Some(file.to_path_buf()),
                scope: Some(scope),
            })
        })
        .collect()
}

fn malformed(place: &str, field: &str, reason: &str) -> CliError {
    CliError::new(format!("{place}: {field}: {reason}"))
}

/// A string-to-string map at `field`, or empty.
fn string_map(
    value: Option<&Value>,
    place: &str,
    field: &str,
) -> CliResult<BTreeMap<String, String>> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_mapping()
        .ok_or_else(|| malformed(place, field, "not a mapping"))?;
    map.iter()
        .map(|(k, v)| match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
            _ => Err(malformed(
                place,
                field,
                "holds an entry that is not a string",
            )),
        })
        .collect()
}

/// The Secret a Bitnami SealedSecret describes, its values opened, and its scope.
fn open_document(
    doc: &Document,
    keys: &[KubesealKey],
    place: &str,
) -> CliResult<(PlainSecret, Scope)> {
    let value = &doc.value;
    if value.get("apiVersion").and_then(Value::as_str) != Some("bitnami.com/v1alpha1")
        || doc.kind() != Some("SealedSecret")
    {
        return Err(CliError::new(format!("{place}: not a Bitnami SealedSecret (bitnami.com/v1alpha1)"))
            .with_hint("import kubeseal converts Sealed Secrets files only; seal plaintext Secrets with `sealsync seal`"));
    }
    let name = doc
        .name()
        .filter(|n| is_object_name(n))
        .ok_or_else(|| malformed(place, "metadata.name", "missing or not a valid name"))?
        .to_owned();
    let namespace = match doc.namespace() {
        Some(ns) if is_dns_label(ns) => Some(ns.to_owned()),
        Some(_) => {
            return Err(malformed(
                place,
                "metadata.namespace",
                "not a valid namespace",
            ))
        }
        None => None,
    };
    let own = string_map(
        value.get("metadata").and_then(|m| m.get("annotations")),
        place,
        "metadata.annotations",
    )?;
    let scope = if own.get(CLUSTER_WIDE).map(String::as_str) == Some("true") {
        Scope::Cluster
    } else if own.get(NAMESPACE_WIDE).map(String::as_str) == Some("true") {
        Scope::Namespace
    } else {
        Scope::Strict
    };
    let label = match (scope, &namespace) {
        (Scope::Cluster, _) => String::new(),
        (Scope::Namespace, Some(ns)) => ns.clone(),
        (Scope::Strict, Some(ns)) => format!("{ns}/{name}"),
        (_, None) => {
            return Err(malformed(
                place,
                "metadata.namespace",
                "missing, and the file's scope binds a namespace",
            )
            .with_hint("set metadata.namespace to the namespace it was sealed for"))
        }
    };
    let spec = value
        .get("spec")
        .ok_or_else(|| malformed(place, "spec", "missing"))?;
    if spec.get("data").is_some_and(|d| !d.is_null()) {
        return Err(malformed(
            place,
            "spec.data",
            "the deprecated single-blob format, which this import does not read",
        )
        .with_hint("re-encrypt it with a current kubeseal (`kubeseal --re-encrypt`) first"));
    }
    let template = spec.get("template");
    let metadata = template.and_then(|t| t.get("metadata"));
    let labels = string_map(
        metadata.and_then(|m| m.get("labels")),
        place,
        "spec.template.metadata.labels",
    )?;
    let mut annotations = string_map(
        metadata.and_then(|m| m.get("annotations")),
        place,
        "spec.template.metadata.annotations",
    )?;
    annotations.retain(|k, _| !k.starts_with(BITNAMI_PREFIX));
    let type_ = match template.and_then(|t| t.get("type")) {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(malformed(place, "spec.template.type", "not a string")),
    };
    let immutable = match template.and_then(|t| t.get("immutable")) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(malformed(place, "spec.template.immutable", "not a boolean")),
    };
    let mut data = SecretData::new();
    let encrypted = spec
        .get("encryptedData")
        .and_then(Value::as_mapping)
        .ok_or_else(|| malformed(place, "spec.encryptedData", "missing or not a mapping"))?;
    for (key, sealed) in encrypted {
        let key = key
            .as_str()
            .filter(|k| validate_data_key(k).is_ok())
            .ok_or_else(|| {
                malformed(
                    place,
                    "spec.encryptedData",
                    "holds a key that is not a valid data key",
                )
            })?;
        let field = format!("spec.encryptedData.{key}");
        let raw = sealed
            .as_str()
            .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .ok_or_else(|| malformed(place, &field, "not base64"))?;
        let opened = open_kubeseal_value(keys, &label, &raw, &field).map_err(|e| {
            CliError::new(format!("{place}: {}", Chain(&e))).with_hint(format!(
                "none of the keys given opens it as sealed for {}: pass the key of the cluster it was sealed for, and check its scope annotations",
                describe_scope(scope, &label)
            ))
        })?;
        data.insert(key.to_owned(), opened);
    }
    // Plain strings of the template's data override, as the Sealed Secrets controller applies
    // them; templates are its Go templates, which sealsync does not evaluate.
    if let Some(plain) = template
        .and_then(|t| t.get("data"))
        .filter(|d| !d.is_null())
    {
        let plain = plain
            .as_mapping()
            .ok_or_else(|| malformed(place, "spec.template.data", "not a mapping"))?;
        for (key, text) in plain {
            let key = key
                .as_str()
                .filter(|k| validate_data_key(k).is_ok())
                .ok_or_else(|| {
                    malformed(
                        place,
                        "spec.template.data",
                        "holds a key that is not a valid data key",
                    )
                })?;
            let field = format!("spec.template.data.{key}");
            let text = text
                .as_str()
                .ok_or_else(|| malformed(place, &field, "not a string"))?;
            if text.contains("{{") {
                return Err(malformed(
                    place,
                    &field,
                    "a Go template, which sealsync does not evaluate",
                )
                .with_hint(
                    "write the value it yields into the Secret, then seal it with `sealsync seal`",
                ));
            }
            data.insert(key.to_owned(), Zeroizing::new(text.as_bytes().to_vec()));
        }
    }
    if data.is_empty() {
        return Err(malformed(place, "spec.encryptedData", "holds no value"));
    }
    Ok((
        PlainSecret {
            name,
            namespace,
            type_,
            labels,
            annotations,
            immutable,
            data,
        },
        scope,
    ))
}

fn describe_scope(scope: Scope, label: &str) -> String {
    match scope {
        Scope::Strict => format!("{label} (strict)"),
        Scope::Namespace => format!("namespace {label} (namespace-wide)"),
        Scope::Cluster => "the whole cluster (cluster-wide)".to_owned(),
    }
}
