//! Key Secrets: the only place a private key is stored in the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, Client};
use sealsync_core::keysecret::{
    key_secret, read_key_secret, wipe_secret, FIRST_KEY_SECRET, KEY_LABEL,
};
use sealsync_crypto::Identity;

use super::{api_err, now_rfc3339, KeyRing, KeysError};

/// One key loaded from its Secret.
pub(crate) use sealsync_core::keysecret::KeySecret as StoredKey;

/// Reads every key Secret of `namespace`, newest first.
pub(crate) async fn load(client: &Client, namespace: &str) -> Result<Vec<StoredKey>, KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = secrets
        .list(&ListParams::default().labels(KEY_LABEL))
        .await
        .map_err(api_err(format!("listing the key Secrets in {namespace}")))?;
    let mut found = Vec::new();
    let mut failure = None;
    for mut secret in list.items {
        match read_key_secret(&mut secret, namespace) {
            Ok(key) => found.push(key),
            Err(e) => {
                failure.get_or_insert(KeysError::Corrupt(e));
            }
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    sort_newest_first(&mut found);
    Ok(found)
}

/// Newest first; ties (keys generated in the same second) by key id, so that every replica
/// agrees on the current key.
pub(crate) fn sort_newest_first(keys: &mut [StoredKey]) {
    keys.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then_with(|| a.identity.key_id().cmp(b.identity.key_id()))
    });
}

/// Stores `identity` in a new Secret `name`. `Ok(false)` when a Secret of that name exists
/// already (another replica, or an earlier attempt, made it): the caller reads that one.
pub(crate) async fn create(
    client: &Client,
    namespace: &str,
    name: &str,
    identity: &Identity,
    created: &str,
) -> Result<bool, KeysError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut secret = key_secret(namespace, name, identity, created);
    let result = secrets.create(&PostParams::default(), &secret).await;
    wipe_secret(&mut secret);
    match result {
        Ok(mut stored) => {
            wipe_secret(&mut stored);
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
pub(crate) struct KeyHandle {
    /// The Secret's name.
    pub name: String,
    /// Its uid.
    pub uid: Option<String>,
}

/// Deletes a key's Secret: the private key is gone from the cluster (apart from backups).
/// The uid precondition keeps a delete from hitting a Secret restored under the same name.
pub(crate) async fn delete(
    client: &Client,
    namespace: &str,
    key: &KeyHandle,
) -> Result<(), KeysError> {
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
pub(crate) async fn load_or_create(client: &Client, namespace: &str) -> Result<KeyRing, KeysError> {
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
