//! The `keys` stage: the cluster's sealing identities.
//!
//! On first start the controller generates an X25519 identity and stores it in a Secret of its
//! own namespace (`sealsync-key-1`, labelled `sealsync.dev/sealing-key: active` and
//! `sealsync.dev/key-id: <id>`). The
//! public recipients are published in the ConfigMap `sealsync-public-keys` and served at
//! `GET /v1/keys`. Private keys are read from Secrets only; they are never logged, never put in
//! an event, status or metric, and never leave the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use sealsync_core::FIELD_MANAGER;
use sealsync_crypto::{parse_identity_file, Identity, Recipient};
use zeroize::Zeroizing;

/// The label on every key Secret; its value is the key's state (`active`).
pub const KEY_LABEL: &str = "sealsync.dev/sealing-key";
/// The label with the key's id, so `kubectl get secrets -L sealsync.dev/key-id` lists them.
pub const KEY_ID_LABEL: &str = "sealsync.dev/key-id";
/// The Secret of the key generated on first start.
pub const FIRST_KEY_SECRET: &str = "sealsync-key-1";
/// The ConfigMap with the public recipients.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "sealsync-public-keys";
/// The ConfigMap key that holds the recipients file.
pub const RECIPIENTS_KEY: &str = "recipients.txt";
/// The Secret key that holds an identity.
const IDENTITY_KEY: &str = "identity.txt";

/// Why the keys could not be loaded or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The API server failed.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// A key Secret holds something that is not an identity. Its contents are never shown.
    #[error("Secret {namespace}/{name} is labelled {KEY_LABEL} but its {IDENTITY_KEY} is not one age identity; restore it from a backup or remove the label")]
    Corrupt {
        /// The namespace.
        namespace: String,
        /// The Secret.
        name: String,
    },
}

/// The identities the controller opens SealedSecrets with, and the recipients it publishes.
pub struct KeyRing {
    /// Every identity, newest first.
    pub identities: Vec<Identity>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field(
                "key_ids",
                &self
                    .identities
                    .iter()
                    .map(|i| i.key_id().to_string())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl KeyRing {
    /// The public recipients, newest first.
    pub fn recipients(&self) -> Vec<Recipient> {
        self.identities.iter().map(Identity::recipient).collect()
    }

    /// The recipients file the ConfigMap and `/v1/keys` publish: usable as
    /// `sealsync seal --recipients-file` and in `.sealsync.yaml`.
    pub fn recipients_file(&self, namespace: &str) -> String {
        let mut out = format!("# sealsync cluster recipients (controller namespace {namespace})\n");
        for r in self.recipients() {
            out.push_str(&format!("# key id {}\n{}\n", r.key_id(), r.as_str()));
        }
        out
    }
}

fn api_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> KeysError {
    let action = action.into();
    move |source| KeysError::Api { action, source }
}

/// Loads the key Secrets in `namespace`; generates and stores the first identity when there is
/// none. Safe to run from several replicas at once: the Secret's name is derived from the key,
/// and a replica that loses the race to create the first key reads the winner's.
pub async fn load_or_create(client: &Client, namespace: &str) -> Result<KeyRing, KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut ring = load(&secrets, namespace).await?;
    if ring.identities.is_empty() {
        let identity = Identity::generate();
        // A fixed name for the first key: when several replicas start at once, one create
        // wins, the others get 409 and read the winner's key instead of adding their own.
        let name = FIRST_KEY_SECRET.to_owned();
        let text = Zeroizing::new(format!(
            "# sealsync cluster key {}\n{}\n",
            identity.key_id(),
            identity.to_secret_string().as_str()
        ));
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.to_owned()),
                labels: Some(BTreeMap::from([
                    (KEY_LABEL.to_owned(), "active".to_owned()),
                    (KEY_ID_LABEL.to_owned(), identity.key_id().to_string()),
                    (
                        "app.kubernetes.io/managed-by".to_owned(),
                        "sealsync".to_owned(),
                    ),
                ])),
                ..ObjectMeta::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                IDENTITY_KEY.to_owned(),
                ByteString(text.as_bytes().to_vec()),
            )])),
            ..Secret::default()
        };
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(api_err("creating the first cluster key")(e)),
        }
        if let Some(data) = secret.data {
            for (_, mut v) in data {
                zeroize::Zeroize::zeroize(&mut v.0);
            }
        }
        ring = load(&secrets, namespace).await?;
    }
    Ok(ring)
}

async fn load(secrets: &Api<Secret>, namespace: &str) -> Result<KeyRing, KeysError> {
    let list = secrets
        .list(&ListParams::default().labels(KEY_LABEL))
        .await
        .map_err(api_err(format!("listing the key Secrets in {namespace}")))?;
    let mut found: Vec<(String, Identity)> = Vec::new();
    for mut secret in list.items {
        let name = secret.metadata.name.clone().unwrap_or_default();
        let created = secret
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default();
        let corrupt = || KeysError::Corrupt {
            namespace: namespace.to_owned(),
            name: name.clone(),
        };
        let bytes = secret
            .data
            .as_mut()
            .and_then(|d| d.remove(IDENTITY_KEY))
            .ok_or_else(corrupt)?;
        let text = Zeroizing::new(String::from_utf8(bytes.0).map_err(|_| corrupt())?);
        let mut identities = parse_identity_file(&text).map_err(|_| corrupt())?;
        if identities.len() != 1 {
            return Err(corrupt());
        }
        found.push((created, identities.remove(0)));
        if let Some(data) = secret.data.as_mut() {
            for v in data.values_mut() {
                zeroize::Zeroize::zeroize(&mut v.0);
            }
        }
    }
    // Newest first: the key new SealedSecrets should be sealed to leads the recipients file.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key_id().cmp(b.1.key_id())));
    Ok(KeyRing {
        identities: found.into_iter().map(|(_, i)| i).collect(),
    })
}

/// Writes the public recipients to the ConfigMap `sealsync-public-keys` by server-side apply.
pub async fn publish(client: &Client, namespace: &str, ring: &KeyRing) -> Result<(), KeysError> {
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": PUBLIC_KEYS_CONFIGMAP,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "sealsync"},
        },
        "data": {
            RECIPIENTS_KEY: ring.recipients_file(namespace),
            "keyIds": ring.identities.iter().map(|i| i.key_id().to_string()).collect::<Vec<_>>().join(","),
        }
    });
    configmaps
        .patch(
            PUBLIC_KEYS_CONFIGMAP,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(api_err(format!(
            "publishing the ConfigMap {namespace}/{PUBLIC_KEYS_CONFIGMAP}"
        )))?;
    Ok(())
}
