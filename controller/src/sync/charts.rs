//! Charts from HTTP chart repositories: `spec.helm.chart`, and the dependencies of a chart in
//! the repository that are not vendored under `charts/` (their versions from `Chart.lock`
//! when it is there). The index and the archives are fetched by the controller with its own
//! bounds, an archive's digest is checked against the index, and the archive is handed to the
//! renderer as a file of its copy of the tree: the renderer itself never touches the network.

use std::time::Duration;

use sealsync_core::chartversion::{ChartVersion, Constraint};
use serde::Deserialize;

use super::error::Error;

/// The largest index read (Flux's default is 50 MiB; most are far smaller).
const MAX_INDEX_BYTES: usize = 32 * 1024 * 1024;
/// The largest chart archive read (Flux's default).
const MAX_CHART_BYTES: usize = 10 * 1024 * 1024;
/// Dependencies one chart may name.
const MAX_DEPENDENCIES: usize = 64;
/// Bytes of dependencies fetched or copied for one chart.
const MAX_DEPENDENCY_BYTES: usize = 128 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A chart fetched from a repository.
pub(crate) struct FetchedChart {
    /// The version picked.
    pub version: String,
    /// The `.tgz` archive.
    pub archive: Vec<u8>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    entries: std::collections::BTreeMap<String, Vec<IndexEntry>>,
}

#[derive(Deserialize)]
struct IndexEntry {
    #[serde(default)]
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// The chart repository client.
#[derive(Clone)]
pub(crate) struct ChartRepositories {
    /// The client, or why it could not be built (reported by each fetch).
    client: Result<reqwest::Client, String>,
}

impl Default for ChartRepositories {
    fn default() -> Self {
        Self::new()
    }
}

impl ChartRepositories {
    pub(crate) fn new() -> Self {
        let client = reqwest::Client::builder()
            .tls_backend_rustls()
            // A redirect could carry the request elsewhere; repositories are named exactly.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"));
        Self { client }
    }

    /// The chart `name` at the version `constraint` picks, from the repository at `url`.
    /// `what` names the request in messages (`spec.helm.chart`, a dependency).
    pub(crate) async fn fetch(
        &self,
        what: &str,
        url: &str,
        name: &str,
        constraint: &str,
    ) -> Result<FetchedChart, Error> {
        let failed = |why: String| {
            Error::Render(sealsync_core::render::RenderError::Renderer {
                path: what.to_owned(),
                engine: "helm",
                reason: "ChartRepository".to_owned(),
                message: why,
            })
        };
        let base = check_repository(url).map_err(|why| failed(why.to_owned()))?;
        let index_url = base.join("index.yaml").map_err(|e| failed(e.to_string()))?;
        let index_bytes = self
            .get(&index_url, MAX_INDEX_BYTES)
            .await
            .map_err(|why| failed(format!("{}: {why}", shown(&index_url))))?;
        let index: Index = serde_yaml::from_slice(&index_bytes).map_err(|e| {
            failed(format!(
                "{}: not a chart repository index: {}",
                shown(&index_url),
                e.location()
                    .map_or(String::new(), |l| format!("line {}", l.line()))
            ))
        })?;
        drop(index_bytes);
        let entries = index
            .entries
            .get(name)
            .ok_or_else(|| failed(format!("{}: no chart named {name:?}", shown(&index_url))))?;
        let versions: Vec<(ChartVersion, &IndexEntry)> = entries
            .iter()
            .filter_map(|e| ChartVersion::parse(&e.version).map(|v| (v, e)))
            .collect();
        let available: Vec<ChartVersion> = versions.iter().map(|(v, _)| v.clone()).collect();
        let picked = Constraint::pick(constraint, &available)
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| {
                failed(format!(
                    "{}: no version of {name:?} satisfies {constraint:?}",
                    shown(&index_url)
                ))
            })?;
        let (_, entry) = versions
            .iter()
            .find(|(v, _)| v == picked)
            .ok_or_else(|| failed("the picked version vanished".to_owned()))?;
        let first = entry
            .urls
            .first()
            .ok_or_else(|| failed(format!("{}: {name} {picked} has no URL", shown(&index_url))))?;
        let mut archive_url = base.join(first).map_err(|e| failed(e.to_string()))?;
        if archive_url.query().is_none() && archive_url.origin() == base.origin() {
            // Helm copies the repository URL's query (a token some repositories need); never
            // to another host.
            archive_url.set_query(base.query());
        }
        check_repository(archive_url.as_str()).map_err(|why| failed(why.to_owned()))?;
        let archive = self
            .get(&archive_url, MAX_CHART_BYTES)
            .await
            .map_err(|why| failed(format!("{}: {why}", shown(&archive_url))))?;
        if let Some(digest) = &entry.digest {
            let want = digest
                .trim()
                .trim_start_matches("sha256:")
                .to_ascii_lowercase();
            let got: String = ring::digest::digest(&ring::digest::SHA256, &archive)
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if want != got {
                return Err(failed(format!(
                    "{}: the archive's SHA-256 is {got}, and the index says {want}",
                    shown(&archive_url)
                )));
            }
        }
        Ok(FetchedChart {
            version: picked.to_string(),
            archive,
        })
    }

