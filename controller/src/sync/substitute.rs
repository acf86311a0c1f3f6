//! The variables of post-build substitution (`spec.postBuild`): the ConfigMaps and Secrets of
//! `substituteFrom`, read as the GitSync's service account, then the inline `substitute`.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::ResourceExt;
use sealsync_core::substitute::{SubstituteError, Variables};
use sealsync_core::{GitSync, SubstituteKind};

use super::error::Error;

/// The GitSync's variables, or `None` without `spec.postBuild`.
pub(crate) async fn variables(
    gs: &GitSync,
    client: &kube::Client,
) -> Result<Option<Variables>, Error> {
    let Some(post_build) = &gs.spec.post_build else {
        return Ok(None);
    };
    let namespace = gs.namespace().unwrap_or_default();
    let mut vars = Variables::default();
    let invalid =
        |place: String, e: SubstituteError| Error::Spec(format!("spec.postBuild: {place}: {e}"));
    for reference in &post_build.substitute_from {
        let place = match reference.kind {
            SubstituteKind::ConfigMap => format!("ConfigMap {namespace}/{}", reference.name),
            SubstituteKind::Secret => format!("Secret {namespace}/{}", reference.name),
        };
        let read = |source: kube::Error| {
            Error::Spec(format!(
                "spec.postBuild.substituteFrom: reading {place}: {}",
                sealsync_core::Chain(&source)
            ))
        };
        match reference.kind {
            SubstituteKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
                match api.get_opt(&reference.name).await.map_err(read)? {
                    Some(config) => {
                        for (name, value) in config.data.iter().flatten() {
                            vars.insert(name, value)
                                .map_err(|e| invalid(place.clone(), e))?;
                        }
                    }
                    None if reference.optional => {}
                    None => return Err(missing(&place)),
                }
            }
            SubstituteKind::Secret => {
                let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                match api.get_opt(&reference.name).await.map_err(read)? {
                    Some(mut secret) => {
                        for (name, value) in secret.data.iter().flatten() {
                            let text = std::str::from_utf8(&value.0).map_err(|_| {
                                Error::Spec(format!(
                                    "spec.postBuild.substituteFrom: {place}: key {name:?} is not UTF-8 text"
                                ))
                            })?;
                            vars.insert(name, text)
                                .map_err(|e| invalid(place.clone(), e))?;
                        }
                        if let Some(data) = secret.data.as_mut() {
                            for value in data.values_mut() {
                                zeroize::Zeroize::zeroize(&mut value.0);
                            }
                        }
                    }
                    None if reference.optional => {}
                    None => return Err(missing(&place)),
                }
            }
        }
    }
    for (name, value) in &post_build.substitute {
        vars.insert(name, value)
            .map_err(|e| invalid("substitute".to_owned(), e))?;
    }
    Ok(Some(vars))
}

fn missing(place: &str) -> Error {
    Error::Spec(format!(
        "spec.postBuild.substituteFrom: {place} does not exist; create it, or mark the reference optional: true"
    ))
}

/// Whether the variables come from objects that can change without a commit: such a GitSync
/// is rendered again at every interval.
pub(crate) fn reads_objects(gs: &GitSync) -> bool {
    gs.spec
        .post_build
        .as_ref()
        .is_some_and(|p| !p.substitute_from.is_empty())
}
