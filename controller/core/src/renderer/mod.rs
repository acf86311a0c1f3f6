//! Building kustomize overlays and rendering Helm charts with the real engines.
//!
//! No Rust implementation of kustomize or of Helm's template language is complete, so both
//! run in `sealsync-renderer`, a small Go program of the project's own over the pinned
//! kustomize and Helm modules (`renderer/` in the repository). It is a child process with a
//! fixed interface: one JSON request on standard input, one JSON response on standard output,
//! no arguments and an empty environment. Each render gets a private copy of the revision's
//! tree holding regular files only; the program confines every read to it and has no network.
//! The caller bounds its wall time, resident memory and output here; it bounds its own heap,
//! CPU time and open files.
//!
//! The controller and `sealsync render` both render through [`Renderer::render`], so what
//! the CLI shows is what the controller applies.

mod child;
mod tree;
mod workdir;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::render::{Collector, Manifest, RenderError, RenderLimits, SkipNonObjects};
use child::{ChildError, ChildLimits};
pub use tree::{join_in_repository, resolve_link, TreeEntry, MAX_LINK_HOPS};
use workdir::WorkDir;

/// The program's name, installed beside the controller and the CLI.
pub const RENDERER_PROGRAM: &str = "sealsync-renderer";

/// How a path is turned into objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// A directory of plain manifests.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

impl Engine {
    /// What the engine is called in messages.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Directory => "directory",
            Engine::Kustomize => "kustomize",
            Engine::Helm => "helm",
        }
    }

    /// The engine for the files at `path`: a kustomization file makes it kustomize, a
    /// `Chart.yaml` Helm, anything else a plain directory. `files` are repository paths.
    pub fn detect<'a>(files: impl IntoIterator<Item = &'a str>, path: &str) -> Engine {
        let mut helm = false;
        for file in files {
            let name = if path.is_empty() {
                Some(file)
            } else {
                file.strip_prefix(path).and_then(|r| r.strip_prefix('/'))
            };
            match name {
                Some("kustomization.yaml" | "kustomization.yml" | "Kustomization") => {
                    return Engine::Kustomize
                }
                Some("Chart.yaml") => helm = true,
                _ => {}
            }
        }
        if helm {
            Engine::Helm
        } else {
            Engine::Directory
        }
    }
}

/// One file of the tree the renderer reads: a path relative to the repository root and its
/// bytes (ciphertext for sealed files: plaintext never reaches the copy).
pub use crate::render::SourceFile as TreeFile;

/// Bounds on one render, beyond the object limits of [`RenderLimits`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RendererLimits {
    /// Wall-clock time.
    pub timeout: Duration,
    /// Resident memory of the program.
    pub memory_bytes: u64,
    /// CPU time of the program.
    pub cpu_seconds: u64,
    /// Rendered output.
    pub output_bytes: usize,
    /// A Helm chart, decompressed.
    pub chart_bytes: u64,
}

impl Default for RendererLimits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            memory_bytes: 256 * 1024 * 1024,
            cpu_seconds: 120,
            output_bytes: 64 * 1024 * 1024,
            chart_bytes: 32 * 1024 * 1024,
        }
    }
}

impl RendererLimits {
    /// These limits with another bound on resident memory.
    pub fn with_memory_bytes(mut self, memory_bytes: u64) -> Self {
        self.memory_bytes = memory_bytes;
        self
    }

    /// These limits with another wall-clock time.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// What to render, beyond the tree.
#[derive(Debug, Clone)]
pub struct RenderRequest<'a> {
    /// The engine: kustomize or Helm.
    pub engine: Engine,
    /// The directory, relative to the repository root (`""` for the root).
    pub path: &'a str,
    /// Whether kustomize may generate Secrets from plaintext (`secretGenerator`).
    pub allow_plaintext_secrets: bool,
    /// Helm's settings, for [`Engine::Helm`].
    pub helm: Option<HelmRequest>,
    /// Variables substituted into kustomize's output, as Flux's post-build substitution
    /// (Helm's output is left alone, as in Flux).
    pub variables: Option<&'a crate::substitute::Variables>,
}

