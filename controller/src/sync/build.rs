//! The `render` stage for kustomize overlays and Helm charts: the whole tree of the revision
//! handed to the renderer, and its output read back as the revision's objects. Plain
//! directories are rendered by `sealsync_core::render` without it.

use std::time::Duration;

use kube::ResourceExt;
use sealsync_core::render::{normalize_path, RenderError, RenderLimits};
use sealsync_core::renderer::{
    join_in_repository, Engine, HelmRequest, RenderRequest, Renderer, TreeFile, ValuesSource,
};
use sealsync_core::substitute::Variables;
use sealsync_core::{GitSync, RenderType};
use zeroize::Zeroizing;

use super::checkout::CheckoutError;
use super::error::Error;
use super::fetch::{self, Snapshot, SourceLimits};
use super::object::SyncObject;

/// The engine for a revision: the spec's choice, else what the files at the path say.
pub(crate) fn engine_for(gs: &GitSync, snapshot: &Snapshot, path: &str) -> Engine {
    match gs.spec.render.as_ref().map(|r| r.render_type) {
        Some(RenderType::Directory) => Engine::Directory,
        Some(RenderType::Kustomize) => Engine::Kustomize,
        Some(RenderType::Helm) => Engine::Helm,
        Some(RenderType::Auto) | None => {
            let read = snapshot.files.iter().map(|f| f.path.as_str());
            let kept = snapshot.kept.iter().map(|f| f.path.as_str());
            Engine::detect(read.chain(kept), path)
        }
    }
}

/// Builds the overlay or renders the chart at `path`.
pub(crate) async fn build(
    gs: &GitSync,
    (renderer, slots): (&Renderer, &tokio::sync::Semaphore),
    snapshot: &Snapshot,
    path: &str,
    engine: Engine,
    (release_namespace, timeout): (&str, Duration),
    variables: Option<&Variables>,
) -> Result<Vec<SyncObject>, Error> {
    let files = fetch::read_whole_tree(snapshot, SourceLimits::default())
        .await
        .map_err(|e| match e {
            CheckoutError::Source(e) => Error::Source(e),
            CheckoutError::Render(e) => Error::Render(e),
        })?;
    let helm = match engine {
        Engine::Helm => Some(helm_request(gs, &files, path, release_namespace)?),
        _ => None,
    };
    let bounds = renderer
        .limits()
        .with_timeout(timeout.min(renderer.limits().timeout));
    let renderer = renderer.clone();
    let path = path.to_owned();
    // A render may take hundreds of MiB: only a few at once, whatever `--concurrent` is.
    let _slot = slots
        .acquire()
        .await
        .map_err(|_| Error::Spec("the controller is shutting down".to_owned()))?;
    let allow_plaintext_secrets = gs.spec.allow_plaintext_secrets;
    let variables = variables.cloned();
    let manifests = tokio::task::spawn_blocking(move || {
        let request = RenderRequest {
            engine,
            path: &path,
            allow_plaintext_secrets,
            helm,
            variables: variables.as_ref(),
        };
        renderer.render_with_limits(&files, &request, &RenderLimits::default(), &bounds)
    })
    .await
    .map_err(|join| Error::Spec(format!("the render task failed: {join}")))??;
    Ok(manifests
        .into_iter()
        .map(|m| SyncObject::rendered(m, gs.spec.self_heal))
        .collect())
}

/// Helm's settings from the spec, with the values files read from the tree.
fn helm_request(
    gs: &GitSync,
    files: &[TreeFile],
    path: &str,
    release_namespace: &str,
) -> Result<HelmRequest, Error> {
    let spec = gs.spec.helm.clone().unwrap_or_default();
    let mut values = Vec::new();
    for file in &spec.values_files {
        let joined = join_in_repository(path, file)
            .and_then(|p| normalize_path(&p).ok())
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                Error::Spec(format!(
                    "spec.helm.valuesFiles: {file:?} is not a path inside the repository"
                ))
            })?;
        let found = files.iter().find(|f| f.path == joined).ok_or_else(|| {
            Error::Render(RenderError::PathNotFound {
                path: joined.clone(),
            })
        })?;
        let text = String::from_utf8(found.contents.clone()).map_err(|_| {
            Error::Render(RenderError::NotText {
                file: joined.clone(),
            })
        })?;
        values.push(ValuesSource {
            source: joined,
            yaml: Zeroizing::new(text),
        });
    }
    if let Some(inline) = &spec.values {
        let text = serde_json::to_string(inline)
            .map_err(|e| Error::Spec(format!("spec.helm.values: {e}")))?;
        values.push(ValuesSource {
            source: "spec.helm.values".to_owned(),
            yaml: Zeroizing::new(text),
        });
    }
    Ok(HelmRequest {
        release_name: spec.release_name.unwrap_or_else(|| gs.name_any()),
        namespace: release_namespace.to_owned(),
        include_crds: spec.include_crds,
        skip_tests: spec.skip_tests,
        kube_version: None,
        api_versions: Vec::new(),
        values,
    })
}
