//! `sealsync render PATH`: what the controller would apply from a directory, a kustomize
//! overlay or a Helm chart, with every Secret value shown as `***`. It runs the controller's
//! own render code and the same renderer (`sealsync-renderer`), so a SealedSecret shows the
//! namespace and name it must be sealed for after rendering.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use sealsync_core::manifest::sealed_from_manifest;
use sealsync_core::redact::{mask_secret, MASK};
use sealsync_core::render::{render, Manifest, RenderLimits, SourceFile};
use sealsync_core::renderer::Engine;

use crate::repository::{render_path, EngineOptions};
use sealsync_core::vaultref::{reference_outside_secret, secret_values};
use sealsync_core::Chain;
use serde_json::Value as Json;

use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::output::{self, Format};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The directory to render, as a GitSync's spec.path points at it.
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    /// How the path is rendered, as `spec.render.type`: detected by default.
    #[arg(long = "type", value_enum, default_value_t = RenderType::Auto)]
    pub render_type: RenderType,
    /// The repository's root: nothing outside it is read. Default: the nearest directory
    /// above PATH that holds `.git`, else PATH.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Helm: the release name (`spec.helm.releaseName`). Default: the chart directory's name.
    #[arg(long, value_name = "NAME")]
    pub release_name: Option<String>,
    /// Helm: the release namespace (the GitSync's targetNamespace or namespace).
    #[arg(long, short = 'n', value_name = "NS", default_value = "default")]
    pub namespace: String,
    /// Helm: a values file relative to the chart (`spec.helm.valuesFiles`); repeatable.
    #[arg(long = "values", short = 'f', value_name = "FILE")]
    pub values: Vec<String>,
    /// Let kustomize generate Secrets from plaintext (`spec.allowPlaintextSecrets`).
    #[arg(long)]
    pub allow_plaintext_secrets: bool,
    /// The renderer of kustomize and Helm. Default: `sealsync-renderer` beside this program.
    #[arg(long, env = "SEALSYNC_RENDERER", value_name = "PATH")]
    pub renderer: Option<PathBuf>,
}

/// `--type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderType {
    /// A kustomization makes it kustomize, a `Chart.yaml` Helm, anything else a directory.
    Auto,
    /// Plain manifests.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let root = &args.path;
    let meta = std::fs::metadata(root)
        .map_err(|e| fsio::io_error(&root.display().to_string(), "read", &e))?;
    if !meta.is_dir() {
        return Err(
            CliError::new(format!("{}: not a directory", root.display()))
                .with_hint("pass the directory a GitSync's spec.path points at"),
        );
    }
    let manifests = match engine_of(&args)? {
        Engine::Directory => render_directory(root)?,
        engine => render_with_engine(&args, engine)?,
    };
    let mut docs = Vec::with_capacity(manifests.len());
    for manifest in &manifests {
        docs.push(masked(manifest)?);
    }
    let yaml: Vec<serde_yaml::Value> = docs
        .iter()
        .map(|d| {
            serde_yaml::to_value(d).map_err(|e| CliError::new(format!("cannot render output: {e}")))
        })
        .collect::<CliResult<_>>()?;
    output::write_stdout(&output::render(&yaml, args.output)?)?;
    Ok(ExitCode::SUCCESS)
}

fn engine_of(args: &Args) -> CliResult<Engine> {
    Ok(match args.render_type {
        RenderType::Directory => Engine::Directory,
        RenderType::Kustomize => Engine::Kustomize,
        RenderType::Helm => Engine::Helm,
        RenderType::Auto => {
            let listing = std::fs::read_dir(&args.path)
                .map_err(|e| fsio::io_error(&args.path.display().to_string(), "read", &e))?;
            let names: Vec<String> = listing
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            Engine::detect(names.iter().map(String::as_str), "")
        }
    })
}

fn render_directory(root: &std::path::Path) -> CliResult<Vec<Manifest>> {
    let mut files = Vec::new();
    for path in fsio::expand_paths(&[root.to_path_buf()])? {
        let text = fsio::read_input(Some(&path))?;
        let relative = path.strip_prefix(root).unwrap_or(&path);
        files.push(SourceFile {
            path: relative.to_string_lossy().into_owned(),
            contents: text.as_bytes().to_vec(),
        });
    }
    render(&files, "", &RenderLimits::default()).map_err(refused)
}

/// kustomize or Helm over the whole repository, as the controller runs them.
fn render_with_engine(args: &Args, engine: Engine) -> CliResult<Vec<Manifest>> {
    let options = EngineOptions {
        root: args.root.clone(),
        release_name: args.release_name.clone(),
        namespace: args.namespace.clone(),
        values: args.values.clone(),
        allow_plaintext_secrets: args.allow_plaintext_secrets,
        renderer: args.renderer.clone(),
    };
    render_path(&args.path, engine, &options)
}

fn refused(e: sealsync_core::render::RenderError) -> CliError {
    crate::repository::refused(&e)
}

/// The object as the controller would apply it, values masked. A SealedSecret becomes the
/// Secret it opens to, with its keys listed and its values masked; nothing is decrypted.
fn masked(manifest: &Manifest) -> CliResult<Json> {
    let is_sealed = manifest.api_version() == sealsync_crypto::API_VERSION
        && manifest.kind() == sealsync_crypto::KIND;
    if !is_sealed {
        // The controller refuses a revision with a reference it would store unencrypted, or
        // one it cannot read.
        if let Some(field) = reference_outside_secret(&manifest.object) {
            return Err(CliError::new(format!(
                "{}: {field} holds a Vault reference; references are resolved only in the data and stringData of a v1 Secret",
                manifest.location()
            ))
            .with_hint("move the reference into a Secret: anywhere else its value would be stored unencrypted"));
        }
        secret_values(&manifest.object).map_err(|e| {
            CliError::new(format!("{}: {}", manifest.location(), Chain(&e)))
                .with_hint("the controller would refuse this revision too; fix the reference")
        })?;
        let mut object = manifest.object.clone();
        mask_secret(&mut object);
        return Ok(object);
    }
    let yaml = serde_yaml::to_value(&manifest.object)
        .map_err(|e| CliError::new(format!("{}: {}", manifest.location(), Chain(&e))))?;
    let sealed = sealed_from_manifest(&yaml)
        .map_err(|e| CliError::from_manifest(&e).context(manifest.location()))?;
    let template = sealed.template();
    let mut metadata = serde_json::Map::new();
    metadata.insert("name".into(), Json::String(sealed.metadata().name.clone()));
    if let Some(ns) = &sealed.metadata().namespace {
        metadata.insert("namespace".into(), Json::String(ns.clone()));
    }
    if !template.metadata.labels.is_empty() {
        metadata.insert(
            "labels".into(),
            serde_json::to_value(&template.metadata.labels).unwrap_or_default(),
        );
    }
    if !template.metadata.annotations.is_empty() {
        metadata.insert(
            "annotations".into(),
            serde_json::to_value(&template.metadata.annotations).unwrap_or_default(),
        );
    }
    let data: serde_json::Map<String, Json> = sealed
        .data_keys()
        .map(|k| (k.to_owned(), Json::String(MASK.to_owned())))
        .collect();
    let mut secret = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": template.type_.clone().unwrap_or_else(|| "Opaque".to_owned()),
        "data": data,
    });
    if let Some(immutable) = template.immutable {
        secret["immutable"] = Json::Bool(immutable);
    }
    Ok(secret)
}
