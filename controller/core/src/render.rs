//! Rendering a tree of files into the Kubernetes objects the controller applies.
//!
//! The controller renders the files of one Git revision and `sealsync render` renders a
//! directory on disk; both call [`render`], so what the CLI shows is what the controller
//! applies. Rendering only parses: SealedSecrets stay sealed here and are opened by the
//! controller's decrypt stage.

use std::collections::BTreeMap;
use std::fmt;

use crate::manifest::{read_documents, Document, Limits, ManifestError};
use crate::substitute::{self, SubstituteError, Variables};
use serde_json::Value as Json;

/// One file of the source tree.
#[derive(Clone)]
pub struct SourceFile {
    /// Path relative to the repository root, `/`-separated.
    pub path: String,
    /// The file's bytes.
    pub contents: Vec<u8>,
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Contents may be a plaintext Secret; never print them.
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// How much one revision may hold. Every limit is named in the error that reports it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RenderLimits {
    /// Manifest files under the rendered path.
    pub max_files: usize,
    /// Bytes in one file.
    pub max_file_bytes: usize,
    /// Bytes in all manifest files together.
    pub max_total_bytes: usize,
    /// Objects in the whole revision.
    pub max_objects: usize,
}

impl RenderLimits {
    /// Limits of the given sizes, for callers that read smaller trees (tests, fuzzing).
    pub fn new(
        max_files: usize,
        max_file_bytes: usize,
        max_total_bytes: usize,
        max_objects: usize,
    ) -> Self {
        Self {
            max_files,
            max_file_bytes,
            max_total_bytes,
            max_objects,
        }
    }
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            max_files: 10_000,
            max_file_bytes: 16 * 1024 * 1024,
            max_total_bytes: 128 * 1024 * 1024,
            max_objects: 20_000,
        }
    }
}

/// Documents in one file, as the CLI reads them.
const MAX_DOCUMENTS_PER_FILE: usize = 10_000;

/// One object of the revision with where it came from.
pub struct Manifest {
    /// The file, relative to the repository root.
    pub file: String,
    /// `document N (Kind ns/name)` within the file, for messages.
    pub document: String,
    /// The object as JSON.
    pub object: Json,
}

