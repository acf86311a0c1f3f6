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
use sealsync_core::{GitSync, RenderType, SealedSecretUsage, ValuesKind};
use zeroize::Zeroizing;

use super::checkout::CheckoutError;
use super::error::Error;
use super::fetch::{self, Snapshot, SourceLimits};
use super::helm_values::{self, ValuesContext};
use super::object::SyncObject;
use crate::keys::KeyRing;

/// The engine for a revision: the spec's choice, else what the files at the path say.
pub(crate) fn engine_for(gs: &GitSync, snapshot: &Snapshot, path: &str) -> Engine {
    match gs.spec.render.as_ref().map(|r| r.render_type) {
        Some(RenderType::Directory) => Engine::Directory,
        Some(RenderType::Kustomize) => Engine::Kustomize,
        Some(RenderType::Helm) => Engine::Helm,
        Some(RenderType::Auto) | None
            if gs.spec.helm.as_ref().is_some_and(|h| h.chart.is_some()) =>
        {
            Engine::Helm
        }
        Some(RenderType::Auto) | None => {
            let read = snapshot.files.iter().map(|f| f.path.as_str());
            let kept = snapshot.kept.iter().map(|f| f.path.as_str());
            Engine::detect(read.chain(kept), path)
        }
    }
}

/// What a build uses of the controller.
pub(crate) struct Builder<'a> {
    /// The renderer program.
    pub renderer: &'a Renderer,
    /// Renders allowed at once.
    pub slots: &'a tokio::sync::Semaphore,
    /// The GitSync's client (its service account), for `valuesFrom`.
    pub client: &'a kube::Client,
    /// The cluster keys, for sealed values.
    pub keys: &'a tokio::sync::RwLock<KeyRing>,
    /// The cluster's capabilities, and the controller's client to read them.
    pub capabilities: (&'a super::capabilities::CapabilitiesCache, &'a kube::Client),
    /// Chart repositories.
    pub charts: &'a super::charts::ChartRepositories,
    /// Where remote bases are kept between fetches.
    pub data_dir: &'a std::path::Path,
}