impl RenderRequest<'_> {
    /// A [`RenderError::Renderer`] of this request.
    fn failure(&self, reason: &str, message: String) -> RenderError {
        RenderError::Renderer {
            path: display_path(self.path),
            engine: self.engine.name(),
            reason: reason.to_owned(),
            message,
        }
    }

    /// A [`RenderError::Limit`] of rendering this request.
    fn limit(&self, what: &str, limit: usize) -> RenderError {
        RenderError::Limit {
            what: format!(
                "rendering {} with {}: the {what}",
                display_path(self.path),
                self.engine.name()
            ),
            limit,
        }
    }
}

/// How a chart is rendered.
#[derive(Debug, Clone, Default)]
pub struct HelmRequest {
    /// The release name.
    pub release_name: String,
    /// The release namespace.
    pub namespace: String,
    /// Render the chart's `crds/` too.
    pub include_crds: bool,
    /// Leave out `test` hooks.
    pub skip_tests: bool,
    /// The cluster's version, such as `v1.33.2`.
    pub kube_version: Option<String>,
    /// The cluster's API versions (`group/version` and `group/version/Kind`).
    pub api_versions: Vec<String>,
    /// Values documents, merged in order.
    pub values: Vec<ValuesSource>,
}

/// One values document for a chart.
#[derive(Clone)]
pub struct ValuesSource {
    /// What it is called in messages.
    pub source: String,
    /// The YAML text.
    pub yaml: Zeroizing<String>,
    /// Whether it came from a sealed file or a Secret: its values are masked in messages
    /// and are not "in Git".
    pub secret: bool,
}

impl std::fmt::Debug for ValuesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValuesSource")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The renderer program and where its work directories go.
#[derive(Debug, Clone)]
pub struct Renderer {
    program: PathBuf,
    work_parent: PathBuf,
    limits: RendererLimits,
}

impl Renderer {
    /// Runs `program`, with work directories under `work_parent`.
    pub fn new(program: PathBuf, work_parent: PathBuf, limits: RendererLimits) -> Self {
        Self {
            program,
            work_parent,
            limits,
        }
    }

