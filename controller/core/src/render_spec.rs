//! The parts of a GitSync's spec that say how its path becomes objects: a plain directory,
//! a kustomize overlay or a Helm chart.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the path is rendered.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RenderSpec {
    /// `auto` (the default) builds a path holding `kustomization.yaml` (`.yml`,
    /// `Kustomization`) with kustomize, renders one holding `Chart.yaml` with Helm, and
    /// applies any other as a directory of manifests. The other values force one engine.
    #[serde(default, rename = "type")]
    pub render_type: RenderType,
    /// kustomize settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSpec>,
}

/// How kustomize builds.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSpec {
    /// Fetch remote bases (`https://host/org/repo//path?ref=v1`) named by the repository's
    /// kustomizations, with the bounds of the GitSync's own repository. Default: false, and a
    /// remote base fails the render.
    #[serde(default)]
    pub allow_remote_bases: bool,
}

/// The engine of [`RenderSpec`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RenderType {
    /// Detected from the files at the path.
    #[default]
    Auto,
    /// Plain manifests, recursively.
    Directory,
    /// `kustomize build`.
    Kustomize,
    /// `helm template`.
    Helm,
}

/// How a Helm chart at the path is rendered, as `helm template` would. The release namespace
/// (`.Release.Namespace`) is `spec.targetNamespace`, else the GitSync's namespace: the one
/// objects without a namespace are applied to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmSpec {
    /// The release name (`.Release.Name`). Default: the GitSync's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 53), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub release_name: Option<String>,
    /// A chart from an HTTP chart repository instead of one at the path (values files and
    /// sealed values are then read relative to the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<HelmChartSource>,
    /// Apply the chart's `crds/` directory too. Default: true.
    #[serde(default = "default_true", rename = "includeCRDs")]
    pub include_crds: bool,
    /// Leave out the chart's `test` hooks. Default: true (sealsync never runs them).
    #[serde(default = "default_true")]
    pub skip_tests: bool,
    /// Values files in the repository, relative to the chart's directory (`../` may reach
    /// elsewhere in the repository, never outside it), merged in order after the chart's own
    /// `values.yaml`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub values_files: Vec<String>,
    /// Values from ConfigMaps and Secrets of the GitSync's namespace, or from sealed files of
    /// the repository, merged in order after the values files.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub values_from: Vec<ValuesReference>,
    /// Values merged last, over the values files and `valuesFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub values: Option<serde_json::Value>,
}

fn default_true() -> bool {
    true
}

/// An object of any shape, kept as written.
fn free_form_object(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Variables substituted into the rendered objects (`${var}`), as Flux's `spec.postBuild`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostBuildSpec {
    /// Variables by name; they take precedence over `substituteFrom`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub substitute: std::collections::BTreeMap<String, String>,
    /// ConfigMaps and Secrets of the GitSync's namespace whose keys are variables, read in
    /// order (a later one's key replaces an earlier one's). They are read at every interval,
    /// so a change takes effect within one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub substitute_from: Vec<SubstituteReference>,
}

/// A ConfigMap, Secret or sealed file of variables.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret` (by `name`), or `Sealed` (a sealed Secret file of the
    /// repository, by `path`, opened in memory; it must be sealed for the GitSync's namespace).
    pub kind: SubstituteKind,
    /// The ConfigMap's or Secret's name, in the GitSync's namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 253))]
    pub name: String,
    /// The sealed file, relative to `spec.path` (`../` may reach elsewhere in the repository,
    /// never outside it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub path: Option<String>,
    /// A missing one counts as empty instead of failing the reconcile.
    #[serde(default)]
    pub optional: bool,
}

/// The kind of a [`SubstituteReference`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SubstituteKind {
    /// A ConfigMap's `data`.
    ConfigMap,
    /// A Secret's `data`.
    Secret,
    /// A sealed Secret file of the repository.
    Sealed,
}

/// One source of Helm values.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValuesReference {
    /// `ConfigMap` or `Secret` (by `name`, in the GitSync's namespace), or `Sealed` (a sealed
    /// Secret file of the repository, by `path`, opened in memory and never written anywhere).
    pub kind: ValuesKind,
    /// The ConfigMap's or Secret's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub name: Option<String>,
    /// The sealed file, relative to the chart's directory (`../` may reach elsewhere in the
    /// repository, never outside it). It must be sealed for the release namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub path: Option<String>,
    /// The key whose value is values YAML. Default: `values.yaml`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub values_key: Option<String>,
    /// Put the key's value, as a string, at this dotted path of the values instead
    /// (`database.password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub target_path: Option<String>,
    /// A missing ConfigMap, Secret, file or key counts as no values instead of failing.
    #[serde(default)]
    pub optional: bool,
}

/// The kind of a [`ValuesReference`].
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ValuesKind {
    /// A ConfigMap's `data`.
    ConfigMap,
    /// A Secret's `data`.
    Secret,
    /// A sealed Secret file of the repository.
    Sealed,
}

/// A chart in an HTTP chart repository.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HelmChartSource {
    /// The repository's URL (`https://charts.example/stable`), where `index.yaml` is.
    #[schemars(length(max = 2048), regex(pattern = r"^https?://\S+$"))]
    pub repository: String,
    /// The chart's name in the repository.
    #[schemars(length(max = 253))]
    pub name: String,
    /// A version or a range, as Helm reads them (`1.2.3` exactly, `^1.2`, `>=1.0 <2.0`).
    /// Default: the newest release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub version: Option<String>,
}