/// Builds the overlay or renders the chart at `path`.
pub(crate) async fn build(
    gs: &GitSync,
    builder: &Builder<'_>,
    snapshot: &Snapshot,
    path: &str,
    engine: Engine,
    (release_namespace, timeout): (&str, Duration),
    (variables, secret_values): (Option<&Variables>, &mut Vec<Zeroizing<String>>),
) -> Result<(Vec<SyncObject>, Vec<SealedSecretUsage>), Error> {
    let mut files = fetch::read_whole_tree(snapshot, SourceLimits::default())
        .await
        .map_err(|e| match e {
            CheckoutError::Source(e) => Error::Source(e),
            CheckoutError::Render(e) => Error::Render(e),
        })?;
    let allow_remote_bases = gs
        .spec
        .render
        .as_ref()
        .and_then(|r| r.kustomize.as_ref())
        .is_some_and(|k| k.allow_remote_bases);
    if engine == Engine::Kustomize && allow_remote_bases {
        super::remote::vendor(&mut files, builder.data_dir, timeout).await?;
    }
    // What the renderer renders: the chart at the path, or one fetched from a repository.
    let render_path = match engine {
        Engine::Helm => {
            let verified_only = gs.spec.verify.is_some();
            super::charts::prepare(
                builder.charts,
                gs.spec.helm.as_ref(),
                &mut files,
                (path, verified_only),
            )
            .await?
        }
        _ => path.to_owned(),
    };
    let mut usage = Vec::new();
    let owner_namespace = gs.namespace().unwrap_or_default();
    let helm = match engine {
        Engine::Helm => {
            let ring = builder.keys.read().await;
            let context = ValuesContext {
                client: builder.client,
                ring: &ring,
                files: &files,
                chart_path: path,
                owner_namespace: &owner_namespace,
            };
            let (from, used) = helm_values::values_from(gs, &context).await?;
            usage = used;
            let (cache, client) = builder.capabilities;
            let capabilities = cache.get(client).await;
            let mut request = helm_request(gs, &files, path, release_namespace, from)?;
            request.kube_version = capabilities.kube_version;
            request.api_versions = capabilities.api_versions;
            Some(request)
        }
        _ => None,
    };
    let helm_inputs = helm.as_ref().map(|request| HelmInputs {
        has_secret_values: gs.spec.helm.as_ref().is_some_and(|h| {
            h.values_from
                .iter()
                .any(|r| matches!(r.kind, ValuesKind::Sealed | ValuesKind::Secret))
        }),
        plain_values: request
            .values
            .iter()
            .filter(|v| !v.secret)
            .map(|v| v.yaml.to_string())
            .collect(),
    });
    let renderer = builder.renderer;
    let slots = builder.slots;
    let bounds = renderer
        .limits()
        .with_timeout(timeout.min(renderer.limits().timeout));
    let renderer = renderer.clone();
    let path = render_path;
    let path_for_check = path.clone();
    let files = std::sync::Arc::new(files);
    let files_for_check = std::sync::Arc::clone(&files);
    // A render may take hundreds of MiB: only a few at once, whatever `--concurrent` is.
    let _slot = slots
        .acquire()
        .await
        .map_err(|_| Error::Spec("the controller is shutting down".to_owned()))?;
    let allow_plaintext_secrets = gs.spec.allow_plaintext_secrets;
    let variables = variables.cloned();
    // A template's error may quote a value (`fail`, `required` with a printf): values from
    // sealed files and Secrets are masked in it.
    let secret_leaves = helm.as_ref().map(secret_leaves).unwrap_or_default();
    // An API server's message about an object may quote them too.
    secret_values.extend(secret_leaves.iter().cloned());
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
    .map_err(|join| Error::Spec(format!("the render task failed: {join}")))?
    .map_err(|e| Error::Render(e).masking(&secret_leaves))?;
    drop(secret_leaves);
    let git_held = match &helm_inputs {
        Some(inputs) => inputs.git_held(&files_for_check, path_for_check.as_str()),
        None => Vec::new(),
    };
    let mut objects: Vec<SyncObject> = manifests
        .into_iter()
        .map(|mut m| {
            name_sealed_source(&mut m, &files_for_check, engine, release_namespace);
            let derived = helm_inputs
                .as_ref()
                .is_some_and(|i| i.has_secret_values && secret_values_not_in(&m, &git_held));
            let mut object = SyncObject::rendered(m, gs.spec.self_heal && !derived);
            object.from_sealed_values = derived;
            object
        })
        .collect();
    super::sops::attach_sources(&mut objects, &files_for_check);
    Ok((objects, usage))
}

/// Every scalar of the values that came from sealed files and Secrets, to mask in messages.
fn secret_leaves(helm: &HelmRequest) -> Vec<Zeroizing<String>> {
    fn walk(value: &serde_yaml::Value, out: &mut Vec<Zeroizing<String>>) {
        match value {
            serde_yaml::Value::String(s) if s.len() >= 3 => out.push(Zeroizing::new(s.clone())),
            serde_yaml::Value::Number(n) => {
                let text = n.to_string();
                if text.len() >= 3 {
                    out.push(Zeroizing::new(text));
                }
            }
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            serde_yaml::Value::Mapping(map) => map.values().for_each(|v| walk(v, out)),
            serde_yaml::Value::Tagged(tagged) => walk(&tagged.value, out),
            _ => {}
        }
    }
    let mut leaves = Vec::new();
    for source in helm.values.iter().filter(|v| v.secret) {
        if let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(&source.yaml) {
            walk(&value, &mut leaves);
        } else {
            leaves.push(source.yaml.clone());
        }
    }
    leaves
}