    async fn get(&self, url: &reqwest::Url, limit: usize) -> Result<Vec<u8>, String> {
        let client = self.client.as_ref().map_err(Clone::clone)?;
        let mut response = client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| format!("unreachable ({})", e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("answered {}", response.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading: {}", e.without_url()))?
        {
            if body.len() + chunk.len() > limit {
                return Err(format!("larger than the limit of {limit} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A repository URL the controller fetches from: `http://` or `https://`, no credentials in
/// it, always ending in `/` so that relative chart URLs resolve under it.
fn check_repository(url: &str) -> Result<reqwest::Url, &'static str> {
    let mut parsed = reqwest::Url::parse(url).map_err(|_| "not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("chart repositories are fetched over http:// or https:// only (OCI registries are not supported yet)");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials in a chart repository URL are refused");
    }
    if !parsed.path().ends_with('/') {
        let path = format!("{}/", parsed.path());
        parsed.set_path(&path);
    }
    Ok(parsed)
}

/// A URL for messages: no query (it may hold a token).
fn shown(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

#[cfg(test)]
mod tests {
    use super::{check_repository, prepare, ChartRepositories};
    use sealsync_core::renderer::TreeFile;

    #[tokio::test]
    async fn with_spec_verify_a_dependency_from_a_repository_is_refused_unfetched() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Nothing listens there: a fetch would fail differently.
        let chart = "apiVersion: v2\nname: web\nversion: 1.0.0\ndependencies:\n- name: redis\n  version: 1.2.3\n  repository: http://127.0.0.1:9/charts\n";
        let mut files = vec![TreeFile {
            path: "web/Chart.yaml".to_owned(),
            contents: chart.as_bytes().to_vec(),
        }];
        let refused = prepare(&ChartRepositories::new(), None, &mut files, ("web", true))
            .await
            .expect_err("refused");
        let message = sealsync_core::Chain(&refused).to_string();
        assert!(
            message.contains("dependency redis") && message.contains("vendor it under charts/"),
            "{message}"
        );
    }

    #[test]
    fn repository_urls_are_checked() {
        assert_eq!(
            check_repository("https://charts.example/stable").map(|u| u.to_string()),
            Ok("https://charts.example/stable/".to_owned())
        );
        assert!(check_repository("oci://registry.example/charts").is_err());
        assert!(check_repository("https://user:pw@charts.example/").is_err());
        assert!(check_repository("file:///etc").is_err());
    }
}

/// Where a chart's dependencies are named.
#[derive(Deserialize, Default)]
struct ChartFile {
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    repository: String,
}

/// Readies the chart of a Helm GitSync in `files` (the revision's tree) and returns its path
/// for the renderer: the archive of `spec.helm.chart`, fetched into the tree, or the chart at
/// `path`, with every dependency that is not vendored under `charts/` fetched (at its
/// `Chart.lock` version when the lock names one) or copied from a `file://` path of the
/// repository.
///
/// With `verified_only` (`spec.verify`), nothing is fetched: a dependency from a chart
/// repository is not signed by the repository's keys, so it must be vendored.
pub(crate) async fn prepare(
    repositories: &ChartRepositories,
    helm: Option<&sealsync_core::HelmSpec>,
    files: &mut Vec<sealsync_core::renderer::TreeFile>,
    (path, verified_only): (&str, bool),
) -> Result<String, Error> {
    use sealsync_core::renderer::{join_in_repository, TreeFile};
    if let Some(source) = helm.and_then(|h| h.chart.as_ref()) {
        let fetched = repositories
            .fetch(
                "spec.helm.chart",
                &source.repository,
                &source.name,
                source.version.as_deref().unwrap_or(""),
            )
            .await?;
        // Outside any path of the repository a GitSync could name.
        let archive = format!(".sealsync-chart/{}-{}.tgz", source.name, fetched.version);
        files.retain(|f| f.path != archive);
        files.push(TreeFile {
            path: archive.clone(),
            contents: fetched.archive,
        });
        return Ok(archive);
    }
    let prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    let read = |name: &str| files.iter().find(|f| f.path == format!("{prefix}{name}"));
    let spec_error = |why: String| {
        Error::Render(sealsync_core::render::RenderError::Renderer {
            path: if path.is_empty() {
                ".".to_owned()
            } else {
                path.to_owned()
            },
            engine: "helm",
            reason: "Dependencies".to_owned(),
            message: why,
        })
    };
    let Some(chart_file) = read("Chart.yaml") else {
        return Ok(path.to_owned());
    };
    let chart: ChartFile = serde_yaml::from_slice(&chart_file.contents)
        .map_err(|_| spec_error("Chart.yaml: its dependencies cannot be read".to_owned()))?;
    let locked: std::collections::BTreeMap<String, String> = read("Chart.lock")
        .and_then(|lock| serde_yaml::from_slice::<ChartFile>(&lock.contents).ok())
        .map(|lock| {
            lock.dependencies
                .into_iter()
                .map(|d| (d.name, d.version))
                .collect()
        })
        .unwrap_or_default();
    if chart.dependencies.len() > MAX_DEPENDENCIES {
        return Err(spec_error(format!(
            "Chart.yaml names {} dependencies, more than the limit of {MAX_DEPENDENCIES}",
            chart.dependencies.len()
        )));
    }
    let mut added: Vec<TreeFile> = Vec::new();
    let mut added_bytes = 0usize;
    for dependency in &chart.dependencies {
        if added_bytes > MAX_DEPENDENCY_BYTES {
            return Err(spec_error(format!(
                "the dependencies fetched and copied exceed {MAX_DEPENDENCY_BYTES} bytes"
            )));
        }
        let vendored = files.iter().any(|f| {
            f.path
                .strip_prefix(&format!("{prefix}charts/"))
                .is_some_and(|rest| {
                    rest == format!("{}/Chart.yaml", dependency.name)
                        || rest
                            .strip_prefix(&format!("{}-", dependency.name))
                            .is_some_and(|version| {
                                version.starts_with(|c: char| c.is_ascii_digit())
                                    && version.ends_with(".tgz")
                            })
                })
        });
        if vendored {
            continue;
        }
        let repository = dependency.repository.trim();
        if let Some(local) = repository.strip_prefix("file://") {
            let source = join_in_repository(path, local).ok_or_else(|| {
                spec_error(format!(
                    "dependency {}: {repository} leaves the repository",
                    dependency.name
                ))
            })?;
            let source_prefix = format!("{source}/");
            let copies: Vec<TreeFile> = files
                .iter()
                .filter_map(|f| {
                    f.path.strip_prefix(&source_prefix).map(|rest| TreeFile {
                        path: format!("{prefix}charts/{}/{rest}", dependency.name),
                        contents: f.contents.clone(),
                    })
                })
                .collect();
            if copies.is_empty() {
                return Err(spec_error(format!(
                    "dependency {}: {source} is not in this revision",
                    dependency.name
                )));
            }
            added_bytes += copies.iter().map(|f| f.contents.len()).sum::<usize>();
            added.extend(copies);
        } else if (repository.starts_with("https://") || repository.starts_with("http://"))
            && verified_only
        {
            return Err(spec_error(format!(
                "dependency {}: it would be fetched from {repository}, which the trusted keys of spec.verify do not vouch for; vendor it under charts/",
                dependency.name
            )));
        } else if repository.starts_with("https://") || repository.starts_with("http://") {
            let version = locked.get(&dependency.name).unwrap_or(&dependency.version);
            let what = format!("{prefix}Chart.yaml dependency {}", dependency.name);
            let fetched = repositories
                .fetch(&what, repository, &dependency.name, version)
                .await?;
            added_bytes += fetched.archive.len();
            added.push(TreeFile {
                path: format!("{prefix}charts/{}-{}.tgz", dependency.name, fetched.version),
                contents: fetched.archive,
            });
        } else if !repository.is_empty() {
            return Err(spec_error(format!(
                "dependency {}: repository {repository:?} is not an http(s):// or file:// URL; name the repository by its URL, or vendor the chart under charts/",
                dependency.name
            )));
        }
    }
    files.extend(added);
    Ok(path.to_owned())
}
