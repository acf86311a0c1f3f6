//! Restarting workloads whose Secret changed: a Deployment, StatefulSet or DaemonSet of the
//! revision that opts in gets the pod-template annotation `sealsync.dev/secret-checksum`,
//! computed from the Secrets of the same revision that its pods use. The annotation changes
//! exactly when one of those Secrets' data changes, so the rollout happens in the same apply
//! as the Secret change, and not otherwise.
//!
//! The checksum is an HMAC keyed with a secret kept in the controller's namespace (the
//! Secret `sealsync-checksum-key`, generated in the cluster): anyone who can read a
//! Deployment reads the annotation, and a plain hash of a short password could be reversed
//! by trying candidates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use ring::hmac;
use serde_json::Value as Json;
use zeroize::Zeroizing;

pub(crate) use sealsync_core::{RESTART_ON_SECRET_CHANGE_ANNOTATION, SECRET_CHECKSUM_ANNOTATION};

/// The Secret, in the controller's namespace, that holds the checksum key.
pub(crate) const CHECKSUM_KEY_SECRET: &str = "sealsync-checksum-key";
const CHECKSUM_KEY_FIELD: &str = "key";

/// A Secret of a revision: its namespace and name.
pub(crate) type SecretId = (String, String);

/// The key of every checksum.
pub(crate) struct ChecksumKey(hmac::Key);

impl std::fmt::Debug for ChecksumKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChecksumKey(..)")
    }
}

impl ChecksumKey {
    /// A key from raw bytes (tests, and the Secret's value).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// Reads the key from its Secret, creating it with 32 random bytes when absent; replicas
    /// that race to create it all end up with the one that was written.
    pub(crate) async fn load_or_create(
        client: &Client,
        namespace: &str,
    ) -> Result<Self, kube::Error> {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        loop {
            if let Some(secret) = api.get_opt(CHECKSUM_KEY_SECRET).await? {
                let mut data = secret.data.unwrap_or_default();
                if let Some(value) = data.remove(CHECKSUM_KEY_FIELD) {
                    let value = Zeroizing::new(value.0);
                    for (_, mut other) in data {
                        zeroize::Zeroize::zeroize(&mut other.0);
                    }
                    if value.len() >= 32 {
                        return Ok(Self::from_bytes(&value));
                    }
                }
                tracing::warn!(
                    secret = CHECKSUM_KEY_SECRET,
                    "restarts: the checksum key Secret holds no 32-byte key; delete it to have a new one generated"
                );
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            let mut bytes = Zeroizing::new(vec![0u8; 32]);
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).map_err(
                |_| kube::Error::Service("the system's random number generator failed".into()),
            )?;
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(CHECKSUM_KEY_SECRET.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/managed-by".to_owned(),
                        "sealsync-controller".to_owned(),
                    )])),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(
                    CHECKSUM_KEY_FIELD.to_owned(),
                    ByteString(bytes.to_vec()),
                )])),
                type_: Some("Opaque".to_owned()),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    tracing::info!(
                        secret = CHECKSUM_KEY_SECRET,
                        "restarts: generated the checksum key"
                    );
                    return Ok(Self::from_bytes(&bytes));
                }
                // Another replica wrote it first: read theirs.
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// What the stage did: the checksum of each annotated object (by index), and the Secrets
/// that opted-in workloads use (a Vault refresh that changes one of them re-plans the
/// revision, so that the rollout goes with it).
#[derive(Debug, Default)]
pub(crate) struct Restarts {
    /// `(index, checksum)` of each annotated workload.
    pub annotated: Vec<(usize, String)>,
    /// The Secrets the annotated workloads use.
    pub secrets: BTreeSet<SecretId>,
}

/// Sets the checksum annotation on every opted-in workload of `objects` (decrypted and
/// resolved, not yet prepared). `all` is the GitSync's `spec.restartOnSecretChange`; a
/// workload's own `sealsync.dev/restart-on-secret-change` annotation overrides it either way.
pub(crate) fn annotate<T: HoldsObject>(
    objects: &mut [T],
    key: &ChecksumKey,
    all: bool,
    default_namespace: &str,
) -> Restarts {
    let digests = secret_digests(objects, key, default_namespace);
    let mut restarts = Restarts::default();
    for (index, held) in objects.iter_mut().enumerate() {
        let object = held.object_mut();
        if !is_workload(object) || !opted_in(object, all) {
            continue;
        }
        let namespace = namespace_of(object, default_namespace);
        let used: BTreeSet<SecretId> = referenced_secrets(&object["spec"]["template"]["spec"])
            .into_iter()
            .map(|name| (namespace.clone(), name))
            .filter(|id| digests.contains_key(id))
            .collect();
        if used.is_empty() {
            continue;
        }
        let mut mac = hmac::Context::with_key(&key.0);
        mac.update(b"sealsync secret-checksum v1\0");
        for id in &used {
            update_str(&mut mac, &id.0);
            update_str(&mut mac, &id.1);
            mac.update(&digests[id]);
        }
        let checksum = hex(mac.sign().as_ref());
        set_template_annotation(object, &checksum);
        restarts.annotated.push((index, checksum));
        restarts.secrets.extend(used);
    }
    restarts
}

