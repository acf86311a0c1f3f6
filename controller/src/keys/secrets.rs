//! Key Secrets: the only place a private key is stored in the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams, Preconditions};
use kube::{Api, Client};
use sealsync_crypto::{parse_identity_file, Identity};
use zeroize::{Zeroize, Zeroizing};

use super::{
    api_err, now_rfc3339, KeyRing, KeysError, CREATED_ANNOTATION, KEY_ID_LABEL, KEY_LABEL,
};

/// The Secret of the key generated on first start.
pub const FIRST_KEY_SECRET: &str = "sealsync-key-1";
/// The Secret key that holds an identity.
pub const IDENTITY_KEY: &str = "identity.txt";

/// One key loaded from its Secret.
pub struct StoredKey {
    /// The Secret's name, which is also its SealingKey's name.
    pub name: String,
    /// When the key was generated (RFC 3339).
    pub created: String,
    /// The private key.
    pub identity: Identity,
    /// The Secret's uid, for a delete that cannot hit a replacement.
    pub uid: Option<String>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("name", &self.name)
            .field("key_id", self.identity.key_id())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

fn wipe(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        for v in data.values_mut() {
            v.0.zeroize();
        }
    }
}

/// Reads every key Secret of `namespace`, newest first.
pub async fn load(client: &Client, namespace: &str) -> Result<Vec<StoredKey>, KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = secrets
        .list(&ListParams::default().labels(KEY_LABEL))
        .await
        .map_err(api_err(format!("listing the key Secrets in {namespace}")))?;
    let mut found = Vec::new();
    let mut failure = None;
    for mut secret in list.items {
        if failure.is_none() {
            match parse(&mut secret, namespace) {
                Ok(key) => found.push(key),
                Err(e) => failure = Some(e),
            }
        }
        wipe(&mut secret);
    }
    if let Some(e) = failure {
        return Err(e);
    }
    sort_newest_first(&mut found);
    Ok(found)
}

fn parse(secret: &mut Secret, namespace: &str) -> Result<StoredKey, KeysError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let created = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION).cloned())
        .or_else(|| {
            secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
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
    Ok(StoredKey {
        name,
        created,
        identity: identities.remove(0),
        uid: secret.metadata.uid.clone(),
    })
}

/// Newest first; ties (keys generated in the same second) by key id, so that every replica
/// agrees on the current key.
pub fn sort_newest_first(keys: &mut [StoredKey]) {
    keys.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.identity.key_id().cmp(b.identity.key_id()))
    });
}

/// Stores `identity` in a new Secret `name`. `Ok(false)` when a Secret of that name exists
/// already (another replica, or an earlier attempt, made it): the caller reads that one.
pub async fn create(
    client: &Client,
    namespace: &str,
    name: &str,
    identity: &Identity,
    created: &str,
) -> Result<bool, KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let text = Zeroizing::new(format!(
        "# sealsync cluster key {}\n{}\n",
        identity.key_id(),
        identity.to_secret_string().as_str()
    ));
    let mut secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (KEY_LABEL.to_owned(), "active".to_owned()),
                (KEY_ID_LABEL.to_owned(), identity.key_id().to_string()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sealsync".to_owned(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                CREATED_ANNOTATION.to_owned(),
                created.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        // Only the controller reads it; marking it immutable keeps a stray edit from
        // replacing a key in place.
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            IDENTITY_KEY.to_owned(),
            ByteString(text.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let result = secrets.create(&PostParams::default(), &secret).await;
    wipe(&mut secret);
    match result {
        Ok(mut stored) => {
            wipe(&mut stored);
            Ok(true)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(api_err(format!(
            "creating the key Secret {namespace}/{name}"
        ))(e)),
    }
}

/// Names one key Secret, without its key.
#[derive(Debug, Clone)]
pub struct KeyHandle {
    /// The Secret's name.
    pub name: String,
    /// Its uid.
    pub uid: Option<String>,
}

/// Deletes a key's Secret: the private key is gone from the cluster (apart from backups).
/// The uid precondition keeps a delete from hitting a Secret restored under the same name.
pub async fn delete(client: &Client, namespace: &str, key: &KeyHandle) -> Result<(), KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let params = DeleteParams {
        preconditions: key.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match secrets.delete(&key.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(api_err(format!(
            "deleting the key Secret {namespace}/{}",
            key.name
        ))(e)),
    }
}

/// Loads the key Secrets in `namespace`; generates and stores the first identity when there is
/// none. Safe to run from several replicas at once: the first key's Secret has a fixed name,
/// and a replica that loses the race to create it reads the winner's.
pub async fn load_or_create(client: &Client, namespace: &str) -> Result<KeyRing, KeysError> {
    let mut keys = load(client, namespace).await?;
    if keys.is_empty() {
        let identity = Identity::generate();
        create(
            client,
            namespace,
            FIRST_KEY_SECRET,
            &identity,
            &now_rfc3339(),
        )
        .await?;
        keys = load(client, namespace).await?;
    }
    Ok(KeyRing::new(keys, BTreeMap::new()))
}
