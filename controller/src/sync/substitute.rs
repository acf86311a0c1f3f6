//! The variables of post-build substitution (`spec.postBuild`): the ConfigMaps and Secrets of
//! `substituteFrom`, read as the GitSync's service account, and its sealed files, opened in
//! memory, in order; then the inline `substitute`. Values from Secrets and sealed files are
//! marked secret, so that no message shows them.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::ResourceExt;
use sealsync_core::substitute::{SubstituteError, Variables};
use sealsync_core::{GitSync, SubstituteKind};

use super::error::Error;

/// The sealed files `spec.postBuild.substituteFrom` names, by repository path, as read from
/// the revision (`None` for a file the revision does not hold).
pub(crate) type SealedFiles = std::collections::BTreeMap<String, Option<Vec<u8>>>;

/// The repository paths of the sealed files of `substituteFrom`, for the caller to read.
pub(crate) fn sealed_paths(gs: &GitSync, path: &str) -> Result<Vec<String>, Error> {
    let Some(post_build) = &gs.spec.post_build else {
        return Ok(Vec::new());
    };
    post_build
        .substitute_from
        .iter()
        .filter(|r| r.kind == SubstituteKind::Sealed)
        .map(|r| sealed_path(r, path))
        .collect()
}

fn sealed_path(
    reference: &sealsync_core::SubstituteReference,
    path: &str,
) -> Result<String, Error> {
    let relative = reference.path.as_deref().ok_or_else(|| {
        Error::Spec("spec.postBuild.substituteFrom: path is required for Sealed".to_owned())
    })?;
    sealsync_core::renderer::join_in_repository(path, relative)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            Error::Spec(format!(
                "spec.postBuild.substituteFrom: {relative:?} is not a path inside the repository"
            ))
        })
}

/// The GitSync's variables, or `None` without `spec.postBuild`, and the keys that opened its
/// sealed files.
pub(crate) async fn variables(
    gs: &GitSync,
    client: &kube::Client,
    (path, sealed, ring): (&str, &SealedFiles, &crate::keys::KeyRing),
) -> Result<Option<(Variables, Vec<sealsync_core::SealedSecretUsage>)>, Error> {
    let Some(post_build) = &gs.spec.post_build else {
        return Ok(None);
    };
    let namespace = gs.namespace().unwrap_or_default();
    let mut vars = Variables::default();
    let mut usage = Vec::new();
    let invalid =
        |place: String, e: SubstituteError| Error::Spec(format!("spec.postBuild: {place}: {e}"));
    for reference in &post_build.substitute_from {
        if reference.kind == SubstituteKind::Sealed {
            let file = sealed_path(reference, path)?;
            match sealed.get(&file).and_then(Option::as_deref) {
                Some(contents) => {
                    let opened = super::sealedfile::open(
                        (&file, contents),
                        ring,
                        &namespace,
                        ("spec.postBuild.substituteFrom", "the GitSync's namespace"),
                    )?;
                    for (name, value) in &opened.values {
                        let text = std::str::from_utf8(value).map_err(|_| {
                            Error::Spec(format!(
                                "spec.postBuild.substituteFrom: {file} key {name:?} is not UTF-8 text"
                            ))
                        })?;
                        vars.insert_secret(name, text)
                            .map_err(|e| invalid(file.clone(), e))?;
                    }
                    usage.push(opened.usage);
                }
                None if reference.optional => {}
                None => {
                    return Err(Error::Spec(format!(
                        "spec.postBuild.substituteFrom: {file} is not in this revision"
                    )))
                }
            }
            continue;
        }
        let place = match reference.kind {
            SubstituteKind::ConfigMap => format!("ConfigMap {namespace}/{}", reference.name),
            _ => format!("Secret {namespace}/{}", reference.name),
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
            _ => {
                let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
                match api.get_opt(&reference.name).await.map_err(read)? {
                    Some(mut secret) => {
                        for (name, value) in secret.data.iter().flatten() {
                            let text = std::str::from_utf8(&value.0).map_err(|_| {
                                Error::Spec(format!(
                                    "spec.postBuild.substituteFrom: {place}: key {name:?} is not UTF-8 text"
                                ))
                            })?;
                            vars.insert_secret(name, text)
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
    Ok(Some((vars, usage)))
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
