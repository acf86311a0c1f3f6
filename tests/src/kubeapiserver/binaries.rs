//! Where `scripts/kube-apiserver.sh` put the real kube-apiserver, kube-controller-manager and
//! etcd.

use std::path::PathBuf;

/// The module file the script builds from: its `require` lines are the pinned versions.
const GO_MOD: &str = include_str!("../../../scripts/kube-apiserver/go.mod");

/// Environment variable that overrides the binaries' directory (the script honours it too).
pub const BIN_DIR_ENV: &str = "SEALSYNC_KUBE_BIN_DIR";

/// The pinned version of a module in `scripts/kube-apiserver/go.mod`.
fn version_of(module: &str) -> Option<&'static str> {
    GO_MOD.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some(module))
            .then(|| words.next())
            .flatten()
    })
}

/// The Kubernetes release the tests run against, such as `v1.33.13`.
pub fn kube_version() -> &'static str {
    version_of("k8s.io/kubernetes").unwrap_or("unknown")
}

/// The etcd release, such as `v3.5.21`.
pub fn etcd_version() -> &'static str {
    version_of("go.etcd.io/etcd/server/v3").unwrap_or("unknown")
}

/// The directory of the binaries: `$SEALSYNC_KUBE_BIN_DIR`, else
/// `${XDG_CACHE_HOME:-$HOME/.cache}/sealsync/kube-<version>-etcd-<version>` (the rule of
/// `scripts/kube-apiserver.sh --print-dir`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache
        .join("sealsync")
        .join(format!("kube-{}-etcd-{}", kube_version(), etcd_version()))
}

/// The built binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `kube-apiserver`.
    pub apiserver: PathBuf,
    /// `kube-controller-manager`.
    pub controller_manager: PathBuf,
    /// `etcd`.
    pub etcd: PathBuf,
}

/// The binaries, or what to do to get them.
pub fn find() -> Result<Binaries, String> {
    let dir = bin_dir();
    let found = Binaries {
        apiserver: dir.join("kube-apiserver"),
        controller_manager: dir.join("kube-controller-manager"),
        etcd: dir.join("etcd"),
    };
    if [&found.apiserver, &found.controller_manager, &found.etcd]
        .iter()
        .all(|p| p.is_file())
    {
        Ok(found)
    } else {
        Err(format!(
            "kube-apiserver and kube-controller-manager {} and etcd {} are not built in {}: run \
             scripts/kube-apiserver.sh (it builds them from their Go modules; several minutes \
             the first time)",
            kube_version(),
            etcd_version(),
            dir.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_come_from_the_pinned_module() {
        assert!(kube_version().starts_with("v1.33."), "{}", kube_version());
        assert!(etcd_version().starts_with("v3."), "{}", etcd_version());
    }
}