/// What the stage reads and annotates: an object of the revision.
pub(crate) trait HoldsObject {
    /// The object.
    fn object(&self) -> &Json;
    /// The object, to annotate.
    fn object_mut(&mut self) -> &mut Json;
}

impl HoldsObject for crate::sync::object::SyncObject {
    fn object(&self) -> &Json {
        &self.object
    }
    fn object_mut(&mut self) -> &mut Json {
        &mut self.object
    }
}

#[cfg(test)]
impl HoldsObject for (String, Json) {
    fn object(&self) -> &Json {
        &self.1
    }
    fn object_mut(&mut self) -> &mut Json {
        &mut self.1
    }
}

/// Puts the checksum on a workload's pod template (also used on the manifest self-heal
/// re-applies, so that healing never undoes it).
pub(crate) fn set_template_annotation(object: &mut Json, checksum: &str) {
    let Some(template) = object
        .get_mut("spec")
        .and_then(|s| s.get_mut("template"))
        .and_then(Json::as_object_mut)
    else {
        return;
    };
    let metadata = template
        .entry("metadata")
        .or_insert_with(|| Json::Object(Default::default()));
    if !metadata.is_object() {
        *metadata = Json::Object(Default::default());
    }
    let annotations = metadata
        .as_object_mut()
        .map(|m| {
            m.entry("annotations")
                .or_insert_with(|| Json::Object(Default::default()))
        })
        .filter(|a| a.is_object());
    if let Some(Json::Object(annotations)) = annotations {
        annotations.insert(
            SECRET_CHECKSUM_ANNOTATION.to_owned(),
            Json::String(checksum.to_owned()),
        );
    }
}

/// Whether `object` is a workload that restarts when a Secret it uses changes (`all`:
/// `spec.restartOnSecretChange`): its checksum depends on Secrets elsewhere in the revision.
pub(crate) fn restarts_on_secrets(object: &Json, all: bool) -> bool {
    is_workload(object) && opted_in(object, all)
}

fn is_workload(object: &Json) -> bool {
    object["apiVersion"] == "apps/v1"
        && matches!(
            object["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "DaemonSet")
        )
}

fn opted_in(object: &Json, all: bool) -> bool {
    match object["metadata"]["annotations"][RESTART_ON_SECRET_CHANGE_ANNOTATION].as_str() {
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        _ => all,
    }
}

fn namespace_of(object: &Json, default_namespace: &str) -> String {
    object["metadata"]["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(default_namespace)
        .to_owned()
}

/// The Secrets a pod spec uses: env `secretKeyRef`, `envFrom` `secretRef`, `secret` volumes
/// and the `secret` sources of projected volumes, in every kind of container.
pub(crate) fn referenced_secrets(pod_spec: &Json) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut add = |name: &Json| {
        if let Some(name) = name.as_str().filter(|n| !n.is_empty()) {
            names.insert(name.to_owned());
        }
    };
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for container in pod_spec[list].as_array().into_iter().flatten() {
            for env in container["env"].as_array().into_iter().flatten() {
                add(&env["valueFrom"]["secretKeyRef"]["name"]);
            }
            for from in container["envFrom"].as_array().into_iter().flatten() {
                add(&from["secretRef"]["name"]);
            }
        }
    }
    for volume in pod_spec["volumes"].as_array().into_iter().flatten() {
        add(&volume["secret"]["secretName"]);
        for source in volume["projected"]["sources"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add(&source["secret"]["name"]);
        }
    }
    names
}

/// A keyed digest of each Secret's data, as the API server will store it: `data` decoded,
/// with `stringData` over it.
fn secret_digests<T: HoldsObject>(
    objects: &[T],
    key: &ChecksumKey,
    default_namespace: &str,
) -> BTreeMap<SecretId, [u8; 32]> {
    let mut digests = BTreeMap::new();
    for held in objects {
        let object = held.object();
        if object["apiVersion"] != "v1" || object["kind"] != "Secret" {
            continue;
        }
        let Some(name) = object["metadata"]["name"].as_str() else {
            continue;
        };
        digests.insert(
            (namespace_of(object, default_namespace), name.to_owned()),
            secret_digest(object, key),
        );
    }
    digests
}