    /// The program beside the running executable, the place the image and the release
    /// archives put it.
    pub fn beside_current_exe() -> PathBuf {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(RENDERER_PROGRAM)))
            .unwrap_or_else(|| PathBuf::from(RENDERER_PROGRAM))
    }

    /// These limits.
    pub fn limits(&self) -> &RendererLimits {
        &self.limits
    }

    /// Renders `request.path` of the tree `files` into objects. Blocks: async callers run it
    /// on a blocking thread.
    pub fn render(
        &self,
        files: &[TreeFile],
        request: &RenderRequest<'_>,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        self.render_with_limits(files, request, limits, &self.limits)
    }

    /// [`Renderer::render`] with other renderer limits (a GitSync's own timeout).
    pub fn render_with_limits(
        &self,
        files: &[TreeFile],
        request: &RenderRequest<'_>,
        limits: &RenderLimits,
        bounds: &RendererLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let work = WorkDir::create(&self.work_parent, files)
            .map_err(|e| request.failure("Workspace", format!("copying the tree: {e}")))?;
        let root = work.root();
        self.run(&root, work.path(), request, limits, bounds)
    }

    /// Renders `request.path` of the repository at `root` on disk, in place: for the CLI,
    /// whose user's files are already on disk and must not be copied (they may hold
    /// plaintext). The renderer's own confinement keeps reads inside `root`.
    pub fn render_in_place(
        &self,
        root: &Path,
        request: &RenderRequest<'_>,
        limits: &RenderLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        self.run(root, root, request, limits, &self.limits)
    }

    fn run(
        &self,
        root: &Path,
        cwd: &Path,
        request: &RenderRequest<'_>,
        limits: &RenderLimits,
        bounds: &RendererLimits,
    ) -> Result<Vec<Manifest>, RenderError> {
        let engine = request.engine;
        let path = request.path;
        let failed = |reason: &str, message: String| request.failure(reason, message);
        let input = Zeroizing::new(
            serde_json::to_vec(&WireRequest::new(request, root, bounds))
                .map_err(|e| failed("Request", e.to_string()))?,
        );
        let child_limits = ChildLimits {
            timeout: bounds.timeout,
            memory_bytes: bounds.memory_bytes,
            // The JSON around the documents is small; the renderer checks the YAML itself.
            output_bytes: bounds
                .output_bytes
                .saturating_mul(2)
                .saturating_add(1 << 20),
        };
        let output =
            child::run(&self.program, cwd, &input, &child_limits).map_err(|error| match error {
                ChildError::Start(e) => RenderError::RendererMissing {
                    program: self.program.display().to_string(),
                    message: e.to_string(),
                },
                ChildError::Timeout(limit) => {
                    request.limit("time in seconds", limit.as_secs() as usize)
                }
                ChildError::Memory(limit) => request.limit("memory in bytes", limit as usize),
                ChildError::Output => request.limit("output in bytes", bounds.output_bytes),
                ChildError::Exited { status, stderr } => failed(
                    "Crashed",
                    format!("the renderer exited ({status}) without a response: {stderr}"),
                ),
                ChildError::Io(e) => failed("Io", e.to_string()),
            })?;
        let response: WireResponse = serde_json::from_slice(&output)
            .map_err(|e| failed("Response", format!("unreadable response: {e}")))?;
        if let Some(error) = response.error {
            if error.reason == "Limit" {
                return Err(request.limit("output in bytes", bounds.output_bytes));
            }
            return Err(failed(&error.reason, error.message));
        }
        let variables = request.variables.filter(|_| engine == Engine::Kustomize);
        collect(engine, path, response, limits, variables)
    }
}

/// The objects of a response, each named after the file it came from: the kustomization's
/// directory, or the chart template's path in the repository.
fn collect(
    engine: Engine,
    path: &str,
    response: WireResponse,
    limits: &RenderLimits,
    variables: Option<&crate::substitute::Variables>,
) -> Result<Vec<Manifest>, RenderError> {
    let mut collector = Collector::new(limits, 0).substituting(variables);
    let documents = response.documents.into_iter().flatten();
    let hooks = response.hooks.into_iter().flatten().map(|h| h.document);
    // Consecutive documents of one source are read as one stream, so `document N` counts
    // within the source.
    let mut stream = String::new();
    let mut source: Option<String> = None;
    for document in documents.chain(hooks) {
        let file = source_file(engine, path, &document.source);
        if source.as_deref() != Some(file.as_str()) {
            if let Some(previous) = source.take() {
                collector.file(&previous, &stream, SkipNonObjects::Never)?;
                zeroize::Zeroize::zeroize(&mut stream);
            }
            source = Some(file);
        }
        stream.push_str("---\n");
        stream.push_str(&document.yaml);
        if !document.yaml.ends_with('\n') {
            stream.push('\n');
        }
    }
    if let Some(previous) = source {
        collector.file(&previous, &stream, SkipNonObjects::Never)?;
    }
    zeroize::Zeroize::zeroize(&mut stream);
    collector.finish(path)
}