impl fmt::Debug for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manifest")
            .field("file", &self.file)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl Manifest {
    /// `apiVersion`.
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`.
    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    /// `metadata.name`.
    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }

    /// The API group: the part of `apiVersion` before `/`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version()
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// `file: document N (Kind ns/name)`, for messages.
    pub fn location(&self) -> String {
        format!("{}: {}", self.file, self.document)
    }
}

impl Drop for Manifest {
    fn drop(&mut self) {
        wipe_json(&mut self.object);
    }
}

/// Overwrites every string in `value` before it is freed: rendered Secrets hold values.
pub fn wipe_json(value: &mut Json) {
    match value {
        Json::String(s) => zeroize::Zeroize::zeroize(s),
        Json::Array(items) => items.iter_mut().for_each(wipe_json),
        Json::Object(map) => map.values_mut().for_each(wipe_json),
        _ => {}
    }
}

/// Why a tree could not be rendered. Messages name the file, the document and the limit,
/// never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// `spec.path` is absolute, climbs out with `..`, or holds odd characters.
    #[error("path {path:?} is not a relative path inside the repository")]
    InvalidPath {
        /// The path as given.
        path: String,
    },
    /// Nothing in the tree lies under the path.
    #[error("path {path:?} does not exist in this revision")]
    PathNotFound {
        /// The path as given.
        path: String,
    },
    /// Nothing under the path is a Kubernetes object.
    #[error("no Kubernetes objects under {path:?}; to remove everything a GitSync applied, delete the GitSync (with spec.prune: true)")]
    Empty {
        /// The path.
        path: String,
    },
    /// A kustomization inside a directory rendered as plain manifests.
    #[error("{file}: a kustomization inside a directory of plain manifests is not built; point spec.path at its directory to build it with kustomize, or remove it")]
    Kustomization {
        /// The file.
        file: String,
    },
    /// A file is not UTF-8.
    #[error("{file}: not UTF-8 text")]
    NotText {
        /// The file.
        file: String,
    },
    /// A file did not parse.
    #[error("{file}")]
    Parse {
        /// The file.
        file: String,
        /// The parser's error: line, column and the limit, never the input.
        #[source]
        source: ManifestError,
    },
    /// A document is not a Kubernetes object.
    #[error("{file}: {document}: {problem}")]
    InvalidObject {
        /// The file.
        file: String,
        /// The document.
        document: String,
        /// What is wrong.
        problem: String,
    },
    /// Two documents describe the same object.
    #[error("{id} is defined twice: in {first} and in {second}")]
    Duplicate {
        /// `Kind namespace/name`.
        id: String,
        /// The first definition.
        first: String,
        /// The second definition.
        second: String,
    },
    /// kustomize or Helm refused the tree or failed on it.
    #[error("{path}: {engine} failed ({reason}): {message}")]
    Renderer {
        /// The rendered path.
        path: String,
        /// `kustomize` or `helm`.
        engine: &'static str,
        /// A stable word for what failed (`OutsideRoot`, `SecretGenerator`, `RemoteBase`,
        /// `Plugin`, `Template`, ...).
        reason: String,
        /// The engine's message, with paths made relative to the repository.
        message: String,
    },
    /// Post-build substitution failed for an object.
    #[error("{location}: postBuild substitution")]
    Substitute {
        /// `file: document N (Kind ns/name)`.
        location: String,
        /// What failed: the variable named, never a value.
        #[source]
        source: crate::substitute::SubstituteError,
    },
    /// A symbolic link in the repository cannot be given to the renderer.
    #[error("{file}: a symbolic link to {target:?} {problem}; a rendered path reads regular files of the repository only")]
    Link {
        /// The link.
        file: String,
        /// Where it points.
        target: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The renderer program could not be started.
    #[error("the renderer {program} cannot be started ({message}); it is installed beside the controller and the CLI (scripts/renderer.sh builds it)")]
    RendererMissing {
        /// The program's path.
        program: String,
        /// Why it did not start.
        message: String,
    },
    /// A limit was reached.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What was counted, with the file where one file is at fault.
        what: String,
        /// The limit.
        limit: usize,
    },
}

impl RenderError {
    /// Whether the same tree may render on a later try: the renderer was missing or crashed,
    /// not the tree at fault.
    pub fn is_retryable(&self) -> bool {
        match self {
            RenderError::RendererMissing { .. } => true,
            RenderError::Renderer { reason, .. } => {
                matches!(
                    reason.as_str(),
                    "Crashed" | "Io" | "Workspace" | "Response" | "Internal"
                )
            }
            _ => false,
        }
    }
}

/// Normalises `spec.path`: `""`, `"."` and `"./"` mean the root; `..`, absolute paths and
/// backslashes are refused.
pub fn normalize_path(path: &str) -> Result<String, RenderError> {
    let invalid = || RenderError::InvalidPath {
        path: path.to_owned(),
    };
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') || path.len() > 4096 {
        return Err(invalid());
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(invalid()),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Whether a file under the rendered path would be read: a YAML or JSON file outside hidden
/// directories. `relative` is the path below `spec.path`. The source stage uses this to skip
/// other blobs before loading them.
pub fn is_candidate(relative: &str) -> bool {
    !matches!(classify(relative), FileKind::Other)
}

/// Whether a file is one the renderer reads, and whether it is a kustomization. `path` is
/// relative to the rendered directory, so a `spec.path` inside a hidden directory still renders.
fn classify(path: &str) -> FileKind {
    let name = path.rsplit('/').next().unwrap_or(path);
    if matches!(
        name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    ) {
        return FileKind::Kustomization;
    }
    // Hidden files and directories (`.sealsync.yaml`, `.github/`, `.pre-commit-config.yaml`)
    // are repository tooling, not manifests.
    if path.split('/').any(|part| part.starts_with('.')) {
        return FileKind::Other;
    }
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json") {
        FileKind::Manifest
    } else {
        FileKind::Other
    }
}

enum FileKind {
    Manifest,
    Kustomization,
    Other,
}

/// One document with `variables` substituted into it, unless it opted out.
fn substitute_document(
    file: &str,
    document: Document,
    variables: &Variables,
) -> Result<Document, RenderError> {
    let json = serde_json::to_value(&document.value).unwrap_or_default();
    if substitute::is_disabled(&json) {
        return Ok(document);
    }
    let failed = |source: SubstituteError| RenderError::Substitute {
        location: format!("{file}: {}", document.describe()),
        source,
    };
    let malformed =
        |problem: &'static str| failed(SubstituteError::Malformed { offset: 0, problem });
    let yaml = zeroize::Zeroizing::new(
        serde_yaml::to_string(&document.value)
            .map_err(|_| malformed("the document cannot be written as YAML"))?,
    );
    let expanded = zeroize::Zeroizing::new(substitute::expand(&yaml, variables).map_err(failed)?);
    if *expanded == *yaml {
        return Ok(document);
    }
    let limits = Limits::small(expanded.len().saturating_add(1), 1);
    let mut parsed = read_documents(&expanded, limits).map_err(|_| {
        malformed("the document is not valid YAML once substituted (a value may need quotes)")
    })?;
    match (parsed.pop(), parsed.is_empty()) {
        (Some(mut substituted), true) => {
            substituted.index = document.index;
            substituted.list_item = document.list_item.clone();
            Ok(substituted)
        }
        _ => Err(malformed(
            "the document is not one document once substituted",
        )),
    }
}

/// Renders every manifest file under `path` (already normalised, `""` for the root) in path
/// order. Fails on the first problem: a revision is applied whole or not at all.
///
/// A YAML or JSON file in which no document has `apiVersion` and `kind` (a Helm values file,
/// a tool's configuration) is skipped; a file that mixes objects and other documents is an
/// error naming the document.
pub fn render(
    files: &[SourceFile],
    path: &str,
    limits: &RenderLimits,
) -> Result<Vec<Manifest>, RenderError> {
    render_with(files, path, limits, Kept::default())
}

/// What a revision holds beyond the files given to [`render_with`]: files of the revision
/// before, unchanged, whose objects are known and not rendered again. Every limit of the
/// revision counts them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Kept {
    /// Manifest files.
    pub files: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Their objects.
    pub objects: usize,
}

impl Kept {
    /// `files` files of `bytes` bytes holding `objects` objects.
    pub fn new(files: usize, bytes: usize, objects: usize) -> Self {
        Self {
            files,
            bytes,
            objects,
        }
    }
}

/// [`render`] of the files of a revision that changed, where `kept` describes the others:
/// the limits and the empty-revision rule hold for the whole revision. Duplicates between
/// the two are for the caller to find.
pub fn render_with(
    files: &[SourceFile],
    path: &str,
    limits: &RenderLimits,
    kept: Kept,
) -> Result<Vec<Manifest>, RenderError> {
    render_substituted(files, path, limits, kept, None)
}

/// [`render_with`] with post-build substitution of `variables` into every document.
pub fn render_substituted(
    files: &[SourceFile],
    path: &str,
    limits: &RenderLimits,
    kept: Kept,
    variables: Option<&Variables>,
) -> Result<Vec<Manifest>, RenderError> {
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let mut under: Vec<&SourceFile> = files
        .iter()
        .filter(|f| path.is_empty() || f.path == path || f.path.starts_with(&prefix))
        .collect();
    if under.is_empty() && !path.is_empty() && kept.files == 0 {
        return Err(RenderError::PathNotFound {
            path: path.to_owned(),
        });
    }
    under.sort_by(|a, b| a.path.cmp(&b.path));

    let mut collected = Collector::new(limits, kept.objects).substituting(variables);
    let mut total = kept.bytes;
    let mut file_count = kept.files;
    if file_count > limits.max_files {
        return Err(RenderError::Limit {
            what: "the number of manifest files".to_owned(),
            limit: limits.max_files,
        });
    }
    for file in under {
        let relative = file.path.strip_prefix(&prefix).unwrap_or(&file.path);
        match classify(relative) {
            FileKind::Other => continue,
            FileKind::Kustomization => {
                return Err(RenderError::Kustomization {
                    file: file.path.clone(),
                })
            }
            FileKind::Manifest => {}
        }
        file_count += 1;
        if file_count > limits.max_files {
            return Err(RenderError::Limit {
                what: "the number of manifest files".to_owned(),
                limit: limits.max_files,
            });
        }
        if file.contents.len() > limits.max_file_bytes {
            return Err(RenderError::Limit {
                what: format!("{}: the file size in bytes", file.path),
                limit: limits.max_file_bytes,
            });
        }
        total += file.contents.len();
        if total > limits.max_total_bytes {
            return Err(RenderError::Limit {
                what: "the total size of manifest files in bytes".to_owned(),
                limit: limits.max_total_bytes,
            });
        }
        let text = std::str::from_utf8(&file.contents).map_err(|_| RenderError::NotText {
            file: file.path.clone(),
        })?;
        collected.file(&file.path, text, SkipNonObjects::IfNoObject)?;
    }
    collected.finish(path)
}

/// What to do with documents that are not Kubernetes objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SkipNonObjects {
    /// A file in which no document is an object (a values file, a tool's configuration) is
    /// skipped; one that mixes objects and other documents is an error.
    IfNoObject,
    /// Every document must be an object (a renderer's output).
    Never,
}

/// The objects of a revision as files and rendered streams are added: every document checked,
/// duplicates and the object limit found across all of them.
pub(crate) struct Collector<'a> {
    limits: &'a RenderLimits,
    kept_objects: usize,
    manifests: Vec<Manifest>,
    seen: BTreeMap<String, String>,
    variables: Option<&'a Variables>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(limits: &'a RenderLimits, kept_objects: usize) -> Self {
        Self {
            limits,
            kept_objects,
            manifests: Vec::new(),
            seen: BTreeMap::new(),
            variables: None,
        }
    }

    /// Substitutes `variables` into each document before it is checked (post-build
    /// substitution: a name may be `app-${cluster}`). Nothing is substituted without any.
    pub(crate) fn substituting(mut self, variables: Option<&'a Variables>) -> Self {
        self.variables = variables.filter(|v| !v.is_empty());
        self
    }

    /// Adds the documents of `text`, named `file` in messages.
    pub(crate) fn file(
        &mut self,
        file: &str,
        text: &str,
        skip: SkipNonObjects,
    ) -> Result<(), RenderError> {
        let yaml_limits = Limits::small(self.limits.max_file_bytes, MAX_DOCUMENTS_PER_FILE);
        let documents = read_documents(text, yaml_limits).map_err(|source| RenderError::Parse {
            file: file.to_owned(),
            source,
        })?;
        let is_object =
            |d: &Document| d.value.get("apiVersion").is_some() && d.value.get("kind").is_some();
        if skip == SkipNonObjects::IfNoObject && !documents.iter().any(is_object) {
            return Ok(());
        }
        for document in documents {
            if skip == SkipNonObjects::Never && document.value.is_null() {
                continue;
            }
            let document = match self.variables {
                Some(variables) => substitute_document(file, document, variables)?,
                None => document,
            };
            let manifest = to_manifest(file, &document)?;
            self.push(manifest)?;
        }
        Ok(())
    }

    fn push(&mut self, manifest: Manifest) -> Result<(), RenderError> {
        let id = format!(
            "{} {}{}",
            manifest.kind(),
            manifest
                .namespace()
                .map(|ns| format!("{ns}/"))
                .unwrap_or_default(),
            manifest.name()
        );
        let key = format!("{}|{id}", manifest.group());
        if let Some(first) = self.seen.insert(key, manifest.location()) {
            return Err(RenderError::Duplicate {
                id,
                first,
                second: manifest.location(),
            });
        }
        self.manifests.push(manifest);
        if self.manifests.len().saturating_add(self.kept_objects) > self.limits.max_objects {
            return Err(RenderError::Limit {
                what: "the number of objects".to_owned(),
                limit: self.limits.max_objects,
            });
        }
        Ok(())
    }

    /// The objects, or the error of an empty revision.
    pub(crate) fn finish(self, path: &str) -> Result<Vec<Manifest>, RenderError> {
        if self.manifests.is_empty() && self.kept_objects == 0 {
            // An empty revision would prune everything the last one applied; a path that lost
            // its files is far more often a mistake than an intent. Deleting the GitSync prunes.
            return Err(RenderError::Empty {
                path: if path.is_empty() {
                    ".".to_owned()
                } else {
                    path.to_owned()
                },
            });
        }
        Ok(self.manifests)
    }
}

fn to_manifest(file: &str, document: &Document) -> Result<Manifest, RenderError> {
    let describe = document.describe();
    let invalid = |problem: &str| RenderError::InvalidObject {
        file: file.to_owned(),
        document: describe.clone(),
        problem: problem.to_owned(),
    };
    let api_version = document
        .value
        .get("apiVersion")
        .and_then(serde_yaml::Value::as_str)
        .ok_or_else(|| invalid("apiVersion is missing or not a string"))?;
    if !is_api_version(api_version) {
        return Err(invalid("apiVersion is not of the form [group/]version"));
    }
    let kind = document
        .kind()
        .ok_or_else(|| invalid("kind is missing or not a string"))?;
    if kind.is_empty() || kind.len() > 63 || !kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid("kind is not a valid Kubernetes kind"));
    }
    if document
        .value
        .get("metadata")
        .and_then(|m| m.get("generateName"))
        .is_some()
    {
        return Err(invalid(
            "metadata.generateName cannot be tracked across revisions; set metadata.name",
        ));
    }
    let name = document
        .name()
        .ok_or_else(|| invalid("metadata.name is missing or not a string"))?;
    if !is_object_name(name) {
        return Err(invalid(
            "metadata.name is not a valid name (lowercase letters, digits, '-' and '.')",
        ));
    }
    if let Some(ns) = document
        .value
        .get("metadata")
        .and_then(|m| m.get("namespace"))
    {
        match ns.as_str() {
            Some(ns) if is_dns_label(ns) => {}
            _ => return Err(invalid("metadata.namespace is not a valid namespace name")),
        }
    }
    let object = serde_json::to_value(&document.value)
        .map_err(|_| invalid("the document cannot be represented as JSON"))?;
    Ok(Manifest {
        file: file.to_owned(),
        document: describe,
        object,
    })
}

fn is_api_version(s: &str) -> bool {
    let (group, version) = s.rsplit_once('/').unwrap_or(("", s));
    let version_ok = is_dns_label(version);
    let group_ok = group.is_empty() || is_object_name(group);
    version_ok && group_ok && s.len() <= 253
}

pub use sealsync_crypto::{is_dns_label, is_object_name};

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.to_owned(),
            contents: text.as_bytes().to_vec(),
        }
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n";

    #[test]
    fn renders_nested_files_in_path_order_and_skips_tooling() {
        let files = vec![
            file("apps/b/cm.yaml", &CM.replace("name: a", "name: b")),
            file(
                "apps/a.json",
                r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}"#,
            ),
            file("apps/README.md", "# not yaml"),
            file("apps/.sealsync.yaml", "clusters: {}"),
            file("apps/values.yaml", "replicas: 3\n"),
            file("other/cm.yaml", CM),
        ];
        let out = render(&files, "apps", &RenderLimits::default()).expect("render");
        let names: Vec<_> = out.iter().map(Manifest::name).collect();
        assert_eq!(names, ["c", "b"]);
    }

    #[test]
    fn a_path_inside_a_hidden_directory_renders_and_an_empty_one_is_refused() {
        let files = vec![
            file(".deploy/prod/cm.yaml", CM),
            file(
                ".deploy/prod/.hidden/x.yaml",
                &CM.replace("name: a", "name: x"),
            ),
        ];
        let out = render(&files, ".deploy/prod", &RenderLimits::default()).expect("render");
        assert_eq!(out.len(), 1);
        let err = render(
            &[file("docs/README.md", "hi")],
            "docs",
            &RenderLimits::default(),
        )
        .expect_err("empty");
        assert!(matches!(err, RenderError::Empty { .. }), "{err}");
    }

    #[test]
    fn kustomization_is_refused() {
        let files = vec![file("k/kustomization.yaml", "resources: []\n")];
        let err = render(&files, "k", &RenderLimits::default()).expect_err("refused");
        assert!(
            err.to_string().contains("point spec.path at its directory"),
            "{err}"
        );
    }

    #[test]
    fn paths_are_normalised_and_escapes_refused() {
        assert_eq!(normalize_path("./a//b/").expect("ok"), "a/b");
        assert_eq!(normalize_path(".").expect("ok"), "");
        assert!(normalize_path("../x").is_err());
        assert!(normalize_path("/etc").is_err());
        let err = render(&[file("a.yaml", CM)], "missing", &RenderLimits::default())
            .expect_err("missing");
        assert!(matches!(err, RenderError::PathNotFound { .. }));
    }

    #[test]
    fn duplicates_and_invalid_objects_name_the_file() {
        let files = vec![file("a.yaml", CM), file("b.yaml", CM)];
        let err = render(&files, "", &RenderLimits::default()).expect_err("dup");
        assert!(err.to_string().contains("a.yaml") && err.to_string().contains("b.yaml"));
        let files = vec![file("c.yaml", &format!("{CM}---\nkind: ConfigMap\n"))];
        let err = render(&files, "", &RenderLimits::default()).expect_err("no apiVersion");
        assert!(err.to_string().starts_with("c.yaml: document 2"), "{err}");
    }

    #[test]
    fn limits_are_named() {
        let limits = RenderLimits {
            max_objects: 1,
            ..RenderLimits::default()
        };
        let text = format!("{CM}---\n{}", CM.replace("name: a", "name: b"));
        let err = render(&[file("a.yaml", &text)], "", &limits).expect_err("limit");
        assert!(err.to_string().contains("number of objects"), "{err}");
    }

    #[test]
    fn kept_files_count_toward_every_limit_and_make_a_revision_non_empty() {
        let limits = RenderLimits::new(3, 1024, 2048, 5);
        let one = [file("apps/a.yaml", CM)];
        // Only the changed file is rendered; the kept ones are counted.
        let out = render_with(&one, "apps", &limits, Kept::new(2, 100, 4)).expect("render");
        assert_eq!(out.len(), 1);
        let err = render_with(&one, "apps", &limits, Kept::new(2, 100, 5)).expect_err("objects");
        assert!(err.to_string().contains("number of objects"), "{err}");
        let err = render_with(&one, "apps", &limits, Kept::new(3, 100, 1)).expect_err("files");
        assert!(
            err.to_string().contains("number of manifest files"),
            "{err}"
        );
        let err = render_with(&one, "apps", &limits, Kept::new(1, 2040, 1)).expect_err("bytes");
        assert!(err.to_string().contains("total size"), "{err}");
        // Nothing changed under the path: the kept files are the revision.
        let out = render_with(&[], "apps", &limits, Kept::new(2, 100, 4)).expect("unchanged");
        assert!(out.is_empty());
        let err = render_with(&[], "apps", &limits, Kept::new(1, 100, 0)).expect_err("empty");
        assert!(matches!(err, RenderError::Empty { .. }), "{err}");
    }

    #[test]
    fn post_build_variables_are_substituted_before_objects_are_checked() {
        let vars = crate::substitute::variables_from([("env", "prod"), ("replicas", "3")])
            .expect("valid names");
        let files = [
            file(
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-${env}\n  namespace: ${env}\ndata:\n  replicas: \"${replicas}\"\n  zone: ${zone:=a}\n",
            ),
            file(
                "app/script.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: script\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\ndata:\n  run: echo ${HOME}\n",
            ),
        ];
        let manifests = render_substituted(
            &files,
            "app",
            &RenderLimits::default(),
            Kept::default(),
            Some(&vars),
        )
        .expect("renders");
        assert_eq!(manifests[0].name(), "app-prod");
        assert_eq!(manifests[0].namespace(), Some("prod"));
        // As in Flux, substitution is textual over the object's YAML, where `"${replicas}"`
        // has lost its quotes: the value becomes a number (Flux's workaround is
        // `${quote}${replicas}${quote}` with `quote: '"'`).
        assert_eq!(manifests[0].object["data"]["replicas"], 3);
        assert_eq!(manifests[0].object["data"]["zone"], "a");
        assert_eq!(manifests[1].object["data"]["run"], "echo ${HOME}");

        // Without variables, nothing is substituted and `${env}` is no valid name.
        let error = render(&files, "app", &RenderLimits::default()).expect_err("invalid name");
        assert!(
            error
                .to_string()
                .contains("metadata.name is not a valid name"),
            "{error}"
        );

        let unset = crate::substitute::variables_from([("other", "x")]).expect("valid");
        let error = render_substituted(
            &files,
            "app",
            &RenderLimits::default(),
            Kept::default(),
            Some(&unset),
        )
        .expect_err("env is not set");
        assert_eq!(
            crate::Chain(&error).to_string(),
            "app/cm.yaml: document 1 (ConfigMap): postBuild substitution: variable \"env\" is not set (set it in spec.postBuild, or give a default: ${env:=default})"
        );
    }
}
