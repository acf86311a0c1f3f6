//! kustomize and Helm over a repository on disk, as the controller runs them over a commit:
//! the same renderer, the same request, reads confined to the repository's root (the nearest
//! directory above the rendered path that holds `.git`). The files are rendered where they
//! are, never copied: they may hold plaintext.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sealsync_core::render::{Manifest, RenderError, RenderLimits};
use sealsync_core::renderer::{
    join_in_repository, Engine, HelmRequest, RenderRequest, Renderer, RendererLimits, ValuesSource,
};
use sealsync_core::Chain;

use crate::error::{CliError, CliResult};
use crate::fsio;

/// The root of the repository that holds `path`: the nearest directory, `path` included, with
/// a `.git` entry, else `path` itself.
pub fn root_of(path: &Path) -> PathBuf {
    let absolute = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map_or_else(|| absolute.clone(), Path::to_path_buf)
}

/// `path` relative to `root`, `/`-separated (`""` for the root itself).
pub fn relative_to(root: &Path, path: &Path) -> CliResult<String> {
    let absolute = fs::canonicalize(path)
        .map_err(|e| fsio::io_error(&path.display().to_string(), "read", &e))?;
    let root = fs::canonicalize(root)
        .map_err(|e| fsio::io_error(&root.display().to_string(), "read", &e))?;
    let relative = absolute.strip_prefix(&root).map_err(|_| {
        CliError::new(format!(
            "{} is not inside the repository root {}",
            path.display(),
            root.display()
        ))
        .with_hint("pass --root with a directory that holds the path")
    })?;
    let parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    Ok(parts.join("/"))
}

fn read_bounded(on_disk: &Path, name: &str, limit: usize) -> CliResult<Vec<u8>> {
    let mut contents = Vec::new();
    fs::File::open(on_disk)
        .and_then(|f| f.take(limit as u64 + 1).read_to_end(&mut contents))
        .map_err(|e| fsio::io_error(name, "read", &e))?;
    if contents.len() > limit {
        return Err(CliError::new(format!(
            "{name}: larger than the {limit}-byte file limit"
        )));
    }
    Ok(contents)
}

/// How `sealsync render` and `sealsync check` run kustomize and Helm.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// The repository root; default: found from the path.
    pub root: Option<PathBuf>,
    /// Helm's release name; default: the chart directory's name.
    pub release_name: Option<String>,
    /// Helm's release namespace.
    pub namespace: String,
    /// Helm values files, relative to the chart.
    pub values: Vec<String>,
    /// Whether kustomize may generate Secrets from plaintext.
    pub allow_plaintext_secrets: bool,
    /// The renderer program; default: `$SEALSYNC_RENDERER`, else beside this program.
    pub renderer: Option<PathBuf>,
}

/// kustomize or Helm over the whole repository that holds `path`, as the controller runs
/// them. Each object's `file` is a repository path.
pub fn render_path(
    path_on_disk: &Path,
    engine: Engine,
    args: &EngineOptions,
) -> CliResult<Vec<Manifest>> {
    let root = args.root.clone().unwrap_or_else(|| root_of(path_on_disk));
    let path = relative_to(&root, path_on_disk)?;
    let helm = (engine == Engine::Helm)
        .then(|| helm_request(args, &root, &path))
        .transpose()?;
    let renderer = Renderer::new(
        args.renderer
            .clone()
            .or_else(|| std::env::var_os("SEALSYNC_RENDERER").map(PathBuf::from))
            .unwrap_or_else(Renderer::beside_current_exe),
        std::env::temp_dir(),
        RendererLimits::default(),
    );
    let request = RenderRequest {
        engine,
        path: &path,
        allow_plaintext_secrets: args.allow_plaintext_secrets,
        helm,
        variables: None,
    };
    renderer
        .render_in_place(&root, &request, &RenderLimits::default())
        .map_err(|e| refused(&e))
}

fn helm_request(args: &EngineOptions, root: &Path, path: &str) -> CliResult<HelmRequest> {
    let mut values = Vec::new();
    for file in &args.values {
        let joined = join_in_repository(path, file)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| {
                CliError::new(format!("--values {file}: not a path inside the repository"))
                    .with_hint("values files are read from the repository, relative to the chart")
            })?;
        let on_disk = root.join(&joined);
        // The file must be inside the repository once links are followed, as the controller
        // reads it from the repository's tree.
        let inside = fs::canonicalize(&on_disk)
            .ok()
            .zip(fs::canonicalize(root).ok())
            .is_some_and(|(file, root)| file.starts_with(root));
        if !inside {
            return Err(CliError::new(format!(
                "--values {file}: {joined} is not a file of the repository"
            )));
        }
        let limits = RenderLimits::default();
        let contents = read_bounded(&on_disk, &joined, limits.max_file_bytes)?;
        let text = String::from_utf8(contents)
            .map_err(|_| CliError::new(format!("{joined}: not UTF-8 text")))?;
        values.push(ValuesSource {
            source: joined,
            yaml: zeroize::Zeroizing::new(text),
            secret: false,
        });
    }
    let release_name = args.release_name.clone().unwrap_or_else(|| {
        path.rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("release")
            .to_owned()
    });
    Ok(HelmRequest {
        release_name,
        namespace: args.namespace.clone(),
        include_crds: true,
        skip_tests: true,
        kube_version: None,
        api_versions: Vec::new(),
        values,
    })
}

/// A render error as the CLI reports it, with what to do.
pub fn refused(e: &RenderError) -> CliError {
    let hint = match e {
        RenderError::RendererMissing { .. } => {
            "build it with scripts/renderer.sh, or pass --renderer (or set SEALSYNC_RENDERER) with its path"
        }
        _ => "the controller would refuse this revision too; fix the file named",
    };
    CliError::new(Chain(e).to_string()).with_hint(hint)
}