/// A rendered SealedSecret named after the file of the repository that holds it (found by its
/// ciphertext, which no other file holds), with the identity it has after rendering and how to
/// seal for it: messages then say which file to reseal, and `status.sealedSecrets` and key
/// usage name the file, not the kustomization.
fn name_sealed_source(
    manifest: &mut sealsync_core::render::Manifest,
    files: &[TreeFile],
    engine: Engine,
    default_namespace: &str,
) {
    if !super::decrypt::is_sealed(manifest) {
        return;
    }
    let Some(ciphertext) = manifest.object["spec"]["encryptedData"]
        .as_object()
        .and_then(|data| data.values().find_map(|v| v.as_str()))
        .filter(|c| c.len() >= 16)
    else {
        return;
    };
    let needle = ciphertext.as_bytes();
    let Some(source) = files
        .iter()
        .find(|f| memchr::memmem::find(&f.contents, needle).is_some())
    else {
        return;
    };
    let namespace = manifest.namespace().unwrap_or(default_namespace).to_owned();
    let name = manifest.name().to_owned();
    manifest.document = format!(
        "SealedSecret {namespace}/{name} as {} renders it (seal for that identity: `sealsync seal --rendered-as {namespace}/{name}`)",
        engine.name()
    );
    manifest.file = source.path.clone();
}

/// What a chart was rendered from, to tell a Secret it renders from sealed values from one
/// whose values are written in Git.
struct HelmInputs {
    /// Whether any values came from sealed files or cluster Secrets.
    has_secret_values: bool,
    /// The values files and inline values, as Git and the spec hold them.
    plain_values: Vec<String>,
}

impl HelmInputs {
    /// Every text Git holds for the chart: its files and the plain values.
    fn git_held<'a>(&'a self, files: &'a [TreeFile], chart_path: &str) -> Vec<&'a [u8]> {
        let prefix = if chart_path.is_empty() {
            String::new()
        } else {
            format!("{chart_path}/")
        };
        files
            .iter()
            .filter(|f| f.path.starts_with(&prefix))
            .map(|f| f.contents.as_slice())
            .chain(self.plain_values.iter().map(|v| v.as_bytes()))
            .collect()
    }
}

/// Whether `manifest` is a `v1` Secret none of whose non-empty values appears in `git_held`.
fn secret_values_not_in(manifest: &sealsync_core::render::Manifest, git_held: &[&[u8]]) -> bool {
    use base64::Engine as _;
    let object = &manifest.object;
    if object["apiVersion"] != "v1" || object["kind"] != "Secret" {
        return false;
    }
    let mut values: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    if let Some(data) = object["data"].as_object() {
        for value in data.values() {
            let Some(decoded) = value
                .as_str()
                .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            else {
                return false;
            };
            values.push(Zeroizing::new(decoded));
        }
    }
    if let Some(data) = object["stringData"].as_object() {
        for value in data.values() {
            let Some(text) = value.as_str() else {
                return false;
            };
            values.push(Zeroizing::new(text.as_bytes().to_vec()));
        }
    }
    let values: Vec<&Zeroizing<Vec<u8>>> = values.iter().filter(|v| !v.is_empty()).collect();
    !values.is_empty()
        && values.iter().all(|value| {
            !git_held
                .iter()
                .any(|text| memchr::memmem::find(text, value.as_slice()).is_some())
        })
}

/// Helm's settings from the spec, with the values files read from the tree.
fn helm_request(
    gs: &GitSync,
    files: &[TreeFile],
    path: &str,
    release_namespace: &str,
    values_from: Vec<ValuesSource>,
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
            secret: false,
        });
    }
    values.extend(values_from);
    if let Some(inline) = &spec.values {
        let text = serde_json::to_string(inline)
            .map_err(|e| Error::Spec(format!("spec.helm.values: {e}")))?;
        values.push(ValuesSource {
            source: "spec.helm.values".to_owned(),
            yaml: Zeroizing::new(text),
            secret: false,
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