/// Where a rendered document came from, as a repository path.
fn source_file(engine: Engine, path: &str, source: &str) -> String {
    match engine {
        // Helm names templates `<chart name>/templates/x.yaml`; the chart is at `path`.
        Engine::Helm => match source.split_once('/') {
            Some((_, rest)) if !path.is_empty() => format!("{path}/{rest}"),
            Some((_, rest)) => rest.to_owned(),
            None => display_path(path),
        },
        _ => format!("{} (kustomize build)", display_path(path)),
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.to_owned()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRequest<'a> {
    engine: &'static str,
    root: String,
    path: &'a str,
    kustomize: WireKustomize,
    #[serde(skip_serializing_if = "Option::is_none")]
    helm: Option<WireHelm<'a>>,
    limits: WireLimits,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireKustomize {
    allow_secret_generator: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireHelm<'a> {
    release_name: &'a str,
    namespace: &'a str,
    #[serde(rename = "includeCRDs")]
    include_crds: bool,
    skip_tests: bool,
    kube_version: &'a str,
    api_versions: &'a [String],
    values: Vec<WireValues<'a>>,
}

#[derive(Serialize)]
struct WireValues<'a> {
    source: &'a str,
    yaml: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireLimits {
    memory_bytes: u64,
    cpu_seconds: u64,
    output_bytes: usize,
    chart_bytes: u64,
}

impl<'a> WireRequest<'a> {
    fn new(request: &'a RenderRequest<'a>, root: &Path, bounds: &RendererLimits) -> Self {
        Self {
            engine: request.engine.name(),
            root: root.display().to_string(),
            path: request.path,
            kustomize: WireKustomize {
                allow_secret_generator: request.allow_plaintext_secrets,
            },
            helm: request.helm.as_ref().map(|h| WireHelm {
                release_name: &h.release_name,
                namespace: &h.namespace,
                include_crds: h.include_crds,
                skip_tests: h.skip_tests,
                kube_version: h.kube_version.as_deref().unwrap_or(""),
                api_versions: &h.api_versions,
                values: h
                    .values
                    .iter()
                    .map(|v| WireValues {
                        source: &v.source,
                        yaml: &v.yaml,
                    })
                    .collect(),
            }),
            limits: WireLimits {
                // The Go heap's soft limit sits below the hard limit on resident memory, so
                // the collector works harder before the process is killed.
                memory_bytes: bounds.memory_bytes / 4 * 3,
                cpu_seconds: bounds.cpu_seconds,
                output_bytes: bounds.output_bytes,
                chart_bytes: bounds.chart_bytes,
            },
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    documents: Option<Vec<WireDocument>>,
    hooks: Option<Vec<WireHook>>,
    error: Option<WireError>,
}

#[derive(Deserialize)]
struct WireDocument {
    #[serde(default)]
    source: String,
    yaml: String,
}

impl Drop for WireDocument {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.yaml);
    }
}

#[derive(Deserialize)]
struct WireHook {
    #[serde(flatten)]
    document: WireDocument,
}

#[derive(Deserialize)]
struct WireError {
    reason: String,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kustomization_or_a_chart_at_the_path_picks_the_engine() {
        let files = [
            "apps/base/kustomization.yaml",
            "apps/prod/Chart.yaml",
            "x.yaml",
        ];
        assert_eq!(Engine::detect(files, "apps/base"), Engine::Kustomize);
        assert_eq!(Engine::detect(files, "apps/prod"), Engine::Helm);
        assert_eq!(Engine::detect(files, "apps"), Engine::Directory);
        assert_eq!(Engine::detect(files, ""), Engine::Directory);
        assert_eq!(Engine::detect(["Kustomization"], ""), Engine::Kustomize);
        // A kustomization deeper down is a base, not the entry point.
        assert_eq!(
            Engine::detect(["apps/base/kustomization.yaml"], "apps"),
            Engine::Directory
        );
    }

    #[test]
    fn helm_documents_are_named_after_the_template_in_the_repository() {
        assert_eq!(
            source_file(Engine::Helm, "charts/web", "web/templates/svc.yaml"),
            "charts/web/templates/svc.yaml"
        );
        assert_eq!(
            source_file(Engine::Kustomize, "overlays/prod", "overlays/prod"),
            "overlays/prod (kustomize build)"
        );
    }
}
