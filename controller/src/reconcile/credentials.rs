//! The Git credentials `spec.secretRef` names, read from the GitSync's namespace.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;
use sealsync_core::GitSync;
use zeroize::Zeroizing;

use super::Shared;
use crate::sync::error::Error;
use crate::sync::fetch::Credentials;

/// Reads `spec.secretRef` from the GitSync's namespace.
pub(super) async fn credentials(gs: &GitSync, ctx: &Shared) -> Result<Option<Credentials>, Error> {
    let Some(secret_ref) = &gs.spec.secret_ref else {
        return Ok(None);
    };
    let namespace = gs.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await
        .map_err(|source| Error::Kube {
            action: "reading the Secret named by spec.secretRef",
            source,
        })?
        .ok_or_else(|| {
            Error::Credentials(format!(
                "spec.secretRef: Secret {namespace}/{} not found",
                secret_ref.name
            ))
        })?;
    let mut data = secret.data.unwrap_or_default();
    let mut take = |key: &str| -> Option<Zeroizing<String>> {
        let mut bytes = data.remove(key)?;
        let text = String::from_utf8(std::mem::take(&mut bytes.0)).ok()?;
        Some(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    };
    let bearer = take("bearerToken");
    let username = take("username");
    let password = take("password");
    for (_, mut v) in data {
        zeroize::Zeroize::zeroize(&mut v.0);
    }
    match (bearer, username, password) {
        (Some(token), _, _) => Ok(Some(Credentials::Bearer(token))),
        (None, Some(username), Some(password)) => Ok(Some(Credentials::Basic {
            username: username.as_str().to_owned(),
            password,
        })),
        _ => Err(Error::Credentials(format!(
            "spec.secretRef: Secret {namespace}/{} has neither bearerToken nor username and password",
            secret_ref.name
        ))),
    }
}