/// The keyed digest of one Secret's data.
pub(crate) fn secret_digest(object: &Json, key: &ChecksumKey) -> [u8; 32] {
    let mut values: BTreeMap<&str, Zeroizing<Vec<u8>>> = BTreeMap::new();
    for (k, v) in object["data"].as_object().into_iter().flatten() {
        let text = v.as_str().unwrap_or_default();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_else(|_| text.as_bytes().to_vec());
        values.insert(k, Zeroizing::new(bytes));
    }
    for (k, v) in object["stringData"].as_object().into_iter().flatten() {
        values.insert(
            k,
            Zeroizing::new(v.as_str().unwrap_or_default().as_bytes().to_vec()),
        );
    }
    let mut mac = hmac::Context::with_key(&key.0);
    mac.update(b"sealsync secret-data v1\0");
    for (k, v) in &values {
        update_str(&mut mac, k);
        mac.update(&(v.len() as u64).to_be_bytes());
        mac.update(v);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(mac.sign().as_ref());
    out
}

fn update_str(mac: &mut hmac::Context, text: &str) {
    mac.update(&(text.len() as u64).to_be_bytes());
    mac.update(text.as_bytes());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> ChecksumKey {
        ChecksumKey::from_bytes(&[7; 32])
    }

    fn deployment(annotations: Json, pod_spec: Json) -> Json {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "annotations": annotations},
            "spec": {"template": {"spec": pod_spec}},
        })
    }

    fn secret(name: &str, data: Json) -> Json {
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": data})
    }

    fn checksum_of(objects: &[(String, Json)]) -> Option<String> {
        objects
            .iter()
            .find(|(_, o)| o["kind"] == "Deployment")
            .and_then(|(_, o)| {
                o["spec"]["template"]["metadata"]["annotations"][SECRET_CHECKSUM_ANNOTATION]
                    .as_str()
                    .map(str::to_owned)
            })
    }

    fn run(db: &str, other: &str, opt_in: &str, all: bool) -> Option<String> {
        let mut objects = vec![
            (
                "s.yaml: document 1".to_owned(),
                secret("db", json!({"password": db})),
            ),
            (
                "s.yaml: document 2".to_owned(),
                secret("other", json!({"token": other})),
            ),
            (
                "d.yaml: document 1".to_owned(),
                deployment(
                    json!({RESTART_ON_SECRET_CHANGE_ANNOTATION: opt_in}),
                    json!({"containers": [{"name": "app", "env": [
                        {"name": "P", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
                    ]}]}),
                ),
            ),
        ];
        annotate(&mut objects, &key(), all, "shop");
        checksum_of(&objects)
    }

    #[test]
    fn the_checksum_changes_exactly_when_a_used_secret_changes() {
        let first = run("hunter2", "a", "true", false).expect("annotated");
        assert_eq!(run("hunter2", "a", "true", false).as_deref(), Some(&*first));
        // Another Secret's change does not touch it.
        assert_eq!(run("hunter2", "b", "true", false).as_deref(), Some(&*first));
        assert_ne!(run("hunter3", "a", "true", false).as_deref(), Some(&*first));
        // Not a plain hash: another key gives another checksum.
        let mut objects = vec![
            ("s".to_owned(), secret("db", json!({"password": "hunter2"}))),
            (
                "d".to_owned(),
                deployment(
                    json!({RESTART_ON_SECRET_CHANGE_ANNOTATION: "true"}),
                    json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "db"}}]}]}),
                ),
            ),
        ];
        annotate(
            &mut objects,
            &ChecksumKey::from_bytes(&[8; 32]),
            false,
            "shop",
        );
        assert_ne!(checksum_of(&objects).as_deref(), Some(&*first));
        assert!(!first.contains("hunter2"));
    }

    #[test]
    fn only_opted_in_workloads_are_annotated() {
        assert!(run("x", "y", "", false).is_none());
        assert!(run("x", "y", "", true).is_some());
        assert!(run("x", "y", "false", true).is_none());
    }

    #[test]
    fn every_kind_of_reference_counts_and_data_equals_string_data() {
        let pod = json!({
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "a"}}]}],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "b", "key": "k"}}}]}],
            "volumes": [
                {"name": "v", "secret": {"secretName": "c"}},
                {"name": "p", "projected": {"sources": [{"secret": {"name": "d"}}, {"configMap": {"name": "e"}}]}},
            ],
        });
        let names: Vec<String> = referenced_secrets(&pod).into_iter().collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        let as_data = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "data": {"k": "dmFsdWU="}});
        let as_string = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "stringData": {"k": "value"}});
        assert_eq!(
            secret_digest(&as_data, &key()),
            secret_digest(&as_string, &key())
        );
    }

    #[test]
    fn a_workload_using_no_secret_of_the_revision_is_left_alone() {
        let mut objects = vec![(
            "d".to_owned(),
            deployment(
                json!({RESTART_ON_SECRET_CHANGE_ANNOTATION: "true"}),
                json!({"containers": [{"name": "a", "envFrom": [{"secretRef": {"name": "elsewhere"}}]}]}),
            ),
        )];
        let restarts = annotate(&mut objects, &key(), true, "shop");
        assert!(restarts.annotated.is_empty() && checksum_of(&objects).is_none());
    }
}
